"""The agent's only door into the engine: the same functions `vectorops plan` and `apply` call.

The agent adds a loop, not a second engine. Every call it makes into ``reconciler.engine`` (and
the manifest loader) goes through this module, so when the engine's API moves, this is the one
file to change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.engine.apply import ApplyHooks, EnvironmentResult, apply_plan
from reconciler.engine.cache_pruning import PruneResult, prune, release_held_versions
from reconciler.engine.plan import EnvironmentPlan, Plan, plan_environment
from reconciler.engine.session import DestinationSession
from reconciler.engine.values import Drift
from reconciler.manifest import LoadedManifest, load_manifest

__all__ = [
    "ApplyHooks",
    "EnvironmentPlan",
    "EnvironmentResult",
    "LoadedManifest",
    "apply_one",
    "drift_records",
    "load",
    "plan_one",
    "sync_settings",
]


def load(path: Path) -> LoadedManifest:
    """The manifest, validated as `vectorops validate` does (raises ``ManifestError``)."""
    return load_manifest(path)


def sync_settings(manifest: LoadedManifest, name: str) -> tuple[bool, bool]:
    """(auto, self_heal) of environment ``name``."""
    sync = manifest.model.environments[name].sync
    return sync.auto, sync.self_heal


def open_session(manifest: LoadedManifest) -> DestinationSession:
    """The destinations of one cycle: each opened on first use, all closed when the cycle ends."""
    return DestinationSession(manifest)


def plan_one(
    manifest: LoadedManifest, name: str, *, refresh: str | None, progress: Callable[[str, int, int | None], None] | None = None,
    session: DestinationSession | None = None,
) -> EnvironmentPlan:
    """What `vectorops plan NAME --refresh REFRESH` computes."""
    return plan_environment(manifest, name, refresh=refresh, progress=progress, session=session)


def apply_one(manifest: LoadedManifest, env_plan: EnvironmentPlan, hooks: ApplyHooks, *, session: DestinationSession | None = None) -> EnvironmentResult:
    """What `vectorops apply NAME --auto-approve` does with that plan, except that a suspended
    environment is refused (under the lock, so a suspension made after the plan counts)."""
    (result,) = apply_plan(manifest, Plan(environments=(env_plan,), manifest_path=str(manifest.path)), hooks=hooks, refuse_suspended=True, session=session)
    return result


def drift_records(drift: Drift) -> int:
    """Records found drifted (missing + unexpected + modified); 0 when the refresh level found none."""
    return sum(n or 0 for n in (drift.missing, drift.unexpected, drift.modified)) if drift.found else 0


def prune_cache(max_size: int | None, *, keep_since: float) -> PruneResult:
    """The hash cache pruned to ``max_size`` bytes, least recently used versions first (``cache_pruning``)."""
    return prune(max_size=max_size, keep_since=keep_since)


def release_cache_holds() -> None:
    """The end of a cycle: the versions its plans held (``cache_pruning.hold_version``) are let go, so
    a prune (this agent's own, or another process's) may drop them; the agent keeps no file open
    for every version it ever planned."""
    release_held_versions()
