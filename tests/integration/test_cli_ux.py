"""What a new user notices first, through the CLI (issue 14 items 10 and 11).

Each test drives ``vectorops`` as a user does and checks what they see: wording, hints, the
history of applies (killed ones included), usage errors, warnings about uncommitted files, and
finding the manifest from a subfolder. Real git + DVC repos, real LanceDB, a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import lancedb
import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, manifest_text, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo, run_git


def ok(result: Result, code: int = 0) -> Result:
    assert result.code == code, result.output
    return result


def usage_error(result: Result, *fragments: str) -> str:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output and "vectorops bug" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


class Project:
    """A manifest outside git pointing at the shared dataset repo (v1, v2), with a LanceDB folder."""

    def __init__(self, folder: Path, repo: Path, version: str = "v1", **extra: object) -> None:
        self.folder = folder
        self.manifest = write_manifest(folder / "vectorops.yaml", {"staging": environment(version, lancedb_destination("docs"), **extra)}, repo=repo)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_vectorops("-m", str(self.manifest), "--no-color", *args, env=env)

    def subprocess(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The real console entry point in its own process (a failpoint may SIGKILL it)."""
        full = dict(os.environ, NO_COLOR="1", **env)
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "-m", str(self.manifest), *args], capture_output=True, text=True, env=full, check=False
        )


@pytest.fixture
def project(tmp_path: Path, dataset_repo: DatasetRepo) -> Project:
    return Project(tmp_path / "project", dataset_repo.root)


# -- entry point and usage ------------------------------------------------------------------------


def test_no_arguments_prints_help_and_exits_0() -> None:
    result = run_vectorops()
    assert result.code == 0, result.output
    assert result.stdout.startswith("Usage: vectorops") and "plan" in result.stdout and "apply" in result.stdout
    assert "Error" not in result.output


def test_apply_planfile_takes_no_environment_and_no_approval_flags(project: Project) -> None:
    plan_file = project.folder / "v1.plan"
    ok(project.run("plan", "-o", str(plan_file)))
    usage_error(project.run("apply", str(plan_file), "staging"), "either environments or one saved plan file", str(plan_file))
    for flag in (["--allow-deletes"], ["--replace"], ["--refresh", "full"]):
        usage_error(project.run("apply", str(plan_file), *flag), f"{flag[0]}", "cannot change a saved plan", "vectorops plan")
    assert not (project.folder / "db").exists(), "a refused apply wrote something"
    ok(project.run("apply", str(plan_file)))  # the plan alone still applies


def test_refused_rollback_and_import_hint_at_their_own_auto_approve(project: Project, dataset_repo: DatasetRepo) -> None:
    ok(project.run("apply", "--auto-approve"))
    write_manifest(project.manifest, {"staging": environment("v2", lancedb_destination("docs"))}, repo=dataset_repo.root)
    ok(project.run("apply", "--auto-approve"))
    rollback = usage_error(project.run("rollback", "staging"), "vectorops rollback staging --auto-approve")
    assert "plan -o" not in rollback
    refused = usage_error(project.run("import", "staging", "--version", "v2"), "vectorops import staging --version v2 --refresh ids --auto-approve")
    assert "plan -o" not in refused


def test_export_hint_adds_commits_and_pushes(project: Project) -> None:
    ok(project.run("apply", "--auto-approve"))
    out = project.folder / "data" / "docs.parquet"
    out.parent.mkdir()
    result = ok(project.run("export", "staging", "--out", str(out)))
    assert "wrote 1,000 records" in result.stdout
    assert f"dvc add {out}" in result.stdout and f"git add {out}.dvc" in result.stdout and "dvc push" in result.stdout


# -- wording --------------------------------------------------------------------------------------


def test_wording_is_written_for_people(project: Project, dataset_repo: DatasetRepo) -> None:
    validate = ok(project.run("validate")).stdout
    assert "1 dataset, 1 environment" in validate and "(s)" not in validate
    first = ok(project.run("apply", "--auto-approve")).output
    assert "Plan: 1,000 to add, 0 to update, 0 to delete in 1 environment." in first
    assert "+   1,000 to add" in first and "+1,000 ~0 -0" in first and "(s)" not in first
    plan = ok(project.run("plan")).stdout
    assert "No changes. 1 environment matches its pinned version." in plan
    assert "1,000 records, 1,000 expected" in plan
    assert "unknown environment 'prod'" in usage_error(project.run("plan", "prod"))


def test_status_says_whether_canaries_passed(tmp_path: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions) -> None:
    canaries = tmp_path / "project" / "canaries.yaml"
    canaries.parent.mkdir(parents=True)
    first = known_versions.v1[0]["id"]
    canaries.write_text(json.dumps({"top_k": 5, "queries": [{"name": "self", "vector_of": first, "expect": [first]}]}))
    project = Project(tmp_path / "project", dataset_repo.root, validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    ok(project.run("apply", "--auto-approve"))
    status = ok(project.run("status")).stdout
    assert "canaries passed" in status and "validated: True" not in status


def test_sample_ids_never_wrap_inside_an_id_at_80_columns(project: Project, known_versions: KnownVersions) -> None:
    plan = ok(project.run("plan", env={"COLUMNS": "80"})).stdout
    lines = plan.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    listed = [tok.rstrip(",") for line in lines if line.startswith(" " * 12) for tok in line.split() if tok.startswith("doc-")]
    ids = {r["id"] for r in known_versions.v1}
    assert len(listed) == 10 and set(listed) <= ids, listed  # every sample id whole, on lines of their own
    assert "… 990 more" in plan


# -- status and history ---------------------------------------------------------------------------


def test_status_json_gives_the_lock_as_fields(project: Project) -> None:
    from reconciler.engine.state import StateStore
    from reconciler.manifest import load_manifest
    from reconciler.providers import open_destination

    ok(project.run("apply", "--auto-approve"))
    store = StateStore(open_destination(load_manifest(project.manifest), "staging"))
    lock = store.acquire("apply", lease_seconds=300)
    try:
        row = ok(project.run("status", "--json")).json["environments"][0]
        assert row["lock"]["lock_id"] == lock.id
        assert row["lock"]["owner"] == lock.owner == "tester@ci"
        assert row["lock"]["expires_at"] == lock.expires_at
        assert lock.id in ok(project.run("status")).stdout
    finally:
        store.release(lock)
    assert ok(project.run("status", "--json")).json["environments"][0]["lock"] is None


def test_history_shows_killed_applies_whole_counts_every_serial_and_how_many_of_how_many(project: Project, dataset_repo: DatasetRepo) -> None:
    ok(project.run("apply", "--auto-approve"))
    write_manifest(project.manifest, {"staging": environment("v2", lancedb_destination("docs"))}, repo=dataset_repo.root)
    killed = project.subprocess("apply", "--auto-approve", VECTOROPS_FAILPOINT="before-result")
    assert killed.returncode == -9, killed.stderr
    pending = ok(project.run("history", "staging", "--json")).json
    assert [e["result"] for e in pending["history"]] == ["interrupted", "success"]
    assert pending["history"][0]["counts"] == {"add": 120, "update": 45, "delete": 30}
    ok(project.run("apply", "--auto-approve"))  # finishes it: nothing left to write, the version moves
    data = ok(project.run("history", "staging", "--json")).json
    assert data["total"] == 3
    finisher, cut_off, first = data["history"]
    assert (finisher["result"], cut_off["result"], first["result"]) == ("success", "interrupted", "success")
    assert finisher["counts"] == cut_off["counts"] == {"add": 120, "update": 45, "delete": 30}
    assert "finished an interrupted apply" in finisher["message"]
    taken = []
    for e in data["history"]:
        taken.extend(range(e.get("intent_serial") or e["serial"], e["serial"] + 1))
    assert sorted(taken) == list(range(1, max(taken) + 1)), f"serials skipped: {sorted(taken)}"
    human = ok(project.run("history", "staging")).stdout
    assert "3 applies" in human and "interrupted" in human and "+120 ~45 -30" in human
    assert re.search(r"#4-5 .* success", human) and re.search(r"#3 .* interrupted", human) and re.search(r"#1-2 ", human)
    limited = ok(project.run("history", "staging", "--limit", "2")).stdout
    assert limited.startswith("staging: 2 of 3 applies"), limited
    assert len(ok(project.run("history", "staging", "--limit", "2", "--json")).json["history"]) == 2


# -- no empty folder after a failed plan ----------------------------------------------------------


def test_a_failed_plan_leaves_no_lancedb_folder(tmp_path: Path, dataset_repo_copy: DatasetRepo, known_versions: KnownVersions) -> None:
    dup = [dict(r) for r in known_versions.v1]
    dup[4]["id"] = dup[1]["id"]
    dataset_repo_copy.commit_version(dup, tag="dup-ids")
    project = Project(tmp_path / "project", dataset_repo_copy.root, version="dup-ids")
    usage_error(project.run("plan"), "duplicate ids")
    assert not (project.folder / "db").exists(), "a failed plan created the LanceDB folder"
    ok(project.run("status"))
    assert not (project.folder / "db").exists(), "status created the LanceDB folder"


# -- LanceDB metadata: the documented way to query it works -----------------------------------------


def test_the_readme_metadata_query_finds_exactly_the_matching_records(project: Project, known_versions: KnownVersions) -> None:
    ok(project.run("apply", "--auto-approve"))
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert """where(\"\"\"metadata LIKE '%"module":"json"%'\"\"\")""" in readme
    table = lancedb.connect(str(project.folder / "db")).open_table("docs")
    title = known_versions.v1[7]["title"]
    want = {r["id"] for r in known_versions.v1 if r.get("title") == title}
    pattern = '"title":' + json.dumps(title)
    got = table.search().where(f"metadata LIKE '%{pattern}%'").limit(None).select(["id"]).to_arrow().column("id").to_pylist()
    assert set(got) == want and want


# -- uncommitted files and finding the manifest (items 10 and 11) ----------------------------------


@pytest.fixture
def repo_with_manifest(dataset_repo_copy: DatasetRepo) -> DatasetRepo:
    """The manifest committed at the dataset repo's root (no ``repo:``: the manifest's own repo)."""
    text = manifest_text({"staging": environment("v1", lancedb_destination("docs", uri=".vectorops/db"))})
    dataset_repo_copy.write_manifest(text, commit=True)
    return dataset_repo_copy


def run_in(folder: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.chdir(folder)
    return run_vectorops("--no-color", *args)


def test_uncommitted_manifest_or_dvc_file_is_warned_about(repo_with_manifest: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo_with_manifest.root
    clean = ok(run_in(root, "plan", monkeypatch=monkeypatch))
    assert "Warning" not in clean.output
    manifest = root / "vectorops.yaml"
    manifest.write_text(manifest.read_text() + "# an edit nobody reviewed\n")
    edited = ok(run_in(root, "plan", "--json", monkeypatch=monkeypatch))
    json.loads(edited.stdout)  # warnings go to stderr: --json stays parseable
    assert "Warning: vectorops.yaml has uncommitted changes" in edited.stderr
    run_git(root, "commit", "-qam", "edit")
    (root / "data" / "docs.parquet.dvc").write_text((root / "data" / "docs.parquet.dvc").read_text() + "# edited\n")
    dvc = ok(run_in(root, "apply", "--auto-approve", monkeypatch=monkeypatch))
    assert "Warning: data/docs.parquet.dvc has uncommitted changes" in dvc.stderr and "not part of the plan" in dvc.stderr
    (root / "other.yaml").write_text(manifest.read_text())
    untracked = ok(run_vectorops("-m", "other.yaml", "plan"))
    assert "Warning: other.yaml is not tracked by git" in untracked.stderr


def test_manifest_is_found_from_a_subfolder_up_to_the_git_root(repo_with_manifest: DatasetRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = repo_with_manifest.root
    deep = root / "src" / "deeper"
    deep.mkdir(parents=True)
    ok(run_in(deep, "apply", "--auto-approve", monkeypatch=monkeypatch))
    assert (root / ".vectorops" / "db").is_dir(), "relative uris stay relative to the manifest's folder"
    assert not (deep / ".vectorops").exists()
    status = ok(run_in(deep, "status", "--json", monkeypatch=monkeypatch)).json
    assert status["environments"][0]["status"] == "Synced"
    # -m still wins
    other = tmp_path / "elsewhere" / "vectorops.yaml"
    write_manifest(other, {"prod": environment("v1", lancedb_destination("docs"))}, repo=root)
    assert ok(run_in(deep, "-m", str(other), "status", "--json", monkeypatch=monkeypatch)).json["environments"][0]["name"] == "prod"
    # the search stops at the git root: a manifest above the repository is not picked up
    (root.parent / "vectorops.yaml").write_text(manifest_text({"x": environment("v1", lancedb_destination("x"))}, repo=root))
    (root / "vectorops.yaml").unlink()
    lost = usage_error(run_in(deep, "status", monkeypatch=monkeypatch), "no vectorops.yaml in", "-m/--manifest PATH")
    assert str(root.parent / "vectorops.yaml") not in lost


# -- the README tells the truth ---------------------------------------------------------------------

README = Path(__file__).parents[2] / "README.md"


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n{title}\n")
    ends = [i for i in (text.find("\n## ", start + 2), text.find("\n### ", start + 2)) if i != -1]
    return text[start : min(ends, default=len(text))]


def test_readme_manifest_puts_rollback_on_failure_on_the_environment(tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    block = readme_section("## The manifest").split("```yaml\n", 1)[1].split("```", 1)[0]
    doc = __import__("yaml").safe_load(block)
    staging = doc["environments"]["staging"]
    assert staging.get("rollback_on_failure") is True and "rollback_on_failure" not in staging["validation"]
    # and vectorops accepts it there: the README's environments, pointed at a real dataset repo
    doc["datasets"]["docs"].update(repo=str(dataset_repo.root), embedding={"model": "test-model", "dimension": 16}, metadata_fields=None)
    doc["environments"] = {"staging": {**staging, "version": "v1", "validation": None, "destination": lancedb_destination("docs")}}
    del doc["environments"]["staging"]["validation"]
    path = tmp_path / "vectorops.yaml"
    path.write_text(__import__("yaml").safe_dump(doc))
    ok(run_vectorops("-m", str(path), "validate"))


def test_readme_adoption_snippet_commits_the_dvc_file_and_pushes() -> None:
    snippet = readme_section("### Adopting an existing index")
    assert "vectorops export prod --out data/docs.parquet" in snippet
    assert "git add data/*.dvc" in snippet and "dvc push" in snippet


def test_a_corrupt_dvc_file_at_the_pinned_commit_is_named_with_that_commit(tmp_path: Path) -> None:
    from fixtures.records import make_records

    repo = DatasetRepo.create(tmp_path / "repo")
    repo.commit_version(make_records(5, 16, seed=1), tag="v1")
    good = (repo.root / "data" / "docs.parquet.dvc").read_text()
    broken = repo.commit_file("data/docs.parquet.dvc", good.replace("md5:", "md5: [unclosed"), "a bad hand edit")
    repo.git("tag", "broken")
    manifest = write_manifest(
        tmp_path / "project" / "vectorops.yaml",
        {"staging": environment("broken", lancedb_destination("docs", uri=str(tmp_path / "db")))},
        repo=repo.root, dimension=16, metric=None,
    )

    result = run_vectorops("-m", str(manifest), "plan", env={"NO_COLOR": "1"})

    assert result.code == 1, result.output
    assert f"DVC cannot read data/docs.parquet at commit {broken}:" in result.stderr  # was "at commit ?"
    assert "docs.parquet.dvc" in result.stderr and "commit ?" not in result.output
    assert "Traceback" not in result.output and "vectorops bug" not in result.output


def test_the_console_script_exits_with_the_command_s_code_its_whole_output_and_the_exit_hooks_run(project: Project) -> None:
    """``vectorops`` skips Python's slow teardown (``cli.run``): what a user or a script sees of the exit
    stays: the exit code (0, 1 and --detailed-exitcode's 2), every byte of output through a pipe, and
    the exit hooks libraries registered (here one registered before the command)."""
    hook = "import atexit, sys\natexit.register(lambda: print('exit hook ran', file=sys.stderr))\nfrom reconciler.cli import run\nrun()\n"

    def console(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", hook, *args], capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"),
                              check=False, cwd=project.folder, timeout=300)

    changes = console("plan", "--json", "--detailed-exitcode")
    assert changes.returncode == 2, changes.stderr
    assert json.loads(changes.stdout)["environments"][0]["changes"]["add"] > 0  # the whole document, parseable
    assert changes.stderr.rstrip().endswith("exit hook ran")

    ok(project.run("apply", "--auto-approve"))
    same = console("plan", "--json", "--detailed-exitcode")
    assert same.returncode == 0 and json.loads(same.stdout)["environments"][0]["changes"]["add"] == 0

    bad = console("-m", "missing.yaml", "plan")
    assert bad.returncode == 1 and "missing.yaml" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.rstrip().endswith("exit hook ran")

    helped = subprocess.run([sys.executable, "-m", "reconciler", "--help"], capture_output=True, text=True, check=False, timeout=120)
    assert helped.returncode == 0 and "plan" in helped.stdout and "apply" in helped.stdout
