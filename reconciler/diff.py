"""Record identity: per-record content hashes, a version's id→hash table, and set difference.

Hashes are split in two (vector, metadata) so an update can be reported as a vector change or a
metadata-only change. Hashing is xxh3 over float32 rows, which runs at memory speed here; the
id→hash table of a version is cached on disk by DVC digest, so each version is hashed once per
machine and a plan of versions seen before reads almost nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from reconciler.errors import DatasetError
from reconciler.records import RecordBatch

HASH_VERSION = "1"
INDEX_SCHEMA = pa.schema([("id", pa.string()), ("vh", pa.uint64()), ("mh", pa.uint64())])
SAMPLE_SIZE = 10


# -- canonical JSON and hashing ----------------------------------------------------------------


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN or infinite metadata value")
        # JSON has one number type (as Pinecone does): 3.0 and 3 are the same number (RFC 8785)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def canonical_json(metadata: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8, shortest round-trip floats, NaN/inf rejected."""
    return json.dumps(
        _canonical_value(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


_EMPTY_META_HASH = xxhash.xxh3_64_intdigest(b"{}")


def hash_batch(batch: RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(vector hashes, metadata hashes) as uint64 arrays, one entry per record."""
    n = len(batch)
    vectors = np.ascontiguousarray(batch.vectors, dtype=np.float32)
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


def canonical_metadata_array(batch: RecordBatch) -> pa.StringArray:
    """Each record's metadata as canonical JSON text, built column by column.

    Equal to ``canonical_json(row)`` for every row (tests hold the two together), but strings that
    need no escaping, integers and booleans are encoded by Arrow kernels, so the usual metadata
    (a few short fields) costs no Python work per record. Other columns fall back to ``json``.
    Null cells mean "field absent", as in ``RecordBatch.metadata_rows``.
    """
    table = batch.metadata
    n = len(batch)
    names = sorted(table.column_names)
    if not names:
        return pa.array(["{}"] * n, pa.string())
    # each present field as ",name:value" ("" when absent), concatenated, the first comma dropped.
    # (binary_join_element_wise's null_handling="skip" drops rows whose every field is null:
    # seen in pyarrow 26, so nulls are filled first.)
    parts = [pc.fill_null(pc.binary_join_element_wise(",", _fragments(name, table.column(name), batch), ""), "") for name in names]
    joined = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    return pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 1), "}", "")


def records_table(batch: RecordBatch) -> pa.Table:
    """Records as vectorops keeps them outside a dataset (LanceDB rows, the stash): id, vector as
    FixedSizeList<float32>, metadata as canonical JSON text. ``records_from_table`` reads them back."""
    flat = pa.array(np.ascontiguousarray(batch.vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.table(
        {
            "id": batch.ids.cast(pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, batch.vectors.shape[1]),
            "metadata": canonical_metadata_array(batch),
        }
    )


def records_from_table(table: pa.Table) -> RecordBatch:
    vec = table.column("vector").combine_chunks()
    dim = vec.type.list_size
    vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    rows = [json.loads(m) if m else {} for m in table.column("metadata").to_pylist()]
    return RecordBatch.from_rows(table.column("id").to_pylist(), vectors, rows, dim)


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what json.dumps(ensure_ascii=False) escapes


def _fragments(name: str, column: pa.ChunkedArray, batch: RecordBatch) -> pa.StringArray:
    """``"name":value`` per row (null where the cell is null)."""
    prefix = json.dumps(name, ensure_ascii=False) + ":"
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = values.type
    if pa.types.is_large_string(kind) or getattr(pa.types, "is_string_view", lambda t: False)(kind):
        values, kind = values.cast(pa.string()), pa.string()
    if pa.types.is_string(kind) and not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        return pc.binary_join_element_wise(prefix + '"', values, '"', "")
    if pa.types.is_integer(kind):
        return pc.binary_join_element_wise(prefix, values.cast(pa.string()), "")
    if pa.types.is_boolean(kind):
        return pc.binary_join_element_wise(prefix, pc.if_else(values, "true", "false"), "")
    return pa.array(_python_fragments(prefix, name, values, batch), pa.string())


def _python_fragments(prefix: str, name: str, column: pa.Array, batch: RecordBatch) -> list[str | None]:
    kind = column.type
    values = column.to_pylist()
    if pa.types.is_string(kind):
        encode = _STRING_ENCODER.encode  # one encoder: json.dumps(..., ensure_ascii=False) builds one per call
        return [None if v is None else prefix + encode(v) for v in values]
    if pa.types.is_floating(kind):
        bad = pc.invert(pc.is_finite(column))
        if pc.any(pc.fill_null(bad, False)).as_py():
            first = pc.index(pc.fill_null(bad, False), True).as_py()
            raise DatasetError(f"record '{batch.ids[first].as_py()}': metadata field '{name}' is NaN or infinite")
        return [None if v is None else prefix + _number(v) for v in values]
    out: list[str | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(prefix + canonical_json(v).decode("utf-8"))
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"record '{batch.ids[i].as_py()}': metadata field '{name}' cannot be hashed as JSON ({exc})") from None
    return out


_STRING_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


# -- a version's id→hash table -----------------------------------------------------------------


@dataclass
class VersionIndex:
    """Ids sorted, with their vector and metadata hashes. Small: ~40 bytes a record."""

    table: pa.Table

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def ids(self) -> pa.ChunkedArray:
        return self.table.column("id")

    @staticmethod
    def empty() -> VersionIndex:
        return VersionIndex(INDEX_SCHEMA.empty_table())

    @staticmethod
    def build(
        batches: Iterable[RecordBatch], *, what: str, on_batch: Callable[[RecordBatch, np.ndarray, np.ndarray], None] | None = None
    ) -> VersionIndex:
        parts: list[pa.Table] = []
        for batch in batches:
            vh, mh = hash_batch(batch)
            if on_batch is not None:
                on_batch(batch, vh, mh)
            parts.append(pa.table({"id": batch.ids, "vh": vh, "mh": mh}, schema=INDEX_SCHEMA))
        table = pa.concat_tables(parts) if parts else INDEX_SCHEMA.empty_table()
        return VersionIndex.from_table(table, what=what)

    @staticmethod
    def from_table(table: pa.Table, *, what: str) -> VersionIndex:
        table = table.sort_by("id").combine_chunks()
        ids = table.column("id")
        if len(ids) > 1:
            same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
            if pc.any(same).as_py():
                dup_positions = np.flatnonzero(same.to_numpy(zero_copy_only=False))
                dups = sorted({ids[int(i)].as_py() for i in dup_positions})
                shown = ", ".join(dups[:SAMPLE_SIZE]) + (f" and {len(dups) - SAMPLE_SIZE} more" if len(dups) > SAMPLE_SIZE else "")
                raise DatasetError(
                    f"{what}: duplicate ids: {shown}",
                    hint="Ids must be unique within a dataset version; deduplicate the file and `dvc add` it again.",
                )
        return VersionIndex(table)


def cache_dir() -> Path:
    base = os.environ.get("VECTOROPS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vectorops"
    )
    return Path(base)


def signature_key(signature: str) -> str:
    """Short stable name for how a version is read and hashed (part of every cache file name)."""
    return xxhash.xxh3_64_hexdigest((HASH_VERSION + signature).encode())


def index_cache_key(digest: str, signature: str) -> str:
    return f"{digest.replace('.dir', '-dir')}-{signature_key(signature)}"


def load_cached_index(key: str) -> VersionIndex | None:
    path = cache_dir() / "index" / f"{key}.parquet"
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None  # a torn cache file is rebuilt, never trusted
    return VersionIndex(table) if table.schema.equals(INDEX_SCHEMA) else None


def store_cached_index(key: str, index: VersionIndex) -> None:
    folder = cache_dir() / "index"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    pq.write_table(index.table, tmp)
    os.replace(tmp, folder / f"{key}.parquet")  # atomic: readers never see half a file


# -- set difference ----------------------------------------------------------------------------


@dataclass
class Diff:
    """What apply must do, and what the destination holds that vectorops did not put there."""

    add: pa.Array
    update_vector: pa.Array
    update_metadata: pa.Array
    delete: pa.Array
    kept_unexpected: int  # unexpected ids not deleted because prune is off
    drift_missing: pa.Array | None
    drift_unexpected: pa.Array | None
    drift_modified: pa.Array | None

    @property
    def update(self) -> pa.Array:
        return pa.concat_arrays([self.update_vector, self.update_metadata])

    def counts(self) -> dict[str, int]:
        return {"add": len(self.add), "update": len(self.update_vector) + len(self.update_metadata), "delete": len(self.delete)}


def _u64(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def compute_diff(
    desired: VersionIndex,
    deployed: VersionIndex | None,
    actual_ids: pa.Array | None,
    actual_hashes: VersionIndex | None,
    *,
    prune: bool,
) -> Diff:
    """Desired vs actual. ``actual_ids`` None means "not looked": assume the deployed version is there.

    An id the destination holds but vectorops never wrote has unknown content, so if the desired
    version has it, it is rewritten (an update) rather than trusted.
    """
    base = deployed if deployed is not None else VersionIndex.empty()
    if actual_hashes is not None:
        actual_ids = actual_hashes.ids.combine_chunks()
    looked = actual_ids is not None
    if actual_ids is None:
        actual_ids = base.ids.combine_chunks()
    actual_ids = actual_ids.cast(pa.string())

    d = desired.table
    desired_ids = d.column("id").combine_chunks()
    base_ids = base.ids.combine_chunks()
    n_desired, n_actual = len(desired_ids), len(actual_ids)
    # One hash table of the destination's ids, probed by the desired and the deployed ids at once;
    # everything else is numpy over positions (four is_in calls and a join were most of a warm plan).
    probes = pa.concat_arrays([desired_ids, base_ids]) if looked else desired_ids
    where = pc.index_in(probes, value_set=actual_ids)
    found = pc.is_valid(where).to_numpy(zero_copy_only=False)
    at = pc.fill_null(where, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    desired_at = at[:n_desired]  # each desired id's position among the actual ids, -1 when absent
    present = found[:n_desired]
    add = desired_ids.filter(pa.array(~present))
    # which deployed row each actual id is (-1: not deployed by vectorops)
    base_row = np.full(n_actual, -1, np.int64)
    if looked:
        base_row[at[n_desired:][found[n_desired:]]] = np.flatnonzero(found[n_desired:])
    else:  # the actual ids are the deployed ones, in order
        base_row[:] = np.arange(n_actual)
    deployed_here = base_row >= 0
    # -1 picks the appended 0, which ``deployed_here`` says not to trust
    base_vh = np.append(_u64(base.table, "vh"), np.uint64(0))[base_row]
    base_mh = np.append(_u64(base.table, "mh"), np.uint64(0))[base_row]

    # the content each actual id is believed to hold: what we saw (full), else what we deployed
    if actual_hashes is not None:
        known = np.ones(n_actual, bool)
        seen_vh, seen_mh = _u64(actual_hashes.table, "vh"), _u64(actual_hashes.table, "mh")
    else:
        known, seen_vh, seen_mh = deployed_here, base_vh, base_mh
    rows = np.flatnonzero(present)
    spot = desired_at[rows]
    # an id the destination holds but vectorops never wrote has unknown content: rewrite it
    vec_changed = ~known[spot] | (seen_vh[spot] != _u64(d, "vh")[rows])
    meta_changed = ~vec_changed & (seen_mh[spot] != _u64(d, "mh")[rows])
    update_vector = desired_ids.take(pa.array(rows[vec_changed]))
    update_metadata = desired_ids.take(pa.array(rows[meta_changed]))

    wanted = np.zeros(n_actual, bool)
    wanted[spot] = True
    extra = actual_ids.filter(pa.array(~wanted))
    delete = extra if prune else pa.array([], pa.string())

    drift_missing = drift_unexpected = drift_modified = None
    if looked:
        drift_missing = base_ids.filter(pa.array(~found[n_desired:]))
        drift_unexpected = actual_ids.filter(pa.array(~deployed_here))
        if actual_hashes is not None:
            differs = deployed_here & ((seen_vh != base_vh) | (seen_mh != base_mh))
            drift_modified = actual_ids.filter(pa.array(differs))
    return Diff(
        add=add,
        update_vector=update_vector,
        update_metadata=update_metadata,
        delete=delete,
        kept_unexpected=0 if prune else len(extra),
        drift_missing=drift_missing,
        drift_unexpected=drift_unexpected,
        drift_modified=drift_modified,
    )


def sample(ids: pa.Array | None, n: int = SAMPLE_SIZE) -> list[str]:
    """Up to ``n`` ids to show a reviewer; ids only, never values."""
    if ids is None:
        return []
    return sorted(ids.slice(0, 10 * n).to_pylist())[:n]


def batched(ids: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
