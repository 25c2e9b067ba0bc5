"""Per-record content hashes: xxh3 over float32 rows and over canonical JSON metadata.

Hashes are split in two (vector, metadata) so an update can be reported as a vector change or a
metadata-only change. xxh3 runs at memory speed here, so hashing costs what reading costs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash

from reconciler.canonical import canonical_metadata_array
from reconciler.records import RecordBatch

HASH_VERSION = "1"  # part of every cache key: bump it when a hash would change

_EMPTY_META_HASH = xxhash.xxh3_64_intdigest(b"{}")


def round_vectors(vectors: np.ndarray, precision: str) -> np.ndarray:
    """float32 ``vectors`` as a destination of this precision stores them (``Capabilities.vector_precision``):
    unchanged at ``float32``; at ``float16`` each component rounded to the nearest float16 (round half to
    even, as the destination's writer rounds) and widened back to float32, exactly. Rounding twice
    changes nothing, so what such a destination gives back hashes as the dataset's rounded vectors."""
    if precision == "float32":
        return vectors
    if precision != "float16":
        raise ValueError(f"unknown vector precision {precision!r}")
    with np.errstate(over="ignore"):  # beyond ±65504: inf, refused at plan time by the destination's check_records
        return vectors.astype(np.float16).astype(np.float32)


def hash_batch(batch: RecordBatch, precision: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """(vector hashes, metadata hashes) as uint64 arrays, one entry per record; vectors as a destination
    storing ``precision`` holds them (``round_vectors``)."""
    n = len(batch)
    vectors = np.ascontiguousarray(round_vectors(np.asarray(batch.vectors, dtype=np.float32), precision))
    vh = np.fromiter(map(xxhash.xxh3_64_intdigest, vectors), dtype=np.uint64, count=n)
    for row in _rows_with_negative_zero(vectors):  # -0.0 hashes as +0.0; rare, so fixed up after
        vh[row] = xxhash.xxh3_64_intdigest(np.where(vectors[row] == 0, np.float32(0), vectors[row]).tobytes())
    if batch.metadata.num_columns == 0:
        return vh, np.full(n, _EMPTY_META_HASH, dtype=np.uint64)
    return vh, hash_strings(canonical_metadata_array(batch))


def hash_strings(values: pa.Array | pa.ChunkedArray, chunk: int = 65_536) -> np.ndarray:
    """xxh3 of each string's UTF-8 bytes, read straight from the Arrow buffers.

    No Python ``str`` per value: a million ids as Python strings is ~100 MB that Python's allocator
    keeps after they are freed, which made plan memory grow with the dataset.
    """
    digest = xxhash.xxh3_64_intdigest
    parts = []
    for arr in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
        data = memoryview(arr.buffers()[2] or b"")
        for start in range(0, len(arr), chunk):
            ends = offsets[start : start + chunk + 1].tolist()
            spans = map(slice, ends[:-1], ends[1:])
            parts.append(np.fromiter(map(digest, map(data.__getitem__, spans)), dtype=np.uint64, count=len(ends) - 1))
    return np.concatenate(parts) if parts else np.empty(0, np.uint64)


def _rows_with_negative_zero(vectors: np.ndarray, chunk: int = 2048) -> list[int]:
    """Rows holding a -0.0, found in cache-sized chunks without copying the batch."""
    bits = vectors.view(np.int32)
    # -0.0 is the only float32 whose bits read as INT32_MIN: one fast reduction clears most batches
    if len(bits) == 0 or bits.min() != np.iinfo(np.int32).min:
        return []
    rows: list[int] = []
    for start in range(0, len(bits), chunk):
        hit = (bits[start : start + chunk] == np.iinfo(np.int32).min).any(axis=1)
        if hit.any():
            rows.extend((np.flatnonzero(hit) + start).tolist())
    return rows
