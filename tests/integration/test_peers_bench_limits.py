"""The issue-22 benchmark's time budget and memory cap (bench/step_limits.py): a 1M run must end.

bench/peers.py gives every step (one tool's load, or its sync) a time budget and a memory cap; a step
over either is killed and reported as not finished, with how far it got, and the run goes on. Two
checks with real processes: the script end to end with a tiny budget on one peer and a tiny cap on
another (the bench extra needed, as for the smoke test), and the watch itself on a child that reports
progress and on a process tree whose memory is over the cap only when summed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_peers_bench_smoke import TOOL_LINE, _missing_peers

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
UNFINISHED_LINE = re.compile(r"^tool=(\S+) load_s=(\S+) sync_s=(\S+) peak_rss_mb=(\d+) exact=(yes|no)$", re.MULTILINE)


@pytest.mark.skipif(bool(_missing_peers()), reason=f"the bench extra is not installed (pip install -e '.[test,bench]'): missing {_missing_peers()}")
def test_a_peer_over_its_budget_and_one_over_its_cap_are_stopped_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VECTOROPS_CACHE_DIR"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--records", "1000", "--dim", "768", "--tools", "vectorops,langchain-full,llamaindex",
         # under a second for LangChain (its imports alone take longer); 0.1 GB for LlamaIndex (its imports alone hold more)
         "--step-budget-min", "langchain-full=0.01", "--memory-cap-gb", "llamaindex=0.1", "--workdir", str(tmp_path / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"bench/peers.py failed:\n{out[-3000:]}\n{proc.stderr[-3000:]}"

    lines = {m.group(1): m.groups()[1:] for m in UNFINISHED_LINE.finditer(out)}
    assert set(lines) == {"vectorops", "langchain-full", "llamaindex"}, out
    vectorops = next(m for m in TOOL_LINE.finditer(out) if m.group(1) == "vectorops")  # its figures, in seconds
    assert vectorops.group(5) == "yes", out
    assert lines["langchain-full"][:2] == ("dnf>0.6", "skipped") and lines["langchain-full"][3] == "no", out
    assert lines["llamaindex"][:2] == ("dnf(mem>0.1GB)", "skipped") and lines["llamaindex"][3] == "no", out
    assert re.search(r"^  langchain-full load: stopped at the 0\.01-min budget after ", out, re.MULTILINE), out
    assert re.search(r"^  llamaindex load: stopped at the 0\.1 GB memory cap \(\d+ MB in its process tree\) after ", out, re.MULTILINE), out
    for tool in ("langchain-full", "llamaindex"):
        assert f"  {tool} sync: not run (its load did not finish)" in out
        assert re.search(rf"^ratio {tool} sync = n/a \(did not finish: load: stopped at the ", out, re.MULTILINE), out
    assert "limits: 12 min and 12 GB a step; langchain-full: 0.01 min, 12 GB; llamaindex: 12 min, 0.1 GB" in out
    assert not (tmp_path / "work").exists()


def _child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(BENCH)!r})\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_a_step_over_its_budget_is_killed_with_the_progress_it_reported(tmp_path: Path) -> None:
    if str(BENCH) not in sys.path:  # at the end: bench's module names must not shadow anything else
        sys.path.append(str(BENCH))
    from measured import run_measured
    from peers import why_stopped
    from step_limits import StepLimits

    cmd = _child(tmp_path, """
        import time
        from peer_tools import Progress
        progress = Progress(5000)
        progress.add(read=1200, embedded=1000)
        time.sleep(120)
    """)
    limits = StepLimits(budget_s=3, memory_cap_mb=4096, poll_s=0.1)
    run = run_measured(cmd, dict(os.environ), tmp_path, limits=limits)
    assert run.stopped is not None and run.stopped.reason == "budget", run
    assert 3 <= run.seconds < 30, run.seconds
    assert run.stopped.progress == {"read": 1200, "embedded": 1000, "total": 5000}
    text = why_stopped(run, limits)
    assert re.fullmatch(r"stopped at the 0\.05-min budget after 1,200 of 5,000 records read by the tool \(1,000 embedded\) in \d\.\d s "
                        r"\(\d+ records/s\), projected \d+ min for 5,000 at that rate", text), text


def test_a_step_whose_process_tree_is_over_the_cap_is_killed_whole(tmp_path: Path) -> None:
    if str(BENCH) not in sys.path:  # at the end: bench's module names must not shadow anything else
        sys.path.append(str(BENCH))
    from measured import run_measured
    from step_limits import StepLimits

    marker = tmp_path / "grandchild.pid"
    # 150 MB in the child and 150 MB in its own child: each under the 250 MB cap, the tree over it
    cmd = _child(tmp_path, f"""
        import subprocess, time
        hold = b"x" * (150 << 20)
        sub = subprocess.Popen([sys.executable, "-c", "import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); "
                                "hold = b'x' * (150 << 20); time.sleep(120)"])
        time.sleep(120)
    """)
    run = run_measured(cmd, dict(os.environ), tmp_path, limits=StepLimits(budget_s=60, memory_cap_mb=250, poll_s=0.1))
    assert run.stopped is not None and run.stopped.reason == "memory", run
    assert run.stopped.peak_tree_mb > 250 and run.seconds < 30, run
    grandchild = int(marker.read_text())
    with pytest.raises(ProcessLookupError):  # the whole process group went, not only the step's first process
        for _ in range(50):
            os.kill(grandchild, 0)
            time.sleep(0.1)
