"""The version index cache: a version's id→hash table on disk, keyed by its DVC digest.

Each version is hashed once per machine, so a plan of versions seen before reads almost nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import xxhash

from reconciler.caches import cache_dir
from reconciler.engine.diff import INDEX_SCHEMA, VersionIndex
from reconciler.engine.hashing import HASH_VERSION


def signature_key(signature: str) -> str:
    """Short stable name for how a version is read and hashed (part of every cache file name)."""
    return xxhash.xxh3_64_hexdigest((HASH_VERSION + signature).encode())


def index_cache_key(digest: str, signature: str) -> str:
    return version_cache_key(digest, signature_key(signature))


def version_cache_key(digest: str, sig_key: str) -> str:
    """The cache name of the version whose DVC digest is ``digest`` (a file's md5, or a directory's
    ``.dir`` md5: the md5 of its listing, so every shard is in it) read as ``sig_key`` says."""
    return f"{digest.replace('.dir', '-dir')}-{sig_key}"


def cached_index_path(key: str) -> Path:
    """Where the version cached as ``key`` keeps its id→hash table."""
    return cache_dir() / "index" / f"{key}.arrow"


def load_cached_index(key: str) -> VersionIndex | None:
    table = read_table_file(cached_index_path(key))
    return VersionIndex(table) if table is not None else None


def store_cached_index(key: str, index: VersionIndex) -> None:
    write_table_file(cached_index_path(key), index.table.select(INDEX_SCHEMA.names))


def read_table_file(path: Path) -> pa.Table | None:
    """A cached id→hash table (a version's or a shard's), memory-mapped; None when it is missing,
    torn or of another shape (it is then rebuilt, never trusted).

    Uncompressed Arrow IPC is read in place, so a plan pays for the pages it touches, not for
    decoding: the 100 Parquet shard tables of a 1M-record version took ~0.4 CPU-s to read."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    return table if table.schema.equals(INDEX_SCHEMA) else None


def write_table_file(path: Path, table: pa.Table) -> None:
    """Write ``table`` where ``read_table_file`` reads it, atomically: a reader never sees half a file.

    The same table as vectorops 0.1 cached it (Parquet, same name) is removed: it is never read
    again, and a cache of 100M records should not keep two copies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    path.with_suffix(".parquet").unlink(missing_ok=True)
