"""`vectorops suspend ENV` / `resume ENV`: recorded in the environment's state (so every machine sees
it), shown by status and plan, and warned about by an `apply` run by hand (which still applies)."""

from __future__ import annotations

from pathlib import Path

from fixtures.cli import run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.repo import DatasetRepo


def test_suspend_is_recorded_shown_warned_about_and_lifted(tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    manifest = write_manifest(tmp_path / "vectorops.yaml", {"staging": environment("v1", lancedb_destination("docs"))}, repo=dataset_repo.root)
    m = ("-m", str(manifest))
    never = run_vectorops(*m, "suspend", "staging")
    assert never.code == 1 and "does not exist yet" in never.stderr and "sync.auto: false" in never.stderr
    assert run_vectorops(*m, "apply", "--auto-approve").code == 0

    done = run_vectorops(*m, "suspend", "staging", "--reason", "reindexing by hand", env={"VECTOROPS_ACTOR": "ann@laptop"})
    assert done.code == 0, done.output
    assert "Suspended staging (by ann@laptop since" in done.stdout and "vectorops resume staging" in done.stdout
    again = run_vectorops(*m, "suspend", "staging", "--reason", "another reason")
    assert again.code == 0 and "already suspended (by ann@laptop" in again.stdout  # the first record stands

    status = run_vectorops(*m, "status", "--json").json["environments"][0]
    assert status["suspended"]["by"] == "ann@laptop" and status["suspended"]["reason"] == "reindexing by hand"
    assert status["serial"] == 2  # a suspension writes no record: saved plans stay valid
    assert "suspended by ann@laptop since" in run_vectorops(*m, "status").stdout

    write_manifest(manifest, {"staging": environment("v2", lancedb_destination("docs"))}, repo=dataset_repo.root)
    plan = run_vectorops(*m, "plan", "--json").json["environments"][0]
    assert plan["suspended"]["reason"] == "reindexing by hand"
    applied = run_vectorops(*m, "apply", "--auto-approve")
    assert applied.code == 0, applied.output  # a person asked: it applies, and says what it overrides
    assert "staging: warning: this environment is suspended (by ann@laptop since" in applied.stderr
    assert "reindexing by hand" in applied.stderr and "vectorops resume staging" in applied.stderr
    after = run_vectorops(*m, "status", "--json").json["environments"][0]
    assert after["deployed"]["version"] == "v2" and after["suspended"]["reason"] == "reindexing by hand"  # the apply kept it

    assert run_vectorops(*m, "resume", "staging").stdout.startswith("Resumed staging")
    assert run_vectorops(*m, "status", "--json").json["environments"][0]["suspended"] is None
    assert "is not suspended; nothing changed" in run_vectorops(*m, "resume", "staging").stdout
