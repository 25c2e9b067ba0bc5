"""Qdrant through the official ``qdrant-client``: a server (``url:``) or its embedded local mode (``path:``).

One environment is one collection with one unnamed dense vector, created with the manifest's
dimension and distance (cosine -> Cosine, dotproduct -> Dot, euclidean -> Euclid).

* Point ids are UUIDs: ``uuid5(POINT_NAMESPACE, record_id)``, because Qdrant accepts only unsigned
  integers and UUIDs as ids. The record id itself is kept in the payload as ``_vectorops_id``;
  the rest of the payload is the record's metadata (a metadata field with a reserved ``_vectorops_``
  name is refused at plan time by ``check_records``).
* vectorops' own documents (state, lock, history) live in a second collection,
  ``_vectorops_state__<collection>``, one point per document (id ``uuid5(POINT_NAMESPACE, "doc:" +
  key)``, a 1-dimensional dummy vector, the key and the JSON text in the payload), so they are never
  counted, listed or queried as records.

**Cosine collections and full refreshes.** Qdrant normalises every vector written to a Cosine
collection and returns the normalised one, so what it holds is not the float32 the dataset holds:
hashing what comes back would report every record as modified at ``--refresh full``, and an
export would not write the dataset's vectors. The normalisation loses the vector's length for
good, so no comparison of the stored vector alone can recover the original. vectorops therefore
keeps, in Cosine collections only, the dataset's float32 vector bytes in the payload
(``_vectorops_vector``, base64: 4/3 x the vector's size), and on reading a point:

- when the stored vector is the normalisation of that original (every component within
  ``COSINE_TOLERANCE`` of ``original / |original|`` computed in float64), the point holds what
  vectorops wrote and the original is returned, so hashes, drift and export are exact;
- otherwise (someone wrote another vector, or a point without the field) the stored vector is
  returned, and its hash differs from the deployed one: the record is reported modified.

What a full refresh proves on a Cosine collection is therefore: the metadata exactly, and the
stored direction to within ``COSINE_TOLERANCE`` per component (float32 rounding of the
normalisation is ~6e-8). A hand change smaller than that, or one that only rescales a vector (a
Cosine collection cannot hold a length at all), is not seen. Dot and Euclid collections store
vectors unchanged and are compared bit-exactly, with nothing extra in the payload. (Creating a
Dot collection of vectors vectorops normalises itself would not help: the stored vector would
still differ from the dataset's.)

Writes are batched upserts with ``wait=true`` (readable when they return), deletes are by point id,
and listing ids scrolls with the payload limited to ``_vectorops_id``. Against a server several
requests run at once (``max_in_flight``); local mode runs in this process, one request at a time.
Local mode holds a lock on its folder per client, so every destination opened on one folder in a
process shares one client (``_LocalClients``), released when the last of them closes. Nothing
else depends on local mode: it is how the tests run, because a Qdrant server cannot be installed
here.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from reconciler.errors import (
    DestinationAuthError,
    DestinationConfigError,
    DestinationError,
    DestinationMismatchError,
    DestinationRejectedError,
    DestinationUnavailableError,
)
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
from reconciler.providers.documents import parse_document
from reconciler.providers.settings import ENV_VAR_PATTERN, DestinationContext, DestinationSettings
from reconciler.records import RecordBatch
from reconciler.redact import redact, register_secret

T = TypeVar("T")

#: the namespace of every point id vectorops derives (uuid5); fixed forever: changing it would
#: orphan every deployed point
POINT_NAMESPACE = uuid.UUID("6f1c5b52-3f57-5d7e-9a59-76656374306f")
ID_FIELD = "_vectorops_id"
VECTOR_FIELD = "_vectorops_vector"  # Cosine collections only: the dataset's float32 bytes, base64
RESERVED_PREFIX = "_vectorops_"
STATE_PREFIX = "_vectorops_state__"
#: blue/green slots are collections ``<collection>__<slot>`` behind the alias ``<collection>``
SLOT_SEPARATOR = "__"
COSINE_TOLERANCE = 1e-6
_DISTANCE = {"cosine": "Cosine", "dotproduct": "Dot", "euclidean": "Euclid"}
_METRIC = {v: k for k, v in _DISTANCE.items()}
UPSERT_POINTS = 256  # per request: ~2 MB of JSON at dimension 768
IDS_PER_REQUEST = 1000  # retrieve / delete
SCROLL_PAGE = 1000
RETRY_FOR_S = 30.0
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def point_id(record_id: str) -> str:
    """The Qdrant point id of a record: uuid5 of its id in ``POINT_NAMESPACE``."""
    return str(uuid.uuid5(POINT_NAMESPACE, record_id))


def _doc_point_id(key: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, "doc:" + key))


class QdrantSettings(DestinationSettings):
    """Qdrant: one collection, through qdrant-client; a server (url) or embedded local mode (path)."""

    type: Literal["qdrant"]
    url: str | None = Field(None, pattern=r"^https?://[^@\s]+$", description="Server address, e.g. https://qdrant.example:6333")
    path: str | None = Field(None, min_length=1, description="Folder of qdrant-client's embedded local mode; relative to the manifest's folder")
    collection: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=200)
    api_key_env: str | None = Field(
        None, pattern=ENV_VAR_PATTERN, description="NAME of the environment variable holding the API key (never the key); servers only"
    )
    max_in_flight: int = Field(4, ge=1, le=64, description="Concurrent requests to a server")

    secret_env_fields = ("api_key_env",)
    pattern_hints = {
        "api_key_env": "Give the NAME of the environment variable that holds the key (upper-case letters, digits and '_', "
        "e.g. QDRANT_API_KEY), never the key itself.",
        "collection": "Collection names use letters, digits, '-' and '_', starting with a letter or digit.",
        "url": "Give the server as http(s)://host:port, without credentials (the key comes from api_key_env).",
    }

    @model_validator(mode="after")
    def _one_place(self) -> QdrantSettings:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of 'url' (a Qdrant server) or 'path' (qdrant-client's embedded local mode)")
        if self.path is not None and self.api_key_env is not None:
            raise ValueError("'api_key_env' is for a server ('url'); local mode ('path') has no key")
        return self

    def address(self) -> str:
        return f"qdrant:{self.url or self.path}#{self.collection}"

    def key(self, context: DestinationContext) -> str:
        where = self.url.rstrip("/") if self.url else str(context.resolve(self.path or ""))
        return f"qdrant:{where}#{self.collection}"

    def open(self, context: DestinationContext) -> QdrantDestination:
        try:
            import qdrant_client  # noqa: F401 - only to say what is missing before anything else
        except ImportError as exc:
            raise DestinationConfigError(
                f"environment '{context.environment}' uses Qdrant but qdrant-client is not installed ({exc.name})",
                hint="Install the extra: pip install 'vectorops[qdrant]'.",
            ) from None
        api_key = None
        if self.api_key_env is not None:
            api_key = os.environ.get(self.api_key_env, "")
            if not api_key.strip():
                raise DestinationConfigError(
                    f"{self.address()}: the environment variable {self.api_key_env} is not set",
                    hint=f"Export {self.api_key_env} with your Qdrant API key (the manifest's api_key_env names it).",
                )
        return QdrantDestination(
            collection=self.collection,
            url=self.url,
            path=str(context.resolve(self.path)) if self.path is not None else None,
            api_key=api_key,
            max_in_flight=self.max_in_flight,
            address=self.address(),
        )


class _LocalClients:
    """One local-mode client per folder in this process: qdrant-client locks the folder per client,
    and a command (plan, then apply) opens its destination more than once."""

    _lock = threading.Lock()
    _clients: dict[str, tuple[Any, int]] = {}

    @classmethod
    def acquire(cls, path: str) -> Any:
        from qdrant_client import QdrantClient

        with cls._lock:
            client, users = cls._clients.get(path, (None, 0))
            if client is None:
                Path(path).mkdir(parents=True, exist_ok=True)
                client = QdrantClient(path=path)
            cls._clients[path] = (client, users + 1)
            return client

    @classmethod
    def release(cls, path: str) -> None:
        """One user fewer; the last closes the client. Closed under the lock: another thread's
        ``acquire`` must not open the folder again before this client has let go of its lock
        ("in use by another process", seen once in CI with a reader thread beside an apply)."""
        with cls._lock:
            client, users = cls._clients.get(path, (None, 0))
            if client is None:
                return
            if users > 1:
                cls._clients[path] = (client, users - 1)
                return
            del cls._clients[path]
            client.close()

    @classmethod
    def close_all(cls) -> None:
        """Close every client this process holds (tests: the CLI leaves destinations open)."""
        with cls._lock:
            for client, _ in cls._clients.values():
                client.close()
            cls._clients.clear()


class QdrantDestination(Destination):
    """One Qdrant collection, its state in ``_vectorops_state__<collection>``."""

    # requests are independent (no commits, no snapshots); records are checked at plan time;
    # collection aliases repoint atomically (``update_collection_aliases``)
    capabilities = Capabilities(check_records=True, aliases=True)

    def __init__(
        self,
        *,
        collection: str,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        max_in_flight: int = 4,
        address: str | None = None,
        timeout: int = 30,
    ) -> None:
        if (url is None) == (path is None):
            raise DestinationConfigError("qdrant: give exactly one of url or path")
        self.collection = collection
        self.state_collection = STATE_PREFIX + collection
        self.url, self.path = url, path
        self.address = address or f"qdrant:{url or path}#{collection}"
        register_secret(api_key)  # masked in every message from here on (``redact``)
        self._api_key = api_key  # a slot (open_slot) connects with the same key
        self._distance: str | None = None  # "Cosine" | "Dot" | "Euclid" once known
        self._dimension: int | None = None
        self._closed = False
        if path is not None:
            self.max_in_flight = 1  # in-process: nothing to overlap
            try:
                self._client = _LocalClients.acquire(path)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise DestinationUnavailableError(
                    f"{self.address}: the local Qdrant folder {path} is in use by another process",
                    hint="qdrant-client's local mode allows one process per folder; wait for the other command to finish "
                    "(or use a Qdrant server for concurrent access).",
                ) from None
        else:
            from qdrant_client import QdrantClient

            self.max_in_flight = max(1, int(max_in_flight))
            with warnings.catch_warnings():  # "Api key is used with an insecure connection": the user's choice
                warnings.simplefilter("ignore")
                self._client = QdrantClient(url=url, api_key=api_key, timeout=timeout, prefer_grpc=False, check_compatibility=False)

    # -- errors --------------------------------------------------------------------------------

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        """qdrant-client's exceptions: ``ResponseHandlingException`` (the request never got an answer:
        refused, reset, timed out), ``UnexpectedResponse`` (an HTTP status), and httpx's own errors."""
        try:
            from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
        except ImportError:  # pragma: no cover - the SDK is there whenever this object exists
            return super().translate_error(exc, doing)
        where = f"{self.address}: {doing} failed"
        if isinstance(exc, UnexpectedResponse):
            status = exc.status_code
            detail = redact(_response_text(exc))
            if status in (401, 403):
                return DestinationAuthError(
                    f"{where}: Qdrant refused the credentials (HTTP {status}: {detail})",
                    hint="Check the API key in the variable the manifest's api_key_env names, and its permissions.",
                )
            if status in _TRANSIENT_STATUS:
                return DestinationUnavailableError(f"{where}: HTTP {status}: {detail}", hint="Qdrant is busy or unavailable; try again shortly.")
            if status == 404:
                return DestinationError(
                    f"{where}: not found (HTTP 404: {detail})",
                    hint="Run `vectorops plan` again; if the collection was deleted, `vectorops apply` creates it.",
                )
            return DestinationRejectedError(f"{where}: HTTP {status}: {detail}")
        if isinstance(exc, ResponseHandlingException) or _from_httpx(exc):
            cause = exc.source if isinstance(exc, ResponseHandlingException) else exc
            return DestinationUnavailableError(
                f"{where}: Qdrant at {self.url or self.path} could not be reached ({redact(describe_exception(cause))})",
                hint="Check that the server is running and the url in the manifest is right, then run the command again.",
            )
        if isinstance(exc, (ValueError, AssertionError)) and _raised_in_local_mode(exc):
            # local mode answers what a server answers with 404/400 by raising ValueError (e.g.
            # "Collection docs not found") or failing an assertion (a vector of another size)
            missing = "not found" in str(exc).lower()
            return (DestinationError if missing else DestinationRejectedError)(
                f"{where}: {redact(describe_exception(exc))}",
                hint="Run `vectorops plan` again; if the collection was deleted, `vectorops apply` creates it."
                if missing
                else "The local Qdrant collection refused the request; the message above says why.",
            )
        translated = super().translate_error(exc, doing)
        if translated is not None:
            translated.message = redact(translated.message)
            translated.args = (translated.message,)
        return translated

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a request, retrying what a server may answer later (connection lost, 429, 5xx) for a
        bounded time. Every request vectorops sends is idempotent (upserts and deletes by id)."""
        if self.path is not None:
            return fn()
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        deadline, delay = time.monotonic() + RETRY_FOR_S, 0.2
        while True:
            try:
                return fn()
            except (ResponseHandlingException, UnexpectedResponse) as exc:
                transient = isinstance(exc, ResponseHandlingException) or exc.status_code in _TRANSIENT_STATUS
                if not transient or time.monotonic() + delay > deadline or _refused(exc):
                    raise
            time.sleep(delay)
            delay = min(5.0, delay * 2)

    def _parallel(self, fn: Callable[[Any], T], chunks: list[Any]) -> list[T]:
        if len(chunks) <= 1 or self.max_in_flight == 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="qdrant") as pool:
            return list(pool.map(fn, chunks))

    # -- the collection ------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return bool(self._call(lambda: self._client.collection_exists(name)))

    def _params(self) -> tuple[int | None, str | None] | None:
        """(dimension, Qdrant distance name) of the records collection, None when it does not exist."""
        if not self._exists(self.collection):
            return None
        info = self._call(lambda: self._client.get_collection(self.collection))
        vectors = info.config.params.vectors
        if vectors is None or isinstance(vectors, dict):
            raise DestinationMismatchError(
                f"{self.address}: the collection has named vectors ({', '.join(sorted(vectors or {})) or 'none'}); "
                "vectorops needs one unnamed dense vector",
                hint="Point the environment at a collection vectorops created, or at a new collection name.",
            )
        distance = getattr(vectors.distance, "value", vectors.distance)
        self._dimension, self._distance = int(vectors.size), str(distance)
        return self._dimension, self._distance

    def describe(self) -> DestinationInfo:
        params = self._params()
        if params is None:
            return DestinationInfo(exists=False)
        dimension, distance = params
        count = self._call(lambda: self._client.count(self.collection, exact=True)).count
        return DestinationInfo(exists=True, dimension=dimension, metric=_METRIC.get(distance or "", distance), count=int(count))

    def ensure(self, dimension: int, metric: str) -> None:
        params = self._params()
        if params is not None:
            have_dim, have_distance = params
            problems = []
            if have_dim != dimension:
                problems.append(f"dimension {have_dim} (the dataset's embedding has {dimension})")
            if have_distance != _DISTANCE[metric]:
                problems.append(f"distance {have_distance} (the manifest's metric {metric} needs {_DISTANCE[metric]})")
            if problems:
                raise DestinationMismatchError(
                    f"{self.address}: the collection has " + " and ".join(problems),
                    hint="Point the environment at a collection created for this embedding, or change the manifest.",
                )
            return
        from qdrant_client import models

        self._call(
            lambda: self._client.create_collection(
                self.collection, vectors_config=models.VectorParams(size=dimension, distance=models.Distance(_DISTANCE[metric]))
            )
        )
        self._dimension, self._distance = dimension, _DISTANCE[metric]

    def _known_distance(self) -> str | None:
        if self._distance is None:
            self._params()
        return self._distance

    # -- records -------------------------------------------------------------------------------

    def _scroll(self, collection: str, *, payload: Any, vectors: bool, page: int = SCROLL_PAGE) -> Iterator[list[Any]]:
        if not self._exists(collection):
            return
        offset = None
        while True:
            points, offset = self._call(
                functools.partial(self._client.scroll, collection, limit=page, offset=offset, with_payload=payload, with_vectors=vectors)
            )
            if points:
                yield points
            if offset is None:
                return

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        buffer: list[str] = []
        for points in self._scroll(self.collection, payload=[ID_FIELD], vectors=False, page=min(batch_size, 10_000)):
            buffer.extend(_record_id(p) for p in points)
            while len(buffer) >= batch_size:
                yield buffer[:batch_size]
                buffer = buffer[batch_size:]
        if buffer:
            yield buffer

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        wanted = list(dict.fromkeys(ids))
        if not wanted or self._known_distance() is None:
            return self._to_batch([])
        chunks = [wanted[i : i + IDS_PER_REQUEST] for i in range(0, len(wanted), IDS_PER_REQUEST)]

        def one(chunk: list[str]) -> list[Any]:
            return self._call(
                lambda: self._client.retrieve(self.collection, ids=[point_id(i) for i in chunk], with_payload=True, with_vectors=True)
            )

        found = {_record_id(p): p for part in self._parallel(one, chunks) for p in part}
        return self._to_batch([found[i] for i in wanted if i in found])

    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        if self._known_distance() is None:
            return
        for points in self._scroll(self.collection, payload=True, vectors=True, page=min(batch_size, SCROLL_PAGE)):
            yield self._to_batch(points)

    def _to_batch(self, points: list[Any]) -> RecordBatch:
        dimension = self._dimension or 0
        ids, vectors, metadata = [], np.zeros((len(points), dimension), np.float32), []
        for k, p in enumerate(points):
            payload = dict(p.payload or {})
            ids.append(_record_id(p))
            stored = np.asarray(p.vector, dtype=np.float32)
            original = payload.pop(VECTOR_FIELD, None)
            vectors[k] = self._deployed_vector(stored, original)
            metadata.append({key: v for key, v in payload.items() if key != ID_FIELD})
        return RecordBatch.from_rows(ids, vectors, metadata, dimension)

    def _deployed_vector(self, stored: np.ndarray, original: Any) -> np.ndarray:
        """What the point holds, as the dataset's float32: in a Cosine collection the original kept in
        the payload when the stored vector is its normalisation, else what is stored (module docstring)."""
        if self._distance != "Cosine" or not isinstance(original, str):
            return stored
        try:
            raw = np.frombuffer(base64.b64decode(original, validate=True), dtype="<f4")
        except (ValueError, TypeError):
            return stored
        if raw.shape != stored.shape:
            return stored
        return raw.astype(np.float32) if _is_normalisation(stored, raw) else stored

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        from qdrant_client import models

        cosine = self._known_distance() == "Cosine"
        vectors = np.asarray(batch.vectors, dtype=np.float32)
        points = []
        for k, (vid, md) in enumerate(zip(batch.id_list, batch.metadata_rows(), strict=False)):
            payload = {**md, ID_FIELD: vid}
            if cosine:
                payload[VECTOR_FIELD] = base64.b64encode(vectors[k].astype("<f4").tobytes()).decode("ascii")
            points.append(models.PointStruct(id=point_id(vid), vector=vectors[k].tolist(), payload=payload))
        chunks = [points[i : i + UPSERT_POINTS] for i in range(0, len(points), UPSERT_POINTS)]
        self._parallel(lambda chunk: self._call(lambda: self._client.upsert(self.collection, points=chunk, wait=True)), chunks)

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids or not self._exists(self.collection):
            return
        from qdrant_client import models

        chunks = [ids[i : i + IDS_PER_REQUEST] for i in range(0, len(ids), IDS_PER_REQUEST)]

        def one(chunk: list[str]) -> None:
            selector = models.PointIdsList(points=[point_id(i) for i in chunk])
            self._call(lambda: self._client.delete(self.collection, points_selector=selector, wait=True))

        self._parallel(one, chunks)

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        values = [float(x) for x in np.asarray(vector, dtype=np.float32)]
        result = self._call(
            lambda: self._client.query_points(self.collection, query=values, limit=top_k, with_payload=[ID_FIELD], with_vectors=False)
        )
        return [_record_id(p) for p in result.points]

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        return check_records(batch, dimension)

    # -- vectorops documents -------------------------------------------------------------------

    def read_doc(self, key: str) -> dict[str, Any] | None:
        if not self._exists(self.state_collection):
            return None
        points = self._call(lambda: self._client.retrieve(self.state_collection, ids=[_doc_point_id(key)], with_payload=True))
        return parse_document((points[0].payload or {}).get("doc"), self.address, key) if points else None

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.write_docs({key: doc})

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """All documents in one upsert request (``wait=true``): one operation in Qdrant's log."""
        if not docs:
            return
        from qdrant_client import models

        if not self._exists(self.state_collection):
            try:
                self._call(
                    lambda: self._client.create_collection(
                        self.state_collection, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT)
                    )
                )
            except Exception:  # noqa: BLE001 - created by a concurrent process a moment ago
                if not self._exists(self.state_collection):
                    raise
        points = [
            models.PointStruct(id=_doc_point_id(key), vector=[1.0], payload={"key": key, "doc": json.dumps(doc, sort_keys=True)})
            for key, doc in docs.items()
        ]
        self._call(lambda: self._client.upsert(self.state_collection, points=points, wait=True))

    def delete_doc(self, key: str) -> None:
        if not self._exists(self.state_collection):
            return
        from qdrant_client import models

        selector = models.PointIdsList(points=[_doc_point_id(key)])
        self._call(lambda: self._client.delete(self.state_collection, points_selector=selector, wait=True))

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for points in self._scroll(self.state_collection, payload=True, vectors=False):
            for p in points:
                key = str((p.payload or {}).get("key", ""))
                if key.startswith(prefix):
                    out.append((key, parse_document((p.payload or {}).get("doc"), self.address, key)))
        return sorted(out, key=lambda kv: kv[0])

    def list_doc_keys(self, prefix: str) -> list[str]:
        keys = (str((p.payload or {}).get("key", "")) for ps in self._scroll(self.state_collection, payload=["key"], vectors=False) for p in ps)
        return sorted(k for k in keys if k.startswith(prefix))

    # -- blue/green: collection aliases (SPEC §9) --------------------------------------------------

    def _slot_collection(self, slot: str) -> str:
        return f"{self.collection}{SLOT_SEPARATOR}{slot}"

    def open_slot(self, slot: str) -> QdrantDestination:
        """The collection ``<collection>__<slot>``; its state lives in its own state collection."""
        name = self._slot_collection(slot)
        where = self.url or self.path
        return QdrantDestination(
            collection=name, url=self.url, path=self.path, api_key=self._api_key, max_in_flight=self.max_in_flight,
            address=f"qdrant:{where}#{name}",
        )

    def list_slots(self) -> list[str]:
        prefix = self.collection + SLOT_SEPARATOR
        names = [c.name for c in self._call(lambda: self._client.get_collections()).collections]
        return sorted(n[len(prefix):] for n in names if n.startswith(prefix) and n[len(prefix):].isalnum())

    def _aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self._call(lambda: self._client.get_aliases()).aliases}

    def alias_target(self) -> str | None:
        target = self._aliases().get(self.collection)
        if target is None:
            if self._call(lambda: self._client.collection_exists(self.collection)):
                raise DestinationConfigError(
                    f"{self.address}: '{self.collection}' is a collection, so it cannot become the alias readers use "
                    "under rollout: blue_green",
                    hint=f"Move the data aside first (e.g. recreate it as '{self._slot_collection('blue')}', or apply "
                    "with rollout: in_place), or point the environment at a new collection name.",
                )
            return None
        prefix = self.collection + SLOT_SEPARATOR
        if not target.startswith(prefix):
            raise DestinationConfigError(
                f"{self.address}: the alias '{self.collection}' points at the collection '{target}', which vectorops does not manage",
                hint=f"Point it at one of vectorops' slots ({prefix}<slot>) or delete the alias, then apply again.",
            )
        return target[len(prefix):]

    def switch_alias(self, slot: str) -> None:
        """Delete and create the alias in ONE ``update_collection_aliases`` call: Qdrant applies the
        operations of one call together, so readers never find the alias missing."""
        from qdrant_client import models

        target = self._slot_collection(slot)
        operations: list[Any] = []
        if self.collection in self._aliases():
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.collection)))
        operations.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=self.collection))
        )
        self._call(lambda: self._client.update_collection_aliases(change_aliases_operations=operations))

    def drop_slot(self, slot: str) -> None:
        name = self._slot_collection(slot)
        if self._aliases().get(self.collection) == name:
            raise DestinationError(f"{self.address}: refusing to delete the slot '{slot}': the alias points at it")
        for collection in (name, STATE_PREFIX + name):
            if self._call(functools.partial(self._client.collection_exists, collection)):
                self._call(functools.partial(self._client.delete_collection, collection))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.path is not None:
            _LocalClients.release(self.path)
        else:
            self._client.close()


# -- helpers ----------------------------------------------------------------------------------


def _record_id(point: Any) -> str:
    vid = (point.payload or {}).get(ID_FIELD)
    # a point vectorops did not write: its own id stands for it (never equal to a uuid5 of a record)
    return str(vid) if isinstance(vid, str) else f"<qdrant point {point.id}>"


def _is_normalisation(stored: np.ndarray, original: np.ndarray) -> bool:
    """Is ``stored`` what Qdrant makes of ``original`` in a Cosine collection (original / |original|)?"""
    o = original.astype(np.float64)
    if not np.all(np.isfinite(o)):
        return False
    norm = float(np.linalg.norm(o))
    expected = o / norm if norm > 0 else o  # Qdrant leaves a zero vector as it is
    return bool(np.max(np.abs(stored.astype(np.float64) - expected), initial=0.0) <= COSINE_TOLERANCE)


def _response_text(exc: Any) -> str:
    content = getattr(exc, "content", b"") or b""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return " ".join(text.split())[:300] or getattr(exc, "reason_phrase", "") or "(no body)"


def _from_httpx(exc: BaseException) -> bool:
    return (type(exc).__module__ or "").split(".")[0] in ("httpx", "httpcore")


def _refused(exc: BaseException) -> bool:
    """A connection refused outright: nothing listens there, retrying for half a minute will not help."""
    text = str(getattr(exc, "source", exc))
    return "Connection refused" in text or "Name or service not known" in text


# -- plan-time checks -------------------------------------------------------------------------


def check_records(batch: RecordBatch, dimension: int) -> list[str]:
    """What this destination would refuse in ``batch``, one sentence per problem naming the ids."""
    problems: dict[str, list[str]] = {}

    def flag(kind: str, vid: str) -> None:
        problems.setdefault(kind, []).append(vid)

    ids = batch.id_list
    for vid in ids:
        if not vid:
            flag("empty id", repr(vid))
    if len(batch):
        for i in np.flatnonzero(~np.all(np.isfinite(batch.vectors), axis=1)):
            flag("vector with NaN or infinite values (Qdrant stores finite numbers only)", ids[i])
    for vid, md in zip(ids, batch.metadata_rows(), strict=False):
        for key in md:
            if key.startswith(RESERVED_PREFIX):
                flag(f"metadata field '{key}' uses the prefix '{RESERVED_PREFIX}', reserved for vectorops in Qdrant payloads", vid)
        try:
            json.dumps(md, allow_nan=False)
        except (TypeError, ValueError) as exc:
            reason = "NaN or infinite number" if isinstance(exc, ValueError) else str(exc).split(" is ")[-1]
            flag(f"metadata that is not JSON ({reason})", vid)
    out = []
    for kind, bad in problems.items():
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        out.append(f"{kind}: {len(bad)} record(s): {shown}")
    return out


__all__ = ["COSINE_TOLERANCE", "ID_FIELD", "POINT_NAMESPACE", "QdrantDestination", "QdrantSettings", "check_records", "point_id"]


def _raised_in_local_mode(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside qdrant-client's embedded local mode (``qdrant_client.local``)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("qdrant_client.local"):
            return True
        tb = tb.tb_next
    return False
