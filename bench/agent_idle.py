"""Issue 21: what the reconcile agent costs while it waits, and per cycle against Pinecone.

Real parts only: a git + DVC repository (local-folder remote) with ``--records`` records, pushed
to a bare git repository the agent follows; the local Pinecone server from ``tests/pinecone_server``
holding the same records (loaded into its store directly, then adopted with `vectorops import`,
as bench/run.py does: pushing N records through HTTP would measure the test server); and
`vectorops reconcile` as a subprocess, its JSON log read line by line.

    nice -n 10 python bench/agent_idle.py --records 1000000 --dim 64 [--idle-seconds 60]

1. requests per steady cycle (the environment is synced, nothing to do), per refresh level:
   the server's request counts between two "cycle ended" log lines;
2. idle cost: with the default interval (5 min) and /metrics served, the agent finishes its first
   cycle, then waits; CPU seconds (utime + stime of every thread, /proc/PID/stat) over
   ``--idle-seconds``, and VmRSS / VmHWM.

Nothing here asserts: it measures and prints one table (copied into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dataset_repo import build_repo  # noqa: E402

INDEX = "agent-bench"
KEY_ENV = "VECTOROPS_BENCH_PINECONE_KEY"
KEY = "pc-bench-local-key"
TICKS = os.sysconf("SC_CLK_TCK")


def manifest(dim: int) -> str:
    return f"""version: 1
datasets:
  docs:
    path: data/docs.parquet
    embedding: {{model: bench-model, dimension: {dim}, metric: cosine}}
environments:
  prod:
    dataset: docs
    version: v1
    sync: {{auto: true, self_heal: true}}
    destination: {{type: pinecone, index: {INDEX}, api_key_env: {KEY_ENV}}}
"""


def load_store(srv: Any, file: Path, dim: int) -> None:
    space = srv.create_index(INDEX, dim, "cosine").ns("__default__")
    for batch in pq.ParquetFile(file).iter_batches(batch_size=65_536):
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


class Agent:
    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"action": "unparsed", "line": line})

    def wait(self, action: str, result: str, after: int = 0, timeout: float = 900) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.events)):
                if self.events[i].get("action") == action and self.events[i].get("result") == result:
                    return i
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"agent: no {action}/{result}; log tail: {self.events[-10:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--cycle-interval", default="5s", help="interval while counting requests per cycle")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    build_args = argparse.Namespace(row_group=65_536, vector_type="fixed_size_list", compression="snappy", no_push=False)

    from tests.fixtures.repo import run_git
    from tests.pinecone_server import PineconeServer

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vectorops-agent-bench-"))
    t0 = time.monotonic()
    repo = build_repo(work / "repo", args.records, args.dim, build_args)
    (repo.root / "vectorops.yaml").write_text(manifest(args.dim))
    run_git(repo.root, "add", "vectorops.yaml")
    run_git(repo.root, "commit", "-q", "-m", "manifest")
    bare = work / "remote.git"
    run_git(work, "clone", "-q", "--bare", str(repo.root), str(bare))
    print(f"dataset {args.records:,} records x {args.dim}: built in {time.monotonic() - t0:.0f} s", flush=True)

    srv = PineconeServer(api_key=KEY).start()
    env = dict(os.environ, PINECONE_CONTROLLER_HOST=srv.url, **{KEY_ENV: KEY}, VECTOROPS_CACHE_DIR=str(work / "cache"),
               DVC_NO_ANALYTICS="1", VECTOROPS_ACTOR="bench")
    results: dict[str, Any] = {}
    try:
        load_store(srv, repo.cached("v1"), args.dim)
        adopt = subprocess.run([sys.executable, "-m", "reconciler", "-m", str(repo.root / "vectorops.yaml"), "import", "prod",
                                "--version", "v1", "--auto-approve"], check=False, env=env, capture_output=True, text=True)
        assert adopt.returncode == 0, adopt.stderr
        # as deployed: /metrics served (its thread polls every 0.5 s), JSON logs
        base = [sys.executable, "-m", "reconciler", "reconcile", "--repo", str(bare), "--log-format", "json", "-v", "--listen", "127.0.0.1:0"]
        for refresh in ("ids", "sample", "stats"):
            agent = Agent(base + ["--workdir", str(work / f"clone-{refresh}"), "--interval", args.cycle_interval, "--refresh", refresh], env)
            first = agent.wait("cycle", "ended")
            srv.reset_counts()
            start = time.monotonic()
            second = agent.wait("cycle", "ended", after=first + 1)
            took = time.monotonic() - start
            counts = {k: v for k, v in srv.request_counts.items() if v}
            steady = [e for e in agent.events[first:second] if e.get("action") == "plan"]
            agent.stop()
            results[refresh] = {"requests": counts, "total": sum(counts.values()), "cycle_wall_s": took,
                                "result": steady[-1]["result"] if steady else None}
            print(f"refresh {refresh}: {sum(counts.values())} requests per steady cycle {counts}", flush=True)

        agent = Agent(base + ["--workdir", str(work / "clone-idle")], env)  # the default interval, 5m
        agent.wait("cycle", "ended")
        pid = agent.proc.pid
        before = cpu_seconds(pid)
        srv.reset_counts()
        time.sleep(args.idle_seconds)
        used = cpu_seconds(pid) - before
        mem = memory_mb(pid)
        idle_requests = sum(srv.request_counts.values())
        agent.stop()
        results["idle"] = {"cpu_s": used, "seconds": args.idle_seconds, **mem, "requests": idle_requests}
    finally:
        srv.stop()

    idle = results["idle"]
    print()
    print(f"records {args.records:,} x dim {args.dim} (Pinecone: local server; refresh default ids)")
    print(f"{'measure':44} value")
    for refresh in ("ids", "sample", "stats"):
        r = results[refresh]
        print(f"{'requests per steady cycle, --refresh ' + refresh:44} {r['total']:,}  {r['requests']}  (cycle {r['cycle_wall_s']:.1f} s incl. the wait, plan said {r['result']})")
    print(f"{'idle CPU while waiting (interval 5m)':44} {idle['cpu_s']:.2f} CPU s over {idle['seconds']:.0f} s = {100 * idle['cpu_s'] / idle['seconds']:.2f} % of one core")
    print(f"{'idle requests to Pinecone while waiting':44} {idle['requests']}")
    print(f"{'RSS while waiting (VmRSS / peak VmHWM)':44} {idle['VmRSS']:.0f} MB / {idle['VmHWM']:.0f} MB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
