"""A/B of two source trees on one dataset: the same warm plan and 1% apply, alternating, same interpreter.

Used for issue 16's before/after: two `bench/run.py` runs an hour apart on a shared machine differ by
the load more than by the code, so this builds one dataset (git + DVC, v1 and v2 1% apart), gives each
tree its own LanceDB workspace and hash cache, and then alternates the trees round by round. Each
tree runs as ``python -m reconciler`` with ``PYTHONPATH`` set to it, so interpreter and packages are
the same; CPU seconds (user + system) are the steadier figure on a busy machine.

    python bench/ab_trees.py --before /path/to/old/checkout --after . --records 300000 --dim 768 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from dataset_repo import build_repo, warm  # noqa: E402
from measured import Run, Workspace, base_env, run_measured  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the older tree")
    ap.add_argument("--after", type=Path, default=ROOT, help="a checkout of the newer tree (default: this one)")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vectorops-ab-"))
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    repo = build_repo(work / "repo", args.records, args.dim,
                      argparse.Namespace(vector_type="fixed_size_list", row_group=65_536, compression="snappy", no_push=True))

    def vo(tree: str, ws: Workspace, *argv: str) -> Run:
        env = base_env(work / f"cache-{tree}") | {"PYTHONPATH": str(trees[tree])}
        return run_measured([sys.executable, "-m", "reconciler", "-m", str(ws.manifest), "--no-color", *argv], env, ws.folder)

    spaces = {}
    for tree in trees:  # v1 applied, v2 pinned, the hash cache filled by a first plan
        ws = Workspace(work / f"ws-{tree}", repo, args.dim)
        ws.pin("v1")
        vo(tree, ws, "apply", "--auto-approve")
        ws.pin("v2")
        vo(tree, ws, "plan")
        spaces[tree] = ws
    rows: dict[str, list[tuple[float, float, float, float]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in list(trees) if r % 2 == 0 else list(trees)[::-1]:
            ws = spaces[tree]
            warm(repo.cached("v1"), repo.cached("v2"))
            plan, apply = vo(tree, ws, "plan"), vo(tree, ws, "apply", "--auto-approve")
            rows[tree].append((plan.seconds, plan.cpu_seconds, apply.seconds, apply.cpu_seconds))
            print(f"round {r} {tree:6s} warm plan {plan.seconds:6.2f} s wall {plan.cpu_seconds:5.2f} s cpu | "
                  f"1% apply {apply.seconds:6.2f} s wall {apply.cpu_seconds:5.2f} s cpu", flush=True)
            ws.pin("v1")
            vo(tree, ws, "apply", "--auto-approve")
            ws.pin("v2")
    for tree, got in rows.items():
        med = [sorted(x[i] for x in got)[len(got) // 2] for i in range(4)]
        print(f"median {tree:6s} warm plan {med[0]:.2f} s wall {med[1]:.2f} s cpu | 1% apply {med[2]:.2f} s wall {med[3]:.2f} s cpu")
    print(f"workdir {work} (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
