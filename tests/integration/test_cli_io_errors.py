"""Ordinary I/O and network failures through the CLI (issue 14 items 5 and 6).

A folder that does not exist, a permission refused, a full disk or an unreachable store is the
user's to fix: one message naming the path or address and what to do, exit 1, no traceback
(tracebacks only with -v), and never "this is a vectorops bug". An apply that hits one in an
environment stops there (the rule the README states) and the next apply finishes it.

The failures are real where this machine allows it even as root (a path under a regular file,
``/sys`` which refuses new files, a closed TCP port standing in for S3); a full disk is injected as
the ``OSError(ENOSPC)`` it raises, at the write boundary, through the failpoints mechanism.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.repo import DatasetRepo


def assert_told_plainly(result: Result, *names: str) -> None:
    assert result.code == 1, result.output
    assert "vectorops bug" not in result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in result.output, result.output


@pytest.fixture
def project(tmp_path: Path, dataset_repo: DatasetRepo) -> Path:
    """A manifest (outside any git repo) deploying v1 to staging and prod, both on local LanceDB."""
    folder = tmp_path / "project"
    write_manifest(
        folder / "vectorops.yaml",
        {
            "staging": environment("v1", lancedb_destination("docs_staging")),
            "prod": environment("v1", lancedb_destination("docs_prod")),
        },
        repo=dataset_repo.root,
    )
    return folder


def vo(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_vectorops("-m", str(project / "vectorops.yaml"), "--no-color", *args, env=env)


def test_plan_out_into_a_missing_folder_names_it_and_writes_nothing(project: Path) -> None:
    target = project / "missing" / "dir" / "x.plan"
    result = vo(project, "plan", "-o", str(target))
    assert_told_plainly(result, str(target.parent), "mkdir -p")
    assert not (project / "missing").exists()
    assert not (project / "db").exists(), "a refused plan left a LanceDB folder behind"


def test_plan_out_under_a_regular_file(project: Path) -> None:
    blocker = project / "notes.txt"
    blocker.write_text("a file, not a folder")
    result = vo(project, "plan", "-o", str(blocker / "x.plan"))
    assert_told_plainly(result, str(blocker), "is a file, not a folder")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs, which refuses new files even to root")
def test_plan_out_where_writing_is_refused(project: Path) -> None:
    result = vo(project, "plan", "-o", "/sys/vectorops-test.plan")
    assert_told_plainly(result, "/sys/vectorops-test.plan", "permission denied")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs, which refuses new folders even to root")
def test_apply_to_a_lancedb_folder_that_cannot_be_created(tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    manifest = write_manifest(
        tmp_path / "vectorops.yaml", {"staging": environment("v1", lancedb_destination("docs", uri="/sys/vectorops-test-db"))}, repo=dataset_repo.root
    )
    result = run_vectorops("-m", str(manifest), "apply", "--auto-approve")
    assert_told_plainly(result, "/sys/vectorops-test-db", "not permitted")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_s3_lancedb_uri(tmp_path: Path, dataset_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    # an S3 endpoint nobody listens on: lance's object store fails to connect, as it does offline
    for key, value in {
        "AWS_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
    }.items():
        monkeypatch.setenv(key, value)
    manifest = write_manifest(
        tmp_path / "vectorops.yaml", {"staging": environment("v1", lancedb_destination("docs", uri="s3://vectorops-test-bucket/db"))}, repo=dataset_repo.root
    )
    for command in (["plan"], ["status"], ["apply", "--auto-approve"]):
        result = run_vectorops("-m", str(manifest), *command)
        assert_told_plainly(result, "s3://vectorops-test-bucket/db", "cannot reach", "Connection refused")
        assert "test-secret" not in result.output
        assert ".rs:" not in result.output, "Rust source locations are noise to a user"


def test_disk_full_mid_apply_stops_there_and_the_next_apply_finishes(project: Path) -> None:
    full = {"VECTOROPS_FAILPOINT": "mid-write:enospc"}
    result = vo(project, "apply", "--auto-approve", env=full)
    assert_told_plainly(result, "staging", "No space left on device", str(project / "db"), "free space")
    # the stated rule: later environments are not attempted after one fails
    assert "Not attempted after the failure: prod" in result.stderr
    assert "next apply" in result.stderr
    plan = vo(project, "plan")
    assert plan.code == 0 and "interrupted" in plan.stdout, plan.output
    assert "Error" not in plan.output
    finished = vo(project, "apply", "--auto-approve")
    assert finished.code == 0, finished.output
    status = vo(project, "status", "--json").json["environments"]
    assert [(e["name"], e["status"], e["records"]) for e in status] == [("staging", "Synced", 1000), ("prod", "Synced", 1000)]


def test_verbose_adds_the_traceback(project: Path) -> None:
    result = vo(project, "-v", "apply", "--auto-approve", env={"VECTOROPS_FAILPOINT": "mid-write:enospc"})
    assert result.code == 1
    assert "No space left on device" in result.stderr
    assert "Traceback" in result.stderr and "OSError: [Errno 28]" in result.stderr
    assert "vectorops bug" not in result.output


# -- item 6: no escape sequences with --no-color / NO_COLOR, on a real terminal ---------------------


def run_on_a_terminal(args: list[str], cwd: Path, **env: str) -> tuple[int, bytes]:
    """The real console script's code path (python -m reconciler) with a pty as stdin/stdout/stderr."""
    master, slave = os.openpty()
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update(env, COLUMNS="80", TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=full_env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, b"".join(chunks)


def test_no_color_and_NO_COLOR_emit_no_escape_sequence_on_a_terminal(project: Path) -> None:
    code, coloured = run_on_a_terminal(["apply", "--auto-approve", "staging"], project)
    assert code == 0, coloured.decode(errors="replace")
    assert b"\x1b[" in coloured, "on a terminal, colour is on by default (else this test proves nothing)"
    for args, env in ((["--no-color", "plan"], {}), (["plan"], {"NO_COLOR": "1"}), (["status", "--no-color"], {}), (["history", "staging"], {"NO_COLOR": "1"})):
        code, out = run_on_a_terminal(args, project, **env)
        assert code == 0, out.decode(errors="replace")
        assert b"staging" in out
        assert b"\x1b" not in out, f"escape sequence with {args} {env}: {out[:400]!r}"
