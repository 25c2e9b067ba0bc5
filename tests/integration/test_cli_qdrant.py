"""End-to-end through the `vectorops` CLI against Qdrant, in qdrant-client's embedded local mode.

A Qdrant server cannot be installed here, so the destination is ``path:`` (Qdrant's own embedded
implementation in qdrant-client); the provider reaches it through the same client calls it sends
to a server. The CLI runs in-process (``main(argv)``), and changes made "behind vectorops' back"
go through qdrant-client itself. The collection is a Cosine one (the manifests' default metric),
so every exact comparison below also covers Qdrant's normalisation of stored vectors.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("qdrant_client")

from qdrant_client import models  # noqa: E402

from fixtures.cli import Result, run_vectorops  # noqa: E402
from fixtures.manifests import environment, qdrant_destination, write_manifest  # noqa: E402
from fixtures.records import KnownVersions  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from reconciler.providers.qdrant import ID_FIELD, _LocalClients, point_id  # noqa: E402

COLLECTION = "docs_prod"
STATE = f"_vectorops_state__{COLLECTION}"


def by_id(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


class Workspace:
    """A manifest whose `prod` environment is a Qdrant collection in a local-mode folder."""

    def __init__(self, folder: Path, repo: DatasetRepo, qdrant: Path, metric: str = "cosine") -> None:
        self.folder, self.repo, self.qdrant, self.metric = folder, repo, qdrant, metric
        self.manifest = folder / "vectorops.yaml"
        self.results: list[Result] = []
        self.destination: dict[str, Any] = qdrant_destination(COLLECTION, path=qdrant)
        self.pin("v1")

    def pin(self, version: str, **extra: Any) -> None:
        env = environment(version, self.destination, **extra)
        write_manifest(self.manifest, {"prod": env}, repo=self.repo.root, metric=self.metric)

    def run(self, *args: str) -> Result:
        result = run_vectorops("-m", str(self.manifest), "--no-color", *args)
        self.results.append(result)
        return result

    def ok(self, *args: str, code: int = 0) -> Result:
        result = self.run(*args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """qdrant-client on the folder (local mode allows one client per folder and process: the one
        the CLI runs opened, shared)."""
        client = _LocalClients.acquire(str(self.qdrant))
        try:
            yield client
        finally:
            _LocalClients.release(str(self.qdrant))

    def stored(self) -> dict[str, tuple[bytes, dict[str, Any]]]:
        """What vectorops would export: ids, the dataset's float32 (as kept in the payload for a
        Cosine collection, checked against the stored normalised vector) and metadata."""
        from reconciler.providers.qdrant import QdrantDestination

        dest = QdrantDestination(collection=COLLECTION, path=str(self.qdrant))
        try:
            out = {}
            for batch in dest.iter_records():
                for vid, vec, md in zip(batch.id_list, batch.vectors, batch.metadata_rows(), strict=False):
                    out[vid] = (vec.tobytes(), md)
            return out
        finally:
            dest.close()

    def assert_content(self, records: list[dict[str, Any]]) -> None:
        got, want = self.stored(), by_id(records)
        assert sorted(got) == sorted(want)
        assert got == want


@pytest.fixture
def ws(tmp_path: Path, dataset_repo: DatasetRepo, qdrant_folder: Path) -> Iterator[Workspace]:
    folder = tmp_path / "project"
    folder.mkdir()
    yield Workspace(folder, dataset_repo, qdrant_folder)
    _LocalClients.close_all()  # whatever a test still holds


# -- plan and apply ------------------------------------------------------------------------------


def test_first_and_incremental_apply_are_exact_and_full_refresh_sees_no_change(ws: Workspace, known_versions: KnownVersions) -> None:
    # Local mode normalises a Cosine collection's vectors in the client's memory and stores them as
    # sent; a Qdrant server keeps them normalised. Every command closes its destination, so the test
    # holds one client on the folder across commands (commands share it): each reads what a server
    # would return, normalised vectors included.
    with ws.client():
        env = ws.ok("plan", "--json").json["environments"][0]
        assert env["current"] is None and env["destination"] == f"qdrant:{ws.qdrant}#{COLLECTION}"
        assert env["changes"] == {"add": 1000, "update": 0, "delete": 0}
        with ws.client() as client:
            assert not client.collection_exists(COLLECTION) and not client.collection_exists(STATE)  # plan creates nothing

        ws.ok("apply", "--auto-approve")
        ws.assert_content(known_versions.v1)
        with ws.client() as client:
            params = client.get_collection(COLLECTION).config.params.vectors
            assert (params.size, params.distance) == (16, models.Distance.COSINE)
            assert client.count(COLLECTION).count == 1000  # state lives in its own collection
            assert client.collection_exists(STATE)
            some = known_versions.v1[0]
            point = client.retrieve(COLLECTION, ids=[point_id(some["id"])], with_vectors=True)[0]
            assert point.payload[ID_FIELD] == some["id"]
            assert not np.array_equal(np.float32(point.vector), np.float32(some["vector"]))  # Qdrant normalised it ...
        # ... yet an untouched Cosine collection shows nothing modified at full
        full = ws.ok("drift", "--refresh", "full", "--json").json["environments"][0]["drift"]
        assert (full["missing"], full["unexpected"], full["modified"]) == (0, 0, 0)
        ws.ok("plan", "--detailed-exitcode", "--refresh", "full")

        ws.pin("v2")
        env = ws.ok("plan", "--json", "--detailed-exitcode", code=2).json["environments"][0]
        assert env["changes"] == {"add": 120, "update": 45, "delete": 30}
        ws.ok("apply", "--auto-approve")
        ws.assert_content(known_versions.v2)
        ws.ok("plan", "--detailed-exitcode", "--refresh", "full")
        row = ws.ok("status", "--json").json["environments"][0]
        assert (row["status"], row["records"], row["deployed"]["version"]) == ("Synced", 1090, "v2")
        entries = ws.ok("history", "prod", "--json").json["history"]
        assert [(e["from"] and e["from"]["version"], e["to"]["version"]) for e in entries] == [("v1", "v2"), (None, "v1")]


def test_saved_plan_show_and_apply(ws: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    planfile = tmp_path / "prod.plan"
    made = ws.ok("plan", "--json", "-o", str(planfile)).json
    assert ws.ok("show", "--json", str(planfile)).json == made
    stale = tmp_path / "stale.plan"
    ws.ok("plan", "-o", str(stale))
    ws.ok("apply", str(planfile))
    ws.assert_content(known_versions.v2)
    refused = ws.run("apply", str(stale))
    assert refused.code == 1 and "stale" in refused.stderr
    ws.assert_content(known_versions.v2)


def test_drift_at_every_level_with_hand_changes_then_repaired(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    v2 = sorted(known_versions.v2, key=lambda r: r["id"])
    removed = [r["id"] for r in v2[:5]]
    vector_changed, metadata_changed = v2[10]["id"], v2[11]["id"]
    with ws.client() as client:
        client.delete(COLLECTION, points_selector=models.PointIdsList(points=[point_id(i) for i in removed]), wait=True)
        client.upsert(COLLECTION, points=[models.PointStruct(id=point_id("foreign-1"), vector=[0.5] * 16,
                                                              payload={ID_FIELD: "foreign-1", "who": "someone else"})], wait=True)
        client.update_vectors(COLLECTION, points=[models.PointVectors(id=point_id(vector_changed), vector=[0.25] * 15 + [1.0])], wait=True)
        client.set_payload(COLLECTION, payload={"title": "edited by hand"}, points=[point_id(metadata_changed)], wait=True)

    stats = ws.ok("drift", "--refresh", "stats", "--json", code=2).json["environments"][0]["drift"]
    assert stats == {"level": "stats", "expected_count": 1090, "actual_count": 1086, "missing": 4, "unexpected": 0, "modified": None}
    ids = ws.ok("drift", "--json", code=2).json["environments"][0]
    assert ids["drift"] == {"level": "ids", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": None}
    assert sorted(ids["samples"]["missing"]) == sorted(removed) and ids["samples"]["unexpected"] == ["foreign-1"]
    full = ws.ok("drift", "--refresh", "full", "--json", code=2).json["environments"][0]
    assert full["drift"] == {"level": "full", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": 2}
    assert sorted(full["samples"]["modified"]) == sorted([vector_changed, metadata_changed])

    assert ws.ok("plan", "--refresh", "full", "--json").json["environments"][0]["changes"] == {"add": 5, "update": 2, "delete": 1}
    ws.ok("apply", "--auto-approve", "--refresh", "full")
    ws.assert_content(known_versions.v2)
    ws.ok("drift", "--refresh", "full")


def test_rollback_returns_to_v1_exactly(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.ok("rollback", "prod", "--auto-approve")
    ws.assert_content(known_versions.v1)
    newest = ws.ok("history", "prod", "--json").json["history"][0]
    assert newest["operation"] == "rollback" and (newest["from"]["version"], newest["to"]["version"]) == ("v2", "v1")
    ws.ok("drift", "--refresh", "full")


def test_export_is_the_dataset_and_import_adopts_it(ws: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.ok("apply", "--auto-approve")
    out = tmp_path / "export.parquet"
    ws.ok("export", "prod", "--out", str(out))
    table = pq.read_table(out)
    exported = {
        i: (np.asarray(v, np.float32).tobytes(), {k: table.column(k)[n].as_py() for k in ("title", "chunk", "score", "flag", "tags")})
        for n, (i, v) in enumerate(zip(table.column("id").to_pylist(), table.column("vector").to_pylist(), strict=False))
    }
    want = by_id(known_versions.v1)
    assert {i: e[0] for i, e in exported.items()} == {i: w[0] for i, w in want.items()}  # the dataset's float32, not normalised

    with ws.client() as client:  # a team with the collection but no vectorops state
        client.delete_collection(STATE)
    drift = ws.ok("import", "prod", "--version", "v1", "--refresh", "full", "--json").json["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)
    ws.ok("import", "prod", "--version", "v1", "--refresh", "full", "--auto-approve")
    row = ws.ok("status", "--json").json["environments"][0]
    assert (row["status"], row["deployed"]["version"]) == ("Synced", "v1")


def test_canaries_query_the_collection(ws: Workspace, known_versions: KnownVersions) -> None:
    anchor = known_versions.v1[7]["id"]
    other = known_versions.v1[8]["id"]
    canaries = ws.folder / "canaries.yaml"
    canaries.write_text(f"top_k: 1\nqueries:\n  - name: anchor\n    vector_of: {anchor}\n    expect: [{anchor}]\n")
    ws.pin("v1", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    result = ws.ok("apply", "--auto-approve")
    assert "validation passed: 1/1 canary queries passed (100%, minimum 100%)" in result.stdout
    entry = ws.ok("history", "prod", "--json").json["history"][0]
    assert entry["validation"]["ok"] is True

    canaries.write_text(f"top_k: 1\nqueries:\n  - name: anchor\n    vector_of: {anchor}\n    expect: [{anchor}]\n"
                        f"  - name: wrong\n    vector_of: {anchor}\n    expect: [{other}]\n")
    ws.pin("v2", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    failed = ws.run("apply", "--auto-approve")
    assert failed.code == 1 and "1/2 canary queries passed (50%, minimum 100%)" in failed.stdout
    assert ws.ok("history", "prod", "--json").json["history"][0]["validation"]["ok"] is False


# -- bad input: one clear message, exit 1, nothing written ---------------------------------------


@pytest.mark.parametrize(("size", "distance", "says"), [
    (8, models.Distance.COSINE, "its dimension is 8 but the manifest declares 16"),
    (16, models.Distance.DOT, "its metric is dotproduct but the manifest declares cosine"),
])
def test_collection_made_for_another_embedding_is_refused_before_writing(ws: Workspace, size: int, distance: Any, says: str) -> None:
    with ws.client() as client:
        client.create_collection(COLLECTION, vectors_config=models.VectorParams(size=size, distance=distance))
    plan = ws.ok("plan")  # the plan shows the environment blocked, and why
    assert says in plan.stdout and "Blocked: prod" in plan.stdout
    result = ws.run("apply", "--auto-approve")
    assert result.code == 1, result.output
    assert says in result.output and "Traceback" not in result.output
    with ws.client() as client:
        assert client.count(COLLECTION).count == 0 and not client.collection_exists(STATE)


def test_missing_api_key_variable_is_named(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VECTOROPS_TEST_QDRANT_KEY", raising=False)
    ws.destination = qdrant_destination(COLLECTION, url="http://127.0.0.1:6333", api_key_env="VECTOROPS_TEST_QDRANT_KEY")
    ws.pin("v1")
    for args in (("plan",), ("apply", "--auto-approve")):
        result = ws.run(*args)
        assert result.code == 1 and "Traceback" not in result.output
        assert "VECTOROPS_TEST_QDRANT_KEY is not set" in result.stderr


def test_unreachable_server_names_the_address(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("VECTOROPS_TEST_QDRANT_KEY", "qdrant-secret-9f8e7d")
    url = f"http://127.0.0.1:{port}"
    ws.destination = qdrant_destination(COLLECTION, url=url, api_key_env="VECTOROPS_TEST_QDRANT_KEY")
    ws.pin("v1")
    for args in (("plan",), ("apply", "--auto-approve")):
        result = ws.run(*args)
        assert result.code == 1 and "Traceback" not in result.output
        assert f"qdrant:{url}#{COLLECTION}" in result.stderr and "could not be reached" in result.stderr
        assert "qdrant-secret-9f8e7d" not in result.output


def test_reserved_payload_field_in_metadata_stops_the_plan(ws: Workspace, make_dataset_repo: Any) -> None:
    from fixtures.records import make_records

    records = make_records(20, 16, seed=9)
    records[3]["_vectorops_id"] = "sneaky"
    repo = make_dataset_repo()
    repo.commit_version(records, tag="bad")
    ws.repo = repo
    ws.pin("bad")
    result = ws.run("plan")
    assert result.code == 1 and records[3]["id"] in result.stderr and "_vectorops_id" in result.stderr
    with ws.client() as client:
        assert not client.collection_exists(COLLECTION)


def test_timestamps_and_dates_in_parquet_reach_the_payload_as_iso_text(ws: Workspace, make_dataset_repo: Any) -> None:
    """A Parquet timestamp or date column was handed to qdrant-client as Python datetimes, and the plan
    refused the whole version ("records that qdrant would refuse"); it is ISO 8601 text, the same text
    the hash covers, so a full refresh finds the collection exactly as planned."""
    import datetime as dt

    from fixtures.records import make_records

    records = make_records(20, 16, seed=4)
    for i, r in enumerate(records):
        r["published"] = dt.datetime(2024, 1, 5, 10, i, tzinfo=dt.timezone.utc)
        r["day"] = dt.date(2024, 2, 1 + i)
    repo = make_dataset_repo()
    repo.commit_version(records, tag="dated")
    ws.repo = repo
    ws.pin("dated")
    ws.ok("apply", "--auto-approve")
    stored = ws.stored()
    assert stored[records[3]["id"]][1]["published"] == "2024-01-05T10:03:00+00:00" and stored[records[3]["id"]][1]["day"] == "2024-02-04"
    drift = ws.ok("drift", "--refresh", "full", "--json").json["environments"][0]["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)


# -- kill -9 mid-apply, finished by the next apply -------------------------------------------------


def _cli(manifest: Path, *args: str, failpoint: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "VECTOROPS_FAILPOINT"}
    full_env.update(env)
    if failpoint:
        full_env["VECTOROPS_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", *args],
                          capture_output=True, text=True, env=full_env, timeout=180)


@pytest.mark.parametrize("failpoint", ["after-intent", "mid-write", "before-result"])
def test_kill_mid_apply_then_next_apply_ends_exact(failpoint: str, ws: Workspace, known_versions: KnownVersions) -> None:
    """The killed apply is its own process; local mode's folder lock dies with it."""
    ws.ok("apply", "--auto-approve")
    _LocalClients.close_all()  # free the folder for the other process, as the end of a command does
    ws.pin("v2")
    killed = _cli(ws.manifest, "apply", "--auto-approve", failpoint=failpoint, VECTOROPS_WRITE_BATCH="30")
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["interrupted"]["version"] == "v2"
    assert (env["drift"]["missing"], env["drift"]["unexpected"], env["drift"]["modified"]) == (0, 0, 0)

    ws.ok("apply", "--auto-approve")
    ws.assert_content(known_versions.v2)
    assert ws.ok("plan", "--json", "--refresh", "full").json["environments"][0]["changes"] == {"add": 0, "update": 0, "delete": 0}
