"""A 0-record dataset version is refused unless the manifest opts in (issue 15 item 8, SPEC §1).

An empty version is almost always a broken pipeline (a filter that matched nothing, an export
that wrote only a header). Deployed to a fresh destination it used to become an empty index, and
to a deployed one it emptied the index behind the delete guard's back once approved. Now plan and
apply refuse it, naming the dataset and commit, on fresh and deployed destinations alike, unless
`policy.allow_empty: true`. Real git + DVC repo, real LanceDB, real CLI.
"""

from __future__ import annotations

from pathlib import Path

import lancedb
import pyarrow as pa

from fixtures import DatasetRepo
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import KnownVersions

DIM = 16


def run(*args: str) -> Result:
    return run_vectorops(*args, env={"NO_COLOR": "1"})


def empty_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([], pa.string()),
            "vector": pa.array([], pa.list_(pa.float32(), DIM)),
            "title": pa.array([], pa.string()),
        }
    )


def count(db: Path, table: str) -> int | None:
    conn = lancedb.connect(str(db))
    names = list(getattr(conn.list_tables(), "tables", []))
    return conn.open_table(table).count_rows() if table in names else None


def test_empty_version_is_refused_on_fresh_and_deployed_destinations_unless_allowed(
    dataset_repo_copy: DatasetRepo, known_versions: KnownVersions, tmp_path: Path
) -> None:
    repo = dataset_repo_copy
    empty = repo.commit_table(empty_table(), tag="v0")
    db = tmp_path / "project" / "db"

    def pin(fresh: str, deployed: str, **policy: object) -> Path:
        extra = {"policy": dict(policy)} if policy else {}
        return write_manifest(
            tmp_path / "project" / "vectorops.yaml",
            {
                "fresh": environment(fresh, lancedb_destination("fresh"), **extra),
                "deployed": environment(deployed, lancedb_destination("deployed"), **extra),
            },
            repo=repo.root,
        )

    m = str(pin("v1", "v1"))
    assert run("-m", m, "apply", "deployed", "--auto-approve").code == 0
    assert count(db, "deployed") == 1000
    m = str(pin("v0", "v0"))

    for env in ("fresh", "deployed"):
        for args in (["plan", env], ["apply", env, "--auto-approve", "--allow-deletes"]):
            result = run("-m", m, *args)
            assert result.code == 1, f"{args}: {result.output}"
            assert "Traceback" not in result.output and "vectorops bug" not in result.output
            err = result.stderr
            assert err.startswith("Error: "), err
            assert "dataset 'docs' at v0" in err and empty.commit[:7] in err and "0 records" in err, err
            assert f"environment '{env}'" in err and "vectorops.yaml:" in err, err
            assert f"environments.{env}.policy.allow_empty: true" in err, err
    assert count(db, "fresh") is None, "a refused apply must not create the table"
    assert count(db, "deployed") == 1000, "a refused apply must not touch the deployed records"

    m = str(pin("v0", "v0", allow_empty=True))
    for env in ("fresh", "deployed"):
        result = run("-m", m, "apply", env, "--auto-approve", "--allow-deletes")
        assert result.code == 0, result.output
        assert "applied v0" in result.stdout
    assert count(db, "fresh") == 0 and count(db, "deployed") == 0
    status = run("-m", m, "status", "--json")
    assert status.code == 0, status.output
    assert [row["status"] for row in status.json["environments"]] == ["Synced", "Synced"]
