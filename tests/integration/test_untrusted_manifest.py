"""A pull request edits the manifest and canary files: what it writes there must not turn vectorops
against the machine it runs on (issue 15 items 2, 7 and 11).

* Item 2: canary paths stay inside the repository holding the manifest (symlinks resolved), and
  errors about a canary file's content name the place and the kind of problem, never the text,
  so neither the CLI nor the Action (PR comment, job summary) can publish a file of the runner.
* Item 7: YAML is bounded: file size, nesting depth, and values after alias expansion, for the
  manifest and canary files; each refusal is one message with file:line:col, fast and small.
* Item 11: control characters are refused in manifest values (names, revs, paths) and escaped in
  every value echoed from data (ids), so nothing can forge a line (or a `::` workflow command) in
  a CI log or recolour a terminal.

Everything runs through the CLI (in-process, or as the console script when memory is measured)
and through the Action's entry point (`python -m reconciler.github`) against the local fake of
the GitHub API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from fixtures import DatasetRepo, make_records
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, manifest_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from github_fake import FakeGitHub  # noqa: E402

DIM = 16
SECRET = "S3cret_hunter2_value"  # what a runner's private file holds
SHADOW = f"root:$6$salt$hash:19000:0:99999:7:::\n{SECRET}: 1\napi_token: {SECRET}\n"


def run(*args: str) -> Result:
    return run_vectorops(*args, env={"NO_COLOR": "1"})


def refused(result: Result, *fragments: str) -> str:
    assert result.code == 1, f"expected exit 1, got {result.code}\n{result.output}"
    assert "Traceback" not in result.output and "vectorops bug" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"
    return result.output


def write(repo: DatasetRepo, canaries: str | None = None, version: str = "v1", table: str = "docs_staging") -> Path:
    """The manifest inside the dataset's git repo (as in a real project), optionally with canaries."""
    extra = {"validation": {"canaries": canaries}} if canaries is not None else {}
    env = environment(version, lancedb_destination(table, uri=None), **extra)
    return repo.write_manifest(manifest_text({"staging": env}, dimension=DIM, metric=None))


# -- item 2: canary paths and canary content -----------------------------------------------------


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "runner-private" / "shadow"
    path.parent.mkdir()
    path.write_text(SHADOW)
    return path


def _canary_paths(repo: DatasetRepo, secret_file: Path) -> dict[str, str]:
    link = repo.root / "canaries-link.yaml"
    link.symlink_to(secret_file)
    return {
        "absolute": str(secret_file),
        "relative": os.path.relpath(secret_file, repo.root),
        "symlink in the repo": link.name,
        "home": "~/../../" + str(secret_file).lstrip("/"),
    }


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("absolute", ("validate",)),
        ("relative", ("validate",)),
        ("home", ("validate",)),
        ("symlink in the repo", ("validate", "--canaries")),
        ("relative", ("plan",)),
    ],
)
def test_a_canary_path_outside_the_repository_is_refused_unread(
    dataset_repo_copy: DatasetRepo, secret_file: Path, kind: str, command: tuple[str, ...]
) -> None:
    path = _canary_paths(dataset_repo_copy, secret_file)[kind]
    manifest = write(dataset_repo_copy, canaries=path)
    text = refused(run("-m", str(manifest), *command), "vectorops.yaml:", "outside the git repository holding the manifest")
    assert SECRET not in text and "root:" not in text and "api_token" not in text


@pytest.mark.parametrize(
    "content",
    [
        f"{SECRET}: 1\nqueries:\n  - {{name: a, vector_of: doc-000001, expect: [doc-000001]}}\n",  # unknown key
        f"top_k: {SECRET}\nqueries:\n  - {{name: a, vector_of: doc-000001, expect: [doc-000001]}}\n",  # wrong type
        f"queries:\n  - name: a\n    name: {SECRET}\n",  # duplicate key
        f"queries: *{SECRET}\n",  # undefined alias: PyYAML quotes it
        SHADOW,
    ],
)
def test_errors_about_a_canary_file_name_the_place_never_the_content(dataset_repo_copy: DatasetRepo, content: str) -> None:
    (dataset_repo_copy.root / "canaries.yaml").write_text(content)
    manifest = write(dataset_repo_copy, canaries="canaries.yaml")
    text = refused(run("-m", str(manifest), "validate", "--canaries"), "canaries.yaml:")
    assert SECRET not in text and "(got" not in text and "root:" not in text, text


# -- item 7: bounded YAML ------------------------------------------------------------------------

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 10)}]\n" for i in range(9)
)
BOMBS = {
    "billion laughs": ("version: 1\n" + LAUGHS, "once aliases (*name) are expanded"),
    "50,000 nested [": ("version: 1\ndatasets: " + "[" * 50_000 + "]" * 50_000 + "\n", "nesting deeper than 64 levels"),
    "an alias inside itself": ("version: 1\ndatasets: &x [*x]\n", "nesting deeper than 64 levels"),
    "an oversized file": ("version: 1\n" + "#" * (5 * 1024 * 1024) + "\n", "bytes; vectorops reads YAML files of at most"),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_yaml_bomb_manifest_is_refused_fast_in_bounded_memory(tmp_path: Path, bomb: str) -> None:
    """Run as the console script is, so its peak memory can be read (`os.wait4`)."""
    text, fragment = BOMBS[bomb]
    manifest = tmp_path / "vectorops.yaml"
    manifest.write_text(text)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "-m", str(manifest), "validate"],
        capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=60,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "vectorops bug" not in output and "Traceback" not in output, output
    assert f"{manifest}:" in output and fragment in output, output
    assert output.count("Error:") == 1, output
    assert elapsed < 30, f"took {elapsed:.0f} s"


@pytest.mark.parametrize("bomb", ["billion laughs", "50,000 nested [", "an oversized file"])
def test_a_yaml_bomb_canary_file_is_refused_with_its_place(dataset_repo_copy: DatasetRepo, bomb: str) -> None:
    text, fragment = BOMBS[bomb]
    (dataset_repo_copy.root / "canaries.yaml").write_text(text.replace("version: 1\n", "top_k: 1\n"))
    manifest = write(dataset_repo_copy, canaries="canaries.yaml")
    refused(run("-m", str(manifest), "validate", "--canaries"), "canaries.yaml:", fragment)


def test_billion_laughs_stays_small(tmp_path: Path) -> None:
    """Peak memory of the refusing process, read from the kernel: VmHWM, its own address space's
    high-water mark in KiB (not ru_maxrss, which Linux carries over across exec from the forking
    parent: a pytest worker that had grown to 800 MB made the child report 800 MB)."""
    manifest = tmp_path / "vectorops.yaml"
    manifest.write_text("version: 1\n" + LAUGHS)
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n    main(['-m', sys.argv[1], 'validate'])\nexcept SystemExit as e:\n    code = e.code\n"
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
        "print(hwm, code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(manifest)], capture_output=True, text=True, timeout=60)
    peak_kib, exit_code = proc.stdout.split()[-2:]
    assert exit_code == "1", proc.stdout + proc.stderr
    assert int(peak_kib) < 400 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB"


# -- item 11: control characters -----------------------------------------------------------------

FORGED = "::error title=forged::vectorops approved this"


def _forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("::") and "forged" in line]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("version: v1", 'version: "v1\\r\\n' + FORGED + '"'),
        ("version: v1", 'version: "v1\\e[31mred"'),
        ("model: test-model", 'model: "test\\nmodel"'),
        ("table: docs_staging", 'table: "docs\\r\\n' + FORGED + '"'),
    ],
)
def test_control_characters_in_manifest_values_are_refused_with_their_place(
    dataset_repo_copy: DatasetRepo, old: str, new: str
) -> None:
    manifest = write(dataset_repo_copy)
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))
    line = next(i for i, row in enumerate(manifest.read_text().splitlines(), 1) if new in row)
    output = refused(run("-m", str(manifest), "validate"), f"vectorops.yaml:{line}:", "a control character (U+00")
    assert not _forged_lines(output) and "\x1b" not in output and "\r" not in output, output


def test_ids_with_control_characters_are_escaped_in_plans(dataset_repo_copy: DatasetRepo) -> None:
    records = make_records(5, DIM, seed=3)
    records[0]["id"] = "doc-a\r\n" + FORGED
    records[1]["id"] = "\x1b[2J\x1b[31mdoc-b"
    records[2]["id"] = FORGED
    dataset_repo_copy.commit_version(records, tag="odd-ids")
    manifest = write(dataset_repo_copy, version="odd-ids")
    result = run("-m", str(manifest), "plan")
    assert result.code == 0, result.output
    assert "5 to add" in result.output
    assert not _forged_lines(result.output), result.output
    assert "\x1b" not in result.output and "\r" not in result.output, result.output
    assert "doc-a\\r\\n" in result.output and "\\e[2J" in result.output  # shown, visibly escaped


# -- the Action entry point ----------------------------------------------------------------------


def _run_action(repo: Path, tmp_path: Path, gh: FakeGitHub) -> tuple[subprocess.CompletedProcess[str], str, str]:
    from reconciler import github as action
    from tests.integration.test_github_action import GIT_ID, action_env

    root = str(Path(action.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **GIT_ID, **action_env(tmp_path, gh), "PYTHONPATH": pythonpath}
    proc = subprocess.run([sys.executable, "-m", "reconciler.github"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    summary = (tmp_path / "summary.md").read_text() if (tmp_path / "summary.md").exists() else ""
    return proc, summary, "\n".join(gh.bodies(42))


@pytest.fixture
def action_repo(tmp_path: Path) -> Path:
    from tests.integration.test_github_action import _dataset_repo

    return _dataset_repo(tmp_path)


def _edit_manifest(repo: Path, old: str, new: str) -> None:
    manifest = repo / "vectorops.yaml"
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_the_action_never_publishes_a_canary_files_content(tmp_path: Path, action_repo: Path, secret_file: Path, where: str) -> None:
    if where == "outside":
        path = os.path.relpath(secret_file, action_repo)
    else:
        (action_repo / "canaries.yaml").write_text(SHADOW.replace("root:", "top_k: ") + f"queries: {SECRET}\n")
        path = "canaries.yaml"
    _edit_manifest(action_repo, "    version: docs-v1\n", f"    version: docs-v1\n    validation: {{canaries: {path}}}\n")
    with FakeGitHub() as gh:
        proc, summary, comments = _run_action(action_repo, tmp_path, gh)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert comments and summary, "the action reported the failure"
    for published in (proc.stdout, proc.stderr, summary, comments):
        assert SECRET not in published and "root:" not in published and "api_token" not in published, published
    if where == "outside":
        assert "outside the git repository holding the manifest" in summary


def test_the_action_refuses_a_manifest_that_is_a_symlink_out_of_the_checkout(tmp_path: Path, action_repo: Path, secret_file: Path) -> None:
    (action_repo / "vectorops.yaml").unlink()
    (action_repo / "vectorops.yaml").symlink_to(secret_file)
    with FakeGitHub() as gh:
        proc, summary, comments = _run_action(action_repo, tmp_path, gh)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "outside the workspace" in summary
    for published in (proc.stdout, proc.stderr, summary, comments):
        assert SECRET not in published and "api_token" not in published, published


def test_the_action_publishes_no_forged_line_from_a_manifest_value(tmp_path: Path, action_repo: Path) -> None:
    _edit_manifest(action_repo, "version: docs-v1", 'version: "docs-v1\\n' + FORGED + '"')
    with FakeGitHub() as gh:
        proc, summary, comments = _run_action(action_repo, tmp_path, gh)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "a control character (U+000A)" in summary and "vectorops.yaml:9:" in summary, summary
    for published in (proc.stdout, proc.stderr, summary, comments):
        assert not _forged_lines(published) and "approved this" not in published, published


def test_the_action_escapes_control_characters_in_ids(tmp_path: Path, action_repo: Path) -> None:
    import pyarrow.parquet as pq

    from tests.integration.test_github_action import _sh

    table = pq.read_table(action_repo / "data" / "docs.parquet")
    ids = table.column("id").to_pylist()
    ids[0], ids[1] = "doc-a\n" + FORGED, "\x1b[31mdoc-b"
    pq.write_table(table.set_column(0, "id", pa.array(ids)), action_repo / "data" / "docs.parquet")
    _sh(action_repo, sys.executable, "-m", "dvc", "add", "-q", "data/docs.parquet")
    _sh(action_repo, "git", "commit", "-qam", "odd ids")
    _sh(action_repo, "git", "tag", "-f", "docs-v1")
    with FakeGitHub() as gh:
        proc, summary, comments = _run_action(action_repo, tmp_path, gh)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan_json = json.loads((tmp_path / "temp" / "vectorops-plan.json").read_text())
    assert plan_json["environments"][0]["changes"]["add"] == 5
    for published in (proc.stdout, summary, comments):
        assert not _forged_lines(published) and "\x1b" not in published, published
