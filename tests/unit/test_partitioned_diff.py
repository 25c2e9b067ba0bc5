"""The partitioned on-disk diff (engine/partitioned.py) says exactly what the in-memory diff says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from reconciler.engine.diff import INDEX_SCHEMA, VersionIndex, compute_diff
from reconciler.engine.hashing import hash_strings
from reconciler.engine.partitioned import KeyCollision, diff_partitions, partitions_from_runs, sorted_rows, write_partitions


def _version(ids: list[str], vh: np.ndarray, mh: np.ndarray) -> VersionIndex:
    return VersionIndex.from_table(pa.table({"id": pa.array(ids), "vh": vh, "mh": mh}, schema=INDEX_SCHEMA), what="test")


def _chunks(index: VersionIndex, size: int = 700):
    t = index.table
    for start in range(0, t.num_rows, size):
        part = t.slice(start, size)
        yield hash_strings(part.column("id")), part.column("vh").to_numpy(), part.column("mh").to_numpy()


@pytest.mark.parametrize("bits", [0, 3, 8])
def test_partitioned_diff_matches_the_in_memory_diff(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    ids = [f"doc-{i}" for i in range(n)]
    vh, mh = rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**63, n, dtype=np.uint64)
    old = _version(ids, vh, mh)
    vh2, mh2 = vh.copy(), mh.copy()
    vh2[10:60] += np.uint64(1)   # 50 vector updates
    mh2[100:130] += np.uint64(1)  # 30 metadata-only updates
    keep = np.ones(n, bool)
    keep[200:240] = False  # 40 deletes
    new_ids = [i for i, k in zip(ids, keep, strict=True) if k] + [f"new-{i}" for i in range(70)]
    new = _version(new_ids, np.concatenate([vh2[keep], rng.integers(0, 2**63, 70, dtype=np.uint64)]),
                   np.concatenate([mh2[keep], rng.integers(0, 2**63, 70, dtype=np.uint64)]))

    assert write_partitions(tmp_path / "old", _chunks(old), bits) == n
    write_partitions(tmp_path / "new", _chunks(new), bits)
    got = diff_partitions(tmp_path / "new", tmp_path / "old")
    want = compute_diff(new, old, None, None, prune=True)

    def keys(a: pa.Array) -> set[int]:
        return set(hash_strings(a).tolist())

    assert got.counts() == want.counts() == {"add": 70, "update": 80, "delete": 40}
    assert set(got.add.tolist()) == keys(want.add)
    assert set(got.update_vector.tolist()) == keys(want.update_vector)
    assert set(got.update_metadata.tolist()) == keys(want.update_metadata)
    assert set(got.delete.tolist()) == keys(want.delete)


def test_a_key_collision_is_refused(tmp_path: Path) -> None:
    keys = np.array([7, 7], np.uint64)
    with pytest.raises(KeyCollision):
        write_partitions(tmp_path / "v", [(keys, keys, keys)], 2)


@pytest.mark.parametrize("listed", ["none", "array", "spilled"])
@pytest.mark.parametrize("prune", [True, False])
@pytest.mark.parametrize("with_deployed", [True, False])
def test_the_plan_diff_on_disk_is_the_in_memory_diff(listed: str, prune: bool, with_deployed: bool, tmp_path: Path) -> None:
    """``diff_indexes`` gives ``compute_diff``'s Diff exactly, ids in the same order, with or without
    a listing of the destination (which here has lost ids, holds strangers, and lists in its own
    order), given whole or spilled as it came in pieces (``ListedIds``, what a plan passes)."""
    from reconciler.engine.listed import ListedIds
    from reconciler.engine.partitioned import diff_indexes

    rng = np.random.default_rng(9)
    n = 3000
    ids = [f"doc-{i}" for i in rng.permutation(n)]
    vh, mh = rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**63, n, dtype=np.uint64)
    old = _version(ids, vh, mh)
    vh2, mh2 = vh.copy(), mh.copy()
    vh2[:40] += np.uint64(1)
    mh2[40:70] += np.uint64(1)
    keep = np.ones(n, bool)
    keep[100:150] = False
    new = _version([i for i, k in zip(ids, keep, strict=True) if k] + [f"new-{i}" for i in range(60)],
                   np.concatenate([vh2[keep], np.arange(60, dtype=np.uint64)]), np.concatenate([mh2[keep], np.arange(60, dtype=np.uint64)]))
    listing = None
    if listed != "none":
        there = [i for i in ids[25:] if i not in ("doc-7", "doc-8")] + ["stranger-1", "new-3", "stranger-0"]
        listing = pa.array([there[i] for i in rng.permutation(len(there))], pa.string())
    deployed = old if with_deployed else None
    given: Any = listing
    if listed == "spilled" and listing is not None:
        pieces = (listing.slice(start, 700) for start in range(0, len(listing), 700))
        given = ListedIds.collect(pieces, count_hint=1000, folder=tmp_path)  # the hint is short: the keys grow
        assert list(tmp_path.iterdir()) == []  # the spill file is unlinked from the start
        assert given.to_array().equals(listing) and len(given) == len(listing)
    got = diff_indexes(new, deployed, given, prune=prune, bits=3)
    want = compute_diff(new, deployed, listing, None, prune=prune)
    for field in ("add", "update_vector", "update_metadata", "delete", "drift_missing", "drift_unexpected", "drift_modified"):
        a, b = getattr(got, field), getattr(want, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.to_pylist() == b.to_pylist(), field
    assert got.kept_unexpected == want.kept_unexpected
    assert sum(got.counts().values()) > 0


def test_a_spilled_listing_with_an_id_twice_falls_back_to_the_exact_diff(tmp_path: Path) -> None:
    """An id listed twice is two equal keys: the on-disk diff refuses it (``KeyCollision``) and the
    in-memory diff reads the spilled listing back whole, with the same answer as from the array."""
    from reconciler.engine.listed import ListedIds
    from reconciler.engine.partitioned import diff_indexes

    ids = [f"doc-{i}" for i in range(500)]
    old = _version(ids, np.arange(500, dtype=np.uint64), np.zeros(500, np.uint64))
    new = _version(ids[10:] + ["doc-new"], np.arange(10, 501, dtype=np.uint64), np.zeros(491, np.uint64))
    listing = pa.array(ids[5:] + ["doc-99", "stranger"], pa.string())
    spilled = ListedIds.collect([listing.slice(0, 300), listing.slice(300)], folder=tmp_path)
    with pytest.raises(KeyCollision):
        diff_indexes(new, old, spilled, prune=True, bits=2)
    got, want = compute_diff(new, old, spilled, None, prune=True), compute_diff(new, old, listing, None, prune=True)
    assert got.delete.to_pylist() == want.delete.to_pylist()
    assert set(got.delete.to_pylist()) >= {*ids[5:10], "stranger"}
    assert got.counts() == want.counts() and got.add.to_pylist() == ["doc-new"]


@pytest.mark.parametrize("bits", [0, 1, 5])
def test_partitions_from_sorted_runs_are_the_spilled_partitions(tmp_path: Path, bits: int) -> None:
    """A version partitioned from its shards' sorted runs holds, byte for byte, what spilling its
    shards chunk by chunk and sorting writes; a key two shards share is refused the same way."""
    rng = np.random.default_rng(bits)
    shards = []
    for size in (0, 1, 700, 2500, 31):
        keys = rng.integers(0, 2**64 - 1, size, dtype=np.uint64, endpoint=True)
        shards.append((keys, rng.integers(0, 2**63, size, dtype=np.uint64), rng.integers(0, 2**63, size, dtype=np.uint64)))
    def runs(tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]], name: str) -> list[Path]:
        paths = [tmp_path / f"{name}-{n}.run" for n in range(len(tables))]
        for path, table in zip(paths, tables, strict=True):
            sorted_rows(*table).tofile(path)
        return paths

    spilled, merged = tmp_path / "spilled", tmp_path / "merged"
    assert write_partitions(spilled, iter(shards), bits) == partitions_from_runs(merged, runs(shards, "shard"), bits) == 3232
    for p in range(1 << bits):
        assert (merged / f"{p:05d}.rows").read_bytes() == (spilled / f"{p:05d}.rows").read_bytes()
    assert (merged / "partitions").read_text() == str(bits)

    keys, vh, mh = shards[3]
    twice = [(keys, vh, mh), (keys[:1], mh[:1], vh[:1])]  # the same id in two shards
    with pytest.raises(KeyCollision):
        partitions_from_runs(tmp_path / "collides", runs(twice, "twice"), bits)


def test_work_on_threads_keeps_order_and_stops_at_the_first_error() -> None:
    import threading
    import time

    from reconciler.engine.partitioned import _on_threads

    assert _on_threads(lambda i: i * i, 50) == [i * i for i in range(50)]
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 0:
            time.sleep(0.05)
            raise KeyCollision("partition 0")
        time.sleep(0.05)
        return i

    with pytest.raises(KeyCollision, match="partition 0"):
        _on_threads(work, 200)
    assert len(started) < 200  # what had not started when partition 0 failed never ran
