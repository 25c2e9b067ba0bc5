"""The memory pgvector's HNSW build is given, end to end through the CLI against a real PostgreSQL.

pgvector builds an HNSW graph many times faster while it fits in ``maintenance_work_mem``; past it,
the rest is built on disk (the 1M x 768 bench slowed ~4x at ~650k vectors under vectorops' default
2 GB cap). A user with a bigger table and the memory to spare sets ``index_build_memory_mb``; what
the server's build actually ran with is read here by an event trigger that records
``maintenance_work_mem`` when the index is created, in the same transaction as the build.

A build that outgrows that memory makes pgvector send a NOTICE; vectorops turns it into one warning
after the apply that names the setting and a value to give it. At the fixtures' 16 dimensions a
vector takes ~780 bytes of graph, so 1 MB (PostgreSQL's smallest maintenance_work_mem) holds ~1,340
of them: a 3,000-record dataset outgrows it in about a second of build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from fixtures.pg_workspace import PgWorkspace  # noqa: E402
from fixtures.records import make_records  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402

TABLE = "docs_build"
#: records that outgrow 1 MB of graph at 16 dimensions (~1,340 fit), still a build of about a second
OUTGROWING = 3_000


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def builds(pg_env: str, pg_schema: str) -> Iterator[Any]:
    """An event trigger (needs a superuser, as the test server's role is) that logs, for each HNSW index
    created in the test's schema, the ``maintenance_work_mem`` in effect; yields a reader of that log."""
    trigger = f"vo_build_{pg_schema}"[:63]
    sql(pg_env, "CREATE TABLE IF NOT EXISTS public.vo_build_memory (schema_name text, object text, memory text)")
    sql(
        pg_env,
        f"""CREATE OR REPLACE FUNCTION public.{trigger}() RETURNS event_trigger LANGUAGE plpgsql AS $$
        DECLARE r record;
        BEGIN
          FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' AND schema_name = '{pg_schema}' LOOP
            INSERT INTO public.vo_build_memory VALUES (r.schema_name, r.object_identity, current_setting('maintenance_work_mem'));
          END LOOP;
        END $$"""
    )
    sql(pg_env, f"CREATE EVENT TRIGGER {trigger} ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION public.{trigger}()")

    def read() -> list[tuple[str, str]]:
        rows = sql(pg_env, "SELECT object, memory FROM public.vo_build_memory WHERE schema_name = %s", (pg_schema,))
        return [(obj, mem) for obj, mem in rows if "hnsw" in obj]

    try:
        yield read
    finally:
        sql(pg_env, f"DROP EVENT TRIGGER IF EXISTS {trigger}")
        sql(pg_env, f"DROP FUNCTION IF EXISTS public.{trigger}()")


def test_the_hnsw_build_gets_the_memory_the_manifest_sets(
    tmp_path: Path, dataset_repo: DatasetRepo, pg_env: str, pg_schema: str, builds: Any
) -> None:
    ws = PgWorkspace(tmp_path, dataset_repo, pg_env, pg_schema, TABLE, destination_extra={"index_build_memory_mb": 300})
    ws.ok("apply", "--auto-approve")
    assert builds() == [(f"{pg_schema}.{TABLE}_embedding_hnsw", "300MB")]
    # the session's own setting is untouched: SET LOCAL lasted for the build's transaction only
    assert ws.sql("SHOW maintenance_work_mem") == [("64MB",)]


def test_without_the_setting_a_small_table_gets_postgresql_s_default(
    tmp_path: Path, dataset_repo: DatasetRepo, pg_env: str, pg_schema: str, builds: Any
) -> None:
    ws = PgWorkspace(tmp_path, dataset_repo, pg_env, pg_schema, TABLE)
    ws.ok("apply", "--auto-approve")
    assert builds() == [(f"{pg_schema}.{TABLE}_embedding_hnsw", "64MB")]


@pytest.mark.parametrize("value", [0, "lots"])
def test_a_build_memory_that_is_not_a_size_in_mb_is_refused_before_anything_is_written(
    tmp_path: Path, dataset_repo: DatasetRepo, pg_env: str, pg_schema: str, value: object
) -> None:
    ws = PgWorkspace(tmp_path, dataset_repo, pg_env, pg_schema, TABLE, destination_extra={"index_build_memory_mb": value})
    result = ws.ok("apply", "--auto-approve", code=1)
    assert "index_build_memory_mb" in result.output and "vectorops.yaml" in result.output
    assert ws.sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema,)) == []


@pytest.fixture
def bigger_repo(make_dataset_repo: Callable[..., DatasetRepo]) -> DatasetRepo:
    """v1: ``OUTGROWING`` records of the fixtures' 16 dimensions."""
    repo = make_dataset_repo()
    repo.commit_version(make_records(OUTGROWING, 16, seed=17), tag="v1")
    return repo


def test_a_build_that_outgrows_its_memory_warns_with_the_setting_and_a_value_that_is_enough(
    tmp_path: Path, bigger_repo: DatasetRepo, pg_env: str, pg_schema: str, builds: Any
) -> None:
    (tmp_path / "starved").mkdir()
    starved = PgWorkspace(tmp_path / "starved", bigger_repo, pg_env, pg_schema, TABLE, destination_extra={"index_build_memory_mb": 1})
    result = starved.ok("apply", "--auto-approve")
    assert "prod: applied v1: +3,000" in result.stdout
    assert builds() == [(f"{pg_schema}.{TABLE}_embedding_hnsw", "1MB")]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    found = re.fullmatch(
        rf"warning   pgvector:\$VECTOROPS_TEST_PG_DSN/{pg_schema}\.{TABLE}: the HNSW index build outgrew its memory \(1 MB\) "
        r"after ([\d,]+) of 3,000 records and built the rest on disk, several times slower; set index_build_memory_mb: (\d+) "
        r"on this destination \(about 0\.\d kB a vector at 16 dimensions\) if the server has the memory",
        line,
    )
    assert found is not None, line
    fitted, suggested = int(found.group(1).replace(",", "")), int(found.group(2))
    assert 0 < fitted < OUTGROWING
    # the table is complete and indexed all the same: the build only took the slow road
    assert starved.sql(f"SELECT count(*) FROM {starved.table}") == [(OUTGROWING,)]

    # the value it suggests is enough: the same records, built with it, fit and say nothing
    (tmp_path / "enough").mkdir()
    enough = PgWorkspace(tmp_path / "enough", bigger_repo, pg_env, pg_schema, "docs_enough", destination_extra={"index_build_memory_mb": suggested})
    result = enough.ok("apply", "--auto-approve")
    assert "prod: applied v1: +3,000" in result.stdout
    assert (f"{pg_schema}.docs_enough_embedding_hnsw", f"{suggested}MB") in builds()
    assert "warning" not in result.output and "outgrew" not in result.output


def test_a_build_with_the_default_memory_says_nothing(
    tmp_path: Path, bigger_repo: DatasetRepo, pg_env: str, pg_schema: str, builds: Any
) -> None:
    ws = PgWorkspace(tmp_path, bigger_repo, pg_env, pg_schema, TABLE)
    result = ws.ok("apply", "--auto-approve")
    assert builds() == [(f"{pg_schema}.{TABLE}_embedding_hnsw", "64MB")]
    assert "warning" not in result.output and "outgrew" not in result.output


def test_the_reconcile_agent_logs_the_warning_after_its_apply(
    tmp_path: Path, bigger_repo: DatasetRepo, pg_env: str, pg_schema: str
) -> None:
    ws = PgWorkspace(tmp_path, bigger_repo, pg_env, pg_schema, TABLE, destination_extra={"index_build_memory_mb": 1})
    ws.pin("v1", sync={"auto": True})
    result = ws.ok("reconcile", "--once", "--log-format", "json")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    applied = [(e["action"], e["result"]) for e in events if e["action"] == "apply"]
    assert applied == [("apply", "applied"), ("apply", "warning")]
    (warning,) = [e for e in events if e["result"] == "warning"]
    assert warning["level"] == "warning" and warning["environment"] == "prod"
    assert warning["destination"] == f"pgvector:$VECTOROPS_TEST_PG_DSN/{pg_schema}.{TABLE}"
    assert warning["message"].startswith("the HNSW index build outgrew its memory (1 MB)") and "index_build_memory_mb: 64" in warning["message"]
