"""The local Pinecone server, driven by the real ``pinecone`` SDK over HTTP.

If these pass, tests of the Pinecone destination exercise the SDK against the wire format,
limits, error bodies and failure modes that Pinecone documents, not against our own guesses.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

pinecone = pytest.importorskip("pinecone")

from pinecone import Pinecone, ServerlessSpec  # noqa: E402
from pinecone.errors import (  # noqa: E402
    ApiError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnauthorizedError,
)

from tests.pinecone_server import Faults, PineconeServer  # noqa: E402
from tests.pinecone_server.fixtures import API_KEY  # noqa: E402


def _index(srv: PineconeServer, name: str = "demo", dimension: int = 3, metric: str = "cosine") -> Any:
    pc = Pinecone(api_key=API_KEY, host=srv.url)
    pc.create_index(name=name, dimension=dimension, metric=metric, spec=ServerlessSpec(cloud="aws", region="us-east-1"))
    return pc.Index(name=name)


def _raw(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Api-Key": API_KEY, **(headers or {})})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


# -- control plane ----------------------------------------------------------------------------


def test_control_plane_lifecycle_through_sdk(pinecone_server: PineconeServer) -> None:
    pc = Pinecone(api_key=API_KEY)  # PINECONE_CONTROLLER_HOST from the fixture
    model = pc.create_index(name="docs", dimension=4, metric="dotproduct", spec=ServerlessSpec(cloud="aws", region="us-east-1"))
    assert model.host.startswith("http://127.0.0.1:")
    assert (model.dimension, model.metric) == (4, "dotproduct")
    assert pc.list_indexes().names() == ["docs"]
    assert pc.has_index("docs") and not pc.has_index("other")
    with pytest.raises(ConflictError):
        pc.create_index(name="docs", dimension=4, metric="cosine", spec=ServerlessSpec(cloud="aws", region="us-east-1"))
    with pytest.raises(NotFoundError, match="Index missing not found"):
        pc.describe_index("missing")
    pc.delete_index("docs")
    assert pc.list_indexes().names() == []


def test_control_plane_serves_the_classic_shape_to_older_api_versions(pinecone_server: PineconeServer) -> None:
    pinecone_server.create_index("old", 3, "euclidean")
    status, text = _raw(f"{pinecone_server.url}/indexes/old", headers={"X-Pinecone-Api-Version": "2025-10"})
    body = json.loads(text)
    assert status == 200 and body["dimension"] == 3 and body["metric"] == "euclidean"
    assert body["spec"]["serverless"]["read_capacity"]["mode"] == "OnDemand"
    status, text = _raw(f"{pinecone_server.url}/indexes/old", headers={"X-Pinecone-Api-Version": "2026-07"})
    assert json.loads(text)["schema"]["fields"]["_values"] == {"type": "dense_vector", "dimension": 3, "metric": "euclidean"}


def test_wrong_api_key_gets_the_real_401_bodies(pinecone_server: PineconeServer) -> None:
    host = pinecone_server.create_index("demo", 3).host
    status, text = _raw(f"{host}/describe_index_stats", "POST", {}, headers={"Api-Key": "nope"})
    assert (status, text) == (401, "Unauthorized")
    status, text = _raw(f"{pinecone_server.url}/indexes", headers={"Api-Key": "nope"})
    assert status == 401 and json.loads(text)["error"]["code"] == "UNAUTHENTICATED"
    idx = Pinecone(api_key="wrong-key").Index(host=host)
    with pytest.raises(UnauthorizedError):
        idx.describe_index_stats()


# -- limits and error bodies ------------------------------------------------------------------


def test_upsert_limits_and_error_bodies(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    with pytest.raises(ApiError) as too_many:
        idx.upsert(vectors=[(f"v{i}", [1.0, 0.0, 0.0]) for i in range(1001)])
    assert too_many.value.status_code == 400 and "exceeds the limit of 1000" in str(too_many.value)
    with pytest.raises(PayloadTooLargeError):
        idx.upsert(vectors=[(f"v{i}", [1.0, 2.0, 3.0], {"pad": "x" * 3000}) for i in range(800)])
    with pytest.raises(ApiError, match="Vector dimension 2 does not match the dimension of the index 3"):
        idx.upsert(vectors=[("a", [1.0, 2.0])])
    with pytest.raises(ApiError, match="exceeds the limit of 40960 bytes per vector"):
        idx.upsert(vectors=[("a", [1.0, 2.0, 3.0], {"big": "x" * 41000})])
    with pytest.raises(ApiError, match="non-zero"):
        idx.upsert(vectors=[("a", [0.0, 0.0, 0.0])])
    assert idx.describe_index_stats().total_vector_count == 0  # nothing partial was stored


def test_server_side_checks_the_sdk_does_not_make(pinecone_server: PineconeServer) -> None:
    host = pinecone_server.create_index("demo", 3).host
    cases = [
        {"vectors": [{"id": "a" * 513, "values": [1, 2, 3]}]},
        {"vectors": [{"id": "é", "values": [1, 2, 3]}]},
        {"vectors": [{"id": "a", "values": [1, 2, 3], "metadata": {"nested": {"x": 1}}}]},
        {"vectors": [{"id": "a", "values": [1, 2, 3], "metadata": {"mixed": ["a", 1]}}]},
        {"vectors": [{"id": "a", "values": [1, 2, 3], "metadata": {"$bad": 1}}]},
    ]
    for body in cases:
        status, text = _raw(f"{host}/vectors/upsert", "POST", body)
        assert status == 400, body
        error = json.loads(text)
        assert error["code"] == 3 and error["details"] == [] and error["message"]
    ids = "&".join(f"ids=v{i}" for i in range(1001))
    status, text = _raw(f"{host}/vectors/fetch?{ids}")
    assert status == 400 and "1000" in json.loads(text)["message"]


def test_null_metadata_is_stripped_and_numbers_round_trip(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    idx.upsert(vectors=[{"id": "a", "values": [0.1, 0.2, 0.3], "metadata": {"keep": "x", "gone": None, "n": 7, "f": 0.5,
                                                                            "ok": True, "tags": ["p", "q"]}}])
    got = idx.fetch(ids=["a"]).vectors["a"]
    assert got.metadata == {"keep": "x", "n": 7, "f": 0.5, "ok": True, "tags": ["p", "q"]}
    import numpy as np

    assert np.array_equal(np.float32(got.values), np.float32([0.1, 0.2, 0.3]))


# -- namespaces, list, stats, query, update, delete -------------------------------------------


def test_default_namespace_has_three_spellings(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    idx.upsert(vectors=[("a", [1.0, 0.0, 0.0])])  # namespace omitted on the wire
    idx.upsert(vectors=[("b", [1.0, 0.0, 0.0])], namespace="__default__")
    idx.upsert(vectors=[("c", [1.0, 0.0, 0.0])], namespace="other")
    assert sorted(idx.fetch(ids=["a", "b", "c"], namespace="__default__").vectors) == ["a", "b"]
    assert sorted(idx.fetch(ids=["a", "b", "c"]).vectors) == ["a", "b"]
    stats = idx.describe_index_stats()
    assert stats.total_vector_count == 3
    assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 2, "other": 1}


def test_list_is_bytewise_paginated_with_opaque_tokens_and_prefix(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    ids = ["b", "B", "a#2", "a#10", "a", "_x", "Z9", "a#1"] + [f"p{i:03d}" for i in range(250)]
    for start in range(0, len(ids), 100):
        idx.upsert(vectors=[(v, [1.0, 2.0, 3.0]) for v in ids[start : start + 100]])
    pages = list(idx.list(limit=100))
    assert [len(p.vectors) for p in pages] == [100, 100, 58]
    listed = [item.id for page in pages for item in page]
    assert listed == sorted(ids, key=lambda s: s.encode())
    first = idx.list_paginated(limit=3)
    assert [v.id for v in first.vectors] == ["B", "Z9", "_x"] and first.pagination.next
    assert first.pagination.next != "_x"  # opaque, not the raw last id
    last = idx.list_paginated(prefix="a#", limit=3)
    assert [v.id for v in last.vectors] == ["a#1", "a#10", "a#2"] and last.pagination is None
    with pytest.raises(ApiError, match="Invalid pagination token"):
        idx.list_paginated(limit=3, pagination_token="not-a-token")


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("cosine", ["x", "long", "y"]), ("dotproduct", ["long", "x", "y"]), ("euclidean", ["x", "y", "long"])],
)
def test_query_ranks_by_metric(pinecone_server: PineconeServer, metric: str, expected: list[str]) -> None:
    idx = _index(pinecone_server, metric=metric)
    idx.upsert(vectors=[("x", [1.0, 0.0, 0.0], {"g": "a"}), ("y", [0.0, 1.0, 0.0], {"g": "b"}),
                        ("long", [3.0, 3.0, 0.0], {"g": "a"})])
    res = idx.query(top_k=3, vector=[1.0, 0.0, 0.0], include_metadata=True)
    assert [m.id for m in res.matches] == expected
    assert all(isinstance(m.score, float) for m in res.matches)
    by_id = idx.query(top_k=1, id="x")  # x's own vector is the query vector
    assert by_id.matches[0].id == expected[0]
    filtered = idx.query(top_k=3, vector=[1.0, 0.0, 0.0], filter={"g": {"$eq": "b"}})
    assert [m.id for m in filtered.matches] == ["y"]


def test_update_merges_metadata_and_delete_variants(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    idx.upsert(vectors=[("a", [1.0, 0.0, 0.0], {"g": "x", "n": 1}), ("b", [0.0, 1.0, 0.0], {"g": "y"}),
                        ("c", [0.0, 0.0, 1.0], {"g": "y"})])
    idx.update(id="a", set_metadata={"n": 2}, values=[0.5, 0.5, 0.0])
    got = idx.fetch(ids=["a"]).vectors["a"]
    assert got.metadata == {"g": "x", "n": 2} and got.values == [0.5, 0.5, 0.0]
    idx.delete(filter={"g": {"$eq": "y"}})
    assert sorted(idx.fetch(ids=["a", "b", "c"]).vectors) == ["a"]
    idx.delete(ids=["a", "never-existed"])
    assert idx.describe_index_stats().total_vector_count == 0
    idx.upsert(vectors=[("d", [1.0, 0.0, 0.0])], namespace="ns")
    idx.delete(delete_all=True, namespace="ns")
    assert idx.fetch(ids=["d"], namespace="ns").vectors == {}
    with pytest.raises(NotFoundError, match="Namespace not found"):
        idx.delete(ids=["a"], namespace="never-written")


# -- faults and consistency -------------------------------------------------------------------


def test_429_with_retry_after_is_retried_by_the_sdk(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    pinecone_server.faults = Faults(retry_after=1)  # whole seconds, as RFC 9110 has it
    pinecone_server.fail_next("429", count=1, operation="upsert")
    started = time.monotonic()
    assert idx.upsert(vectors=[("a", [1.0, 2.0, 3.0])]).upserted_count == 1
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert pinecone_server.request_counts["upsert"] == 2
    assert pinecone_server.fault_counts == {"429": 1}


def test_lost_response_applies_the_write_and_drops_the_connection(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    pinecone_server.fail_next("lost", operation="upsert")
    idx.upsert(vectors=[("a", [1.0, 2.0, 3.0])])  # the SDK retries the dropped request
    assert pinecone_server.request_counts["upsert"] == 2
    assert sorted(pinecone_server.index("demo").namespaces["__default__"].records) == ["a"]


def test_persistent_503_surfaces_after_the_sdk_gives_up(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    pinecone_server.faults = Faults(rate_5xx=1.0, operations=frozenset({"fetch"}))
    with pytest.raises(ServiceError):
        idx.fetch(ids=["a"])
    assert pinecone_server.request_counts["fetch"] == 4  # the SDK's 1 + 3 retries


def test_random_faults_are_reproducible_with_a_seed(pinecone_server: PineconeServer) -> None:
    def sequence() -> list[str | None]:
        pinecone_server.faults = Faults(rate_429=0.2, rate_5xx=0.2, rate_drop=0.1, seed=7)
        return [pinecone_server._decide("fetch").kind for _ in range(50)]

    first, second = sequence(), sequence()
    assert first == second and {k for k in first if k} >= {"429", "drop"}


def test_visibility_delay_and_lsn_headers(pinecone_server: PineconeServer) -> None:
    idx = _index(pinecone_server)
    pinecone_server.faults = Faults(visibility_delay=0.3)
    resp = idx.upsert(vectors=[("a", [1.0, 2.0, 3.0])])
    target = resp.response_info.lsn_committed
    assert target == 1
    assert idx.fetch(ids=["a"]).vectors == {}  # committed, not yet visible
    assert not idx.query(top_k=1, vector=[1.0, 2.0, 3.0]).response_info.is_reconciled(target)
    time.sleep(0.35)
    assert idx.query(top_k=1, vector=[1.0, 2.0, 3.0]).response_info.is_reconciled(target)
    assert list(idx.fetch(ids=["a"]).vectors) == ["a"]
