"""An in-memory destination: the whole contract, no I/O, for engine tests and plug-in authors' tests.

It is a real ``Destination`` that passes the destination contract suite (``tests/contract``), so a
test of plan building or apply can run against it in milliseconds, and a plug-in author can
compare their destination's behaviour with it. Nothing survives the process.

Destinations opened under one ``name`` share their content (``MemoryDestination.named``), so
a plan and the apply that follows it, which open the destination separately, see one index. It
is not a built-in manifest type (state kept in memory would vanish with the command); tests
that want it in a manifest register ``MemorySettings`` through a plug-in, as the example
package under ``examples/`` does with its own type.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from reconciler.errors import DestinationError, DestinationMismatchError
from reconciler.providers.base import Capabilities, Destination, DestinationInfo
from reconciler.providers.settings import DestinationContext, DestinationSettings
from reconciler.records import RecordBatch


@dataclass
class MemoryStore:
    """What one in-memory index holds: records by id, vectorops' documents by key."""

    dimension: int | None = None
    metric: str | None = None
    records: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)  # id -> (vector, canonical metadata JSON)
    docs: dict[str, str] = field(default_factory=dict)  # key -> JSON text (stored as text: callers never share a dict)
    snapshots: dict[str, dict[str, tuple[np.ndarray, str]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


class MemoryDestination(Destination):
    """One in-memory index. ``MemoryDestination()`` is private to its object; ``named(name)`` is shared."""

    # what LanceDB can do, so tests of apply exercise every path the engine has
    capabilities = Capabilities(fill=True, single_step=True, snapshots=True, check_records=True, single_commit=True)

    _stores: ClassVar[dict[str, MemoryStore]] = {}
    _stores_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store: MemoryStore | None = None, *, address: str = "memory:") -> None:
        self.store = store if store is not None else MemoryStore()
        self.address = address

    @classmethod
    def named(cls, name: str) -> MemoryDestination:
        """The destination called ``name`` in this process, created empty on first use."""
        with cls._stores_lock:
            store = cls._stores.setdefault(name, MemoryStore())
        return cls(store, address=f"memory:{name}")

    @classmethod
    def forget(cls, name: str | None = None) -> None:
        """Drop the named store (all of them with no name): a test's clean slate."""
        with cls._stores_lock:
            if name is None:
                cls._stores.clear()
            else:
                cls._stores.pop(name, None)

    # -- records -------------------------------------------------------------------------------

    def describe(self) -> DestinationInfo:
        s = self.store
        with s.lock:
            if s.dimension is None:
                return DestinationInfo(exists=False)
            return DestinationInfo(exists=True, dimension=s.dimension, metric=s.metric, count=len(s.records))

    def ensure(self, dimension: int, metric: str) -> None:
        s = self.store
        with s.lock:
            if s.dimension is None:
                s.dimension, s.metric = dimension, metric
            elif (s.dimension, s.metric) != (dimension, metric):
                raise DestinationMismatchError(
                    f"{self.address}: the index has dimension {s.dimension} and metric {s.metric}, "
                    f"the manifest asks for {dimension} and {metric}",
                    hint="Point the environment at an index created for this embedding.",
                )

    def _require(self) -> MemoryStore:
        if self.store.dimension is None:
            raise DestinationError(f"{self.address}: the index does not exist", hint="Run `vectorops apply` to create it.")
        return self.store

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        with self.store.lock:
            ids = list(self.store.records)
        for i in range(0, len(ids), batch_size):
            yield ids[i : i + batch_size]

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        s = self.store
        with s.lock:
            found = [(i, s.records[i]) for i in dict.fromkeys(ids) if i in s.records]
        return self._batch(found)

    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        with self.store.lock:
            items = list(self.store.records.items())
        for i in range(0, len(items), batch_size):
            yield self._batch(items[i : i + batch_size])

    def _batch(self, items: list[tuple[str, tuple[np.ndarray, str]]]) -> RecordBatch:
        dimension = self.store.dimension or 0
        vectors = np.stack([v for _, (v, _) in items]) if items else np.zeros((0, dimension), np.float32)
        return RecordBatch.from_rows([i for i, _ in items], vectors, [json.loads(m) for _, (_, m) in items], dimension)

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        s = self._require()
        if batch.vectors.shape[1] != s.dimension:
            raise DestinationMismatchError(f"{self.address}: vectors of dimension {batch.vectors.shape[1]}, the index has {s.dimension}")
        rows = _canonical_rows(batch)
        with s.lock:
            s.records.update(rows)

    def fill(self, batches: Iterable[RecordBatch]) -> None:
        """All batches land together or none does (one 'commit')."""
        s = self._require()
        rows: dict[str, tuple[np.ndarray, str]] = {}
        for batch in batches:
            rows.update(_canonical_rows(batch))
        with s.lock:
            s.records.update(rows)

    def delete(self, ids: Sequence[str]) -> None:
        s = self.store
        with s.lock:
            for i in ids:
                s.records.pop(i, None)

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        s = self._require()
        with s.lock:
            items = list(s.records.items())
        if not items:
            return []
        ids = [i for i, _ in items]
        matrix = np.stack([v for _, (v, _) in items]).astype(np.float64)
        q = np.asarray(vector, dtype=np.float64)
        if s.metric == "euclidean":
            score = -np.linalg.norm(matrix - q, axis=1)
        elif s.metric == "dotproduct":
            score = matrix @ q
        else:
            norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(q) or 1.0)
            score = (matrix @ q) / np.where(norms == 0, 1.0, norms)
        order = sorted(range(len(ids)), key=lambda k: (-score[k], ids[k]))
        return [ids[k] for k in order[:top_k]]

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        """The memory index holds anything but an empty id (as every destination refuses one)."""
        empty = [i for i in batch.id_list if not i]
        return [f"empty id: {len(empty)} record(s)"] if empty else []

    # -- snapshots -----------------------------------------------------------------------------

    def tag_version(self, tag: str) -> None:
        s = self._require()
        with s.lock:
            s.snapshots[tag] = dict(s.records)

    def restore_tag(self, tag: str) -> bool:
        s = self.store
        with s.lock:
            if tag not in s.snapshots:
                return False
            s.records = dict(s.snapshots[tag])
            return True

    # -- vectorops documents -------------------------------------------------------------------

    def read_doc(self, key: str) -> dict[str, Any] | None:
        with self.store.lock:
            text = self.store.docs.get(key)
        return None if text is None else json.loads(text)

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.write_docs({key: doc})

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        texts = {k: json.dumps(copy.deepcopy(d), sort_keys=True) for k, d in docs.items()}  # all or nothing
        with self.store.lock:
            self.store.docs.update(texts)

    def delete_doc(self, key: str) -> None:
        with self.store.lock:
            self.store.docs.pop(key, None)

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        with self.store.lock:
            items = sorted((k, t) for k, t in self.store.docs.items() if k.startswith(prefix))
        return [(k, json.loads(t)) for k, t in items]

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        with self.store.lock:
            yield


def _canonical_rows(batch: RecordBatch) -> dict[str, tuple[np.ndarray, str]]:
    vectors = np.asarray(batch.vectors, dtype=np.float32)
    metadata = [json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for m in batch.metadata_rows()]
    return {vid: (vectors[k].copy(), metadata[k]) for k, vid in enumerate(batch.id_list)}


class MemorySettings(DestinationSettings):
    """In-memory index (tests only): ``destination: {type: memory, name: docs}``."""

    type: Literal["memory"]
    name: str = Field(min_length=1, description="Destinations opened under one name share their content")

    def address(self) -> str:
        return f"memory:{self.name}"

    def open(self, context: DestinationContext) -> MemoryDestination:
        return MemoryDestination.named(self.name)


__all__ = ["MemoryDestination", "MemorySettings", "MemoryStore"]
