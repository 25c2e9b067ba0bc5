"""Blue/green rollouts (SPEC §9): build a version in an inactive slot, validate it there, switch.

Readers address an alias (a Pinecone namespace alias, a Qdrant collection alias, a PostgreSQL
view); every version lives in a physical slot behind it. A slot is a destination of its own with
its own state document, so the ordinary in-place machinery (``plan_environment`` and
``apply_environment``: intent, fenced writes, crash recovery) brings a slot to the desired
version as a diff from **that slot's own** deployed version. This module only decides which slot,
runs the canaries against it, repoints the alias in one atomic call and records the result in
the environment's state (``EnvState.rollout``: the live slot and what every slot holds).

Crash safety, by where an apply is cut off:

* during the slot's writes: the slot's own intent says so, and the environment's state names the
  slot (``rollout.pending``), so the next apply targets the same slot and finishes it;
* after the writes, before the switch: the slot holds the version; the next apply finds it there,
  runs the canaries if they have not passed, and switches;
* after the switch, before the result is recorded: the alias is read back (``alias_target``) at
  every plan, so the next apply records what readers already see.

The alias is only ever pointed at a slot whose own state says it holds exactly the version
(no interrupted apply) and, where the environment has canaries, passed them there.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from reconciler import failpoints
from reconciler.engine import values
from reconciler.engine.session import DestinationSession, session_for
from reconciler.engine.state import (
    Deployed,
    EnvState,
    HistoryEntry,
    Lock,
    RolloutState,
    SlotRef,
    StateStore,
    VersionRef,
    actor,
    iso,
    now,
)
from reconciler.errors import BlockedError, PlanFileError
from reconciler.manifest import LoadedManifest
from reconciler.providers.base import Destination

if TYPE_CHECKING:  # plan and apply import this module inside functions
    from reconciler.engine.apply import ApplyHooks, EnvironmentResult
    from reconciler.engine.plan import EnvironmentPlan, Progress

#: slot names in the order fresh slots are taken (``keep`` is at most 10)
SLOT_NAMES = ("blue", "green", "amber", "violet", "teal", "coral", "olive", "plum", "slate", "ivory")


def _ref(dep: Deployed | None) -> dict[str, Any] | None:
    return None if dep is None else {"version": dep.version, "commit": dep.commit, "digest": dep.digest}


def _holds(state: EnvState, desired: dict[str, Any], emb: dict[str, Any]) -> bool:
    """The slot holds exactly that version, written whole (no apply of it was cut off)."""
    dep = state.deployed
    return (
        dep is not None
        and state.intent is None
        and (dep.commit, dep.digest) == (desired["commit"], desired["digest"])
        and (dep.model, dep.dimension, dep.metric) == (emb["model"], emb["dimension"], emb["metric"])
    )


def _compatible(state: EnvState, emb: dict[str, Any]) -> bool:
    """A diff into this slot would not mix embedding models (an empty slot takes any)."""
    dep = state.deployed
    return dep is None or (dep.model, dep.dimension, dep.metric) == (emb["model"], emb["dimension"], emb["metric"])


def read_slots(env_dest: Destination, env_state: EnvState) -> dict[str, EnvState]:
    """Every slot that exists or that the environment's state names, with its own state."""
    names = set(env_dest.list_slots())
    if env_state.rollout is not None:
        names |= {s.name for s in env_state.rollout.slots}
        if env_state.rollout.pending:
            names.add(str(env_state.rollout.pending.get("slot")))
    out: dict[str, EnvState] = {}
    for name in sorted(n for n in names if n in SLOT_NAMES):
        slot = env_dest.open_slot(name)
        try:
            out[name] = StateStore(slot).load()
        finally:
            slot.close()
    return out


def slot_refs(slots: dict[str, EnvState]) -> list[SlotRef]:
    return [
        SlotRef(name=name, version=st.deployed.version, commit=st.deployed.commit, digest=st.deployed.digest,
                model=st.deployed.model, applied_at=st.deployed.applied_at, validated=st.deployed.validated)
        for name, st in slots.items()
        if st.deployed is not None and st.intent is None
    ]


def _age(state: EnvState) -> str:
    return state.deployed.applied_at if state.deployed is not None else ""


def _choose(
    slots: dict[str, EnvState], live: str | None, pending: str | None, keep: int, desired: dict[str, Any], emb: dict[str, Any]
) -> list[str]:
    """Candidate target slots, best first: an inactive slot already holding the version (a switch),
    the slot an interrupted rollout was writing, a fresh slot while fewer than ``keep`` exist, the
    oldest inactive slot of the same embedding, else a fresh one (a new model)."""
    inactive = [n for n in slots if n != live]
    holding = sorted((n for n in inactive if _holds(slots[n], desired, emb)), key=lambda n: _age(slots[n]), reverse=True)
    candidates = list(holding)
    if pending and pending != live and pending in slots and _compatible(slots[pending], emb):
        candidates.append(pending)
    fresh = [n for n in SLOT_NAMES if n not in slots and n != live]
    if len(slots) < keep and fresh:
        candidates.append(fresh[0])
    reusable = sorted((n for n in inactive if _compatible(slots[n], emb)), key=lambda n: _age(slots[n]))
    candidates.extend(reusable[:1])
    if fresh:
        candidates.append(fresh[0])
    return list(dict.fromkeys(candidates))


def plan_blue_green(
    manifest: LoadedManifest,
    name: str,
    *,
    refresh: str | None = None,
    allow_deletes: bool = False,
    version_override: str | None = None,
    progress: Progress | None = None,
    rollback: bool = False,
    session: DestinationSession | None = None,
) -> EnvironmentPlan:
    """The plan of a blue/green environment: the diff into the slot this apply will write (from
    that slot's own version), ``current`` being what readers see now, and the rollout section."""
    with session_for(manifest, session) as opened:
        return _plan_blue_green(
            manifest, name, refresh=refresh, allow_deletes=allow_deletes, version_override=version_override, progress=progress,
            rollback=rollback, session=opened,
        )


def _plan_blue_green(
    manifest: LoadedManifest, name: str, *, refresh: str | None, allow_deletes: bool, version_override: str | None,
    progress: Progress | None, rollback: bool, session: DestinationSession,
) -> EnvironmentPlan:
    from reconciler.engine.plan import plan_environment

    env = manifest.model.environments[name]
    emb_model = manifest.model.datasets[env.dataset].embedding
    emb = {"model": emb_model.model, "dimension": emb_model.dimension, "metric": emb_model.metric}
    desired_version = manifest.pinned_version(name, version_override)
    desired = {"version": desired_version.rev, "commit": desired_version.commit, "digest": desired_version.digest}
    env_dest = session.destination(name)
    env_state = StateStore(env_dest).load()
    live = env_dest.alias_target()
    slots = read_slots(env_dest, env_state)
    keep = env.rollout.keep
    pending = str(env_state.rollout.pending.get("slot")) if env_state.rollout and env_state.rollout.pending else None

    def plan_against(slot: str, level: str | None) -> EnvironmentPlan:
        dest = session.adopt(env_dest.open_slot(slot))
        return plan_environment(
            manifest, name, refresh=level, allow_deletes=allow_deletes, version_override=version_override,
            progress=progress, destination=dest, rollback=rollback, session=session,
        )

    plan, target, action = None, None, "write"
    live_deployed = slots[live].deployed if live is not None and live in slots else None
    if live is not None and live_deployed is not None and _holds(slots[live], desired, emb) and live_deployed.validated is not False:
        plan = plan_against(live, refresh)
        if not plan.changes.any:
            target = live
            recorded = env_state.rollout.live if env_state.rollout else None
            dep = env_state.deployed
            same = dep is not None and (dep.commit, dep.digest, dep.version) == (desired["commit"], desired["digest"], desired["version"])
            action = "none" if recorded == live and same else "record"
        else:
            plan = None  # drift in the live slot: the version is rebuilt in an inactive one, never in place
    if target is None:
        for candidate in _choose(slots, live, pending, keep, desired, emb):
            holds = candidate in slots and _holds(slots[candidate], desired, emb)
            # an inactive slot is written by vectorops alone: a rollback trusts its recorded content
            plan = plan_against(candidate, "stats" if holds and rollback else refresh)
            target = candidate
            action = "switch" if holds and not plan.changes.any else "write"
            break
    assert plan is not None and target is not None
    rollout = {
        "strategy": "blue_green",
        "keep": keep,
        "live": live,
        "target": target,
        "action": action,
        "slots": [
            {"name": r.name, "version": r.version, "commit": r.commit, "digest": r.digest, "model": r.model,
             "validated": r.validated, "live": r.name == live}
            for r in slot_refs(slots)
        ],
        "slot_current": plan.current.to_json() if plan.current is not None else None,
        "serial": env_state.serial,
        "lineage": env_state.lineage,
    }
    live_state = slots.get(live) if live is not None else None
    plan = dataclasses.replace(
        plan,
        rollout=rollout,
        current=values.VersionRef.from_json(_ref(live_state.deployed) if live_state is not None else _ref(env_state.deployed)),
        blocked=plan.blocked if plan.blocked is not None else _env_lock_blocked(env_dest, name),
    )
    return plan


def _env_lock_blocked(env_dest: Destination, name: str) -> str | None:
    lock = StateStore(env_dest).current_lock()
    if lock is not None and not lock.expired() and not lock.holder_is_dead():
        return (
            f"the environment is locked: {lock.describe()}; wait for that apply to finish (a dead holder's lease lapses "
            f"within a minute) or run `vectorops force-unlock {name} {lock.id}`"
        )
    return None


def apply_blue_green(
    manifest: LoadedManifest, env_plan: EnvironmentPlan, *, plan_id: str, hooks: ApplyHooks, saved: bool, operation: values.Operation = "apply",
    refuse_suspended: bool = False, session: DestinationSession | None = None,
) -> EnvironmentResult:
    """Bring the target slot to the version, validate it there, switch the alias, prune, record."""
    with session_for(manifest, session) as opened:
        return _apply_blue_green(
            manifest, env_plan, plan_id=plan_id, hooks=hooks, saved=saved, operation=operation, refuse_suspended=refuse_suspended, session=opened
        )


def _apply_blue_green(
    manifest: LoadedManifest, env_plan: EnvironmentPlan, *, plan_id: str, hooks: ApplyHooks, saved: bool, operation: values.Operation,
    refuse_suspended: bool, session: DestinationSession,
) -> EnvironmentResult:
    from reconciler.engine.apply import EnvironmentResult, apply_environment

    if env_plan.blocked:
        raise BlockedError(f"environment '{env_plan.name}' is blocked: {env_plan.blocked}")
    ro = env_plan.rollout
    assert ro is not None, "apply_blue_green takes a blue/green plan"
    name, target, action = env_plan.name, ro["target"], ro["action"]
    if action == "none":
        return EnvironmentResult(name, values.ApplyStatus.UNCHANGED, env_plan.changes.to_json(), version=env_plan.desired.version)
    started = time.monotonic()
    started_at = iso(now())
    env = manifest.model.environments[name]
    emb = env_plan.embedding
    env_dest = session.destination(name)
    slot_dest = session.adopt(env_dest.open_slot(target))
    slot_dest.ensure(emb["dimension"], emb["metric"])  # the slot (Pinecone: its index, where the lock lives too)
    store = StateStore(env_dest)
    with store.locked(operation) as lock:
        state = store.load()
        live = env_dest.alias_target()
        if state.serial != ro["serial"] or live != ro["live"]:
            raise PlanFileError(
                f"environment '{name}': the {'saved ' if saved else ''}plan is stale: the environment moved since it was made "
                f"(state serial {ro['serial']} → {state.serial}, alias on {ro['live'] or 'nothing'} → {live or 'nothing'})",
                hint="Run `vectorops plan` again and review the new plan.",
            )
        if state.suspended is not None:  # as apply_environment: the agent never applies a suspended environment
            if refuse_suspended:
                raise BlockedError(f"environment '{name}' is suspended ({state.suspended.describe()}); `vectorops resume {name}` lifts it")
            hooks.on_message(
                name,
                f"warning: this environment is suspended ({state.suspended.describe()}); applying it because you asked. "
                f"The reconcile agent leaves it alone until `vectorops resume {name}`.",
            )
        rs = state.rollout or RolloutState()
        state = state.model_copy(update={"rollout": rs})
        if action in ("write", "switch"):
            rs = rs.model_copy(update={"pending": {"slot": target, **env_plan.desired.to_json(), "plan_id": plan_id, "started_at": started_at,
                                                   "operation": operation}})
            state = state.model_copy(update={"rollout": rs, "serial": state.serial + 1})
            with store.fenced(lock):
                store.save(state)
        written = env_plan.changes.to_json()
        if action == "write":
            slot_plan = _slot_plan(env_plan)
            outcome = apply_environment(manifest, slot_plan, plan_id=plan_id, hooks=hooks, saved=saved, operation=operation, destination=slot_dest)
            written = dict(outcome.counts)
        slot_store = StateStore(slot_dest)
        slots = read_slots(env_dest, state)  # what every slot holds, the target's new version included
        slot_state = slots[target] = slot_store.load()
        dep = slot_state.deployed
        assert dep is not None and slot_state.intent is None
        verdict = dep.validation if dep.validated is True else None
        if env.validation is not None and dep.validated is not True:
            verdict = _validate_slot(manifest, name, slot_dest, slot_store, dep)
            if not verdict["ok"]:
                slots[target] = slot_store.load()  # with its verdict
                rs = rs.model_copy(update={"pending": None, "slots": slot_refs(slots)})
                state = state.model_copy(update={"rollout": rs, "serial": state.serial + 1})
                message = (
                    f"canaries failed in slot {target}: passed {verdict['passed']}/{verdict['total']} "
                    f"({verdict['pass_rate']:.0%}), below min_pass_rate {verdict['min_pass_rate']:.0%}; the alias still "
                    f"points at {live or 'nothing'}, so readers never saw {dep.version}"
                )
                store.save_and_release(state, _entry(state, env_plan, started, started_at, operation, written, plan_id,
                                                     "validation_failed", message, verdict, target, live, []), lock, check=True)
                return EnvironmentResult(name, values.ApplyStatus.VALIDATION_FAILED, written, time.monotonic() - started,
                                         version=dep.version, message=message, validation=verdict)
        failpoints.hit("before-switch")
        switch_s = 0.0
        if action in ("write", "switch"):
            with store.fenced(lock):
                switching = time.monotonic()
                env_dest.switch_alias(target)
                switch_s = time.monotonic() - switching
            failpoints.hit("after-switch")
        slots[target] = slot_store.load()
        dropped = _prune(env_dest, store, lock, slots, target, env.rollout.keep)
        previous = state.deployed
        deployed = Deployed(**{**dep.model_dump(), "validated": verdict["ok"] if verdict else dep.validated,
                               "validation": verdict or dep.validation})
        moved = previous is None or (previous.commit, previous.digest) != (deployed.commit, deployed.digest)
        rs = rs.model_copy(update={"live": target, "pending": None, "slots": slot_refs({n: s for n, s in slots.items() if n not in dropped})})
        state = state.model_copy(
            update={"previous": previous if moved else state.previous, "deployed": deployed, "rollout": rs, "serial": state.serial + 1}
        )
        if action == "record":
            message = f"recorded the switch to slot {target} that an interrupted apply made"
        elif live == target:
            message = f"slot {target} (already live)"
        else:
            message = f"switched the alias from {live or 'nothing'} to slot {target}"
            if action == "switch":
                message += f", which already held {deployed.version}: no records written"
        if dropped:
            message += f"; deleted slot{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} (keep: {env.rollout.keep})"
        entry = _entry(state, env_plan, started, started_at, operation, written, plan_id, "success", message, verdict, target,
                       live, dropped, previous)
        entry.rollout["switch_s"] = round(switch_s, 4)  # type: ignore[attr-defined]
        store.save_and_release(state, entry, lock, check=True)
    result = EnvironmentResult(name, values.ApplyStatus.APPLIED, written, time.monotonic() - started, version=deployed.version, message=message)
    result.validation = verdict
    return result


def _slot_plan(env_plan: EnvironmentPlan) -> EnvironmentPlan:
    """The plan as the slot's own apply sees it: its current version is the slot's."""
    return dataclasses.replace(env_plan, current=values.VersionRef.from_json((env_plan.rollout or {}).get("slot_current")), rollout=None)


def _validate_slot(manifest: LoadedManifest, name: str, slot_dest: Destination, slot_store: StateStore, dep: Deployed) -> dict[str, Any]:
    """Run the canaries against the slot itself and record the verdict in the slot's state."""
    from reconciler import dataset as ds
    from reconciler.engine.validation import validate_deployment

    env = manifest.model.environments[name]
    version = ds.resolve_version(manifest.dataset_source(env.dataset), dep.commit)
    verdict = validate_deployment(manifest, name, version, slot_dest)
    assert verdict is not None
    with slot_store.locked("validate") as slot_lock:
        st = slot_store.load()
        if st.deployed is not None and st.deployed.commit == dep.commit:
            judged = st.deployed.model_copy(update={"validated": bool(verdict["ok"]), "validation": verdict})
            slot_store.save_and_release(st.model_copy(update={"deployed": judged}), None, slot_lock)
    return verdict


def _prune(env_dest: Destination, store: StateStore, lock: Lock, slots: dict[str, EnvState], live: str, keep: int) -> list[str]:
    """Delete the oldest inactive slots beyond ``keep`` (never the live one)."""
    inactive = sorted((n for n in slots if n != live), key=lambda n: _age(slots[n]), reverse=True)
    dropped = inactive[max(0, keep - 1):]
    for name in dropped:
        with store.fenced(lock):
            env_dest.drop_slot(name)
    return dropped


def _entry(
    state: EnvState, env_plan: EnvironmentPlan, started: float, started_at: str, operation: values.Operation, counts: dict[str, int], plan_id: str,
    result: str, message: str, verdict: dict[str, Any] | None, target: str, live: str | None, dropped: list[str],
    previous: Deployed | None = None,
) -> HistoryEntry:
    frm = previous if previous is not None else state.deployed
    entry = HistoryEntry(
        serial=state.serial,
        started_at=started_at,
        finished_at=iso(now()),
        duration_s=round(time.monotonic() - started, 3),
        actor=actor(),
        operation=operation,
        from_=VersionRef(version=frm.version, commit=frm.commit, digest=frm.digest) if frm else None,
        to=VersionRef(**env_plan.desired.to_json()),
        counts=counts,
        result=result,
        plan_id=plan_id,
        message=message,
        validation={k: verdict[k] for k in ("passed", "total", "pass_rate", "min_pass_rate", "ok")} if verdict else None,
        rollout={"slot": target, "from_slot": live, "switched": result == "success" and live != target, "dropped": dropped},
    )
    return entry


def rollout_status(manifest: LoadedManifest, name: str, env_dest: Destination, env_state: EnvState) -> tuple[dict[str, Any], Destination | None]:
    """The rollout section of ``status`` (SPEC §9), and the live slot (for its record count)."""
    live = env_dest.alias_target()
    slots = read_slots(env_dest, env_state)
    section = {
        "strategy": "blue_green",
        "keep": manifest.model.environments[name].rollout.keep,
        "live": live,
        "slots": [
            {"name": r.name, "version": r.version, "commit": r.commit, "digest": r.digest, "model": r.model,
             "validated": r.validated, "live": r.name == live}
            for r in slot_refs(slots)
        ],
    }
    return section, (env_dest.open_slot(live) if live is not None else None)


def readers_destination(manifest: LoadedManifest, name: str, session: DestinationSession) -> Destination:
    """What readers of the environment read: its destination, or under blue/green the slot the
    alias points at (with that slot's own state), for drift and export. Opened through the
    command's session, which closes the slot with the rest."""
    dest = session.destination(name)
    if manifest.model.environments[name].rollout.strategy != "blue_green":
        return dest
    live = dest.alias_target()
    if live is None:
        return dest  # nothing deployed yet: the caller says so
    return session.adopt(dest.open_slot(live))  # closed before the alias's destination: a slot may share its connection
