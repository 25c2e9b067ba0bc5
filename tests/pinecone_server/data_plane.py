"""Data-plane endpoints of the local Pinecone server (vectors, query, stats, namespaces).

Each handler takes the request handler, a path argument, the JSON body and the query string,
and returns ``(status, payload, headers)``; refusals raise ``ApiFailure`` with Pinecone's body.
Response keys are camelCase with JSON numbers (the SDK decodes strictly), namespace endpoints
snake_case with string counts, exactly as reference §8 lists.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

import numpy as np

from tests.pinecone_server import store
from tests.pinecone_server.aliases import refuse_write_to_alias, resolve
from tests.pinecone_server.server import as_float_list, decode_token, encode_token, lsn_headers
from tests.pinecone_server.store import (
    DEFAULT_NAMESPACE,
    canonical_namespace,
    check_filter,
    check_id,
    clean_metadata,
    invalid,
    matches,
    parse_values,
    rpc_error,
    shown_namespace,
)

if TYPE_CHECKING:
    from tests.pinecone_server.server import Result, _Handler

Records = dict[str, tuple[np.ndarray, dict[str, Any]]]


def _vector_json(vid: str, values: np.ndarray, metadata: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": vid, "values": as_float_list(values)}
    if metadata:
        out["metadata"] = metadata
    return out


def _check_ids(ids: Any, what: str) -> list[str]:
    if not isinstance(ids, list) or not ids:
        raise invalid(f"{what} requires a non-empty list of ids")
    if len(ids) > store.MAX_IDS_PER_REQUEST:
        raise invalid(
            f"Number of ids in request ({len(ids)}) exceeds the limit of {store.MAX_IDS_PER_REQUEST} per request"
        )
    return [check_id(v) for v in ids]


def upsert(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    vectors = body.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise invalid("Upsert requires a non-empty list of vectors")
    if len(vectors) > store.MAX_VECTORS_PER_UPSERT:
        raise invalid(
            f"Number of vectors in request ({len(vectors)}) exceeds the limit of "
            f"{store.MAX_VECTORS_PER_UPSERT} per upsert request"
        )
    ns = canonical_namespace(body.get("namespace"))
    refuse_write_to_alias(state, ns)
    parsed: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for item in vectors:
        if not isinstance(item, dict):
            raise invalid("Each vector must be an object")
        vid = check_id(item.get("id"))
        if item.get("sparseValues") is not None:
            raise invalid(f"Sparse values are not supported by a dense index (vector '{vid}')")
        parsed.append((vid, parse_values(vid, item.get("values"), state.dimension), clean_metadata(vid, item.get("metadata"))))

    def apply(records: Records) -> None:
        for vid, values, metadata in parsed:
            records[vid] = (values, metadata)

    with state.lock:
        lsn = state.commit(ns, apply)
        indexed = state.namespaces[ns].indexed_lsn
    return 200, {"upsertedCount": len(parsed)}, lsn_headers(lsn, indexed)


def fetch(h: _Handler, _: str, body: dict[str, Any], query: dict[str, list[str]]) -> Result:
    state = h.index_state
    ids = _check_ids(query.get("ids"), "Fetch")
    asked = canonical_namespace((query.get("namespace") or [""])[0])
    ns = resolve(state, asked)
    with state.lock:
        records = state.visible_records(ns)
        found = {vid: _vector_json(vid, *records[vid]) for vid in ids if vid in records}
    return 200, {"vectors": found, "namespace": shown_namespace(asked), "usage": {"readUnits": max(1, len(found) // 10)}}, {}


def delete(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    ns = canonical_namespace(body.get("namespace"))
    refuse_write_to_alias(state, ns)
    ids, delete_all, flt = body.get("ids"), bool(body.get("deleteAll")), body.get("filter")
    selectors = sum(x for x in (ids is not None, delete_all, flt is not None))
    if selectors != 1:
        raise invalid("Exactly one of ids, deleteAll or filter must be given")
    if ids is not None:
        ids = _check_ids(ids, "Delete")
    if flt == {}:
        raise invalid("Delete with empty metadata filter is not allowed")
    if flt is not None:
        check_filter(flt)
    with state.lock:
        if ns not in state.namespaces:
            raise rpc_error(404, 5, "Namespace not found")

        def apply(records: Records) -> None:
            if delete_all:
                records.clear()
            elif ids is not None:
                for vid in ids:
                    records.pop(vid, None)
            else:
                for vid in [v for v, (_, md) in records.items() if matches(md, flt)]:
                    del records[vid]

        lsn = state.commit(ns, apply)
        indexed = state.namespaces[ns].indexed_lsn
    return 200, {}, lsn_headers(lsn, indexed)


def update(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    ns = canonical_namespace(body.get("namespace"))
    refuse_write_to_alias(state, ns)
    vid, flt = body.get("id"), body.get("filter")
    set_metadata = body.get("setMetadata")
    if (vid is None) == (flt is None):
        raise invalid("Exactly one of id or filter must be given")
    if flt is not None:
        if body.get("values") is not None or body.get("sparseValues") is not None:
            raise invalid("Update by filter cannot set values")
        if flt == {}:
            raise invalid("Update with empty metadata filter is not allowed")
        check_filter(flt)
        new_md = clean_metadata("<filter>", set_metadata)
        with state.lock:
            records = state.visible_records(ns)
            hits = [v for v, (_, md) in records.items() if matches(md, flt)]
            if body.get("dryRun"):
                return 200, {"matchedRecords": len(hits)}, {}

            def apply_filter(records: Records) -> None:
                for v in hits:
                    if v in records:
                        values, md = records[v]
                        records[v] = (values, {**md, **new_md})

            lsn = state.commit(ns, apply_filter)
            indexed = state.namespaces[ns].indexed_lsn
        return 200, {"matchedRecords": len(hits)}, lsn_headers(lsn, indexed)
    vid = check_id(vid)
    values = parse_values(vid, body["values"], state.dimension) if body.get("values") is not None else None
    new_md = clean_metadata(vid, set_metadata) if set_metadata is not None else {}

    def apply_id(records: Records) -> None:
        if vid in records:
            old_values, md = records[vid]
            records[vid] = (values if values is not None else old_values, {**md, **new_md})

    with state.lock:
        lsn = state.commit(ns, apply_id)
        indexed = state.namespaces[ns].indexed_lsn
    return 200, {}, lsn_headers(lsn, indexed)


def list_ids(h: _Handler, _: str, body: dict[str, Any], query: dict[str, list[str]]) -> Result:
    state = h.index_state
    asked = canonical_namespace((query.get("namespace") or [""])[0])
    ns = resolve(state, asked)
    prefix = (query.get("prefix") or [""])[0]
    if len(prefix) > store.MAX_ID_LENGTH or not prefix.isascii():
        raise invalid(f"Prefix must be ASCII and at most {store.MAX_ID_LENGTH} characters")
    limit = _page_limit(query)
    token = (query.get("paginationToken") or [""])[0]
    skip_past = decode_token(token, prefix) if token else None
    with state.lock:
        space = state.existing(ns)
        ordered = space.sorted_ids() if space is not None else []  # byte-wise ("C" collation)
        start = bisect.bisect_left(ordered, prefix)
        if skip_past is not None:
            start = max(start, bisect.bisect_right(ordered, skip_past))
        window = ordered[start : start + limit + 1]
    ids = [v for v in window if v.startswith(prefix)]
    page = ids[:limit]
    payload: dict[str, Any] = {"vectors": [{"id": v} for v in page], "namespace": shown_namespace(asked),
                               "usage": {"readUnits": 1}}
    if len(ids) > limit:
        payload["pagination"] = {"next": encode_token(page[-1], prefix)}
    return 200, payload, {}


def query(h: _Handler, _: str, body: dict[str, Any], qs: Any) -> Result:
    state = h.index_state
    asked = canonical_namespace(body.get("namespace"))
    ns = resolve(state, asked)
    top_k = body.get("topK")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 10000:
        raise invalid("topK must be an integer between 1 and 10000")
    vector, by_id = body.get("vector"), body.get("id")
    if (vector is None) == (by_id is None):
        raise invalid("Exactly one of vector or id must be given")
    flt = check_filter(body["filter"]) if body.get("filter") is not None else {}
    with state.lock:
        records = state.visible_records(ns)
        if by_id is not None:
            check_id(by_id)
            if by_id not in records:
                return 200, {"matches": [], "namespace": shown_namespace(asked), "usage": {"readUnits": 1}}, \
                    _indexed_header(state, ns)
            q = records[by_id][0]
        else:
            q = parse_values("<query>", vector, state.dimension)
        scored = [(state.score(q, vals), vid, vals, md) for vid, (vals, md) in records.items() if matches(md, flt)]
        headers = _indexed_header(state, ns)
    reverse = state.metric != "euclidean"
    scored.sort(key=lambda t: (-t[0], t[1]) if reverse else (t[0], t[1]))
    out = []
    for score, vid, vals, md in scored[:top_k]:
        match: dict[str, Any] = {"id": vid, "score": score,
                                 "values": as_float_list(vals) if body.get("includeValues") else []}
        if body.get("includeMetadata") and md:
            match["metadata"] = md
        out.append(match)
    return 200, {"matches": out, "namespace": shown_namespace(asked), "usage": {"readUnits": 5}}, headers


def _indexed_header(state: store.IndexState, ns: str) -> dict[str, str]:
    space = state.namespaces.get(ns)
    return {"x-pinecone-max-indexed-lsn": str(space.indexed_lsn if space else 0)}


def describe_index_stats(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    if body.get("filter"):
        raise invalid("Serverless and starter indexes do not support describing index stats with metadata filtering")
    with state.lock:
        counts = {name: len(state.visible_records(name)) for name in list(state.namespaces)}
    namespaces = {name: {"vectorCount": n} for name, n in counts.items() if n}
    return 200, {
        "namespaces": namespaces,
        "dimension": state.dimension,
        "indexFullness": 0.0,
        "totalVectorCount": sum(counts.values()),
        "metric": state.metric,
        "vectorType": "dense",
    }, {}


def _namespace_json(name: str, count: int) -> dict[str, Any]:
    return {"name": name, "record_count": str(count)}


def _page_limit(query: dict[str, list[str]]) -> int:
    """``limit``: 1-100, 100 when absent (list ids and list namespaces alike)."""
    try:
        limit = int((query.get("limit") or ["100"])[0])
    except ValueError:
        raise invalid("limit must be an integer") from None
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100")
    return limit


def list_namespaces(h: _Handler, _: str, body: dict[str, Any], query: dict[str, list[str]]) -> Result:
    """Namespaces in byte-wise order, ``limit`` at a time, continued by ``paginationToken``;
    ``total_count`` counts every namespace under the prefix, not just this page."""
    state = h.index_state
    prefix = (query.get("prefix") or [""])[0]
    limit = _page_limit(query)
    token = (query.get("paginationToken") or [""])[0]
    skip_past = decode_token(token, prefix) if token else None
    with state.lock:
        found = sorted(
            (name, len(state.visible_records(name))) for name in state.namespaces if name.startswith(prefix)
        )
    rest = [(n, c) for n, c in found if skip_past is None or n > skip_past]
    page = rest[:limit]
    payload: dict[str, Any] = {"namespaces": [_namespace_json(n, c) for n, c in page], "total_count": len(found)}
    if len(rest) > limit:
        payload["pagination"] = {"next": encode_token(page[-1][0], prefix)}
    return 200, payload, {}


def describe_namespace(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    asked = canonical_namespace(name)
    ns = resolve(state, asked)
    with state.lock:
        if ns not in state.namespaces:
            raise rpc_error(404, 5, "Namespace not found")
        return 200, _namespace_json(asked, len(state.visible_records(ns))), {}


def delete_namespace(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    state = h.index_state
    ns = canonical_namespace(name)
    with state.lock:
        if ns not in state.namespaces or ns == DEFAULT_NAMESPACE and not state.namespaces[ns].records:
            raise rpc_error(404, 5, "Namespace not found")
        del state.namespaces[ns]
    return 200, {}, {}  # the spec's DeleteResponse
