"""`force-unlock` of a running apply never mixes content (issue 15 item 4).

A applies v2 and is held mid-write (between its upsert commit and its delete commit) by a pause
failpoint. Its lock is force-unlocked, and B applies v1 to the same table: B's plan sees A's intent
and reads the records A was writing at full, so B ends with v1 exactly. When A resumes, it must
find its lock gone before its next write, stop, and exit 1 saying so; the content stays v1 exactly
and a default `plan` calls it clean. Two real processes (`python -m reconciler`), real LanceDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lancedb
import numpy as np
import pytest

from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo

ENV = "staging"


def vectorops(manifest: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "VECTOROPS_FAILPOINT"}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", *args],
        capture_output=True, text=True, env={**full, **env}, timeout=180,
    )


def content(db: Path) -> dict[str, tuple[bytes, dict]]:
    table = lancedb.connect(str(db)).open_table("docs").to_arrow()
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().astype(np.float32).reshape(-1, 16)
    return {i: (vectors[n].tobytes(), json.loads(m)) for n, (i, m) in enumerate(zip(table.column("id").to_pylist(), table.column("metadata").to_pylist(), strict=False))}


def expected(records: list[dict]) -> dict[str, tuple[bytes, dict]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the paused apply exited early ({proc.returncode}): {proc.communicate()}")
        assert time.monotonic() < deadline, "the apply never reached its pause point"
        time.sleep(0.05)


def test_force_unlocked_apply_stops_before_its_next_write_and_content_stays_exact(
    tmp_path: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions
) -> None:
    project = tmp_path / "project"
    destination = lancedb_destination("docs")  # uri "db", in the project folder: both manifests share it
    a = write_manifest(project / "a.yaml", {ENV: environment("v2", destination)}, repo=dataset_repo.root)
    b = write_manifest(project / "b.yaml", {ENV: environment("v1", destination)}, repo=dataset_repo.root)
    assert vectorops(b, "apply", "--auto-approve").returncode == 0
    v1 = expected(known_versions.v1)

    pause = tmp_path / "pause"
    env = {**os.environ, "VECTOROPS_FAILPOINT": "pause:mid-write", "VECTOROPS_FAILPOINT_FILE": str(pause)}
    proc_a = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "-m", str(a), "--no-color", "apply", "--auto-approve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        wait_for(pause.with_name("pause.reached"), proc_a)  # A's upserts of v2 are committed, its deletes not yet

        status = json.loads(vectorops(b, "status", "--json").stdout)["environments"][0]
        lock_id = status["lock"]["lock_id"]  # status --json gives the lock as fields
        unlocked = vectorops(b, "force-unlock", ENV, lock_id)
        assert unlocked.returncode == 0, unlocked.stderr

        plan_b = json.loads(vectorops(b, "plan", "--json").stdout)["environments"][0]
        assert plan_b["interrupted"]["version"] == "v2" and plan_b["drift"]["level"] == "full"  # A's records are suspect
        applied_b = vectorops(b, "apply", "--auto-approve", "--allow-deletes")
        assert applied_b.returncode == 0, applied_b.stderr
        assert content(project / "db") == v1
    finally:
        pause.with_name("pause.resume").touch()
    out_a, err_a = proc_a.communicate(timeout=180)

    assert proc_a.returncode == 1, f"A must fail once its lock is gone:\n{out_a}\n{err_a}"
    assert "lost its lock" in err_a and "force-unlocked" in err_a and "stopped before its next write" in err_a, err_a
    assert "Traceback" not in err_a
    assert content(project / "db") == v1, "A wrote after losing its lock"

    clean = json.loads(vectorops(b, "plan", "--json").stdout)["environments"][0]
    assert clean["interrupted"] is None and clean["changes"] == {"add": 0, "update": 0, "delete": 0}
    assert vectorops(b, "plan", "--detailed-exitcode").returncode == 0
    full = json.loads(vectorops(b, "plan", "--json", "--refresh", "full").stdout)["environments"][0]
    assert full["changes"] == {"add": 0, "update": 0, "delete": 0} and full["drift"]["modified"] == 0
    status = json.loads(vectorops(b, "status", "--json").stdout)["environments"][0]
    assert status["status"] == "Synced" and status["deployed"]["version"] == "v1" and status["lock"] is None
    history = json.loads(vectorops(b, "history", ENV, "--json").stdout)["history"]
    # B's apply, then A's cut-off apply (history lists applies that never finished, issue 14), then the first
    assert [h["to"]["version"] for h in history] == ["v1", "v2", "v1"]
    assert history[0]["result"] == "success" and history[1]["result"] != "success"  # A recorded no result


def test_a_write_longer_than_the_lease_keeps_its_lock(tmp_path: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions) -> None:
    """The check before each write must not turn a long write into a lost lock: while this process's
    own write holds the destination's critical section, the heartbeat still renews the lease.
    Here the first apply's one-commit fill is held for three leases (a lease of 2 s)."""
    manifest = write_manifest(tmp_path / "project" / "vectorops.yaml", {ENV: environment("v1", lancedb_destination("docs"))}, repo=dataset_repo.root)
    pause = tmp_path / "pause"
    env = {**os.environ, "VECTOROPS_FAILPOINT": "pause:mid-write", "VECTOROPS_FAILPOINT_FILE": str(pause),
           "VECTOROPS_LOCK_LEASE_SECONDS": "2", "VECTOROPS_WRITE_BATCH": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", "apply", "--auto-approve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        wait_for(pause.with_name("pause.reached"), proc)  # inside the fill, which is one fenced write
        time.sleep(6)
    finally:
        pause.with_name("pause.resume").touch()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"{out}\n{err}"
    assert content(tmp_path / "project" / "db") == expected(known_versions.v1)
