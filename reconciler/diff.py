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
    docs = canonical_metadata(batch)
    digest = xxhash.xxh3_64_intdigest
    return vh, np.fromiter((digest(doc.encode("utf-8")) for doc in docs), dtype=np.uint64, count=n)


def _rows_with_negative_zero(vectors: np.ndarray, chunk: int = 2048) -> list[int]:
    """Rows holding a -0.0, found in cache-sized chunks without copying the batch."""
    bits = vectors.view(np.uint32)
    rows: list[int] = []
    for start in range(0, len(bits), chunk):
        hit = (bits[start : start + chunk] == 0x80000000).any(axis=1)
        if hit.any():
            rows.extend((np.flatnonzero(hit) + start).tolist())
    return rows


def canonical_metadata(batch: RecordBatch) -> list[str]:
    """Each record's metadata as canonical JSON text, built column by column.

    Equal to ``canonical_json(row)`` for every row (a test holds the two together), but a column's
    values are encoded in one pass, several times faster than a dict per record on hot paths.
    Null cells mean "field absent", as in ``RecordBatch.metadata_rows``.
    """
    table = batch.metadata
    names = sorted(table.column_names)
    columns = [_fragments(name, table.column(name), batch) for name in names]
    if not columns:
        return ["{}"] * len(batch)
    return ["{" + ",".join([f for f in row if f is not None]) + "}" for row in zip(*columns)]


def _fragments(name: str, column: pa.ChunkedArray, batch: RecordBatch) -> list[str | None]:
    prefix = json.dumps(name, ensure_ascii=False) + ":"
    kind = column.type
    values = column.to_pylist()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encode = _STRING_ENCODER.encode  # one encoder: json.dumps(..., ensure_ascii=False) builds one per call
        return [None if v is None else prefix + encode(v) for v in values]
    if pa.types.is_integer(kind):
        return [None if v is None else prefix + str(v) for v in values]
    if pa.types.is_boolean(kind):
        return [None if v is None else prefix + ("true" if v else "false") for v in values]
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


def _select(table: pa.Table, mask: Any) -> pa.Array:
    col = table.filter(mask).column("id")
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


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
    present = pc.is_in(d.column("id"), value_set=actual_ids)
    add = _select(d, pc.invert(present))

    # content baseline for ids present on both sides: what we saw (full) or what we deployed (else)
    baseline = actual_hashes.table if actual_hashes is not None else base.table
    joined = d.filter(present).join(baseline, keys="id", join_type="left outer", right_suffix="_b")
    vh_b, mh_b = joined.column("vh_b"), joined.column("mh_b")
    unknown = pc.is_null(vh_b)
    vec_changed = pc.or_(unknown, pc.not_equal(pc.fill_null(vh_b, 0), joined.column("vh")))
    meta_changed = pc.and_(pc.invert(vec_changed), pc.not_equal(pc.fill_null(mh_b, 0), joined.column("mh")))
    update_vector = _select(joined, vec_changed)
    update_metadata = _select(joined, meta_changed)

    extra_mask = pc.invert(pc.is_in(actual_ids, value_set=d.column("id")))
    extra = actual_ids.filter(extra_mask)
    delete = extra if prune else pa.array([], pa.string())

    drift_missing = drift_unexpected = drift_modified = None
    if looked:
        base_ids = base.ids.combine_chunks()
        drift_missing = base_ids.filter(pc.invert(pc.is_in(base_ids, value_set=actual_ids)))
        drift_unexpected = actual_ids.filter(pc.invert(pc.is_in(actual_ids, value_set=base_ids)))
        if actual_hashes is not None:
            both = base.table.join(actual_hashes.table, keys="id", join_type="inner", right_suffix="_a")
            differs = pc.or_(
                pc.not_equal(both.column("vh"), both.column("vh_a")), pc.not_equal(both.column("mh"), both.column("mh_a"))
            )
            drift_modified = _select(both, differs)
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
