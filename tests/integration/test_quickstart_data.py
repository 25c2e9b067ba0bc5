"""The quick start's committed dataset, canaries and repository builder behave as its README says.

The quick start is the first thing a new user runs, so its data is held to what the README
promises: two real versions whose differences are exactly the counts printed there, canary queries
that pass on both versions, and a ``run.sh`` that builds a real git + DVC repository from which
vectorops reads each version back bit-exact (from the DVC remote, not from a cache or a working tree).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
RUN_SH = QUICKSTART / "run.sh"
DIM = 384

# The counts printed in examples/quickstart/README.md.
V1_RECORDS = 1611
V2_RECORDS = 1638
ADDED = 52  # statistics + difflib
REMOVED = 25  # telnetlib
VECTOR_CHANGED = 11  # shutil / tempfile: first sentence in v1, first paragraph in v2
METADATA_ONLY = 29  # os.path: module "posixpath" in v1, "os.path" in v2
UNCHANGED = V1_RECORDS - REMOVED - VECTOR_CHANGED - METADATA_ONLY

EXPECTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("vector", pa.list_(pa.float32(), DIM)),
        ("text", pa.string()),
        ("module", pa.string()),
        ("kind", pa.string()),
        ("source", pa.string()),
    ]
)


class Version:
    """One committed Parquet file, indexed by id for comparisons."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table = pq.read_table(path)
        self.ids: list[str] = self.table["id"].to_pylist()
        flat = self.table["vector"].combine_chunks().flatten().to_numpy()
        self.vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, DIM)
        self.index = {k: i for i, k in enumerate(self.ids)}
        meta = self.table.drop_columns(["id", "vector"]).to_pylist()
        self.meta = dict(zip(self.ids, meta, strict=False))

    def vector(self, id_: str) -> np.ndarray:
        return self.vectors[self.index[id_]]

    def top_k(self, query: np.ndarray, k: int) -> list[str]:
        scores = self.vectors @ query
        return [self.ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture(scope="module")
def v1() -> Version:
    return Version(QUICKSTART / "data" / "docs-v1.parquet")


@pytest.fixture(scope="module")
def v2() -> Version:
    return Version(QUICKSTART / "data" / "docs-v2.parquet")


@pytest.fixture(scope="module")
def canaries() -> dict:
    return yaml.safe_load((QUICKSTART / "canaries.yaml").read_text(encoding="utf-8"))


# -- the data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,count", [("docs-v1", V1_RECORDS), ("docs-v2", V2_RECORDS)])
def test_each_version_has_the_declared_schema_and_clean_values(name: str, count: int) -> None:
    version = Version(QUICKSTART / "data" / f"{name}.parquet")
    assert version.table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert version.table.num_rows == count
    assert len(set(version.ids)) == count, "ids must be unique"
    for column in version.table.column_names:
        assert version.table[column].null_count == 0, f"{column} has nulls"
    assert np.isfinite(version.vectors).all()
    norms = np.linalg.norm(version.vectors.astype(np.float64), axis=1)
    assert np.abs(norms - 1.0).max() < 1e-5, "vectors must be normalised for cosine"
    for id_, meta in version.meta.items():
        assert re.fullmatch(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+", id_), id_
        assert meta["kind"] in {"function", "class", "method"}, id_
        assert meta["source"] == "stdlib 3.11"
        assert 0 < len(meta["text"]) <= 300, id_


def test_files_stay_small_enough_to_commit() -> None:
    total = sum((QUICKSTART / "data" / f"docs-v{v}.parquet").stat().st_size for v in (1, 2))
    assert total <= 6 * 1024 * 1024


def test_v2_differs_from_v1_exactly_as_the_readme_says(v1: Version, v2: Version) -> None:
    added = set(v2.ids) - set(v1.ids)
    removed = set(v1.ids) - set(v2.ids)
    common = set(v1.ids) & set(v2.ids)
    vector_changed = {k for k in common if not np.array_equal(v1.vector(k), v2.vector(k))}
    metadata_only = {k for k in common - vector_changed if v1.meta[k] != v2.meta[k]}
    unchanged = common - vector_changed - metadata_only

    assert (len(added), len(removed), len(vector_changed), len(metadata_only), len(unchanged)) == (
        ADDED,
        REMOVED,
        VECTOR_CHANGED,
        METADATA_ONLY,
        UNCHANGED,
    )
    # Each kind of change is the realistic one it stands for.
    assert {v2.meta[k]["module"] for k in added} == {"statistics", "difflib"}
    assert {v1.meta[k]["module"] for k in removed} == {"telnetlib"}
    assert "telnetlib" not in {m["module"] for m in v2.meta.values()}
    for k in vector_changed:
        assert v1.meta[k]["module"] in {"shutil", "tempfile"}
        assert v2.meta[k]["text"].startswith(v1.meta[k]["text"]) and v2.meta[k]["text"] != v1.meta[k]["text"]
    for k in metadata_only:
        assert (v1.meta[k]["module"], v2.meta[k]["module"]) == ("posixpath", "os.path")
        assert v1.meta[k]["text"] == v2.meta[k]["text"]
    assert any(k.startswith("os.path.") for k in metadata_only)


# -- the canaries ------------------------------------------------------------------------------


def test_canary_file_follows_the_spec(canaries: dict) -> None:
    assert set(canaries) == {"top_k", "queries"}
    assert canaries["top_k"] == 10
    assert len(canaries["queries"]) >= 10
    names = [q["name"] for q in canaries["queries"]]
    assert len(set(names)) == len(names)
    for q in canaries["queries"]:
        assert set(q) == {"name", "vector_of", "expect"}, q
        assert q["vector_of"] in q["expect"], q  # a record is its own nearest neighbour


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_every_canary_passes_by_brute_force_cosine_search(which: str, canaries: dict, request: pytest.FixtureRequest) -> None:
    version: Version = request.getfixturevalue(which)
    failures = []
    for q in canaries["queries"]:
        missing = [e for e in [q["vector_of"], *q["expect"]] if e not in version.index]
        assert not missing, f"{q['name']}: ids not in {which}: {missing}"
        top = version.top_k(version.vector(q["vector_of"]), canaries["top_k"])
        lost = [e for e in q["expect"] if e not in top]
        if lost:
            failures.append(f"{q['name']}: {lost} not in top {canaries['top_k']} {top}")
    assert not failures, "\n".join(failures)


# -- run.sh: a real git + DVC repository -------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    """A user with no git identity of their own unless ``extra`` gives one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        # Never guess user@host: without this, machines with a resolvable domain name have an identity.
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="user.useConfigOnly",
        GIT_CONFIG_VALUE_0="true",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p),
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(RUN_SH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    base = tmp_path_factory.mktemp("quickstart")
    proc = _run(["--build-only", "qs"], _env(base / "home"), cwd=base)
    yield base / "qs", proc


def test_run_sh_builds_a_clean_repo_with_two_tagged_versions(built: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    repo, proc = built
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert _git(repo, "status", "--porcelain") == ""
    assert _git(repo, "tag", "--list").split() == ["docs-v1", "docs-v2"]
    # No identity was configured anywhere, so the script set one in this repository only.
    assert _git(repo, "config", "--local", "user.name") == "vectorops quickstart"
    manifest = yaml.safe_load((repo / "vectorops.yaml").read_text(encoding="utf-8"))
    assert {e: manifest["environments"][e]["version"] for e in ("staging", "prod")} == {"staging": "docs-v1", "prod": "docs-v1"}
    assert (repo / "canaries.yaml").read_text() == (QUICKSTART / "canaries.yaml").read_text()
    assert not (repo / "data" / "docs.parquet").is_symlink()
    for tag in ("docs-v1", "docs-v2"):
        dvc_file = yaml.safe_load(_git(repo, "show", f"{tag}:data/docs.parquet.dvc"))
        size = (QUICKSTART / "data" / f"{tag}.parquet").stat().st_size
        assert dvc_file["outs"][0]["size"] == size
        md5 = dvc_file["outs"][0]["md5"]
        assert (repo / ".dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file(), f"{tag} was not pushed"


def test_vectorops_reads_both_versions_back_from_the_dvc_remote(
    built: tuple[Path, subprocess.CompletedProcess[str]], v1: Version, v2: Version, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.dataset import read_batches, resolve_version
    from reconciler.engine.diff import VersionIndex, compute_diff
    from reconciler.manifest import load_manifest

    repo, proc = built
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)  # only the remote holds the data now
    (repo / "data" / "docs.parquet").unlink()  # and never the working tree
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    manifest = load_manifest(repo / "vectorops.yaml")
    src = manifest.dataset_source("docs")
    indexes = {}
    for tag, expected in (("docs-v1", v1), ("docs-v2", v2)):
        version = resolve_version(src, tag)
        assert version.commit == _git(repo, "rev-parse", f"{tag}^{{commit}}")
        batches = list(read_batches(src, version))
        ids = [i for b in batches for i in b.id_list]
        vectors = np.concatenate([b.vectors for b in batches])
        assert ids == expected.ids
        assert np.array_equal(vectors, expected.vectors)
        assert batches[0].metadata.column_names == ["text", "module", "kind", "source"]
        indexes[tag] = VersionIndex.build(batches, what=tag)
    # The engine's own record hashing sees the README's "+52 ~40 -25" plan from v1 to v2.
    diff = compute_diff(indexes["docs-v2"], indexes["docs-v1"], None, None, prune=True)
    assert diff.counts() == {"add": ADDED, "update": VECTOR_CHANGED + METADATA_ONLY, "delete": REMOVED}
    assert (len(diff.update_vector), len(diff.update_metadata)) == (VECTOR_CHANGED, METADATA_ONLY)


def test_run_sh_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    env = _env(tmp_path / "home", GIT_AUTHOR_NAME="Ada", GIT_AUTHOR_EMAIL="ada@example.com",
               GIT_COMMITTER_NAME="Ada", GIT_COMMITTER_EMAIL="ada@example.com")

    refused = _run(["--build-only", str(target)], env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert (target / "notes.txt").read_text() == "keep me"

    forced = _run(["--force", "--build-only", str(target)], env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr + forced.stdout
    assert not (target / "notes.txt").exists()
    # The user's own identity is used, and nothing is written to the repo's config for it.
    assert _git(target, "log", "-1", "--format=%an <%ae>") == "Ada <ada@example.com>"
    assert subprocess.run(["git", "-C", str(target), "config", "--local", "user.name"], capture_output=True).returncode == 1


def test_force_never_deletes_the_folder_holding_the_quick_start(tmp_path: Path) -> None:
    # On a copy, so that a broken guard deletes nothing of this checkout.
    tree = tmp_path / "checkout"
    shutil.copytree(QUICKSTART, tree / "examples" / "quickstart")
    proc = subprocess.run(
        ["bash", str(tree / "examples" / "quickstart" / "run.sh"), "--force", "--build-only", str(tree / "examples")],
        cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "refusing to delete" in proc.stderr
    assert (tree / "examples" / "quickstart" / "data" / "docs-v1.parquet").is_file()


def test_run_sh_rejects_unknown_options(tmp_path: Path) -> None:
    proc = _run(["--frobnicate"], _env(tmp_path / "home"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown option '--frobnicate'" in proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]


# -- the whole walk-through ---------------------------------------------------------------------


def _vectorops_on_path(bin_dir: Path) -> str:
    """The folder of this interpreter's `vectorops`, else of a shim running this checkout's CLI."""
    found = shutil.which("vectorops", path=str(Path(sys.executable).parent))
    if found:
        return str(Path(found).parent)
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "vectorops"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(0o755)
    return str(bin_dir)


def test_walkthrough_deploys_v1_then_v2_to_lancedb(tmp_path: Path, v1: Version, v2: Version) -> None:
    bin_dir = _vectorops_on_path(tmp_path / "bin")
    env = _env(tmp_path / "home")
    env["PATH"] = os.pathsep.join([bin_dir, env["PATH"]])
    proc = _run(["qs"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for heading in ("1. Validate", "2. Plan", "6. Plan again", "8. Status", "9. History"):
        assert heading in proc.stdout

    import lancedb

    db = lancedb.connect(str(tmp_path / "qs" / ".vectorops" / "lancedb"))
    for table, expected in (("docs_staging", v2), ("docs_prod", v1)):
        got = db.open_table(table).to_arrow().sort_by("id")
        assert got["id"].to_pylist() == sorted(expected.ids), table
        vectors = np.asarray(got["vector"].combine_chunks().flatten().to_numpy(), dtype=np.float32).reshape(-1, DIM)
        order = [expected.index[i] for i in got["id"].to_pylist()]
        assert np.array_equal(vectors, expected.vectors[order]), table
