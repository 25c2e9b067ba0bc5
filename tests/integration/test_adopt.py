"""import and export on real LanceDB: adopting a hand-filled index, and the export → dvc add → import round trip."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, manifest_text, pinecone_destination
from reconciler.providers.lancedb import LanceDBDestination
from reconciler.records import RecordBatch

MANIFEST = manifest_text({"staging": environment("v1", lancedb_destination("docs_staging", uri=".vectorops/lancedb"))})


def run(repo, *args: str) -> Result:
    return run_vectorops("-m", str(repo.root / "vectorops.yaml"), *args)


def batch_of(records: list[dict]) -> RecordBatch:
    meta = [{k: v for k, v in r.items() if k not in ("id", "vector")} for r in records]
    return RecordBatch.from_rows([r["id"] for r in records], [r["vector"] for r in records], meta, 16)


def fill_by_hand(repo, records: list[dict]) -> LanceDBDestination:
    dest = LanceDBDestination(uri=str(repo.root / ".vectorops/lancedb"), table="docs_staging")
    dest.ensure(16, "cosine")
    dest.upsert(batch_of(records))
    return dest


def test_import_of_a_hand_filled_index_reports_and_then_plans_the_exact_remaining_drift(dataset_repo_copy, known_versions) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(MANIFEST)
    v1 = known_versions.v1
    foreign = {**v1[0], "id": "foreign-1"}
    modified = {**v1[5], "vector": (np.asarray(v1[5]["vector"], np.float32) * 2).tolist()}
    hand = [r for r in v1[10:]] + [foreign, modified]  # doc-0..9 missing except the modified #5
    fill_by_hand(repo, hand)

    result = run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--json")
    assert result.code == 0, result.output
    report = json.loads(result.output)
    ids = [r["id"] for r in v1[:10]]
    assert report["drift"]["missing"] == 9
    assert report["drift"]["unexpected"] == 1
    assert report["drift"]["modified"] == 1
    assert report["samples"]["unexpected"] == ["foreign-1"]
    assert report["samples"]["modified"] == [v1[5]["id"]]
    assert sorted(report["samples"]["missing"]) == sorted(i for i in ids if i != v1[5]["id"])
    # --json alone only reports; nothing was recorded
    assert "(nothing deployed)" in run(repo, "status").output

    assert run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve").code == 0
    plan = json.loads(run(repo, "plan", "--json", "--refresh", "full").output)["environments"][0]
    assert plan["current"]["version"] == "v1"
    assert plan["drift"]["missing"] == 9 and plan["drift"]["unexpected"] == 1 and plan["drift"]["modified"] == 1
    assert plan["changes"] == {"add": 9, "update": 1, "delete": 1}
    drift = run(repo, "drift", "--refresh", "full")
    assert drift.code == 2

    assert run(repo, "apply", "--auto-approve", "--refresh", "full").code == 0
    assert run(repo, "drift", "--refresh", "full").code == 0
    history = json.loads(run(repo, "history", "staging", "--json").output)["history"]
    assert [h["operation"] for h in history] == ["apply", "import"]


def test_import_without_terminal_or_approval_is_refused(dataset_repo_copy, known_versions) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(MANIFEST)
    fill_by_hand(repo, known_versions.v1)
    result = run(repo, "import", "staging", "--version", "v1")
    assert result.code == 1
    assert "no terminal" in result.output and "Traceback" not in result.output
    assert "(nothing deployed)" in run(repo, "status").output


def test_export_then_dvc_add_then_import_reports_zero_drift(dataset_repo_copy, known_versions, tmp_path) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(MANIFEST)
    fill_by_hand(repo, known_versions.v2)  # a team with an index but no dataset yet

    out = tmp_path / "export.parquet"
    result = run(repo, "export", "staging", "--out", str(out))
    assert result.code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == len(known_versions.v2)
    assert set(table.column_names) >= {"id", "vector", "title", "chunk", "score", "flag", "tags"}

    shutil.copy(out, repo.file)
    repo._track("exported", "first version from export", True, None)
    result = run(repo, "import", "staging", "--version", "exported", "--refresh", "full", "--json")
    drift = json.loads(result.output)["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)


# -- the same on Pinecone (real SDK, local server) ----------------------------------------------

PINECONE_MANIFEST = manifest_text({"staging": environment("v1", pinecone_destination("adopt-test"))})


def fill_pinecone_by_hand(records: list[dict]):
    from reconciler.providers.pinecone import PineconeDestination

    dest = PineconeDestination(index="adopt-test", host=None)
    dest.ensure(16, "cosine")
    dest.upsert(batch_of(records))
    dest.after_apply()
    return dest


def test_pinecone_import_then_plan_shows_remaining_drift(dataset_repo_copy, known_versions, pinecone_server) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(PINECONE_MANIFEST)
    v1 = known_versions.v1
    fill_pinecone_by_hand(v1[3:] + [{**v1[0], "id": "foreign-1"}])

    report = json.loads(run(repo, "import", "staging", "--version", "v1", "--refresh", "ids", "--json").output)
    assert (report["drift"]["missing"], report["drift"]["unexpected"]) == (3, 1)
    assert report["samples"]["unexpected"] == ["foreign-1"]
    assert run(repo, "import", "staging", "--version", "v1", "--auto-approve").code == 0
    plan = json.loads(run(repo, "plan", "--json").output)["environments"][0]
    assert plan["changes"] == {"add": 3, "update": 0, "delete": 1}
    assert run(repo, "drift").code == 2
    assert run(repo, "apply", "--auto-approve").code == 0
    assert run(repo, "drift", "--refresh", "full").code == 0


def test_pinecone_export_dvc_add_import_round_trip(dataset_repo_copy, known_versions, pinecone_server, tmp_path) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(PINECONE_MANIFEST)
    fill_pinecone_by_hand(known_versions.v2)
    out = tmp_path / "export.parquet"
    result = run(repo, "export", "staging", "--out", str(out))
    assert result.code == 0, result.output
    assert pq.read_table(out).num_rows == len(known_versions.v2)  # vectorops' own state is not exported
    shutil.copy(out, repo.file)
    repo._track("exported", "first version from export", True, None)
    drift = json.loads(run(repo, "import", "staging", "--version", "exported", "--refresh", "full", "--json").output)["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)
