"""One destination per environment per command: every command opens each environment's
destination at most once, through plan, apply, validation and `requires`, and closes all it opened.

The destinations are of a registered test type (``fixtures.counting``: the in-memory destination,
opens and closes counted per environment), named in a real manifest over a real DVC dataset, and
the commands run through the CLI's own entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import counting
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo
from reconciler.providers import registry
from reconciler.providers.memory import MemoryDestination


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    counting.register_counting_type(site)
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    counting.reset()
    yield
    registry.clear_cache()
    counting.reset()
    counting.WARN_AFTER_APPLY.clear()
    MemoryDestination.forget()


def _manifest(folder: Path, repo: DatasetRepo, known: KnownVersions, staging: str, prod: str) -> Path:
    anchor = min(known.unchanged)
    (folder / "canaries.yaml").write_text(f"top_k: 1\nqueries:\n  - name: self\n    vector_of: {anchor}\n    expect: [{anchor}]\n", encoding="utf-8")
    envs = {
        "staging": environment(staging, {"type": "counting", "name": f"{folder.name}-staging"}, validation={"canaries": "canaries.yaml"}),
        "prod": environment(prod, {"type": "counting", "name": f"{folder.name}-prod"}, requires=["staging"]),
    }
    return write_manifest(folder / "vectorops.yaml", envs, repo=repo.root)


def _run(manifest: Path, *argv: str) -> tuple[Result, dict[str, int], dict[str, int]]:
    counting.reset()
    result = run_vectorops("-m", str(manifest), "--no-color", *argv)
    return result, dict(counting.OPENED), dict(counting.CLOSED)


def test_each_command_opens_each_destination_once_and_closes_it(
    tmp_path: Path, counted: None, dataset_repo: DatasetRepo, known_versions: KnownVersions
) -> None:
    manifest = _manifest(tmp_path, dataset_repo, known_versions, "v1", "v1")

    # plan of both: prod's `requires` reads staging's state through the destination the plan already opened
    result, opened, closed = _run(manifest, "plan")
    assert result.code == 0, result.output
    assert opened == {"staging": 1, "prod": 1} and closed == opened

    # apply: plan, lock, intent, writes, result and canaries through one destination
    result, opened, closed = _run(manifest, "apply", "--auto-approve", "staging")
    assert result.code == 0, result.output
    assert "staging: applied v1" in result.output and "validation passed" in result.output
    assert opened == {"staging": 1} and closed == opened
    # prod's `requires` reads staging's state: staging opened once too
    result, opened, closed = _run(manifest, "apply", "--auto-approve", "prod")
    assert result.code == 0, result.output
    assert "prod: applied v1" in result.output
    assert opened == {"staging": 1, "prod": 1} and closed == opened

    for argv in (["status"], ["drift"], ["history", "staging"], ["promote", "staging", "prod"], ["suspend", "prod"], ["resume", "prod"]):
        result, opened, closed = _run(manifest, *argv)
        assert result.code == 0, (argv, result.output)
        assert set(opened.values()) == {1} and closed == opened, argv

    # v2 on staging, then back: the rollback plans, writes and validates through one destination
    manifest = _manifest(tmp_path, dataset_repo, known_versions, "v2", "v1")
    result, opened, closed = _run(manifest, "apply", "--auto-approve", "staging")
    assert result.code == 0, result.output
    assert opened == {"staging": 1} and closed == opened
    result, opened, closed = _run(manifest, "rollback", "staging", "--auto-approve")
    assert result.code == 0, result.output
    assert "rolled back to v1" in result.output
    assert opened == {"staging": 1} and closed == opened


def test_a_failing_command_still_closes_what_it_opened(
    tmp_path: Path, counted: None, dataset_repo: DatasetRepo, known_versions: KnownVersions
) -> None:
    manifest = _manifest(tmp_path, dataset_repo, known_versions, "v1", "v2")
    # prod requires staging to run v2 first: blocked, exit 1, after both destinations were read
    result, opened, closed = _run(manifest, "apply", "--auto-approve", "prod")
    assert result.code == 1, result.output
    assert "requires 'staging'" in result.output
    assert opened == {"prod": 1, "staging": 1} and closed == opened


def test_what_a_destination_warns_about_during_an_apply_is_shown_after_it_once_and_safe(
    tmp_path: Path, counted: None, dataset_repo: DatasetRepo, known_versions: KnownVersions, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "warn-canary-s3cret-4711"
    monkeypatch.setenv("VECTOROPS_TEST_API_KEY", key)  # a secret-looking variable: its value is masked wherever it shows
    manifest = _manifest(tmp_path, dataset_repo, known_versions, "v1", "v1")
    counting.WARN_AFTER_APPLY["staging"] = f"the index build ran slow\n(key {key} in [bold]the reply[/bold])"

    result, _, _ = _run(manifest, "apply", "--auto-approve", "staging")
    assert result.code == 0, result.output
    assert "staging: applied v1" in result.stdout
    # once, on stderr (stdout stays the plan and the outcome), on one line, the secret masked,
    # the destination's text shown as text (no markup applied)
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [
        f"warning   memory:{tmp_path.name}-staging: the index build ran slow (key *** in [bold]the reply[/bold])"
    ]
    assert key not in result.output and "s3cret" not in result.output

    # a command that writes nothing through it hears nothing
    result, _, _ = _run(manifest, "plan", "staging")
    assert result.code == 0 and "warning" not in result.output
