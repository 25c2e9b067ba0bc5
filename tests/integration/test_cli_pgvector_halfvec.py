"""`vector_type: halfvec` end to end through the CLI against a real PostgreSQL + pgvector (issue 17).

A halfvec column stores each component as float16, so the table never holds the dataset's float32.
What a user must see anyway: a `full` refresh of a table vectorops just wrote finds no drift, a
vector changed by hand by the smallest step halfvec can hold is reported modified by its id (and
repaired), canaries query with the halfvec index, and a table whose column is the other type is
refused with one message before anything is written. The server is tests/fixtures/postgres.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from fixtures.pg_workspace import PgWorkspace  # noqa: E402
from fixtures.records import KnownVersions  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from reconciler.providers.pgvector import HalfvecDestination, PgvectorDestination  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402

TABLE = "docs_half"


def as_float16(vector: Any) -> bytes:
    """The float32 bytes of ``vector`` after a trip through a halfvec column."""
    return np.asarray(vector, np.float32).astype(np.float16).astype(np.float32).tobytes()


def expected(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (as_float16(r["vector"]), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


@pytest.fixture
def ws(tmp_path: Path, dataset_repo: DatasetRepo, pg_env: str, pg_schema: str) -> PgWorkspace:
    folder = tmp_path / "project"
    folder.mkdir()
    return PgWorkspace(folder, dataset_repo, pg_env, pg_schema, TABLE, vector_type="halfvec")


def test_halfvec_apply_shows_no_drift_at_full_and_finds_a_one_step_change(ws: PgWorkspace, known_versions: KnownVersions) -> None:
    ws.ok("apply", "--auto-approve")
    columns = dict(ws.sql(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s", (ws.schema, TABLE)
    ))
    assert columns == {"id": "text", "embedding": "halfvec", "metadata": "jsonb"}
    indexes = " ".join(r[0] for r in ws.sql("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (ws.schema, TABLE)))
    assert "hnsw" in indexes and "halfvec_cosine_ops" in indexes
    assert ws.content() == expected(known_versions.v1)
    assert any(as_float16(r["vector"]) != np.asarray(r["vector"], np.float32).tobytes() for r in known_versions.v1)  # it did round

    # what vectorops wrote is what the dataset is, at half precision: no drift at any level
    for level in ("full", "sample", "ids"):
        env = ws.ok("plan", "--refresh", level, "--json", "--detailed-exitcode").json["environments"][0]
        assert env["changes"] == {"add": 0, "update": 0, "delete": 0} and not env["drift"].get("modified"), (level, env)

    ws.pin("v2")
    changes = ws.ok("plan", "--json", "--detailed-exitcode", code=2).json["environments"][0]["changes"]
    assert changes == {"add": 120, "update": 45, "delete": 30}
    ws.ok("apply", "--auto-approve")
    assert ws.content() == expected(known_versions.v2)
    ws.ok("drift", "--refresh", "full")  # exit 0

    # a colleague moves one component of one vector by the smallest step a halfvec can take
    victim = sorted(known_versions.v2, key=lambda r: r["id"])[17]
    nudged = np.asarray(victim["vector"], np.float32).astype(np.float16)
    nudged[3] = np.nextafter(nudged[3], np.float16(np.inf))
    ws.sql(f"UPDATE {ws.table} SET embedding = %s::halfvec WHERE id = %s", ("[" + ",".join(repr(float(x)) for x in nudged) + "]", victim["id"]))
    drift = ws.ok("drift", "--refresh", "full", "--json", code=2).json["environments"][0]
    assert drift["drift"]["modified"] == 1 and drift["samples"]["modified"] == [victim["id"]]
    assert drift["drift"]["missing"] == 0 and drift["drift"]["unexpected"] == 0
    assert ws.ok("plan", "--refresh", "full", "--json").json["environments"][0]["changes"] == {"add": 0, "update": 1, "delete": 0}
    ws.ok("apply", "--auto-approve", "--refresh", "full")
    assert ws.content() == expected(known_versions.v2)
    ws.ok("drift", "--refresh", "full")


def test_halfvec_canaries_query_with_the_halfvec_index(ws: PgWorkspace, known_versions: KnownVersions) -> None:
    target = known_versions.v1[7]["id"]
    (ws.folder / "canaries.yaml").write_text(
        f"top_k: 1\nqueries:\n  - name: itself\n    vector_of: {target}\n    expect: [{target}]\n", encoding="utf-8"
    )
    ws.pin("v1", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    ws.ok("apply", "--auto-approve")
    assert ws.ok("status", "--json").json["environments"][0]["validated"] is True
    (ws.folder / "canaries.yaml").write_text(
        "top_k: 1\nqueries:\n  - name: impossible\n    vector_of: doc-1\n    expect: [doc-2]\n", encoding="utf-8"
    )
    ws.pin("v2", validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    failed = ws.run("apply", "--auto-approve")
    assert failed.code == 1 and "impossible" in failed.output


@pytest.mark.parametrize(("column", "asked"), [("vector", "halfvec"), ("halfvec", "vector")])
def test_a_table_of_the_other_vector_type_is_refused_before_anything_is_written(ws: PgWorkspace, column: str, asked: str) -> None:
    ws.sql("CREATE EXTENSION IF NOT EXISTS vector")
    ws.sql(f'CREATE SCHEMA "{ws.schema}"')
    ws.sql(f"CREATE TABLE {ws.table} (id text primary key, embedding {column}(16), metadata jsonb)")
    ws.sql(f"INSERT INTO {ws.table} VALUES ('kept', %s::{column}, '{{}}')", ("[" + ",".join(["0.5"] * 16) + "]",))
    ws.vector_type = None if asked == "vector" else asked  # vector is the default: the manifest need not say it
    ws.pin("v1")
    for args in (("plan",), ("apply", "--auto-approve"), ("plan", "--refresh", "full")):
        result = ws.run(*args)
        assert result.code == 1, result.output
        assert "Traceback" not in result.output and "vectorops bug" not in result.output
        assert result.stderr.count("Error:") == 1, result.stderr
        assert f"embedding column is {column}(16)" in result.stderr and f"vector_type: {asked}" in result.stderr, result.stderr
        assert f"vector_type: {column}" in result.stderr  # the fix: say what the table holds
    assert ws.tables() == {TABLE}  # no state table
    assert ws.sql(f"SELECT id FROM {ws.table}") == [("kept",)]


def test_components_beyond_float16_are_refused_at_plan_time() -> None:
    """``check_records`` (no I/O): a halfvec cannot hold ±inf, NaN or anything beyond ±65504."""
    dest = HalfvecDestination(dsn="postgresql://unused", schema="s", table="t", address="pgvector:$X/s.t")
    vectors = np.ones((4, 4), np.float32)
    vectors[1, 2], vectors[2, 0], vectors[3, 3] = 70_000.0, -np.inf, np.nan
    batch = RecordBatch.from_rows(["ok", "big", "minus-inf", "nan"], vectors, [{}] * 4, 4)
    problems = dest.check_records(batch, 4)
    assert len(problems) == 1 and "halfvec" in problems[0] and "65504" in problems[0]
    assert "'big'" in problems[0] and "'minus-inf'" in problems[0] and "'nan'" in problems[0] and "'ok'" not in problems[0]
    assert dest.capabilities.vector_precision == "float16"
    full = PgvectorDestination(dsn="postgresql://unused", schema="s", table="t", address="pgvector:$X/s.t")
    assert full.check_records(batch.take(np.arange(2)), 4) == [] and full.capabilities.vector_precision == "float32"
