"""The promote gate: only a version SRC runs, and has passed validation at where it has canaries, moves on.

`promote SRC DST` rewrites DST's pin in the manifest (``reconciler.promote``); this decides which
version that is, or refuses with what to do instead.
"""

from __future__ import annotations

from reconciler.engine.session import DestinationSession
from reconciler.engine.state import Deployed, StateStore
from reconciler.errors import StateError
from reconciler.manifest import LoadedManifest


def promotable(manifest: LoadedManifest, src: str, session: DestinationSession) -> Deployed:
    """What ``src`` has deployed, if it may be promoted: deployed, and validated where it has canaries."""
    dep = StateStore(session.destination(src)).load().deployed
    if dep is None:
        raise StateError(f"'{src}' has nothing deployed, so there is no version to promote", hint=f"Apply {src} first.")
    if manifest.model.environments[src].validation is not None and dep.validated is not True:
        raise StateError(
            f"'{src}' runs {dep.version} ({dep.commit[:7]}) but it has not passed validation there",
            hint=f"Fix the data or the canaries and apply {src} again; promote only moves validated versions.",
        )
    return dep
