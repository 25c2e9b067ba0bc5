"""Blue/green rollouts (issue 18): rollback by alias switch, and the write cost of a blue/green apply.

On the local Pinecone server (the real SDK over HTTP), with a dataset of N records × DIM in a real
git + DVC repository and three versions, each 1% apart from the one before (1% of the records get
a new vector: v1 → v2 → v3). Two environments on one index deploy the same versions:

* ``inplace`` (``rollout: in_place``, namespace ``ip``) writes diff(v2 → v3) into the one namespace;
* ``bluegreen`` (``rollout: blue_green, keep: 2``, alias ``bg``) writes v3 into the inactive slot,
  which holds v1: diff(v1 → v3), about twice as many records.

Then ``vectorops rollback bluegreen`` goes back to v2, whose slot still exists: an alias switch.
Measured: its wall time (in-process, and as a fresh ``vectorops`` process, start-up included), the
time the rollout itself took (the history entry's ``duration_s``: lock, checks, switch, state), and
the write requests it sent to any records namespace (the server counts every commit per namespace).

    python bench/blue_green.py --records 20000 --dim 768
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

KEY = "pc-bench-key"


def version_table(n: int, dim: int, changed: list[np.ndarray]) -> pa.Table:
    """v1 and, for each index array in ``changed``, those rows with a new vector (1% each)."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    for step, rows in enumerate(changed):
        vectors[rows] = np.random.default_rng(100 + step).standard_normal((len(rows), dim), dtype=np.float32)
    ids = pa.array([f"doc-{i:09d}" for i in range(n)], pa.string())
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    return pa.table({"id": ids, "vector": vec, "title": pa.array([f"Document {i}" for i in range(n)])})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--json-out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    n, dim = args.records, args.dim

    from fixtures.cli import run_vectorops
    from fixtures.repo import DatasetRepo
    from tests.pinecone_server import PineconeServer
    from tests.pinecone_server.fixtures import reset_sdk_host_state

    work = Path(tempfile.mkdtemp(prefix="vectorops-bg-bench-"))
    os.environ.update(VECTOROPS_CACHE_DIR=str(work / "cache"), DVC_NO_ANALYTICS="1", PINECONE_API_KEY=KEY, VECTOROPS_ACTOR="bench")
    picks = np.random.default_rng(7).permutation(n)
    k = max(1, n // 100)
    steps = [picks[:k], picks[k : 2 * k]]
    t0 = time.perf_counter()
    repo = DatasetRepo.create(work / "repo")
    for tag, changed in (("v1", []), ("v2", steps[:1]), ("v3", steps)):
        repo.commit_table(version_table(n, dim, changed), tag=tag)
    setup_s = time.perf_counter() - t0

    reset_sdk_host_state()
    server = PineconeServer(api_key=KEY).start()
    os.environ["PINECONE_CONTROLLER_HOST"] = server.url
    manifest = work / "vectorops.yaml"

    def pin(version: str) -> None:
        def env(rollout: dict[str, Any], namespace: str) -> dict[str, Any]:
            return {"dataset": "docs", "version": version, "rollout": rollout, "policy": {"max_delete_fraction": 1.0},
                    "destination": {"type": "pinecone", "index": "bench", "namespace": namespace}}

        manifest.write_text(yaml.safe_dump({
            "version": 1,
            "datasets": {"docs": {"path": "data/docs.parquet", "repo": str(repo.root),
                                  "embedding": {"model": "bench-model", "dimension": dim, "metric": "cosine"}}},
            "environments": {"inplace": env({"strategy": "in_place"}, "ip"),
                             "bluegreen": env({"strategy": "blue_green", "keep": 2}, "bg")},
        }, sort_keys=False))

    def vo(*a: str) -> tuple[float, Any]:
        started = time.perf_counter()
        result = run_vectorops("-m", str(manifest), "--no-color", *a)
        took = time.perf_counter() - started
        if result.code != 0:
            raise SystemExit(f"vectorops {' '.join(a)} failed ({result.code}):\n{result.stdout}\n{result.stderr}")
        return took, result

    writes: dict[str, int] = {}

    def counting(state: Any) -> None:
        original = state.commit

        def commit(name: str, op: Any) -> int:
            writes[name] = writes.get(name, 0) + 1
            return original(name, op)

        state.commit = commit

    try:
        for version in ("v1", "v2"):
            pin(version)
            vo("apply", "--auto-approve")
            if version == "v1":
                counting(server.index("bench"))
        pin("v3")
        plans = {e["name"]: e for e in json.loads(vo("plan", "--json")[1].stdout)["environments"]}
        writes.clear()
        apply_s, _ = vo("apply", "inplace", "--auto-approve")
        inplace_writes = dict(writes)
        writes.clear()
        bg_s, _ = vo("apply", "bluegreen", "--auto-approve")
        bg_writes = dict(writes)

        writes.clear()
        rollback_s, _ = vo("rollback", "bluegreen", "--auto-approve")
        rollback_writes = dict(writes)
        entry = json.loads(vo("history", "bluegreen", "--json", "--limit", "1")[1].stdout)["history"][0]
        # once more as its own process (start-up, imports and all): forward to v3, then back by switch
        vo("apply", "bluegreen", "--auto-approve")
        writes.clear()
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", "rollback", "bluegreen", "--auto-approve"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")])),
        )
        process_s = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        process_writes = dict(writes)
    finally:
        server.stop()

    def records_ns(found: dict[str, int]) -> int:
        return sum(v for ns, v in found.items() if ns != "__vectorops__")

    figures = {
        "records": n, "dim": dim, "setup_s": round(setup_s, 1),
        "changes_inplace": plans["inplace"]["changes"], "changes_bluegreen": plans["bluegreen"]["changes"],
        "record_write_requests_inplace": records_ns(inplace_writes), "record_write_requests_bluegreen": records_ns(bg_writes),
        "apply_s_inplace": round(apply_s, 2), "apply_s_bluegreen": round(bg_s, 2),
        "rollback_wall_s_in_process": round(rollback_s, 3), "rollback_entry_duration_s": entry["duration_s"],
        "rollback_wall_s_new_process": round(process_s, 3), "rollback_switch_call_s": entry["rollout"]["switch_s"],
        "rollback_record_write_requests": records_ns(rollback_writes) + records_ns(process_writes),
        "rollback_state_write_requests": rollback_writes.get("__vectorops__", 0),
        "rollback_message": entry["message"],
    }
    def written(changes: dict[str, int]) -> int:
        return changes["add"] + changes["update"] + changes["delete"]

    figures["records_written_inplace"] = written(plans["inplace"]["changes"])
    figures["records_written_bluegreen"] = written(plans["bluegreen"]["changes"])
    ratio = figures["record_write_requests_bluegreen"] / max(1, figures["record_write_requests_inplace"])
    records_ratio = figures["records_written_bluegreen"] / max(1, figures["records_written_inplace"])
    load = os.getloadavg()[0]
    print(f"records {n:,} x {dim} on the local Pinecone server; versions 1% apart (v1 -> v2 -> v3); setup {setup_s:.1f} s")
    print(f"  in-place apply v2 -> v3:   changes {plans['inplace']['changes']}, {figures['record_write_requests_inplace']} record write requests, {apply_s:.2f} s")
    print(f"  blue/green apply v3:       changes {plans['bluegreen']['changes']} (slot {plans['bluegreen']['rollout']['target']} held v1), "
          f"{figures['record_write_requests_bluegreen']} record write requests, {bg_s:.2f} s")
    print(f"  write requests blue/green / in-place: {ratio:.2f}; records written blue/green / in-place: {records_ratio:.2f} "
          f"({figures['records_written_bluegreen']:,} vs {figures['records_written_inplace']:,})")
    print(f"  rollback by switch: {rollback_s:.3f} s in-process CLI, {process_s:.3f} s as a new process, "
          f"{entry['duration_s']:.3f} s inside the rollout (lock, checks, switch, state), {entry['rollout']['switch_s']:.4f} s "
          f"the switch call itself; record write requests: {figures['rollback_record_write_requests']}")
    print(f"    ({entry['message']})")
    print(f"  load average at the end: {load:.1f} on {os.cpu_count()} cores (wall times scale with it)")
    figures["load_average"] = round(load, 1)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
