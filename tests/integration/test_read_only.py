"""Commands that only read create nothing at a LanceDB `uri` (issue 15 item 10).

`lancedb.connect` creates the database folder, parents included, so a `plan` against a typo'd or
not-yet-used uri used to leave empty folders behind, even outside the project. Only `apply` (and
`import`, which writes state) may create the database folder, and only where the manifest says.
Real LanceDB, real CLI, real git + DVC repo.
"""

from __future__ import annotations

from pathlib import Path

from fixtures import DatasetRepo
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest


def run(*args: str) -> Result:
    return run_vectorops(*args, env={"NO_COLOR": "1"})


def test_read_only_commands_create_no_folders_and_apply_creates_only_its_own(dataset_repo: DatasetRepo, tmp_path: Path) -> None:
    project = tmp_path / "project"
    outside = tmp_path / "elsewhere"  # outside the project: `uri: ../elsewhere/deep/db`
    manifest = write_manifest(
        project / "vectorops.yaml",
        {
            "staging": environment("v1", lancedb_destination("docs_staging", uri=None)),  # default .vectorops/lancedb
            "prod": environment("v1", lancedb_destination("docs_prod", uri="../elsewhere/deep/db")),
        },
        repo=dataset_repo.root,
    )
    m = str(manifest)
    plans = tmp_path / "plans"
    plans.mkdir()

    def read_everything() -> None:
        for args in (
            ["validate"],
            ["plan"],
            ["plan", "--json", "--refresh", "full"],
            ["plan", "-o", str(plans / "p.zip")],
            ["show", str(plans / "p.zip")],
            ["status"],
            ["status", "--json"],
            ["history", "staging"],
            ["history", "prod"],
            ["versions", "docs"],
        ):
            result = run("-m", m, *args)
            assert result.code == 0, f"{args}: {result.output}"
        for env in ("staging", "prod"):
            drift = run("-m", m, "drift", env)  # nothing deployed: a clear refusal, still nothing created
            assert "Traceback" not in drift.output

    read_everything()
    assert not (project / ".vectorops").exists(), sorted(p.name for p in project.iterdir())
    assert not outside.exists(), "a read-only command created folders outside the project"

    applied = run("-m", m, "apply", "staging", "--auto-approve")
    assert applied.code == 0, applied.output
    assert (project / ".vectorops" / "lancedb").is_dir()  # apply creates the database, where the manifest says
    assert not outside.exists(), "applying staging must not touch prod's uri"

    read_everything()
    assert run("-m", m, "drift", "staging").code == 0
    assert not outside.exists()
