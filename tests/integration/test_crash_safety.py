"""Crash safety and locks (issue 8): an apply SIGKILLed at several points, then finished by the next one.

The apply runs as a real subprocess (`python -m reconciler apply`) that kills itself with SIGKILL
at a named failpoint (VECTOROPS_FAILPOINT): no cleanup, no finally blocks, like an OOM kill or a
cancelled CI job. The next `plan` must report the interrupted apply and the next `apply` must end
with exactly the desired content — on LanceDB and on the local Pinecone server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pytest

from fixtures.manifests import environment, lancedb_destination, pinecone_destination, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo
from reconciler.engine.state import Lock, StateStore, iso, now
from reconciler.providers.lancedb import LanceDBDestination
from tests.pinecone_server import PineconeServer

LANCE = lancedb_destination("docs")  # the `staging` destination; uri "db" is in each project's own folder
PINECONE = pinecone_destination("crash-test")


class Project:
    def __init__(self, folder: Path, repo: DatasetRepo, destination: dict[str, Any]) -> None:
        self.folder = folder
        self.repo = repo
        self.destination = destination
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest = folder / "vectorops.yaml"

    def pin(self, version: str) -> None:
        write_manifest(self.manifest, {"staging": environment(version, self.destination)}, repo=self.repo.root)

    def vectorops(self, *args: str, failpoint: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ, **env)
        full_env.pop("VECTOROPS_FAILPOINT", None)
        if failpoint:
            full_env["VECTOROPS_FAILPOINT"] = failpoint
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "-m", str(self.manifest), "--no-color", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
        )

    def plan_json(self, *args: str) -> dict[str, Any]:
        result = self.vectorops("plan", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["environments"][0]


def expected(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


def lance_content(project: Project) -> dict[str, tuple[bytes, dict[str, Any]]]:
    db = lancedb.connect(str(project.folder / "db"))
    table = db.open_table("docs").to_arrow()
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().astype(np.float32).reshape(-1, 16)
    return {
        i: (vectors[n].tobytes(), json.loads(m))
        for n, (i, m) in enumerate(zip(table.column("id").to_pylist(), table.column("metadata").to_pylist(), strict=False))
    }


@pytest.fixture
def lance_project(tmp_path: Path, dataset_repo: DatasetRepo) -> Project:
    project = Project(tmp_path / "project", dataset_repo, LANCE)
    project.pin("v1")
    assert project.vectorops("apply", "--auto-approve").returncode == 0
    project.pin("v2")
    return project


def killed(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == -signal.SIGKILL


# -- LanceDB: a bounded plan is two commits (every upsert, then every delete) -------------------------


def test_lancedb_kill_after_intent_leaves_old_version_intact_and_next_apply_finishes(lance_project: Project, known_versions: KnownVersions) -> None:
    assert killed(lance_project.vectorops("apply", "--auto-approve", failpoint="after-intent"))
    assert lance_content(lance_project) == expected(known_versions.v1)

    plan = lance_project.plan_json()
    assert plan["interrupted"]["version"] == "v2" and plan["interrupted"]["done"] == 0
    assert plan["changes"] == {"add": 120, "update": 45, "delete": 30}
    assert (plan["drift"]["missing"], plan["drift"]["unexpected"], plan["drift"]["modified"]) == (0, 0, 0)

    # the dead holder's lock (same host, process gone) does not make the team wait for the lease
    result = lance_project.vectorops("apply", "--auto-approve")
    assert result.returncode == 0, result.stderr
    assert lance_content(lance_project) == expected(known_versions.v2)
    again = lance_project.plan_json("--refresh", "full")
    assert again["interrupted"] is None and again["changes"] == {"add": 0, "update": 0, "delete": 0}


def test_lancedb_kill_before_result_is_recorded_by_the_next_apply(lance_project: Project, known_versions: KnownVersions) -> None:
    assert killed(lance_project.vectorops("apply", "--auto-approve", failpoint="before-result"))
    assert lance_content(lance_project) == expected(known_versions.v2)  # the one commit landed

    plan = lance_project.plan_json()
    assert plan["interrupted"]["version"] == "v2"
    assert plan["current"]["version"] == "v1"
    assert plan["changes"] == {"add": 0, "update": 0, "delete": 0}  # nothing left to write, only the record
    assert (plan["drift"]["missing"], plan["drift"]["unexpected"], plan["drift"]["modified"]) == (0, 0, 0)

    assert lance_project.vectorops("apply", "--auto-approve").returncode == 0
    status = json.loads(lance_project.vectorops("status", "--json").stdout)["environments"][0]
    assert status["status"] == "Synced" and status["interrupted"] is None


def test_lancedb_kill_between_the_upsert_and_the_delete_commit(lance_project: Project, known_versions: KnownVersions) -> None:
    assert killed(lance_project.vectorops("apply", "--auto-approve", failpoint="mid-write"))
    content = lance_content(lance_project)
    v1, v2 = expected(known_versions.v1), expected(known_versions.v2)
    assert {i: content[i] for i in v2} == v2  # every upsert landed in one commit...
    assert set(content) - set(v2) == set(v1) - set(v2) and len(set(v1) - set(v2)) == 30  # ...no delete yet

    plan = lance_project.plan_json()
    assert plan["interrupted"]["version"] == "v2" and plan["drift"]["level"] == "full"
    assert plan["changes"] == {"add": 0, "update": 0, "delete": 30}
    assert (plan["drift"]["missing"], plan["drift"]["unexpected"], plan["drift"]["modified"]) == (0, 0, 0)

    assert lance_project.vectorops("apply", "--auto-approve").returncode == 0
    assert lance_content(lance_project) == v2


def test_lancedb_first_apply_fills_the_empty_table_in_one_commit(tmp_path: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions) -> None:
    project = Project(tmp_path / "project", dataset_repo, LANCE)
    project.pin("v1")
    small = {"VECTOROPS_WRITE_BATCH": "100"}  # ten batches from the dataset, still one commit
    assert killed(project.vectorops("apply", "--auto-approve", failpoint="mid-write", **small))
    assert lance_content(project) == {}  # nothing committed: the stream never finished

    plan = project.plan_json()
    assert plan["interrupted"]["version"] == "v1" and plan["changes"] == {"add": 1000, "update": 0, "delete": 0}
    assert project.vectorops("apply", "--auto-approve", **small).returncode == 0
    assert lance_content(project) == expected(known_versions.v1)
    table = lancedb.connect(str(project.folder / "db")).open_table("docs")
    assert table.stats()["fragment_stats"]["num_fragments"] == 1  # one add, not one per batch of 100


def test_lancedb_kill_mid_batch_when_too_big_for_one_step(lance_project: Project, known_versions: KnownVersions) -> None:
    small = {"VECTOROPS_SINGLE_STEP_LIMIT_BYTES": "0", "VECTOROPS_WRITE_BATCH": "40"}
    assert killed(lance_project.vectorops("apply", "--auto-approve", failpoint="mid-write", **small))
    content = lance_content(lance_project)
    assert content != expected(known_versions.v1) and content != expected(known_versions.v2)  # half-way

    plan = lance_project.plan_json()
    assert plan["interrupted"]["version"] == "v2"
    assert plan["drift"]["level"] == "full"  # read at full to finish exactly
    assert (plan["drift"]["missing"], plan["drift"]["unexpected"], plan["drift"]["modified"]) == (0, 0, 0)
    assert 0 < plan["changes"]["add"] + plan["changes"]["update"] < 165

    assert lance_project.vectorops("apply", "--auto-approve", **small).returncode == 0
    assert lance_content(lance_project) == expected(known_versions.v2)


# -- Pinecone: writes are batches, not one commit -------------------------------------------------------


@pytest.mark.parametrize("failpoint", ["after-intent", "mid-write", "before-result"])
def test_pinecone_kill_then_next_apply_ends_exact(
    failpoint: str, tmp_path: Path, dataset_repo: DatasetRepo, pinecone_server: PineconeServer, known_versions: KnownVersions
) -> None:
    project = Project(tmp_path / "project", dataset_repo, PINECONE)
    project.pin("v1")
    first = project.vectorops("apply", "--auto-approve")
    assert first.returncode == 0, first.stderr
    project.pin("v2")
    assert killed(project.vectorops("apply", "--auto-approve", failpoint=failpoint, VECTOROPS_WRITE_BATCH="30"))

    plan = project.plan_json()
    assert plan["interrupted"]["version"] == "v2"
    assert (plan["drift"]["missing"], plan["drift"]["unexpected"], plan["drift"]["modified"]) == (0, 0, 0)

    result = project.vectorops("apply", "--auto-approve", VECTOROPS_WRITE_BATCH="30")
    assert result.returncode == 0, result.stderr
    stored = pinecone_server.index("crash-test").namespaces["__default__"].records
    got = {i: (np.asarray(v, np.float32).tobytes(), m) for i, (v, m) in stored.items()}
    assert got == expected(known_versions.v2)
    assert project.plan_json("--refresh", "full")["changes"] == {"add": 0, "update": 0, "delete": 0}


# -- locks ---------------------------------------------------------------------------------------------


def _plant_lock(project: Project, **fields: Any) -> Lock:
    dest = LanceDBDestination(uri=str(project.folder / "db"), table="docs")
    lock = Lock(
        id="lock-1234",
        owner="someone@elsewhere",
        operation="apply",
        acquired_at=iso(now()),
        expires_at=iso(now() + timedelta(seconds=60)),
        **fields,
    )
    dest.write_doc("lock", lock.model_dump(mode="json"))
    return lock


def test_live_lock_of_another_machine_refuses_with_holder_and_id(lance_project: Project) -> None:
    _plant_lock(lance_project, host="other-host", pid=1)
    result = lance_project.vectorops("apply", "--auto-approve")
    assert result.returncode == 1
    assert "someone@elsewhere" in result.stderr and "lock-1234" in result.stderr and "expires" in result.stderr
    assert "Traceback" not in result.stderr
    assert "force-unlock" in result.stderr


def test_expired_lease_is_taken_over_without_human_action(lance_project: Project, known_versions: KnownVersions) -> None:
    dest = LanceDBDestination(uri=str(lance_project.folder / "db"), table="docs")
    stale = Lock(
        id="old-lock", owner="crashed@ci", operation="apply",
        acquired_at=iso(now() - timedelta(minutes=5)), expires_at=iso(now() - timedelta(seconds=1)), host="other-host", pid=1,
    )
    dest.write_doc("lock", stale.model_dump(mode="json"))
    assert lance_project.vectorops("apply", "--auto-approve").returncode == 0
    assert lance_content(lance_project) == expected(known_versions.v2)
    assert StateStore(dest).current_lock() is None


def test_two_concurrent_applies_never_both_write(lance_project: Project, known_versions: KnownVersions) -> None:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "reconciler", "-m", str(lance_project.manifest), "apply", "--auto-approve"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0, outcomes
    assert lance_content(lance_project) == expected(known_versions.v2)
    history = json.loads(lance_project.vectorops("history", "staging", "--json").stdout)["history"]
    assert [h["to"]["version"] for h in history] == ["v2", "v1"]  # the v1→v2 apply happened exactly once
    if codes[1] == 1:
        loser = outcomes[[p.returncode for p in procs].index(1)][1]
        assert "locked" in loser or "stale" in loser or "took the lock" in loser
