"""The Ray executor (issue 20) against the local one: cold plan of a sharded v2 on this machine.

The dataset is bench/shards.py's (a real git + DVC repo, 100 Parquet shards, ``--change spread``:
v2 changes 1% of the records in every shard, so a cold plan decodes all of v2). v1 is applied once
with the local executor (its shard tables cached, LanceDB filled); then for each executor the same
cold plan of v2 runs as a fresh ``vectorops`` process against a copy of v1's cache:

* local ``--jobs 1`` and ``--jobs 2`` (processes on this machine);
* ray with 1 worker and with 2 workers: a Ray cluster started with ``ray start`` (one raylet of
  one CPU per worker, as two nodes would be), joined through ``RAY_ADDRESS``. The cluster's start
  is timed apart: in use it is already running.

With ``--first``, the case is a team's first plan of a large dataset instead: v1 planned from an
empty cache against an empty destination, so every shard of v1 is decoded (no apply needed; any
repo bench/shards.py built works, ``--change one`` too).

Every plan must be the same (changes, update detail); the peak RSS is the driver's (Ray's workers
are the raylet's children, not the command's). Reuse a repo built before with ``--repo``
(``bench/shards.py --work DIR`` keeps it at DIR/repo); it is only read.

    nice -n 10 python bench/ray_executor.py --records 1000000 --dim 128 --shards 100
    nice -n 10 python bench/ray_executor.py --repo /work/data/shards-10m-128/repo --records 10000000 --dim 128 --shards 100
    nice -n 10 python bench/ray_executor.py --repo /work/data/shards-1m-768/repo --dim 768 --first
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_repo import ROOT, warm  # noqa: E402
from measured import base_env, run_measured, vectorops_cmd  # noqa: E402
from shards import build, io_floor, manifest, objects  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--shards", type=int, default=100)
    p.add_argument("--row-group", type=int, default=16_384)
    p.add_argument("--repo", type=Path, default=None, help="a repo bench/shards.py built (--change spread); default: build one")
    p.add_argument("--work", type=Path, default=None, help="keep everything here (default: a temp folder, removed)")
    p.add_argument("--variants", default="local-1,local-2,ray-1,ray-2")
    p.add_argument("--object-store-bytes", default="500000000", help="per Ray node")
    p.add_argument("--db", type=Path, default=None, help="an existing LanceDB with v1 applied (only read: plans write nothing)")
    p.add_argument("--cache-v1", type=Path, default=None, help="v1's shard tables from that apply (copied, never written)")
    p.add_argument("--first", action="store_true", help="plan v1 from an empty cache into an empty destination (decodes all of v1)")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    args.change = "spread"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.ray_cluster import ENV as RAY_ENV
    from fixtures.ray_cluster import RayCluster

    work = args.work or Path(tempfile.mkdtemp(prefix="vectorops-ray-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"records": args.records, "dim": args.dim, "shards": args.shards, "cores": os.cpu_count(),
                           "load_average_start": os.getloadavg()}
    try:
        if args.repo is None:
            t0 = time.perf_counter()
            root = Path(build(work / "repo", args)["root"])
            res["build_s"] = time.perf_counter() - t0
        else:
            root = args.repo
        v1, v2 = objects(root, "v1"), objects(root, "v2")
        decoded = v1 if args.first else v2
        res["case"] = "first plan of v1, nothing cached" if args.first else "cold plan of v2 (1% spread), v1 deployed and cached"
        res["bytes_decoded"] = sum(f.stat().st_size for f in decoded)
        res["io_floor_s"], res["io_floor_cpu_s"] = io_floor(decoded)
        ws = work / "ws"
        ws.mkdir(exist_ok=True)
        m, db = ws / "vectorops.yaml", args.db or ws / "db"
        cache_v1 = args.cache_v1 or work / "cache-v1"
        if args.db is not None and not (args.cache_v1 is not None and len(list(cache_v1.glob("shards/*.parquet"))) >= args.shards):
            raise SystemExit(f"--db needs --cache-v1 holding v1's {args.shards} shard tables")

        def vo(cache: Path, *a: str, env: dict[str, str] | None = None) -> Any:
            return run_measured([*vectorops_cmd(), "-m", str(m), "--no-color", *a], {**base_env(cache), **(env or {})}, ws)

        if args.cache_v1 is None:
            cache_v1.mkdir(exist_ok=True)
        if args.first:
            manifest(m, root, args.dim, "v1", db)  # db never created: the destination is empty
        elif args.db is None and (not (db / "docs.lance").exists() or not any(cache_v1.iterdir())):
            manifest(m, root, args.dim, "v1", db)
            warm(*v1)
            run = vo(cache_v1, "apply", "--auto-approve", "--jobs", "2")
            res["apply_v1_local_jobs2_s"] = run.seconds
        if not args.first:
            manifest(m, root, args.dim, "v2", db)
        plans: dict[str, Any] = {}
        for variant in args.variants.split(","):
            kind, n = variant.split("-")
            cache = work / f"cache-{variant}"
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(cache_v1, cache)  # v1 seen before (its shards cached); v2's shards not
            cluster = None
            row: dict[str, Any] = {"load_average_before": os.getloadavg()}
            try:
                if kind == "ray":
                    t0 = time.perf_counter()
                    cluster = RayCluster.start(nodes=int(n), object_store_bytes=args.object_store_bytes)
                    row["cluster_start_s"] = time.perf_counter() - t0
                    flags, env = ["--executor", "ray"], {"RAY_ADDRESS": cluster.address, **RAY_ENV}
                else:
                    flags, env = ["--executor", "local", "--jobs", n], {"VECTOROPS_PARALLEL_MIN_BYTES": "0"}
                warm(*v1, *v2)
                run = vo(cache, "plan", "--json", *flags, env=env)
            finally:
                if cluster is not None:
                    cluster.stop()
            plan = json.loads(run.stdout)["environments"][0]
            row.update({"s": run.seconds, "driver_rss_mb": run.max_rss_mb, "driver_cpu_s": run.cpu_seconds,
                        "workers": plan["shards"]["workers"], "decoded": plan["shards"]["decoded"], "changes": plan["changes"],
                        "update_detail": plan["update_detail"], "load_average_after": os.getloadavg()})
            plans[variant] = (plan["changes"], plan["update_detail"], plan["drift"])
            res[variant] = row
            shutil.rmtree(cache, ignore_errors=True)
            print(json.dumps({variant: row}, default=str), flush=True)
        first = next(iter(plans.values()))
        res["same_plan_everywhere"] = all(v == first for v in plans.values())
        base = res.get("local-1", {}).get("s")
        for variant in plans:
            if base:
                res[variant]["speedup_vs_local_1"] = base / res[variant]["s"]
            res[variant]["over_io_floor"] = res[variant]["s"] / res["io_floor_s"]
        res["load_average_end"] = os.getloadavg()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)


if __name__ == "__main__":
    main()
