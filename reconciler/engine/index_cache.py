"""The version index cache: a version's id→hash table on disk, keyed by its DVC digest.

Each version is hashed once per machine, so a plan of versions seen before reads almost nothing.
"""

from __future__ import annotations

import os

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


def load_cached_index(key: str) -> VersionIndex | None:
    """The cached table, memory-mapped: an uncompressed Arrow IPC file is read in place, so a plan
    of versions seen before pays for the pages it touches, not for decoding (a 1M-record table
    took ~0.25 s to read back as Parquet)."""
    path = cache_dir() / "index" / f"{key}.arrow"
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowInvalid):
        return None  # a torn cache file is rebuilt, never trusted
    return VersionIndex(table) if table.schema.equals(INDEX_SCHEMA) else None


def store_cached_index(key: str, index: VersionIndex) -> None:
    folder = cache_dir() / "index"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    table = index.table.select(INDEX_SCHEMA.names)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, folder / f"{key}.arrow")  # atomic: readers never see half a file
