"""Suspending an environment: `vectorops suspend ENV` / `vectorops resume ENV`.

A suspension is recorded in the environment's state document, beside the deployed version, so
every machine that reaches the destination sees it: the reconcile agent plans a suspended
environment but never applies it, and `apply` from a laptop warns before writing. It is taken
under the environment's lock, so it can never be lost to an apply that loaded the state before it
and saves it after.
"""

from __future__ import annotations

from reconciler.engine.session import DestinationSession, session_for
from reconciler.engine.state import EnvState, StateStore, Suspension, actor, iso, now
from reconciler.errors import StateError
from reconciler.manifest import LoadedManifest
from reconciler.providers.base import Destination


def set_suspended(
    manifest: LoadedManifest, name: str, *, suspended: bool, reason: str | None = None, session: DestinationSession | None = None
) -> tuple[EnvState, bool]:
    """Record (or lift) the suspension of environment ``name``.

    Returns the state as saved and whether anything changed (suspending a suspended environment
    keeps the first record: who suspended it and why stays the truth until someone resumes it).
    The serial does not move: a suspension writes no record, so plans made before it stay valid.
    """
    with session_for(manifest, session) as opened:
        return _set_suspended(opened.destination(name), name, suspended=suspended, reason=reason)


def _set_suspended(dest: Destination, name: str, *, suspended: bool, reason: str | None) -> tuple[EnvState, bool]:
    if suspended and not dest.describe().exists:
        raise StateError(
            f"{dest.address} does not exist yet, so there is no state to record a suspension in",
            hint=f"To keep the agent from creating it, set environments.{name}.sync.auto: false in the manifest.",
        )
    store = StateStore(dest)
    with store.locked("suspend" if suspended else "resume") as lock:
        state = store.load()
        if suspended == (state.suspended is not None):
            return state, False
        state = state.model_copy(update={"suspended": Suspension(by=actor(), at=iso(now()), reason=reason or None) if suspended else None})
        store.save_and_release(state, None, lock)
    return state, True
