"""A malformed state record in the destination: a clear error, and `import` as the documented repair.

State lives beside the records (SPEC §6), so anyone with write access to the index can break it
(a hand edit, a half-restored backup, another tool). vectorops must then refuse to guess: plan,
apply and status exit 1 naming the record and the recovery, and `import ENV --version REV`
rewrites the state from what the index holds so that plan works again. Real LanceDB, real CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from fixtures import DatasetRepo
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from reconciler.manifest import load_manifest
from reconciler.providers import open_destination
from reconciler.providers.lancedb import DOCS_SCHEMA

ENV = "staging"


def run(*args: str) -> Result:
    """``vectorops ARGS`` in-process with no terminal, as in CI."""
    return run_vectorops(*args, env={"NO_COLOR": "1"})


@pytest.fixture
def applied(dataset_repo: DatasetRepo, tmp_path: Path) -> Path:
    """A manifest whose LanceDB environment has v1 applied; returns the manifest path."""
    staging = environment("v1", lancedb_destination("docs_staging", uri=None))
    path = write_manifest(tmp_path / "vectorops.yaml", {ENV: staging}, repo=dataset_repo.root, metric=None)
    result = run("-m", str(path), "apply", "--auto-approve")
    assert result.code == 0, result.output
    return path


def _write_raw(manifest: Path, text: str) -> None:
    """Overwrite the state record's JSON text directly in the LanceDB side table."""
    dest = open_destination(load_manifest(str(manifest)), ENV)
    docs = dest._docs_table()  # noqa: SLF001 - the raw row is the point: write_doc only takes valid JSON
    row = pa.table({"key": [f"{dest.table_name}/state"], "doc": [text]}, schema=DOCS_SCHEMA)
    docs.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)


def _write_doc(manifest: Path, doc: dict) -> None:
    open_destination(load_manifest(str(manifest)), ENV).write_doc("state", doc)


def _table_version(manifest: Path) -> int | None:
    return open_destination(load_manifest(str(manifest)), ENV).table_version()


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "not-json": lambda m: _write_raw(m, "{this is not json"),
    "json-array": lambda m: _write_raw(m, json.dumps([1, 2, 3])),
    "missing-lineage": lambda m: _write_doc(m, {"serial": 3}),
    "serial-wrong-type": lambda m: _write_doc(m, {"lineage": "x", "serial": "many"}),
    "deployed-wrong-shape": lambda m: _write_doc(m, {"lineage": "x", "serial": 2, "deployed": {"version": "v1"}}),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_state_is_a_clear_error_and_import_repairs_it(applied: Path, kind: str) -> None:
    m = str(applied)
    before = _table_version(applied)
    CORRUPTIONS[kind](applied)

    for args in (["plan", ENV], ["apply", ENV, "--auto-approve"], ["status", ENV], ["history", ENV]):
        result = run("-m", m, *args)
        if args[0] == "history" and result.code == 0:
            continue  # history documents are separate records; only the state one is broken here
        assert result.code == 1, f"{args}: {result.output}"
        assert "Traceback" not in result.output and "vectorops bug" not in result.output, result.output
        assert result.stderr.startswith("Error: "), result.output
        assert "state" in result.stderr and "malformed" in result.stderr or "not valid JSON" in result.stderr, result.stderr
        assert "docs_staging" in result.stderr, f"the message must name the record: {result.stderr}"
        assert "vectorops import ENV --version REV" in result.stderr, result.stderr
    assert _table_version(applied) == before, "a refused apply must not write records"

    repaired = run("-m", m, "import", ENV, "--version", "v1", "--auto-approve")
    assert repaired.code == 0, repaired.output
    assert "recorded as deployed at v1" in repaired.stdout

    plan = run("-m", m, "plan", ENV, "--detailed-exitcode")
    assert plan.code == 0, plan.output  # the index holds v1 exactly: nothing to do
    status = run("-m", m, "status", ENV, "--json")
    assert status.code == 0, status.output
    row = json.loads(status.stdout)["environments"][0]
    assert row["status"] == "Synced" and row["deployed"]["version"] == "v1"
    history = run("-m", m, "history", ENV, "--json")
    assert history.code == 0, history.output
    operations = [e["operation"] for e in json.loads(history.stdout)["history"]]
    assert operations == ["import", "apply"], f"the repair must keep the earlier history: {operations}"


def test_corrupt_history_record_is_skipped_and_named(applied: Path) -> None:
    """Never fatal (issue 15 item 5): the entry is skipped and named, the rest of history still shows."""
    dest = open_destination(load_manifest(str(applied)), ENV)
    key = dest.list_docs("history/")[0][0]
    dest.write_doc(key, {"serial": "not a number"})
    result = run("-m", str(applied), "history", ENV)
    assert result.code == 0, result.output
    assert "Traceback" not in result.output and "vectorops bug" not in result.output
    assert "skipped 1 unreadable history entry" in result.stderr and key in result.stderr and "not a history record" in result.stderr


def test_corrupt_lock_record_does_not_strand_the_environment(applied: Path, dataset_repo: DatasetRepo) -> None:
    """An unreadable lock cannot be honoured: the next apply replaces it rather than failing forever."""
    open_destination(load_manifest(str(applied)), ENV).write_doc("lock", {"owner": 5})
    applied.write_text(applied.read_text().replace("version: v1", "version: v2"))
    result = run("-m", str(applied), "apply", ENV, "--auto-approve", "--allow-deletes")
    assert result.code == 0, result.output
    assert "applied v2" in result.stdout
    assert os.environ.get("VECTOROPS_ACTOR") == "tester@ci"
