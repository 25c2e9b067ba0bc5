"""The pgvector provider on its own, against a real PostgreSQL + pgvector (tests/fixtures/postgres.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from fixtures.postgres import DSN_ENV  # noqa: E402
from reconciler.engine.hashing import hash_batch  # noqa: E402
from reconciler.errors import DestinationConfigError, DestinationError  # noqa: E402
from reconciler.providers.pgvector import PgvectorDestination, PgvectorSettings  # noqa: E402
from reconciler.providers.settings import DestinationContext  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402


def open_dest(schema: str, table: str = "docs") -> PgvectorDestination:
    settings = PgvectorSettings.model_validate({"type": "pgvector", "dsn_env": DSN_ENV, "schema": schema, "table": table})
    return settings.open(DestinationContext("test", Path(".")))


@pytest.fixture
def dest(pg_env: str, pg_schema: str) -> PgvectorDestination:
    d = open_dest(pg_schema)
    yield d
    d.close()


def tricky_batch() -> RecordBatch:
    """Metadata of every JSON kind PostgreSQL's jsonb normalises one way or another, and -0.0."""
    vectors = np.array(
        [[0.1, -0.0, 3.4028235e38, 1e-45], [1.0, 2.0, 3.0, 4.0], [np.float32(1 / 3)] * 4], dtype=np.float32
    )
    metadata = [
        {"text": "it's \"quoted\" \\ and ü, 🙂", "n": 12345678901234567, "f": 0.1, "whole": 3.0, "neg": -1e-7},
        {"nested": {"b": ["x", "y"], "a": {"deep": True}}, "empty": "", "list": [1.5, 2.25]},
        {},
    ]
    return RecordBatch.from_rows(["a", "b b", "ü-3"], vectors, metadata, 4)


def test_records_round_trip_with_the_same_content_hash(dest: PgvectorDestination) -> None:
    batch = tricky_batch()
    dest.ensure(4, "dotproduct")
    list(dest.apply_changes([batch], []))
    back = dest.fetch(["ü-3", "a", "b b", "missing"])
    order = {rid: i for i, rid in enumerate(back.id_list)}
    assert sorted(order) == ["a", "b b", "ü-3"]
    back = back.take(np.array([order["a"], order["b b"], order["ü-3"]]))
    assert back.vectors.tobytes() == batch.vectors.tobytes()
    for got, want in zip(hash_batch(back), hash_batch(batch), strict=False):
        assert np.array_equal(got, want)  # what a full refresh compares
    full = [b for b in dest.iter_records(batch_size=2)]
    assert [len(b) for b in full] == [2, 1]
    assert dest.describe().metric == "dotproduct" and dest.describe().count == 3


def test_apply_changes_is_one_transaction(dest: PgvectorDestination, pg_env: str) -> None:
    import psycopg

    dest.ensure(4, "cosine")
    first = RecordBatch.from_rows([f"r{i}" for i in range(10)], np.ones((10, 4), np.float32), [{}] * 10, 4)
    list(dest.apply_changes([first], []))
    second = RecordBatch.from_rows([f"s{i}" for i in range(10)], np.ones((10, 4), np.float32), [{}] * 10, 4)
    changes = dest.apply_changes([second, second.take(np.arange(5))], [f"r{i}" for i in range(10)])
    next(changes)  # the first batch is staged ...
    with psycopg.connect(pg_env, autocommit=True) as reader:
        table = f'"{dest.schema}"."docs"'
        assert {r[0] for r in reader.execute(f"SELECT id FROM {table}")} == {f"r{i}" for i in range(10)}  # ... invisible
        changes.close()  # abandoned (an exception, a kill): rolled back
        assert {r[0] for r in reader.execute(f"SELECT id FROM {table}")} == {f"r{i}" for i in range(10)}
        list(dest.apply_changes([second], [f"r{i}" for i in range(10)]))
        assert {r[0] for r in reader.execute(f"SELECT id FROM {table}")} == {f"s{i}" for i in range(10)}


def test_documents_are_kept_beside_the_records_and_never_counted(dest: PgvectorDestination) -> None:
    assert dest.read_doc("state") is None and dest.list_docs("") == []
    dest.write_docs({"state": {"serial": 1}, "history/0001": {"n": 1}, "history/0002": {"n": 2}})
    assert dest.read_doc("state") == {"serial": 1}
    assert dest.list_doc_keys("history/") == ["history/0001", "history/0002"]
    assert [k for k, _ in dest.list_docs("")] == ["history/0001", "history/0002", "state"]
    dest.delete_doc("history/0001")
    assert dest.list_doc_keys("history/") == ["history/0002"]
    assert dest.describe().exists is False  # documents are not the records table
    other = open_dest(dest.schema, table="other")
    assert other.read_doc("state") is None  # keyed by table: two tables in one schema never share state
    other.close()


def test_critical_section_excludes_another_process_session(dest: PgvectorDestination, pg_schema: str) -> None:
    other = open_dest(pg_schema)
    entered = threading.Event()
    with dest.critical_section():
        thread = threading.Thread(target=lambda: (other.critical_section().__enter__(), entered.set()))
        thread.start()
        assert not entered.wait(0.5)  # the second session waits on the advisory lock
    assert entered.wait(10)
    thread.join()
    other.close()


def test_records_postgresql_cannot_hold_are_refused_by_check_records(dest: PgvectorDestination) -> None:
    batch = RecordBatch.from_rows(["ok", "bad\x00id", "meta"], np.ones((3, 4), np.float32), [{}, {}, {"t": "a\x00b"}], 4)
    problems = dest.check_records(batch, 4)
    assert any("'bad\\x00id'" in p for p in problems) and any("'meta'" in p for p in problems)


def test_nothing_is_created_by_reading(dest: PgvectorDestination, pg_env: str) -> None:
    import psycopg

    assert dest.describe().exists is False
    assert dest.all_ids().to_pylist() == [] and list(dest.iter_records()) == [] and dest.fetch(["a"]).id_list == []
    dest.delete(["a"])
    with psycopg.connect(pg_env, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (dest.schema,)).fetchone() == (0,)


def test_settings_refuse_a_pasted_dsn_and_report_a_missing_variable(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        PgvectorSettings.model_validate({"type": "pgvector", "dsn_env": "postgresql://u:p@h/db", "table": "docs"})
    monkeypatch.delenv(DSN_ENV, raising=False)
    with pytest.raises(DestinationConfigError) as info:
        open_dest(pg_schema)
    assert DSN_ENV in str(info.value)
    assert issubclass(DestinationConfigError, DestinationError)
    assert pa is not None


def test_hnsw_build_memory_follows_the_table_and_is_capped() -> None:
    """The HNSW build gets what its graph needs (PostgreSQL's 64 MB default holds ~20k vectors of 768
    dimensions; past that pgvector builds many times slower), never less than the default, never more than the cap."""
    from reconciler.providers.pgvector import INDEX_BUILD_MEMORY_CAP_MB, _index_build_memory_mb

    assert _index_build_memory_mb(1_000, 768) == 64
    assert 700 < _index_build_memory_mb(200_000, 768) < 1_000
    assert _index_build_memory_mb(10_000_000, 768) == INDEX_BUILD_MEMORY_CAP_MB


def test_the_build_memory_warning_suggests_what_the_whole_table_needs_at_what_a_vector_took() -> None:
    """The 1M x 768 bench's build: 64 MB held 17,701 vectors (3,791 bytes each, above the estimate's
    3,472), so the whole table wants ~3.6 GB, 4.5 GB with the default's 25% headroom."""
    from reconciler.providers.pgvector import build_memory_warning

    notice = "hnsw graph no longer fits into maintenance_work_mem after 17701 tuples"
    assert build_memory_warning([notice], 64, 1_000_000, 768) == (
        "the HNSW index build outgrew its memory (64 MB) after 17,701 of 1,000,000 records and built the rest on disk, "
        "several times slower; set index_build_memory_mb: 4600 on this destination (about 3.8 kB a vector at 768 "
        "dimensions) if the server has the memory"
    )
    # other notices (CREATE INDEX IF NOT EXISTS on an existing index) say nothing
    assert build_memory_warning(['relation "docs_embedding_hnsw" already exists, skipping'], 64, 1_000_000, 768) is None
    # a notice that names no vector (a parallel build can) still suggests more than was given
    hint = build_memory_warning(["hnsw graph no longer fits into maintenance_work_mem after 0 tuples"], 2048, 1_000, 8)
    assert hint is not None and "index_build_memory_mb: 4100 " in hint
