"""Corrupt state, lock and history documents never leave an environment stuck (issue 15 item 5).

Each document is checked when it is read. A corrupt lock is a lock of unknown holder: it strands
nobody, and `force-unlock ENV unreadable` removes it. `import` rebuilds state and lock. An unreadable
history entry is skipped and reported, never fatal. On every destination: real LanceDB, the real
Pinecone SDK against the local server, a real PostgreSQL + pgvector, and qdrant-client's local mode
(documents are written raw, as a hand edit or another tool would leave them; every provider reads
them through one parser, reconciler/providers/documents.py, so the messages are the same). Real CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from fixtures import DatasetRepo
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import (
    environment,
    lancedb_destination,
    pgvector_destination,
    pinecone_destination,
    qdrant_destination,
    write_manifest,
)
from reconciler.manifest import load_manifest
from reconciler.providers import open_destination

ENV = "staging"
INDEX = "corrupt-docs"


@dataclass
class Target:
    manifest: Path
    repo: Path
    destination: dict
    write_raw: Callable[[str, str], None]  # (document key, raw text) written as the stored document

    def pin(self, version: str) -> None:
        write_manifest(self.manifest, {ENV: environment(version, self.destination)}, repo=self.repo)

    def run(self, *args: str) -> Result:
        return run_vectorops("-m", str(self.manifest), *args, env={"NO_COLOR": "1"})

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.code == 0, f"{args}: {result.output}"
        assert "Traceback" not in result.output
        return result

    def history_keys(self) -> list[str]:
        return open_destination(load_manifest(str(self.manifest)), ENV).list_doc_keys("history/")


def _lancedb_raw(manifest: Path) -> Callable[[str, str], None]:
    from reconciler.providers.lancedb import DOCS_SCHEMA

    def write(key: str, text: str) -> None:
        dest = open_destination(load_manifest(str(manifest)), ENV)
        row = pa.table({"key": [f"{dest.table_name}/{key}"], "doc": [text]}, schema=DOCS_SCHEMA)
        dest._docs_table().merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)  # noqa: SLF001

    return write


def _pinecone_raw(server) -> Callable[[str, str], None]:  # noqa: ANN001
    def write(key: str, text: str) -> None:
        from pinecone import Pinecone

        from tests.pinecone_server.fixtures import API_KEY

        idx = Pinecone(api_key=API_KEY).Index(host=server.index(INDEX).host)
        head = {"id": f"__default__/{key}#0000", "values": [1.0] + [0.0] * 15,
                "metadata": {"k": key, "i": 0, "n": 1, "g": "hand-edit", "d": text}}
        idx.upsert(vectors=[head], namespace="__vectorops__")

    return write


def _pgvector_raw(dsn: str, schema: str, table: str) -> Callable[[str, str], None]:
    def write(key: str, text: str) -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                f'INSERT INTO "{schema}"._vectorops_state (key, doc) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc',
                (f"{table}/{key}", text),
            )

    return write


def _qdrant_raw(folder: Path, collection: str) -> Callable[[str, str], None]:
    def write(key: str, text: str) -> None:
        from qdrant_client import models

        from reconciler.providers.qdrant import STATE_PREFIX, _doc_point_id, _LocalClients

        client = _LocalClients.acquire(str(folder))  # the CLI's own client, shared in this process
        try:
            point = models.PointStruct(id=_doc_point_id(key), vector=[1.0], payload={"key": key, "doc": text})
            client.upsert(STATE_PREFIX + collection, points=[point], wait=True)
        finally:
            _LocalClients.release(str(folder))

    return write


@pytest.fixture(params=["lancedb", "pinecone", "pgvector", "qdrant"])
def target(request: pytest.FixtureRequest, tmp_path: Path, dataset_repo: DatasetRepo) -> Iterator[Target]:
    manifest = tmp_path / "project" / "vectorops.yaml"
    if request.param == "lancedb":
        t = Target(manifest, dataset_repo.root, lancedb_destination("docs_staging"), _lancedb_raw(manifest))
    elif request.param == "pinecone":
        pytest.importorskip("pinecone")
        server = request.getfixturevalue("pinecone_server")
        t = Target(manifest, dataset_repo.root, pinecone_destination(INDEX), _pinecone_raw(server))
    elif request.param == "pgvector":
        pytest.importorskip("psycopg")
        dsn, schema = request.getfixturevalue("pg_env"), request.getfixturevalue("pg_schema")
        t = Target(manifest, dataset_repo.root, pgvector_destination("docs_staging", schema=schema), _pgvector_raw(dsn, schema, "docs_staging"))
    else:
        pytest.importorskip("qdrant_client")
        folder = tmp_path / "project" / "qdrant"
        t = Target(manifest, dataset_repo.root, qdrant_destination("docs_staging", path=folder), _qdrant_raw(folder, "docs_staging"))
    t.pin("v1")
    t.ok("apply", "--auto-approve")
    yield t
    if request.param == "qdrant":  # the CLI leaves its local-mode client open in this process
        from reconciler.providers.qdrant import _LocalClients

        _LocalClients.close_all()


def test_corrupt_lock_is_a_lock_of_unknown_holder_that_force_unlock_removes(target: Target) -> None:
    target.write_raw("lock", "{this is not json")
    status = target.ok("status", "--json")
    assert status.json["environments"][0]["deployed"]["version"] == "v1"

    wrong = target.run("force-unlock", ENV, "some-id")
    assert wrong.code == 1 and "Traceback" not in wrong.output
    assert "unknown holder" in wrong.stderr and "lock id unreadable" in wrong.stderr, wrong.stderr
    released = target.ok("force-unlock", ENV, "unreadable")
    assert "Released the lock" in released.stdout
    assert target.run("force-unlock", ENV, "unreadable").code == 1  # gone: nothing left to unlock

    target.write_raw("lock", json.dumps({"owner": 5}))  # JSON, but not a lock: just as unknown
    target.pin("v2")
    applied = target.ok("apply", "--auto-approve", "--allow-deletes")
    assert "applied v2" in applied.stdout
    assert target.ok("plan", "--detailed-exitcode")  # exit 0: v2 exactly, lock released


def test_import_rebuilds_corrupt_state_and_lock(target: Target) -> None:
    target.write_raw("state", "{this is not json")
    target.write_raw("lock", "[1, 2")
    for args in (["plan", ENV], ["apply", ENV, "--auto-approve"]):
        refused = target.run(*args)
        assert refused.code == 1, refused.output
        assert "Traceback" not in refused.output and "vectorops bug" not in refused.output
        assert "state record" in refused.output and "vectorops import ENV --version REV" in refused.output, refused.output

    repaired = target.ok("import", ENV, "--version", "v1", "--auto-approve")
    assert "recorded as deployed at v1" in repaired.stdout
    target.ok("plan", ENV, "--detailed-exitcode")  # exit 0: the index holds v1 exactly
    row = target.ok("status", "--json").json["environments"][0]
    assert row["status"] == "Synced" and row["lock"] is None and row["deployed"]["version"] == "v1"
    operations = [e["operation"] for e in target.ok("history", ENV, "--json").json["history"]]
    assert operations == ["import", "apply"], operations


def test_unreadable_history_entries_are_skipped_and_reported(target: Target) -> None:
    target.pin("v2")
    target.ok("apply", "--auto-approve", "--allow-deletes")
    first, second = target.history_keys()
    target.write_raw(first, "{this is not json")

    shown = target.ok("history", ENV)
    assert "v2" in shown.stdout
    assert "skipped 1 unreadable history entry" in shown.stderr and first in shown.stderr, shown.stderr
    body = target.ok("history", ENV, "--json").json
    assert [e["to"]["version"] for e in body["history"]] == ["v2"]
    assert [u["key"] for u in body["unreadable"]] == [first]
    assert [e["to"]["version"] for e in target.ok("history", ENV, "--json", "--limit", "1").json["history"]] == ["v2"]

    target.write_raw(second, json.dumps({"serial": "not a number"}))  # JSON, but not a history record
    both = target.ok("history", ENV, "--json").json
    assert both["history"] == [] and sorted(u["key"] for u in both["unreadable"]) == [first, second]
    assert target.ok("status", "--json").json["environments"][0]["status"] == "Synced"
    target.ok("plan", ENV, "--detailed-exitcode")
