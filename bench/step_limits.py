"""A time budget and a memory cap for one measured benchmark step, so a large run always ends.

At 1M records some peers need hours (LangChain, dlt) or more memory than the machine has
(LlamaIndex). Rather than guess in advance which tool to shrink, bench/peers.py gives every step the
same budget and cap: ``watch`` polls the step's elapsed time and the resident memory of its whole
process tree (from /proc, summed over the tree), and kills the step's process group when it is over
either. How far the step got comes from a small progress file the child rewrites as it goes
(``PROGRESS_ENV`` names it; bench/peer_tools.py writes it), so the report can say "stopped after
412,000 records" instead of only "did not finish".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRESS_ENV = "BENCH_PROGRESS_FILE"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class StepLimits:
    budget_s: float
    memory_cap_mb: float
    poll_s: float = 0.5


@dataclass
class Stop:
    """Why and when a step was stopped, the most memory its tree held, and its last progress report."""

    reason: str  # "budget" or "memory"
    seconds: float
    peak_tree_mb: float
    progress: dict[str, Any]


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) for every process /proc shows."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()  # after "(comm)": state, ppid, ... rss is field 24
            out[int(entry.name)] = (int(fields[1]), int(fields[21]) * PAGE)
        except (OSError, ValueError, IndexError):  # gone between listing and reading
            continue
    return out


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, summed (shared pages count once per process)."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total / 2**20


def read_progress(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):  # not written yet, or caught between write and rename (never: os.replace)
        return {}


def watch(proc: subprocess.Popen[bytes], limits: StepLimits, progress: Path, label: str = "") -> Stop | None:
    """Wait for ``proc`` (started in a session of its own); kill its process group if it runs over a limit."""
    t0 = time.perf_counter()
    peak = 0.0
    next_note = t0 + 300
    while proc.poll() is None:
        now = time.perf_counter()
        rss = tree_rss_mb(proc.pid)
        peak = max(peak, rss)
        reason = "memory" if rss > limits.memory_cap_mb else "budget" if now - t0 > limits.budget_s else None
        if reason is not None:
            with_progress = read_progress(progress)
            with contextlib.suppress(ProcessLookupError):  # it ended on its own in between
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Stop(reason, now - t0, peak, with_progress)
        if label and now >= next_note:  # a long step says it is alive, with how far it got
            next_note += 300
            got = read_progress(progress)
            print(f"peers: {label}: {(now - t0) / 60:.0f} min, RSS {rss:,.0f} MB, progress {json.dumps(got) if got else 'not reported'}",
                  flush=True)
        time.sleep(limits.poll_s)
    return None
