"""Rolling back: which version to go back to, and the plan that takes the environment there.

The target is the version deployed before the current one (the state's ``previous``) unless the
user names one. A rollback is an ordinary plan to that version with its deletes approved (naming
the target approves them, SPEC §3) and `requires` waived for a version the environment ran before.
"""

from __future__ import annotations

import dataclasses

from reconciler.engine.plan import Plan, plan_environment
from reconciler.engine.session import DestinationSession
from reconciler.engine.state import StateStore
from reconciler.errors import StateError
from reconciler.manifest import LoadedManifest


def rollback_plan(manifest: LoadedManifest, name: str, to_rev: str | None, session: DestinationSession) -> Plan:
    dest = session.destination(name)
    st = StateStore(dest).load()
    target = to_rev
    if target is None:
        if st.previous is None:
            raise StateError(f"environment '{name}' has no previous version to roll back to", hint="Name one with --to REV.")
        target = st.previous.commit
    # blue/green plans against its slots (no destination given)
    blue_green = manifest.model.environments[name].rollout.strategy == "blue_green"
    env_plan = plan_environment(
        manifest, name, version_override=target, allow_deletes=True, destination=None if blue_green else dest, rollback=True, session=session
    )
    if to_rev is None and st.previous is not None:  # the name it was deployed under, not the bare commit
        env_plan = dataclasses.replace(env_plan, desired=dataclasses.replace(env_plan.desired, version=st.previous.version))
    return Plan(environments=(env_plan,), manifest_path=str(manifest.path))
