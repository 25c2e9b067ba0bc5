"""A plan served from the hash cache must not pass when the data cannot be read (issue 14 item 2).

The repro: `dvc add` a version without `dvc push`, commit and tag it, plan in the original repo
(which fills the hash cache, keyed by DVC digest), then plan and apply from a fresh clone. The
plan never reads the data, so it used to pass; the apply then recorded its intent, crashed in the
middle of LanceDB's write with an Arrow error called "a vectorops bug", and left an interrupted
apply. Now the plan says the records cannot be read (blocked) and apply refuses with one message
naming the dataset, the commit and where DVC looked, writing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import lancedb

from fixtures.cli import Result, run_vectorops
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo, _dvc


def _manifest(folder: Path, repo: Path, name: str) -> Path:
    path = folder / name
    path.write_text(
        "version: 1\n"
        "datasets:\n"
        "  docs:\n"
        "    path: data/docs.parquet\n"
        f"    repo: {repo}\n"
        "    embedding: {model: test-model, dimension: 16}\n"
        "environments:\n"
        "  staging:\n"
        "    dataset: docs\n"
        "    version: v3\n"
        f"    destination: {{type: lancedb, uri: {folder / 'db'}, table: docs}}\n",
        encoding="utf-8",
    )
    return path


def _run(manifest: Path, *args: str) -> Result:
    return run_vectorops("-m", str(manifest), "--no-color", *args)


def _tables(folder: Path) -> list[str]:
    if not (folder / "db").exists():
        return []
    return list(getattr(lancedb.connect(str(folder / "db")).list_tables(), "tables", []))


def test_data_never_pushed_is_refused_before_anything_is_written(
    dataset_repo_copy: DatasetRepo, known_versions: KnownVersions, tmp_path: Path
) -> None:
    repo = dataset_repo_copy
    v3 = repo.commit_version(known_versions.v2[:500], tag="v3", push=False)  # dvc add, no dvc push
    clone = repo.clone(tmp_path / "clone")
    folder = tmp_path / "project"
    folder.mkdir()
    original, fresh = _manifest(folder, repo.root, "original.yaml"), _manifest(folder, clone, "fresh.yaml")

    saved = tmp_path / "made-where-the-data-is.plan"
    assert _run(original, "plan", "-o", str(saved)).code == 0  # reads the data: fills the hash cache

    planned = _run(fresh, "plan", "--json")
    assert planned.code == 0, planned.output  # blocked does not change plan's exit code (SPEC §4)
    blocked = planned.json["environments"][0]["blocked"]
    assert blocked and "the 500 records to write cannot be read" in blocked
    assert "dataset 'docs'" in blocked and f"at v3 ({v3.commit[:12]})" in blocked and "data/docs.parquet" in blocked
    assert f"the local DVC cache ({clone / '.dvc' / 'cache'}" in blocked and f"DVC remote 'storage' ({repo.remote})" in blocked
    assert "dvc push" in blocked

    for args in (("apply", "--auto-approve"), ("apply", str(saved))):
        refused = _run(fresh, *args)
        assert refused.code == 1, refused.output
        assert "cannot be read" in refused.stderr and v3.commit[:12] in refused.stderr and "DVC remote 'storage'" in refused.stderr
        assert "Traceback" not in refused.output and "vectorops bug" not in refused.output and "Arrow" not in refused.output
    assert "nothing was written" in refused.stderr
    assert _tables(folder) in ([], ["_vectorops"])  # no table created
    status = _run(fresh, "status", "--json").json["environments"][0]
    assert status["deployed"] is None and status["interrupted"] is None and status["serial"] == 0

    with _dvc(repo.root) as dvc:  # the fix the message names
        dvc.push()
    assert _run(fresh, "plan", "--json").json["environments"][0]["blocked"] is None
    applied = _run(fresh, "apply", "--auto-approve")
    assert applied.code == 0, applied.output
    table = lancedb.connect(str(folder / "db")).open_table("docs").to_arrow()
    assert sorted(table.column("id").to_pylist()) == sorted(r["id"] for r in known_versions.v2[:500])
    assert json.loads(_run(fresh, "status", "--json").stdout)["environments"][0]["deployed"]["version"] == "v3"


def test_a_failing_record_stream_surfaces_as_its_own_error_not_arrows(tmp_path: Path, known_versions: KnownVersions) -> None:
    """LanceDB's one-commit fill pulls records through Arrow's C stream, which wrapped any error the
    stream raised (a dataset that turns unreadable mid-apply) as "C Data interface error"."""
    import pytest

    from reconciler.errors import DatasetError
    from reconciler.providers.lancedb import LanceDBDestination
    from reconciler.records import RecordBatch

    dest = LanceDBDestination(uri=str(tmp_path / "db"), table="docs")
    dest.ensure(16, "cosine")
    first = known_versions.v1[:10]

    def stream():
        yield RecordBatch.from_rows([r["id"] for r in first], [r["vector"] for r in first], [{} for _ in first], 16)
        raise DatasetError("dataset 'docs' at v3: the data is in neither the local DVC cache nor DVC remote 'storage'")

    with pytest.raises(DatasetError, match="in neither the local DVC cache"):
        dest.fill(stream())
    assert dest.describe().count == 0  # the one commit never happened
