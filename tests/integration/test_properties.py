"""Property tests (hypothesis): whatever manifest or dataset a user throws at `validate` and `plan`,
vectorops answers with exit 0, 1 or 2 and one message, never a traceback or a "vectorops bug"
report, and never writes to the destination when it fails.

One DVC repo and one applied LanceDB table are built per module; each random dataset is committed
as a new tag of that repo, so an example costs one `dvc add` + commit rather than a new repo.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fixtures import DatasetRepo, make_records
from fixtures.cli import Result, run_vectorops

DIM = 4
ENV = "staging"
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(*args: str) -> Result:
    """``vectorops ARGS`` in-process with no terminal, as in CI."""
    return run_vectorops(*args, env={"NO_COLOR": "1"})


def answered_cleanly(result: Result, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    assert result.code in allowed, f"exit {result.code}:\n{result.output}"
    event(f"exit {result.code}: {result.output.strip().splitlines()[0][:40] if result.output.strip() else ''}")
    assert "Traceback" not in result.output, result.output
    assert "vectorops bug" not in result.output, result.output
    if result.code == 1:
        assert "Error: " in result.output, result.output


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: any write shows up as a difference."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".vectorops.lock")
    }


@dataclass
class World:
    repo: DatasetRepo
    folder: Path  # where manifests are written
    lancedb: Path  # the applied destination that must never change on error
    base: dict[str, Any]  # a valid manifest, as data
    tags: itertools.count

    def write(self, text: str) -> str:
        path = self.folder / "vectorops.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("properties")
    repo = DatasetRepo.create(root / "repo")
    repo.commit_version(make_records(20, DIM, seed=11), tag="v1")
    lancedb = root / "lancedb"
    base = {
        "version": 1,
        "datasets": {
            "docs": {
                "path": "data/docs.parquet",
                "repo": str(repo.root),
                "embedding": {"model": "test-model", "dimension": DIM, "metric": "cosine"},
            }
        },
        "environments": {
            ENV: {
                "dataset": "docs",
                "version": "v1",
                "destination": {"type": "lancedb", "uri": str(lancedb), "table": "docs"},
                "policy": {"prune": True, "max_delete_fraction": 0.5},
            }
        },
    }
    folder = root / "deploy"
    folder.mkdir()
    w = World(repo, folder, lancedb, base, itertools.count())
    old = os.environ.get("VECTOROPS_ACTOR")
    os.environ["VECTOROPS_ACTOR"] = "tester@ci"
    try:
        result = run("-m", w.write(yaml.safe_dump(base, sort_keys=False)), "apply", "--auto-approve")
    finally:
        if old is None:
            os.environ.pop("VECTOROPS_ACTOR", None)
    assert result.code == 0, result.output
    return w


# -- random manifests ------------------------------------------------------------------------------

# no ':' or '@': a random `repo:` must never look like an ssh/URL remote and reach for the network
safe_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=":@\x00"), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True), safe_text)
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(safe_text, inner, max_size=4)), max_leaves=12)


@SETTINGS
@given(doc=documents)
def test_random_yaml_documents(world: World, doc: Any) -> None:
    answered_cleanly(run("-m", world.write(yaml.safe_dump(doc, allow_unicode=True)), "validate"), (1,))


@SETTINGS
@given(text=st.text(max_size=200))
def test_random_text(world: World, text: str) -> None:
    answered_cleanly(run("-m", world.write(text), "validate"), (1,))


@SETTINGS
@given(data=st.data())
def test_text_level_damage_to_a_valid_manifest(world: World, data: st.DataObject) -> None:
    """Characters dropped or inserted in a valid manifest (YAML syntax errors, broken indentation)."""
    text = yaml.safe_dump(world.base, sort_keys=False)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()) and i < len(text):
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + data.draw(st.sampled_from(["[", "{", ":", "\t", " ", "\n", "'", '"', "-", "#", "&a", "*b", "!!python/object "])) + text[i:]
    before = snapshot(world.lancedb)
    path = world.write(text)
    answered_cleanly(run("-m", path, "validate"))
    result = run("-m", path, "plan", "--refresh", "stats")
    answered_cleanly(result)
    assert snapshot(world.lancedb) == before


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(doc)), label="path")
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, (dict, list)):
            continue
        op = data.draw(st.sampled_from(["delete", "retype", "add", "string", "number"]), label="op")
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "retype":
            parent[key] = data.draw(documents, label="value")
        elif op == "add" and isinstance(parent, dict):
            parent[data.draw(safe_text, label="new key")] = data.draw(scalars, label="new value")
        elif op == "string":
            parent[key] = data.draw(st.one_of(safe_text, st.sampled_from(["v9", "..", "../../etc", "/", "Bad Name", "", "HEAD", "pinecone"])))
        else:
            parent[key] = data.draw(st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True)))
    return doc


@SETTINGS
@given(data=st.data())
def test_mutated_manifests_at_validate_and_plan(world: World, data: st.DataObject) -> None:
    doc = _mutate(world.base, data)
    before = snapshot(world.lancedb)
    path = world.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    answered_cleanly(run("-m", path, "validate"))
    answered_cleanly(run("-m", path, "plan", "--refresh", "stats"))
    assert snapshot(world.lancedb) == before


# -- random datasets -------------------------------------------------------------------------------

ids = st.one_of(
    st.sampled_from(["doc-0", "doc-1", "doc-2", "", " ", "é", "日本", "a'b", "x\"y", "%", "_", "doc-0"]),
    st.text(max_size=6),
    st.none(),
)
values = st.one_of(st.floats(-10, 10, width=32), st.sampled_from([math.nan, math.inf, -math.inf, -0.0]))


@st.composite
def datasets(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 6))
    row_ids = draw(st.lists(ids, min_size=n, max_size=n))
    dims = draw(st.lists(st.sampled_from([DIM, DIM, DIM, DIM - 1, DIM + 1, 0]), min_size=n, max_size=n))
    vectors = [draw(st.one_of(st.none(), st.lists(values, min_size=d, max_size=d))) if draw(st.integers(0, 9)) == 0 else draw(st.lists(values, min_size=d, max_size=d)) for d in dims]
    columns: dict[str, pa.Array] = {
        "id": pa.array(row_ids, pa.string()),
        "vector": pa.array(vectors, pa.list_(pa.float32())),
    }
    meta_kind = draw(st.sampled_from(["none", "int", "str", "float", "list"]))
    meta = {
        "none": st.none(),
        "int": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "str": st.one_of(st.none(), st.text(max_size=20)),
        "float": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "list": st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=3)),
    }[meta_kind]
    if meta_kind != "none":
        columns["meta"] = pa.array(draw(st.lists(meta, min_size=n, max_size=n)))
    if draw(st.integers(0, 9)) == 0:
        del columns[draw(st.sampled_from(["id", "vector"]))]
    return pa.table(columns)


@settings(SETTINGS, max_examples=30)
@given(table=datasets())
def test_random_datasets_at_plan(world: World, table: pa.Table) -> None:
    tag = f"random-{next(world.tags)}"
    world.repo.commit_table(table.replace_schema_metadata({"example": tag}), tag=tag)  # never an empty commit
    doc = copy.deepcopy(world.base)
    doc["environments"][ENV]["version"] = tag
    before = snapshot(world.lancedb)
    path = world.write(yaml.safe_dump(doc, sort_keys=False))
    answered_cleanly(run("-m", path, "validate"))
    answered_cleanly(run("-m", path, "plan", "--refresh", "full", "--detailed-exitcode"))
    assert snapshot(world.lancedb) == before
