"""Per-record content hashes: xxh3 over float32 rows and over canonical JSON metadata.

Hashes are split in two (vector, metadata) so an update can be reported as a vector change or a
metadata-only change. xxh3 runs at memory speed here, so hashing costs what reading costs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from reconciler.canonical import canonical_metadata_array
from reconciler.records import RecordBatch

#: part of every cache key: bump it when a hash would change. 2: float32 metadata hashed as the
#: number it is written as (0.1, not 0.10000000149011612), a map as a JSON object (not pairs), and
#: JSONL strings that look like dates as the text written (not a reformatted timestamp)
HASH_VERSION = "2"

_EMPTY_META_HASH = xxhash.xxh3_64_intdigest(b"{}")
#: rows this wide or narrower are copied into ``bytes`` to be hashed (``hash_rows``)
ROW_COPY_MAX_BYTES = 1024


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
    vh = hash_rows(vectors)
    for row in _rows_with_negative_zero(vectors):  # -0.0 hashes as +0.0; rare, so fixed up after
        vh[row] = xxhash.xxh3_64_intdigest(np.where(vectors[row] == 0, np.float32(0), vectors[row]).tobytes())
    if batch.metadata.num_columns == 0:
        return vh, np.full(n, _EMPTY_META_HASH, dtype=np.uint64)
    return vh, hash_strings(canonical_metadata_array(batch))


def hash_rows(rows: np.ndarray, chunk: int = 8_192) -> np.ndarray:
    """xxh3 of each row's bytes (a C-contiguous 2-D array), as uint64.

    Rows of up to ``ROW_COPY_MAX_BYTES`` (float32 vectors up to 256 dimensions) are hashed from
    ``bytes`` made for a chunk of rows in one C call (``tolist`` of a one-field view), which costs
    less than a numpy row object per record; wider rows are hashed in place, where copying them
    would cost more than the row objects save. Same hash either way: the row's bytes.
    """
    n, width = len(rows), rows.shape[1] * rows.itemsize if rows.ndim == 2 else 0
    digest = xxhash.xxh3_64_intdigest
    if width == 0 or width > ROW_COPY_MAX_BYTES or not rows.flags.c_contiguous:
        return np.fromiter(map(digest, rows), dtype=np.uint64, count=n)
    as_bytes = rows.view(f"V{width}").reshape(n)
    out = np.empty(n, np.uint64)
    for start in range(0, n, chunk):
        values = as_bytes[start : start + chunk].tolist()  # bytes, exactly the row's (np.void keeps trailing NULs)
        out[start : start + len(values)] = np.fromiter(map(digest, values), dtype=np.uint64, count=len(values))
    return out


def hash_strings(values: pa.Array | pa.ChunkedArray, chunk: int = 65_536) -> np.ndarray:
    """xxh3 of each string's UTF-8 bytes (a null hashes as the empty string).

    The strings are read as ``bytes`` straight from the Arrow buffers (the binary view of the same
    array, ``to_pylist`` making a chunk's values in one C loop), never as Python ``str``: a million
    ids as Python strings is ~100 MB that Python's allocator keeps after they are freed, which made
    plan memory grow with the dataset; at most ``chunk`` of these small ``bytes`` exist at a time.
    (Slicing a memoryview per value, the earlier way, cost three times as much per string.)
    """
    digest = xxhash.xxh3_64_intdigest
    parts = []
    for arr in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        if arr.null_count:
            arr = pc.fill_null(arr, "")
        raw = arr.view(pa.binary())
        for start in range(0, len(raw), chunk):
            strings = raw.slice(start, chunk).to_pylist()
            parts.append(np.fromiter(map(digest, strings), dtype=np.uint64, count=len(strings)))
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
