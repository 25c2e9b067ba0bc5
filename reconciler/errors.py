"""One error hierarchy for everything a user can be told.

The engine raises these; only the CLI turns them into a message and an exit code. Every message
is written for the person at the terminal: what is wrong, where (file:line:column, ids, setting),
and how to fix it. Anything else that escapes is a bug and is reported as one.

    VectorOpsError
    ├── ManifestError
    ├── DatasetError
    ├── CanaryError
    ├── DestinationError                 every failure that leaves a destination (docs/destinations.md)
    │   ├── DestinationConfigError       unusable settings, before any request: a variable unset, an SDK missing
    │   ├── DestinationAuthError         the destination refused the credentials
    │   ├── DestinationMismatchError     it exists but was made for another embedding (dimension, metric)
    │   ├── DestinationUnavailableError  unreachable, throttled, timed out: the same command may work later
    │   ├── DestinationRejectedError     it refused a request for good (a record, a quota, a size limit)
    │   └── DestinationStorageError      its own storage failed (disk full, permissions, unreadable files)
    ├── StateError
    │   ├── LockError
    │   └── StateFormatError             state written by a newer vectorops
    ├── PlanFileError
    ├── BlockedError
    ├── ApplyStopped                     an apply asked to stop (SIGTERM to the agent) stopped between batches
    └── UsageError

Callers catch a base class (``DestinationError``), never a list of leaves; the leaves exist so a
message can say what kind of failure it was and so a future retry policy can pick the transient one.
"""

from __future__ import annotations


class VectorOpsError(Exception):
    """A problem the user can act on. ``exit_code`` is what the CLI returns (SPEC §3)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  {self.hint}"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled whole (hint included) so an error raised in a worker process reads the same."""
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[VectorOpsError], message: str, fields: dict[str, object]) -> VectorOpsError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


class ManifestError(VectorOpsError):
    """The manifest is unreadable, breaks the schema, or means something impossible."""


class DatasetError(VectorOpsError):
    """A pinned dataset version cannot be read or holds bad records."""


class CanaryError(VectorOpsError):
    """A canary file is malformed or refers to ids or dimensions that do not exist."""


class DestinationError(VectorOpsError):
    """The destination refused, failed, or is configured differently from the manifest.

    Every failure that leaves a provider is one of these (``providers.base.Destination`` translates
    what its methods raise through ``translate_error``), so the CLI reports it as the user's problem
    to act on, never as a vectorops bug.
    """


class DestinationConfigError(DestinationError):
    """The settings cannot be used: a named variable is unset, the SDK is not installed, a path is wrong."""


class DestinationAuthError(DestinationError):
    """The destination refused the credentials (a wrong or revoked key, missing permissions)."""


class DestinationMismatchError(DestinationError):
    """The destination exists but was created differently from what the manifest asks (dimension, metric)."""


class DestinationUnavailableError(DestinationError):
    """The destination could not be reached, throttled us, or timed out: running again later may work."""


class DestinationRejectedError(DestinationError):
    """The destination refused a request for good: a record it cannot hold, a quota, a size limit."""


class DestinationStorageError(DestinationError):
    """The destination's own storage failed: disk full, permissions, unreadable or corrupt files."""


class StateError(VectorOpsError):
    """vectorops' own state in a destination is malformed or contradicts the request."""


class LockError(StateError):
    """Another apply holds the environment's lock."""


class StateFormatError(StateError):
    """The state was written by a newer vectorops, in a format this one cannot read."""


class LeaseLostError(LockError):
    """An apply's lock was force-unlocked or taken over (its lease lapsed) while it ran: it stops writing."""


class PlanFileError(VectorOpsError):
    """A saved plan is corrupt, stale, or was made for another manifest or destination."""


class BlockedError(VectorOpsError):
    """Apply refuses an environment the plan marked as blocked."""


class ApplyStopped(VectorOpsError):
    """An apply stopped between write batches because its process was asked to stop (the agent's
    SIGTERM). Its intent stays recorded, so the next apply finishes it, as after a crash."""


class UsageError(VectorOpsError):
    """Flags or arguments that do not fit together."""
