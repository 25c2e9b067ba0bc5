"""The local Pinecone server answers as Pinecone does where it used to differ (issue 14).

Each test sends what a client could send, over a raw HTTP connection where the point is the exact
status, headers and body (and that there is a response at all), or through the real SDK where the
point is what a user of the SDK sees.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("pinecone")

from pinecone import Pinecone, PodSpec, ServerlessSpec  # noqa: E402
from pinecone.errors import ForbiddenError  # noqa: E402

from tests.pinecone_server import Faults, PineconeServer, data_plane  # noqa: E402  # noqa: E402
from tests.pinecone_server import server as server_module
from tests.pinecone_server.fixtures import API_KEY  # noqa: E402

SERVERLESS = {"serverless": {"cloud": "aws", "region": "us-east-1"}}


def _request(
    url: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None, version: str = "2025-10",
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection: (status, headers, JSON body or text).

    ``http.client`` raises ``RemoteDisconnected`` when the server closes the connection without
    answering, so "no response at all" fails the test instead of passing unnoticed.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": version}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        content_type = resp.getheader("Content-Type") or ""
        return resp.status, dict(resp.getheaders()), json.loads(text) if "json" in content_type else text
    finally:
        conn.close()


@pytest.fixture
def index_host(pinecone_server: PineconeServer) -> Iterator[str]:
    """An index of dimension 3 holding one record with metadata, so filters are evaluated."""
    pc = Pinecone(api_key=API_KEY)
    pc.create_index(name="demo", dimension=3, metric="cosine", spec=ServerlessSpec(cloud="aws", region="us-east-1"))
    idx = pc.Index(name="demo")
    idx.upsert(vectors=[("a", [1.0, 0.0, 0.0], {"genre": "drama", "year": 2019})])
    yield pinecone_server.index("demo").host


# -- malformed requests get Pinecone's refusal, never a dropped connection ---------------------


@pytest.mark.parametrize(
    ("version", "body", "problem"),
    [
        ("2025-10", {"name": "x", "dimension": 3, "metric": "cosine", "spec": "serverless"},
         "spec: invalid type: string 'serverless', expected an object"),
        ("2025-10", {"name": "x", "dimension": 3, "metric": "cosine", "spec": {"serverless": [None]}},
         "spec.serverless: invalid type: sequence, expected an object"),
        ("2026-07", {"name": "x", "schema": [1]}, "schema: invalid type: sequence, expected an object"),
    ],
    ids=["spec-string", "spec-serverless-list", "schema-list"],
)
def test_create_index_with_a_malformed_body_is_refused_422(
    pinecone_server: PineconeServer, version: str, body: dict[str, Any], problem: str
) -> None:
    status, _, answer = _request(pinecone_server.url, "POST", "/indexes", body, version=version)
    assert status == 422
    assert answer == {
        "status": 422,
        "error": {"code": "UNPROCESSABLE_ENTITY",
                  "message": f"Failed to deserialize the JSON body into the target type: {problem}"},
    }
    assert _request(pinecone_server.url, "GET", "/indexes")[2] == {"indexes": []}


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("genre", "Invalid filter: a filter must be a JSON object, got string 'genre'"),
        ({"$and": 5}, "Invalid filter: $and must be followed by a non-empty array of filters"),
        ({"genre": {"$in": 5}}, ("Invalid filter: $in on field 'genre' must be followed by an array of at most "
                                "10000 strings, numbers or booleans, got number `5`")),
    ],
    ids=["string", "and-number", "in-number"],
)
def test_query_with_a_malformed_filter_is_refused_400(index_host: str, flt: Any, message: str) -> None:
    status, _, answer = _request(index_host, "POST", "/query", {"topK": 1, "vector": [1, 0, 0], "filter": flt})
    assert (status, answer) == (400, {"code": 3, "message": message, "details": []})


def test_delete_and_update_check_filters_the_same_way(index_host: str, pinecone_server: PineconeServer) -> None:
    for path, body in (
        ("/vectors/delete", {"filter": {"$or": "x"}}),
        ("/vectors/update", {"filter": {"year": {"$gt": "2019"}}, "setMetadata": {"k": "v"}}),
    ):
        status, _, answer = _request(index_host, "POST", path, body)
        assert status == 400 and answer["code"] == 3 and answer["message"].startswith("Invalid filter:")
    assert sorted(pinecone_server.index("demo").namespaces["__default__"].records) == ["a"]  # nothing deleted


def test_a_handler_that_raises_is_answered_500_in_pinecone_shape_and_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the stand-in")

    monkeypatch.setattr(data_plane, "describe_index_stats", broken)
    monkeypatch.setattr(server_module, "_list_indexes", broken)
    with PineconeServer(api_key=API_KEY) as srv:
        host = srv.create_index("demo", 3).host
        assert _request(host, "POST", "/describe_index_stats", {})[::2] == (
            500, {"code": 13, "message": "Internal server error", "details": []})
        assert _request(srv.url, "GET", "/indexes")[::2] == (
            500, {"status": 500, "error": {"code": "UNKNOWN", "message": "Internal server error"}})
        assert len(srv.unexpected_errors) == 2 and "a bug in the stand-in" in srv.unexpected_errors[0]
        with pytest.raises(AssertionError, match="raised on 2 request"):
            srv.raise_unexpected_errors()  # what the pinecone_server fixture does at teardown


# -- namespaces ----------------------------------------------------------------------------------


def test_list_namespaces_pages_by_limit_and_token(index_host: str) -> None:
    idx = Pinecone(api_key=API_KEY).Index(host=index_host)
    for ns in ("ns-c", "ns-a", "ns-e", "ns-b", "ns-d"):
        idx.upsert(vectors=[("v", [1.0, 2.0, 3.0])], namespace=ns)
    seen, token, pages = [], None, 0
    while True:
        query = "/namespaces?prefix=ns-&limit=2" + (f"&paginationToken={token}" if token else "")
        status, _, page = _request(index_host, "GET", query)
        assert status == 200 and page["total_count"] == 5 and len(page["namespaces"]) <= 2
        seen += [n["name"] for n in page["namespaces"]]
        pages += 1
        token = (page.get("pagination") or {}).get("next")
        if not token:
            break
    assert (seen, pages) == (["ns-a", "ns-b", "ns-c", "ns-d", "ns-e"], 3)
    sdk_page = idx.list_namespaces_paginated(prefix="ns-", limit=3)
    assert [n.name for n in sdk_page.namespaces] == ["ns-a", "ns-b", "ns-c"]
    for bad in ("limit=0", "limit=101", "limit=x", "paginationToken=not-a-token"):
        status, _, answer = _request(index_host, "GET", f"/namespaces?{bad}")
        assert status == 400 and answer["code"] == 3


# -- injected faults -----------------------------------------------------------------------------


def test_injected_429_carries_retry_after_in_whole_seconds(pinecone_server: PineconeServer, index_host: str) -> None:
    for faults, expected in ((Faults(), "0"), (Faults(retry_after=2), "2")):
        pinecone_server.faults = faults
        pinecone_server.fail_next("429", operation="describe_index_stats")
        status, headers, _ = _request(index_host, "POST", "/describe_index_stats", {})
        assert (status, headers.get("Retry-After")) == (429, expected)
    with pytest.raises(ValueError, match="whole seconds"):
        Faults(retry_after=0.05)  # type: ignore[arg-type]


# -- control plane -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", "/indexes"), ("PATCH", "/indexes/demo")])
def test_control_plane_bad_json_gets_the_control_plane_error_shape(
    pinecone_server: PineconeServer, method: str, path: str
) -> None:
    status, _, answer = _request(pinecone_server.url, method, path, raw=b'{"name": "demo",')
    assert status == 400
    assert answer["status"] == 400 and answer["error"]["code"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"].startswith("Failed to parse the request body as JSON")


def test_create_index_without_spec_is_refused_422_and_creates_nothing(pinecone_server: PineconeServer) -> None:
    status, _, answer = _request(pinecone_server.url, "POST", "/indexes", {"name": "demo", "dimension": 3})
    assert (status, answer["error"]["code"]) == (422, "UNPROCESSABLE_ENTITY")
    assert answer["error"]["message"].endswith("missing field `spec`")
    assert _request(pinecone_server.url, "GET", "/indexes")[2] == {"indexes": []}


def test_a_pod_index_is_refused_as_pinecone_refuses_a_project_without_pod_quota(
    pinecone_server: PineconeServer,
) -> None:
    """Never created as a serverless index: the SDK user sees Pinecone's 403, and no index exists."""
    pc = Pinecone(api_key=API_KEY)
    with pytest.raises(ForbiddenError, match="max pod-based indexes"):
        pc.create_index(name="pods", dimension=3, metric="cosine",
                        spec=PodSpec(environment="us-east-1-aws", pod_type="p1.x1"))
    body = {"name": "pods", "dimension": 3, "spec": {"pod": {"environment": "us-east-1-aws", "pod_type": "p1.x1"}}}
    status, _, answer = _request(pinecone_server.url, "POST", "/indexes", body)
    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN")
    assert pc.list_indexes().names() == []


def test_an_unknown_serverless_region_is_404(pinecone_server: PineconeServer) -> None:
    body = {"name": "demo", "dimension": 3, "spec": {"serverless": {"cloud": "aws", "region": "us-east1"}}}
    status, _, answer = _request(pinecone_server.url, "POST", "/indexes", body)
    assert (status, answer) == (404, {"status": 404, "error": {
        "code": "NOT_FOUND", "message": "Resource cloud: aws region: us-east1 not found."}})
