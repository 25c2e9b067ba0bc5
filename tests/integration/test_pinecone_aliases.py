"""Namespace aliases (API 2026-07): the local server's endpoints as Pinecone documents them, and
vectorops' use of them (``PineconeDestination``'s alias methods, over the SDK's own HTTP client).

The server is spoken to with plain HTTP here (the SDK has no alias methods) and read through the
real SDK, as an application that reads through an alias would.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from reconciler.errors import DestinationConfigError
from reconciler.providers.pinecone import PineconeDestination
from reconciler.records import RecordBatch
from tests.pinecone_server.fixtures import API_KEY
from tests.pinecone_server.server import PineconeServer

DIM = 4
HEADERS = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}


def _batch(ids: list[str], tag: str) -> RecordBatch:
    vectors = np.eye(len(ids), DIM, dtype=np.float32) + np.float32(0.1)
    return RecordBatch(ids=pa.array(ids), vectors=vectors, metadata=pa.table({"version": [tag] * len(ids)}))


@pytest.fixture
def index(pinecone_server: PineconeServer) -> tuple[PineconeServer, str]:
    """An index with namespaces ``docs__blue`` (v1: a, b) and ``docs__green`` (v2: a, b, c)."""
    dest = PineconeDestination(index="idx", host=None, namespace="docs")
    dest.ensure(DIM, "cosine")
    dest.open_slot("blue").upsert(_batch(["a", "b"], "v1"))
    dest.open_slot("green").upsert(_batch(["a", "b", "c"], "v2"))
    host = pinecone_server.index("idx").host
    dest.close()
    return pinecone_server, host if host.startswith("http") else f"http://{host}"


def _call(host: str, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return httpx.request(method, f"{host}{path}", json=body, headers={**HEADERS, **headers}, timeout=10)


def _reason(resp: httpx.Response) -> str:
    return resp.json()["details"][0]["reason"]


def test_alias_lifecycle_and_documented_refusals(index: tuple[PineconeServer, str]) -> None:
    _, host = index
    created = _call(host, "POST", "/namespace-aliases", {"name": "docs", "target_namespace": "docs__blue"})
    assert created.status_code == 200
    assert {k: created.json()[k] for k in ("name", "target_namespace")} == {"name": "docs", "target_namespace": "docs__blue"}

    again = _call(host, "POST", "/namespace-aliases", {"name": "docs", "target_namespace": "docs__green"})
    assert again.status_code == 409 and _reason(again) == "ALIAS_ALREADY_EXISTS"
    assert again.json()["details"][0]["metadata"]["target_namespace"] == "docs__blue"  # the current target

    missing_target = _call(host, "PATCH", "/namespace-aliases/docs", {"target_namespace": "docs__nothing"})
    assert missing_target.status_code == 404 and _reason(missing_target) == "NAMESPACE_NOT_FOUND"
    assert _call(host, "GET", "/namespace-aliases/docs").json()["target_namespace"] == "docs__blue"  # kept

    first = _call(host, "PATCH", "/namespace-aliases/docs", {"target_namespace": "docs__green"}).json()
    retried = _call(host, "PATCH", "/namespace-aliases/docs", {"target_namespace": "docs__green"}).json()
    assert first["target_namespace"] == retried["target_namespace"] == "docs__green"
    assert retried["updated_at"] >= first["updated_at"] and retried["created_at"] == first["created_at"]

    listed = _call(host, "GET", "/namespace-aliases").json()
    assert listed["total_count"] == 1 and [a["name"] for a in listed["namespace_aliases"]] == ["docs"]
    assert _call(host, "GET", "/namespace-aliases?target_namespace=docs__blue").json()["total_count"] == 0

    write = _call(host, "POST", "/vectors/upsert", {"namespace": "docs", "vectors": [{"id": "x", "values": [1.0] * DIM}]})
    assert write.status_code == 400 and _reason(write) == "WRITE_TO_ALIAS"
    old_version = _call(host, "GET", "/namespace-aliases", **{"X-Pinecone-Api-Version": "2025-10"})
    assert old_version.status_code == 400  # alias management needs 2026-07

    assert _call(host, "DELETE", "/namespace-aliases/docs").status_code == 200
    gone = _call(host, "DELETE", "/namespace-aliases/docs")
    assert gone.status_code == 404 and _reason(gone) == "ALIAS_NOT_FOUND"


def test_reads_through_an_alias_with_the_sdk(index: tuple[PineconeServer, str]) -> None:
    from pinecone import Pinecone

    _, host = index
    _call(host, "POST", "/namespace-aliases", {"name": "docs", "target_namespace": "docs__green"})
    idx = Pinecone(api_key=API_KEY).Index(host=host)
    query = idx.query(vector=[1.0] * DIM, top_k=10, namespace="docs", include_metadata=True)
    assert sorted(m.id for m in query.matches) == ["a", "b", "c"] and {m.metadata["version"] for m in query.matches} == {"v2"}
    assert sorted(idx.fetch(ids=["a", "c"], namespace="docs").vectors) == ["a", "c"]
    assert sorted(v.id for v in idx.list_paginated(namespace="docs").vectors) == ["a", "b", "c"]
    described = _call(host, "GET", "/namespaces/docs").json()
    assert described["record_count"] == "3"
    _call(host, "DELETE", "/namespace-aliases/docs")
    assert idx.query(vector=[1.0] * DIM, top_k=10, namespace="docs").matches == []  # a deleted alias reads as nothing


def test_destination_switches_idempotently_and_refuses_what_it_must(index: tuple[PineconeServer, str]) -> None:
    server, host = index
    dest = PineconeDestination(index="idx", host=None, namespace="docs")
    assert dest.alias_target() is None and dest.list_slots() == ["blue", "green"]
    server.reset_counts()
    server.fail_next("lost", operation="create_namespace_alias")  # the create lands, its response is lost
    dest.switch_alias("blue")  # retried: 409 ALIAS_ALREADY_EXISTS naming our target is success
    assert dest.alias_target() == "blue"
    counts = server.request_counts
    assert counts["create_namespace_alias"] == 2 and counts["repoint_namespace_alias"] == 1  # the first PATCH: 404
    dest.switch_alias("green")  # the alias exists: one PATCH
    assert dest.alias_target() == "green" and server.request_counts["repoint_namespace_alias"] == 2
    assert server.request_counts["create_namespace_alias"] == 2
    with pytest.raises(Exception, match="refusing to delete the slot 'green'"):
        dest.drop_slot("green")
    dest.drop_slot("blue")
    assert dest.list_slots() == ["green"]

    _call(host, "PATCH", "/namespace-aliases/docs", {"target_namespace": "docs__green"})
    other = PineconeDestination(index="idx", host=None, namespace="plain")
    other.upsert(_batch(["z"], "v0"))
    other.after_apply()
    with pytest.raises(DestinationConfigError, match="is a namespace holding records"):
        other.alias_target()
    dest.close()
    other.close()
