"""Running the vectorops CLI as a user would, measured: wall time and the command's own peak RSS.

Shared by bench/run.py and bench/peers.py. Every measured command is started by a tiny launcher
that reads the command's peak RSS with ``os.wait4`` (``ru_maxrss``: the largest resident set of the
command's process and of any descendant it waited for); a child forked straight from the large
benchmark process would report the benchmark's memory as its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dataset_repo import BenchRepo
from step_limits import PROGRESS_ENV, StepLimits, Stop, watch

ENV = "staging"
TABLE = "docs"


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    stdout: str
    cpu_seconds: float = 0.0  # user + system CPU of the command and what it waited for: steadier than wall time on a busy machine
    stopped: Stop | None = None  # set when the step ran over its time budget or memory cap and was killed (see step_limits)
    # user + system CPU of the command and of every descendant, those it did not wait for included (a
    # process pool's forkserver and its workers: `--jobs 2` hashes there, and cpu_seconds leaves them out)
    cpu_all_seconds: float = 0.0


# A small launcher runs each measured command: a child forked from this (large) process would
# report this process's memory as its own peak RSS, a child of the launcher reports only its own.
LAUNCHER = r"""
import ctypes, json, os, resource, subprocess, sys, time
try:  # orphaned descendants are re-parented to this launcher (Linux), which reaps them: their CPU counts in cpu_all_s
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    pass
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t0
deadline = time.monotonic() + 2  # a pool's forkserver exits as soon as its parent has
while time.monotonic() < deadline:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.05)
    except ChildProcessError:
        break
every = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": seconds, "max_rss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
               "cpu_all_s": every.ru_utime + every.ru_stime, "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, ok_codes: tuple[int, ...] = (0,),
                 limits: StepLimits | None = None, label: str = "") -> Run:
    """Wall time and the command's own peak RSS (``os.wait4`` in the launcher: that child only).

    With ``limits``, the command runs in a process group of its own, watched: over its time budget or
    memory cap it is killed and the Run says so (``stopped``: when, the largest process-tree RSS seen,
    the last progress it wrote to the file ``$BENCH_PROGRESS_FILE``) instead of failing the bench.
    """
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        progress = Path(tmp) / "progress.json"
        launch = [sys.executable, "-c", LAUNCHER, str(stats), *cmd]
        with open(Path(tmp) / "out", "wb") as out, open(Path(tmp) / "err", "wb") as err:
            if limits is None:
                subprocess.run(launch, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, check=False)
                stop = None
            else:
                proc = subprocess.Popen(launch, env={**env, PROGRESS_ENV: str(progress)}, cwd=cwd, stdout=out, stderr=err,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                stop = watch(proc, limits, progress, label)
        stdout = (Path(tmp) / "out").read_text(errors="replace")
        stderr = (Path(tmp) / "err").read_text(errors="replace")
        measured = json.loads(stats.read_text()) if stats.exists() else {"code": -1}
    if stop is not None:
        return Run(stop.seconds, stop.peak_tree_mb, stdout, 0.0, stop)
    if measured["code"] not in ok_codes:
        raise SystemExit(f"bench: `{' '.join(cmd)}` exited {measured['code']}\n{stdout[-4000:]}\n{stderr[-4000:]}")
    return Run(measured["seconds"], measured["max_rss_kb"] / 1024, stdout, measured.get("cpu_s", 0.0),
               cpu_all_seconds=measured.get("cpu_all_s", 0.0))


def vectorops_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "vectorops"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "reconciler"]


def base_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, VECTOROPS_CACHE_DIR=str(cache), DVC_NO_ANALYTICS="1", VECTOROPS_ACTOR="bench")
    env.pop("PINECONE_API_KEY", None)
    return env


def write_manifest(path: Path, repo: Path, dim: int, version: str, destination: str) -> None:
    path.write_text(
        f"""version: 1
datasets:
  docs:
    path: data/docs.parquet
    repo: {repo}
    embedding:
      model: bench-model
      dimension: {dim}
      metric: cosine
environments:
  {destination}
"""
    )


def lancedb_env(uri: Path, version: str) -> str:
    return f"""{ENV}:
    dataset: docs
    version: {version}
    destination:
      type: lancedb
      uri: {uri}
      table: {TABLE}"""


class Workspace:
    """One manifest + its LanceDB folder; ``vo`` runs the CLI against it in a subprocess."""

    def __init__(self, folder: Path, repo: BenchRepo, dim: int) -> None:
        self.folder, self.repo, self.dim = folder, repo, dim
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest = folder / "vectorops.yaml"
        self.db = folder / "lancedb"

    def pin(self, version: str) -> None:
        write_manifest(self.manifest, self.repo.root, self.dim, version, lancedb_env(self.db, version))

    def vo(self, cache: Path, *args: str, env_extra: dict[str, str] | None = None, limits: StepLimits | None = None,
           label: str = "") -> Run:
        env = base_env(cache)
        env.update(env_extra or {})
        return run_measured([*vectorops_cmd(), "-m", str(self.manifest), "--no-color", *args], env, self.folder, limits=limits,
                            label=label)
