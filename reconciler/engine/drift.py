"""`vectorops drift`: how far each destination is from the version its state says is deployed.

A drift check is a plan against the deployed version instead of the pinned one, so the changes it
finds are the repairs. Its JSON form is plan-shaped (SPEC §4 keys), so the GitHub Action and
scripts render drift like a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.engine.plan import DEFAULT_REFRESH, FORMAT_VERSION, EnvironmentPlan, plan_environment
from reconciler.engine.session import DestinationSession
from reconciler.engine.state import StateStore
from reconciler.errors import StateError, UsageError
from reconciler.manifest import LoadedManifest

SAMPLE_KEYS = ("missing", "unexpected", "modified")


@dataclass(frozen=True)
class EnvironmentDrift:
    plan: EnvironmentPlan  # made against the deployed version: its changes are the repairs

    @property
    def has_drift(self) -> bool:
        return self.plan.has_drift

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        current = p.current.to_json() if p.current is not None else None
        return {
            "name": p.name,
            "dataset": p.dataset,
            "destination": p.destination,
            "current": current,
            "desired": current,
            "deployed": current,
            "changes": p.changes.to_json(),
            "drift": p.drift.to_json(),
            "blocked": None,
            "samples": {k: p.samples.get(k, []) for k in SAMPLE_KEYS},
            "has_changes": self.has_drift,  # the changes of a drift report are its repairs
            "has_drift": self.has_drift,
        }


@dataclass(frozen=True)
class DriftReport:
    environments: tuple[EnvironmentDrift, ...]

    @property
    def has_drift(self) -> bool:
        return any(e.has_drift for e in self.environments)

    def to_json(self) -> dict[str, Any]:
        found = self.has_drift
        return {"format_version": FORMAT_VERSION, "has_drift": found, "has_changes": found, "environments": [e.to_json() for e in self.environments]}


def drift_report(manifest: LoadedManifest, names: list[str], refresh: str | None, session: DestinationSession) -> DriftReport:
    """``refresh`` None: each environment's ``policy.refresh``, else ``ids``. Under blue/green the
    check reads the live slot, which is what readers see."""
    from reconciler.engine.rollout import readers_destination

    if refresh == "none":
        raise UsageError("drift needs a refresh level that reads the destination", hint="Use --refresh stats, sample, ids or full.")
    found = []
    for name in names:
        dest = readers_destination(manifest, name, session)
        st = StateStore(dest).load()
        if st.deployed is None:
            raise StateError(
                f"environment '{name}' has no deployed version recorded, so there is nothing to compare against",
                hint=f"Apply it first, or adopt an existing index with `vectorops import {name} --version REV`.",
            )
        policy = manifest.model.environments[name].policy.refresh
        level = refresh or (policy if policy not in (None, "none") else DEFAULT_REFRESH)
        plan = plan_environment(manifest, name, refresh=level, version_override=st.deployed.commit, destination=dest, session=session)
        found.append(EnvironmentDrift(plan))
    return DriftReport(tuple(found))
