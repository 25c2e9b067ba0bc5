"""Issue 9 benchmark: vectorops plan/apply/rollback at scale, side by side with the I/O floor.

Everything runs against real parts: a git + DVC repository (local-folder remote) holding two
versions of a Parquet dataset 1% apart (1% added, 1% updated, 1% deleted), real LanceDB, and the
real Pinecone SDK against the local Pinecone server from ``tests/pinecone_server``. Every
vectorops phase runs the CLI in a subprocess, so interpreter start and imports count as users
feel them; the child's peak RSS is read from ``os.wait4``. Plans are also timed in-process (a
child that imports first, then times ``build_plan``) to separate start-up from work.

    python bench/run.py --records 1000000 --dim 768 [--workdir DIR] [--keep]

See bench/README.md for what each figure means. Nothing here asserts timings: it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the dataset-repo helpers and the local Pinecone server live in tests/
    sys.path.insert(0, str(ROOT))

from dataset_repo import BenchRepo, build_repo, warm  # noqa: E402  (bench/ is the script's own folder)
from measured import ENV, TABLE, Run, Workspace, base_env, run_measured, vectorops_cmd, write_manifest  # noqa: E402

PC_ENV = "prod"
PC_INDEX = "bench-prod"
PC_KEY_ENV = "VECTOROPS_BENCH_PINECONE_KEY"
PC_KEY = "pc-bench-local-key"
# Pinecone documents "2MB" per upsert request and computes its own batch-size table with 2,000,000
# bytes; the floor is taken at that reading (the local server lets up to 2 MiB through)
PINECONE_MAX_REQUEST = 2_000_000


def pinecone_env(version: str) -> str:
    return f"""{PC_ENV}:
    dataset: docs
    version: {version}
    destination:
      type: pinecone
      index: {PC_INDEX}
      api_key_env: {PC_KEY_ENV}"""


def timed_inner_plan(ws: Workspace, cache: Path) -> dict[str, float]:
    """Same plan, timed inside a child after its imports: the engine's own time."""
    run = run_measured([sys.executable, __file__, "--inner-plan", str(ws.manifest), ENV], base_env(cache), ws.folder)
    return json.loads(run.stdout.strip().splitlines()[-1])


def inner_plan(manifest: str, env_name: str) -> None:
    t0 = time.perf_counter()
    from reconciler.engine.plan import build_plan
    from reconciler.manifest import load_manifest

    t1 = time.perf_counter()
    m = load_manifest(manifest)
    plan = build_plan(m, [env_name])
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "plan_s": t2 - t1, "changes": plan.environments[0].changes.to_json()}))


# -- phases -------------------------------------------------------------------------------------------


def io_floor(repo: BenchRepo, batch_size: int = 65_536) -> float:
    """pyarrow reading every column of both versions (bounded batches) and nothing else."""
    warm(repo.cached("v1"), repo.cached("v2"))
    t0 = time.perf_counter()
    for tag in ("v1", "v2"):
        pf = pq.ParquetFile(repo.cached(tag), memory_map=True)
        for _ in pf.iter_batches(batch_size=batch_size, use_threads=True):
            pass
    return time.perf_counter() - t0


NAIVE = r"""
import sys, time
t0 = time.perf_counter()
import lancedb, pyarrow as pa, pyarrow.parquet as pq
t1 = time.perf_counter()
path, uri, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
pf = pq.ParquetFile(path, memory_map=True)
def batches():
    for b in pf.iter_batches(batch_size=65536):
        v = b.column("vector")
        if pa.types.is_fixed_size_binary(v.type):  # LanceDB wants FixedSizeList<float32>
            flat = pa.Array.from_buffers(pa.float32(), len(v) * dim, [None, v.buffers()[1]], offset=v.offset * dim)
            b = b.set_column(b.schema.get_field_index("vector"), "vector", pa.FixedSizeListArray.from_arrays(flat, dim))
        yield b
import itertools
it = batches()
first = next(it)
schema = first.schema
def all_batches():
    yield first
    yield from it
db = lancedb.connect(uri)
tbl = db.create_table("naive", data=pa.RecordBatchReader.from_batches(schema, all_batches()), mode="overwrite")
t2 = time.perf_counter()
print(tbl.count_rows(), t1 - t0, t2 - t1)
"""


def naive_reupload(repo: BenchRepo, folder: Path, dim: int) -> tuple[Run, float, int]:
    uri = folder / "naive-lancedb"
    run = run_measured([sys.executable, "-c", NAIVE, str(repo.cached("v2")), str(uri), str(dim)], base_env(folder / "unused"), folder)
    rows, _imp, work = run.stdout.split()
    shutil.rmtree(uri, ignore_errors=True)
    return run, float(work), int(rows)


def lancedb_truth(ws: Workspace, n: int) -> dict[str, int]:
    """What the table really holds: rows, and how many of v2's added ids (``doc-{n}`` up) are there."""
    import lancedb

    table = lancedb.connect(str(ws.db)).open_table(TABLE)
    return {"rows": table.count_rows(), "added_ids": table.count_rows(f"id >= 'doc-{n:09d}'")}


def pinecone_phase(args: argparse.Namespace, work: Path, results: dict[str, Any], key: str, dim: int) -> None:
    """Incremental apply into Pinecone: write requests sent vs the minimum.

    v1 is loaded into the local server's store directly and adopted with `vectorops import`
    (pushing N records through HTTP first would measure the test server, not vectorops).
    """
    from tests.pinecone_server import PineconeServer
    from tests.pinecone_server.fixtures import reset_sdk_host_state

    n = args.pinecone_records
    repo = build_repo(work / "pc-repo", n, dim, args)
    ws = Workspace(work / "pc-ws", repo, dim)
    reset_sdk_host_state()
    srv = PineconeServer(api_key=PC_KEY).start()
    try:
        state = srv.create_index(PC_INDEX, dim, "cosine")
        space = state.ns("__default__")
        for batch in pq.ParquetFile(repo.cached("v1")).iter_batches(batch_size=65_536):
            ids = batch.column("id").to_pylist()
            vec = batch.column("vector")
            if pa.types.is_fixed_size_binary(vec.type):
                mat = np.frombuffer(vec.buffers()[1], np.float32)[vec.offset * dim :][: len(vec) * dim]
            else:
                mat = vec.flatten().to_numpy()
            mat = mat.reshape(len(ids), dim)
            meta = batch.drop_columns(["id", "vector"]).to_pylist()
            for i, rid in enumerate(ids):
                space.records[rid] = (mat[i].copy(), meta[i])
        writes_by_ns: dict[str, int] = {}
        original_commit = state.commit

        def counting_commit(name: str, op: Any) -> int:
            writes_by_ns[name] = writes_by_ns.get(name, 0) + 1
            return original_commit(name, op)

        state.commit = counting_commit  # type: ignore[method-assign]
        cache = work / "pc-cache"
        extra = {"PINECONE_CONTROLLER_HOST": srv.url, PC_KEY_ENV: PC_KEY}

        def vo(*a: str) -> Run:
            return ws.vo(cache, *a, env_extra=extra)

        write_manifest(ws.manifest, repo.root, dim, "v1", pinecone_env("v1"))
        imported = vo("import", PC_ENV, "--version", "v1", "--auto-approve")
        write_manifest(ws.manifest, repo.root, dim, "v2", pinecone_env("v2"))
        srv.reset_counts()
        planned = vo("plan", "--json")
        plan = json.loads(planned.stdout)["environments"][0]
        plan_lists = srv.list_prefixes
        before = srv.request_counts
        writes_by_ns.clear()
        run = vo("apply", "--auto-approve")
        after = srv.request_counts
    finally:
        srv.stop()
    ops = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    ops = {k: v for k, v in ops.items() if v}
    ch = plan["changes"]
    upserts, deletes = ch["add"] + ch["update"], ch["delete"]
    data_writes = writes_by_ns.get("__default__", 0)
    # the minimum, and the one Pinecone's 2 MB request cap imposes at this dimension
    minimum = math.ceil(upserts / 1000) + math.ceil(deletes / 1000)
    per_record = _json_bytes_per_record(repo, dim, shortest=True)
    per_request = max(1, min(1000, PINECONE_MAX_REQUEST // per_record))
    size_minimum = math.ceil(upserts / per_request) + math.ceil(deletes / 1000)
    results[key] = {
        "records": repo.rows["v2"],
        "dim": dim,
        "changes": ch,
        "apply_s": run.seconds,
        "import_s": imported.seconds,
        "plan_s": planned.seconds,
        "plan_list_requests": sum(n for p, n in plan_lists.items() if not p.startswith("__default__/")),
        "plan_list_prefixes": sum(1 for p in plan_lists if not p.startswith("__default__/")),
        "requests_by_operation": ops,
        "write_requests_total": sum(ops.get(k, 0) for k in ("upsert", "delete", "update")),
        "write_requests_data_namespace": data_writes,
        "write_requests_state_namespace": sum(v for k, v in writes_by_ns.items() if k != "__default__"),
        "minimum_issue": minimum,
        "minimum_2mb": size_minimum,
        "json_bytes_per_record": per_record,
        "json_bytes_per_record_float64_repr": _json_bytes_per_record(repo, dim, shortest=False),
        "naive_requests_issue": math.ceil(repo.rows["v2"] / 1000),
        "naive_requests_2mb": math.ceil(repo.rows["v2"] / per_request),
    }


def listing_phase(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Listing every id of a Pinecone namespace at a real round-trip time (``--pinecone-latency-ms``
    on every request): pages one after another, as any listing must without a hint, against the
    listing split by the expected ids' prefixes that plans do. The local server answers in about a
    millisecond, so without the latency the split would measure this machine's two cores."""
    from reconciler.providers import pinecone as pc
    from tests.pinecone_server import Faults, PineconeServer
    from tests.pinecone_server.fixtures import reset_sdk_host_state

    n, latency = args.listing_ids, args.pinecone_latency_ms / 1000
    reset_sdk_host_state()
    with PineconeServer(api_key=PC_KEY) as srv, mock.patch.dict(os.environ, {"PINECONE_CONTROLLER_HOST": srv.url, PC_KEY_ENV: PC_KEY}):
        space = srv.create_index("bench-listing", 4, "cosine").ns("__default__")
        ids = [f"doc-{i:09d}" for i in range(n)]
        one = np.ones(4, np.float32)
        for rid in ids:
            space.records[rid] = (one, {})
        dest = pc.PineconeDestination(index="bench-listing", host=None, api_key_env=PC_KEY_ENV)
        dest.describe()  # resolve the host before the clock starts
        srv.faults = Faults(latency=latency)
        figures: dict[str, Any] = {"ids": n, "latency_ms": args.pinecone_latency_ms, "in_flight": pc.LIST_IN_FLIGHT}
        for name, hint in (("one_listing", None), ("split_listing", pa.array(ids, pa.string()))):
            srv.reset_counts()
            t0 = time.perf_counter()
            got = dest.all_ids(hint)
            figures[f"{name}_s"] = time.perf_counter() - t0
            figures[f"{name}_requests"] = srv.request_counts.get("list", 0) + srv.request_counts.get("describe_index_stats", 0)
            figures[f"{name}_prefixes"] = len(srv.list_prefixes)
            if len(got) != n:
                raise SystemExit(f"bench: the {name.replace('_', ' ')} found {len(got)} of {n} ids")
        dest.close()
    results["pinecone_listing"] = figures


def _json_bytes_per_record(repo: BenchRepo, dim: int, shortest: bool) -> int:
    """Mean compact-JSON size of one upsert item (id, values, metadata), from v2's first rows.

    ``shortest``: each float written as the shortest decimal that reads back as the same float32
    (numpy's ``str`` of a float32), the most compact exact encoding; else as Python writes the
    float64 holding the float32 value (``0.10000000149011612``), what a plain ``tolist()`` sends.
    """
    batch = next(pq.ParquetFile(repo.cached("v2")).iter_batches(batch_size=200))
    vec = batch.column("vector")
    if pa.types.is_fixed_size_binary(vec.type):
        mat = np.frombuffer(vec.buffers()[1], np.float32)[vec.offset * dim :][: len(vec) * dim].reshape(-1, dim)
    else:
        mat = vec.flatten().to_numpy().reshape(-1, dim)
    meta = batch.drop_columns(["id", "vector"]).to_pylist()
    ids = batch.column("id").to_pylist()
    sizes = []
    for i, v, m in zip(ids, mat, meta, strict=False):
        values = "[" + ",".join(str(x) for x in v) + "]" if shortest else json.dumps([float(x) for x in v], separators=(",", ":"))
        rest = json.dumps({"id": i, "metadata": m}, separators=(",", ":"))
        sizes.append(len(rest) + len(',"values":') + len(values))
    return int(np.mean(sizes)) + 1


# -- the whole run -------------------------------------------------------------------------------------


def lancedb_phases(n: int, args: argparse.Namespace, work: Path, full: bool) -> dict[str, Any]:
    """Build the repo at ``n`` and measure; ``full`` False runs only what the RSS-growth figure needs."""
    r: dict[str, Any] = {"records": n}
    t0 = time.perf_counter()
    repo = build_repo(work / "repo", n, args.dim, args)
    r["build_s"] = time.perf_counter() - t0
    r["rows"] = dict(repo.rows)
    r["file_gb"] = {t: repo.cached(t).stat().st_size / 1e9 for t in ("v1", "v2")}
    r["raw_vector_gb"] = repo.rows["v2"] * args.dim * 4 / 1e9
    ws = Workspace(work / "ws", repo, args.dim)
    cache_a, cache_b, cache_c = work / "cache-first-apply", work / "cache-plan", work / "cache-inner"

    both = (repo.cached("v1"), repo.cached("v2"))
    ws.pin("v1")
    warm(repo.cached("v1"))
    run = ws.vo(cache_a, "apply", "--auto-approve")
    r["first_apply_v1"] = run.__dict__ | {"stdout": None}
    ws.pin("v2")
    if full:  # the floor right before the cold plan: same page-cache conditions
        r["io_floor_s"] = io_floor(repo)
    warm(*both)
    run = ws.vo(cache_b, "plan", "--json")
    r["cold_plan"] = run.__dict__ | {"stdout": None}
    r["plan_changes"] = json.loads(run.stdout)["environments"][0]["changes"]
    if not full:
        return r
    r["io_floor_again_s"] = io_floor(repo)
    r["warm_plan"] = ws.vo(cache_b, "plan", "--json").__dict__ | {"stdout": None}
    warm(*both)
    r["cold_plan_inproc"] = timed_inner_plan(ws, cache_c)
    r["warm_plan_inproc"] = timed_inner_plan(ws, cache_c)
    r["help"] = run_measured([*vectorops_cmd(), "--help"], base_env(cache_b), ws.folder).__dict__ | {"stdout": None}
    r["incremental_apply"] = ws.vo(cache_b, "apply", "--auto-approve").__dict__ | {"stdout": None}
    r["after_apply"] = lancedb_truth(ws, n)
    warm(repo.cached("v2"))
    run, work_s, rows = naive_reupload(repo, ws.folder, args.dim)
    r["naive_reupload"] = run.__dict__ | {"stdout": None, "inproc_s": work_s, "rows": rows}
    r["rollback"] = ws.vo(cache_b, "rollback", ENV, "--auto-approve").__dict__ | {"stdout": None}
    r["after_rollback"] = lancedb_truth(ws, n)
    # Terraform's two steps: `plan -o FILE` (reviewed), then `apply FILE`, which does not plan again
    planfile = ws.folder / "v2.plan"
    ws.vo(cache_b, "plan", "-o", str(planfile))
    r["saved_plan_apply"] = ws.vo(cache_b, "apply", str(planfile)).__dict__ | {"stdout": None}
    r["after_saved_apply"] = lancedb_truth(ws, n)
    return r


def fmt_ratio(value: float, target: float, lower_is_better: bool = True) -> str:
    holds = value <= target if lower_is_better else value >= target
    return f"{value:6.2f}  (target {'<=' if lower_is_better else '>='} {target:g})  {'HOLDS' if holds else 'DOES NOT HOLD'}"


def report(res: dict[str, Any], small: dict[str, Any] | None) -> str:
    L: list[str] = []
    r = res["lancedb"]
    floor = min(r["io_floor_s"], r["io_floor_again_s"])  # the better of two reads: the stricter baseline
    L.append(f"records v1={r['rows']['v1']:,} v2={r['rows']['v2']:,}  dim={res['dim']}  vector={res['vector_type']}  "
             f"compression={res['compression']}  row group={res['row_group']:,}")
    L.append(f"files: v1 {r['file_gb']['v1']:.2f} GB, v2 {r['file_gb']['v2']:.2f} GB; raw vectors of one version {r['raw_vector_gb']:.2f} GB; "
             f"changes v1->v2 {r['plan_changes']}")
    L.append(f"dataset generation + dvc add/push + git: {r['build_s']:.1f} s")
    L.append("")
    L.append(f"{'phase':44s} {'wall s':>8s} {'peak RSS MB':>12s}  note")

    def row(name: str, d: dict[str, Any] | None, note: str = "") -> None:
        if d is None:
            L.append(f"{name:44s} {'-':>8s} {'-':>12s}  {note}")
        else:
            L.append(f"{name:44s} {d['seconds']:8.2f} {d['max_rss_mb']:12.0f}  {note}")

    L.append(f"{'I/O floor (pyarrow reads v1+v2, all columns)':44s} {floor:8.2f} {'':>12s}  best of 2 in-process reads (before and after the cold plan) ({r['io_floor_s']:.2f}, {r['io_floor_again_s']:.2f})")
    row("vectorops --help", r["help"])
    row("first full apply v1 (cold cache)", r["first_apply_v1"])
    row("cold plan v1->v2 (empty cache)", r["cold_plan"], f"in-process {r['cold_plan_inproc']['plan_s']:.2f} s + imports {r['cold_plan_inproc']['import_s']:.2f} s")
    row("warm plan v1->v2 (cache filled)", r["warm_plan"], f"in-process {r['warm_plan_inproc']['plan_s']:.2f} s + imports {r['warm_plan_inproc']['import_s']:.2f} s")
    row("incremental apply v1->v2 (warm cache)", r["incremental_apply"], f"after: {r['after_apply']['rows']:,} rows, {r['after_apply']['added_ids']:,} of v2's added ids")
    row("naive full re-upload of v2 (create_table)", r["naive_reupload"], f"in-process {r['naive_reupload']['inproc_s']:.2f} s")
    row("rollback v2->v1", r["rollback"], f"after: {r['after_rollback']['rows']:,} rows, {r['after_rollback']['added_ids']:,} of v2's added ids")
    row("apply of a saved plan v1->v2 (apply FILE)", r["saved_plan_apply"],
        f"after: {r['after_saved_apply']['rows']:,} rows, {r['after_saved_apply']['added_ids']:,} of v2's added ids")
    if small:
        row(f"cold plan at N/10 ({small['records']:,})", small["cold_plan"])
        row("first full apply at N/10", small["first_apply_v1"])
    L.append("")
    L.append("targets (issue 9), ratios from this run:")
    L.append(f"  cold plan / I/O floor                 {fmt_ratio(r['cold_plan']['seconds'] / floor, 1.5)}")
    L.append(f"    (in-process, no start-up)           {fmt_ratio(r['cold_plan_inproc']['plan_s'] / floor, 1.5)}")
    L.append(f"  warm plan / I/O floor                 {fmt_ratio(r['warm_plan']['seconds'] / floor, 0.25)}")
    L.append(f"    (in-process, no start-up)           {fmt_ratio(r['warm_plan_inproc']['plan_s'] / floor, 0.25)}")
    naive = r["naive_reupload"]["seconds"]
    L.append(f"  incremental apply / naive re-upload   {fmt_ratio(r['incremental_apply']['seconds'] / naive, 0.4)}  stretch 0.1: "
             f"{'holds' if r['incremental_apply']['seconds'] / naive <= 0.1 else 'does not hold'}")
    saved = r["saved_plan_apply"]["seconds"] / naive
    L.append(f"    (apply of a saved plan)             {fmt_ratio(saved, 0.4)}  stretch 0.1: {'holds' if saved <= 0.1 else 'does not hold'}")
    raw_mb = r["raw_vector_gb"] * 1000
    L.append(f"  plan peak RSS / raw vector bytes      {fmt_ratio(r['cold_plan']['max_rss_mb'] / raw_mb, 1.0)}  "
             f"({r['cold_plan']['max_rss_mb']:.0f} MB vs {raw_mb:.0f} MB)")
    if small:
        growth = r["cold_plan"]["max_rss_mb"] / small["cold_plan"]["max_rss_mb"]
        L.append(f"  plan peak RSS growth, N/10 -> N       {fmt_ratio(growth, 1.5)}  "
                 f"({small['cold_plan']['max_rss_mb']:.0f} MB -> {r['cold_plan']['max_rss_mb']:.0f} MB)")
    else:
        L.append("  plan peak RSS growth, N/10 -> N       not measured (--no-small)")
    L.append(f"  rollback (s, target < 10)             {fmt_ratio(r['rollback']['seconds'], 10.0)}")
    for key in ("pinecone", "pinecone_small_dim"):
        p = res.get(key)
        if not p:
            why = "--no-pinecone" if key == "pinecone" or not res.get("pinecone") else "same dimension as above, or --pinecone-small-dim 0"
            L.append(f"  {key:38s}not measured ({why})")
            continue
        L.append(f"  pinecone at {p['records']:,} records x {p['dim']}: changes {p['changes']}; apply {p['apply_s']:.2f} s")
        data_ratio = p["write_requests_data_namespace"] / max(1, p["minimum_issue"])
        L.append(f"    data writes / minimum (changes/1000)  {fmt_ratio(data_ratio, 1.05)}  "
                 f"({p['write_requests_data_namespace']} vs {p['minimum_issue']})")
        size_ratio = p["write_requests_data_namespace"] / max(1, p["minimum_2mb"])
        L.append(f"    data writes / minimum under 2 MB cap  {fmt_ratio(size_ratio, 1.05)}  ({p['write_requests_data_namespace']} vs "
                 f"{p['minimum_2mb']}: ~{p['json_bytes_per_record']:,} JSON bytes a record at the shortest exact float32 decimals; "
                 f"{p['json_bytes_per_record_float64_repr']:,} as float64 reprs)")
        L.append(f"    all writes incl. state / minimum      {fmt_ratio(p['write_requests_total'] / max(1, p['minimum_issue']), 1.05)}  "
                 f"({p['write_requests_total']} = {p['write_requests_data_namespace']} data + {p['write_requests_state_namespace']} state)")
        L.append(f"    all writes incl. state / 2 MB minimum {fmt_ratio(p['write_requests_total'] / max(1, p['minimum_2mb']), 1.05)}  "
                 f"({p['write_requests_total']} vs {p['minimum_2mb']})")
        L.append(f"    import {p['import_s']:.1f} s, plan {p['plan_s']:.1f} s: the plan listed the index in "
                 f"{p['plan_list_requests']:,} pages under {p['plan_list_prefixes']} prefixes")
        L.append(f"    all requests {p['requests_by_operation']}; a naive re-upload sends >= {p['naive_requests_issue']} "
                 f"({p['naive_requests_2mb']} under the 2 MB cap)")
    lst = res.get("pinecone_listing")
    if lst:
        L.append(f"  pinecone listing of {lst['ids']:,} ids at {lst['latency_ms']} ms a request: one listing "
                 f"{lst['one_listing_s']:.1f} s ({lst['one_listing_requests']:,} requests), split by expected prefixes "
                 f"{lst['split_listing_s']:.1f} s ({lst['split_listing_requests']:,} requests, {lst['in_flight']} in flight) "
                 f"= {lst['one_listing_s'] / max(lst['split_listing_s'], 1e-9):.1f} x faster")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--vector-type", choices=("fixed_size_list", "binary"), default="fixed_size_list")
    ap.add_argument("--row-group", type=int, default=65_536)
    ap.add_argument("--compression", default="snappy", help="Parquet codec (pyarrow's default: snappy; or none, zstd)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (repos, caches, LanceDB)")
    ap.add_argument("--no-push", action="store_true", help="skip `dvc push` (halves disk use)")
    ap.add_argument("--no-small", action="store_true", help="skip the N/10 run (plan RSS growth)")
    ap.add_argument("--no-pinecone", action="store_true")
    ap.add_argument("--pinecone-records", type=int, default=None, help="default: --records")
    ap.add_argument("--listing-ids", type=int, default=None, help="ids in the listing measurement (default: min(records, 100000))")
    ap.add_argument("--pinecone-latency-ms", type=float, default=20.0,
                    help="round trip added to each request of the listing measurement (0: skip it)")
    ap.add_argument("--pinecone-dim", type=int, default=None, help="default: --dim")
    ap.add_argument("--pinecone-small-dim", type=int, default=64,
                    help="a second Pinecone run at a dimension where 1000 records fit one 2 MB request (0: skip)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    ap.add_argument("--inner-plan", nargs=2, metavar=("MANIFEST", "ENV"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner_plan:
        inner_plan(*args.inner_plan)
        return
    args.pinecone_records = args.pinecone_records or args.records
    args.listing_ids = args.listing_ids or min(args.records, 100_000)
    args.pinecone_dim = args.pinecone_dim or args.dim
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="vectorops-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench: working in {work}", flush=True)
    res: dict[str, Any] = {
        "dim": args.dim, "vector_type": args.vector_type, "compression": args.compression, "row_group": args.row_group,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
    }
    try:
        small = None
        if not args.no_small:
            print(f"bench: N/10 = {args.records // 10:,} records", flush=True)
            small = lancedb_phases(max(100, args.records // 10), args, work / "small", full=False)
            shutil.rmtree(work / "small", ignore_errors=True)
            res["small"] = small
        print(f"bench: N = {args.records:,} records", flush=True)
        res["lancedb"] = lancedb_phases(args.records, args, work / "main", full=True)
        if not args.keep:
            shutil.rmtree(work / "main", ignore_errors=True)
        if not args.no_pinecone:
            print(f"bench: pinecone at {args.pinecone_records:,} records", flush=True)
            pinecone_phase(args, work / "pinecone", res, "pinecone", args.pinecone_dim)
            if args.pinecone_small_dim and args.pinecone_small_dim != args.pinecone_dim:
                print(f"bench: pinecone at dim {args.pinecone_small_dim} (request count, not size, binds)", flush=True)
                pinecone_phase(args, work / "pinecone-small", res, "pinecone_small_dim", args.pinecone_small_dim)
            if args.pinecone_latency_ms > 0:
                print(f"bench: listing {args.listing_ids:,} ids at {args.pinecone_latency_ms:g} ms a request", flush=True)
                listing_phase(args, res)
        print()
        print(report(res, small), flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(res, indent=2, default=str))
    finally:
        if not args.keep:  # only what this run made: a --workdir may hold other things
            for part in ("small", "main", "pinecone", "pinecone-small"):
                shutil.rmtree(work / part, ignore_errors=True)
            with contextlib.suppress(OSError):
                work.rmdir()


if __name__ == "__main__":
    main()
