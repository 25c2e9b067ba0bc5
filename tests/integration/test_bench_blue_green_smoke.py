"""Smoke test of bench/blue_green.py at a tiny size: every figure printed, and the runs it measures
did what they claim (no timing assertions: timings on a shared runner mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_blue_green_bench_runs_small(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k not in ("VECTOROPS_CACHE_DIR", "PINECONE_CONTROLLER_HOST")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "blue_green.py"), "--records", "400", "--dim", "8", "--json-out", str(figures)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"bench/blue_green.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for line in ("in-place apply v2 -> v3", "blue/green apply v3", "write requests blue/green / in-place", "rollback by switch"):
        assert line in proc.stdout, proc.stdout
    res = json.loads(figures.read_text())
    assert res["changes_inplace"] == {"add": 0, "update": 4, "delete": 0}  # v2 -> v3: 1%
    assert res["changes_bluegreen"] == {"add": 0, "update": 8, "delete": 0}  # the inactive slot held v1: 2%
    assert res["record_write_requests_inplace"] >= 1 and res["record_write_requests_bluegreen"] >= 1
    assert res["rollback_record_write_requests"] == 0 and "no records written" in res["rollback_message"]
