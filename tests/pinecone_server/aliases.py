"""Namespace aliases (API 2026-07) on the local server's data plane, from Pinecone's documentation.

An alias is a movable name for a namespace of the same index: ``POST /namespace-aliases``
creates it (the target must be an existing namespace), ``GET`` lists or describes, ``PATCH``
repoints it atomically, ``DELETE`` removes it. Reads (fetch, query, list, describe namespace)
accept an alias wherever they take a namespace and are served from its target; writes (upsert,
update, delete) addressed to an alias are refused with ``WRITE_TO_ALIAS``. A read through an alias
that no longer exists reads a namespace that does not exist: empty, not an error. Every refusal
carries a machine-readable reason in ``details[0].reason``; a create refused because the alias
exists names its current target in ``details[0].metadata.target_namespace``, so a retried create
can tell that its earlier attempt landed. Alias management answers only to
``X-Pinecone-Api-Version: 2026-07`` or later (the SDKs send older versions and have no methods).

Reasons the documentation names are used as named (``ALIAS_ALREADY_EXISTS``, ``WRITE_TO_ALIAS``,
``NAME_IN_USE_BY_ALIAS``); where it gives none, the name says what happened
(``ALIAS_NOT_FOUND``, ``NAMESPACE_NOT_FOUND``, ``NAME_IN_USE_BY_NAMESPACE``, ``TARGET_IS_ALIAS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tests.pinecone_server.server import decode_token, encode_token
from tests.pinecone_server.store import DEFAULT_NAMESPACE, MAX_ID_LENGTH, ApiFailure, canonical_namespace

if TYPE_CHECKING:
    from tests.pinecone_server.server import Result, _Handler
    from tests.pinecone_server.store import IndexState

MIN_API_VERSION = "2026-07"


@dataclass
class Alias:
    target: str
    created_at: str
    updated_at: str

    def json(self, name: str) -> dict[str, Any]:
        return {"name": name, "target_namespace": self.target, "created_at": self.created_at, "updated_at": self.updated_at}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def refusal(status: int, code: int, reason: str, message: str, **metadata: str) -> ApiFailure:
    """The rpcStatus body with a google.rpc.ErrorInfo detail: ``details[0].reason`` (and metadata)."""
    detail: dict[str, Any] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "pinecone.io"}
    if metadata:
        detail["metadata"] = metadata
    return ApiFailure(status, {"code": code, "message": message, "details": [detail]})


def resolve(state: IndexState, ns: str) -> str:
    """The namespace a read addressed to ``ns`` is served from (an alias resolves to its target)."""
    alias = state.aliases.get(ns)
    return alias.target if alias is not None else ns


def refuse_write_to_alias(state: IndexState, ns: str) -> None:
    if ns in state.aliases:
        raise refusal(
            400, 3, "WRITE_TO_ALIAS",
            f"'{ns}' is a namespace alias; writes must address a namespace (the alias points at '{state.aliases[ns].target}')",
            alias=ns, target_namespace=state.aliases[ns].target,
        )


def _check_version(h: _Handler) -> None:
    if h.api_version < MIN_API_VERSION:
        raise refusal(
            400, 3, "UNSUPPORTED_API_VERSION",
            f"Namespace aliases require X-Pinecone-Api-Version {MIN_API_VERSION} or later (got {h.api_version})",
        )


def _check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise refusal(400, 3, "INVALID_ARGUMENT", f"'{field}' is required and must be a non-empty string")
    if len(value) > MAX_ID_LENGTH or not value.isascii() or "\x00" in value or value == DEFAULT_NAMESPACE:
        raise refusal(400, 3, "INVALID_ARGUMENT", f"'{field}' must be 1-{MAX_ID_LENGTH} ASCII characters, not '{DEFAULT_NAMESPACE}'")
    return value


def _check_target(state: IndexState, target: str) -> None:
    if target in state.aliases:
        raise refusal(400, 3, "TARGET_IS_ALIAS", f"'{target}' is an alias; an alias must point at a namespace", target_namespace=target)
    space = state.existing(target)
    if space is None or not space.records:
        raise refusal(404, 5, "NAMESPACE_NOT_FOUND", f"Namespace '{target}' not found", target_namespace=target)


def _missing(name: str) -> ApiFailure:
    return refusal(404, 5, "ALIAS_NOT_FOUND", f"Namespace alias '{name}' not found", alias=name)


def create(h: _Handler, _: str, body: dict[str, Any], query: Any) -> Result:
    _check_version(h)
    state = h.index_state
    name = _check_name(body.get("name"), "name")
    target = _check_name(body.get("target_namespace"), "target_namespace")
    with state.lock:
        existing = state.aliases.get(name)
        if existing is not None:
            raise refusal(
                409, 6, "ALIAS_ALREADY_EXISTS", f"Namespace alias '{name}' already exists", target_namespace=existing.target
            )
        if state.existing(name) is not None and state.namespaces[name].records:
            raise refusal(409, 6, "NAME_IN_USE_BY_NAMESPACE", f"'{name}' is the name of a namespace")
        _check_target(state, target)
        stamp = _now()
        state.aliases[name] = Alias(target, stamp, stamp)
        return 200, state.aliases[name].json(name), {}


def list_aliases(h: _Handler, _: str, body: dict[str, Any], query: dict[str, list[str]]) -> Result:
    _check_version(h)
    state = h.index_state
    prefix = (query.get("prefix") or [""])[0]
    target = (query.get("target_namespace") or [None])[0]
    try:
        limit = int((query.get("limit") or ["100"])[0])
    except ValueError:
        raise refusal(400, 3, "INVALID_ARGUMENT", "limit must be an integer") from None
    if not 1 <= limit <= 100:
        raise refusal(400, 3, "INVALID_ARGUMENT", "limit must be between 1 and 100")
    token = (query.get("paginationToken") or [""])[0]
    skip_past = decode_token(token, prefix) if token else None
    with state.lock:
        found = sorted(
            (n, a) for n, a in state.aliases.items() if n.startswith(prefix) and (target is None or a.target == target)
        )
    rest = [(n, a) for n, a in found if skip_past is None or n > skip_past]
    page = rest[:limit]
    payload: dict[str, Any] = {"namespace_aliases": [a.json(n) for n, a in page], "total_count": len(found)}
    if len(rest) > limit:
        payload["pagination"] = {"next": encode_token(page[-1][0], prefix)}
    return 200, payload, {}


def describe(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    _check_version(h)
    state = h.index_state
    with state.lock:
        alias = state.aliases.get(name)
        if alias is None:
            raise _missing(name)
        return 200, alias.json(name), {}


def repoint(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    """Atomic: the target is checked under the same lock that rewrites the alias; on a refusal the
    alias keeps its target. Safe to retry: ``updated_at`` advances on every attempt."""
    _check_version(h)
    state = h.index_state
    target = _check_name(body.get("target_namespace"), "target_namespace")
    with state.lock:
        alias = state.aliases.get(name)
        if alias is None:
            raise _missing(name)
        _check_target(state, target)
        state.aliases[name] = Alias(target, alias.created_at, _now())
        return 200, state.aliases[name].json(name), {}


def delete(h: _Handler, name: str, body: dict[str, Any], query: Any) -> Result:
    _check_version(h)
    state = h.index_state
    with state.lock:
        if state.aliases.pop(name, None) is None:
            raise _missing(name)
    return 200, {}, {}


def read_namespace(state: IndexState, ns: Any) -> str:
    """What a read names (a namespace or an alias), as the namespace it is served from."""
    return resolve(state, canonical_namespace(ns))
