"""Issue 22 benchmark: vectorops next to what teams use instead to keep a vector index in sync.

The same job for every tool: load dataset version v1 into an empty LanceDB table, then sync it to v2
(1% added, 1% updated, 1% deleted). The versions live in a real git + DVC repository (the very data
bench/run.py builds); every tool writes its own table in a temp folder, runs in its own child
process (wall time and peak RSS are the tool's, imports included), and what it leaves is compared
record by record with v2 read straight from Parquet. The peers:

- LangChain's indexing API: ``langchain_core.indexing.index()`` with a ``SQLRecordManager`` (SQLite)
  into LangChain's LanceDB vector store, ``cleanup="incremental"`` and ``cleanup="full"``;
- LlamaIndex's ``IngestionPipeline`` with a docstore and ``DocstoreStrategy.UPSERTS_AND_DELETE`` into
  its LanceDB vector store;
- dlt's LanceDB destination, ``write_disposition="merge"`` with the id as primary and merge key
  (orphan removal on, dlt's default there).

    python bench/peers.py --records 1000000 --dim 768 [--workdir DIR] [--keep | --keep-dataset]

Every step (one tool's load, or its sync) has a time budget and a memory cap (``--step-budget-min``,
``--memory-cap-gb``): a step over either is killed and reported as not finished, with how far it got
(bench/step_limits.py), so a 1M run ends in bounded time whatever the peers do.
bench/peer_tools.py drives each tool; bench/README.md says what each figure means.
Nothing here asserts: it measures and reports, a tool's wrong result included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import xxhash

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from dataset_repo import BenchRepo, Change, build_repo, open_repo, warm  # noqa: E402
from measured import TABLE, Run, Workspace, base_env, run_measured  # noqa: E402
from peer_tools import META_KEYS, QUOTING_FIX, TOOLS, vectors_of, write_lookup  # noqa: E402
from step_limits import StepLimits  # noqa: E402

# Every step's limits by default: with them, `--records 1000000 --dim 768` ends in about 75 min on this idle
# 2-core, 24 GB machine: ~5 min for the dataset, a few for vectorops and each comparison with v2, and at most
# the budget for each of the peers' steps that run (LangChain's two loads and syncs, dlt's load; LlamaIndex
# reaches the cap in minutes at 1M). A step that does not finish does not stop the run.
DEFAULT_STEP_BUDGET_MIN = 12.0
DEFAULT_MEMORY_CAP_GB = 12.0

# Why a tool may be worth running on a smaller repository too (`--at TOOL=N`, next to vectorops at N).
# LlamaIndex's pipeline takes a run's documents as one list and holds every node and its embedding
# (a Python float list) at once: ~25 GB for 1M x 768 on this 24 GB machine (the memory cap stops it).
SMALL_WHY = {
    "llamaindex": "its pipeline takes one run's documents as a list and holds every node and its embedding (Python floats) at once",
}

# What each tool can tell before it writes, and what it can undo: from each tool's API and docs,
# checked against what the runs below do (the exactness columns).
CAPABILITIES: dict[str, dict[str, str]] = {
    "vectorops": {
        "deletes": "yes (plan lists them)",
        "before writing": "a plan: every add/update/delete by id, counts, saved with `plan -o` and applied as reviewed",
        "rollback": "yes: `vectorops rollback ENV` back to the previous version",
    },
    "langchain-incremental": {
        "deletes": "no: only old versions of documents it sees again; records gone from the source stay",
        "before writing": "nothing: counts (added/updated/skipped/deleted) only after index() returns",
        "rollback": "no",
    },
    "langchain-full": {
        "deletes": "yes: after writing, every record not seen in this run (needs the whole source every run)",
        "before writing": "nothing: counts only after index() returns",
        "rollback": "no",
    },
    "llamaindex": {
        "deletes": "yes: docstore ids not in this run's documents, one delete call each",
        "before writing": "nothing: the nodes it wrote, after run() returns",
        "rollback": "no",
    },
    "dlt": {
        "deletes": "no: merge upserts; orphan removal only drops older rows of ids in the load; records gone from the source stay",
        "before writing": "rows per table after normalize (no adds/updates/deletes split)",
        "rollback": "no (a failed load package can be retried or dropped, not undone)",
    },
}


@dataclass
class ToolResult:
    tool: str
    records: int
    load: Run | None = None
    sync: Run | None = None
    load_report: dict[str, Any] = field(default_factory=dict)
    sync_report: dict[str, Any] = field(default_factory=dict)
    exactness: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    unfinished: list[str] = field(default_factory=list)  # "load: stopped at the 12-min budget after ...", one per step

    @property
    def exact(self) -> bool:
        e = self.exactness
        return (self.error is None and not self.unfinished and bool(e) and e["rows"] == e["expected"]
                and not any(e[k] for k in ("missing", "stale", "duplicated", "wrong_vector", "wrong_metadata")))

    @property
    def peak_rss_mb(self) -> float:
        return max((r.max_rss_mb for r in (self.load, self.sync) if r is not None), default=0.0)


# -- what v2 holds, and what a tool left ------------------------------------------------------------------


def vector_digests(vectors: np.ndarray) -> list[int]:
    return [xxhash.xxh3_64_intdigest(row.tobytes()) for row in np.ascontiguousarray(vectors, dtype=np.float32)]


def expected_records(parquet: Path) -> dict[str, tuple[int, tuple[Any, ...]]]:
    """v2 straight from Parquet: record id -> (xxh3 of the float32 vector bytes, metadata)."""
    out: dict[str, tuple[int, tuple[Any, ...]]] = {}
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=65_536, columns=["id", "vector", *META_KEYS]):
        meta = list(zip(*(batch.column(k).to_pylist() for k in META_KEYS), strict=False))
        out.update(zip(batch.column("id").to_pylist(), zip(vector_digests(vectors_of(batch)), meta, strict=False), strict=False))
    return out


def table_records(tool: str, db: Path) -> Iterator[tuple[list[str], np.ndarray, list[tuple[Any, ...]]]]:
    """Record id, vector and metadata of every row a tool left, read from its LanceDB table."""
    import lancedb

    conn = lancedb.connect(str(db))
    name = "bench___docs" if tool == "dlt" else TABLE
    table = conn.open_table(name)
    cols = {"vectorops": ["id", "vector", "metadata"], "dlt": ["id", "vector", *META_KEYS],
            "llamaindex": ["doc_id", "vector", "metadata"]}.get(tool, ["vector", "metadata"])
    for batch in table.search().select(cols).limit(None).to_batches(65_536):
        vectors = vectors_of(batch)
        if tool == "vectorops":
            ids = batch.column("id").to_pylist()
            meta = [tuple(json.loads(m).get(k) for k in META_KEYS) for m in batch.column("metadata").to_pylist()]
        elif tool == "dlt":
            ids = batch.column("id").to_pylist()
            meta = list(zip(*(batch.column(k).to_pylist() for k in META_KEYS), strict=False))
        else:
            md = batch.column("metadata")
            ids = (batch.column("doc_id") if tool == "llamaindex" else md.field("record_id")).to_pylist()
            meta = list(zip(*(md.field(k).to_pylist() for k in META_KEYS), strict=False))
        yield ids, vectors, meta


def compare(tool: str, db: Path, expected: dict[str, tuple[int, tuple[Any, ...]]]) -> dict[str, int]:
    """Rows, and how they differ from v2: missing ids, stale ids (not in v2), ids held twice, wrong vectors/metadata."""
    seen: set[str] = set()
    e = {"expected": len(expected), "rows": 0, "missing": 0, "stale": 0, "duplicated": 0, "wrong_vector": 0, "wrong_metadata": 0}
    for ids, vectors, meta in table_records(tool, db):
        e["rows"] += len(ids)
        for rid, digest, m in zip(ids, vector_digests(vectors), meta, strict=False):
            want = expected.get(rid)
            if want is None:
                e["stale"] += 1
                continue
            if rid in seen:
                e["duplicated"] += 1
            seen.add(rid)
            e["wrong_vector"] += digest != want[0]
            e["wrong_metadata"] += tuple(m) != want[1]
    e["missing"] = len(expected) - len(seen)
    return e


# -- running the tools ---------------------------------------------------------------------------------


def run_peer(tool: str, repo: BenchRepo, tag: str, lookups: Path, work: Path, dim: int, limits: StepLimits,
             label: str) -> tuple[Run, dict[str, Any]]:
    warm(repo.cached(tag))
    cmd = [sys.executable, str(BENCH / "peer_tools.py"), tool, str(repo.cached(tag)), str(lookups / tag), str(work), "--dim", str(dim)]
    run = run_measured(cmd, base_env(work / "unused-cache"), work, limits=limits, label=label)
    return run, {} if run.stopped else json.loads(run.stdout.strip().splitlines()[-1])


def why_stopped(run: Run, limits: StepLimits) -> str:
    """What stopped a step and how far it had got: records read by the tool (and embedded), the rate, a projection."""
    stop = run.stopped
    assert stop is not None
    if stop.reason == "budget":
        head = f"stopped at the {limits.budget_s / 60:g}-min budget"
    else:
        head = f"stopped at the {limits.memory_cap_mb / 1024:g} GB memory cap ({stop.peak_tree_mb:,.0f} MB in its process tree)"
    took = f"{stop.seconds / 60:.1f} min" if stop.seconds >= 60 else f"{stop.seconds:.1f} s"
    p = stop.progress
    if not p:
        return f"{head} after {took}, before it reported any progress"
    read, embedded, total = int(p["read"]), int(p["embedded"]), int(p["total"])
    if read >= total:
        return f"{head} after {took}, with all {total:,} records read by the tool and {embedded:,} embedded"
    text = f"{head} after {read:,} of {total:,} records read by the tool ({embedded:,} embedded) in {took}"
    if stop.reason == "budget" and read:
        rate = read / stop.seconds
        text += f" ({rate:,.0f} records/s), projected {total / rate / 60:.0f} min for {total:,} at that rate"
    return text


def measure(tool: str, repo: BenchRepo, lookups: Path, work: Path, dim: int, expected: dict[str, tuple[int, tuple[Any, ...]]],
            keep: bool, limits: StepLimits) -> ToolResult:
    res = ToolResult(tool, repo.rows["v2"])
    folder = work / tool
    print(f"peers: {tool} at {repo.rows['v1']:,} records", flush=True)
    try:
        if tool == "vectorops":
            ws = Workspace(folder, repo, dim)
            cache = folder / "cache"  # the load's hash cache, kept for the sync as on a user's machine
            ws.pin("v1")
            warm(repo.cached("v1"))
            res.load = ws.vo(cache, "apply", "--auto-approve", limits=limits, label=f"{tool} load")
            if not res.load.stopped:
                ws.pin("v2")
                warm(repo.cached("v2"))
                res.sync = ws.vo(cache, "apply", "--auto-approve", limits=limits, label=f"{tool} sync")
            db = ws.db
        else:
            folder.mkdir(parents=True, exist_ok=True)
            res.load, res.load_report = run_peer(tool, repo, "v1", lookups, folder, dim, limits, f"{tool} load")
            if not res.load.stopped:
                res.sync, res.sync_report = run_peer(tool, repo, "v2", lookups, folder, dim, limits, f"{tool} sync")
            db = folder / "lancedb"
        if res.load.stopped:
            res.unfinished = [f"load: {why_stopped(res.load, limits)}", "sync: not run (its load did not finish)"]
        elif res.sync is not None and res.sync.stopped:
            res.unfinished = [f"sync: {why_stopped(res.sync, limits)}"]
        else:  # what a step left when it was stopped half way is not compared: it did not finish
            res.exactness = compare(tool, db, expected)
    except SystemExit as exc:  # run_measured stops on a failed command: report it, measure the others
        res.error = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "failed"
    if not keep:  # a table per tool is ~3 GB at 1M x 768 (dlt's merges keep older versions too)
        shutil.rmtree(folder, ignore_errors=True)
    load, sync = (fmt_s(x, limits, res) for x in (res.load, res.sync))
    print(f"peers: {tool} at {res.records:,}: load {load}{' s' * load[0].isdigit()}, sync {sync}{' s' * sync[0].isdigit()}, "
          f"peak RSS {res.peak_rss_mb:.0f} MB, exact: {verdict_of(res)}", flush=True)  # as it goes: a run stopped early still tells
    return res


@dataclass
class Dataset:
    repo: BenchRepo
    lookups: Path
    expected: dict[str, tuple[int, tuple[Any, ...]]]
    changes: dict[str, int]


def make_dataset(folder: Path, n: int, dim: int, reuse: bool) -> Dataset:
    """The repo and the lookup side files; with ``reuse``, those an earlier run left in ``folder`` (``--keep``)."""
    args = argparse.Namespace(row_group=65_536, vector_type="fixed_size_list", compression="snappy", no_push=True)
    if reuse and (folder / "repo" / ".git").exists():
        repo = open_repo(folder / "repo")
        if repo.rows["v1"] != n:
            raise SystemExit(f"peers: --reuse: {folder / 'repo'} holds {repo.rows['v1']:,} records, not {n:,}")
    else:
        repo = build_repo(folder / "repo", n, dim, args)
    lookups = folder / "lookups"
    for tag in ("v1", "v2"):
        if not (reuse and (lookups / tag / "order.npy").exists()):
            write_lookup(repo.cached(tag), lookups / tag)
    change = Change.one_percent(n)  # what build_repo made v2 of v1
    changes = {"add": change.added, "update": len(change.updated), "delete": len(change.deleted)}
    return Dataset(repo, lookups, expected_records(repo.cached("v2")), changes)


# -- the report --------------------------------------------------------------------------------------------


def label(res: ToolResult, full_n: int) -> str:
    return res.tool if res.records == full_n else f"{res.tool}@{res.records}"


def fmt_s(run: Run | None, limits: StepLimits, res: ToolResult) -> str:
    """Seconds; for a step that did not finish, a value that says so: ``dnf>600`` (budget), ``dnf(mem>12GB)`` (cap)."""
    if run is None:
        return "skipped" if res.unfinished else "failed"
    if run.stopped is None:
        return f"{run.seconds:.2f}"
    if run.stopped.reason == "budget":
        return f"dnf>{limits.budget_s:g}"
    return f"dnf(mem>{limits.memory_cap_mb / 1024:g}GB)"


def verdict_of(r: ToolResult) -> str:
    """``yes``, or what is wrong with what the tool left (stale records are v1 records v2 deleted)."""
    e = r.exactness
    if r.exact:
        return "yes"
    if r.unfinished:
        return f"did not finish: {r.unfinished[0]}"
    if not e:
        return f"failed: {r.error}"
    names = {"stale": "stale records left", "missing": "records missing", "duplicated": "records twice",
             "wrong_vector": "wrong vectors", "wrong_metadata": "wrong metadata"}
    parts = [f"{e[k]:,} {names[k]}" for k in names if e[k]]
    if e["rows"] != e["expected"]:
        parts.append(f"{e['rows']:,} rows for {e['expected']:,} records")
    return "no: " + ", ".join(parts)


def report(results: list[ToolResult], datasets: dict[int, Dataset], args: argparse.Namespace, limits: dict[str, StepLimits]) -> str:
    full = datasets[args.records]
    L: list[str] = []
    L.append(f"records v1={full.repo.rows['v1']:,} v2={full.repo.rows['v2']:,}  dim={args.dim}  changes v1->v2 {full.changes}")
    default = StepLimits(args.default_budget_min * 60, args.default_cap_gb * 1024)
    other = "".join(f"; {t}: {x.budget_s / 60:g} min, {x.memory_cap_mb / 1024:g} GB" for t, x in limits.items() if x != default)
    L.append(f"limits: {default.budget_s / 60:g} min and {default.memory_cap_mb / 1024:g} GB a step{other} (a step: one tool's load, or its "
             "sync; memory: the RSS of its process tree, polled from /proc); a step over either is killed and reported as not finished "
             "(dnf) with how far it got; a tool whose load did not finish cannot sync")
    L.append("embeddings: every peer re-embeds by design; each is given an embedding function that returns the dataset's own "
             "float32 vector (a lookup by record id, no model), so these figures measure syncing, not embedding")
    L.append("documents: text = '<record id> <xxh3 of its vector>' (stands for the text the vector embeds: a changed vector is a "
             "changed document), metadata = title, source, chunk, lang; streamed from Parquet wherever the tool takes an iterable")
    L.append("peak RSS: ru_maxrss of each tool's child from os.wait4 (the largest process in its tree; imports included), "
             "the larger of load and sync (for a step that was stopped: the largest process-tree RSS polled before it was); "
             "every tool loads v1 and syncs v2 in its own child, each writing its own LanceDB table")
    L.append(f"lancedb quoting: {QUOTING_FIX}")
    for n, ds in datasets.items():
        if n == args.records:
            continue
        for tool in sorted({r.tool for r in results if r.records == n} - {"vectorops"}):
            why = SMALL_WHY.get(tool, f"set with --at {tool}={n} to bound this run's time on this machine (its rates are below)")
            if tool == "llamaindex":
                why += f": ~{args.records * args.dim * 32 / 1e9:.0f} GB of embeddings alone at {args.records:,} x {args.dim}"
            L.append(f"{tool} ran at {n:,} records (changes {ds.changes}), next to vectorops at the same size: {why}")
    L.append("")
    for r in results:
        exact = "yes" if r.exact else "no"
        L.append(f"tool={label(r, args.records)} load_s={fmt_s(r.load, limits[r.tool], r)} sync_s={fmt_s(r.sync, limits[r.tool], r)} "
                 f"peak_rss_mb={r.peak_rss_mb:.0f} exact={exact}")
        L.extend(f"  {label(r, args.records)} {line}" for line in r.unfinished)
    vo = {r.records: r for r in results if r.tool == "vectorops"}
    for r in results:
        base = vo.get(r.records)
        if r.tool == "vectorops" or base is None:
            continue
        if r.unfinished:
            L.append(f"ratio {label(r, args.records)} sync = n/a (did not finish: {r.unfinished[0]})")
        elif base.unfinished:
            L.append(f"ratio {label(r, args.records)} sync = n/a (vectorops did not finish: {base.unfinished[0]})")
        elif r.sync is None or base.sync is None:
            L.append(f"ratio {label(r, args.records)} sync = n/a (failed: {r.error or base.error})")
        else:
            caveat = "" if r.exact else f"  (not a success: {verdict_of(r)})"
            L.append(f"ratio {label(r, args.records)} sync = {base.sync.seconds / r.sync.seconds:.3f}{caveat}")
    L.append("")
    L.append("wall and CPU (user + system) seconds per step; on a shared machine CPU seconds move less than wall time:")
    L.append(f"  {'tool':28s} {'load wall':>10s} {'load cpu':>9s} {'sync wall':>10s} {'sync cpu':>9s} {'load RSS MB':>12s} {'sync RSS MB':>12s}"
             f" {'load rec/s':>11s} {'sync rec/s':>11s}")
    for r in results:
        done = [x if x is not None and x.stopped is None else None for x in (r.load, r.sync)]
        cells = [f"{x.seconds:10.2f} {x.cpu_seconds:9.2f}" if x else f"{'dnf':>10s} {'-':>9s}" if y else f"{'-':>10s} {'-':>9s}"
                 for x, y in zip(done, (r.load, r.sync), strict=True)]
        rss = [f"{x.max_rss_mb:12.0f}" if x else f"{'-':>12s}" for x in (r.load, r.sync)]
        rates = [f"{r.records / x.seconds:11,.0f}" if x else f"{'-':>11s}" for x in done]
        L.append(f"  {label(r, args.records):28s} {' '.join(cells)} {' '.join(rss)} {' '.join(rates)}")
    L.append("")
    L.append("exactness vs v2 read straight from Parquet (ids; vectors bit-exact float32; metadata):")
    L.append(f"  {'tool':28s} {'expected':>9s} {'rows':>9s} {'missing':>8s} {'stale':>8s} {'dup':>6s} {'bad vec':>8s} {'bad meta':>8s}")
    for r in results:
        e = r.exactness
        if not e:
            L.append(f"  {label(r, args.records):28s} not compared: {verdict_of(r)}")
            continue
        L.append(f"  {label(r, args.records):28s} {e['expected']:9,} {e['rows']:9,} {e['missing']:8,} {e['stale']:8,} {e['duplicated']:6,} "
                 f"{e['wrong_vector']:8,} {e['wrong_metadata']:8,}")
    L.append("")
    L.append("what each tool reported (load | sync):")
    for r in results:
        if r.tool != "vectorops":
            L.append(f"  {label(r, args.records):28s} {json.dumps(r.load_report)} | {json.dumps(r.sync_report)}")
    L.append("")
    L.append("| tool | exact after sync | deletes records gone from the source | knows before writing | can roll back |")
    L.append("|---|---|---|---|---|")
    for r in results:
        caps = CAPABILITIES[r.tool]
        L.append(f"| {label(r, args.records)} | {verdict_of(r)} | {caps['deletes']} | {caps['before writing']} | {caps['rollback']} |")
    return "\n".join(L)


def per_tool(ap: argparse.ArgumentParser, flag: str, values: list[str], default: float, tools: list[str]) -> tuple[float, dict[str, float]]:
    """``N`` (every tool) and ``TOOL=N`` (that tool) settings of a limit: the value for all, and one value per tool."""
    out = dict.fromkeys(tools, default)
    for item in sorted(values, key=lambda v: "=" in v):  # a tool's own setting wins over one for all, in any order
        tool, _, n = item.rpartition("=")
        try:
            value = float(n)
        except ValueError:
            value = 0.0
        if value <= 0 or (tool and tool not in out):
            ap.error(f"{flag} {item}: expected a number above 0, or TOOL=NUMBER with TOOL one of {', '.join(tools)}")
        if not tool:
            default = value
        for t in [tool] if tool else tools:
            out[t] = value
    return default, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--tools", default=",".join(("vectorops", *TOOLS)), help="comma-separated subset (default: all)")
    ap.add_argument("--at", action="append", default=[], metavar="TOOL=N",
                    help="run TOOL on a repository of N records (when below --records), next to vectorops at N; repeatable")
    ap.add_argument("--step-budget-min", action="append", default=[], metavar="MIN or TOOL=MIN",
                    help="time budget of each step (a tool's load, or its sync), in minutes; a step over it is killed and "
                         "reported as not finished with how far it got; TOOL=MIN sets one tool's (repeatable) "
                         f"(default: {DEFAULT_STEP_BUDGET_MIN:g}; with the defaults, --records 1000000 --dim 768 ends in about "
                         "75-80 min on an idle 2-core machine)")
    ap.add_argument("--memory-cap-gb", action="append", default=[], metavar="GB or TOOL=GB",
                    help="memory cap of each step: the resident memory of the step's process tree (summed from /proc), in GB; "
                         "a step over it is killed and reported as not finished; TOOL=GB sets one tool's (repeatable) "
                         f"(default: {DEFAULT_MEMORY_CAP_GB:g})")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (repos, LanceDB tables, tools' state)")
    ap.add_argument("--keep-dataset", action="store_true",
                    help="keep the full-size repo and lookup files in --workdir for a later --reuse, not the tools' tables")
    ap.add_argument("--reuse", action="store_true", help="use the repos and lookups an earlier --keep run left in --workdir")
    ap.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - {"vectorops", *TOOLS})
    if unknown:
        ap.error(f"unknown tools {unknown}; choose from vectorops, {', '.join(TOOLS)}")
    measured = list(dict.fromkeys(("vectorops", *tools)))  # vectorops runs next to any --at size
    args.default_budget_min, budgets = per_tool(ap, "--step-budget-min", args.step_budget_min, DEFAULT_STEP_BUDGET_MIN, measured)
    args.default_cap_gb, caps = per_tool(ap, "--memory-cap-gb", args.memory_cap_gb, DEFAULT_MEMORY_CAP_GB, measured)
    limits = {t: StepLimits(budgets[t] * 60, caps[t] * 1024) for t in measured}
    sizes: dict[str, int] = {}
    for item in args.at:
        tool, _, n = item.partition("=")
        if tool not in TOOLS or not n.isdigit():
            ap.error(f"--at {item}: expected TOOL=N with TOOL one of {', '.join(TOOLS)}")
        sizes[tool] = int(n)
    smaller = {t: sizes[t] for t in tools if t in sizes and sizes[t] < args.records}
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="vectorops-peers-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"peers: working in {work}", flush=True)
    made = [work / "full", *(work / f"at-{n}" for n in set(smaller.values()))]
    results: list[ToolResult] = []
    datasets: dict[int, Dataset] = {}
    try:
        t0 = time.perf_counter()
        datasets[args.records] = full = make_dataset(work / "full", args.records, args.dim, args.reuse)
        print(f"peers: dataset {args.records:,} x {args.dim} ready in {time.perf_counter() - t0:.1f} s", flush=True)
        for tool in tools:
            if tool in smaller:
                continue
            results.append(measure(tool, full.repo, full.lookups, work / "full" / "tools", args.dim, full.expected, args.keep, limits[tool]))
        for n in sorted(set(smaller.values()), reverse=True):
            datasets[n] = small = make_dataset(work / f"at-{n}", n, args.dim, args.reuse)
            for tool in ("vectorops", *(t for t in tools if smaller.get(t) == n)):
                results.append(measure(tool, small.repo, small.lookups, work / f"at-{n}" / "tools", args.dim, small.expected, args.keep,
                                       limits[tool]))
            if not args.keep:
                shutil.rmtree(work / f"at-{n}", ignore_errors=True)
        print()
        print(report(results, datasets, args, limits), flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps([r.__dict__ | {"exact": r.exact, "peak_rss_mb": r.peak_rss_mb} for r in results],
                                                indent=2, default=lambda o: {k: v for k, v in o.__dict__.items() if k != "stdout"}))
    finally:
        if args.keep_dataset and not args.keep:  # the repo and lookups stay for --reuse; the tools' tables go
            shutil.rmtree(work / "full" / "tools", ignore_errors=True)
            made.remove(work / "full")
        if not args.keep:
            for part in made:
                shutil.rmtree(part, ignore_errors=True)
            with contextlib.suppress(OSError):
                work.rmdir()


if __name__ == "__main__":
    main()
