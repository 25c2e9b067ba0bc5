"""A simulated diff of two N-record versions from their hash tables alone (issue 19, "diff at 100M").

No vectors and no ids: each record is a random 64-bit id key with random vector and metadata
hashes, which is all the diff looks at (engine/partitioned.py). v2 is v1 with 1% deleted, 1%
updated (every one a new vector hash, half also a new metadata hash) and 1% added.

    # build the two versions' partitioned tables (spill + sort: what hashing shards would produce)
    nice -n 10 python bench/diff_scale.py build --records 100000000 --work /tmp/diff100m
    # the diff alone (partitioned.merge_partitions, as plan runs it), in its own process, measured by the kernel
    nice -n 10 /usr/bin/time -v python bench/diff_scale.py diff --work /tmp/diff100m

For comparison, ``inmemory --records N`` runs today's in-memory diff (``diff.compute_diff`` over
Arrow tables with string ids) on the same kind of data.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 2_000_000


def v1_chunks(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        yield rng.integers(0, 2**64 - 1, k, dtype=np.uint64), rng.integers(0, 2**64 - 1, k, dtype=np.uint64), rng.integers(0, 2**64 - 1, k, dtype=np.uint64)


def derive_v2(v1: Path, v2: Path, seed: int = 2) -> None:
    """v2 partition by partition from v1's: 1% deleted, 1% updated, 1% added (kept sorted, in range)."""
    from reconciler.engine.partitioned import ROW

    bits = int((v1 / "partitions").read_text())
    v2.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for p in range(1 << bits):
        rows = np.fromfile(v1 / f"{p:05d}.rows", ROW)
        n = len(rows)
        k = max(1, n // 100)
        pick = rng.permutation(n)
        rows["vh"][pick[:k]] ^= np.uint64(1)
        rows["mh"][pick[: k // 2]] ^= np.uint64(1)
        keep = np.ones(n, bool)
        keep[pick[k : 2 * k]] = False
        added = np.empty(k, ROW)
        fresh = rng.integers(0, 2**64 - 1, k, dtype=np.uint64)
        added["key"] = ((fresh >> np.uint64(bits)) | (np.uint64(p) << np.uint64(64 - bits))) if bits else fresh
        added["vh"], added["mh"] = rng.integers(0, 2**63, k, dtype=np.uint64), rng.integers(0, 2**63, k, dtype=np.uint64)
        out = np.concatenate([rows[keep], added])
        out.sort(order="key")
        out.tofile(v2 / f"{p:05d}.rows")
    (v2 / "partitions").write_text(str(bits))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("build", "diff", "inmemory"))
    p.add_argument("--records", type=int, default=100_000_000)
    p.add_argument("--bits", type=int, default=8, help="2**bits partitions")
    p.add_argument("--work", type=Path, default=Path("/tmp/vectorops-diff-scale"))
    args = p.parse_args(argv)
    from reconciler.engine import partitioned

    res: dict[str, object] = {"step": args.step, "load_average_start": os.getloadavg()}
    t0, c0 = time.perf_counter(), time.process_time()
    if args.step == "build":
        res["records_v1"] = partitioned.write_partitions(args.work / "v1", v1_chunks(args.records), args.bits)
        res["v1_s"] = time.perf_counter() - t0
        derive_v2(args.work / "v1", args.work / "v2")
        res["bytes_on_disk"] = sum(f.stat().st_size for f in args.work.rglob("*.rows"))
    elif args.step == "diff":
        # what plan runs (partitioned.diff_indexes) once the tables are partitioned: the merge, with
        # nothing listed (the deployed table stands for the destination, as at refresh none/sample)
        keys = partitioned.merge_partitions(args.work / "v2", args.work / "v1", None)
        res["counts"] = {"add": len(keys.add), "update": len(keys.update_vector) + len(keys.update_metadata), "delete": len(keys.extra)}
        res["records_v1"] = sum(f.stat().st_size // partitioned.ROW.itemsize for f in (args.work / "v1").glob("*.rows"))
    else:
        import pyarrow as pa

        from reconciler.engine.diff import INDEX_SCHEMA, VersionIndex, compute_diff

        n = args.records
        rng = np.random.default_rng(1)
        ids = pa.array(np.char.add("doc-", np.char.zfill(np.arange(n).astype(str), 9)).astype(object), pa.string())
        vh, mh = rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**63, n, dtype=np.uint64)
        old = VersionIndex(pa.table({"id": ids, "vh": vh, "mh": mh}, schema=INDEX_SCHEMA))
        vh2 = vh.copy()
        vh2[: n // 100] ^= np.uint64(1)
        new = VersionIndex(pa.table({"id": ids, "vh": vh2, "mh": mh}, schema=INDEX_SCHEMA))
        res["built_peak_mb"] = peak_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        res["counts"] = compute_diff(new, old, None, None, prune=True).counts()
    res["s"], res["cpu_s"], res["peak_rss_mb"] = time.perf_counter() - t0, time.process_time() - c0, peak_mb()
    res["load_average_end"] = os.getloadavg()
    print(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
