"""State written by vectorops 0.1.0 keeps working, and is upgraded by the next write (SPEC §6).

The state here is not an imitation: ``fixtures/state_010/state_010.tar.gz`` is what the 0.1.0 code
itself left in LanceDB and on the local Pinecone server after applying v1 then v2 of a tiny
dataset (``fixtures/state_010/generate.py`` regenerates it by running that release). Each test
unpacks it, drives today's CLI over it, and reads the raw documents back.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pytest

from fixtures.cli import Result, run_vectorops
from reconciler.engine.state import STATE_FORMAT_VERSION
from reconciler.providers.lancedb import LanceDBDestination

ARCHIVE = Path(__file__).resolve().parents[1] / "fixtures" / "state_010" / "state_010.tar.gz"
INDEX = "docs-010"
V1_IDS = {f"doc-{k}" for k in range(24)}
V2_IDS = (V1_IDS - {"doc-0", "doc-1"}) | {"doc-100", "doc-101"}


@pytest.fixture
def written_by_010(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


def manifest(folder: Path, env: str, destination: str, version: str = "v2") -> Path:
    path = folder / "vectorops.yaml"
    path.write_text(
        "version: 1\n"
        "datasets:\n  docs:\n    path: data/docs.parquet\n    repo: repo\n"
        "    embedding: {model: fixture-model, dimension: 8, metric: cosine}\n"
        f"environments:\n  {env}:\n    dataset: docs\n    version: {version}\n    destination: {destination}\n",
        encoding="utf-8",
    )
    return path


def ok(*argv: str, code: int = 0) -> Result:
    result = run_vectorops("--no-color", *argv)
    assert result.code == code, f"vectorops {' '.join(argv)} exited {result.code}\n{result.stdout}\n{result.stderr}"
    return result


def check_reads_010_state(m: Path, env: str) -> None:
    """status, history and plan read 0.1.0's state as it is (nothing written)."""
    row = ok("-m", str(m), "status", "--json").json["environments"][0]
    assert (row["status"], row["deployed"]["version"], row["serial"], row["records"]) == ("Synced", "v2", 4, 24)
    history = ok("-m", str(m), "history", env, "--json").json["history"]
    assert [(h["from"] and h["from"]["version"], h["to"]["version"], h["result"]) for h in history] == [("v1", "v2", "success"), (None, "v1", "success")]
    plan = ok("-m", str(m), "plan", "--json").json
    assert plan["has_changes"] is False and plan["environments"][0]["drift"]["missing"] == 0


def check_upgraded(docs: dict[str, dict[str, Any]], before: dict[str, Any]) -> None:
    """After one write: every document written since carries the current format; 0.1.0's history
    entries are left as they were, and still read."""
    state = docs["state"]
    assert state["format_version"] == STATE_FORMAT_VERSION and state["vectorops_version"]
    assert state["lineage"] == before["lineage"] and state["serial"] == before["serial"] + 2
    assert (state["deployed"]["version"], state["previous"]["version"]) == ("v1", "v2")
    assert "format_version" not in before
    assert "format_version" not in docs["history/0000000002"] and "format_version" not in docs["history/0000000004"]
    assert docs["history/0000000006"]["format_version"] == STATE_FORMAT_VERSION
    assert docs["lock"]["format_version"] == STATE_FORMAT_VERSION and docs["lock"]["released_at"]


# -- LanceDB -------------------------------------------------------------------------------------


def lance_docs(folder: Path) -> dict[str, dict[str, Any]]:
    return dict(LanceDBDestination(uri=str(folder / "db"), table="docs").list_docs(""))


def test_lancedb_state_from_010_is_read_and_upgraded_on_the_next_write(written_by_010: Path) -> None:
    m = manifest(written_by_010, "lance", "{type: lancedb, uri: db, table: docs}")
    check_reads_010_state(m, "lance")
    before = lance_docs(written_by_010)["state"]
    # rollback restores the table tag 0.1.0 took after applying v1 (a metadata operation)
    ok("-m", str(m), "rollback", "lance", "--auto-approve")
    table = lancedb.connect(str(written_by_010 / "db")).open_table("docs")
    assert set(table.to_arrow().column("id").to_pylist()) == V1_IDS
    check_upgraded(lance_docs(written_by_010), before)
    history = ok("-m", str(m), "history", "lance", "--json").json["history"]
    assert [(h["operation"], h["to"]["version"]) for h in history] == [("rollback", "v1"), ("apply", "v2"), ("apply", "v1")]
    assert "format_version" not in history[0]  # a storage detail, not part of `history --json`


def test_state_from_a_newer_vectorops_is_refused_naming_the_version_to_install(written_by_010: Path) -> None:
    m = manifest(written_by_010, "lance", "{type: lancedb, uri: db, table: docs}", version="v1")
    dest = LanceDBDestination(uri=str(written_by_010 / "db"), table="docs")
    newer = {**dest.read_doc("state"), "format_version": STATE_FORMAT_VERSION + 1, "vectorops_version": "0.7.0"}  # type: ignore[dict-item]
    dest.write_doc("state", newer)
    table_version = dest.table_version()
    for argv in (["plan"], ["apply", "--auto-approve"], ["status"]):
        result = ok("-m", str(m), *argv, code=1)
        assert f"vectorops state was written by vectorops 0.7.0 (state format {STATE_FORMAT_VERSION + 1})" in result.stderr
        assert "pip install 'vectorops>=0.7.0'" in result.stderr and "Traceback" not in result.output
    assert dest.read_doc("state") == newer and dest.table_version() == table_version  # nothing written


# -- Pinecone (local server) ---------------------------------------------------------------------


def restore_pinecone(server: Any, folder: Path) -> None:
    """Put back exactly the vectors 0.1.0 left in the index (records and its state documents)."""
    dump = json.loads((folder / "pinecone.json").read_text())
    index = server.create_index(INDEX, dimension=dump["dimension"], metric=dump["metric"])
    for namespace, rows in dump["namespaces"].items():
        records = {vid: (np.asarray(values, dtype=np.float32), metadata) for vid, values, metadata in rows}
        index.commit(namespace, lambda stored, r=records: stored.update(r))


def pinecone_docs() -> dict[str, dict[str, Any]]:
    from reconciler.providers.pinecone import PineconeDestination

    return dict(PineconeDestination(index=INDEX, host=None).list_docs(""))


def test_pinecone_state_from_010_is_read_and_upgraded_on_the_next_write(written_by_010: Path, pinecone_server: Any) -> None:
    pytest.importorskip("pinecone")
    restore_pinecone(pinecone_server, written_by_010)
    m = manifest(written_by_010, "pc", f"{{type: pinecone, index: {INDEX}}}")
    check_reads_010_state(m, "pc")
    before = pinecone_docs()["state"]
    ok("-m", str(m), "rollback", "pc", "--auto-approve")
    stored = pinecone_server.index(INDEX).visible_records("__default__")
    assert set(stored) == V1_IDS
    check_upgraded(pinecone_docs(), before)
