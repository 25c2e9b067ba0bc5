"""Changed records kept on local disk between a plan and the apply that follows it.

A cold plan decodes the whole desired version to hash it; the few records that differ from the
deployed version pass through its hands anyway. Keeping them (ids, vectors, canonical metadata) in
an Arrow IPC file means the apply that follows reads a small file instead of decoding the whole
version again, which is what makes an incremental apply cost a fraction of a full re-upload.
The stash lives in the local cache (never in the plan file, never in the destination) and is only
an optimisation: when it is missing or incomplete, apply reads the dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from reconciler import caches, canonical
from reconciler.engine import diff as d
from reconciler.engine import hashing
from reconciler.engine.partitioned import KeyIndex
from reconciler.records import RecordBatch

#: stop stashing (and drop the stash) beyond this many vector bytes: a big change reads the dataset
MAX_STASH_BYTES = int(os.environ.get("VECTOROPS_STASH_MAX_BYTES", str(1024 * 1024 * 1024)))


def stash_path(desired_digest: str, baseline_digest: str, signature_key: str) -> Path:
    name = f"{desired_digest}-from-{baseline_digest}-{signature_key}".replace(".dir", "-dir")
    return caches.cache_dir() / "stash" / f"{name}.arrow"


class StashWriter:
    """Collects the records of a version that differ from a baseline, batch by batch."""

    def __init__(self, path: Path, baseline: d.VersionIndex | KeyIndex, dimension: int) -> None:
        """``baseline``: the version to compare with, or its content keys (``KeyIndex.of(baseline_keys(...))``,
        shared by shard workers)."""
        self.path = path
        self._known = baseline if isinstance(baseline, KeyIndex) else KeyIndex.of(baseline_keys(baseline))
        self.schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), dimension)), ("metadata", pa.string())])
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = ipc.new_file(self._sink, self.schema)
        self._bytes = 0
        self.abandoned = False

    def offer(self, batch: RecordBatch, vh: np.ndarray, mh: np.ndarray, id_keys: np.ndarray | None = None) -> None:
        """Stash the records of ``batch`` the baseline lacks; ``id_keys``: its ids' keys, if already hashed."""
        if self.abandoned or len(batch) == 0:
            return
        keys = _keys_of(id_keys, vh, mh) if id_keys is not None else _content_keys(batch.ids, vh, mh)
        rows = np.flatnonzero(~self._known.contains(keys))
        if len(rows) == 0:
            return
        picked = batch.take(rows)
        self._bytes += picked.vectors.nbytes
        if self._bytes > MAX_STASH_BYTES:
            self.abandon()
            return
        table = canonical.records_table(picked)
        self._writer.write_table(table)

    def abandon(self) -> None:
        if not self.abandoned:
            self.abandoned = True
            self._writer.close()
            self._sink.close()
            self._tmp.unlink(missing_ok=True)

    def close(self) -> None:
        if self.abandoned:
            return
        self._writer.close()
        self._sink.close()
        os.replace(self._tmp, self.path)  # atomic: a reader never sees half a stash


def baseline_keys(baseline: d.VersionIndex) -> np.ndarray:
    """The sorted content keys of a version: what a stash compares each decoded record with."""
    parts = []
    for i in range(baseline.chunk_count()):  # a large sharded version: a shard at a time
        t = baseline.chunk(i, ["vh", "mh"])
        parts.append(_keys_of(baseline.chunk_keys(i), t.column("vh").to_numpy(), t.column("mh").to_numpy()))
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.uint64)


def _content_keys(ids: pa.Array | pa.ChunkedArray, vh: np.ndarray, mh: np.ndarray) -> np.ndarray:
    """One uint64 per record from its id and content hashes: equal keys mean "unchanged".

    Sorted once for the baseline and binary-searched per batch (a join per batch rebuilt a hash
    table of the whole baseline every time). A collision can only leave a changed record out of
    the stash, and apply reads what the stash lacks from the dataset, so it costs time, never data.
    """
    return _keys_of(hashing.hash_strings(ids), vh, mh)


def _keys_of(idh: np.ndarray, vh: np.ndarray, mh: np.ndarray) -> np.ndarray:
    return idh ^ (vh.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (mh.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))


def read_stashed(path: Path, ids: pa.Array, batch_size: int) -> tuple[list[RecordBatch], pa.Array]:
    """The stashed records among ``ids`` (in write-sized batches), and the ids it did not hold."""
    if not path.exists():
        return [], ids
    try:
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowInvalid):
        return [], ids
    table = table.filter(pc.is_in(table.column("id"), value_set=ids))
    found = table.column("id").combine_chunks() if table.num_rows else pa.array([], pa.string())
    missing = ids.filter(pc.invert(pc.is_in(ids, value_set=found))) if len(found) else ids
    batches = [canonical.records_from_table(table.slice(start, batch_size)) for start in range(0, table.num_rows, batch_size)]
    return batches, missing


def unstashed(path: Path, ids: pa.Array) -> pa.Array:
    """The ids among ``ids`` the stash does not hold (only its id column is looked at)."""
    return unstashed_in([path], ids)


def unstashed_in(paths: list[Path], ids: pa.Array) -> pa.Array:
    """The ids among ``ids`` that none of the stashes at ``paths`` holds, in one lookup (a stash that
    is missing or unreadable holds nothing)."""
    if len(ids) == 0:
        return ids
    held: list[pa.Array] = []
    for path in paths:
        try:
            column = ipc.open_file(pa.memory_map(str(path))).read_all().column("id")
        except (OSError, pa.ArrowInvalid, KeyError):
            continue
        if len(column):
            held.append(column.combine_chunks().cast(pa.string()))
    if not held:
        return ids
    return ids.filter(pc.invert(pc.is_in(ids, value_set=pa.concat_arrays(held))))
