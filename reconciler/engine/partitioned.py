"""Diffing id→hash tables larger than memory: partitioned by id hash on disk, merged a partition at a time.

A version's table is kept as ``P`` files, partition ``p`` holding the records whose 64-bit id key
(xxh3 of the id) starts with the bits of ``p``, each file sorted by key: fixed-width rows of
(key, vector hash, metadata hash), 24 bytes a record. Two versions partitioned alike are diffed
partition by partition (memory-mapped, a sorted merge with numpy), so memory is two partitions
and the changed keys, never the versions: at 100M records and 256 partitions a partition is
~9 MB. The changed keys are turned back into ids by one streaming pass over the version's ids.

Two ids with the same 64-bit key (about one pair in 10^4 among 100M ids) would be one record
here, so ``write_partitions`` refuses a version whose keys collide, and the caller falls back to
the exact in-memory diff (``diff.compute_diff``) for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROW = np.dtype([("key", "<u8"), ("vh", "<u8"), ("mh", "<u8")])


class KeyCollision(Exception):
    """Two ids of one version share a 64-bit key: use the exact diff for that version."""


def partition_of(keys: np.ndarray, bits: int) -> np.ndarray:
    return (keys >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(keys), np.int64)


def write_partitions(folder: Path, chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], bits: int = 8) -> int:
    """Spill (key, vh, mh) chunks into ``2**bits`` partition files, then sort each; returns the record count.

    Memory: one chunk while spilling, one partition while sorting.
    """
    folder.mkdir(parents=True, exist_ok=True)
    parts = 1 << bits
    sinks = [open(folder / f"{p:05d}.unsorted", "wb") for p in range(parts)]
    total = 0
    try:
        for keys, vh, mh in chunks:
            rows = np.empty(len(keys), ROW)
            rows["key"], rows["vh"], rows["mh"] = keys, vh, mh
            where = partition_of(keys, bits)
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(parts + 1))
            rows = rows[order]
            for p in np.flatnonzero(np.diff(bounds)):
                sinks[p].write(rows[bounds[p] : bounds[p + 1]].tobytes())
            total += len(keys)
    finally:
        for s in sinks:
            s.close()
    for p in range(parts):
        raw = folder / f"{p:05d}.unsorted"
        rows = np.fromfile(raw, ROW)
        rows.sort(order="key", kind="stable")
        if len(rows) > 1 and (rows["key"][1:] == rows["key"][:-1]).any():
            raise KeyCollision(f"partition {p}: two ids share a 64-bit key")
        tmp = folder / f".{p:05d}.{os.getpid()}.tmp"
        rows.tofile(tmp)
        os.replace(tmp, folder / f"{p:05d}.rows")
        raw.unlink()
    (folder / "partitions").write_text(str(bits))
    return total


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
