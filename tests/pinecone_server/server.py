"""A local server that speaks Pinecone's REST API closely enough for the unmodified SDK.

Pinecone cannot be reached from CI, and a mock would only test our assumptions about it. This
server instead follows the published wire format (reference ``pinecone-api.md`` §8): the 2026-07
control-plane shape for SDK 10.x and the classic one for older clients, one port per index like
Pinecone Local, the documented limits with the real status codes and error bodies, and injectable
faults (429 with Retry-After, 5xx, dropped connections, writes applied whose response is lost,
delayed visibility) so retry and consistency code can be exercised for real.

Every request gets an answer: a refusal is Pinecone's status and error body for that plane, and a
handler that raises unexpectedly answers 500 in Pinecone's shape, is logged, and is recorded in
``unexpected_errors`` so the test that caused it fails (``fixtures.pinecone_server`` checks it)
instead of the connection silently closing. Routes live in two tables (``_CONTROL_ROUTES``,
``_DATA_ROUTES``) so new endpoints are one entry each.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import random
import re
import socket
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from tests.pinecone_server import index_requests, store
from tests.pinecone_server.store import (
    ApiFailure,
    IndexState,
    control_error,
    invalid,
    json_type,
    rpc_error,
    unprocessable,
)

log = logging.getLogger(__name__)

WRITE_OPERATIONS = frozenset({"upsert", "delete", "update"})
DATA_OPERATIONS = frozenset(
    {"upsert", "fetch", "delete", "update", "list", "query", "describe_index_stats", "list_namespaces",
     "describe_namespace", "delete_namespace", "create_namespace_alias", "list_namespace_aliases",
     "describe_namespace_alias", "repoint_namespace_alias", "delete_namespace_alias"}
)
FAULT_KINDS = ("429", "500", "503", "drop", "lost")


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are probabilities per data-plane request.

    ``lost``: the write is applied, then the connection is dropped before any response, the
    failure that makes non-idempotent retries dangerous. ``visibility_delay``: seconds before
    a committed write shows in reads (eventual consistency). ``latency``: seconds every data-plane
    request waits before it is answered, the round trip to the real service (concurrent requests
    wait side by side, as they would on the wire). ``operations`` limits faults to
    those operation names (default: every data-plane operation). ``retry_after``: the 429's
    ``Retry-After`` in whole seconds as RFC 9110 defines it (0, the default, keeps retrying tests
    fast; the SDK and vectorops sleep what it says), or None for no header.
    """

    rate_429: float = 0.0
    retry_after: int | None = 0  # whole seconds (RFC 9110 delay-seconds); None sends no header
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_lost_response: float = 0.0
    visibility_delay: float = 0.0
    latency: float = 0.0
    seed: int | None = 0
    operations: frozenset[str] | None = None

    def __post_init__(self) -> None:
        ra = self.retry_after
        if ra is not None and (not isinstance(ra, int) or isinstance(ra, bool) or ra < 0):
            raise ValueError(f"retry_after must be whole seconds (an int >= 0) or None, got {ra!r}")


@dataclass
class _Script:
    kind: str
    operation: str | None
    remaining: int


@dataclass
class _Decision:
    kind: str | None = None  # one of FAULT_KINDS, or None for a normal answer


@dataclass
class _Stats:
    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    list_prefixes: Counter[str] = field(default_factory=Counter)  # list requests by the prefix asked


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: PineconeServer, index_name: str | None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.owner = owner
        self.index_name = index_name

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Dropped connections are deliberate here; keep test output clean."""


class PineconeServer:
    """Control plane on ``url``; each index gets its own data-plane port (like Pinecone Local).

    ``srv.faults`` may be replaced at any time; assigning it reseeds the RNG so runs repeat.
    ``srv.request_counts`` counts requests per operation (faulted ones included).
    """

    def __init__(self, api_key: str = "local-test-key", *, faults: Faults | None = None) -> None:
        self.api_key = api_key
        self._lock = threading.RLock()
        self._indexes: dict[str, IndexState] = {}
        self._index_servers: dict[str, tuple[_HTTPServer, threading.Thread]] = {}
        self._control: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stats = _Stats()
        self.unexpected_errors: list[str] = []  # tracebacks of handlers that raised: a server bug
        self._script: deque[_Script] = deque()
        self._faults = Faults()
        self._rng = random.Random(0)
        self.faults = faults or Faults()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> PineconeServer:
        self._control, self._thread = self._serve(None, port)
        return self

    def stop(self) -> None:
        with self._lock:
            servers = list(self._index_servers.values())
            self._index_servers.clear()
        if self._control is not None:
            servers.append((self._control, self._thread))  # type: ignore[arg-type]
            self._control = None
        for srv, thread in servers:
            srv.shutdown()
            srv.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> PineconeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._control is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._control.server_address[1]}"

    def _serve(self, index_name: str | None, port: int = 0) -> tuple[_HTTPServer, threading.Thread]:
        srv = _HTTPServer(self, index_name, port)
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        return srv, thread

    # -- faults and counters ------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults = replace(value)
            self._rng = random.Random(value.seed)

    def fail_next(self, kind: str, count: int = 1, operation: str | None = None) -> None:
        """Script the next ``count`` requests (of ``operation``, if given) to fail as ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        with self._lock:
            self._script.append(_Script(kind, operation, count))

    def clear_script(self) -> None:
        """Forget scripted failures not yet used (the outage is over)."""
        with self._lock:
            self._script.clear()

    @property
    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats.requests)

    @property
    def list_prefixes(self) -> dict[str, int]:
        """How many list requests (pages) asked for each prefix ("" for none)."""
        with self._lock:
            return dict(self._stats.list_prefixes)

    @property
    def fault_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats.faults)

    def raise_unexpected_errors(self) -> None:
        """Fail loudly if any request hit a server bug (each was answered 500 and logged)."""
        with self._lock:
            errors = list(self.unexpected_errors)
        if errors:
            raise AssertionError(
                f"the local Pinecone server raised on {len(errors)} request(s); first:\n{errors[0]}"
            )

    def reset_counts(self) -> None:
        with self._lock:
            self._stats = _Stats()

    def _decide(self, operation: str) -> _Decision:
        with self._lock:
            self._stats.requests[operation] += 1
            decision = self._scripted(operation) or self._random(operation)
            if decision.kind == "lost" and operation not in WRITE_OPERATIONS:
                decision.kind = "drop"
            if decision.kind:
                self._stats.faults[decision.kind] += 1
            return decision

    def _scripted(self, operation: str) -> _Decision | None:
        for item in self._script:
            if item.operation in (None, operation):
                item.remaining -= 1
                if item.remaining <= 0:
                    self._script.remove(item)
                return _Decision(item.kind)
        return None

    def _random(self, operation: str) -> _Decision:
        f = self._faults
        allowed = f.operations if f.operations is not None else DATA_OPERATIONS
        if operation not in allowed:
            return _Decision()
        roll = self._rng.random()
        for kind, rate in (
            ("429", f.rate_429),
            ("5xx", f.rate_5xx),
            ("drop", f.rate_drop),
            ("lost", f.rate_lost_response if operation in WRITE_OPERATIONS else 0.0),
        ):
            if roll < rate:
                if kind == "5xx":
                    kind = self._rng.choice(("503", "500"))
                return _Decision(kind)
            roll -= rate
        return _Decision()

    # -- index registry -----------------------------------------------------------------------

    def index(self, name: str) -> IndexState:
        """Direct access to an index's state, for tests that inspect what was stored."""
        with self._lock:
            return self._indexes[name]

    def create_index(self, name: str, dimension: int, metric: str = "cosine", **kw: Any) -> IndexState:
        with self._lock:
            if name in self._indexes:
                raise ApiFailure(
                    409, {"status": 409, "error": {"code": "ALREADY_EXISTS", "message": "Resource already exists"}}
                )
            state = IndexState(name=name, dimension=dimension, metric=metric, **kw)
            state.visibility_delay = lambda: self._faults.visibility_delay
            srv, thread = self._serve(name)
            state.host = f"http://127.0.0.1:{srv.server_address[1]}"
            self._indexes[name] = state
            self._index_servers[name] = (srv, thread)
            return state

    def delete_index(self, name: str) -> None:
        with self._lock:
            self._indexes.pop(name)
            srv, _thread = self._index_servers.pop(name)
        srv.shutdown()
        srv.server_close()


# -- HTTP -------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate small writes; without this, Nagle's algorithm and
        # the client's delayed ACK add ~20-40 ms to every request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: the SDK's own logs are what tests look at."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing -----------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        """Answer one request; nothing a request contains may leave it without a response."""
        control = self.server.index_name is None
        try:
            self._answer(method, control)
        except Exception:  # noqa: BLE001 - a server bug: answer as Pinecone would, and record it
            detail = f"{method} {self.path}\n{traceback.format_exc()}"
            log.error("local Pinecone server: unexpected error on %s", detail)
            with self.server.owner._lock:
                self.server.owner.unexpected_errors.append(detail)
            if control:
                self._send_json(500, {"status": 500, "error": {"code": "UNKNOWN", "message": "Internal server error"}})
            else:
                self._send_json(500, {"code": 13, "message": "Internal server error", "details": []})

    def _answer(self, method: str, control: bool) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        raw = self._read_body()
        query = parse_qs(parts.query, keep_blank_values=True)
        route = _control_route if control else _data_route
        try:
            operation, handler, arg = route(method, parts.path)
        except ApiFailure as failure:
            self._send_failure(failure, control)
            return
        if self.headers.get("Api-Key") != owner.api_key:
            owner._decide(operation)  # counted, never faulted
            if control:
                self._send_json(
                    401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API key."}, "status": 401}
                )
            else:
                self._send(401, b"Unauthorized", "text/plain")
            return
        decision = owner._decide(operation)
        if operation == "list":
            with owner._lock:
                owner._stats.list_prefixes[(query.get("prefix") or [""])[0]] += 1
        if not control and owner.faults.latency > 0:
            time.sleep(owner.faults.latency)
        if decision.kind == "drop":
            self._drop()
            return
        if decision.kind in ("429", "500", "503"):
            self._send_fault(decision.kind, control)
            return
        try:
            if operation == "upsert" and len(raw) > store.MAX_REQUEST_BYTES:
                raise rpc_error(413, 3, "Your request is larger than the maximum supported size - 2MB.")
            body = _parse_body(raw, control)
            status, payload, headers = handler(self, arg, body, query)
        except ApiFailure as failure:
            self._send_failure(failure, control)
            return
        if decision.kind == "lost":
            self._drop()
            return
        if payload is None:
            self._send(status, b"", None, headers)
        else:
            self._send_json(status, payload, headers)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_fault(self, kind: str, control: bool) -> None:
        if kind == "429":
            retry_after = self.server.owner.faults.retry_after
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._send(429, b"Too Many Requests: request rate limit exceeded for this namespace", "text/plain", headers)
        elif control:
            code = "UNAVAILABLE" if kind == "503" else "UNKNOWN"
            message = "Service temporarily unavailable" if kind == "503" else "Internal server error"
            self._send_json(int(kind), {"status": int(kind), "error": {"code": code, "message": message}})
        elif kind == "503":
            self._send_json(503, {"code": 14, "message": "Service temporarily unavailable", "details": []})
        else:
            self._send_json(500, {"code": 13, "message": "Internal error", "details": []})

    def _send_failure(self, failure: ApiFailure, control: bool) -> None:
        if isinstance(failure.body, str):
            self._send(failure.status, failure.body.encode(), "text/plain")
        else:
            self._send_json(failure.status, failure.body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, separators=(",", ":")).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-pinecone-request-id", f"{random.getrandbits(63):x}")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    @property
    def api_version(self) -> str:
        return self.headers.get("X-Pinecone-Api-Version") or "2025-10"

    @property
    def index_state(self) -> IndexState:
        try:
            return self.server.owner.index(self.server.index_name or "")
        except KeyError:
            raise rpc_error(404, 5, "Index not found") from None


def _parse_body(raw: bytes, control: bool) -> dict[str, Any]:
    """The JSON object a request carries, refused in the plane's own error shape.

    The control plane (an axum service) answers 400 to a body that is not JSON and 422 to JSON
    of the wrong shape ("Failed to deserialize the JSON body into the target type"), both as
    ``{"status", "error"}``; the data plane answers 400 in the rpcStatus shape.
    """
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError included
        if control:
            raise _cp_error(400, "INVALID_ARGUMENT", f"Failed to parse the request body as JSON: {exc}") from None
        raise invalid("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        if control:
            raise unprocessable(f"invalid type: {json_type(body)}, expected an object")
        raise invalid("Request body must be a JSON object")
    return body


# -- control plane ----------------------------------------------------------------------------

Result = tuple[int, Any, dict[str, str]]


_cp_error = control_error


def _control_route(method: str, path: str) -> tuple[str, Any, str]:
    if path.rstrip("/") == "/indexes":
        if method == "GET":
            return "list_indexes", _list_indexes, ""
        if method == "POST":
            return "create_index", _create_index, ""
    m = re.fullmatch(r"/indexes/([^/]+)", path)
    if m:
        name = unquote(m.group(1))
        if method == "GET":
            return "describe_index", _describe_index, name
        if method == "DELETE":
            return "delete_index", _delete_index, name
        if method == "PATCH":
            return "configure_index", _configure_index, name
    raise _cp_error(404, "NOT_FOUND", f"{method} {path} is not served by this local Pinecone server")


def _index_model(state: IndexState, api_version: str) -> dict[str, Any]:
    """IndexModel in the shape the client's API version expects (2026-07 changed it).

    ``tags`` is left out when there are none: the spec types it as an object, never null."""
    status = {"ready": True, "state": "Ready"}
    read_capacity = {"mode": "OnDemand", "status": {"state": "Ready"}}
    tags = {"tags": state.tags} if state.tags else {}
    if index_requests.schema_shape(api_version):
        return {
            "name": state.name,
            "host": state.host,
            "status": status,
            "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": state.dimension,
                                              "metric": state.metric}}},
            "deployment": {"deployment_type": "managed", "cloud": state.cloud, "region": state.region},
            "deletion_protection": state.deletion_protection,
            **tags,
            "read_capacity": read_capacity,
        }
    return {
        "name": state.name,
        "dimension": state.dimension,
        "metric": state.metric,
        "host": state.host,
        "spec": {"serverless": {"cloud": state.cloud, "region": state.region, "read_capacity": read_capacity}},
        "status": status,
        "vector_type": "dense",
        "deletion_protection": state.deletion_protection,
        **tags,
    }


def _lookup(h: _Handler, name: str) -> IndexState:
    try:
        return h.server.owner.index(name)
    except KeyError:
        raise _cp_error(404, "NOT_FOUND", f"Index {name} not found.") from None


def _list_indexes(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    with h.server.owner._lock:
        states = list(h.server.owner._indexes.values())
    return 200, {"indexes": [_index_model(s, h.api_version) for s in states]}, {}


def _create_index(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    request = index_requests.read_create_request(body, h.api_version)
    try:
        state = h.server.owner.create_index(
            request.name, request.dimension, request.metric, cloud=request.cloud, region=request.region,
            deletion_protection=request.deletion_protection, tags=request.tags,
        )
    except ApiFailure:
        raise _cp_error(409, "ALREADY_EXISTS", "Resource already exists") from None
    return 201, _index_model(state, h.api_version), {}


def _describe_index(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    return 200, _index_model(_lookup(h, name), h.api_version), {}


def _configure_index(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    state = _lookup(h, name)
    if body.get("deletion_protection") in ("enabled", "disabled"):
        state.deletion_protection = body["deletion_protection"]
    if isinstance(body.get("tags"), dict):  # a tag set to "" is removed
        merged = {**(state.tags or {}), **body["tags"]}
        state.tags = {k: v for k, v in merged.items() if v != ""} or None
    return 202, _index_model(state, h.api_version), {}


def _delete_index(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    state = _lookup(h, name)
    if state.deletion_protection == "enabled":
        raise _cp_error(
            403, "FORBIDDEN",
            "Deletion protection is enabled for this index. Disable deletion protection before retrying.",
        )
    h.server.owner.delete_index(name)
    return 202, None, {}


# -- data plane -------------------------------------------------------------------------------


def _data_route(method: str, path: str) -> tuple[str, Any, str]:
    from tests.pinecone_server import aliases as al
    from tests.pinecone_server import data_plane as dp

    table = {
        ("POST", "/vectors/upsert"): ("upsert", dp.upsert),
        ("GET", "/vectors/fetch"): ("fetch", dp.fetch),
        ("POST", "/vectors/delete"): ("delete", dp.delete),
        ("POST", "/vectors/update"): ("update", dp.update),
        ("GET", "/vectors/list"): ("list", dp.list_ids),
        ("POST", "/query"): ("query", dp.query),
        ("POST", "/describe_index_stats"): ("describe_index_stats", dp.describe_index_stats),
        ("GET", "/describe_index_stats"): ("describe_index_stats", dp.describe_index_stats),
        ("GET", "/namespaces"): ("list_namespaces", dp.list_namespaces),
        ("POST", "/namespace-aliases"): ("create_namespace_alias", al.create),
        ("GET", "/namespace-aliases"): ("list_namespace_aliases", al.list_aliases),
    }
    if (method, path) in table:
        op, fn = table[(method, path)]
        return op, fn, ""
    m = re.fullmatch(r"/namespaces/([^/]+)", path)
    if m and method in ("GET", "DELETE"):
        ns = unquote(m.group(1))
        return ("describe_namespace", dp.describe_namespace, ns) if method == "GET" else (
            "delete_namespace", dp.delete_namespace, ns)
    m = re.fullmatch(r"/namespace-aliases/([^/]+)", path)
    if m and method in ("GET", "PATCH", "DELETE"):
        name = unquote(m.group(1))
        return {
            "GET": ("describe_namespace_alias", al.describe, name),
            "PATCH": ("repoint_namespace_alias", al.repoint, name),
            "DELETE": ("delete_namespace_alias", al.delete, name),
        }[method]
    raise rpc_error(404, 5, f"{method} {path} is not served by this local Pinecone server")


def encode_token(skip_past: str, prefix: str) -> str:
    """Opaque pagination token: base64 of JSON, as the real service's tokens decode to."""
    return base64.b64encode(json.dumps({"skip_past": skip_past, "prefix": prefix}).encode()).decode()


def decode_token(token: str, prefix: str) -> str:
    try:
        data = json.loads(base64.b64decode(token.encode(), validate=True))
        if not isinstance(data, dict) or not isinstance(data.get("skip_past"), str):
            raise ValueError  # noqa: TRY004 - caught just below: every bad token gets the one 400
    except (ValueError, binascii.Error):
        raise invalid("Invalid pagination token") from None
    if data.get("prefix", "") != prefix:
        raise invalid("Pagination token does not match the request's prefix")
    return data["skip_past"]


def lsn_headers(committed: int | None, indexed: int) -> dict[str, str]:
    headers = {"x-pinecone-max-indexed-lsn": str(indexed)}
    if committed is not None:
        headers["x-pinecone-request-lsn"] = str(committed)
    return headers


def as_float_list(values: np.ndarray) -> list[float]:
    return [float(x) for x in values]


def now() -> float:
    return time.monotonic()
