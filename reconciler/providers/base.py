"""The one interface every destination implements.

Providers know nothing of plans, manifests or datasets: they move records and small JSON
documents (vectorops' own state) in and out of one index/table. Everything else lives in the
engine, so a new destination is a single module.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from reconciler.records import RecordBatch


@dataclass(frozen=True)
class DestinationInfo:
    exists: bool
    dimension: int | None = None
    metric: str | None = None  # cosine | dotproduct | euclidean
    count: int = 0  # user records only: never counts vectorops' own state


class Destination(ABC):
    """One index (or table, or namespace) that holds one environment's records."""

    #: a stable, secret-free address shown in plans, e.g. ``lancedb:.vectorops/lancedb#docs``
    address: str
    #: True when a whole (bounded) plan is best written as one ``upsert`` and one ``delete`` call:
    #: each call is a table commit, so fewer, larger calls are faster (LanceDB)
    single_step: bool = False

    @abstractmethod
    def describe(self) -> DestinationInfo: ...

    @abstractmethod
    def ensure(self, dimension: int, metric: str) -> None:
        """Create the index/table when it does not exist yet."""

    @abstractmethod
    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        """Every user record id, in batches."""

    def all_ids(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> pa.Array:
        """Every user record id as one Arrow string array (ids are small; vectors never are).

        ``expected``: the ids the destination most likely holds (sorted), a hint a destination that
        can only page through ids uses to split the listing; the answer never depends on it.
        ``progress``: called with how many ids are listed so far, where listing takes a while."""
        chunks, listed = [], 0
        for batch in self.iter_ids():
            chunks.append(pa.array(batch, pa.string()))
            listed += len(batch)
            if progress is not None:
                progress(listed)
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    @abstractmethod
    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        """The records with these ids that exist (missing ids are simply absent)."""

    @abstractmethod
    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        """Every user record with vector and metadata, in batches (full refresh, export).
        ``expected``: the same hint as for ``all_ids``."""

    @abstractmethod
    def upsert(self, batch: RecordBatch) -> None:
        """Write records, replacing any with the same id. Idempotent."""

    def upsert_stream(self, batches: Iterable[RecordBatch]) -> Iterator[int]:
        """Upsert every batch, yielding how many records have landed as they land (progress).

        The default upserts batch by batch. A destination that cuts batches into requests packs
        records across batch boundaries instead, so only the very last request is part-full."""
        for batch in batches:
            self.upsert(batch)
            yield len(batch)

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Delete by id; ids that do not exist are ignored. Idempotent."""

    @abstractmethod
    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        """Ids of the ``top_k`` nearest records under the index's metric."""

    # -- vectorops' own documents (state, lock, history), kept beside the records -----------

    @abstractmethod
    def read_doc(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def write_doc(self, key: str, doc: dict[str, Any]) -> None: ...

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """Write several documents in as few requests as the destination allows.

        Each document lands whole, as ``write_doc`` would write it, and is readable when this
        returns. Where the documents cannot all land in one step they land in the order given.
        The default writes them one by one, in that order.
        """
        for key, doc in docs.items():
            self.write_doc(key, doc)

    @abstractmethod
    def delete_doc(self, key: str) -> None: ...

    @abstractmethod
    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """All documents whose key starts with ``prefix``, sorted by key."""

    def list_doc_keys(self, prefix: str) -> list[str]:
        """The keys alone, sorted: destinations that can list without reading documents override it."""
        return [key for key, _ in self.list_docs(prefix)]

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """Mutual exclusion around a state read-modify-write, where the destination can give one."""
        yield

    def after_apply(self) -> None:
        """Housekeeping after a successful apply (compaction, waiting for consistency)."""

    def close(self) -> None:
        """Release connections."""
