"""Concurrent applies on Pinecone: one wins, the other learns it lost within seconds and names the
winner (issue 15 item 6).

Pinecone's reads lag its writes, so "read the lock, see it free, write ours" let two applies both
think they won; the loser then waited 60 s for a lock document the winner had overwritten and
said "document 'lock' was written but is not readable after 60 s". The lock is now taken inside
``PineconeDestination.exclusive`` (claims ordered by LSN). Here two real processes apply the same
target at the same moment, against the local server with its delayed-visibility fault on, for
several rounds: the data stays exact, exactly one apply per round is recorded, and the loser fails
fast naming the winner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pinecone")

from fixtures.manifests import environment, pinecone_destination, write_manifest  # noqa: E402
from fixtures.records import KnownVersions  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from tests.pinecone_server import Faults, PineconeServer  # noqa: E402

INDEX = "lock-race"
ENV = "prod"


def expected(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


def stored(server: PineconeServer) -> dict[str, tuple[bytes, dict[str, Any]]]:
    space = server.index(INDEX).existing("__default__")
    return {i: (np.asarray(v, np.float32).tobytes(), m) for i, (v, m) in (space.records if space else {}).items()}


def command(manifest: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", *args]


def test_concurrent_applies_one_wins_the_loser_fails_fast_naming_the_winner(
    tmp_path: Path, dataset_repo: DatasetRepo, pinecone_server: PineconeServer, known_versions: KnownVersions
) -> None:
    manifest = tmp_path / "vectorops.yaml"

    def pin(version: str) -> None:
        write_manifest(manifest, {ENV: environment(version, pinecone_destination(INDEX))}, repo=dataset_repo.root)

    pin("v1")
    first = subprocess.run(command(manifest, "apply", "--auto-approve"), capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    pinecone_server.faults = Faults(visibility_delay=0.25)  # writes show in reads a quarter second late

    targets = {"v1": known_versions.v1, "v2": known_versions.v2}
    for n, version in enumerate(["v2", "v1", "v2"], start=1):
        pin(version)
        actors = [f"racer-{n}-a", f"racer-{n}-b"]
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                command(manifest, "apply", "--auto-approve", "--allow-deletes"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "VECTOROPS_ACTOR": actor},
            )
            for actor in actors
        ]
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            outcomes.append((proc.returncode, out, err, time.monotonic() - started))
        codes = [code for code, *_ in outcomes]
        report = "\n".join(f"{actors[i]}: exit {c} after {t:.1f}s\n{o}\n{e}" for i, (c, o, e, t) in enumerate(outcomes))
        assert sorted(codes) == [0, 1], report
        winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
        _, _, err, elapsed = outcomes[loser]
        assert "not readable after" not in err and "Traceback" not in err, report
        assert actors[winner] in err, f"the loser must name the apply that won:\n{report}"
        assert elapsed < 45, f"the loser took {elapsed:.1f}s to learn it lost:\n{report}"

        assert stored(pinecone_server) == expected(targets[version]), f"round {n}: content is not exactly {version}"
        history = json.loads(subprocess.run(command(manifest, "history", ENV, "--json"), capture_output=True, text=True).stdout)["history"]
        assert history[0]["to"]["version"] == version and history[0]["actor"] == actors[winner]
        assert len(history) == n + 1, "exactly one apply per round"
