"""One error hierarchy for everything a user can be told.

The engine raises these; only the CLI turns them into a message and an exit code. Every message
is written for the person at the terminal: what is wrong, where (file:line:column, ids, setting),
and how to fix it. Anything else that escapes is a bug and is reported as one.
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


class ManifestError(VectorOpsError):
    """The manifest is unreadable, breaks the schema, or means something impossible."""


class DatasetError(VectorOpsError):
    """A pinned dataset version cannot be read or holds bad records."""


class CanaryError(VectorOpsError):
    """A canary file is malformed or refers to ids or dimensions that do not exist."""


class DestinationError(VectorOpsError):
    """The destination refused, failed, or is configured differently from the manifest."""


class StateError(VectorOpsError):
    """vectorops' own state in a destination is malformed or contradicts the request."""


class LockError(StateError):
    """Another apply holds the environment's lock."""


class PlanFileError(VectorOpsError):
    """A saved plan is corrupt, stale, or was made for another manifest or destination."""


class BlockedError(VectorOpsError):
    """Apply refuses an environment the plan marked as blocked."""


class UsageError(VectorOpsError):
    """Flags or arguments that do not fit together."""
