"""End-to-end through the `vectorops` CLI against real LanceDB in temp folders (issue 3).

Every test drives the CLI the way a user does (``main(argv)`` in-process, so exit codes are the
ones the console script returns) and then checks what LanceDB really holds by opening the table
with ``lancedb`` directly: ids, vectors bit-exact as float32, metadata equal to the dataset's.

The dataset repo (v1 and v2 from ``known_versions``, plus v3 that deletes 20% of v2 for the
delete guard) is built once per module and only read; each test has its own manifest and
LanceDB folder.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import zipfile
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo

TABLE = "docs_staging"
V3_DELETES = 220  # of v2's 1090 records: 20%, over the default 10% guard




@pytest.fixture(scope="module")
def versions_repo(tmp_path_factory: pytest.TempPathFactory, dataset_repo: DatasetRepo, known_versions: KnownVersions) -> DatasetRepo:
    """The shared v1/v2 repo plus tag v3 (v2 minus ``V3_DELETES`` records); read-only for tests."""
    repo = dataset_repo.copy(tmp_path_factory.mktemp("cli-lancedb"))
    repo.commit_version(known_versions.v2[V3_DELETES:], tag="v3")
    return repo


def records_by_id(records: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], dtype=np.float32), {k: v for k, v in r.items() if k not in ("id", "vector")})
        for r in records
    }


class Workspace:
    """A manifest in its own folder pointing at the module's dataset repo, and its LanceDB."""

    def __init__(self, folder: Path, repo: DatasetRepo) -> None:
        self.folder = folder
        self.repo = repo
        self.manifest = folder / "vectorops.yaml"
        self.db_uri = folder / "db"
        self.pin("v1")

    def pin(self, version: str, *, prune: bool = True, max_delete_fraction: float | None = None) -> None:
        policy: dict[str, bool | float] = {"prune": prune}
        if max_delete_fraction is not None:
            policy["max_delete_fraction"] = max_delete_fraction
        staging = environment(version, lancedb_destination(TABLE), policy=policy)
        write_manifest(self.manifest, {"staging": staging}, repo=self.repo.root)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_vectorops("-m", str(self.manifest), "--no-color", *args, env=env)

    def ok(self, *args: str, code: int = 0) -> Result:
        result = self.run(*args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    # -- what LanceDB really holds -------------------------------------------------------------

    def table(self) -> Any:
        return lancedb.connect(str(self.db_uri)).open_table(TABLE)

    def table_version(self) -> int | None:
        db = lancedb.connect(str(self.db_uri))
        return db.open_table(TABLE).version if TABLE in list(getattr(db.list_tables(), "tables", [])) else None

    def content(self) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        t = self.table().to_arrow()
        ids = t.column("id").to_pylist()
        vectors = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(ids), -1)
        metadata = [json.loads(m) for m in t.column("metadata").to_pylist()]
        assert len(set(ids)) == len(ids), "duplicate ids in the table"
        return {i: (vectors[n], metadata[n]) for n, i in enumerate(ids)}

    def assert_content(self, records: list[dict[str, Any]]) -> None:
        got = self.content()
        want = records_by_id(records)
        assert sorted(got) == sorted(want)
        for rid, (vector, metadata) in want.items():
            gv, gm = got[rid]
            assert gv.dtype == np.float32
            assert gv.tobytes() == vector.tobytes(), f"vector of {rid} differs"
            assert gm == metadata, f"metadata of {rid} differs"

    def history_count(self) -> int:
        return len(self.ok("history", "staging", "--json").json["history"])


@pytest.fixture
def ws(tmp_path: Path, versions_repo: DatasetRepo) -> Workspace:
    folder = tmp_path / "project"
    folder.mkdir()
    return Workspace(folder, versions_repo)


@pytest.fixture
def ws_v1(ws: Workspace) -> Workspace:
    """A workspace whose staging table holds v1, applied through the CLI."""
    ws.ok("apply", "--auto-approve")
    return ws


# -- plan and apply ------------------------------------------------------------------------------


def test_first_apply_writes_v1_exactly(ws: Workspace, known_versions: KnownVersions) -> None:
    plan = ws.ok("plan", "--json").json
    env = plan["environments"][0]
    assert env["current"] is None
    assert env["changes"] == {"add": 1000, "update": 0, "delete": 0}
    assert ws.table_version() is None  # plan writes nothing

    result = ws.ok("apply", "--auto-approve")
    assert "applied v1" in result.stdout
    ws.assert_content(known_versions.v1)


def test_incremental_apply_is_exact_and_json_plan_matches_spec(ws_v1: Workspace, known_versions: KnownVersions, versions_repo: DatasetRepo) -> None:
    ws = ws_v1
    ws.pin("v2")
    plan = ws.ok("plan", "--json").json
    assert {"format_version", "has_changes", "environments"} <= set(plan)
    assert plan["format_version"] == "1" and plan["has_changes"] is True
    (env,) = plan["environments"]
    assert {"name", "dataset", "destination", "current", "desired", "changes", "drift", "blocked", "samples"} <= set(env)
    v1, v2 = versions_repo.versions[0], versions_repo.versions[1]
    assert env["name"] == "staging" and env["dataset"] == "docs"
    assert env["destination"] == f"lancedb:db#{TABLE}"
    assert env["current"] == {"version": "v1", "commit": v1.commit, "digest": v1.digest}
    assert env["desired"] == {"version": "v2", "commit": v2.commit, "digest": v2.digest}
    assert env["changes"] == {"add": 120, "update": 45, "delete": 30}
    assert env["drift"] == {"level": "ids", "expected_count": 1000, "actual_count": 1000, "missing": 0, "unexpected": 0, "modified": None}
    assert env["blocked"] is None
    for key, expected in (("add", known_versions.added), ("update", known_versions.updated), ("delete", known_versions.deleted)):
        assert 0 < len(env["samples"][key]) <= 10
        assert set(env["samples"][key]) <= expected

    human = ws.ok("plan").stdout
    assert "v1 (" in human and "→ v2 (" in human
    assert "+     120 to add" in human and "~      45 to update" in human and "-      30 to delete" in human
    assert "Plan: 120 to add, 45 to update, 30 to delete" in human

    ws.ok("apply", "--auto-approve")
    ws.assert_content(known_versions.v2)


def test_detailed_exitcode(ws_v1: Workspace) -> None:
    ws = ws_v1
    result = ws.ok("plan", "--detailed-exitcode")
    assert "No changes" in result.stdout
    ws.ok("plan", "--detailed-exitcode", "--json")  # exit 0
    ws.pin("v2")
    ws.ok("plan", "--detailed-exitcode", code=2)
    assert ws.ok("plan", "--json").json["has_changes"] is True  # without the flag: 0


def test_detailed_exitcode_is_2_for_drift_that_changes_nothing(ws: Workspace) -> None:
    """SPEC §3: 2 when there are changes or drift. Issue 14 item 3: drift that plans no change
    (a foreign id under prune: false; a count difference at --refresh stats) printed "No changes", exit 0."""
    ws.pin("v1", prune=False)
    ws.ok("apply", "--auto-approve")
    ws.ok("plan", "--detailed-exitcode")
    ws.table().add([{"id": "foreign-1", "vector": [0.5] * 16, "metadata": "{}"}])

    for refresh in ("ids", "stats"):
        plan = ws.ok("plan", "--refresh", refresh, "--json", "--detailed-exitcode", code=2).json
        env = plan["environments"][0]
        assert env["changes"] == {"add": 0, "update": 0, "delete": 0} and env["drift"]["unexpected"] == 1
        assert (plan["has_changes"], plan["has_drift"]) == (False, True)
        text = ws.ok("plan", "--refresh", refresh, "--detailed-exitcode", code=2).stdout
        assert "No changes" in text and "Drift found in staging." in text
    assert ws.ok("plan", "--json").json["has_drift"] is True  # without the flag: 0
    ws.ok("drift", code=2)  # drift agrees


def test_usage_errors_exit_1_not_2(ws: Workspace) -> None:
    result = ws.run("plan", "--no-such-flag")
    assert result.code == 1
    assert "no-such-flag" in result.stderr
    assert ws.run("history").code == 1  # missing argument


def test_saved_plan_show_and_apply(ws_v1: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws = ws_v1
    ws.pin("v2")
    planfile = tmp_path / "staging.plan"
    made = ws.ok("plan", "--json", "-o", str(planfile)).json
    assert planfile.is_file()
    shown = ws.ok("show", "--json", str(planfile)).json
    assert shown == made
    human_plan = ws.ok("plan", "-o", str(tmp_path / "other.plan")).stdout
    human_show = ws.ok("show", str(planfile)).stdout
    # same plan rendering (ids and counts), minus plan's closing "Saved the plan" note
    assert human_show.strip() == human_plan.split("\nSaved the plan")[0].strip()

    ws.pin("v1")  # the saved plan is applied exactly, whatever the manifest's pin says now
    result = ws.ok("apply", str(planfile))
    assert "Apply?" not in result.stdout + result.stderr
    ws.assert_content(known_versions.v2)
    assert ws.ok("history", "staging", "--json").json["history"][0]["plan_id"] == made["plan_id"]


def test_stale_saved_plan_is_refused(ws_v1: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws = ws_v1
    ws.pin("v2")
    first, second = tmp_path / "first.plan", tmp_path / "second.plan"
    ws.ok("plan", "-o", str(first))
    ws.ok("plan", "-o", str(second))
    ws.ok("apply", str(first))
    version, applies = ws.table_version(), ws.history_count()

    result = ws.run("apply", str(second))
    assert result.code == 1
    assert "stale" in result.stderr
    assert ws.table_version() == version
    assert ws.history_count() == applies
    ws.assert_content(known_versions.v2)


def test_apply_without_terminal_or_auto_approve_refuses(ws: Workspace) -> None:
    result = ws.run("apply")
    assert result.code == 1
    assert "no terminal" in result.stderr and "--auto-approve" in result.stderr
    assert ws.table_version() is None  # nothing written, not even the table

    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    version = ws.table_version()
    assert ws.run("apply").code == 1
    assert ws.table_version() == version
    assert ws.ok("status", "--json").json["environments"][0]["deployed"]["version"] == "v1"


# -- policy --------------------------------------------------------------------------------------


def test_delete_guard_blocks_and_allow_deletes_passes(ws: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.pin("v3")
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["changes"] == {"add": 0, "update": 0, "delete": V3_DELETES}
    assert plan["blocked"] and "max_delete_fraction" in plan["blocked"] and "--allow-deletes" in plan["blocked"]
    assert "blocked" in ws.ok("plan").stdout

    version, applies = ws.table_version(), ws.history_count()
    result = ws.run("apply", "--auto-approve")
    assert result.code == 1
    assert "blocked" in result.stderr
    assert ws.table_version() == version and ws.history_count() == applies
    ws.assert_content(known_versions.v2)

    # a saved plan made without approval stays blocked; one made with --allow-deletes carries it
    blocked_plan, approved_plan = tmp_path / "blocked.plan", tmp_path / "approved.plan"
    ws.ok("plan", "-o", str(blocked_plan))
    assert ws.run("apply", str(blocked_plan)).code == 1
    assert ws.table_version() == version
    ws.ok("plan", "--allow-deletes", "-o", str(approved_plan))
    assert ws.ok("show", "--json", str(approved_plan)).json["environments"][0]["blocked"] is None
    ws.ok("apply", str(approved_plan))
    ws.assert_content(known_versions.v2[V3_DELETES:])


def test_allow_deletes_on_apply(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.pin("v3")
    ws.ok("apply", "--auto-approve", "--allow-deletes")
    ws.assert_content(known_versions.v2[V3_DELETES:])


def test_prune_false_never_deletes(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.pin("v1", prune=False)
    ws.ok("apply", "--auto-approve")
    ws.pin("v2", prune=False)
    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["changes"] == {"add": 120, "update": 45, "delete": 0}
    assert any("prune" in w for w in env.get("warnings", []))
    ws.ok("apply", "--auto-approve")
    kept = [r for r in known_versions.v1 if r["id"] in known_versions.deleted]
    ws.assert_content(known_versions.v2 + kept)
    ws.pin("v3", prune=False)  # would delete 20%: with prune off it deletes nothing and is not blocked
    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["changes"]["delete"] == 0 and env["blocked"] is None


# -- state: history, status, versions, locks -----------------------------------------------------


def test_history_records_every_apply(ws: Workspace, versions_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECTOROPS_ACTOR", "alice@example.org")
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.ok("apply", "--auto-approve")  # nothing to do: not an apply that writes, not in history
    entries = ws.ok("history", "staging", "--json").json["history"]
    assert len(entries) == 2
    newest, oldest = entries
    v1, v2 = versions_repo.versions[0], versions_repo.versions[1]
    assert oldest["from"] is None
    assert oldest["to"] == {"version": "v1", "commit": v1.commit, "digest": v1.digest}
    assert oldest["counts"] == {"add": 1000, "update": 0, "delete": 0}
    assert newest["from"] == {"version": "v1", "commit": v1.commit, "digest": v1.digest}
    assert newest["to"] == {"version": "v2", "commit": v2.commit, "digest": v2.digest}
    assert newest["counts"] == {"add": 120, "update": 45, "delete": 30}
    assert all(e["actor"] == "alice@example.org" and e["result"] == "success" for e in entries)
    assert newest["serial"] > oldest["serial"]
    assert len(ws.ok("history", "staging", "--json", "--limit", "1").json["history"]) == 1
    human = ws.ok("history", "staging").stdout
    assert "v1 → v2" in human and "+120 ~45 -30" in human and "alice@example.org" in human


def test_status_synced_and_out_of_sync(ws: Workspace) -> None:
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["status"] == "OutOfSync" and row["deployed"] is None
    ws.ok("apply", "--auto-approve")
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["status"] == "Synced"
    assert row["deployed"]["version"] == row["desired"]["version"] == "v1"
    assert row["records"] == 1000
    assert "Synced" in ws.ok("status").stdout
    ws.pin("v2")
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["status"] == "OutOfSync"
    assert (row["deployed"]["version"], row["desired"]["version"]) == ("v1", "v2")
    assert "OutOfSync" in ws.ok("status").stdout


def test_versions_newest_first(ws: Workspace, versions_repo: DatasetRepo) -> None:
    rows = ws.ok("versions", "docs", "--json").json["versions"]
    tagged = [r for r in rows if r["tags"]]
    assert [r["tags"] for r in tagged] == [["v3"], ["v2"], ["v1"]]
    assert [r["records"] for r in tagged] == [1090 - V3_DELETES, 1090, 1000]
    assert [r["digest"] for r in tagged] == [v.digest for v in reversed(versions_repo.versions)]
    text = ws.ok("versions", "docs").stdout
    assert text.index("v3") < text.index("v2") < text.index("v1")
    assert ws.ok("versions", "--json").json["versions"] == rows  # the manifest's one dataset


def test_versions_without_a_dataset_asks_which_when_there_are_several(ws: Workspace) -> None:
    import yaml

    doc = yaml.safe_load(ws.manifest.read_text())
    doc["datasets"]["faq"] = doc["datasets"]["docs"]
    ws.manifest.write_text(yaml.safe_dump(doc))
    result = ws.run("versions")
    assert result.code == 1 and "which dataset? vectorops.yaml defines 2: docs, faq" in result.stderr
    assert "vectorops versions docs" in result.stderr and "Traceback" not in result.output


def _hold_lock(ws: Workspace, owner: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from reconciler.engine.state import StateStore
    from reconciler.providers.lancedb import LanceDBDestination

    monkeypatch.setenv("VECTOROPS_ACTOR", owner)
    lock = StateStore(LanceDBDestination(uri=str(ws.db_uri), table=TABLE)).acquire("apply")
    monkeypatch.setenv("VECTOROPS_ACTOR", "tester@ci")
    return lock.id


def test_apply_while_locked_names_the_holder_and_writes_nothing(ws_v1: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = ws_v1
    lock_id = _hold_lock(ws, "bob@laptop", monkeypatch)
    ws.pin("v2")
    version = ws.table_version()
    result = ws.run("apply", "--auto-approve")
    assert result.code == 1
    assert "bob@laptop" in result.stderr and lock_id in result.stderr
    assert ws.table_version() == version
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["lock"]["owner"] == "bob@laptop" and row["lock"]["lock_id"] == lock_id and row["deployed"]["version"] == "v1"


def test_force_unlock(ws_v1: Workspace, known_versions: KnownVersions, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = ws_v1
    lock_id = _hold_lock(ws, "bob@laptop", monkeypatch)
    wrong = ws.run("force-unlock", "staging", "not-the-lock-id")
    assert wrong.code == 1
    assert "does not match" in wrong.stderr and lock_id in wrong.stderr
    assert ws.ok("status", "--json").json["environments"][0]["lock"] is not None

    released = ws.ok("force-unlock", "staging", lock_id)
    assert "Released" in released.stdout
    assert ws.ok("status", "--json").json["environments"][0]["lock"] is None
    assert ws.run("force-unlock", "staging", lock_id).code == 1  # nothing left to unlock
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.assert_content(known_versions.v2)


# -- drift and rollback --------------------------------------------------------------------------


def test_drift_detected_at_ids_and_full_and_repaired(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.ok("drift")  # exit 0: nothing changed yet

    # change the table behind vectorops' back: 5 rows deleted, one foreign id, one vector modified
    table = ws.table()
    v2 = sorted(known_versions.v2, key=lambda r: r["id"])
    removed = [r["id"] for r in v2[:5]]
    modified = v2[10]["id"]
    table.delete("id IN (" + ", ".join(f"'{i}'" for i in removed) + ")")
    table.add([{"id": "foreign-1", "vector": [0.5] * 16, "metadata": "{}"}])
    table.update(where=f"id = '{modified}'", values={"vector": [0.25] * 16})

    ids = ws.ok("drift", "--json", code=2).json
    assert ids["has_drift"] is True
    drift = ids["environments"][0]["drift"]
    assert drift == {"level": "ids", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": None}
    assert sorted(ids["environments"][0]["samples"]["missing"]) == sorted(removed)
    assert ids["environments"][0]["samples"]["unexpected"] == ["foreign-1"]

    full = ws.ok("drift", "--refresh", "full", "--json", code=2).json["environments"][0]
    assert full["drift"] == {"level": "full", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": 1}
    assert full["samples"]["modified"] == [modified]
    text = ws.ok("drift", "--refresh", "full", code=2).stdout
    assert "5 missing" in text and "1 unexpected" in text and "1 modified" in text
    stats = ws.ok("drift", "--refresh", "stats", "--json", code=2).json["environments"][0]["drift"]
    assert (stats["missing"], stats["unexpected"]) == (4, 0)  # counts only: 1090 expected, 1086 present

    plan = ws.ok("plan", "--refresh", "full", "--json").json["environments"][0]
    assert plan["changes"] == {"add": 5, "update": 1, "delete": 1}
    ws.ok("apply", "--auto-approve", "--refresh", "full")
    ws.assert_content(known_versions.v2)
    ws.ok("drift", "--refresh", "full")


def test_rollback_returns_to_v1_exactly(ws_v1: Workspace, known_versions: KnownVersions) -> None:
    ws = ws_v1
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    assert ws.run("rollback", "staging").code == 1  # no terminal, no --auto-approve
    ws.assert_content(known_versions.v2)
    ws.ok("rollback", "staging", "--auto-approve")
    ws.assert_content(known_versions.v1)
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["deployed"]["version"] == "v1" and row["status"] == "OutOfSync"  # the manifest still pins v2
    newest = ws.ok("history", "staging", "--json").json["history"][0]
    assert newest["operation"] == "rollback"
    assert (newest["from"]["version"], newest["to"]["version"]) == ("v2", "v1")
    assert newest["counts"] == {"add": 30, "update": 45, "delete": 120}


# -- no values or secrets in plans -------------------------------------------------------------


def _all_bytes(planfile: Path) -> list[bytes]:
    """The plan file's raw bytes, every member decompressed (it is a zip), and its id tables as text."""
    import pyarrow.parquet as pq

    raw = planfile.read_bytes()
    blobs = [raw]
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            blobs.append(data)
            if name.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(data))
                assert table.column_names == ["op", "id"]  # ids only: no vector or metadata columns
                blobs.append(json.dumps(table.to_pylist()).encode())
    return blobs


def test_plan_file_holds_no_vector_or_metadata_values(ws_v1: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws = ws_v1
    ws.pin("v2")
    planfile = tmp_path / "staging.plan"
    printed = ws.ok("plan", "--json", "-o", str(planfile)).stdout
    updated = min(known_versions.updated_metadata)
    record = next(r for r in known_versions.v2 if r["id"] == updated)
    vector = np.asarray(record["vector"], dtype=np.float32)
    needles = [
        record["title"].encode(),  # "Document N (revised)"
        b"Document ",
        b"revised",
        vector.tobytes(),
        vector[:4].tobytes(),
        repr(float(vector[0])).encode(),
        f"{float(vector[0]):.6f}".encode(),
    ]
    blobs = _all_bytes(planfile) + [printed.encode()]
    for blob in blobs:
        for needle in needles:
            assert needle not in blob, f"plan contains {needle!r}"
    assert any(f'"{updated}"'.encode() in blob for blob in blobs[1:])  # its id is there: the scan can see text


def test_manifest_from_another_folder(ws_v1: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative LanceDB uris resolve against the manifest's folder, not the working directory."""
    ws = ws_v1
    monkeypatch.chdir(tmp_path)
    assert ws.ok("status", "--json").json["environments"][0]["status"] == "Synced"
    assert not (tmp_path / "db").exists() or (tmp_path / "db") == ws.db_uri
    assert os.path.isdir(ws.db_uri)
