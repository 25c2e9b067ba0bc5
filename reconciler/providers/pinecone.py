"""Pinecone serverless through the official ``pinecone`` SDK (10.x, older 7.x-9.x best effort).

Three things make Pinecone different from an embedded table, and shape this module:

* Requests fail transiently (429 with ``Retry-After``, 5xx, dropped connections), and a write can
  land even when its response is lost. Every call therefore goes through one retry loop with
  decorrelated jitter, honouring ``Retry-After`` and bounded in total time; writes are
  idempotent (upsert by id, delete by id) so retrying them is safe. The SDK's own retry layer
  is switched off for data-plane calls so attempts are not multiplied and the bound holds.
* Requests have hard limits (1000 vectors and 2 MB per upsert, 1000 ids per fetch/delete), so
  writes are cut to fit and sent several at a time; every request's outcome is checked (the
  SDK's batched upsert reports failures instead of raising, a known cause of lost records).
  Upserts are filled to the cap by their exact encoded size, each float32 written as the
  shortest decimal that reads back as exactly it (``pinecone_payload``).
* Reads are eventually consistent, so ``after_apply`` waits (bounded) until reads reflect the
  writes: by the LSN headers when the service sends them, and by fetching a sample.

vectorops' own documents (state, lock, history) live in the reserved namespace
``__vectorops__``, scoped by the user namespace, as vectors whose metadata carries JSON chunks.
The API key is read from the named environment variable and redacted from every message.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from reconciler.errors import (
    DestinationAuthError,
    DestinationConfigError,
    DestinationError,
    DestinationMismatchError,
    DestinationRejectedError,
    DestinationUnavailableError,
    LockError,
    StateError,
)
from reconciler.providers import listing
from reconciler.providers import pinecone_payload as payload
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
from reconciler.providers.documents import REPAIR_HINT, parse_document
from reconciler.providers.listing_resume import ListingCheckpoint, Pacer
from reconciler.providers.settings import ENV_VAR_PATTERN, DestinationContext, DestinationSettings
from reconciler.records import RecordBatch
from reconciler.redact import printable, redact, register_secret

log = logging.getLogger(__name__)
T = TypeVar("T")

DOCS_NAMESPACE = "__vectorops__"
MAX_METADATA_BYTES = 40960
MAX_ID_LENGTH = 512
#: id listings run this many at once when the expected ids split them (``all_ids``)
LIST_IN_FLIGHT = int(os.environ.get("VECTOROPS_PINECONE_LIST_IN_FLIGHT", "8"))
LIST_PAGE_SIZE = 100  # the most ids one list request returns (Pinecone's documented maximum)
#: list requests a second at most, across threads: Pinecone documents 200 list requests/s per index
#: (bench/RESULTS.md: at 20 ms a round trip 8 in flight would send ~400/s and be throttled)
LIST_RATE = float(os.environ.get("VECTOROPS_PINECONE_LIST_RATE", "180"))
_LIST_PACER = Pacer(LIST_RATE)
LIST_SPLIT_MIN = 20_000  # fewer ids are 200 pages: one listing is quick enough
#: where contenders for vectorops' lock leave their claims (``PineconeDestination.exclusive``)
CLAIMS_PREFIX = "claims/"
#: a claim older than this belongs to a process that died inside the exclusive section
CLAIM_TTL_S = 30.0
#: how long contenders keep yielding to one another before giving up
EXCLUSIVE_WAIT_S = float(os.environ.get("VECTOROPS_PINECONE_EXCLUSIVE_WAIT_S", "30"))
#: the Pinecone API version of the namespace-alias endpoints (the SDK has no methods for them)
ALIAS_API_VERSION = "2026-07"
#: blue/green slots are namespaces ``<namespace>__<slot>`` behind the alias ``<namespace>``
SLOT_SEPARATOR = "__"
DOC_CHUNK_CHARS = 16_000  # escaped JSON at most doubles: 32 KB stays under the 40 KB metadata cap
_SAMPLE = 64


def _default_namespace(namespace: str | None) -> str:
    """Absent, "" and "__default__" are one namespace; the SDK spells it ""."""
    return "" if namespace in (None, "", "__default__") else namespace


class PineconeSettings(DestinationSettings):
    """Pinecone serverless: one namespace of one index; the API key comes from the variable named by api_key_env."""

    type: Literal["pinecone"]
    index: str = Field(min_length=1, max_length=45, pattern=r"^[a-z0-9][a-z0-9-]*$")
    host: str | None = Field(None, description="Data-plane host; skips the control-plane look-up. May be http://... for local servers")
    namespace: str = Field("", description='Namespace; "" and "__default__" are the default namespace')
    api_key_env: str = Field("PINECONE_API_KEY", pattern=ENV_VAR_PATTERN, description="NAME of the environment variable holding the API key (never the key)")
    max_in_flight: int = Field(4, ge=1, le=64, description="Concurrent write requests")

    secret_env_fields = ("api_key_env",)
    pattern_hints = {
        "api_key_env": "Give the NAME of the environment variable that holds the key (upper-case letters, digits and '_', "
        "e.g. PINECONE_API_KEY), never the key itself.",
        "index": "Pinecone index names use lowercase letters, digits and '-', starting with a letter or digit.",
    }

    def address(self) -> str:
        ns = _default_namespace(self.namespace)
        return f"pinecone:{self.index}" + (f"/{ns}" if ns else "")

    def key(self, context: DestinationContext) -> str:
        return f"pinecone:{self.host or self.index}/{_default_namespace(self.namespace)}"

    def blue_green_refusal(self) -> str | None:
        if not _default_namespace(self.namespace):
            return (
                "rollout: blue_green makes `namespace` the alias readers use, and the default namespace cannot be an "
                "alias. Set destination.namespace to the name your application reads (e.g. namespace: docs)."
            )
        return super().blue_green_refusal()

    def open(self, context: DestinationContext) -> PineconeDestination:
        try:
            import pinecone  # noqa: F401 - only to say what is missing before anything else
        except ImportError as exc:
            raise DestinationConfigError(
                f"environment '{context.environment}' uses Pinecone but the Pinecone SDK is not installed ({exc.name})",
                hint="Install the extra: pip install 'vectorops[pinecone]'.",
            ) from None
        return PineconeDestination(
            index=self.index,
            host=self.host,
            namespace=self.namespace,
            api_key_env=self.api_key_env,
            max_in_flight=self.max_in_flight,
        )


class PineconeDestination(Destination):
    """One namespace of one Pinecone index."""

    # requests are independent (no commits to save, no snapshots); records are checked at plan time;
    # namespace aliases (API 2026-07) repoint atomically
    capabilities = Capabilities(check_records=True, aliases=True)
    list_page_size = LIST_PAGE_SIZE
    # what this process wrote, for after_apply's freshness check (``_reset_tracking``)
    _target_lsn: int | None
    _written_sample: dict[str, list[float]]
    _deleted_sample: list[str]
    _idx_shared: bool = False  # a slot's index handle belongs to the destination that opened the slot

    def __init__(
        self,
        *,
        index: str,
        host: str | None,
        namespace: str = "",
        api_key_env: str = "PINECONE_API_KEY",
        max_in_flight: int = 4,
        retry_timeout: float = 60.0,
        consistency_timeout: float = 60.0,
        cloud: str = "aws",
        region: str = "us-east-1",
        client: Any = None,
    ) -> None:
        """``client``: a ``Pinecone`` client to share (a blue/green slot shares its alias's: each
        client loads the CA bundle, a third of a second)."""
        import os

        self.index_name = index
        self.host = host
        self.namespace = _default_namespace(namespace)
        if self.namespace == DOCS_NAMESPACE:
            raise DestinationConfigError(
                f"pinecone:{index}: namespace '{DOCS_NAMESPACE}' is reserved for vectorops' own state",
                hint="Choose another namespace for the records.",
            )
        self.address = f"pinecone:{index}" + (f"/{self.namespace}" if self.namespace else "")
        self.max_in_flight = max(1, int(max_in_flight))
        self.retry_timeout = retry_timeout
        self.consistency_timeout = consistency_timeout
        self.cloud, self.region = cloud, region
        key = os.environ.get(api_key_env, "")
        if not key.strip():
            raise DestinationConfigError(
                f"{self.address}: the environment variable {api_key_env} is not set",
                hint=f"Export {api_key_env} with your Pinecone API key (the manifest's api_key_env names it).",
            )
        self._api_key = key
        register_secret(key)  # masked in every message from here on, whatever the variable is called
        self._api_key_env = api_key_env
        self._doc_scope = (self.namespace or "__default__") + "/"
        try:
            from pinecone import Pinecone
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DestinationConfigError(
                "the Pinecone SDK is not installed", hint="pip install 'vectorops[pinecone]'"
            ) from exc
        self._pc = client if client is not None else self._guard("connecting", lambda: Pinecone(api_key=key))
        self._idx: Any = None
        self._alias_client: Any = None
        self._settings: dict[str, Any] = {
            "index": index, "host": host, "api_key_env": api_key_env, "max_in_flight": max_in_flight, "retry_timeout": retry_timeout,
            "consistency_timeout": consistency_timeout, "cloud": cloud, "region": region,
        }
        self._info: DestinationInfo | None = None
        self._lock = threading.Lock()
        self._reset_tracking()

    # -- connection ---------------------------------------------------------------------------

    def _index(self, required: bool = True) -> Any:
        """The data-plane handle, resolved by name through the control plane unless ``host`` is set."""
        if self._idx is not None:
            return self._idx
        host = self.host
        if not host:
            model = self._describe_model()
            if model is None:
                if required:
                    raise DestinationError(
                        f"{self.address}: the Pinecone index '{self.index_name}' does not exist",
                        hint="Run `vectorops apply` to create it, or fix `index` in the manifest.",
                    )
                return None
            host = model.host
        idx = self._guard("opening the index", lambda: self._pc.Index(host=host))
        _disable_sdk_retries(idx)
        self._idx = idx
        return idx

    def _describe_model(self) -> Any:
        """The control plane's description of the index, or None when it does not exist."""
        try:
            return self._reads("describing the index", lambda: self._pc.describe_index(self.index_name))
        except _Missing:
            return None

    # -- errors and retries -------------------------------------------------------------------

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        """Retries that ran out and answers of "not found" where no caller expected one, and whatever
        escapes the SDK outside ``_call`` (its HTTP stack's own errors): all the service's failures."""
        translated = super().translate_error(exc, doing)
        if translated is not None:
            return translated
        if isinstance(exc, _Transient):  # retries ran out in a call that did not say what that means
            return DestinationUnavailableError(
                f"{self.address}: {exc}", hint="Pinecone is throttling or unavailable; try again shortly."
            )
        if isinstance(exc, _Missing):
            return DestinationError(
                f"{self.address}: {doing} failed: the index or namespace is gone ({exc})",
                hint="Run `vectorops plan` again; if the index was deleted, `vectorops apply` creates it.",
            )
        module = type(exc).__module__ or ""
        if module.split(".")[0] in ("pinecone", "urllib3", "requests", "aiohttp"):
            return DestinationUnavailableError(
                f"{self.address}: {doing} failed: {describe_exception(exc)}",
                hint="Pinecone could not be reached or answered unexpectedly; try again shortly.",
            )
        return None

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run an SDK call that is not retried (client construction), translating its errors."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a user-facing error
            raise DestinationError(f"{self.address}: {what} failed: {_describe(exc)}") from None

    def _call(self, what: str, fn: Callable[[], T], *, deadline: float | None = None) -> T:
        """Call ``fn`` until it succeeds, retrying transient failures with jittered backoff.

        Raises ``_Missing`` on 404 (the caller decides what absence means), ``_Transient`` when
        retries outlast the time bound, ``DestinationError`` for anything permanent.
        """
        deadline = deadline if deadline is not None else time.monotonic() + self.retry_timeout
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                status = getattr(exc, "status_code", None)
                if status == 404:
                    raise _Missing(
                        f"{self.address}: {what} failed: {self._where()} answered 404 Not Found "
                        f"({_describe(exc)})",
                        hint=self._not_found_hint(),
                    ) from None
                if not _retryable(exc):
                    kind = DestinationAuthError if status in (401, 403) else DestinationRejectedError
                    raise kind(
                        f"{self.address}: {what} failed: {_describe(exc)}",
                        hint=_hint_for(status, self._api_key_env),
                    ) from None
                retry_after = getattr(exc, "retry_after", None)
                delay = min(10.0, random.uniform(0.05, delay * 3))
                wait_s = float(retry_after) + random.uniform(0, 0.1) if retry_after is not None else delay
                if time.monotonic() + wait_s > deadline:
                    raise _Transient(f"{what}: {_describe(exc)} (after {attempt} attempts)") from None
                log.debug("%s: transient failure (%s), retrying in %.2fs", what, _describe(exc), wait_s)
                time.sleep(wait_s)

    def _where(self) -> str:
        """Who answered: the configured data-plane host, else Pinecone (control plane or looked-up host)."""
        return f"the host {self.host}" if self.host else "Pinecone"

    def _not_found_hint(self) -> str:
        """What to check after a 404 that absence does not explain (a caller that expects absence catches it)."""
        if self.host:
            return (
                f"Nothing at {self.host} serves the index '{self.index_name}': check `host:` in the manifest (the index's "
                "data-plane host, as the Pinecone console shows it), or remove `host:` to look the index up by name."
            )
        return (
            f"Check that the index '{self.index_name}' belongs to the project of the API key in {self._api_key_env}, "
            "and, if PINECONE_CONTROLLER_HOST is set, that it points at Pinecone's control plane."
        )

    # -- Destination --------------------------------------------------------------------------

    def describe(self) -> DestinationInfo:
        if self.host:
            idx = self._index()
            stats = self._call("reading index stats", lambda: idx.describe_index_stats())
            return DestinationInfo(True, stats.dimension, stats.metric or None, self._count(stats))
        model = self._describe_model()
        if model is None:
            self._idx = None
            return DestinationInfo(exists=False)
        idx = self._index()
        stats = self._call("reading index stats", lambda: idx.describe_index_stats())
        return DestinationInfo(True, model.dimension, model.metric, self._count(stats))

    def _count(self, stats: Any) -> int:
        names = ("", "__default__") if not self.namespace else (self.namespace,)
        namespaces = stats.namespaces or {}
        return sum(int(getattr(namespaces[n], "vector_count", 0) or 0) for n in names if n in namespaces)

    def ensure(self, dimension: int, metric: str) -> None:
        info = self.describe()
        if info.exists:
            problems = []
            if info.dimension is not None and info.dimension != dimension:
                problems.append(f"dimension {info.dimension} (the dataset's embedding has {dimension})")
            if info.metric and info.metric != metric:
                problems.append(f"metric {info.metric} (the manifest says {metric})")
            if problems:
                raise DestinationMismatchError(
                    f"{self.address}: the index has " + " and ".join(problems),
                    hint="Point the environment at an index created for this embedding, or change the manifest.",
                )
            return
        if self.host:
            raise DestinationError(f"{self.address}: no index answers at the configured host")
        from pinecone import ServerlessSpec

        spec = ServerlessSpec(cloud=self.cloud, region=self.region)
        try:
            self._call(
                f"creating the index '{self.index_name}'",
                lambda: self._pc.create_index(name=self.index_name, dimension=dimension, metric=metric, spec=spec),
            )
        except _Transient as exc:
            raise DestinationUnavailableError(f"{self.address}: creating the index failed: {exc}") from None
        except _Missing as exc:  # the control plane itself was not found where the SDK looked for it
            raise DestinationConfigError(
                exc.message,
                hint=f"Check that serverless indexes can be created in {self.cloud}/{self.region} for the project of the "
                f"API key in {self._api_key_env}, and, if PINECONE_CONTROLLER_HOST is set, that it points at Pinecone's "
                "control plane.",
            ) from None
        self._idx = None
        self._info = None  # described before the index existed: forget it

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        buffer: list[str] = []
        for page in self._list_pages(self.namespace, prefix=None):
            buffer.extend(page)
            while len(buffer) >= batch_size:
                yield buffer[:batch_size]
                buffer = buffer[batch_size:]
        if buffer:
            yield buffer

    def all_ids(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> pa.Array:
        """Every id, listed under several prefixes side by side when ``expected`` shows how to split
        (``_listed_chunks``), as one array."""
        chunks = self._listed_chunks(expected, progress)
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    def id_batches(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> Iterator[pa.Array]:
        """The listing in the chunks it was kept in (``listing_resume.CHUNK_IDS`` ids each), never joined
        into one array: handed out once every part is listed and their total checked against the
        namespace's count, so it cannot hand out a part before it has them all."""
        chunks = self._listed_chunks(expected, progress)
        while chunks:
            yield chunks.pop(0)  # let go of each chunk once the caller has it

    def _listed_chunks(self, expected: pa.Array | None, progress: Callable[[int], None] | None) -> list[pa.Array]:
        """Every id, in chunks. Pages of 100 ids follow one another by token, so one listing of a
        million ids is 10,000 round trips in a row; under disjoint prefixes (``listing.split_by_prefix``)
        they run ``LIST_IN_FLIGHT`` at once. The parts cover every id only if nobody wrote ids outside
        the chosen prefixes, so their total is checked against the namespace's count; any difference
        (such ids, or a count still catching up with recent writes) falls back to the one listing.
        """
        prefixes = None
        if expected is not None and len(expected) >= LIST_SPLIT_MIN and LIST_IN_FLIGHT > 1:
            prefixes = listing.split_by_prefix(expected.to_pylist(), 4 * LIST_IN_FLIGHT)
            if prefixes is not None and not all(p.isascii() for p in prefixes):
                prefixes = None  # such ids cannot be in Pinecone; the hint is about something else
        if prefixes is None:
            return self._list_parts([""], progress)
        found = self._list_parts(prefixes, progress)
        idx = self._index()
        count = self._count(self._reads("reading index stats", lambda: idx.describe_index_stats()))
        listed = sum(len(c) for c in found)
        if listed == count:
            return found
        log.debug("%s: %d ids under %d prefixes, %d in the namespace: listing it whole", self.address, listed, len(prefixes), count)
        del found
        return self._list_parts([""], progress)

    def _list_parts(self, prefixes: list[str], progress: Callable[[int], None] | None) -> list[pa.Array]:
        """The ids under each prefix ("" for all), ``LIST_IN_FLIGHT`` listings side by side.

        A listing cut off when retries run out leaves a checkpoint (``listing_resume``): the
        next listing of this namespace, split the same way, continues from each part's last page
        token instead of starting over.
        """
        checkpoint = ListingCheckpoint(f"{self.address}|{self.host or ''}|{self.namespace}", prefixes)
        parts, resumed = checkpoint.load()
        if resumed:
            log.info("%s: resuming an interrupted id listing (%d ids already listed)", self.address, sum(p.count for p in parts.values()))
        listed = [sum(p.count for p in parts.values())]

        def under(prefix: str) -> None:
            part = parts[prefix]
            if part.done:
                return
            try:
                pages = self._list_pages_from(self.namespace, prefix or None, part.token)
                first = next(pages, None)
            except DestinationRejectedError:
                if part.token is None:
                    raise
                log.info("%s: a saved page token was refused: listing '%s' from the start", self.address, prefix)
                with self._lock:
                    listed[0] -= part.count
                    part.restart()
                pages = self._list_pages_from(self.namespace, prefix or None, None)
                first = next(pages, None)
            for ids, token in itertools.chain([first] if first is not None else [], pages):
                with self._lock:
                    part.add(ids)
                    part.token = token
                    listed[0] += len(ids)
                    if progress is not None and ids:
                        progress(listed[0])
            part.done = True

        try:
            self._parallel(under, prefixes, in_flight=LIST_IN_FLIGHT)
        except BaseException:
            with self._lock:
                checkpoint.save(parts)
            raise
        checkpoint.clear()
        return [chunk for p in prefixes for chunk in parts[p].take_chunks()]

    def _list_pages(self, namespace: str, prefix: str | None) -> Iterator[list[str]]:
        for ids, _token in self._list_pages_from(namespace, prefix, None):
            if ids:
                yield ids

    def _list_pages_from(self, namespace: str, prefix: str | None, token: str | None) -> Iterator[tuple[list[str], str | None]]:
        """Pages of ids from ``token`` on (None: the first page), each with the next page's token."""
        idx = self._index(required=False)
        if idx is None:
            return
        while True:
            kwargs: dict[str, Any] = {"namespace": namespace, "limit": LIST_PAGE_SIZE}
            if prefix:
                kwargs["prefix"] = prefix
            if token:
                kwargs["pagination_token"] = token
            try:
                _LIST_PACER.wait()
                page = self._reads("listing ids", functools.partial(idx.list_paginated, **kwargs))
            except _Missing:
                return
            ids = [v if isinstance(v, str) else v.id for v in (page.vectors or [])]
            token = page.pagination.next if page.pagination is not None else None
            yield ids, token
            if not token:
                return

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        ids = list(ids)
        found = self._fetch_raw(self.namespace, ids)
        present = [i for i in ids if i in found]
        return self._to_batch(present, found)

    def _fetch_raw(self, namespace: str, ids: list[str]) -> dict[str, Any]:
        idx = self._index(required=False)
        if idx is None or not ids:
            return {}
        chunks = list(payload.id_chunks(ids))

        def one(chunk: list[str]) -> dict[str, Any]:
            try:
                resp = self._reads("fetching records", lambda: idx.fetch(ids=chunk, namespace=namespace))
            except _Missing:
                return {}
            return dict(resp.vectors or {})

        out: dict[str, Any] = {}
        for part in self._parallel(one, chunks):
            out.update(part)
        return out

    def _to_batch(self, ids: list[str], found: dict[str, Any]) -> RecordBatch:
        dimension = self._dimension(found[ids[0]] if ids else None)
        vectors = np.asarray([found[i].values for i in ids], dtype=np.float32).reshape(len(ids), dimension)
        metadata = [dict(found[i].metadata or {}) for i in ids]
        return RecordBatch.from_rows(ids, vectors, metadata, dimension)

    def _dimension(self, sample: Any) -> int:
        if sample is not None:
            return len(sample.values)
        if self._info is None or not self._info.exists:
            self._info = self.describe()
        return int(self._info.dimension or 0)

    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        """Listed first (split by ``expected`` as in ``all_ids``), then fetched batch by batch; without
        a hint, fetches follow the pages as they come."""
        if expected is None:
            pages: Iterator[list[str]] = self.iter_ids(batch_size)
        else:
            ids = self.all_ids(expected)
            pages = (ids.slice(i, batch_size).to_pylist() for i in range(0, len(ids), batch_size))
        for page in pages:
            batch = self.fetch(page)
            if len(batch):
                yield batch

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        items, sizes = self._items(batch)
        self._upsert_items(self.namespace, items, track=True, sizes=sizes)

    def upsert_stream(self, batches: Iterable[RecordBatch]) -> Iterator[int]:
        """Requests packed across batches: each batch's last, part-full request waits for the next
        batch's records. Cut batch by batch, a 1% change at 1M x 768 (four batches of 5,000) would
        take 88 upsert requests where 86 carry it; held back is at most one request's worth."""
        held: list[dict[str, Any]] = []
        held_sizes: list[int] = []
        for batch in batches:
            if not len(batch):
                continue
            items, sizes = self._items(batch)
            items, sizes = held + items, held_sizes + sizes
            chunks = list(payload.upsert_chunks(items, sizes, self.namespace))
            ready = len(items) - len(chunks[-1])
            held, held_sizes = items[ready:], sizes[ready:]
            self._send_upserts(self.namespace, chunks[:-1], track=True)
            yield ready
        if held:
            self._send_upserts(self.namespace, [held], track=True)
            yield len(held)

    def _items(self, batch: RecordBatch) -> tuple[list[dict[str, Any]], list[int]]:
        if self._deleted_sample:  # the freshness sample must describe the final state
            written = set(batch.id_list)
            self._deleted_sample = [v for v in self._deleted_sample if v not in written]
        return payload.vector_items(batch)

    def _upsert_items(
        self, namespace: str, items: list[dict[str, Any]], *, track: bool, sizes: list[int] | None = None
    ) -> None:
        """Upsert ``items`` in as few requests as the limits allow, several in flight at once."""
        sizes = sizes if sizes is not None else payload.item_sizes(items)
        self._send_upserts(namespace, list(payload.upsert_chunks(items, sizes, namespace)), track=track)

    def _send_upserts(self, namespace: str, chunks: list[list[dict[str, Any]]], *, track: bool) -> None:
        """One upsert request per chunk (cut by ``payload.upsert_chunks``), several in flight."""
        if not chunks:
            return
        idx = self._index()
        written = [0]

        def one(chunk: list[dict[str, Any]]) -> None:
            resp = self._call("upserting records", lambda: idx.upsert(vectors=chunk, namespace=namespace))
            if int(resp.upserted_count) != len(chunk):
                raise DestinationError(
                    f"{self.address}: Pinecone accepted {resp.upserted_count} of {len(chunk)} records in one request",
                    hint="Run apply again; it writes what is missing.",
                )
            lsn = _lsn(resp)
            with self._lock:
                written[0] += len(chunk)
                if track:
                    if lsn is not None:
                        self._target_lsn = max(self._target_lsn or 0, lsn)
                    sample = self._written_sample
                    for c in chunk:  # the sample must describe the final state: a rewrite replaces it
                        if c["id"] in sample or len(sample) < _SAMPLE:
                            sample[c["id"]] = c["values"]

        try:
            self._parallel(one, chunks)
        except _Transient as exc:
            raise DestinationUnavailableError(
                f"{self.address}: Pinecone kept failing while writing records: {exc}. "
                f"{written[0]} of {sum(len(c) for c in chunks)} records were written in this step.",
                hint="Nothing is lost: the next `vectorops apply` finishes the interrupted apply.",
            ) from None
        except _Missing as exc:
            raise DestinationError(f"{self.address}: the index disappeared while writing: {exc}") from None

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if self._written_sample:  # the freshness sample must describe the final state
            gone = set(ids)
            self._written_sample = {v: vals for v, vals in self._written_sample.items() if v not in gone}
        self._delete_ids(self.namespace, ids, track=True)

    def _delete_ids(self, namespace: str, ids: list[str], *, track: bool) -> None:
        idx = self._index(required=False)
        if idx is None or not ids:
            return
        deleted = [0]

        def one(chunk: list[str]) -> None:
            with contextlib.suppress(_Missing):  # "Namespace not found": nothing there to delete
                self._call("deleting records", lambda: idx.delete(ids=chunk, namespace=namespace))
            with self._lock:
                deleted[0] += len(chunk)
                if track and len(self._deleted_sample) < _SAMPLE:
                    self._deleted_sample.extend(chunk[: _SAMPLE - len(self._deleted_sample)])

        try:
            self._parallel(one, [ids[i : i + payload.MAX_IDS_PER_REQUEST] for i in range(0, len(ids), payload.MAX_IDS_PER_REQUEST)])
        except _Transient as exc:
            raise DestinationUnavailableError(
                f"{self.address}: Pinecone kept failing while deleting records: {exc}. "
                f"{deleted[0]} of {len(ids)} deletions were done in this step.",
                hint="Nothing is lost: the next `vectorops apply` finishes the interrupted apply.",
            ) from None

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        idx = self._index()
        values = [float(x) for x in np.asarray(vector, dtype=np.float32)]
        resp = self._reads("querying", lambda: idx.query(top_k=top_k, vector=values, namespace=self.namespace))
        return [m.id for m in resp.matches]

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        """What this index would refuse in ``batch`` (see the module's ``check_records``); plan calls it."""
        return check_records(batch, dimension)

    # -- consistency --------------------------------------------------------------------------

    def _reset_tracking(self) -> None:
        self._target_lsn = None
        self._written_sample = {}
        self._deleted_sample = []

    def after_apply(self) -> None:
        """Wait until reads reflect this process's writes, so validation and refresh see them."""
        idx = self._index(required=False)
        if idx is None:
            return
        deadline = time.monotonic() + self.consistency_timeout
        delay = 0.05
        while not self._caught_up(idx):
            if time.monotonic() > deadline:
                raise DestinationUnavailableError(
                    f"{self.address}: Pinecone accepted the writes but reads had not caught up after "
                    f"{self.consistency_timeout:g} s",
                    hint="Run `vectorops plan` again in a minute; the writes will show once indexed.",
                )
            time.sleep(delay)
            delay = min(1.0, delay * 2)
        self._reset_tracking()

    def _caught_up(self, idx: Any) -> bool:
        if self._target_lsn is not None:
            probe = [1.0] * self._dimension(None)
            resp = self._reads("checking freshness", lambda: idx.query(top_k=1, vector=probe, namespace=self.namespace))
            reached = _lsn(resp, reconciled=True)
            if reached is not None and reached < self._target_lsn:
                return False
        wanted = [*self._written_sample, *self._deleted_sample]
        found = self._fetch_raw(self.namespace, wanted)
        for vid, values in self._written_sample.items():
            got = found.get(vid)
            if got is None or not np.array_equal(np.asarray(got.values, dtype=np.float32), np.asarray(values, dtype=np.float32)):
                return False
        return not any(vid in found for vid in self._deleted_sample)

    # -- vectorops documents ------------------------------------------------------------------

    def _doc_id(self, key: str, chunk: int) -> str:
        return f"{self._doc_scope}{key}#{chunk:04d}"

    def read_doc(self, key: str) -> dict[str, Any] | None:
        """The document, None when there is none; a ``StateError`` naming it when it is unreadable
        (not JSON, not an object, or chunks missing after retries), so that callers can treat it as
        corrupt state (``import`` rewrites it, an unreadable lock is one of unknown holder)."""
        for _ in range(5):
            head = self._fetch_raw(DOCS_NAMESPACE, [self._doc_id(key, 0)]).get(self._doc_id(key, 0))
            if head is None:
                return None
            doc = self._assemble(key, head)
            if doc is not None:
                return doc
            time.sleep(0.1)  # a concurrent writer's chunks are still landing
        raise StateError(
            f"{self.address}: vectorops state record '{key}' in '{DOCS_NAMESPACE}' is incomplete (chunks of it are missing)",
            hint="Run `vectorops import ENV --version REV` to re-adopt the index and rewrite its state.",
        )

    def _assemble(self, key: str, head: Any) -> dict[str, Any] | None:
        """The document the head names, None while its tail chunks are not all visible yet."""
        md = dict(head.metadata or {})
        try:
            total, gen = int(md.get("n", 1)), md.get("g")
        except (TypeError, ValueError):
            raise _unreadable(self.address, key, "its chunk header is malformed") from None
        parts = [str(md.get("d", ""))]
        if total > 1:
            ids = [self._doc_id(key, i) for i in range(1, total)]
            rest = self._fetch_raw(DOCS_NAMESPACE, ids)
            for vid in ids:
                part = rest.get(vid)
                if part is None or (part.metadata or {}).get("g") != gen:
                    return None
                parts.append(str(part.metadata.get("d", "")))
        # every chunk of one generation is there: what is left to fail is the text itself
        return parse_document("".join(parts), self.address, key, where=f" in '{DOCS_NAMESPACE}'")

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.write_docs({key: doc})

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """Write documents as chunks in ``__vectorops__``: one upsert request when they fit in one.

        A document's head (chunk 0) is its commit point: readers assemble the tails the head
        names by generation. Within the one request every tail precedes every head; when the
        chunks need several requests, all tails go first, then the heads one at a time in the
        order given. Then chunks left over from longer earlier versions are deleted, and this
        waits until every head reads back (state is read-your-writes).
        """
        if not docs:
            return
        unit = self._unit_vector()
        tails: list[dict[str, Any]] = []
        heads: list[dict[str, Any]] = []
        written: dict[str, tuple[str, int]] = {}
        for key, doc in docs.items():
            text = json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
            pieces = [text[i : i + DOC_CHUNK_CHARS] for i in range(0, len(text), DOC_CHUNK_CHARS)] or [""]
            gen = uuid.uuid4().hex
            items = [
                {"id": self._doc_id(key, i), "values": unit,
                 "metadata": {"k": key, "i": i, "n": len(pieces), "g": gen, "d": piece}}
                for i, piece in enumerate(pieces)
            ]
            tails.extend(items[1:])
            heads.append(items[0])
            written[key] = (gen, len(pieces))
        chunks = list(payload.upsert_chunks(tails + heads, payload.item_sizes(tails + heads), DOCS_NAMESPACE))
        if len(chunks) == 1:
            self._send_upserts(DOCS_NAMESPACE, chunks, track=False)  # one request
        else:
            if tails:
                self._upsert_items(DOCS_NAMESPACE, tails, track=False)
            for head in heads:
                self._upsert_items(DOCS_NAMESPACE, [head], track=False)
        stale: list[str] = []
        for key, (_, total) in written.items():
            ids = [v for page in self._list_pages(DOCS_NAMESPACE, f"{self._doc_scope}{key}#") for v in page]
            stale.extend(v for v in ids if v[-4:].isdigit() and int(v[-4:]) >= total)
        self._delete_ids(DOCS_NAMESPACE, stale, track=False)
        self._wait_docs(
            {key: functools.partial(_head_at_generation, gen) for key, (gen, _) in written.items()}
        )

    # -- the exclusive section around taking the lock ------------------------------------------

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Let one process at a time find vectorops' lock free and take it.

        Pinecone has no conditional write, and its reads lag its writes, so "read the lock, see it
        free, write ours" lets two applies both win (and each then waited 60 s to read back a lock
        the other had overwritten). What Pinecone does give, per namespace:

        1. every write gets a log sequence number, increasing in commit order; the write's response
           carries it (``x-pinecone-request-lsn``);
        2. a read answers with the highest LSN the index has applied (``x-pinecone-max-indexed-lsn``),
           and then reflects every write up to it, applied in LSN order.

        So each contender writes a claim under its own key (no one overwrites it), waits until a
        read reports an applied LSN at least its claim's LSN N, and only then lists the claims. Of
        any two contenders, the one whose claim has the higher LSN sees the other's claim (it is
        below N), unless that claim was already withdrawn. A contender that sees no other live
        claim enters, reads the lock, writes its own if free, and withdraws its claim on leaving,
        with the lock document written (and read back) before the claim goes: a later contender
        therefore sees either the claim or, being at an LSN past the claim's removal, the lock
        document. Hence at most one process is ever inside, and a loser reads the winner's lock and
        names it. Contenders that see each other both withdraw and retry after a random pause, so
        one gets through within a round or two; a claim older than ``CLAIM_TTL_S`` is a dead
        process's and is ignored.

        Without LSN headers (an older SDK), a contender falls back to waiting until its own claim
        reads back, and then a second more: safe against contenders that are not slower than that,
        which is the best eventual reads allow.
        """
        key = f"{CLAIMS_PREFIX}{uuid.uuid4().hex}"
        deadline = time.monotonic() + EXCLUSIVE_WAIT_S
        pause = 0.05
        while True:
            started = time.monotonic()
            self._wait_applied(self._write_claim(key), key)
            rivals = self._live_claims(key)
            if not rivals:
                break
            self._withdraw(key)  # both may have seen each other: both step back, one goes first next time
            if time.monotonic() > deadline:
                raise LockError(
                    f"{self.address}: other vectorops processes kept taking the lock at the same moment "
                    f"({', '.join(rivals)}) for {EXCLUSIVE_WAIT_S:g} s",
                    hint="Run the apply again once the others have finished.",
                )
            pause = min(2.0, max(pause * 2, time.monotonic() - started))
            time.sleep(random.uniform(0, pause))
        try:
            yield
        finally:
            self._withdraw(key)

    def _write_claim(self, key: str) -> int | None:
        """Upsert this process's claim; returns the write's LSN (None when the service sends none)."""
        idx = self._index()
        claim = {"host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() + CLAIM_TTL_S}
        item = {"id": self._doc_id(key, 0), "values": self._unit_vector(),
                "metadata": {"k": key, "i": 0, "n": 1, "g": uuid.uuid4().hex, "d": json.dumps(claim, sort_keys=True)}}
        resp = self._reads("writing a lock claim", lambda: idx.upsert(vectors=[item], namespace=DOCS_NAMESPACE))
        return _lsn(resp)

    def _wait_applied(self, lsn: int | None, key: str) -> None:
        """Until reads of ``__vectorops__`` reflect every write up to ``lsn`` (see ``exclusive``)."""
        idx = self._index()
        probe = self._unit_vector()
        deadline = time.monotonic() + self.consistency_timeout
        delay = 0.02
        while True:
            if lsn is not None:
                resp = self._reads("reading the lock claims", lambda: idx.query(top_k=1, vector=probe, namespace=DOCS_NAMESPACE))
                reached = _lsn(resp, reconciled=True)
                if reached is not None and reached >= lsn:
                    return
                if reached is None:
                    lsn = None  # no LSN headers after all: the fallback below
            if lsn is None and self._doc_id(key, 0) in self._fetch_raw(DOCS_NAMESPACE, [self._doc_id(key, 0)]):
                time.sleep(1.0)
                return
            if time.monotonic() > deadline:
                raise DestinationError(
                    f"{self.address}: Pinecone accepted the lock claim but reads had not caught up after {self.consistency_timeout:g} s",
                    hint="Pinecone is slow to index right now; run the apply again shortly.",
                )
            time.sleep(delay)
            delay = min(0.5, delay * 2)

    def _live_claims(self, mine: str) -> list[str]:
        """The other claims still in force, as ``host pid N``; expired or unreadable ones are ignored."""
        live = []
        for key in self.list_doc_keys(CLAIMS_PREFIX):
            if key == mine:
                continue
            try:
                claim = self.read_doc(key)
            except StateError:
                continue
            try:
                expires = float(claim.get("expires", 0)) if claim is not None else 0.0
            except (TypeError, ValueError):
                expires = 0.0
            if claim is None or expires < time.time():
                continue
            live.append(f"{claim.get('host')} pid {claim.get('pid')}")
        return live

    def _withdraw(self, key: str) -> None:
        try:
            self.delete_doc(key)
        except DestinationError as exc:  # it lapses by itself after CLAIM_TTL_S
            log.debug("%s: withdrawing lock claim %s failed: %s", self.address, key, exc)

    def delete_doc(self, key: str) -> None:
        ids = [v for page in self._list_pages(DOCS_NAMESPACE, f"{self._doc_scope}{key}#") for v in page]
        ids = [v for v in ids if v[len(self._doc_scope) : -5] == key] or [self._doc_id(key, 0)]
        head_first = sorted(ids)  # removing the head first makes the document vanish at once
        self._delete_ids(DOCS_NAMESPACE, head_first[:1], track=False)
        self._delete_ids(DOCS_NAMESPACE, head_first[1:], track=False)
        self._wait_doc(key, lambda head: head is None)

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for key in self.list_doc_keys(prefix):
            doc = self.read_doc(key)
            if doc is not None:
                out.append((key, doc))
        return out

    def list_doc_keys(self, prefix: str) -> list[str]:
        """From ``list`` pages of ids alone (a document's head chunk is ``<key>#0000``): no fetch."""
        pages = self._list_pages(DOCS_NAMESPACE, f"{self._doc_scope}{prefix}")
        return sorted(vid[len(self._doc_scope) : -5] for page in pages for vid in page if vid.endswith("#0000"))

    def _unit_vector(self) -> list[float]:
        dimension = self._dimension(None)
        if not dimension:
            raise DestinationError(
                f"{self.address}: cannot store vectorops state before the index exists",
                hint="The index is created by the first apply (ensure) before any state is written.",
            )
        return [1.0] + [0.0] * (dimension - 1)

    def _wait_doc(self, key: str, done: Callable[[Any], bool]) -> None:
        self._wait_docs({key: done})

    def _wait_docs(self, done: dict[str, Callable[[Any], bool]]) -> None:
        """Read-your-writes for state: poll the head chunks (one fetch a round) until each shows the write."""
        deadline = time.monotonic() + self.consistency_timeout
        delay = 0.02
        pending = dict(done)
        while True:
            heads = self._fetch_raw(DOCS_NAMESPACE, [self._doc_id(key, 0) for key in pending])
            pending = {key: ok for key, ok in pending.items() if not ok(heads.get(self._doc_id(key, 0)))}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise DestinationUnavailableError(
                    f"{self.address}: vectorops document '{next(iter(pending))}' was written but is not readable "
                    f"after {self.consistency_timeout:g} s"
                )
            time.sleep(delay)
            delay = min(0.5, delay * 2)

    # -- plumbing -----------------------------------------------------------------------------

    def _reads(self, what: str, fn: Callable[[], T]) -> T:
        """A read with retries; when retries run out it is a plain error (nothing was written)."""
        try:
            return self._call(what, fn)
        except _Transient as exc:
            raise DestinationUnavailableError(
                f"{self.address}: {exc}", hint="Pinecone is throttling or unavailable; try again shortly."
            ) from None

    def _parallel(self, fn: Callable[[Any], T], chunks: list[Any], in_flight: int | None = None) -> list[T]:
        """Run ``fn`` over chunks with ``in_flight`` (default: the manifest's ``max_in_flight``) at
        once; the first failure stops the rest."""
        workers = in_flight or self.max_in_flight
        if len(chunks) <= 1 or workers == 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinecone") as pool:
            futures: list[Future[T]] = [pool.submit(fn, c) for c in chunks]
            _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            wait(futures)
            for f in futures:
                if not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            return [f.result() for f in futures]

    # -- blue/green: namespace aliases (API 2026-07, SPEC §9) -------------------------------------

    def _slot_namespace(self, slot: str) -> str:
        return f"{self.namespace}{SLOT_SEPARATOR}{slot}"

    def open_slot(self, slot: str) -> PineconeDestination:
        """The namespace ``<namespace>__<slot>`` of the same index; its documents are scoped by it."""
        slot_dest = PineconeDestination(namespace=self._slot_namespace(slot), client=self._pc, **self._settings)
        idx = self._index(required=False)
        if idx is not None:  # the same index: one handle (and connection pool), closed by its owner only
            slot_dest._idx, slot_dest._idx_shared = idx, True
        return slot_dest

    def list_slots(self) -> list[str]:
        """Slots that hold records (index stats list namespaces; an empty namespace does not exist)."""
        idx = self._index(required=False)
        if idx is None:
            return []
        stats = self._reads("reading index stats", lambda: idx.describe_index_stats())
        prefix = self.namespace + SLOT_SEPARATOR
        return sorted(n[len(prefix):] for n in (stats.namespaces or {}) if n.startswith(prefix) and n[len(prefix):].isalnum())

    def _aliases_http(self) -> Any:
        """An HTTP client for the alias endpoints, which the SDK has no methods for: the SDK's own
        client class, built from the index handle's configuration (host, key, TLS, proxy, headers)
        with the 2026-07 API version, and the SDK's retries off (``_call`` retries)."""
        if self._alias_client is None:
            idx = self._index()
            try:
                from pinecone._internal.http_client import HTTPClient

                config = idx._config
            except (ImportError, AttributeError):
                raise DestinationConfigError(
                    f"{self.address}: rollout: blue_green needs Pinecone's namespace aliases, which this vectorops reaches "
                    "through the pinecone SDK 10",
                    hint="pip install 'pinecone>=10,<11'",
                ) from None
            client = HTTPClient(config, ALIAS_API_VERSION)
            _disable_sdk_retries(type("_Handle", (), {"_http": client})())
            self._alias_client = client
        return self._alias_client

    def _alias_request(self, what: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON body) of one alias request; a refusal (4xx but 429) is an answer here, not an
        error, so callers can read its ``details[0].reason``. Transient failures are retried."""
        http = self._aliases_http()

        def send() -> tuple[int, Any]:
            try:
                call = getattr(http, method)
                resp = call(path, json=body) if body is not None else call(path)
            except Exception as exc:  # noqa: BLE001 - the SDK's ApiError carries the status and body
                status = getattr(exc, "status_code", None)
                if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 408, 429):
                    return status, getattr(exc, "body", None)
                raise
            try:
                return resp.status_code, resp.json() if resp.content else {}
            except ValueError:
                return resp.status_code, {}

        try:
            return self._call(what, send)
        except _Transient as exc:
            raise DestinationUnavailableError(f"{self.address}: {exc}", hint="Pinecone is throttling or unavailable; try again shortly.") from None

    def _alias_path(self) -> str:
        from urllib.parse import quote

        return f"/namespace-aliases/{quote(self.namespace, safe='')}"

    def alias_target(self) -> str | None:
        if self._index(required=False) is None:
            return None  # no index yet: no alias either
        status, body = self._alias_request("reading the namespace alias", "get", self._alias_path())
        if status == 404:
            if self._count(self._reads("reading index stats", lambda: self._index().describe_index_stats())):
                raise DestinationConfigError(
                    f"{self.address}: '{self.namespace}' is a namespace holding records, so it cannot become the alias "
                    "readers use under rollout: blue_green",
                    hint="Point the environment at a new namespace name (readers then switch to it once), or apply "
                    "with rollout: in_place.",
                )
            return None
        if status != 200:
            raise self._alias_refusal("reading the namespace alias", status, body)
        target = str((body or {}).get("target_namespace", ""))
        prefix = self.namespace + SLOT_SEPARATOR
        if not target.startswith(prefix):
            raise DestinationConfigError(
                f"{self.address}: the namespace alias '{self.namespace}' points at '{target}', which vectorops does not manage",
                hint=f"Repoint it at one of vectorops' slots ({prefix}<slot>) or delete the alias, then apply again.",
            )
        return target[len(prefix):]

    def switch_alias(self, slot: str) -> None:
        """Repoint the alias (``PATCH``: atomic, safe to retry), or create it the first time. A create
        answered 409 ``ALIAS_ALREADY_EXISTS`` whose ``details[0].metadata.target_namespace`` is ours
        means an earlier attempt landed (its response was lost and the request retried)."""
        target = self._slot_namespace(slot)
        status, body = self._alias_request("repointing the namespace alias", "patch", self._alias_path(), {"target_namespace": target})
        if status == 200:
            return
        if status == 404 and _reason(body) == "ALIAS_NOT_FOUND":
            status, body = self._alias_request(
                "creating the namespace alias", "post", "/namespace-aliases", {"name": self.namespace, "target_namespace": target}
            )
            if status == 200:
                return
            if status == 409 and _reason(body) == "ALIAS_ALREADY_EXISTS":
                if _detail_metadata(body).get("target_namespace") == target:
                    return
                status, body = self._alias_request(  # created meanwhile with another target: repoint it
                    "repointing the namespace alias", "patch", self._alias_path(), {"target_namespace": target}
                )
                if status == 200:
                    return
        raise self._alias_refusal("switching the namespace alias", status, body)

    def _alias_refusal(self, what: str, status: int, body: Any) -> DestinationError:
        reason = _reason(body) or f"HTTP {status}"
        message = str((body or {}).get("message", "")) if isinstance(body, dict) else ""
        return DestinationRejectedError(
            f"{self.address}: {what} failed: {reason}" + (f" ({printable(redact(message))[:300]})" if message else ""),
            hint="The alias was left as it was; run the apply again once the cause is fixed.",
        )

    def drop_slot(self, slot: str) -> None:
        if self.alias_target() == slot:
            raise DestinationError(f"{self.address}: refusing to delete the slot '{slot}': the alias points at it")
        slot_dest = self.open_slot(slot)
        namespace = slot_dest.namespace
        idx = self._index()
        with contextlib.suppress(_Missing):  # nothing was there
            self._call("deleting a slot's records", lambda: idx.delete(delete_all=True, namespace=namespace))
        for key in slot_dest.list_doc_keys(""):
            slot_dest.delete_doc(key)

    def close(self) -> None:
        if self._idx_shared:
            self._idx = None
            return
        if self._idx is not None and hasattr(self._idx, "close"):
            with contextlib.suppress(Exception):  # closing is best effort
                self._idx.close()
        self._idx = None


# -- helpers ----------------------------------------------------------------------------------


class _Transient(Exception):
    """Retries ran out on a throttled or unavailable service."""


class _Missing(DestinationConfigError):
    """The service answered 404 (index or namespace not found).

    Callers for whom absence is an answer (no index yet, no namespace yet) catch it; anywhere else
    it reaches the user as what it is, a ``DestinationError`` saying who answered 404 to what and
    what to check, never as an unexpected exception."""


def _unreadable(address: str, key: str, why: str) -> StateError:
    return StateError(
        f"{address}: vectorops state record '{key}' in '{DOCS_NAMESPACE}' is unreadable: {why}", hint=REPAIR_HINT,
    )


def _describe(exc: BaseException) -> str:
    """An SDK error as one line: secrets masked first, then cut (a cut copy of a key would slip past)."""
    text = redact(str(exc) or type(exc).__name__)
    return printable(" ".join(text.split())[:500])


def _reason(body: Any) -> str | None:
    """``details[0].reason`` of a Pinecone error body: what callers branch on, never the message."""
    details = body.get("details") if isinstance(body, dict) else None
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    reason = first.get("reason")
    return reason if isinstance(reason, str) else None


def _detail_metadata(body: Any) -> dict[str, Any]:
    details = body.get("details") if isinstance(body, dict) else None
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    metadata = first.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _retryable(exc: BaseException) -> bool:
    try:
        from pinecone.errors import PineconeConnectionError, PineconeTimeoutError, RateLimitError, ServiceError
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, (RateLimitError, ServiceError, PineconeConnectionError, PineconeTimeoutError)):
        return True
    return getattr(exc, "status_code", None) in (408, 425, 429, 500, 502, 503, 504)


def _hint_for(status: int | None, key_env: str) -> str | None:
    if status == 401:
        return f"Check that the API key in {key_env} is valid for this project (the manifest's api_key_env names that variable)."
    if status == 403:
        return "The key lacks permission, or a project quota is reached."
    if status in (400, 413):
        return "`vectorops plan` checks records against Pinecone's limits; run it to see which ids are refused."
    return None


def _lsn(resp: Any, *, reconciled: bool = False) -> int | None:
    info = getattr(resp, "response_info", None)
    if info is None:
        return None
    try:
        return info.lsn_reconciled if reconciled else info.lsn_committed
    except AttributeError:
        return None


def _disable_sdk_retries(idx: Any) -> None:
    """Turn off the SDK's own data-plane retries; ``PineconeDestination._call`` retries instead.

    Two stacked retry layers multiply attempts (4 SDK attempts per ours) and break the total time
    bound, and the SDK's process-global retry budget would make behaviour depend on unrelated
    earlier calls. This reaches into SDK internals (10.x), so it is guarded: on other versions the
    SDK keeps retrying underneath, which is slower but still correct.
    """
    try:
        from pinecone._internal.config import RetryConfig

        transport = idx._http._client._transport
        if hasattr(transport, "_config"):
            transport._config = RetryConfig(max_retries=0)
    except (ImportError, AttributeError):
        pass


# -- plan-time checks -------------------------------------------------------------------------


def check_records(batch: RecordBatch, dimension: int) -> list[str]:
    """What Pinecone would refuse in this batch, one sentence per problem, naming the ids.

    Called at plan time so a bad record stops the plan before anything is written, instead of
    failing a request halfway through an apply.
    """
    problems: dict[str, list[str]] = {}

    def flag(kind: str, vid: str) -> None:
        problems.setdefault(kind, []).append(vid)

    ids = batch.id_list
    if batch.vectors.ndim == 2 and batch.vectors.shape[1] != dimension and len(batch):
        flag(f"vectors have dimension {batch.vectors.shape[1]}, the index has {dimension}", ids[0])
    for vid in ids:
        if vid is None or vid == "":
            flag("empty id", repr(vid))
        elif len(vid) > MAX_ID_LENGTH:
            flag(f"id longer than {MAX_ID_LENGTH} characters", vid[:40] + "...")
        elif not vid.isascii() or "\x00" in vid:
            flag("id with non-ASCII or NUL characters", vid)
    if len(batch):
        vectors = batch.vectors
        zero = ~np.any(np.abs(vectors) >= 1e-8, axis=1) if vectors.size else np.ones(len(batch), bool)
        for i in np.flatnonzero(zero):
            flag("all-zero vector (Pinecone requires a non-zero value)", ids[i])
        for i in np.flatnonzero(~np.all(np.isfinite(vectors), axis=1)):
            flag("vector with NaN or infinite values", ids[i])
    for vid, md in zip(ids, batch.metadata_rows(), strict=False):
        for key, value in md.items():
            reason = _bad_metadata(key, value)
            if reason:
                flag(reason, vid)
        size = len(json.dumps(md, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        if size > MAX_METADATA_BYTES:
            flag(f"metadata over {MAX_METADATA_BYTES} bytes (40 KB) per record", vid)
    out = []
    for kind, bad in problems.items():
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        out.append(f"{kind}: {len(bad)} record(s): {shown}")
    return out


def _bad_metadata(key: str, value: Any) -> str | None:
    if key.startswith("$"):
        return f"metadata key '{key}' starts with '$' (reserved for filter operators)"
    if isinstance(value, (bool, str)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if math.isfinite(float(value)) else f"metadata field '{key}' is NaN or infinite"
    if isinstance(value, (list, tuple, np.ndarray, pa.Array)):
        items = list(value)
        if all(isinstance(x, str) for x in items):
            return None
        return f"metadata field '{key}' is a list with non-string items (Pinecone allows lists of strings only)"
    if value is None:
        return f"metadata field '{key}' is null"
    if isinstance(value, dict):
        return f"metadata field '{key}' is a nested object (Pinecone allows strings, numbers, booleans, lists of strings)"
    return f"metadata field '{key}' has type {type(value).__name__}, which Pinecone does not accept"


__all__ = ["DOCS_NAMESPACE", "PineconeDestination", "PineconeSettings", "check_records"]


def _head_at_generation(generation: Any, head: Any) -> bool:
    """Whether a document's head record carries ``generation`` (the write this process made)."""
    return head is not None and (head.metadata or {}).get("g") == generation
