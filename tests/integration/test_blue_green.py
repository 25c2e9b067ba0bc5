"""Blue/green rollouts (SPEC §9) end to end through the CLI, on every destination with aliases:
Pinecone (the real SDK against the local server's namespace aliases), Qdrant (qdrant-client's local
mode: collection aliases) and pgvector (a real PostgreSQL: slot tables behind a view).

The dataset has four versions of the same 60 ids; every record's metadata names its version, so a
read through the alias tells exactly which version a reader saw, and whether it saw one whole:

* v1, v2: pass the canaries;
* v3: doc-7 moved away from doc-6, so the canary "doc-6 finds doc-7" fails;
* v4: another embedding model (on Qdrant and pgvector also another dimension).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fixtures.cli import Result, run_vectorops
from fixtures.postgres import DSN_ENV
from fixtures.records import make_records
from fixtures.repo import DatasetRepo

N = 60
DIM = 16


def _version(tag: str, dim: int, seed: int) -> list[dict[str, Any]]:
    records = make_records(N, dim, seed=seed)
    vectors = {r["id"]: np.asarray(r["vector"], np.float32) for r in records}
    near = vectors["doc-6"] + np.float32(0.01)
    for r in records:
        r["version"] = tag
        if r["id"] == "doc-7":
            r["vector"] = (near if tag != "v3" else -vectors["doc-6"]).tolist()
    return records


VERSIONS = {"v1": (DIM, 1), "v2": (DIM, 2), "v3": (DIM, 3)}


@pytest.fixture(scope="module")
def bg_repo(tmp_path_factory: pytest.TempPathFactory) -> DatasetRepo:
    repo = DatasetRepo.create(tmp_path_factory.mktemp("bluegreen") / "repo")
    for tag, (dim, seed) in VERSIONS.items():
        repo.commit_version(_version(tag, dim, seed), tag=tag)
    repo.commit_version(_version("v4", 8, 4), tag="v4-dim8")
    repo.commit_version(_version("v4", DIM, 4), tag="v4-dim16")
    return repo


CANARIES = {
    "top_k": 2,
    "queries": [
        {"name": "doc-5 finds itself", "vector_of": "doc-5", "expect": ["doc-5"]},
        {"name": "doc-6 finds its neighbour", "vector_of": "doc-6", "expect": ["doc-6", "doc-7"]},
    ],
}


@dataclass
class Target:
    """One destination type: its manifest section and a reader that looks through the alias."""

    kind: str
    destination: dict[str, Any]
    read_alias: Callable[[], dict[str, str] | None]  # id -> version of every record readers see; None: no alias yet
    model_dimension: int  # the dimension of the model-change version on this destination
    close: Callable[[], None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _pinecone(request: pytest.FixtureRequest) -> Iterator[Target]:
    request.getfixturevalue("pinecone_server")
    from pinecone import Pinecone

    state: dict[str, Any] = {}

    def read() -> dict[str, str] | None:
        if "idx" not in state:
            pc = Pinecone(api_key=os.environ["PINECONE_API_KEY"])
            if "docs" not in [i.name for i in pc.list_indexes()]:
                return None
            state["idx"] = pc.Index(host=pc.describe_index("docs").host)
        resp = state["idx"].query(vector=[1.0] * DIM, top_k=1000, namespace="docs", include_metadata=True)
        found = {m.id: (m.metadata or {}).get("version") for m in resp.matches}
        return found or None

    yield Target("pinecone", {"type": "pinecone", "index": "docs", "namespace": "docs"}, read, DIM)


@contextlib.contextmanager
def _qdrant(request: pytest.FixtureRequest) -> Iterator[Target]:
    folder = request.getfixturevalue("qdrant_folder")
    from reconciler.providers.qdrant import ID_FIELD, _LocalClients

    def read() -> dict[str, str] | None:
        client = _LocalClients.acquire(str(folder))
        try:
            if "docs_prod" not in {a.alias_name for a in client.get_aliases().aliases}:
                return None
            points, _ = client.scroll("docs_prod", limit=1000, with_payload=True)
            return {p.payload[ID_FIELD]: p.payload.get("version") for p in points}
        finally:
            _LocalClients.release(str(folder))

    yield Target("qdrant", {"type": "qdrant", "path": str(folder), "collection": "docs_prod"}, read, 8, _LocalClients.close_all)


@contextlib.contextmanager
def _pgvector(request: pytest.FixtureRequest) -> Iterator[Target]:
    import psycopg

    dsn = request.getfixturevalue("pg_env")
    schema = request.getfixturevalue("pg_schema")
    conn = psycopg.connect(dsn, autocommit=True)

    def read() -> dict[str, str] | None:
        if conn.execute("SELECT to_regclass(%s)", (f"{schema}.docs",)).fetchone()[0] is None:
            return None
        rows = conn.execute(f"SELECT id, metadata->>'version' FROM {schema}.docs").fetchall()
        return dict(rows)

    try:
        yield Target("pgvector", {"type": "pgvector", "dsn_env": DSN_ENV, "schema": schema, "table": "docs"}, read, 8)
    finally:
        conn.close()


TARGETS = {"pinecone": _pinecone, "qdrant": _qdrant, "pgvector": _pgvector}


class Workspace:
    def __init__(self, folder: Path, repo: DatasetRepo, target: Target) -> None:
        self.folder, self.repo, self.target = folder, repo, target
        self.manifest = folder / "vectorops.yaml"
        (folder / "canaries.yaml").write_text(yaml.safe_dump(CANARIES), encoding="utf-8")
        self.pin("v1")

    def pin(self, version: str, *, model: str = "model-a", dimension: int = DIM, keep: int = 3) -> None:
        doc = {
            "version": 1,
            "datasets": {"docs": {"path": "data/docs.parquet", "repo": str(self.repo.root),
                                  "embedding": {"model": model, "dimension": dimension, "metric": "cosine"}}},
            "environments": {"prod": {
                "dataset": "docs", "version": version,
                "validation": {"canaries": "canaries.yaml", "min_pass_rate": 1.0},
                "rollout": {"strategy": "blue_green", "keep": keep},
                "destination": self.target.destination,
            }},
        }
        self.manifest.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def pin_model_change(self) -> None:
        dim = self.target.model_dimension
        self.pin(f"v4-dim{dim}", model="model-b", dimension=dim)

    def run(self, *args: str) -> Result:
        return run_vectorops("-m", str(self.manifest), "--no-color", *args)

    def ok(self, *args: str, code: int = 0) -> Result:
        result = self.run(*args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    def sees(self) -> str | None:
        """The one version a reader sees through the alias (all records of it, nothing else)."""
        found = self.target.read_alias()
        if found is None:
            return None
        versions = set(found.values())
        assert len(versions) == 1 and len(found) == N, f"a reader saw a mix: {sorted(versions)} over {len(found)} records"
        return versions.pop()

    def rollout(self) -> dict[str, Any]:
        return self.ok("status", "--json").json["environments"][0]["rollout"]

    def history(self) -> list[dict[str, Any]]:
        return self.ok("history", "prod", "--json").json["history"]

    def killed(self, failpoint: str, *args: str) -> None:
        self.target.close()  # local mode: free the folder for the other process
        env = {k: v for k, v in os.environ.items() if k != "VECTOROPS_FAILPOINT"}
        env.update(VECTOROPS_FAILPOINT=failpoint, VECTOROPS_WRITE_BATCH="10", PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", "-m", str(self.manifest), "--no-color", *args],
            env=env, capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.fixture(params=sorted(TARGETS))
def ws(request: pytest.FixtureRequest, tmp_path: Path, bg_repo: DatasetRepo) -> Iterator[Workspace]:
    with TARGETS[request.param](request) as target:
        folder = tmp_path / "project"
        folder.mkdir()
        yield Workspace(folder, bg_repo, target)
        target.close()


def test_full_flow_validate_switch_refuse_roll_back_and_change_model(ws: Workspace) -> None:
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["rollout"]["live"] is None and plan["rollout"]["target"] == "blue" and plan["rollout"]["slots"] == []
    assert plan["changes"] == {"add": N, "update": 0, "delete": 0}
    assert ws.sees() is None  # plan creates nothing

    out = ws.ok("apply", "--auto-approve").stdout
    assert "switched the alias from nothing to slot blue" in out
    assert ws.sees() == "v1"

    ws.pin("v2")
    whole = ws.ok("plan", "--json").json
    plan = whole["environments"][0]
    assert (plan["rollout"]["live"], plan["rollout"]["target"]) == ("blue", "green")
    assert plan["current"]["version"] == "v1" and plan["changes"]["add"] == N  # a fresh slot is filled whole
    human = ws.ok("plan").stdout
    assert "rollout   blue/green (keep 3): alias on blue; slots: blue v1 (live, canaries passed)" in human
    assert "this apply writes slot green (filled whole: a fresh slot), runs the canaries there" in human
    from reconciler.render.markdown import render_plan_markdown  # the Action's PR comment

    comment = render_plan_markdown(whole, title="vectorops plan")
    assert "blue/green: the alias is on `blue`; this apply writes slot green" in comment and "blue v1 (live" in comment
    ws.ok("apply", "--auto-approve")
    assert ws.sees() == "v2"
    rollout = ws.rollout()
    assert rollout["live"] == "green"
    assert {s["name"]: s["version"] for s in rollout["slots"]} == {"blue": "v1", "green": "v2"}

    ws.pin("v3")  # fails its canaries in its slot: readers never see it
    failed = ws.ok("apply", "--auto-approve", code=1)
    assert "canaries failed in slot amber" in failed.stderr and "still points at green" in failed.stderr
    assert ws.sees() == "v2"
    shown = ws.ok("status").stdout
    assert "slots: amber v3 (canaries failed), blue v1 (canaries passed), green v2 (live, canaries passed)" in shown
    status = ws.ok("status", "--json").json["environments"][0]
    assert status["deployed"]["version"] == "v2" and status["rollout"]["live"] == "green"
    assert {s["name"]: (s["version"], s["validated"]) for s in status["rollout"]["slots"]}["amber"] == ("v3", False)
    assert ws.history()[0]["result"] == "validation_failed"

    rolled = ws.ok("rollback", "prod", "--auto-approve")  # v1's slot still exists: a switch, no writes
    assert "no records written" in rolled.stdout
    assert ws.sees() == "v1"
    newest = ws.history()[0]
    assert newest["operation"] == "rollback" and newest["counts"] == {"add": 0, "update": 0, "delete": 0}
    assert (newest["from"]["version"], newest["to"]["version"]) == ("v2", "v1")
    assert {k: v for k, v in newest["rollout"].items() if k != "switch_s"} == {"slot": "blue", "from_slot": "green", "switched": True, "dropped": []}
    assert ws.ok("status", "--json").json["environments"][0]["status"] == "OutOfSync"  # the manifest still pins v3

    ws.pin_model_change()  # another model: a fresh slot, no --replace; the old slots beyond keep go
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["blocked"] is None and plan["changes"]["add"] == N
    assert plan["rollout"]["target"] not in ("blue", "green", "amber")
    ws.ok("apply", "--auto-approve")
    assert ws.sees() == "v4"
    rollout = ws.rollout()
    assert {s["name"]: s["model"] for s in rollout["slots"]}[rollout["live"]] == "model-b"
    assert len(rollout["slots"]) == 3
    ws.ok("plan", "--detailed-exitcode")  # nothing left to do


def test_keep_two_reuses_the_oldest_slot_as_a_diff(ws: Workspace) -> None:
    ws.pin("v1", keep=2)
    ws.ok("apply", "--auto-approve")
    ws.pin("v2", keep=2)
    ws.ok("apply", "--auto-approve")
    ws.pin("v1", keep=2)  # back to v1 by pin: blue still holds it, so a switch
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert (plan["rollout"]["target"], plan["rollout"]["action"]) == ("blue", "switch")
    assert plan["changes"] == {"add": 0, "update": 0, "delete": 0}
    ws.ok("apply", "--auto-approve")
    assert ws.sees() == "v1"
    ws.pin("v2", keep=2)
    ws.ok("apply", "--auto-approve")  # green holds v2
    ws.pin("v3", keep=2)  # into blue as a diff from v1 (blue's own version)
    assert "this apply writes slot blue (a diff from its own v1)" in ws.ok("plan").stdout
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["rollout"]["target"] == "blue" and plan["rollout"]["slot_current"]["version"] == "v1"
    assert plan["current"]["version"] == "v2"
    # drift and export read what readers read: the live slot
    drift = ws.ok("drift", "--json").json["environments"][0]["drift"]
    assert (drift["expected_count"], drift["actual_count"], drift["missing"], drift["unexpected"]) == (N, N, 0, 0)
    out = ws.folder / "live.parquet"
    ws.ok("export", "prod", "--out", str(out))
    import pyarrow.parquet as pq

    exported = pq.read_table(out)
    assert exported.num_rows == N and set(exported.column("version").to_pylist()) == {"v2"}

    ws.ok("apply", "--auto-approve", code=1)  # v3 fails its canaries in blue, which held v1
    rolled = ws.ok("rollback", "prod", "--auto-approve")  # no slot holds v1 any more: a diff into blue, then a switch
    assert "switched the alias from green to slot blue" in rolled.stdout and "no records written" not in rolled.stdout
    assert ws.sees() == "v1"
    newest = ws.history()[0]
    assert newest["operation"] == "rollback" and newest["to"]["version"] == "v1" and newest["counts"]["update"] == N


def test_blue_green_on_lancedb_is_a_manifest_error(tmp_path: Path, bg_repo: DatasetRepo) -> None:
    manifest = tmp_path / "vectorops.yaml"
    text = f"""version: 1
datasets:
  docs:
    path: data/docs.parquet
    repo: {bg_repo.root}
    embedding: {{model: m, dimension: {DIM}}}
environments:
  prod:
    dataset: docs
    version: v1
    rollout: {{strategy: blue_green}}
    destination: {{type: lancedb, uri: db, table: docs}}
"""
    manifest.write_text(text)
    result = run_vectorops("-m", str(manifest), "validate")
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "LanceDB has none" in result.stderr and "Remove `rollout` (in_place is the default)." in result.stderr
    assert "vectorops.yaml:11:25:" in result.stderr  # the file, line and column of the strategy
    assert not (tmp_path / "db").exists()

    manifest.write_text(text.replace("{type: lancedb, uri: db, table: docs}", "{type: pinecone, index: docs}"))
    result = run_vectorops("-m", str(manifest), "validate")
    assert result.code == 1 and "the default namespace cannot be an alias" in result.stderr


@pytest.mark.parametrize("failpoint", ["mid-write", "before-switch", "after-switch"])
def test_kill_at_each_crash_point_then_next_apply_finishes(ws: Workspace, failpoint: str) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    ws.killed(failpoint, "apply", "--auto-approve")
    expected = "v2" if failpoint == "after-switch" else "v1"
    assert ws.sees() == expected  # the alias only ever points at a whole, validated version
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["rollout"]["target"] == "green"
    ws.ok("apply", "--auto-approve")
    assert ws.sees() == "v2"
    rollout = ws.rollout()
    assert rollout["live"] == "green" and {s["name"]: s["version"] for s in rollout["slots"]} == {"blue": "v1", "green": "v2"}
    ws.ok("plan", "--detailed-exitcode")


def test_a_reader_through_the_alias_sees_only_whole_validated_versions(ws: Workspace) -> None:
    seen: list[str | None] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(ws.sees())
            except AssertionError as exc:
                errors.append(exc)
            except Exception:  # noqa: BLE001 - e.g. the alias not created yet on a destination that raises
                seen.append(None)
            time.sleep(0.002)

    ws.ok("apply", "--auto-approve")
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        ws.pin("v2")
        ws.ok("apply", "--auto-approve")
        ws.pin("v3")
        ws.ok("apply", "--auto-approve", code=1)  # failed canaries
        ws.ok("rollback", "prod", "--auto-approve")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors, errors[0]
    assert set(seen) <= {"v1", "v2"} and "v3" not in seen
    assert seen and seen[-1] in ("v1", "v2")
