"""The apply after a plan writes the changed records the plan already read, without decoding the dataset again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lancedb
import numpy as np

from fixtures.cli import run_vectorops
from fixtures.manifests import environment, lancedb_destination, manifest_text
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo
from reconciler import caches


def manifest(version: str) -> str:
    """The manifest in the dataset's own repo (no `repo:`), pinning ``version`` to LanceDB table docs."""
    return manifest_text({"staging": environment(version, lancedb_destination("docs"))})


def vectorops(repo: DatasetRepo, *args: str) -> int:
    return run_vectorops("-m", str(repo.root / "vectorops.yaml"), *args).code


def content(repo: DatasetRepo) -> dict[str, tuple[bytes, dict]]:
    t = lancedb.connect(str(repo.root / "db")).open_table("docs").to_arrow()
    vec = t.column("vector").combine_chunks().flatten().to_numpy().astype(np.float32).reshape(-1, 16)
    return {i: (vec[n].tobytes(), json.loads(m)) for n, (i, m) in enumerate(zip(t.column("id").to_pylist(), t.column("metadata").to_pylist(), strict=False))}


def test_apply_uses_the_plans_stash_and_never_rereads_the_dataset(dataset_repo_copy: DatasetRepo, known_versions: KnownVersions) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(manifest("v1"))
    assert vectorops(repo, "apply", "--auto-approve") == 0
    repo.write_manifest(manifest("v2"))
    assert vectorops(repo, "plan") == 0  # cold for v2: hashes it and stashes the 165 changed records

    stashes = list((caches.cache_dir() / "stash").glob("*.arrow"))
    assert len(stashes) == 1
    # make the dataset unreadable: no DVC cache, no remote. Only git (and the stash) remain.
    shutil.rmtree(repo.root / ".dvc" / "cache")
    shutil.rmtree(repo.remote)
    Path(repo.remote).mkdir()

    assert vectorops(repo, "apply", "--auto-approve") == 0
    want = {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in known_versions.v2
    }
    assert content(repo) == want
