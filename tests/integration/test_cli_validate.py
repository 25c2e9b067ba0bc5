"""`vectorops validate` (and the bad-input paths of `plan`) through the real CLI entry point.

`main()` is run in-process under click's CliRunner isolation, exactly as the console script runs
it (same error mapping, same exit codes); a few tests run the installed `vectorops` script as a
subprocess to prove the wiring. Datasets are real git + DVC repos with a local-folder remote.
Every failure must be one message with exit 1 and no traceback: the user reads it in CI logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures import DatasetRepo, make_records
from fixtures.bad_data import commit_bad_versions
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, pinecone_destination, write_manifest

DIM = 16
VECTOROPS = Path(sys.executable).with_name("vectorops")


def run(*args: str, cwd: Path | None = None) -> Result:
    """``vectorops ARGS`` in-process (from ``cwd`` if given); stdin is not a terminal, as in CI."""
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return run_vectorops(*args, env={"NO_COLOR": "1"})
    finally:
        os.chdir(old)


def manifest(
    folder: Path,
    repo: Path | str | None,
    version: str = "v1",
    dataset: dict[str, Any] | None = None,
    extra_envs: dict[str, dict[str, Any]] | None = None,
    dimension: int = DIM,
) -> Path:
    """A manifest in ``folder`` pinning ``version`` of ``repo``'s data/docs.parquet (``dataset`` adds keys).

    The broken-manifest tests below edit its text and expect errors at fixed line:column
    positions: they rely on the block layout fixtures.manifests writes.
    """
    envs = {"staging": environment(version, lancedb_destination("docs_staging", uri=None)), **(extra_envs or {})}
    return write_manifest(folder / "vectorops.yaml", envs, repo=repo, dimension=dimension, metric=None, dataset_keys=dataset)


def fails(result: Result, *fragments: str) -> str:
    """Exit 1, one clean message holding every fragment, and no traceback or 'bug' report."""
    assert result.code == 1, f"expected exit 1, got {result.code}\n{result.output}"
    assert "Traceback" not in result.output and "vectorops bug" not in result.output, result.output
    assert result.stderr.startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


# -- a good manifest -------------------------------------------------------------------------------


def test_validate_passes_and_prints_each_environments_commit(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    destination = pinecone_destination("docs-prod", "VECTOROPS_TEST_UNSET_KEY", host="http://127.0.0.1:9")
    prod = environment("v2", destination, requires=["staging"])
    path = manifest(tmp_path, dataset_repo.root, extra_envs={"prod": prod})
    result = run("-m", str(path), "validate")
    assert result.code == 0, result.output
    v1, v2 = (dataset_repo.git("rev-parse", f"{t}^{{commit}}") for t in ("v1", "v2"))
    assert "vectorops.yaml is valid: 1 dataset, 2 environments" in result.stdout
    assert f"staging: docs @ v1 ({v1[:7]}, digest {dataset_repo.digest_in_dvc_file('v1')[:12]})" in result.stdout
    assert f"prod: docs @ v2 ({v2[:7]}, digest {dataset_repo.digest_in_dvc_file('v2')[:12]})" in result.stdout
    assert result.stderr == ""


def test_validate_writes_nothing_to_any_destination(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path / "deploy", dataset_repo.root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert run("-m", str(path), "validate").code == 0
    assert not (tmp_path / "deploy" / ".vectorops").exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_validate_reads_the_pinned_commit_not_the_working_tree(dataset_repo_copy: DatasetRepo) -> None:
    """The manifest lives in the dataset's own repo (no `repo:`), whose working file is broken."""
    repo = dataset_repo_copy
    path = manifest(repo.root, None)
    repo.file.write_bytes(b"not parquet")
    result = run("-m", str(path), "validate")
    assert result.code == 0, result.output
    assert f"staging: docs @ v1 ({repo.git('rev-parse', 'v1^{commit}')[:7]}" in result.stdout


def test_validate_reads_from_the_remote_in_a_fresh_clone(dataset_repo: DatasetRepo, dataset_clone: Path, tmp_path: Path) -> None:
    path = manifest(tmp_path, dataset_clone, version="v2")
    assert run("-m", str(path), "validate").code == 0


@pytest.mark.parametrize("order", ["before", "after", "both-sides"])
def test_global_options_before_or_after_the_command(dataset_repo: DatasetRepo, tmp_path: Path, order: str) -> None:
    path = str(manifest(tmp_path, dataset_repo.root))
    args = {
        "before": ["-m", path, "--no-color", "validate"],
        "after": ["validate", "--manifest", path, "-v"],
        "both-sides": ["--no-color", "validate", "-m", path],
    }[order]
    result = run(*args)
    assert result.code == 0 and "is valid" in result.stdout, result.output


def test_default_manifest_is_the_one_in_the_current_folder(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    manifest(tmp_path, dataset_repo.root)
    assert run("validate", cwd=tmp_path).code == 0
    fails(run("validate", cwd=tmp_path / ".."), "no vectorops.yaml in", "or a folder above it", "-m/--manifest PATH")


def test_the_installed_script_with_options_on_both_sides(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    path = str(manifest(tmp_path, dataset_repo.root))
    env = dict(os.environ, NO_COLOR="1", DVC_NO_ANALYTICS="1")
    for args in (["-m", path, "validate"], ["validate", "-m", path]):
        proc = subprocess.run([str(VECTOROPS), *args], capture_output=True, text=True, env=env, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "is valid" in proc.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ndatasets: [\n")
    proc = subprocess.run([str(VECTOROPS), "validate", "-m", str(broken)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1 and f"{broken}:3:1: invalid YAML" in proc.stderr and "Traceback" not in proc.stderr


# -- usage errors are exit 1, never click's 2 ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["validate", "--bogus"], "No such option '--bogus'"),
        (["--bogus", "validate"], "No such option '--bogus'"),
        (["validate", "extra-argument"], "Got unexpected extra argument"),
        (["history"], "Missing argument 'ENVIRONMENT'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["validate", "-m"], "Option '-m' requires an argument"),
    ],
    ids=["unknown-flag-after", "unknown-flag-before", "extra-argument", "missing-argument", "unknown-command", "option-without-value"],
)
def test_usage_errors_exit_1(args: list[str], fragment: str) -> None:
    fails(run(*args), fragment)


# -- broken manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where", "fragment"),
    [
        ("environments:\n", "environments: [\n", "11:12", "invalid YAML"),
        ("      dimension: 16\n", "      dimension: 16\n      dims: 3\n", "9:7", "unknown key 'dims' in datasets.docs.embedding"),
        ("    version: v1\n", "", "11:5", "missing required key 'version' in environments.staging"),
        ("  staging:", "  Staging:", "10:3", "invalid name 'Staging' in environments"),
        ("    dataset: docs\n", "    dataset: dcos\n", "11:14", "environment 'staging' uses unknown dataset 'dcos'"),
        ("    version: v1\n", "    version: v1\n    version: v2\n", "13:5", "duplicate key 'version'"),
    ],
    ids=["yaml-syntax", "unknown-key", "missing-key", "bad-name", "unknown-dataset", "duplicate-key"],
)
def test_broken_manifest(dataset_repo: DatasetRepo, tmp_path: Path, old: str, new: str, where: str, fragment: str) -> None:
    path = manifest(tmp_path, dataset_repo.root)
    path.write_text(path.read_text().replace(old, new, 1))
    fails(run("validate", "-m", str(path)), f"{path}:{where}: {fragment}")


def test_broken_manifest_reports_every_problem_once(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, dataset_repo.root, dimension=0)
    path.write_text(path.read_text().replace("type: lancedb", "type: lancedb\n      tabel: x") + "extra: 1\n")
    stderr = fails(run("-m", str(path), "validate"))
    assert stderr.count(str(path)) == 3
    for where in ("8:18", "15:7", "17:1"):
        assert f"{path}:{where}: " in stderr


# -- dataset bad inputs: one test each -------------------------------------------------------------


def test_unknown_rev(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    """The error points at the line to fix, the environment's ``version:``, and names the environment (issue 14 item 10)."""
    path = manifest(tmp_path, dataset_repo.root, version="v9")
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.strip() == "version: v9")
    where = f"{path}:{line}:{lines[line - 1].index('v9') + 1}"
    for command in ("validate", "plan", "status"):
        stderr = fails(run("-m", str(path), command), f"{where}: environment 'staging' pins version 'v9'", "dataset 'docs'", "Pin an existing tag")
        assert "Tags there: v2, v1" in stderr or "Tags there: v1, v2" in stderr


def test_path_not_tracked_at_that_rev(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    first = dataset_repo.git("rev-list", "--max-parents=0", "HEAD")
    path = manifest(tmp_path, dataset_repo.root, version=first)
    fails(run("-m", str(path), "validate"), f"data/docs.parquet is not tracked by DVC at {first}", "dvc add data/docs.parquet")


def test_data_in_neither_cache_nor_remote(dataset_repo_copy: DatasetRepo, tmp_path: Path) -> None:
    repo = dataset_repo_copy
    repo.commit_version(make_records(10, DIM, seed=8), tag="v3", push=False)
    clone = repo.clone(tmp_path / "clone")
    path = manifest(tmp_path / "deploy", clone, version="v3")
    fails(run("-m", str(path), "validate"), "in neither the local DVC cache", f"DVC remote 'storage' ({repo.remote})", "dvc push")


def test_missing_columns(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, dataset_repo.root, dataset={"vector_field": "embedding", "metadata_fields": ["title", "url"]})
    fails(run("-m", str(path), "validate"), "missing column(s) 'embedding', 'url'", "the file has: 'id', 'vector', 'title'")


def test_dimension_differing_from_the_manifest(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, dataset_repo.root, dimension=12)
    fails(run("-m", str(path), "validate"), "has dimension 16; the manifest declares 12")


@pytest.fixture(scope="module")
def bad_repo(tmp_path_factory: pytest.TempPathFactory) -> DatasetRepo:
    """One repo, one tagged commit per kind of bad data (built once for the module)."""
    repo = DatasetRepo.create(tmp_path_factory.mktemp("bad") / "repo")
    good = make_records(30, DIM, seed=1)

    commit_bad_versions(repo, good, DIM)
    # the same id in two files of a tracked directory: no single batch shows it
    repo.path = "data/shards"
    repo.commit_shards([good[:15], [*good[15:], dict(good[0])]], tag="dup-across-files")
    return repo


def test_nan_or_infinite_vectors(bad_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, bad_repo.root, version="nan")
    fails(run("-m", str(path), "validate"), "records 'doc-3', 'doc-7' have NaN, infinite or missing values", "at nan")


def test_duplicate_ids_are_named(bad_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, bad_repo.root, version="dup-ids")
    fails(run("-m", str(path), "validate"), "duplicate ids: 'doc-1'")


def test_duplicate_ids_across_files_are_named_by_plan(bad_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, bad_repo.root, version="dup-across-files")
    path.write_text(path.read_text().replace("path: data/docs.parquet", "path: data/shards"))
    assert run("-m", str(path), "validate").code == 0  # validate samples the first batch only
    stderr = fails(run("-m", str(path), "plan"), "duplicate ids: doc-0")
    assert "deduplicate" in stderr


def test_empty_ids(bad_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, bad_repo.root, version="empty-ids")
    fails(run("-m", str(path), "validate"), "empty or missing ids at rows 2, 9 (counting from 0)")


def test_non_string_ids(bad_repo: DatasetRepo, tmp_path: Path) -> None:
    path = manifest(tmp_path, bad_repo.root, version="int-ids")
    fails(run("-m", str(path), "validate"), "id column 'id' holds int64 values", "ids must be strings")


def test_dataset_repo_that_is_not_there(tmp_path: Path) -> None:
    path = manifest(tmp_path, tmp_path / "gone")
    fails(run("-m", str(path), "validate"), f"{path}:5:11: datasets.docs.repo: no such folder {tmp_path / 'gone'}")


def test_manifest_outside_git_without_repo(tmp_path: Path) -> None:
    path = manifest(tmp_path / "not-a-repo", None)
    if shutil.which("git") and subprocess.run(["git", "-C", str(path.parent), "rev-parse"], capture_output=True, check=False).returncode == 0:
        pytest.skip("the temp folder is inside a git repository")
    fails(run("-m", str(path), "validate"), "dataset 'docs' has no 'repo'", "is not inside a git repository")
