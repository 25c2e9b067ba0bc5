"""The Pinecone destination through the real SDK against the local Pinecone server."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("pinecone")

from reconciler.errors import DestinationError  # noqa: E402
from reconciler.providers.pinecone import DOCS_NAMESPACE, PineconeDestination, check_records  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402
from tests.pinecone_server import Faults, PineconeServer  # noqa: E402
from tests.pinecone_server.fixtures import API_KEY  # noqa: E402

DIM = 8


def _dest(namespace: str = "", **kw: object) -> PineconeDestination:
    kw.setdefault("retry_timeout", 20.0)
    kw.setdefault("consistency_timeout", 10.0)
    return PineconeDestination(index="docs", host=kw.pop("host", None), namespace=namespace, **kw)  # type: ignore[arg-type]


def _batch(n: int, start: int = 0, seed: int = 0) -> RecordBatch:
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i:05d}" for i in range(start, start + n)]
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    metadata = [
        {"title": f"title {i}", "n": i, "score": float(i) + 0.25, "ok": i % 2 == 0, "tags": ["a", f"t{i % 3}"]}
        for i in range(start, start + n)
    ]
    return RecordBatch.from_rows(ids, vectors, metadata, DIM)


def _stored(srv: PineconeServer, namespace: str = "__default__") -> dict[str, tuple[np.ndarray, dict]]:
    return dict(srv.index("docs").namespaces[namespace].records)


def _assert_same(expected: RecordBatch, got: RecordBatch) -> None:
    order = np.argsort(got.id_list)
    got = got.take(order)
    exp = expected.take(np.argsort(expected.id_list))
    assert got.id_list == exp.id_list
    assert got.vectors.dtype == np.float32
    assert got.vectors.tobytes() == exp.vectors.tobytes()  # bit-exact float32
    assert got.metadata_rows() == exp.metadata_rows()


def test_round_trip_is_exact(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    assert not dest.describe().exists
    dest.ensure(DIM, "cosine")
    batch = _batch(1200)
    dest.upsert(batch)
    dest.after_apply()
    info = dest.describe()
    assert (info.exists, info.dimension, info.metric, info.count) == (True, DIM, "cosine", 1200)
    _assert_same(batch, dest.fetch(batch.id_list + ["absent"]))
    _assert_same(batch, pa_concat(list(dest.iter_records(batch_size=500))))
    assert sorted(i for ids in dest.iter_ids(batch_size=700) for i in ids) == batch.id_list
    assert dest.query(batch.vectors[5], top_k=1) == [batch.id_list[5]]
    dest.delete(batch.id_list[:1100] + ["never-there"])
    dest.after_apply()
    assert sorted(_stored(pinecone_server)) == batch.id_list[1100:]
    assert dest.describe().count == 100


def pa_concat(batches: list[RecordBatch]) -> RecordBatch:
    ids = [i for b in batches for i in b.id_list]
    vectors = np.concatenate([b.vectors for b in batches])
    rows = [r for b in batches for r in b.metadata_rows()]
    return RecordBatch.from_rows(ids, vectors, rows, DIM)


def test_requests_stay_within_pinecone_limits(pinecone_server: PineconeServer) -> None:
    dest = _dest(max_in_flight=3)
    dest.ensure(DIM, "cosine")
    big = RecordBatch.from_rows(
        [f"big-{i}" for i in range(400)], np.ones((400, DIM), np.float32), [{"pad": "x" * 20000}] * 400, DIM
    )
    dest.upsert(big)  # 8 MB of metadata: must be split by bytes, not only by count
    dest.upsert(_batch(2500))
    dest.fetch([f"doc-{i:05d}" for i in range(2500)])
    dest.delete([f"doc-{i:05d}" for i in range(2500)])
    counts = pinecone_server.request_counts
    assert counts["upsert"] >= 4 + 3 and counts["fetch"] >= 3 and counts["delete"] >= 3
    assert len(_stored(pinecone_server)) == 400


def test_state_documents_are_invisible_to_counts_and_listings(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(DIM, "cosine")
    dest.upsert(_batch(10))
    big = {"serial": 3, "blob": "é\"\\" * 30000}  # ~90k characters, escapes included: several chunks
    dest.write_doc("state", big)
    dest.write_doc("history/0000000001", {"n": 1})
    dest.write_doc("history/0000000002", {"n": 2})
    assert dest.read_doc("state") == big
    assert dest.describe().count == 10
    assert sum(len(ids) for ids in dest.iter_ids()) == 10
    assert sum(len(b) for b in dest.iter_records()) == 10
    assert [k for k, _ in dest.list_docs("history/")] == ["history/0000000001", "history/0000000002"]
    assert len([v for v in pinecone_server.index("docs").namespaces[DOCS_NAMESPACE].records if "state" in v]) > 1
    dest.write_doc("state", {"serial": 4})  # shrinking leaves no stale chunks behind
    assert dest.read_doc("state") == {"serial": 4}
    assert [v for v in _stored(pinecone_server, DOCS_NAMESPACE) if "state" in v] == ["__default__/state#0000"]
    dest.delete_doc("state")
    assert dest.read_doc("state") is None and dest.read_doc("never") is None
    other = _dest(namespace="tenant-b")  # documents are scoped per namespace
    assert other.read_doc("history/0000000001") is None and other.list_docs("") == []


def test_namespace_spellings_and_address(pinecone_server: PineconeServer) -> None:
    a, b = _dest(""), _dest("__default__")
    assert a.address == b.address == "pinecone:docs"
    assert _dest("tenant").address == "pinecone:docs/tenant"
    a.ensure(DIM, "cosine")
    a.upsert(_batch(5))
    assert b.describe().count == 5
    assert _dest("tenant").describe().count == 0
    with pytest.raises(DestinationError, match="reserved"):
        _dest(DOCS_NAMESPACE)


def test_explicit_http_host_skips_the_control_plane(pinecone_server: PineconeServer) -> None:
    host = pinecone_server.create_index("docs", DIM, "dotproduct").host
    dest = _dest(host=host)
    info = dest.describe()
    assert (info.exists, info.dimension, info.metric) == (True, DIM, "dotproduct")
    dest.upsert(_batch(3))
    assert dest.describe().count == 3
    assert "describe_index" not in pinecone_server.request_counts


def test_ensure_refuses_an_index_of_another_shape(pinecone_server: PineconeServer) -> None:
    pinecone_server.create_index("docs", 16, "euclidean")
    with pytest.raises(DestinationError, match="dimension 16.*8.*metric euclidean"):
        _dest().ensure(DIM, "cosine")


def test_listing_splits_by_the_expected_ids_and_still_finds_every_id(
    pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing split by prefix (pages side by side) returns what one listing would, whatever the
    hint: right, partly wrong (ids outside every chosen prefix) or about another index entirely."""
    monkeypatch.setattr("reconciler.providers.pinecone.LIST_SPLIT_MIN", 100)
    dest = _dest()
    dest.ensure(DIM, "cosine")
    batch = _batch(3000)
    dest.upsert(batch)
    dest.after_apply()
    expected = pa.array(batch.id_list, pa.string())

    def listed(hint: pa.Array | None) -> tuple[list[str], dict[str, int]]:
        pinecone_server.reset_counts()
        ticks: list[int] = []
        got = dest.all_ids(hint, progress=ticks.append).to_pylist()
        # progress counts up to what was listed (from 0 again where a split listing fell back)
        assert ticks and ticks[-1] == len(got) and all(0 < t <= len(got) for t in ticks)
        return got, {p: n for p, n in pinecone_server.list_prefixes.items() if not p.startswith("__default__/")}

    pinecone_server.faults = Faults(rate_429=0.05, rate_5xx=0.05, retry_after=0, seed=3, operations=frozenset({"list"}))
    got, pages = listed(expected)
    assert sorted(got) == batch.id_list and len(got) == len(set(got))
    assert "" not in pages and len(pages) >= 8  # split, and nothing listed twice over
    assert sum(pages.values()) < 3000 // 100 + 2 * len(pages) + sum(pinecone_server.fault_counts.values())
    pinecone_server.faults = Faults()
    pinecone_server.reset_counts()
    _assert_same(batch, pa_concat(list(dest.iter_records(batch_size=700, expected=expected))))  # a full refresh
    assert "" not in pinecone_server.list_prefixes

    dest.upsert(RecordBatch.from_rows(["zz-foreign"], np.ones((1, DIM), np.float32), [{}], DIM))
    dest.after_apply()
    got, pages = listed(expected)  # "zz-foreign" is under no prefix of the hint: the count gives it away
    assert sorted(got) == sorted(batch.id_list + ["zz-foreign"]) and pages.get("") == 31
    for hint in ([f"other-{i:06d}" for i in range(3000)], [f"é{i:06d}" for i in range(3000)]):  # no such ids
        got, pages = listed(pa.array(hint, pa.string()))
        assert sorted(got) == sorted(batch.id_list + ["zz-foreign"]) and "" in pages
    assert listed(None)[0] == sorted(batch.id_list + ["zz-foreign"])


def test_5000_records_with_10_percent_failing_requests_end_exact(pinecone_server: PineconeServer) -> None:
    dest = _dest(max_in_flight=4)
    dest.ensure(DIM, "cosine")
    old = _batch(1000, start=5000, seed=1)
    dest.upsert(old)
    pinecone_server.faults = Faults(
        rate_429=0.04, rate_5xx=0.03, rate_lost_response=0.03, retry_after=0, seed=11,
        operations=frozenset({"upsert", "delete", "fetch", "list"}),
    )
    # small records force many requests: 5000 records in requests of at most 100
    batch = _batch(5000, seed=2)
    import reconciler.providers.pinecone_payload as mod

    mp = pytest.MonkeyPatch()
    mp.setattr(mod, "MAX_VECTORS_PER_UPSERT", 100)
    mp.setattr(mod, "MAX_IDS_PER_REQUEST", 100)
    try:
        dest.upsert(batch)
        dest.delete(old.id_list)
        dest.after_apply()
        got = pa_concat(list(dest.iter_records()))
    finally:
        mp.undo()
    assert sum(pinecone_server.fault_counts.values()) >= 8  # faults really happened
    assert pinecone_server.fault_counts.get("lost", 0) >= 1
    _assert_same(batch, got)
    assert sorted(_stored(pinecone_server)) == batch.id_list


def test_persistent_failure_says_what_was_written(pinecone_server: PineconeServer) -> None:
    dest = _dest(retry_timeout=0.5, max_in_flight=1)
    dest.ensure(DIM, "cosine")
    pinecone_server.faults = Faults(rate_5xx=1.0, operations=frozenset({"upsert"}))
    with pytest.raises(DestinationError) as err:
        dest.upsert(_batch(2500))
    text = str(err.value)
    assert "0 of 2500 records were written" in text and "next `vectorops apply` finishes" in text


def test_missing_api_key_variable_is_named(pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_PC_KEY", raising=False)
    with pytest.raises(DestinationError, match="MY_PC_KEY is not set"):
        _dest(api_key_env="MY_PC_KEY")


def test_api_key_never_appears_in_errors_or_logs(
    pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PINECONE_DEBUG_CURL", "1")
    dest = _dest(retry_timeout=0.3)
    dest.ensure(DIM, "cosine")
    pinecone_server.faults = Faults(rate_429=1.0, operations=frozenset({"upsert"}))
    with pytest.raises(DestinationError) as throttled:
        dest.upsert(_batch(3))
    wrong = "WRONG-KEY-SECRET-123"
    monkeypatch.setenv("OTHER_KEY", wrong)
    with pytest.raises(DestinationError) as unauthorized:
        _dest(api_key_env="OTHER_KEY").describe()
    assert "401" in str(unauthorized.value) or "Unauthorized" in str(unauthorized.value)
    for text in (str(throttled.value), str(unauthorized.value), caplog.text):
        assert API_KEY not in text and wrong not in text
    assert caplog.text  # something was logged, so the check above means something


def test_after_apply_waits_for_delayed_visibility(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(DIM, "cosine")
    pinecone_server.faults = Faults(visibility_delay=0.4)
    batch = _batch(50)
    dest.upsert(batch)
    assert len(dest.fetch(batch.id_list)) == 0  # not visible yet
    dest.after_apply()
    assert len(dest.fetch(batch.id_list)) == 50
    dest.write_doc("lock", {"id": "x"})  # state is read-your-writes even under lag
    assert dest.read_doc("lock") == {"id": "x"}


def test_check_records_names_what_pinecone_would_refuse() -> None:
    ids = ["ok", "x" * 600, "naïve", "nested", "mixed", "null-in-list", "huge", "zero"]
    vectors = np.ones((len(ids), DIM), np.float32)
    vectors[7] = 0
    rows = [{}, {}, {}, {}, {}, {}, {}, {}]
    batch = RecordBatch(
        ids=pa.array(ids, pa.string()),
        vectors=vectors,
        metadata=pa.table({
            "nested": pa.array([None, None, None, {"a": 1}, None, None, None, None], pa.struct([("a", pa.int64())])),
            "lst": pa.array([None, None, None, None, [1, 2], None, None, None], pa.list_(pa.int64())),
            "sl": pa.array([None, None, None, None, None, ["a", None], None, None], pa.list_(pa.string())),
            "big": pa.array([None] * 6 + ["y" * 41000, None], pa.string()),
        }),
    )
    assert len(rows) == len(ids)
    problems = check_records(batch, DIM)
    text = "\n".join(problems)
    assert "id longer than 512" in text and "naïve" in text
    assert "nested object" in text and "nested" in text
    assert "non-string items" in text and "mixed" in text and "null-in-list" in text
    assert "40960" in text and "huge" in text
    assert "all-zero" in text and "zero" in text
    assert "ok" not in [p.split(": ")[-1] for p in problems]
    assert check_records(_batch(20), DIM) == []
    assert any("dimension 8" in p for p in check_records(_batch(2), 16))
