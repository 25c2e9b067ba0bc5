"""Smoke test of the issue-9 benchmark (bench/run.py) at a small size, without timing assertions.

Timings on a shared CI runner mean nothing, but a benchmark that silently stops printing a figure,
or measures a run that did the wrong thing, is worse than none. So this runs the real script end
to end (git + DVC repo, LanceDB, the local Pinecone server) and checks that every figure's line is
printed and that the runs it timed did what they claim: the incremental apply left v2 in LanceDB,
the rollback left v1, the plan saw exactly the 1% changes the generator made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIGURE_LINES = (
    "I/O floor (pyarrow reads v1+v2, all columns)",
    "vectorops --help",
    "first full apply v1 (cold cache)",
    "cold plan v1->v2 (empty cache)",
    "warm plan v1->v2 (cache filled)",
    "incremental apply v1->v2 (warm cache)",
    "naive full re-upload of v2 (create_table)",
    "rollback v2->v1",
    "apply of a saved plan v1->v2 (apply FILE)",
    "(apply of a saved plan)",
    "cold plan at N/10 (2,000)",
    "cold plan / I/O floor",
    "warm plan / I/O floor",
    "incremental apply / naive re-upload",
    "plan peak RSS / raw vector bytes",
    "plan peak RSS growth, N/10 -> N",
    "rollback (s, target < 10)",
    "data writes / minimum (changes/1000)",
    "data writes / minimum under 2 MB cap",
    "all writes incl. state / minimum",
    "all writes incl. state / 2 MB minimum",
    "pinecone listing of 25,000 ids at 1.0 ms a request",
)


@pytest.mark.slow  # ~1 min of the suite: runs by default; `-m "not slow"` leaves it out
def test_bench_runs_small_and_prints_every_figure(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k != "VECTOROPS_CACHE_DIR"}  # the bench sets its own caches
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--records", "20000", "--dim", "64", "--pinecone-records", "3000",
         "--listing-ids", "25000", "--pinecone-latency-ms", "1",
         "--workdir", str(tmp_path / "work"), "--json-out", str(figures)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"bench/run.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    missing = [line for line in FIGURE_LINES if line not in proc.stdout]
    assert not missing, f"figures not printed: {missing}\n{proc.stdout}"

    res = json.loads(figures.read_text())
    lance = res["lancedb"]
    assert lance["rows"] == {"v1": 20000, "v2": 20000}
    assert lance["plan_changes"] == {"add": 200, "update": 200, "delete": 200}
    assert lance["after_apply"] == {"rows": 20000, "added_ids": 200} and lance["naive_reupload"]["rows"] == 20000
    assert lance["after_rollback"] == {"rows": 20000, "added_ids": 0}
    assert lance["after_saved_apply"] == {"rows": 20000, "added_ids": 200}
    for phase in ("first_apply_v1", "cold_plan", "warm_plan", "incremental_apply", "naive_reupload", "rollback", "saved_plan_apply"):
        assert lance[phase]["seconds"] > 0 and lance[phase]["max_rss_mb"] > 0, phase
    assert res["small"]["plan_changes"] == {"add": 20, "update": 20, "delete": 20}
    pc = res["pinecone"]
    assert pc["changes"] == {"add": 30, "update": 30, "delete": 30}
    assert pc["write_requests_data_namespace"] == pc["minimum_issue"] == 2  # 60 upserts in one request, 30 deletes in one
    # lock, intent, result + history + release; plus the lock's claim and its withdrawal, which order
    # concurrent applies (PineconeDestination.exclusive)
    assert pc["write_requests_state_namespace"] == 3 + 2
    lst = res["pinecone_listing"]  # the bench itself stops when a listing misses ids
    assert (lst["ids"], lst["one_listing_prefixes"]) == (25000, 1) and lst["split_listing_prefixes"] > 1
    assert not (tmp_path / "work").exists(), "without --keep the bench must clean up its workdir"
