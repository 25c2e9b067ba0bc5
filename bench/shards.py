"""Sharded datasets (issue 19): plan cost when a new version changes few shards, and with --jobs.

Two versions of a DVC-tracked directory of Parquet shards in a real git + DVC repo:

* ``--change one``: v2 changes records in ONE shard (1% of that shard's rows deleted, updated and
  added): the "new version rewrites one file" case. The cold plan has v1's shard tables cached
  (v1 is deployed: its apply hashed them) and must decode only v2's changed shard.
* ``--change spread``: v2 changes 1% of the records, spread over every shard: every shard's md5
  changes, so a cold plan decodes all of v2 (that is where ``--jobs`` matters).

Measured, each as a fresh ``vectorops`` process (wall time and its own peak RSS, children included):

* the I/O floor: pyarrow reading every column of every shard of both versions, nothing else;
* ``budget``: the CPU a cold plan cannot avoid for v2's new shards, measured on 10 of them in one
  thread and scaled: md5 (each file verified against its pin), decoding, the checks on the
  records, hashing. Half of it is the least wall time two cores can take for them;
* ``apply v1`` (fills LanceDB, hashes v1's shards);
* cold plan of v2 (v1's shard tables cached, v2's new shards not);
* warm plan of v2 (everything cached);
* ``agent``: the plans ``vectorops reconcile`` makes, in a process that stays up
  (``agent.engine_calls.plan_one``, one destination session a cycle), as it lives through a
  re-pin: a cycle at v1 (it pays the imports a fresh ``vectorops plan`` pays), then the manifest
  pins v2 and the next cycle is the agent's cold plan (v1 seen, v2's new shards not), the cycles
  after it its warm plan. Its cache starts as the cold plan's does (v1's shards only).

    nice -n 10 python bench/shards.py --records 1000000 --dim 768 --shards 100 --change one
    nice -n 10 python bench/shards.py --records 10000000 --dim 128 --shards 100 --change spread --jobs 2

A long run can be split (``--work`` keeps the repo, v1's shard caches and the LanceDB table; each
run adds its figures to WORK/results.json):

    python bench/shards.py --records 10000000 --dim 128 --change spread --work /work/data/shards-10m-128 --steps build
    python bench/shards.py --records 10000000 --dim 128 --change spread --work /work/data/shards-10m-128 --jobs 2 --steps floor,apply
    python bench/shards.py --records 10000000 --dim 128 --change spread --work /work/data/shards-10m-128 --jobs 2 --steps cold,warm

``WORK/repo`` is then a real git + DVC repo (tags v1, v2; ``data/docs`` a DVC-tracked directory of
100 Parquet shards, DVC cache by hardlink) that other benches can read as it is.
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

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_repo import ROOT, _group, _table, warm  # noqa: E402
from measured import base_env, run_measured, vectorops_cmd  # noqa: E402


def write_shard(path: Path, cols: dict[str, Any], row_group: int) -> None:
    if path.exists():
        path.unlink()  # with DVC's hardlink cache the old file IS the cached object
    pq.write_table(_table(cols, "fixed_size_list"), path, row_group_size=row_group, compression=None)


def shard_rows(n: int, shards: int, s: int) -> tuple[int, int]:
    per = -(-n // shards)
    return s * per, min(n, (s + 1) * per)


def changed(cols: dict[str, Any], start: int, seed: int, dim: int) -> dict[str, Any]:
    """1% of a shard's rows deleted, 1% updated (new vector), 1% added."""
    n = len(cols["id"])
    k = max(1, n // 100)
    rng = np.random.default_rng([seed, start])
    picks = rng.permutation(n)
    upd, gone = picks[:k], picks[k : 2 * k]
    cols["vectors"][upd] = rng.standard_normal((k, dim), dtype=np.float32)
    keep = np.ones(n, bool)
    keep[gone] = False
    cols = {key: v[keep] for key, v in cols.items()}
    extra = _group(10**9 + start, 10**9 + start + k, dim, seed + 2)
    return {key: np.concatenate([cols[key], extra[key]]) for key in cols}


def build(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tests.fixtures.repo import BASE_EPOCH, DatasetRepo, _dvc, run_git

    repo = DatasetRepo.create(root, path="data/docs")
    with _dvc(repo.root) as dvc, dvc.config.edit() as cfg:
        cfg["cache"]["type"] = "hardlink"
    run_git(repo.root, "commit", "-q", "-am", "dvc: hardlink cache", when=BASE_EPOCH + 60)
    folder = repo.root / "data" / "docs"
    folder.mkdir(parents=True)
    for version in (1, 2):
        for s in range(args.shards):
            if version == 2 and args.change == "one" and s != args.shards // 2:
                continue  # unchanged shards stay as they are (same bytes, same md5)
            start, stop = shard_rows(args.records, args.shards, s)
            cols = _group(start, stop, args.dim, 1)
            if version == 2:
                cols = changed(cols, start, 11, args.dim)
            write_shard(folder / f"part-{s:04d}.parquet", cols, args.row_group)
        with _dvc(repo.root) as dvc:
            dvc.add(str(folder))
        run_git(repo.root, "add", "-A")
        run_git(repo.root, "commit", "-q", "-m", f"v{version}", when=BASE_EPOCH + 3600 * version)
        run_git(repo.root, "tag", f"v{version}")
    return {"root": str(repo.root)}


def objects(root: Path, tag: str) -> list[Path]:
    """The DVC cache objects of a version's shards (the very files the engine reads)."""
    import yaml

    from tests.fixtures.repo import run_git

    doc = yaml.safe_load(run_git(root, "show", f"{tag}:data/docs.dvc"))
    listing = doc["outs"][0]["md5"]
    cache = root / ".dvc" / "cache" / "files" / "md5"
    entries = json.loads((cache / listing[:2] / listing[2:]).read_text())
    return [cache / e["md5"][:2] / e["md5"][2:] for e in entries]


def io_floor(files: list[Path]) -> tuple[float, float]:
    """(wall, CPU) seconds of pyarrow reading every column of ``files``: CPU is steadier on a shared machine."""
    warm(*files)
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        for _ in pq.ParquetFile(f, memory_map=True).iter_batches(batch_size=65_536, use_threads=True):
            pass
    return time.perf_counter() - t0, time.process_time() - c0


def cpu_budget(files: list[Path], dim: int, sample: int = 10) -> dict[str, float]:
    """CPU seconds a cold plan cannot avoid for ``files`` (the shards it decodes), per part, measured
    on ``sample`` of them in this process, one thread, and scaled to all: the md5 that verifies each
    file against its pin, pyarrow decoding it, the checks on its records, and hashing them."""
    import hashlib

    from reconciler.dataset import decode
    from reconciler.engine.hashing import hash_batch, hash_strings

    picked = files[:: max(1, len(files) // sample)][:sample]
    warm(*picked)
    # one batch through every stage first, not counted: pyarrow's and numpy's one-time set-up
    # (~0.15 CPU-s, kernels and tables built on first use) would otherwise be scaled with the sample
    first = next(pq.ParquetFile(picked[0], memory_map=True).iter_batches(batch_size=16_384, use_threads=False))
    first_layout = decode.Layout(str(picked[0]), "id", "vector", tuple(n for n in first.schema.names if n not in ("id", "vector")), dim)
    first_records = decode.to_records(first, first_layout, lambda rows: "")
    hash_batch(first_records)
    hash_strings(first_records.ids)
    spent = {"md5": 0.0, "decode": 0.0, "checks": 0.0, "hash": 0.0}
    for f in picked:
        c0 = time.process_time()
        md5 = hashlib.md5(usedforsecurity=False)
        with open(f, "rb", buffering=0) as fh:
            while chunk := fh.read(8 << 20):
                md5.update(chunk)
        c1 = time.process_time()
        batches = list(pq.ParquetFile(f, memory_map=True).iter_batches(batch_size=16_384, use_threads=False))
        c2 = time.process_time()
        layout = decode.Layout(str(f), "id", "vector", tuple(n for n in batches[0].schema.names if n not in ("id", "vector")), dim)
        records = [decode.to_records(b, layout, lambda rows: "") for b in batches]
        c3 = time.process_time()
        for r in records:
            hash_batch(r)
            hash_strings(r.ids)
        c4 = time.process_time()
        for part, took in zip(spent, (c1 - c0, c2 - c1, c3 - c2, c4 - c3), strict=True):
            spent[part] += took
    scale = len(files) / len(picked)
    out = {part: took * scale for part, took in spent.items()}
    out["total"] = sum(out.values())
    return out


def manifest(path: Path, repo: Path, dim: int, version: str, db: Path) -> None:
    path.write_text(f"""version: 1
datasets:
  docs:
    path: data/docs
    repo: {repo}
    embedding: {{model: bench-model, dimension: {dim}, metric: cosine}}
environments:
  staging:
    dataset: docs
    version: {version}
    destination: {{type: lancedb, uri: {db}, table: docs}}
""")


STEPS = ("build", "floor", "budget", "apply", "cold", "warm", "agent")

#: ``agent`` step: a cycle of the reconcile agent's plan at the first manifest (v1), then cycles at the
#: second (v2), in one process; prints each cycle's wall and CPU
AGENT_CYCLES = """
import json, sys, time
from pathlib import Path
from reconciler.agent import engine_calls

def cycle(path):
    manifest = engine_calls.load(path)
    t0, c0 = time.perf_counter(), time.process_time()
    session = engine_calls.open_session(manifest)
    try:
        env_plan = engine_calls.plan_one(manifest, "staging", refresh=None, session=session)
    finally:
        session.close()
    return {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "changes": env_plan.changes.to_json()}

before, after = Path(sys.argv[1]), Path(sys.argv[2])
cycles = [cycle(before)] + [cycle(after) for _ in range(int(sys.argv[3]))]
print(json.dumps(cycles))
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--shards", type=int, default=100)
    p.add_argument("--change", choices=("one", "spread"), default="one")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--row-group", type=int, default=16_384)
    p.add_argument("--work", type=Path, default=None, help="keep everything here (default: a temp folder, removed)")
    p.add_argument("--steps", default=",".join(STEPS),
                   help=f"which of {','.join(STEPS)} to run (default all); with --work, later runs reuse what earlier ones left "
                   "(the repo, v1's caches, the LanceDB table) and add their figures to WORK/results.json")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if unknown := set(steps) - set(STEPS):
        raise SystemExit(f"--steps: unknown {sorted(unknown)}; choose from {','.join(STEPS)}")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    sys.path.insert(0, str(ROOT))
    work = args.work or Path(tempfile.mkdtemp(prefix="vectorops-shards-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "results.json"
    res: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    res.update({"records": args.records, "dim": args.dim, "shards": args.shards, "change": args.change, "jobs": args.jobs})
    ws = work / "ws"
    m, db = ws / "vectorops.yaml", ws / "db"
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    cache_v1, cache = work / "cache-v1", work / "cache-v2"

    def vo(cache: Path, *a: str) -> Any:
        return run_measured([*vectorops_cmd(), "-m", str(m), "--no-color", *a], base_env(cache), ws)

    def done(step: str, **figures: Any) -> None:
        res[step] = {**figures, "load_average_start": start, "load_average_end": os.getloadavg()}
        saved.write_text(json.dumps(res, indent=2, default=str))

    try:
        root = work / "repo"
        if "build" in steps:
            start = os.getloadavg()
            for old in (root, root.with_name("repo-remote")):
                shutil.rmtree(old, ignore_errors=True)
            t0 = time.perf_counter()
            build(root, args)
            done("build", s=time.perf_counter() - t0)
        v1, v2 = objects(root, "v1"), objects(root, "v2")
        res["bytes_v1"] = sum(f.stat().st_size for f in v1)
        res["bytes_v2"] = sum(f.stat().st_size for f in v2)
        res["shards_changed"] = len(set(v2) - set(v1))
        ws.mkdir(exist_ok=True)
        if "floor" in steps:
            start = os.getloadavg()
            wall, cpu = io_floor(v1 + v2)
            done("io_floor", s=wall, cpu_s=cpu)
        if "budget" in steps:  # what decoding v2's new shards costs however it is done (see cpu_budget)
            start = os.getloadavg()
            budget = cpu_budget(sorted(set(v2) - set(v1)), args.dim)
            done("cpu_budget", **budget, over_floor_on_two_cores=budget["total"] / 2 / res["io_floor"]["s"] if "io_floor" in res else None)
        if "apply" in steps:
            start = os.getloadavg()
            shutil.rmtree(db, ignore_errors=True)
            shutil.rmtree(cache_v1, ignore_errors=True)
            manifest(m, root, args.dim, "v1", db)
            warm(*v1)
            run = vo(cache_v1, "apply", "--auto-approve", *jobs)
            done("apply_v1", s=run.seconds, rss_mb=run.max_rss_mb, cpu_s=run.cpu_seconds, cpu_all_s=run.cpu_all_seconds)
        if "cold" in steps:
            start = os.getloadavg()
            manifest(m, root, args.dim, "v2", db)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(cache_v1, cache)  # v1 seen before (its shards cached); v2's new shards not
            warm(*v1, *v2)
            run = vo(cache, "plan", "--json", *jobs)
            env = json.loads(run.stdout)["environments"][0]
            done("cold_plan", s=run.seconds, rss_mb=run.max_rss_mb, cpu_s=run.cpu_seconds, cpu_all_s=run.cpu_all_seconds,
                 shards=env["shards"], changes=env["changes"])
        if "warm" in steps:
            start = os.getloadavg()
            manifest(m, root, args.dim, "v2", db)
            warm(*v1, *v2)
            run = vo(cache, "plan", "--json", *jobs)
            done("warm_plan", s=run.seconds, rss_mb=run.max_rss_mb, cpu_s=run.cpu_seconds, cpu_all_s=run.cpu_all_seconds,
                 shards=json.loads(run.stdout)["environments"][0]["shards"]["decoded"])
        if "agent" in steps:
            start = os.getloadavg()
            agent_cache = work / "cache-agent"
            shutil.rmtree(agent_cache, ignore_errors=True)
            shutil.copytree(cache_v1, agent_cache)  # as the cold plan starts: v1's shards cached, v2's new ones not
            m1 = ws / "vectorops-v1.yaml"
            manifest(m1, root, args.dim, "v1", db)
            manifest(m, root, args.dim, "v2", db)
            warm(*v1, *v2)
            run = run_measured([sys.executable, "-c", AGENT_CYCLES, str(m1), str(m), "4"], base_env(agent_cache), ws)
            cycles = json.loads(run.stdout)
            warm_cycles = cycles[2:]
            done("agent_plan", first_cycle_s=cycles[0]["s"], first_cycle_cpu_s=cycles[0]["cpu_s"],
                 cold_s=cycles[1]["s"], cold_cpu_s=cycles[1]["cpu_s"],
                 s=min(c["s"] for c in warm_cycles), cpu_s=min(c["cpu_s"] for c in warm_cycles), cycles=cycles, rss_mb=run.max_rss_mb)
            shutil.rmtree(agent_cache, ignore_errors=True)
        floor = res.get("io_floor")
        if floor and "agent_plan" in res and "cold_s" in res["agent_plan"]:
            res["agent_cold_plan_over_floor"] = res["agent_plan"]["cold_s"] / floor["s"]
        for step in ("cold_plan", "warm_plan", "agent_plan"):
            if floor and step in res:
                res[f"{step}_over_floor"] = res[step]["s"] / floor["s"]
                res[f"{step}_over_floor_cpu"] = res[step]["cpu_s"] / floor["cpu_s"]
                if "cpu_all_s" in res[step]:  # with --jobs > 1 the workers' CPU too (cpu_s is the driver's)
                    res[f"{step}_over_floor_cpu_all"] = res[step]["cpu_all_s"] / floor["cpu_s"]
        saved.write_text(json.dumps(res, indent=2, default=str))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)


if __name__ == "__main__":
    main()
