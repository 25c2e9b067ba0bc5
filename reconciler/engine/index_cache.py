"""The version index cache: a version's id→hash table on disk, keyed by its DVC digest.

Each version is hashed once per machine, so a plan of versions seen before reads almost nothing.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from reconciler.caches import cache_dir
from reconciler.engine.diff import INDEX_SCHEMA, VersionIndex
from reconciler.engine.hashing import HASH_VERSION


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
