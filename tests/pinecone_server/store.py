"""In-memory index state for the local Pinecone server: records, namespaces, limits, filters.

Kept apart from the HTTP layer so the rules Pinecone enforces (limits, value types, namespace
aliasing, byte-wise list order, eventual visibility) read as plain Python. Every rule here is
taken from the reference (``pinecone-api.md`` §2-§3, §8) and raises ``ApiFailure`` with the
status and body the real service sends.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_VECTORS_PER_UPSERT = 1000
MAX_IDS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40960
MAX_ID_LENGTH = 512
MAX_DIMENSION = 20000
METRICS = ("cosine", "dotproduct", "euclidean")
DEFAULT_NAMESPACE = "__default__"


class ApiFailure(Exception):
    """A request the server refuses: HTTP status plus the exact body to send."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def rpc_error(status: int, code: int, message: str) -> ApiFailure:
    """Data-plane error in the rpcStatus shape: ``{"code", "message", "details"}``."""
    return ApiFailure(status, {"code": code, "message": message, "details": []})


def invalid(message: str) -> ApiFailure:
    return rpc_error(400, 3, message)


def control_error(status: int, code: str, message: str) -> ApiFailure:
    """Control-plane error in its own shape: ``{"status", "error": {"code", "message"}}``."""
    return ApiFailure(status, {"status": status, "error": {"code": code, "message": message}})


def unprocessable(problem: str) -> ApiFailure:
    """The control plane's 422: JSON that does not deserialize into the request's type."""
    return control_error(
        422, "UNPROCESSABLE_ENTITY", f"Failed to deserialize the JSON body into the target type: {problem}"
    )


def json_type(value: Any) -> str:
    """How the control plane's deserializer names a JSON value's type in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"[:80]
    return "sequence" if isinstance(value, list) else "map"


def canonical_namespace(ns: Any) -> str:
    """Absent, ``""`` and ``"__default__"`` are one namespace (API 2025-04 and later)."""
    if ns is None or ns == "" or ns == DEFAULT_NAMESPACE:
        return DEFAULT_NAMESPACE
    if not isinstance(ns, str):
        raise invalid("namespace must be a string")
    if len(ns) > MAX_ID_LENGTH or not ns.isascii() or "\x00" in ns:
        raise invalid(f"Namespace name must be 1-{MAX_ID_LENGTH} ASCII characters without NUL")
    return ns


def shown_namespace(ns: str) -> str:
    """The namespace as responses echo it: the default one as ``""``."""
    return "" if ns == DEFAULT_NAMESPACE else ns


def check_id(vid: Any) -> str:
    if not isinstance(vid, str) or not vid:
        raise invalid("Vector ID must be a non-empty string")
    if len(vid) > MAX_ID_LENGTH:
        raise invalid(f"Vector ID must be {MAX_ID_LENGTH} characters or less, got {len(vid)}: '{vid[:40]}...'")
    if not vid.isascii() or "\x00" in vid:
        raise invalid(f"Vector ID must be ASCII without NUL characters: '{vid}'")
    return vid


def clean_metadata(vid: str, metadata: Any) -> dict[str, Any]:
    """Validate metadata as Pinecone does; null values are stripped on write."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise invalid(f"Metadata for vector '{vid}' must be an object")
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise invalid(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key.startswith("$"):
            raise invalid(f"Metadata key '{key}' of vector '{vid}' must not start with '$'")
        if value is None:
            continue
        if isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value)):
            out[key] = value
        elif isinstance(value, list) and all(isinstance(x, str) for x in value):
            out[key] = list(value)
        else:
            raise invalid(
                f"Metadata value for field '{key}' of vector '{vid}' must be a string, number, boolean "
                f"or list of strings, got {type(value).__name__}"
            )
    return out


def parse_values(vid: str, values: Any, dimension: int) -> np.ndarray:
    if not isinstance(values, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in values
    ):
        raise invalid(f"Values of vector '{vid}' must be a list of numbers")
    if len(values) != dimension:
        raise invalid(f"Vector dimension {len(values)} does not match the dimension of the index {dimension}")
    arr = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise invalid(f"Values of vector '{vid}' must be finite")
    if not np.any(np.abs(arr) >= 1e-8):
        raise invalid(f"Dense vectors must contain at least one non-zero value (vector '{vid}')")
    return arr


# -- metadata filters ------------------------------------------------------------------------


MAX_FILTER_VALUES = 10_000  # values in one $in / $nin


def check_filter(flt: Any) -> dict[str, Any]:
    """A metadata filter Pinecone accepts, or its 400, before any record is looked at.

    Checked whole and up front: an operator given the wrong kind of argument is refused
    even when there is nothing to match, as the service refuses it, and ``matches`` can then
    assume a well-formed filter.
    """
    if not isinstance(flt, dict):
        raise invalid(f"Invalid filter: a filter must be a JSON object, got {json_type(flt)}")
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise invalid(f"Invalid filter: {key} must be followed by a non-empty array of filters")
            for sub in cond:
                check_filter(sub)
        elif key.startswith("$"):
            raise invalid(f"Invalid filter: unsupported top-level operator {key}")
        elif isinstance(cond, dict):
            if not cond:
                raise invalid(f"Invalid filter: field '{key}' has no operator")
            for op, arg in cond.items():
                _check_operator(key, op, arg)
        else:
            _check_operator(key, "$eq", cond)
    return flt


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_operator(key: str, op: str, arg: Any) -> None:
    if op in ("$eq", "$ne"):
        ok = isinstance(arg, (str, bool)) or _is_number(arg)
        wanted = "a string, number or boolean"
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        ok, wanted = _is_number(arg), "a number"
    elif op in ("$in", "$nin"):
        ok = isinstance(arg, list) and len(arg) <= MAX_FILTER_VALUES and all(
            isinstance(v, (str, bool)) or _is_number(v) for v in arg
        )
        wanted = f"an array of at most {MAX_FILTER_VALUES} strings, numbers or booleans"
    elif op == "$exists":
        ok, wanted = isinstance(arg, bool), "a boolean"
    else:
        raise invalid(f"Invalid filter: unsupported operator {op} on field '{key}'")
    if not ok:
        raise invalid(f"Invalid filter: {op} on field '{key}' must be followed by {wanted}, got {json_type(arg)}")


def matches(metadata: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Pinecone's filter language, the common subset: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or.

    ``flt`` has passed ``check_filter``."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(metadata, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches(metadata, sub) for sub in cond):
                return False
        elif key.startswith("$"):
            raise invalid(f"Unsupported top-level filter operator: {key}")
        elif isinstance(cond, dict):
            if not all(_field_op(metadata, key, op, arg) for op, arg in cond.items()):
                return False
        elif not _field_op(metadata, key, "$eq", cond):
            return False
    return True


def _field_op(metadata: dict[str, Any], key: str, op: str, arg: Any) -> bool:
    present = key in metadata
    value = metadata.get(key)
    values = value if isinstance(value, list) else [value]
    if op == "$exists":
        return present == bool(arg)
    if op == "$eq":
        return present and arg in values
    if op == "$ne":
        return not present or arg not in values
    if op == "$in":
        return present and any(v in arg for v in values)
    if op == "$nin":
        return not present or not any(v in arg for v in values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not present or isinstance(value, (bool, list, str)) or not isinstance(arg, (int, float)):
            return False
        return {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
    raise invalid(f"Unsupported filter operator: {op}")


# -- state -----------------------------------------------------------------------------------


@dataclass
class Namespace:
    """One namespace: what reads see, plus writes committed but not yet visible."""

    records: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)
    committed_lsn: int = 0
    indexed_lsn: int = 0
    pending: deque[tuple[float, int, Callable[[], None]]] = field(default_factory=deque)
    applied: int = 0  # writes made visible so far: the sorted-ids cache is valid for one value
    _sorted: tuple[tuple[int, int], list[str]] | None = None

    def catch_up(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, lsn, op = self.pending.popleft()
            op()
            self.applied += 1
            self.indexed_lsn = lsn

    def sorted_ids(self) -> list[str]:
        """Visible ids in byte-wise order, kept between writes: a million-id namespace is listed in
        10,000 pages, and sorting it for each would make the server, not the client, what a
        benchmark measures. Ids are ASCII (``check_id``), so str order is byte order. The key
        includes the count for records placed straight into ``records`` (bench set-up)."""
        key = (self.applied, len(self.records))
        if self._sorted is None or self._sorted[0] != key:
            self._sorted = (key, sorted(self.records))
        return self._sorted[1]


@dataclass
class IndexState:
    """One serverless index: its settings and namespaces, guarded by one lock."""

    name: str
    dimension: int
    metric: str
    cloud: str = "aws"
    region: str = "us-east-1"
    deletion_protection: str = "disabled"
    tags: dict[str, str] | None = None
    host: str = ""
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    #: namespace aliases (API 2026-07): alias name -> ``aliases.Alias``
    aliases: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    visibility_delay: Callable[[], float] = lambda: 0.0

    def ns(self, name: str) -> Namespace:
        """Get or create a namespace (namespaces are created implicitly on write)."""
        space = self.namespaces.get(name)
        if space is None:
            space = self.namespaces[name] = Namespace()
        space.catch_up(time.monotonic())
        return space

    def existing(self, name: str) -> Namespace | None:
        space = self.namespaces.get(name)
        if space is not None:
            space.catch_up(time.monotonic())
        return space

    def commit(self, name: str, op: Callable[[dict[str, tuple[np.ndarray, dict[str, Any]]]], None]) -> int:
        """Record a write; it becomes visible now or after the configured delay. Returns its LSN."""
        space = self.ns(name)
        space.committed_lsn += 1
        lsn = space.committed_lsn
        delay = self.visibility_delay()
        if delay <= 0 and not space.pending:
            op(space.records)
            space.applied += 1
            space.indexed_lsn = lsn
        else:
            space.pending.append((time.monotonic() + max(delay, 0.0), lsn, lambda: op(space.records)))
        return lsn

    def visible_records(self, name: str) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        space = self.existing(name)
        return space.records if space is not None else {}

    def score(self, query: np.ndarray, stored: np.ndarray) -> float:
        q = query.astype(np.float64)
        s = stored.astype(np.float64)
        if self.metric == "dotproduct":
            return float(q @ s)
        if self.metric == "euclidean":
            return float(np.sum((q - s) ** 2))
        denom = float(np.linalg.norm(q) * np.linalg.norm(s)) or 1.0
        return float(q @ s) / denom
