"""Executing a plan: lock, record intent, write in batches, record the result and history.

The order matters for crash safety. Intent (target version, plan id, how many records) is saved
before the first write; progress is saved as batches complete; the result replaces the intent
only after every write succeeded. An apply cut off anywhere leaves a state the next plan reports
as interrupted, and writes are idempotent upserts and deletes by id, so the next apply finishes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from reconciler import failpoints
from reconciler.engine.index_cache import signature_key
from reconciler.engine.plan import EnvironmentPlan, Plan, dataset_signature, plan_environment, stash_location
from reconciler.engine.session import DestinationSession, session_for
from reconciler.engine.stash import read_stashed
from reconciler.engine.state import Deployed, EnvState, HistoryEntry, Intent, Lock, StateStore, VersionRef, actor, interrupted_entry, iso, now
from reconciler.engine.values import ApplyStatus, Operation
from reconciler.errors import (
    ApplyStopped,
    BlockedError,
    DatasetError,
    DestinationStorageError,
    DestinationUnavailableError,
    LeaseLostError,
    PlanFileError,
    VectorOpsError,
)
from reconciler.manifest import LoadedManifest
from reconciler.providers.base import Destination
from reconciler.records import RecordBatch
from reconciler.redact import redact

WRITE_BATCH = int(os.environ.get("VECTOROPS_WRITE_BATCH", "5000"))
#: a plan whose upserts fit in this many vector bytes is written in one step where the destination
#: prefers it (LanceDB: one merge commit for every upsert, one delete commit)
SINGLE_STEP_LIMIT_BYTES = int(os.environ.get("VECTOROPS_SINGLE_STEP_LIMIT_BYTES", str(512 * 1024 * 1024)))
PROGRESS_SAVE_EVERY = 10  # batches between progress records in the state
_IO_HINT = (
    "Fix that, then run the apply again: an environment cut off mid-write is reported by the next plan and finished "
    "by the next apply; environments after it were not attempted."
)


@dataclass
class ApplyHooks:
    """How the engine reports progress without printing (the CLI renders these)."""

    on_start: Callable[[str, int], None] = lambda env, total: None
    on_progress: Callable[[str, int], None] = lambda env, n: None
    on_done: Callable[[str, EnvironmentResult], None] = lambda env, result: None
    on_message: Callable[[str, str], None] = lambda env, text: None
    #: asked between write batches: True makes the apply stop there (``ApplyStopped``), its intent
    #: recorded and its lock released, for the next apply to finish (the agent's SIGTERM)
    should_stop: Callable[[], bool] = lambda: False

    def check_stop(self, env: str) -> None:
        if self.should_stop():
            raise ApplyStopped(
                f"environment '{env}': the apply stopped between write batches because vectorops was asked to stop",
                hint="What it wrote is recorded as an interrupted apply; the next apply (or the restarted agent) finishes it.",
            )


@dataclass
class EnvironmentResult:
    name: str
    status: ApplyStatus
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    version: str | None = None
    message: str | None = None
    validation: dict[str, Any] | None = None
    cause: BaseException | None = None  # the I/O failure behind a "failed", for -v's traceback

    def to_json(self) -> dict[str, Any]:
        """What the renderers read (the cause stays here: only -v shows its traceback)."""
        return {
            "name": self.name,
            "status": self.status.value,
            "counts": dict(self.counts),
            "duration_s": self.duration_s,
            "version": self.version,
            "message": self.message,
            "validation": self.validation,
        }


def version_tag(commit: str) -> str:
    """The destination snapshot name of a deployed dataset commit (LanceDB table tags)."""
    return f"vectorops-{commit[:12]}"


def records_for(manifest: LoadedManifest, env_plan: EnvironmentPlan, ids: pa.Array, batch_size: int = WRITE_BATCH) -> Iterator[RecordBatch]:
    """The desired version's records with these ids, streamed from the dataset in write-sized batches.

    Everything that can refuse (a moved digest, a dataset object that is not the pinned version)
    is checked here, before the stream is handed to a destination: a destination may consume it
    from native code that would wrap the refusal into its own error.
    """
    from reconciler import dataset as ds

    if len(ids) == 0:
        return iter(())
    src = manifest.dataset_source(env_plan.dataset)
    version = ds.resolve_version(src, env_plan.desired.commit)
    if version.digest != env_plan.desired.digest:
        raise PlanFileError(
            f"environment '{env_plan.name}': the dataset at {env_plan.desired.commit[:7]} no longer has the digest the plan was made with",
            hint="Make a new plan.",
        )
    wanted = ids.cast(pa.string())
    if ds.is_sharded(version):  # per-shard stashes, then only the shards that hold the rest
        from reconciler.engine import executors
        from reconciler.engine.shards import changed_records

        baseline = env_plan.current.digest if env_plan.current is not None else None
        sig = signature_key(dataset_signature(manifest, env_plan.dataset, env_plan.vector_precision))
        records = changed_records(src, version, sig, baseline, wanted, batch_size, executor=executors.for_manifest(manifest))
        return _rebatch(records, batch_size)
    stashed: list[RecordBatch] = []
    if env_plan.current is not None:  # records the plan already read (and verified), kept beside the hash cache
        path = stash_location(manifest, env_plan.dataset, version.digest, env_plan.current.digest, env_plan.vector_precision)
        stashed, wanted = read_stashed(path, wanted, batch_size)
    if len(wanted):
        ds.verify_version(src, version)
    return _records_stream(src, version, stashed, wanted, batch_size)


def _records_stream(src: Any, version: Any, stashed: list[RecordBatch], wanted: pa.Array, batch_size: int) -> Iterator[RecordBatch]:
    from reconciler import dataset as ds

    yield from stashed
    if len(wanted) == 0:
        return
    yield from _rebatch(ds.read_records(src, version, wanted), batch_size)


def _rebatch(batches: Iterator[RecordBatch], batch_size: int) -> Iterator[RecordBatch]:
    """Records in write-sized batches whatever sizes they were read in."""
    pending: list[RecordBatch] = []
    pending_n = 0
    for picked in batches:
        pending.append(picked)
        pending_n += len(picked)
        while pending_n >= batch_size:
            merged = _concat(pending)
            yield merged.take(np.arange(batch_size))
            rest = merged.take(np.arange(batch_size, len(merged)))
            pending, pending_n = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending_n:
        yield _concat(pending)


def _concat(batches: list[RecordBatch]) -> RecordBatch:
    if len(batches) == 1:
        return batches[0]
    meta = pa.concat_tables([b.metadata for b in batches], promote_options="permissive")
    return RecordBatch(
        ids=pa.concat_arrays([b.ids.cast(pa.string()) for b in batches]),
        vectors=np.concatenate([b.vectors for b in batches]),
        metadata=meta,
    )


def _check_fresh(env_plan: EnvironmentPlan, state: EnvState, saved: bool, store: StateStore | None = None) -> None:
    """Refuse a plan made against a state that has moved since (Terraform's stale plan), naming
    who moved it where the history says (a concurrent apply that won the lock, typically)."""
    if state.serial != env_plan.serial or (env_plan.lineage and state.lineage != env_plan.lineage):
        what = "saved plan" if saved else "plan"
        since = "someone applied since"
        try:
            last = store.history(limit=1) if store is not None else []
        except VectorOpsError:
            last = []
        if last:
            since = f"since then {last[0].actor} ran {last[0].operation} to {last[0].to.version} (finished {last[0].finished_at})"
        raise PlanFileError(
            f"environment '{env_plan.name}': the {what} is stale: it was made at state serial {env_plan.serial}, "
            f"the destination is now at serial {state.serial} ({since})",
            hint="Run `vectorops plan` again and review the new plan.",
        )


def _check_readable(manifest: LoadedManifest, env_plan: EnvironmentPlan) -> None:
    """Refuse, before anything is written (not even an empty table or an intent), a plan whose
    records cannot be read here: a saved plan made where the data was, applied where it is not."""
    from reconciler import dataset as ds
    from reconciler.engine.plan import unreadable_records

    if not env_plan.has_changes or len(env_plan.ids.upsert) == 0:
        return
    desired = ds.resolve_version(manifest.dataset_source(env_plan.dataset), env_plan.desired.commit)
    problem = unreadable_records(manifest, env_plan, desired)
    if problem is not None:
        raise DatasetError(f"environment '{env_plan.name}': nothing was written: {problem}")


def apply_environment(
    manifest: LoadedManifest,
    env_plan: EnvironmentPlan,
    *,
    plan_id: str,
    hooks: ApplyHooks,
    saved: bool,
    operation: Operation = "apply",
    destination: Destination | None = None,
    refuse_suspended: bool = False,
    session: DestinationSession | None = None,
) -> EnvironmentResult:
    """Apply one environment's plan. ``refuse_suspended``: a suspended environment is refused
    (the agent); otherwise it is applied with a warning (a person asked for it)."""
    with session_for(manifest, session) as opened:
        return _apply_environment(
            manifest, env_plan, plan_id=plan_id, hooks=hooks, saved=saved, operation=operation, refuse_suspended=refuse_suspended,
            dest=destination if destination is not None else opened.destination(env_plan.name),
        )


def _apply_environment(
    manifest: LoadedManifest,
    env_plan: EnvironmentPlan,
    *,
    plan_id: str,
    hooks: ApplyHooks,
    saved: bool,
    operation: Operation,
    refuse_suspended: bool,
    dest: Destination,
) -> EnvironmentResult:
    if env_plan.blocked:
        raise BlockedError(f"environment '{env_plan.name}' is blocked: {env_plan.blocked}")
    _check_readable(manifest, env_plan)
    started = time.monotonic()
    store = StateStore(dest)
    emb = env_plan.embedding
    if env_plan.has_changes:
        # before the lock: a destination that keeps its lock inside the index (Pinecone) needs the
        # index to exist first. Creating an empty index is idempotent and writes no records.
        dest.ensure(emb["dimension"], emb["metric"])
    with store.locked(operation) as lock:
        state = store.load()
        _check_fresh(env_plan, state, saved, store)
        if state.suspended is not None:  # read under the lock: a suspension made after the plan counts
            if refuse_suspended:
                raise BlockedError(f"environment '{env_plan.name}' is suspended ({state.suspended.describe()}); `vectorops resume {env_plan.name}` lifts it")
            hooks.on_message(
                env_plan.name,
                f"warning: this environment is suspended ({state.suspended.describe()}); applying it because you asked. "
                f"The reconcile agent leaves it alone until `vectorops resume {env_plan.name}`.",
            )
        if not env_plan.has_changes:
            return EnvironmentResult(env_plan.name, ApplyStatus.UNCHANGED, env_plan.changes.to_json(), version=env_plan.desired.version)
        started_at = iso(now())
        total = len(env_plan.ids.upsert) + len(env_plan.ids.delete)
        cut_off = state.intent  # an apply that was interrupted; this one finishes it
        whole_move = env_plan.changes.to_json()
        if cut_off is not None:
            store.append_history(interrupted_entry(cut_off, state.serial, state.deployed, finished=True))
            if cut_off.commit == env_plan.desired.commit and cut_off.counts:
                whole_move = dict(cut_off.counts)  # history shows the whole move, not only what was left
        intent_serial = state.serial + 1
        intent = Intent(
            operation=operation,
            counts=whole_move,
            version=env_plan.desired.version,
            commit=env_plan.desired.commit,
            digest=env_plan.desired.digest,
            plan_id=plan_id,
            started_at=started_at,
            actor=actor(),
            total=total,
            allow_deletes=env_plan.allow_deletes,
            replace=env_plan.replace,
        )
        state = state.model_copy(update={"intent": intent, "serial": intent_serial})
        store.save(state)
        failpoints.hit("after-intent")
        hooks.on_start(env_plan.name, total)

        progress = WriteProgress(state)
        try:
            _write(manifest, env_plan, dest, store, progress, hooks, operation, lock)
        except LeaseLostError:
            raise  # the state is the new holder's now: this apply writes nothing more, progress included
        except BaseException:
            _record_progress(store, progress.state(), lock)
            raise
        records = dest.describe().count
        failpoints.hit("before-result")

        previous = state.deployed
        deployed = Deployed(
            version=env_plan.desired.version,
            commit=env_plan.desired.commit,
            digest=env_plan.desired.digest,
            model=emb["model"],
            dimension=emb["dimension"],
            metric=emb["metric"],
            records=records,
            applied_at=iso(now()),
            validated=None,
        )
        if dest.capabilities.snapshots:
            with store.fenced(lock):
                dest.tag_version(version_tag(deployed.commit))
        moved = previous is None or previous.commit != deployed.commit or previous.digest != deployed.digest
        state = state.model_copy(
            update={"previous": previous if moved else state.previous, "deployed": deployed, "intent": None, "serial": state.serial + 1}
        )
        duration = time.monotonic() - started
        # result, history entry and lock release in one write (one request on Pinecone)
        store.save_and_release(
            state,
            HistoryEntry(
                serial=state.serial,
                started_at=started_at,
                finished_at=iso(now()),
                duration_s=round(duration, 3),
                actor=actor(),
                operation=operation,
                from_=VersionRef(**{k: previous.model_dump()[k] for k in ("version", "commit", "digest")}) if previous else None,
                to=VersionRef(version=deployed.version, commit=deployed.commit, digest=deployed.digest),
                counts=whole_move,
                result="success",
                plan_id=plan_id,
                intent_serial=intent_serial,
                message=(
                    f"finished an interrupted apply ({total:,} changes were left to write)"
                    if cut_off is not None and whole_move != env_plan.changes.to_json()
                    else None
                ),
            ),
            lock,
            check=True,  # a result is recorded only by the apply that still holds the lock
        )
    return EnvironmentResult(env_plan.name, ApplyStatus.APPLIED, env_plan.changes.to_json(), duration, version=deployed.version)


def _write(
    manifest: LoadedManifest,
    env_plan: EnvironmentPlan,
    dest: Destination,
    store: StateStore,
    progress: WriteProgress,
    hooks: ApplyHooks,
    operation: Operation,
    lock: Lock,
) -> None:
    """Do the plan's writes. Progress lands in the intent (saved every few batches).

    Every write is ``store.fenced(lock)``: made only while the lock is still this apply's. An apply
    that was force-unlocked, or whose lease lapsed, stops before its next write (``LeaseLostError``)
    instead of writing on behind the back of the apply that took over. What it wrote before stays
    covered by its intent, which the next plan reads at full, as after a crash.
    """
    emb = env_plan.embedding
    upsert_ids = env_plan.ids.upsert
    delete_ids = env_plan.ids.delete
    total = len(upsert_ids) + len(delete_ids)
    vector_bytes = len(upsert_ids) * emb["dimension"] * 4
    caps = dest.capabilities
    if operation == "rollback" and caps.snapshots and _fenced_restore(store, lock, dest.restore_tag, version_tag(env_plan.desired.commit)):
        # near-instant: the destination went back to its own snapshot of that version
        hooks.on_progress(env_plan.name, total)
    elif caps.fill and len(delete_ids) == 0 and dest.describe().count == 0:
        # an empty destination (a first apply): every record streamed into one commit, nothing to
        # merge with. A kill leaves the table empty, and the next apply starts over.
        records = records_for(manifest, env_plan, upsert_ids)  # refusals happen here, not inside the destination

        def streamed() -> Iterator[RecordBatch]:
            for batch in records:
                yield batch
                hooks.on_progress(env_plan.name, len(batch))
                failpoints.hit("mid-write", where=getattr(dest, "uri", dest.address))
                hooks.check_stop(env_plan.name)  # the one commit is abandoned: the table stays empty

        with store.fenced(lock):  # one commit, which lands only when the stream ends
            dest.fill(streamed())
    elif caps.single_commit:
        # one transaction (pgvector): records are staged as they stream, then every upsert and
        # delete becomes visible at COMMIT. A kill before it leaves nothing written.
        done = 0
        with store.fenced(lock):  # one transaction, which commits only when the stream ends
            for landed in dest.apply_changes(records_for(manifest, env_plan, upsert_ids), delete_ids.to_pylist()):
                done += landed
                progress.done = done
                hooks.on_progress(env_plan.name, landed)
                failpoints.hit("mid-write")
                hooks.check_stop(env_plan.name)  # the transaction rolls back: nothing written
        if len(delete_ids):
            hooks.on_progress(env_plan.name, len(delete_ids))
    elif caps.single_step and vector_bytes <= SINGLE_STEP_LIMIT_BYTES:
        batches = list(records_for(manifest, env_plan, upsert_ids, batch_size=max(1, len(upsert_ids))))
        if batches:
            with store.fenced(lock):
                dest.upsert(_concat(batches))
        failpoints.hit("mid-write", where=getattr(dest, "uri", dest.address))
        hooks.check_stop(env_plan.name)
        with store.fenced(lock):
            dest.delete(delete_ids.to_pylist())
        hooks.on_progress(env_plan.name, total)
    else:

        def checked() -> Iterator[RecordBatch]:
            # a stream's requests go out as its batches arrive: each batch is checked before it is handed on
            for batch in records_for(manifest, env_plan, upsert_ids):
                hooks.check_stop(env_plan.name)
                store.check_held(lock)
                yield batch
            store.check_held(lock)  # before the requests held back for the stream's end

        done = 0
        for i, landed in enumerate(dest.upsert_stream(checked())):
            done += landed
            progress.done = done
            hooks.on_progress(env_plan.name, landed)
            if (i + 1) % PROGRESS_SAVE_EVERY == 0:
                with store.fenced(lock):
                    store.save(progress.state())
            failpoints.hit("mid-write", where=getattr(dest, "uri", dest.address))
        deletes = delete_ids.to_pylist()
        for i in range(0, len(deletes), WRITE_BATCH):
            chunk = deletes[i : i + WRITE_BATCH]
            hooks.check_stop(env_plan.name)
            with store.fenced(lock):
                dest.delete(chunk)
            done += len(chunk)
            progress.done = done
            hooks.on_progress(env_plan.name, len(chunk))
    dest.after_apply()


def _fenced_restore(store: StateStore, lock: Lock, restore: Callable[[str], bool], tag: str) -> bool:
    with store.fenced(lock):
        return restore(tag)


@dataclass
class WriteProgress:
    """How far an apply's writes got: the intent as saved before them, with ``done`` records written.

    State documents are frozen values, so the writer counts here and ``state()`` makes the document
    to save (every few batches, and after a failure: the next apply finishes from there)."""

    started: EnvState
    done: int = 0

    def state(self) -> EnvState:
        intent = self.started.intent
        if intent is None:
            return self.started
        return self.started.model_copy(update={"intent": intent.model_copy(update={"done": self.done})})


def _record_progress(store: StateStore, state: EnvState, lock: Lock) -> None:
    """After a failed write, leave the intent saying how far it got; the next apply finishes it."""
    if state.intent is None:
        return
    try:
        with store.fenced(lock):  # never over the state of an apply that took the lock over
            store.save(state)
    except Exception:  # the destination is failing; the intent saved before the writes still stands
        pass


def apply_plan(
    manifest: LoadedManifest,
    plan: Plan,
    *,
    hooks: ApplyHooks | None = None,
    saved: bool = False,
    operation: Operation = "apply",
    refuse_suspended: bool = False,
    session: DestinationSession | None = None,
) -> list[EnvironmentResult]:
    """Apply environments in order; stop at the first that fails (error, I/O failure, blocked, failed canaries).

    The rule is stated in the README: environments after a failed one are not attempted (and are
    listed as such), because later ones may ``require`` it and a run that stops is easier to reason
    about than one that skips. An environment cut off mid-write keeps its intent, so the next
    apply finishes it. Each destination is opened once (``session``: the plan's, when the caller
    made the plan in the same command) and closed when the command's session ends.
    """
    with session_for(manifest, session) as opened:
        return _apply_plan(
            manifest, plan, hooks=hooks or ApplyHooks(), saved=saved, operation=operation, refuse_suspended=refuse_suspended, session=opened
        )


def _apply_plan(
    manifest: LoadedManifest, plan: Plan, *, hooks: ApplyHooks, saved: bool, operation: Operation, refuse_suspended: bool, session: DestinationSession
) -> list[EnvironmentResult]:
    results: list[EnvironmentResult] = []
    for env_plan in plan.environments:
        try:
            if env_plan.rollout is not None:  # blue/green: validated in its slot before readers see it
                from reconciler.engine.rollout import apply_blue_green

                result = apply_blue_green(
                    manifest, env_plan, plan_id=plan.plan_id, hooks=hooks, saved=saved, operation=operation, refuse_suspended=refuse_suspended,
                    session=session,
                )
            else:
                result = apply_environment(
                    manifest, env_plan, plan_id=plan.plan_id, hooks=hooks, saved=saved, operation=operation,
                    refuse_suspended=refuse_suspended, session=session,
                )
            if result.status.ok and env_plan.rollout is None:
                result = validate_after_apply(manifest, env_plan, result, hooks, session=session)
        except VectorOpsError as exc:
            status = ApplyStatus.BLOCKED if isinstance(exc, BlockedError) else ApplyStatus.STOPPED if isinstance(exc, ApplyStopped) else ApplyStatus.FAILED
            result = EnvironmentResult(env_plan.name, status, message=redact(str(exc)))
            if isinstance(exc, (DestinationStorageError, DestinationUnavailableError)):
                result.message, result.cause = f"{result.message}\n  {_IO_HINT}", exc
        except Exception as exc:  # a full disk, a refused permission, an unreachable address: the user's to fix
            from reconciler.ioerrors import as_io_error

            io_error = as_io_error(exc, where=env_plan.destination, hint=_IO_HINT)
            if io_error is None:
                raise  # a bug, reported as one
            result = EnvironmentResult(env_plan.name, ApplyStatus.FAILED, message=redact(str(io_error)), cause=exc)
        results.append(result)
        hooks.on_done(env_plan.name, result)
        if not result.status.ok:
            break
    return results


def validate_after_apply(
    manifest: LoadedManifest,
    env_plan: EnvironmentPlan,
    result: EnvironmentResult,
    hooks: ApplyHooks,
    *,
    may_roll_back: bool = True,
    session: DestinationSession | None = None,
) -> EnvironmentResult:
    """Run the environment's canaries against what is now deployed and record the verdict.

    A failed verdict marks the version unvalidated (so environments that require this one refuse
    it) and, with ``rollback_on_failure``, rolls the environment back to the previous version.
    """
    if manifest.model.environments[env_plan.name].validation is None:
        return result
    with session_for(manifest, session) as opened:
        return _validate_after_apply(manifest, env_plan, result, hooks, may_roll_back=may_roll_back, session=opened)


def _validate_after_apply(
    manifest: LoadedManifest, env_plan: EnvironmentPlan, result: EnvironmentResult, hooks: ApplyHooks, *, may_roll_back: bool, session: DestinationSession
) -> EnvironmentResult:
    from reconciler import dataset as ds
    from reconciler.engine.validation import validate_deployment

    env = manifest.model.environments[env_plan.name]
    dest = session.destination(env_plan.name)
    store = StateStore(dest)
    state = store.load()
    dep = state.deployed
    if dep is None or dep.commit != env_plan.desired.commit:
        return result
    if result.status is ApplyStatus.UNCHANGED and dep.validated is True:
        result.validation = dep.validation
        return result  # passed at this version already; a failed or missing verdict is judged again
    version = ds.resolve_version(manifest.dataset_source(env_plan.dataset), dep.commit)
    verdict = validate_deployment(manifest, env_plan.name, version, dest)
    assert verdict is not None
    with store.locked("validate") as lock:
        state = store.load()
        if state.deployed is not None and state.deployed.commit == dep.commit:
            judged = state.deployed.model_copy(update={"validated": bool(verdict["ok"]), "validation": verdict})
            last = store.history(limit=1)
            entry: HistoryEntry | None = None
            if last and last[0].to.commit == dep.commit:
                entry = last[0].model_copy(update={
                    "validation": {k: verdict[k] for k in ("passed", "total", "pass_rate", "min_pass_rate", "ok")},
                    "result": "success" if verdict["ok"] else "validation_failed",
                })
            store.save_and_release(state.model_copy(update={"deployed": judged}), entry, lock)  # state, history entry and release: one write
    result.validation = verdict
    if verdict["ok"]:
        return result
    result.status = ApplyStatus.VALIDATION_FAILED
    result.message = (
        f"canaries passed {verdict['passed']}/{verdict['total']} ({verdict['pass_rate']:.0%}), below min_pass_rate "
        f"{verdict['min_pass_rate']:.0%}; {env_plan.name} is marked unvalidated at {dep.version}"
    )
    if may_roll_back and env.rollback_on_failure and state.previous is not None:
        target = state.previous
        hooks.on_message(env_plan.name, f"rolling back to {target.version} ({target.commit[:7]}) because validation failed")
        back = plan_environment(manifest, env_plan.name, version_override=target.commit, allow_deletes=True, rollback=True, session=session)
        back = replace(back, desired=replace(back.desired, version=target.version))  # the name it was deployed under
        rolled = apply_environment(
            manifest, back, plan_id=f"rollback-{env_plan.name}", hooks=hooks, saved=False, operation="rollback", session=session
        )
        rolled = validate_after_apply(manifest, back, rolled, hooks, may_roll_back=False, session=session)  # judge what is live now
        result.message += f"; rolled back automatically to {target.version} ({target.commit[:7]})"
        if rolled.validation is not None and not rolled.validation.get("ok"):
            result.message += ", which fails its canaries too"
    elif env.rollback_on_failure:
        result.message += "; nothing to roll back to (no previous version)"
    return result
