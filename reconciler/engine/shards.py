"""Sharded dataset versions: per-shard hash tables, cached by the shard's md5, hashed in parallel.

A version stored as a DVC-tracked directory of Parquet (or JSONL) files is read shard by shard.
Each shard's id→hash table is cached under the shard's md5 (plus the fields of the Hive-style
folders above it, ``DatasetShard.content_key``, and how it is read), so a shard is
decoded once per machine whatever version or dataset it appears in: a new version that changes
one shard of a hundred costs one shard. Shards never seen are hashed by ``--jobs`` worker
processes, each decoding one row group at a time, so memory is about jobs × one row group.

The records of a decoded shard that differ from the deployed version are stashed per shard, so
the apply that follows reads those from a small file, and everything else it needs from only the
shards that hold it.

A version of ``ON_DISK_MIN_RECORDS`` records or more is not assembled into one in-memory table:
it stays on disk as its shards' cached tables (``ShardedIndex``), and the plan diffs it partition
by partition (``partitioned.diff_indexes``), so two 100M-record versions never sit in memory.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler import caches
from reconciler.dataset import DatasetShard, DatasetSource, DatasetVersion
from reconciler.engine import index_cache
from reconciler.engine.cache_pruning import entry_of, partitions_entry, record_version_use, version_label
from reconciler.engine.diff import INDEX_SCHEMA, SAMPLE_SIZE, VersionIndex
from reconciler.engine.hashing import hash_strings
from reconciler.engine.partitioned import ROW, KeyIndex
from reconciler.errors import DatasetError, UsageError
from reconciler.records import RecordBatch

if TYPE_CHECKING:
    from reconciler.engine.executors import Executor

Progress = Callable[[str, int, int | None], None]

#: a sharded version with at least this many records stays on disk (``ShardedIndex``) and is
#: diffed by partitions (``partitioned.diff_indexes``): once a version's partitions are cached
#: (or merged from its shards' sorted runs) that is faster than the in-memory diff's string
#: joins from well below a million records (1M: ~0.22 s against ~0.5 s); below it the in-memory
#: table (~40 bytes a record, ~20 MB here) is as fast and writes nothing
ON_DISK_MIN_RECORDS = 500_000
#: ids a large version offers a listing as its hint (``VersionIndex.listing_hint``)
LISTING_HINT_SIZE = 100_000

_jobs: int | None = None  # None: one per core


def configure(jobs: int | None) -> None:
    """How many processes hash shards (``--jobs``); None means the number of cores."""
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: needs at least 1", hint="Pass --jobs 1 to hash in this process, or leave it out for one per core.")
    global _jobs
    _jobs = jobs


def jobs() -> int:
    return _jobs if _jobs is not None else (os.cpu_count() or 1)


def parallel_min_bytes() -> int:
    """Below this many bytes of shards to decode, hashing stays in this process."""
    return int(os.environ.get("VECTOROPS_PARALLEL_MIN_BYTES", str(64 * 1024 * 1024)))


@dataclass
class ShardLog:
    """Which shards a plan had to decode (the rest came from the cache): what `plan --json` shows.

    Shards are counted by content (md5) across every version the plan read: the deployed and the
    desired version share most of theirs.
    """

    seen: set[str] = field(default_factory=set)
    decoded: dict[str, str] = field(default_factory=dict)  # content key (``DatasetShard.content_key``) -> path
    workers: int = 0  # processes that hashed them (1: this one)

    @property
    def total(self) -> int:
        return len(self.seen)

    def public(self) -> dict[str, Any]:
        return {"total": self.total, "decoded": len(self.decoded), "from_cache": self.total - len(self.decoded),
                "decoded_files": sorted(self.decoded.values())[:100], "workers": self.workers}


# -- the per-shard cache ----------------------------------------------------------------------------


def shard_cache_path(shard: DatasetShard, signature_key: str) -> Path:
    return caches.cache_dir() / "shards" / f"{shard.content_key}-{signature_key}.arrow"


def shard_keys_path(table_path: Path) -> Path:
    """Beside a shard's cached table: its ids' 64-bit keys, in the table's order (``partitioned.py``)."""
    return table_path.with_name(table_path.name.replace(".arrow", ".keys.npy"))


def shard_run_path(table_path: Path) -> Path:
    """Beside a shard's cached table: its (key, vh, mh) rows sorted by key (``partitioned.ROW``), the
    shard's run in a version's partitions (``partitioned.partitions_from_runs``)."""
    return table_path.with_name(table_path.name.replace(".arrow", ".run"))


def _store_run(path: Path, keys: np.ndarray, vh: np.ndarray, mh: np.ndarray) -> None:
    from reconciler.engine.partitioned import sorted_rows

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sorted_rows(keys, vh, mh).tofile(tmp)
    os.replace(tmp, path)


def _store_keys(path: Path, keys: np.ndarray) -> None:
    # by process and thread: two identical shards (one cache path) may be keyed by two threads at once
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, keys)
    os.replace(tmp, path)


#: in a shard's cached table's schema metadata: the shard's metadata fields and their types, as an
#: Arrow schema; shards that disagree are refused at plan time (``check_metadata_types``)
_METADATA_TYPES = b"vectorops.metadata_types"


@dataclass(frozen=True)
class CachedShard:
    """What a plan reads of a shard's cached table before deciding anything: its size and the types
    of its records' metadata fields."""

    rows: int
    metadata: pa.Schema


def _cached_shard(path: Path) -> CachedShard | None:
    """A cached shard table's record count and metadata types (a memory-mapped read); None if it is
    unusable, or was written before vectorops kept the types (the shard is then hashed again)."""
    table = index_cache.read_table_file(path)
    types = None if table is None else metadata_types(table)
    return None if table is None or types is None else CachedShard(table.num_rows, types)


def metadata_types(table: pa.Table) -> pa.Schema | None:
    """The metadata types ``hash_shard`` kept with a shard's table; None if it kept none."""
    raw = (table.schema.metadata or {}).get(_METADATA_TYPES)
    try:
        return None if raw is None else pa.ipc.read_schema(pa.py_buffer(raw))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def check_metadata_types(src: DatasetSource, version: DatasetVersion, shards: list[DatasetShard], types: list[pa.Schema]) -> None:
    """Refuse a version whose shards give one metadata field two types no destination write can merge
    (a string in one shard, a number in another): one message naming the field, both shards and both
    types, at plan time, before anything is written. Types Arrow widens (int32 and int64, a field
    absent from some shards or null in all of one) are fine."""
    try:
        pa.unify_schemas(types, promote_options="permissive")
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    first: dict[str, tuple[pa.DataType, str]] = {}
    for shard, schema in zip(shards, types, strict=True):
        for f in schema:
            if f.name not in first:
                first[f.name] = (f.type, shard.path)
                continue
            seen, where = first[f.name]
            try:
                pa.unify_schemas([pa.schema([pa.field(f.name, seen)]), pa.schema([f])], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                raise DatasetError(
                    f"dataset '{src.name}' ({src.origin}) at {version.rev}, directory {src.path}: metadata field "
                    f"'{f.name}' is {seen} in {where} but {f.type} in {shard.path}",
                    hint="Give each metadata field one type in every shard (cast it where the shards are written), "
                    "then `dvc add` the directory and commit again.",
                ) from None
    raise DatasetError(  # pragma: no cover - unify_schemas refused, yet no pair of fields conflicts
        f"dataset '{src.name}' ({src.origin}) at {version.rev}, directory {src.path}: its shards' metadata fields cannot be merged",
        hint="Give each metadata field one type in every shard, then `dvc add` the directory and commit again.",
    )


#: shard tables read in this process, most recent last, up to ``_RECENT_ROWS`` records in all: a
#: plan reads each shard of the deployed and the desired version (which share most shards), then
#: again to place the records apply needs; reading each once saved ~0.8 s of a 1M-record plan
_recent: OrderedDict[tuple[str, int, int], pa.Table] = OrderedDict()
_RECENT_ROWS = 2 * ON_DISK_MIN_RECORDS


def load_shard_index(path: Path) -> pa.Table | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)  # a cache file is only ever replaced whole
    if key in _recent:
        _recent.move_to_end(key)
        return _recent[key]
    table = index_cache.read_table_file(path)
    if table is None:
        return None  # a torn cache file is rebuilt, never trusted
    _recent[key] = table
    while sum(t.num_rows for t in _recent.values()) > _RECENT_ROWS and len(_recent) > 1:
        _recent.popitem(last=False)
    return table


def list_shards(src: DatasetSource, version: DatasetVersion) -> list[DatasetShard]:
    """The version's shards (``dataset.list_shards``), remembered by the directory's ``.dir`` digest.

    The digest is the md5 of the listing itself (relative paths and each file's md5), so what it
    lists never changes; asking DVC again cost ~0.6 s a version, most of a warm plan's own time.
    """
    import json

    from reconciler import dataset as ds

    path = _listing_path(src, version)
    try:
        listed = [DatasetShard(e["path"], e["md5"], e["size"]) for e in json.loads(path.read_text())]
        return ds.with_folder_fields(src, version, listed)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not listed on this machine yet (or a torn file): ask DVC
    shards = ds.list_shards(src, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([{"path": s.path, "md5": s.md5, "size": s.size} for s in shards]))
    os.replace(tmp, path)
    return shards


def _listing_path(src: DatasetSource, version: DatasetVersion) -> Path:
    import json

    key = index_cache.signature_key(json.dumps([version.digest, src.path, src.format]))
    return caches.cache_dir() / "shards" / f"listing-{key}.json"


def shard_stash_path(shard: DatasetShard, baseline_digest: str, signature_key: str) -> Path:
    name = f"shard-{shard.content_key}-from-{baseline_digest}-{signature_key}".replace(".dir", "-dir")
    return caches.cache_dir() / "stash" / f"{name}.arrow"


@dataclass(frozen=True)
class StashSpec:
    """Where a worker stashes the decoded records that differ from the deployed version."""

    keys_file: str  # sorted content keys of the deployed version (``stash.baseline_keys``), .npy
    baseline_digest: str
    dimension: int
    starts_file: str  # where each key prefix starts among them (``partitioned.KeyIndex``), .npy
    steps: int  # ``KeyIndex.steps``

    def key_index(self) -> KeyIndex:
        """The deployed version's ``partitioned.KeyIndex``, memory-mapped (one copy for every worker)."""
        def mapped(path: str) -> np.ndarray:  # a plain ndarray over the mapping: np.memmap's own indexing costs more
            return np.load(path, mmap_mode="r").view(np.ndarray)

        return KeyIndex(mapped(self.keys_file), mapped(self.starts_file), self.steps)


# -- hashing one shard (in this process or a worker) ------------------------------------------------


def hash_shard(
    src: DatasetSource, version: DatasetVersion, shard: DatasetShard, signature_key: str, stash: StashSpec | None,
    precision: str = "float32",
) -> int:
    """Decode and hash one shard, write its cached table (and its stash); the number of records.
    ``precision``: the destination's (``VersionIndex.build``), part of ``signature_key``."""
    from reconciler import dataset as ds
    from reconciler.engine.stash import StashWriter

    writer = None
    if stash is not None:
        writer = StashWriter(shard_stash_path(shard, stash.baseline_digest, signature_key), stash.key_index(), stash.dimension)
    metadata: list[pa.Schema] = []

    def noted(batches: Iterator[RecordBatch]) -> Iterator[RecordBatch]:
        for batch in batches:
            if len(batch):  # an empty shard's column types say nothing about records
                metadata.append(batch.metadata.schema)
            yield batch

    try:
        index = VersionIndex.build(
            noted(ds.read_shard(src, version, shard)), what=f"dataset '{src.name}' ({src.origin}) at {version.rev}, file {shard.path}",
            on_batch=writer.offer if writer else None, precision=precision, with_keys=True,
        )
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    if writer is not None:
        writer.close()
    path = shard_cache_path(shard, signature_key)
    keyed = index.table  # each id hashed once: for the stash and for the keys file
    keys = keyed.column("key").to_numpy()
    _store_keys(shard_keys_path(path), keys)
    _store_run(shard_run_path(path), keys, keyed.column("vh").to_numpy(), keyed.column("mh").to_numpy())
    table = keyed.drop_columns(["key"])
    fields = pa.unify_schemas(metadata, promote_options="permissive") if metadata else pa.schema([])
    table = table.replace_schema_metadata({_METADATA_TYPES: fields.serialize().to_pybytes()})
    index_cache.write_table_file(path, table)  # last: a table in the cache means the shard is done
    return len(index)


def one_row_group_at_a_time() -> None:
    """In a hashing worker: one row group at a time, so memory is workers × a row group, not × read-ahead."""
    from reconciler.dataset import readers

    readers.READ_THREADS = 0
    readers.RELEASE_EACH_GROUP = False  # one Arrow thread reuses what the last group freed
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


# -- a version's index from its shards --------------------------------------------------------------


def sharded_index(
    src: DatasetSource,
    version: DatasetVersion,
    signature_key: str,
    *,
    progress: Progress | None = None,
    stash_against: tuple[VersionIndex, str] | None = None,
    log: ShardLog | None = None,
    executor: Executor | None = None,
    precision: str = "float32",
) -> VersionIndex:
    """The version's id→hash table, assembled from per-shard tables; only unseen shards are decoded
    (by ``executor``: this machine's processes by default). ``precision``: the destination's
    (``VersionIndex.build``), part of ``signature_key``."""
    from reconciler.engine.executors.local import LocalExecutor

    shards = list_shards(src, version)
    paths = [shard_cache_path(shard, signature_key) for shard in shards]
    whole_key = index_cache.version_cache_key(version.digest, signature_key)
    # before reading any of it, so a prune running meanwhile sees it in use (``cache_pruning``)
    held_in = [*paths, _listing_path(src, version), index_cache.cached_index_path(whole_key)]
    record_version_use(whole_key, version_label(src.name, version.rev), [*map(entry_of, held_in), partitions_entry(whole_key)])
    cached_shards = [_cached_shard(path) for path in paths]
    todo: dict[str, DatasetShard] = {}
    for shard, cached_shard in zip(shards, cached_shards, strict=True):
        if cached_shard is None and shard.content_key not in todo:
            todo[shard.content_key] = shard
    if log is not None:
        log.seen.update(s.content_key for s in shards)
        log.decoded.update((s.content_key, s.path) for s in todo.values())
    if todo:
        label = f"hashing {src.name}@{version.rev} ({len(todo)} of {len(shards)} shards)"
        report = (lambda n: progress(label, n, len(todo))) if progress is not None else (lambda n: None)
        with _stash_spec(src, stash_against) as stash:
            workers = (executor or LocalExecutor()).hash_shards(src, version, list(todo.values()), signature_key, stash, report, precision)
        if log is not None:
            log.workers = max(log.workers, workers)
    if todo:  # read again: a table may have gone while the others were hashed
        cached_shards = [_cached_shard(path) for path in paths]
    counts = [c.rows if c is not None else None for c in cached_shards]
    if all(c is not None for c in cached_shards):
        check_metadata_types(src, version, shards, [c.metadata for c in cached_shards if c is not None])
    if all(c is not None for c in counts) and sum(c or 0 for c in counts) >= ON_DISK_MIN_RECORDS:
        return ShardedIndex(src, version, shards, paths, [c or 0 for c in counts], whole_key)
    # a version seen whole before: its combined table, one file (reading and sorting 100 shard
    # tables was most of a warm 1M-record plan); written only once the duplicate check passed
    cached = index_cache.load_cached_index(whole_key) if not todo else None
    if cached is not None and len(cached) == sum(c or 0 for c in counts):
        cached.shard_files = tuple(str(path) for path in paths)
        return cached
    tables = []
    for shard, path in zip(shards, paths, strict=True):
        table = load_shard_index(path)
        if table is None:  # removed while we ran (another process pruning the cache): hash it here
            hash_shard(src, version, shard, signature_key, None, precision)
            table = load_shard_index(path)
            assert table is not None
        tables.append(table)
    if not all(c is not None for c in cached_shards):  # checked above unless a table had to be hashed again here
        check_metadata_types(src, version, shards, [metadata_types(t) or pa.schema([]) for t in tables])
    index = _combine(src, version, shards, tables)
    index_cache.store_cached_index(whole_key, index)
    index.shard_files = tuple(str(path) for path in paths)
    return index


class _stash_spec:
    """The deployed version's content keys and their prefix table (``partitioned.KeyIndex``) in temporary
    .npy files the workers memory-map (one copy for all of them)."""

    def __init__(self, src: DatasetSource, stash_against: tuple[VersionIndex, str] | None) -> None:
        self._against = stash_against if stash_against is not None and len(stash_against[0]) else None
        self._dimension = src.dimension
        self._files: list[str] = []

    def _save(self, folder: Path, prefix: str, array: np.ndarray) -> str:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".npy", dir=folder)
        self._files.append(name)
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        return name

    def __enter__(self) -> StashSpec | None:
        if self._against is None:
            return None
        from reconciler.engine.stash import baseline_keys

        folder = caches.cache_dir() / "stash"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            known = KeyIndex.of(baseline_keys(self._against[0]))
            keys_file, starts_file = self._save(folder, ".keys-", known.keys), self._save(folder, ".starts-", known.starts)
        except BaseException:  # (a full disk, Ctrl-C) __exit__ will not run: the files written so far go now
            self.__exit__()
            raise
        return StashSpec(keys_file, self._against[1], self._dimension, starts_file, known.steps)

    def __exit__(self, *exc: object) -> None:
        for name in self._files:
            Path(name).unlink(missing_ok=True)


class ShardedIndex(VersionIndex):
    """A large sharded version's id→hash table, left on disk as its shards' cached tables.

    Read a shard at a time (``chunk``); the plan's diff partitions it on disk. ``table`` (the one
    sorted in-memory table, with the cross-shard duplicate check) is built only if something asks
    for it: a full refresh, a rebuild, finishing an interrupted apply, or the exact diff after a
    key collision.
    """

    on_disk = True

    def __init__(
        self, src: DatasetSource, version: DatasetVersion, shards: list[DatasetShard], paths: list[Path], counts: list[int],
        cache_key: str | None = None,
    ) -> None:
        self._src, self._version, self._shards, self._paths, self._counts = src, version, shards, paths, counts
        self._table: pa.Table | None = None
        self.cache_key = cache_key  # its ``.dir`` digest and how it was hashed (``VersionIndex.cache_key``)

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            tables = []
            for path in self._paths:
                table = load_shard_index(path)
                if table is None:
                    raise DatasetError(f"the cached hash table {path} can no longer be read", hint="Plan again: it is rebuilt.")
                tables.append(table)
            self._table = _combine(self._src, self._version, self._shards, tables).table
        return self._table

    def __len__(self) -> int:
        return sum(self._counts)

    @property
    def ids(self) -> pa.ChunkedArray:
        """Every id, shard after shard (NOT sorted: the sorted table is what this class avoids)."""
        return pa.chunked_array([self.chunk(i, ["id"]).column("id").combine_chunks() for i in range(len(self._paths))], pa.string())

    @property
    def shard_files(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(str(p) for p in self._paths)

    def chunk_count(self) -> int:
        return len(self._paths)

    def chunk(self, i: int, columns: list[str] | None = None) -> pa.Table:
        table = index_cache.read_table_file(self._paths[i])
        if table is None:
            raise DatasetError(f"the cached hash table {self._paths[i]} can no longer be read", hint="Plan again: it is rebuilt.")
        return table.select(columns) if columns is not None else table

    def chunk_keys(self, i: int) -> np.ndarray:
        path = shard_keys_path(self._paths[i])
        try:
            keys = np.load(path)
            if len(keys) == self._counts[i]:
                return keys
        except (OSError, ValueError):
            pass  # an older cache, or a torn file: computed again
        keys = super().chunk_keys(i)
        _store_keys(path, keys)
        return keys

    def chunk_run(self, i: int) -> Path | None:
        """Shard ``i``'s rows sorted by key (``shard_run_path``); None when the shard was hashed by a
        vectorops that kept none, or the file does not match the table."""
        path = shard_run_path(self._paths[i])
        try:
            return path if path.stat().st_size == self._counts[i] * ROW.itemsize else None
        except OSError:
            return None

    def take(self, rows: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        starts = np.cumsum([0, *self._counts])
        parts = []
        for i in range(len(self._paths)):
            lo, hi = np.searchsorted(rows, [starts[i], starts[i + 1]])
            if hi > lo:
                parts.append(self.chunk(i, columns).take(pa.array(rows[lo:hi] - starts[i], pa.int64())))
        schema = INDEX_SCHEMA if columns is None else pa.schema([INDEX_SCHEMA.field(c) for c in columns])
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def listing_hint(self) -> pa.Array:
        """A sorted uniform sample of the ids: enough to split a listing evenly, never all of them."""
        n = len(self)
        k = min(n, LISTING_HINT_SIZE)
        rows = np.sort(np.random.default_rng(0).choice(n, size=k, replace=False)) if k else np.empty(0, np.int64)
        ids = self.take(rows, ["id"]).column("id").combine_chunks()
        return ids.take(pc.sort_indices(ids))

    def in_memory(self) -> VersionIndex:
        return VersionIndex(self.table)


def _combine(src: DatasetSource, version: DatasetVersion, shards: list[DatasetShard], tables: list[pa.Table]) -> VersionIndex:
    """One sorted table; an id in two shards is an error naming both shards."""
    if not tables:
        return VersionIndex.empty()
    table = pa.concat_tables(tables)
    shard_no = np.repeat(np.arange(len(tables), dtype=np.int32), [t.num_rows for t in tables])
    order = pc.sort_indices(table.column("id"))
    table = table.take(order).combine_chunks()
    ids = table.column("id")
    if len(ids) > 1:
        same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
        if pc.any(same).as_py():
            shard_no = shard_no[order.to_numpy()]
            at = np.flatnonzero(same.to_numpy(zero_copy_only=False))
            first = int(at[0])
            dup = ids[first].as_py()
            a, b = sorted({shards[int(shard_no[first])].path, shards[int(shard_no[first + 1])].path})
            dups = sorted({ids[int(i)].as_py() for i in at})
            shown = ", ".join(dups[:SAMPLE_SIZE]) + (f" and {len(dups) - SAMPLE_SIZE} more" if len(dups) > SAMPLE_SIZE else "")
            raise DatasetError(
                f"dataset '{src.name}' ({src.origin}) at {version.rev}, directory {src.path}: duplicate ids: {shown}; "
                f"'{dup}' is in both {a} and {b}",
                hint="Ids must be unique across all shards of a version: deduplicate (keep each record in one shard), "
                "then `dvc add` the directory and commit again.",
            )
    return VersionIndex(table)


# -- what apply reads -------------------------------------------------------------------------------


def shards_holding(src: DatasetSource, version: DatasetVersion, signature_key: str, ids: pa.Array) -> list[tuple[DatasetShard, pa.Array]]:
    """For each shard that holds some of ``ids``, those ids (from the cached shard tables).

    A shard whose keys file (its ids' 64-bit keys) has none of the ids' keys holds none of them and
    its table is not read: a plan of 300 changes in 1 of 100 shards read all 100 tables (~0.3 s at
    1M records). The tables of the others decide exactly. Ids no cached table places (the cache was
    cleared) are given to every uncached shard.
    """

    ids = ids.cast(pa.string())
    wanted_keys = np.sort(hash_strings(ids))
    out: list[tuple[DatasetShard, pa.Array]] = []
    placed = np.zeros(len(ids), bool)
    unknown: list[DatasetShard] = []
    skipped: list[DatasetShard] = []

    def look_in(shard: DatasetShard) -> None:
        nonlocal placed
        table = load_shard_index(shard_cache_path(shard, signature_key))
        if table is None:
            unknown.append(shard)
            return
        hit = pc.is_in(ids, value_set=table.column("id")).to_numpy(zero_copy_only=False)
        if hit.any():
            out.append((shard, ids.filter(pa.array(hit))))
            placed |= hit

    for shard in list_shards(src, version):
        keys = _stored_keys(shard_cache_path(shard, signature_key))
        if keys is not None and not _any_member(wanted_keys, keys):
            skipped.append(shard)
        else:
            look_in(shard)
    if not placed.all():  # a keys file that does not match its table: never trusted to leave ids out
        for shard in skipped:
            look_in(shard)
    rest = ids.filter(pa.array(~placed))
    if len(rest):
        out.extend((shard, rest) for shard in unknown)
    return out


def _stored_keys(table_path: Path) -> np.ndarray | None:
    """A cached shard's keys file, memory-mapped; None when it is missing or unreadable."""
    try:
        return np.load(shard_keys_path(table_path), mmap_mode="r")
    except (OSError, ValueError):
        return None


def _any_member(sorted_wanted: np.ndarray, keys: np.ndarray, step: int = 4_096) -> bool:
    """Whether any of ``keys`` is in ``sorted_wanted``, looked up a slice at a time: a shard that holds
    wanted ids usually shows one in its first slice (a 1% change spread over 10M records made the
    whole lookup 1.4 s of a plan), one that holds none is read to the end."""
    from reconciler.engine.partitioned import _member

    return any(_member(sorted_wanted, np.asarray(keys[start : start + step])).any() for start in range(0, len(keys), step))


def unstashed_ids(src: DatasetSource, version: DatasetVersion, signature_key: str, baseline_digest: str, ids: pa.Array) -> pa.Array:
    """The ids among ``ids`` no shard stash holds (what apply would have to read from the data).

    A shard's stash holds only records decoded from that shard, so which shard holds which id does
    not matter here: the ids no stash of the version's shards holds, in one lookup (placing 200,000
    ids shard by shard first was 2.7 s of a warm 10M-record plan)."""
    from reconciler.engine.stash import unstashed_in

    paths = [shard_stash_path(shard, baseline_digest, signature_key) for shard in list_shards(src, version)]
    return unstashed_in([path for path in paths if path.exists()], ids.cast(pa.string()))


def changed_records(
    src: DatasetSource, version: DatasetVersion, signature_key: str, baseline_digest: str | None, ids: pa.Array, batch_size: int,
    executor: Executor | None = None,
) -> Iterator[RecordBatch]:
    """The records with ``ids``: from each shard's stash first, the rest from only the shards holding them.

    Every shard that has to be read is verified against its md5 before the stream is handed to a
    destination (which may consume it from native code that would wrap a refusal).
    """
    from reconciler.engine.executors.local import LocalExecutor

    work = shards_holding(src, version, signature_key, ids)
    return (executor or LocalExecutor()).shard_records(src, version, work, signature_key, baseline_digest, batch_size)


def read_by_id(manifest: Any, dataset: str, version: DatasetVersion, ids: Any, precision: str = "float32") -> Iterator[RecordBatch]:
    """The records with these ids from any version: a sharded one reads only the shards that hold
    them (and their stashes' records never), a single file is streamed until every id is found."""
    from reconciler import dataset as ds
    from reconciler.engine.index_cache import signature_key
    from reconciler.engine.plan import dataset_signature

    src = manifest.dataset_source(dataset)
    if not ds.is_sharded(version):
        return ds.read_records(src, version, ids)
    wanted = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
    sig = signature_key(dataset_signature(manifest, dataset, precision))
    return changed_records(src, version, sig, None, wanted.cast(pa.string()), 65_536)
