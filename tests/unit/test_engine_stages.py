"""Plan building's stages, its blocking rules and apply, on hand-built inputs and in-memory destinations.

No dataset is read here: version tables are built from records in the test, destinations are
``MemoryDestination``s (the whole contract, no I/O), and the manifest is loaded from a small file
whose destinations the session never opens (its opener hands out the memory destinations).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from reconciler.engine import diff as d
from reconciler.engine.apply import ApplyHooks, apply_environment
from reconciler.engine.plan import ChangeIds, EnvironmentPlan, blocked_reason, drift_summary, refresh_actual
from reconciler.engine.session import DestinationSession
from reconciler.engine.state import Deployed, EnvState, StateStore, iso, now
from reconciler.engine.status import SyncStatus, classify
from reconciler.engine.values import ApplyStatus, ChangeCounts, Drift, RefreshLevel, VersionRef
from reconciler.errors import BlockedError, PlanFileError
from reconciler.manifest import LoadedManifest, load_manifest
from reconciler.providers.base import Destination, DestinationInfo
from reconciler.providers.memory import MemoryDestination
from reconciler.records import RecordBatch
from reconciler.render.human import destination_warnings

DIM = 4
COMMIT_1, COMMIT_2 = "1" * 40, "2" * 40

MANIFEST = """\
version: 1
datasets:
  docs:
    path: data/docs.parquet
    repo: {repo}
    embedding: {{model: m1, dimension: 4, metric: cosine}}
environments:
  staging:
    dataset: docs
    version: v2
    destination: {{type: lancedb, table: staging}}
    policy: {{max_delete_fraction: 0.25}}
  prod:
    dataset: docs
    version: v2
    requires: [staging]
    destination: {{type: lancedb, table: prod}}
"""


def records(ids: list[str], seed: int = 0) -> RecordBatch:
    rng = np.random.default_rng(seed)
    return RecordBatch.from_rows(ids, rng.standard_normal((len(ids), DIM)).astype(np.float32), [{"n": i} for i in range(len(ids))], DIM)


@pytest.fixture
def manifest(tmp_path: Path) -> LoadedManifest:
    (tmp_path / "data-repo").mkdir()
    path = tmp_path / "vectorops.yaml"
    path.write_text(MANIFEST.format(repo=tmp_path / "data-repo"), encoding="utf-8")
    return load_manifest(path)


@pytest.fixture
def dests() -> dict[str, MemoryDestination]:
    return {"staging": MemoryDestination(address="memory:staging"), "prod": MemoryDestination(address="memory:prod")}


@pytest.fixture
def session(manifest: LoadedManifest, dests: dict[str, MemoryDestination]) -> DestinationSession:
    return DestinationSession(manifest, opener=lambda _m, env: dests[env])


def deployed(commit: str = COMMIT_1, version: str = "v1", records: int = 0, model: str = "m1", validated: bool | None = None) -> Deployed:
    return Deployed(
        version=version, commit=commit, digest=f"d-{commit[:4]}", model=model, dimension=DIM, metric="cosine",
        records=records, applied_at=iso(now()), validated=validated,
    )


def save_state(dest: Destination, dep: Deployed | None, serial: int = 2) -> EnvState:
    store = StateStore(dest)
    state = store.load().model_copy(update={"deployed": dep, "serial": serial})
    store.save(state)
    return state


def env_plan(name: str = "staging", *, current: Deployed | None = None, desired: str = COMMIT_2, changes: dict[str, int] | None = None,
             count: int = 100, ids: ChangeIds | None = None, serial: int = 0, allow_deletes: bool = False, model: str = "m1") -> EnvironmentPlan:
    return EnvironmentPlan(
        name=name,
        dataset="docs",
        destination=f"memory:{name}",
        current=VersionRef(current.version, current.commit, current.digest) if current else None,
        desired=VersionRef("v2", desired, f"d-{desired[:4]}"),
        changes=ChangeCounts(**(changes or {})),
        drift=Drift(RefreshLevel.NONE, 0, None, None, None, None),
        blocked=None,
        samples={},
        serial=serial,
        embedding={"model": model, "dimension": DIM, "metric": "cosine"},
        allow_deletes=allow_deletes,
        destination_count=count,
        ids=ids or ChangeIds.empty(),
    )


# -- refresh and diff: what the destination holds against the version tables -----------------------


def test_refresh_at_each_level_and_the_drift_it_finds() -> None:
    deployed_records = records(["a", "b", "c", "d"])
    expected = d.VersionIndex.build([deployed_records], what="v1")
    dest = MemoryDestination()
    dest.ensure(DIM, "cosine")
    dest.upsert(deployed_records.take(np.arange(3)))  # "d" went missing
    dest.upsert(records(["zz"], seed=9))  # "zz" appeared
    dest.upsert(RecordBatch.from_rows(["a"], np.ones((1, DIM), np.float32), [{"n": 0}], DIM))  # "a" was overwritten

    assert refresh_actual(dest, "none") == (None, None)
    assert refresh_actual(dest, "stats") == (None, None)
    stats = drift_summary("stats", len(expected), dest.describe().count, d.compute_diff(expected, expected, None, None, prune=True))
    assert stats.to_json() == {"level": "stats", "expected_count": 4, "actual_count": 4, "missing": 0, "unexpected": 0, "modified": None}

    ids, hashes = refresh_actual(dest, "ids", expected=expected)
    assert hashes is None and sorted(ids.to_pylist()) == ["a", "b", "c", "zz"]
    by_ids = drift_summary("ids", 4, 4, d.compute_diff(expected, expected, ids, None, prune=True))
    assert (by_ids.missing, by_ids.unexpected, by_ids.modified) == (1, 1, None)

    ids, hashes = refresh_actual(dest, "full", expected=expected)
    assert ids is None and hashes is not None
    diff = d.compute_diff(expected, expected, None, hashes, prune=True)
    full = drift_summary("full", 4, 4, diff)
    assert (full.missing, full.unexpected, full.modified) == (1, 1, 1)
    assert full.found and not Drift(RefreshLevel.FULL, 4, 4, 0, None, 0).found
    # the repairs: write back "d" and "a", delete "zz"
    assert diff.add.to_pylist() == ["d"] and diff.update.to_pylist() == ["a"] and diff.delete.to_pylist() == ["zz"]


# -- the decide stage: why apply would refuse --------------------------------------------------------


def test_a_plan_within_the_rules_is_not_blocked(manifest: LoadedManifest, dests: dict[str, MemoryDestination], session: DestinationSession) -> None:
    dest = dests["staging"]
    state = save_state(dest, deployed())
    info = DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100)
    plan = env_plan(current=deployed(), changes={"add": 5, "update": 5, "delete": 25})  # 25 % is the limit, not over it
    assert blocked_reason(manifest, "staging", plan, state, info, StateStore(dest), session=session) is None


@pytest.mark.parametrize(
    ("info", "plan_kw", "dep_kw", "fragment"),
    [
        (DestinationInfo(exists=True, dimension=8, metric="cosine", count=100), {}, {}, "its dimension is 8 but the manifest declares 4"),
        (DestinationInfo(exists=True, dimension=DIM, metric="euclidean", count=100), {}, {}, "its metric is euclidean but the manifest declares cosine"),
        (DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100), {}, {"model": "m0"}, "embedding model 'm0' but the desired version declares 'm1'"),
        (DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100), {"changes": {"add": 0, "update": 0, "delete": 26}}, {},
         "deletes 26 of 100 records (26%), over policy.max_delete_fraction 25%; re-run with --allow-deletes"),
    ],
)
def test_blocking_rules(
    manifest: LoadedManifest, dests: dict[str, MemoryDestination], session: DestinationSession,
    info: DestinationInfo, plan_kw: dict[str, Any], dep_kw: dict[str, Any], fragment: str,
) -> None:
    dest = dests["staging"]
    dep = deployed(**dep_kw)
    state = save_state(dest, dep)
    reason = blocked_reason(manifest, "staging", env_plan(current=dep, **plan_kw), state, info, StateStore(dest), session=session)
    assert reason is not None and fragment in reason


def test_approved_deletes_are_not_blocked(manifest: LoadedManifest, dests: dict[str, MemoryDestination], session: DestinationSession) -> None:
    dest = dests["staging"]
    state = save_state(dest, deployed())
    plan = env_plan(current=deployed(), changes={"add": 0, "update": 0, "delete": 90}, allow_deletes=True)
    info = DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100)
    assert blocked_reason(manifest, "staging", plan, state, info, StateStore(dest), session=session) is None


def test_requires_gates_moving_forward_but_never_staying_or_rolling_back(
    manifest: LoadedManifest, dests: dict[str, MemoryDestination], session: DestinationSession
) -> None:
    prod = dests["prod"]
    state = save_state(prod, deployed(COMMIT_1))
    info = DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100)
    store = StateStore(prod)

    save_state(dests["staging"], deployed(COMMIT_1))  # staging has not got v2
    forward = env_plan("prod", current=deployed(COMMIT_1), desired=COMMIT_2)
    reason = blocked_reason(manifest, "prod", forward, state, info, store, session=session)
    assert reason is not None and "requires 'staging' to have v2 (2222222) applied and validated first; it has v1 (1111111)" in reason

    stay = env_plan("prod", current=deployed(COMMIT_1), desired=COMMIT_1)
    assert blocked_reason(manifest, "prod", stay, state, info, store, session=session) is None

    save_state(dests["staging"], deployed(COMMIT_2, "v2"))
    assert blocked_reason(manifest, "prod", forward, state, info, store, session=session) is None
    assert session.opened == ["staging"]  # `requires` read staging through the session, once


def test_a_live_lock_blocks(manifest: LoadedManifest, dests: dict[str, MemoryDestination], session: DestinationSession) -> None:
    dest = dests["staging"]
    state = save_state(dest, deployed())
    store = StateStore(dest)
    info = DestinationInfo(exists=True, dimension=DIM, metric="cosine", count=100)
    with store.locked("apply") as lock:
        reason = blocked_reason(manifest, "staging", env_plan(current=deployed()), state, info, store, session=session)
        assert reason is not None and f"force-unlock staging {lock.id}" in reason
    assert blocked_reason(manifest, "staging", env_plan(current=deployed()), state, info, store, session=session) is None


# -- apply on hand-built plans ----------------------------------------------------------------------


def test_apply_deletes_records_moves_the_version_and_writes_history(manifest: LoadedManifest, dests: dict[str, MemoryDestination]) -> None:
    dest = dests["staging"]
    dest.ensure(DIM, "cosine")
    dest.upsert(records(["a", "b", "c"]))
    state = save_state(dest, deployed(records=3), serial=2)
    ids = ChangeIds(pa.array([], pa.string()), pa.array([], pa.string()), pa.array(["c"]))
    plan = env_plan(current=state.deployed, changes={"add": 0, "update": 0, "delete": 1}, count=3, ids=ids, serial=2)
    seen: list[tuple[str, int]] = []
    result = apply_environment(manifest, plan, plan_id="p1", hooks=ApplyHooks(on_progress=lambda env, n: seen.append((env, n))), saved=False, destination=dest)

    assert (result.status, result.version, result.counts) == ("applied", "v2", {"add": 0, "update": 0, "delete": 1})
    assert sorted(i for page in dest.iter_ids() for i in page) == ["a", "b"]
    assert sum(n for _, n in seen) == 1
    store = StateStore(dest)
    after = store.load()
    assert after.deployed is not None and (after.deployed.commit, after.deployed.records) == (COMMIT_2, 2)
    assert after.previous is not None and after.previous.commit == COMMIT_1
    assert after.intent is None and after.serial == 4  # one step for the intent, one for the result
    (entry,) = store.history()
    assert (entry.operation, entry.result, entry.to.commit, entry.plan_id) == ("apply", "success", COMMIT_2, "p1")
    assert store.current_lock() is None


def test_apply_of_a_plan_with_nothing_to_do_is_unchanged(manifest: LoadedManifest, dests: dict[str, MemoryDestination]) -> None:
    dest = dests["staging"]
    dest.ensure(DIM, "cosine")
    state = save_state(dest, deployed(COMMIT_2, "v2"), serial=3)
    plan = env_plan(current=state.deployed, desired=COMMIT_2, serial=3)
    result = apply_environment(manifest, plan, plan_id="p2", hooks=ApplyHooks(), saved=False, destination=dest)
    assert result.status is ApplyStatus.UNCHANGED
    assert StateStore(dest).load().serial == 3 and StateStore(dest).history() == []


def test_apply_refuses_a_stale_plan_and_a_blocked_one(manifest: LoadedManifest, dests: dict[str, MemoryDestination]) -> None:
    dest = dests["staging"]
    dest.ensure(DIM, "cosine")
    save_state(dest, deployed(), serial=5)
    with pytest.raises(PlanFileError, match="the saved plan is stale: it was made at state serial 2, the destination is now at serial 5"):
        apply_environment(manifest, env_plan(current=deployed(), serial=2), plan_id="p3", hooks=ApplyHooks(), saved=True, destination=dest)
    blocked = dataclasses.replace(env_plan(current=deployed(), serial=5), blocked="a reason")
    with pytest.raises(BlockedError, match="environment 'staging' is blocked: a reason"):
        apply_environment(manifest, blocked, plan_id="p4", hooks=ApplyHooks(), saved=False, destination=dest)
    assert StateStore(dest).load().serial == 5  # nothing was written


# -- status ------------------------------------------------------------------------------------------


def test_status_classification() -> None:
    desired = ("v2", COMMIT_2, f"d-{COMMIT_2[:4]}")
    at_v2 = deployed(COMMIT_2, "v2", records=10)
    assert classify(None, desired, None, 0) is SyncStatus.OUT_OF_SYNC
    assert classify(deployed(records=10), desired, None, 10) is SyncStatus.OUT_OF_SYNC
    assert classify(at_v2, desired, None, 10) is SyncStatus.SYNCED
    assert classify(at_v2, desired, None, 9) is SyncStatus.DRIFTED
    assert classify(at_v2, ("v2-renamed", COMMIT_2, f"d-{COMMIT_2[:4]}"), None, 10) is SyncStatus.OUT_OF_SYNC
    assert SyncStatus.DRIFTED.value == "Drifted"


class WarnsAfterApply(MemoryDestination):
    """An in-memory destination with something to say after an apply, as pgvector's index build has."""

    def after_apply(self) -> None:
        super().after_apply()
        self.warn("the index build\nran on disk")


def test_what_a_destination_warns_about_during_an_apply_reaches_the_rendered_output(manifest: LoadedManifest) -> None:
    dest, slot = WarnsAfterApply(address="memory:staging"), WarnsAfterApply(address="memory:staging__blue")
    dest.ensure(DIM, "cosine")
    dest.upsert(records(["a", "b"]))
    state = save_state(dest, deployed(records=2), serial=2)
    ids = ChangeIds(pa.array([], pa.string()), pa.array([], pa.string()), pa.array(["b"]))
    plan = env_plan(current=state.deployed, changes={"add": 0, "update": 0, "delete": 1}, count=2, ids=ids, serial=2)
    with DestinationSession(manifest, opener=lambda _m, env: dest) as session:
        result = apply_environment(manifest, plan, plan_id="p5", hooks=ApplyHooks(), saved=False, session=session)
        assert result.status is ApplyStatus.APPLIED
        dest.warn("the index build ran on disk")  # said again: shown once
        session.adopt(slot).warn("the slot's build ran on disk too")
    # taken from each destination before it was closed, in the order they were opened
    warnings = [w.to_json() for w in session.take_warnings()]
    assert destination_warnings(warnings) == (
        "[yellow]warning[/]   memory:staging: the index build ran on disk\n"
        "[yellow]warning[/]   memory:staging__blue: the slot's build ran on disk too"
    )
    assert session.take_warnings() == [] and dest.take_warnings() == []
