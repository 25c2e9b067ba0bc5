"""The plan's typed values: frozen, with one JSON form that a saved plan reads back unchanged."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from reconciler.engine.plan import ChangeIds, EnvironmentPlan, Plan
from reconciler.engine.values import ApplyStatus, ChangeCounts, Drift, RefreshLevel, SampleBound, VersionRef


def _plan(**overrides: object) -> EnvironmentPlan:
    fields: dict[str, object] = {
        "name": "prod",
        "dataset": "docs",
        "destination": "lancedb:/tmp/x#docs",
        "current": VersionRef("v1", "a" * 40, "d1"),
        "desired": VersionRef("v2", "b" * 40, "d2"),
        "changes": ChangeCounts(add=2, update=1, delete=1),
        "drift": Drift(RefreshLevel.SAMPLE, 10, 9, 1, 0, 0, SampleBound(25, 1, 0.17, "clopper-pearson-95")),
        "blocked": None,
        "samples": {"add": ["x", "y"], "update": ["z"], "delete": ["w"]},
        "warnings": ("a warning",),
        "serial": 3,
        "embedding": {"model": "m", "dimension": 4, "metric": "cosine"},
        "destination_count": 10,
        "ids": ChangeIds(pa.array(["x", "y"]), pa.array(["z"]), pa.array(["w"])),
    }
    fields.update(overrides)
    return EnvironmentPlan(**fields)  # type: ignore[arg-type]


def test_a_plan_is_frozen_and_changed_only_by_copy() -> None:
    plan = _plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.blocked = "no"  # type: ignore[misc]
    blocked = dataclasses.replace(plan, blocked="locked")
    assert (plan.blocked, blocked.blocked) == (None, "locked")


def test_the_public_json_is_spec_shaped_and_plain() -> None:
    body = _plan().public()
    assert body["current"] == {"version": "v1", "commit": "a" * 40, "digest": "d1"}
    assert body["changes"] == {"add": 2, "update": 1, "delete": 1}
    assert body["drift"] == {
        "level": "sample", "expected_count": 10, "actual_count": 9, "missing": 1, "unexpected": 0, "modified": 0,
        "sampled": 25, "sample_drifted": 1, "drifted_fraction_upper_bound": 0.17, "bound": "clopper-pearson-95",
    }
    # plain JSON types only: an enum never leaks into what scripts read
    assert json.loads(json.dumps(body)) == body
    assert type(body["drift"]["level"]) is str


def test_predicates_come_from_the_values() -> None:
    moved = _plan()
    assert moved.has_changes and moved.moves_version and moved.has_drift
    same = VersionRef("v2", "b" * 40, "d2")
    still = _plan(current=same, changes=ChangeCounts(), drift=Drift(RefreshLevel.IDS, 10, 10, 0, 0, None))
    assert not still.has_changes and not still.has_drift
    assert not Plan(environments=(still,)).has_changes
    renamed = _plan(current=VersionRef("v2-old-name", "b" * 40, "d2"), changes=ChangeCounts())
    assert renamed.has_changes  # same content under a new version still records the new version (SPEC §4)


def test_a_saved_plan_reads_back_as_the_same_values(tmp_path) -> None:
    plan = Plan(environments=(_plan(),), manifest_path="vectorops.yaml", refresh="sample")
    path = tmp_path / "p.plan"
    plan.save(path)
    back = Plan.load(path)
    assert back.to_json() == plan.to_json()
    env = back.environments[0]
    assert env.desired == VersionRef("v2", "b" * 40, "d2") and env.changes == ChangeCounts(2, 1, 1)
    assert env.drift.level is RefreshLevel.SAMPLE and env.drift.sample == SampleBound(25, 1, 0.17, "clopper-pearson-95")
    assert env.ids.upsert.to_pylist() == ["x", "y", "z"] and env.ids.delete.to_pylist() == ["w"]


def test_levels_and_statuses_are_the_words_users_see() -> None:
    assert RefreshLevel("sample") is RefreshLevel.SAMPLE and RefreshLevel.IDS == "ids" and str(RefreshLevel.FULL) == "full"
    assert ApplyStatus.UNCHANGED.ok and not ApplyStatus.VALIDATION_FAILED.ok and ApplyStatus("stopped") is ApplyStatus.STOPPED
    with pytest.raises(ValueError):
        RefreshLevel("everything")
