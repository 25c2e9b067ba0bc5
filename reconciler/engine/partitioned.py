"""Diffing id→hash tables larger than memory: partitioned by id hash on disk, merged a partition at a time.

A version's table is kept as ``P`` files, partition ``p`` holding the records whose 64-bit id key
(xxh3 of the id) starts with the bits of ``p``, each file sorted by key: fixed-width rows of
(key, vector hash, metadata hash), 24 bytes a record. Two versions partitioned alike are diffed
partition by partition (memory-mapped, a sorted merge with numpy, a few partitions at once on
threads), so memory is a few partitions and the changed keys, never the versions: at 100M records
and 256 partitions a partition is ~9 MB. The changed keys are turned back into ids by one pass over
the version's ids, a chunk a thread. A sharded version's partitions are merged from its shards'
sorted runs (``partitions_from_runs``) when it has them, else spilled chunk by chunk and sorted.

Two ids with the same 64-bit key (about one pair in 10^4 among 100M ids) would be one record
here, so ``write_partitions`` refuses a version whose keys collide, and the caller falls back to
the exact in-memory diff (``diff.compute_diff``) for it. Across versions a shared key can only
mislead between ids that are in one table and not the other (an id in both tables is in each
table once), i.e. between the changes themselves: ~|added| × |removed| / 2^64, nil in practice.

``diff_indexes`` is the whole plan diff this way (what ``diff.compute_diff`` computes, with the
destination's listed ids as a third table): the plan uses it for sharded versions of at least
``shards.ON_DISK_MIN_RECORDS`` records.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler import caches

if TYPE_CHECKING:
    from reconciler.engine.diff import Diff, VersionIndex
    from reconciler.engine.listed import ListedIds

ROW = np.dtype([("key", "<u8"), ("vh", "<u8"), ("mh", "<u8")])


class KeyCollision(Exception):
    """Two ids of one version share a 64-bit key: use the exact diff for that version."""


def partition_of(keys: np.ndarray, bits: int) -> np.ndarray:
    return (keys >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(keys), np.int64)


def prefix_bounds(sorted_keys: np.ndarray, bits: int) -> np.ndarray:
    """Where the keys of each ``bits``-bit prefix start among ``sorted_keys``, then their count
    (2**bits + 1 entries: prefix p's keys are ``sorted_keys[b[p]:b[p + 1]]``). Searched at the
    prefixes' edges, never computed key by key: no temporary the size of the keys."""
    edges = np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits) if bits else np.zeros(1, np.uint64)
    return np.append(np.searchsorted(sorted_keys, edges), len(sorted_keys)).astype(np.int64)


def write_partitions(folder: Path, chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], bits: int = 8) -> int:
    """Spill (key, vh, mh) chunks into ``2**bits`` partition files, then sort each; returns the record count.

    Memory: one chunk while spilling, one partition while sorting.
    """
    folder.mkdir(parents=True, exist_ok=True)
    parts = 1 << bits
    total = 0
    with contextlib.ExitStack() as files:
        sinks = [files.enter_context(open(folder / f"{p:05d}.unsorted", "wb")) for p in range(parts)]
        for keys, vh, mh in chunks:
            rows = np.empty(len(keys), ROW)
            rows["key"], rows["vh"], rows["mh"] = keys, vh, mh
            where = partition_of(keys, bits)
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(parts + 1))
            rows = rows[order]
            for at in np.flatnonzero(np.diff(bounds)):
                sinks[at].write(rows[bounds[at] : bounds[at + 1]].tobytes())
            total += len(keys)
    for p in range(parts):
        raw = folder / f"{p:05d}.unsorted"
        _store_partition(folder, p, np.fromfile(raw, ROW))
        raw.unlink()
    (folder / "partitions").write_text(str(bits))
    return total


def _store_partition(folder: Path, p: int, rows: np.ndarray) -> None:
    """Partition ``p``'s rows, sorted by key and checked for a collision, written atomically."""
    # by the key column alone: sorting the structured rows (order="key") compares them field by
    # field in generic code, 3x slower (and most of a large plan's diff); stable (timsort) merges
    # the sorted pieces ``partitions_from_runs`` gathers
    rows = rows[np.argsort(rows["key"], kind="stable")]
    if len(rows) > 1 and (rows["key"][1:] == rows["key"][:-1]).any():
        raise KeyCollision(f"partition {p}: two ids share a 64-bit key")
    tmp = folder / f".{p:05d}.{os.getpid()}.tmp"
    rows.tofile(tmp)
    os.replace(tmp, folder / f"{p:05d}.rows")


T = TypeVar("T")


def _on_threads(work: Callable[[int], T], count: int) -> list[T]:
    """``[work(i) for i in range(count)]`` on a few threads (parts are independent, and numpy reads,
    searches, sorts and copies without the GIL); the first error is raised and cancels what has
    not started. Memory: one part a thread."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="vectorops-parts") as pool:
        futures = [pool.submit(work, i) for i in range(count)]
        try:
            return [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def sorted_rows(keys: np.ndarray, vh: np.ndarray, mh: np.ndarray) -> np.ndarray:
    """(key, vh, mh) rows sorted by key: a shard's run (``shards.shard_run_path``)."""
    order = np.argsort(keys)
    rows = np.empty(len(keys), ROW)
    rows["key"], rows["vh"], rows["mh"] = keys[order], vh[order], mh[order]
    return rows


def partitions_from_runs(folder: Path, runs: list[Path], bits: int) -> int:
    """``write_partitions`` from run files (``ROW``s, each file sorted by key: a version's shards'):
    partition ``p`` is the ``p``-th slice of every run, merged, so nothing is spilled twice. Each
    slice is read on its own, and partitions are written by a few threads (``_on_threads``): memory
    is a partition a thread (with its sort), never the runs. Returns the record count.

    Spilling a 10M-record version shard by shard and sorting it back was ~4 s of a cold plan's diff,
    on one core, after the workers had finished; the workers now sort their own shard's rows.
    """
    folder.mkdir(parents=True, exist_ok=True)
    parts = 1 << bits

    def bounds_of(run: Path) -> np.ndarray:
        count = run.stat().st_size // ROW.itemsize
        keys = np.memmap(run, ROW, mode="r", shape=(count,))["key"] if count else np.empty(0, np.uint64)
        return prefix_bounds(keys, bits)  # the mapping goes with ``keys``: a few pages read

    bounds = [bounds_of(run) for run in runs]

    def write(p: int) -> None:
        pieces = [
            np.fromfile(run, ROW, count=int(b[p + 1] - b[p]), offset=int(b[p]) * ROW.itemsize)
            for run, b in zip(runs, bounds, strict=True) if b[p + 1] > b[p]
        ]
        _store_partition(folder, p, np.concatenate(pieces) if pieces else np.empty(0, ROW))

    _on_threads(write, parts)  # the first error (a collision) is raised here
    (folder / "partitions").write_text(str(bits))
    return int(sum(b[-1] for b in bounds))


#: a ``KeyIndex`` has about one prefix entry for this many keys
_KEYS_PER_PREFIX = 4
_MAX_PREFIX_BITS = 22  # 4M prefixes, a 32 MB table: beyond ~16M keys a prefix's range grows instead (a step more each doubling)


@dataclass(frozen=True)
class KeyIndex:
    """Sorted 64-bit keys, and where each key prefix (its top bits) starts among them.

    For many lookups in a large key set: the stash asks "is this record's key in the deployed
    version?" for every record decoded, and a binary search of a 10M-key array misses the CPU cache
    at most of its ~24 steps (35 ms a 100k-record shard, ~3.5 CPU-s a 10M-record plan). Keys are
    uniform hashes, so a prefix holds a handful of them: the lookup reads the prefix's range and
    probes within it, a few steps that stay in one or two cache lines (about 5x faster at 10M).
    """

    keys: np.ndarray  # sorted uint64
    starts: np.ndarray  # int64, 2**bits + 1 entries: prefix p's keys are keys[starts[p]:starts[p + 1]]
    steps: int  # probes a lookup needs: the bit length of the largest prefix's count

    @staticmethod
    def of(keys: np.ndarray) -> KeyIndex:
        """The index of ``keys`` (sorted, ascending)."""
        n = len(keys)
        bits = min(_MAX_PREFIX_BITS, max(0, math.ceil(math.log2(max(n, 1) / _KEYS_PER_PREFIX))))
        starts = prefix_bounds(keys, bits)
        return KeyIndex(keys, starts, int(np.diff(starts).max(initial=0)).bit_length())

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, probes: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """Which of ``probes`` (uint64, any order) are among the keys."""
        return self.lookup(probes, chunk)[1]

    def lookup(self, probes: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``probes`` (uint64, any order): its position among the keys (meaningful where
        found) and whether it is there. Looked up ``chunk`` at a time: the search's temporaries stay
        in the CPU cache (10M probes at once: 4.5x slower, and ~0.5 GB)."""
        if len(self.keys) == 0 or len(probes) <= chunk:
            return self._lookup(probes)
        parts = [self._lookup(probes[start : start + chunk]) for start in range(0, len(probes), chunk)]
        return np.concatenate([at for at, _ in parts]), np.concatenate([hit for _, hit in parts])

    def _lookup(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.keys)
        if n == 0 or len(probes) == 0:
            return np.zeros(len(probes), np.intp), np.zeros(len(probes), bool)
        bits = (len(self.starts) - 1).bit_length() - 1  # len(starts) is 2**bits + 1
        prefix = (probes >> np.uint64(64 - bits)).astype(np.intp) if bits else np.zeros(len(probes), np.intp)
        lo, hi = self.starts[prefix], self.starts[prefix + 1]
        for _ in range(self.steps):  # a binary search in [lo, hi), every probe at once
            mid = (lo + hi) >> 1
            below = self.keys[np.minimum(mid, n - 1)] < probes
            searching = lo < hi
            lo = np.where(searching & below, mid + 1, lo)
            hi = np.where(searching & ~below, mid, hi)
        at = np.minimum(lo, n - 1)
        return at, np.asarray(self.keys[at] == probes)


def _load(folder: Path, p: int) -> np.ndarray:
    path = folder / f"{p:05d}.rows"
    if path.stat().st_size == 0:
        return np.empty(0, ROW)
    return np.memmap(path, ROW, mode="r")


@dataclass
class KeyDiff:
    """The keys apply acts on, by kind (small: they are the change, not the versions)."""

    add: np.ndarray
    update_vector: np.ndarray
    update_metadata: np.ndarray
    delete: np.ndarray

    def counts(self) -> dict[str, int]:
        return {"add": len(self.add), "update": len(self.update_vector) + len(self.update_metadata), "delete": len(self.delete)}


def diff_partitions(desired: Path, deployed: Path) -> KeyDiff:
    """Desired vs deployed, one partition pair at a time (both must use the same partition bits)."""
    bits = int((desired / "partitions").read_text())
    if int((deployed / "partitions").read_text()) != bits:
        raise ValueError("the two versions are partitioned differently")
    out: dict[str, list[np.ndarray]] = {"add": [], "update_vector": [], "update_metadata": [], "delete": []}
    for p in range(1 << bits):
        new, old = _load(desired, p), _load(deployed, p)
        nk, ok = np.asarray(new["key"]), np.asarray(old["key"])
        at = np.searchsorted(ok, nk)
        at_c = np.minimum(at, max(len(ok) - 1, 0))
        present = (at < len(ok)) & (ok[at_c] == nk) if len(ok) else np.zeros(len(nk), bool)
        out["add"].append(nk[~present])
        both_new = np.flatnonzero(present)
        both_old = at[present]
        vec = np.asarray(new["vh"])[both_new] != np.asarray(old["vh"])[both_old]
        meta = ~vec & (np.asarray(new["mh"])[both_new] != np.asarray(old["mh"])[both_old])
        out["update_vector"].append(nk[both_new[vec]])
        out["update_metadata"].append(nk[both_new[meta]])
        kept = np.zeros(len(ok), bool)
        kept[both_old] = True
        out["delete"].append(ok[~kept])
        del new, old
    return KeyDiff(**{k: np.concatenate(v) if v else np.empty(0, np.uint64) for k, v in out.items()})


# -- the plan's diff, on disk --------------------------------------------------------------------

#: records a partition holds, about: a partition of each table a thread, and a chunk, are what the diff keeps in memory
PARTITION_RECORDS = 500_000
#: at most 2**9 partitions: spilling keeps one file open per partition
MAX_BITS = 9


def bits_for(records: int) -> int:
    return min(MAX_BITS, max(0, math.ceil(math.log2(max(records, 1) / PARTITION_RECORDS))))


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``keys``: its position in ``sorted_keys`` (meaningful where found) and whether it is there."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), np.intp), np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, np.asarray(sorted_keys[at] == keys)


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys``."""
    return _lookup(sorted_keys, keys)[1]


def _index_rows(index: VersionIndex) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for i in range(index.chunk_count()):
        t = index.chunk(i, ["vh", "mh"])
        yield index.chunk_keys(i), t.column("vh").to_numpy(), t.column("mh").to_numpy()


def check_listed(keys: np.ndarray) -> None:
    """The listed ids' keys, sorted: two equal ones are a collision (or an id listed twice)."""
    if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
        raise KeyCollision("two listed ids share a 64-bit key (or an id is listed twice)")


@dataclass
class PlanKeys:
    """The diff's answer as keys: from the desired table, from the listed ids (or the deployed table
    when nothing was listed), and the drift between the deployed table and the listing."""

    add: np.ndarray
    update_vector: np.ndarray
    update_metadata: np.ndarray
    extra: np.ndarray  # listed (or deployed) ids the desired version lacks
    missing: np.ndarray | None  # deployed ids not listed (None: nothing was listed)
    unexpected: np.ndarray | None  # listed ids vectorops did not deploy


def merge_partitions(desired: Path, deployed: Path, listed: np.ndarray | None) -> PlanKeys:
    """``diff.compute_diff``'s rules, one partition of each table at a time.

    ``listed``: the listed ids' keys, sorted (``check_listed``), held in memory as an ``ids``
    refresh holds the ids themselves: a partition's are a slice (written to disk and read back
    they were ~0.6 s of a 10M-record plan on one core). None means "not looked": the deployed
    table is assumed to be there. A desired id that is listed but was not deployed by vectorops
    has unknown content, so it is rewritten (a vector update).
    """
    bits = int((desired / "partitions").read_text())
    kinds = ("add", "update_vector", "update_metadata", "extra", "missing", "unexpected")
    listed_bounds = prefix_bounds(listed, bits) if listed is not None else None

    def merge(p: int) -> dict[str, np.ndarray]:
        new, old = _load(desired, p), _load(deployed, p)
        dk, bk = np.asarray(new["key"]), np.asarray(old["key"])
        ak = listed[listed_bounds[p] : listed_bounds[p + 1]] if listed is not None and listed_bounds is not None else bk
        in_listing = _member(ak, dk)
        rows = np.flatnonzero(in_listing)
        if len(bk):
            at = np.minimum(np.searchsorted(bk, dk[rows]), len(bk) - 1)
            known = bk[at] == dk[rows]
            base_vh, base_mh = np.asarray(old["vh"])[at], np.asarray(old["mh"])[at]
        else:
            known = np.zeros(len(rows), bool)
            base_vh = base_mh = np.zeros(len(rows), np.uint64)
        vec = ~known | (base_vh != np.asarray(new["vh"])[rows])
        meta = ~vec & (base_mh != np.asarray(new["mh"])[rows])
        found = {"add": dk[~in_listing], "update_vector": dk[rows[vec]], "update_metadata": dk[rows[meta]], "extra": ak[~_member(dk, ak)]}
        if listed is not None:
            found["missing"] = bk[~_member(ak, bk)]
            found["unexpected"] = ak[~_member(bk, ak)]
        return found

    merged = _on_threads(merge, 1 << bits)  # a partition a thread: 1.06 s -> 0.6 s at 10M on two cores
    joined = {k: np.sort(np.concatenate([m[k] for m in merged if k in m] or [np.empty(0, np.uint64)])) for k in kinds}
    looked = listed is not None
    return PlanKeys(
        joined["add"], joined["update_vector"], joined["update_metadata"], joined["extra"],
        joined["missing"] if looked else None, joined["unexpected"] if looked else None,
    )


def _ids_of(index: VersionIndex, wanted: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """The ids of ``index`` whose keys are in each sorted key set, sorted (as the in-memory table is).

    One pass over the index's keys, one lookup a part for all the sets together (they are disjoint:
    each is a kind of change); a part's ids are read only when it holds one of the keys.
    """
    names = [name for name, keys in wanted.items() if len(keys)]
    found: dict[str, list[pa.Array]] = {name: [] for name in wanted}
    if names:
        every = np.concatenate([wanted[name] for name in names])
        label = np.repeat(np.arange(len(names), dtype=np.int16), [len(wanted[name]) for name in names])
        order = np.argsort(every, kind="stable")
        every, label = every[order], label[order]

        # by prefix (``KeyIndex``): a plain binary search of 300,000 changed keys for each of a
        # 10M-record version's keys was 1.7 CPU-s of a plan's tail, four steps are 0.4
        changed = KeyIndex.of(every)

        def look(i: int) -> list[tuple[str, pa.Array]]:
            at, hit = changed.lookup(index.chunk_keys(i))
            if not hit.any():
                return []
            ids = index.chunk(i, ["id"]).column("id").combine_chunks().cast(pa.string())
            of = np.where(hit, label[at], -1)
            return [(name, ids.filter(pa.array(of == n))) for n, name in enumerate(names) if (of == n).any()]

        for part in _on_threads(look, index.chunk_count()):  # in part order, as one thread would
            for name, ids in part:
                found[name].append(ids)
    out = {}
    for name, parts in found.items():
        ids = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
        out[name] = ids.take(pc.sort_indices(ids)) if len(ids) > 1 else ids
    return out


def _partitions(index: VersionIndex, scratch: Path, bits: int) -> Path:
    """``index`` partitioned on disk: from the cache when this version was partitioned alike before,
    else written (into the cache when the version can be named, else into ``scratch``).

    A version's partitions never change (they follow from its digest and how it was hashed), and
    writing them was two thirds of a warm 10M-record plan's diff (three tables spilled and sorted
    every plan). They cost 24 bytes a record on disk, like the version's shard tables' ids.
    """
    if index.cache_key is None or not len(index):
        _write(index, scratch, bits)
        return scratch
    folder = caches.cache_dir() / "partitions" / f"{index.cache_key}-b{bits}"
    if _whole(folder, bits):
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # damaged (a file removed by hand): rebuilt, never trusted
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write(index, fresh, bits)
        try:
            os.rename(fresh, folder)  # atomic; another plan may have put it there first
            return folder
        except OSError:
            if _whole(folder, bits):
                return folder
            os.rename(fresh, scratch)  # the cache's folder is damaged: this plan diffs its own copy
            return scratch
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _write(index: VersionIndex, folder: Path, bits: int) -> None:
    """``index`` partitioned into ``folder``: from its chunks' sorted runs where every chunk has one
    (a sharded version hashed by this vectorops), else spilled chunk by chunk and sorted."""
    runs = [index.chunk_run(i) for i in range(index.chunk_count())]
    if all(run is not None for run in runs):
        partitions_from_runs(folder, [run for run in runs if run is not None], bits)
    else:
        write_partitions(folder, _index_rows(index), bits)


def _whole(folder: Path, bits: int) -> bool:
    """Whether ``folder`` holds a complete partitioning with ``bits``: the marker (written last) and
    every partition's file, each a whole number of rows."""
    try:
        if int((folder / "partitions").read_text()) != bits:
            return False
        return all((folder / f"{p:05d}.rows").stat().st_size % ROW.itemsize == 0 for p in range(1 << bits))
    except (OSError, ValueError):
        return False


def diff_indexes(
    desired: VersionIndex, deployed: VersionIndex | None, actual_ids: pa.Array | ListedIds | None, *, prune: bool, bits: int | None = None
) -> Diff:
    """``diff.compute_diff`` (without full hashes) with every table partitioned on disk.

    Memory: a chunk (one shard's table) while spilling, a partition of each table a thread while
    merging (``_on_threads``: at most 4), and the changed ids; plus the listed ids' keys, sorted
    (8 bytes an id: ``ListedIds`` keeps the ids themselves in a spill file), sliced a partition at
    a time. Disk: 24 bytes a record a version, under the cache folder, kept for the next plan
    (``_partitions``). Raises ``KeyCollision`` when two ids of one table share a key (the caller
    diffs in memory).
    """
    from reconciler.engine.diff import VersionIndex
    from reconciler.engine.listed import ListedIds

    base = deployed if deployed is not None else VersionIndex.empty()
    made_here = actual_ids is not None and not isinstance(actual_ids, ListedIds)
    listed = ListedIds.of(actual_ids) if made_here else actual_ids
    try:
        return _diff_listed(desired, base, listed, prune=prune, bits=bits)
    finally:
        if made_here and listed is not None:
            listed.close()


def _diff_listed(desired: VersionIndex, base: VersionIndex, listed: ListedIds | None, *, prune: bool, bits: int | None) -> Diff:
    from reconciler.engine.diff import Diff

    work = caches.cache_dir() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    if bits is None:
        bits = bits_for(max(len(desired), len(base), len(listed) if listed is not None else 0))
    if listed is not None:
        check_listed(listed.sorted_keys)
    with tempfile.TemporaryDirectory(prefix="diff-", dir=work) as tmp:
        folder = Path(tmp)
        desired_parts = _partitions(desired, folder / "desired", bits)
        deployed_parts = _partitions(base, folder / "deployed", bits)
        keys = merge_partitions(desired_parts, deployed_parts, listed.sorted_keys if listed is not None else None)
    from_desired = _ids_of(desired, {"add": keys.add, "update_vector": keys.update_vector, "update_metadata": keys.update_metadata})
    empty = pa.array([], pa.string())
    drift_missing = drift_unexpected = None
    if listed is not None:
        # listed ids keep the listing's order, as the in-memory diff keeps them: one pass over the
        # spilled listing, every listed key looked up among the few changed (``KeyIndex``)
        named = listed.select({"extra": keys.extra, "unexpected": keys.unexpected if keys.unexpected is not None else np.empty(0, np.uint64)})
        extra, drift_unexpected = named["extra"], named["unexpected"]
        drift_missing = _ids_of(base, {"missing": keys.missing})["missing"]  # type: ignore[dict-item]
    else:
        extra = _ids_of(base, {"extra": keys.extra})["extra"]
    return Diff(
        add=from_desired["add"],
        update_vector=from_desired["update_vector"],
        update_metadata=from_desired["update_metadata"],
        delete=extra if prune else empty,
        kept_unexpected=0 if prune else len(extra),
        drift_missing=drift_missing,
        drift_unexpected=drift_unexpected,
        drift_modified=None,
    )
