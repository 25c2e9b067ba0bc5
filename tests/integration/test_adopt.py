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
    report = json.loads(result.stdout)
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
    plan = json.loads(run(repo, "plan", "--json", "--refresh", "full").stdout)["environments"][0]
    assert plan["current"]["version"] == "v1"
    assert plan["drift"]["missing"] == 9 and plan["drift"]["unexpected"] == 1 and plan["drift"]["modified"] == 1
    assert plan["changes"] == {"add": 9, "update": 1, "delete": 1}
    drift = run(repo, "drift", "--refresh", "full")
    assert drift.code == 2

    assert run(repo, "apply", "--auto-approve", "--refresh", "full").code == 0
    assert run(repo, "drift", "--refresh", "full").code == 0
    history = json.loads(run(repo, "history", "staging", "--json").stdout)["history"]
    assert [h["operation"] for h in history] == ["apply", "import"]


def test_import_json_with_auto_approve_prints_one_json_document_that_says_it_recorded(dataset_repo_copy, known_versions) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(MANIFEST)
    fill_by_hand(repo, known_versions.v1)

    looked = run(repo, "import", "staging", "--version", "v1", "--json")
    assert looked.code == 0, looked.output
    assert json.loads(looked.stdout)["recorded"] is False  # the whole of stdout is the document

    result = run(repo, "import", "staging", "--version", "v1", "--json", "--auto-approve")
    assert result.code == 0, result.output
    report = json.loads(result.stdout)  # nothing after the document (json.loads refuses extra data)
    assert report["recorded"] is True and report["version"]["version"] == "v1"
    assert "recorded as deployed" not in result.output
    assert json.loads(run(repo, "status", "--json").stdout)["environments"][0]["deployed"]["version"] == "v1"


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
    drift = json.loads(result.stdout)["drift"]
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

    report = json.loads(run(repo, "import", "staging", "--version", "v1", "--refresh", "ids", "--json").stdout)
    assert (report["drift"]["missing"], report["drift"]["unexpected"]) == (3, 1)
    assert report["samples"]["unexpected"] == ["foreign-1"]
    assert run(repo, "import", "staging", "--version", "v1", "--auto-approve").code == 0
    plan = json.loads(run(repo, "plan", "--json").stdout)["environments"][0]
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
    drift = json.loads(run(repo, "import", "staging", "--version", "exported", "--refresh", "full", "--json").stdout)["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)


# -- adopting LanceDB tables vectorops did not create (issue 14 item 4) ---------------------------

ADOPT = ".vectorops/lancedb"


def _adopt_manifest(repo, version: str) -> None:
    repo.write_manifest(
        manifest_text(
            {
                "source": environment("v1", lancedb_destination("source", uri=ADOPT)),
                "staging": environment(version, lancedb_destination("docs_staging", uri=ADOPT)),
            }
        )
    )


def _db(repo):
    import lancedb

    return lancedb.connect(str(repo.root / ADOPT))


def _vectors(records: list[dict]):
    import pyarrow as pa

    return pa.array([np.asarray(r["vector"], np.float32) for r in records], pa.list_(pa.float32(), 16))


def _content(repo) -> dict[str, tuple[bytes, dict]]:
    """id -> (vector bytes, metadata without absent fields), whatever columns the table keeps them in."""
    t = _db(repo).open_table("docs_staging").to_arrow()
    out = {}
    for row in t.to_pylist():
        meta = json.loads(row.pop("metadata") or "{}") if "metadata" in row else {}
        meta.update({k: v for k, v in row.items() if k not in ("id", "vector") and v is not None})
        out[row["id"]] = (np.asarray(row["vector"], np.float32).tobytes(), meta)
    return out


def _want(records: list[dict]) -> dict[str, tuple[bytes, dict]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector")})
        for r in records
    }


def _adopt_then_move_to_v2(repo, known_versions, *, import_drift: tuple[int, int, int], first_update: int) -> None:
    """import at v1 (full), then plan and apply v1 (repairs) and v2 through the CLI, checking content."""
    result = run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--json")
    assert result.code == 0, result.output
    drift = json.loads(result.stdout)["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == import_drift
    assert run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve").code == 0
    plan = json.loads(run(repo, "plan", "staging", "--refresh", "full", "--json").stdout)["environments"][0]
    assert plan["blocked"] is None and plan["changes"] == {"add": 0, "update": first_update, "delete": 0}
    if first_update:
        applied = run(repo, "apply", "staging", "--refresh", "full", "--auto-approve")
        assert applied.code == 0, applied.output
    assert _content(repo) == _want(known_versions.v1)

    _adopt_manifest(repo, "v2")
    plan = json.loads(run(repo, "plan", "staging", "--refresh", "full", "--json").stdout)["environments"][0]
    assert plan["blocked"] is None and plan["changes"] == {"add": 120, "update": 45, "delete": 30}
    applied = run(repo, "apply", "staging", "--auto-approve")
    assert applied.code == 0, applied.output
    assert _content(repo) == _want(known_versions.v2)
    after = json.loads(run(repo, "plan", "staging", "--refresh", "full", "--json").stdout)["environments"][0]
    assert after["changes"] == {"add": 0, "update": 0, "delete": 0}
    assert (after["drift"]["missing"], after["drift"]["unexpected"], after["drift"]["modified"]) == (0, 0, 0)


def test_a_table_built_from_export_output_is_adopted_and_applied(dataset_repo_copy, known_versions, tmp_path) -> None:
    """The export → someone builds a LanceDB table from it → import/plan/apply flow: metadata as real columns."""
    repo = dataset_repo_copy
    _adopt_manifest(repo, "v1")
    source = LanceDBDestination(uri=str(repo.root / ADOPT), table="source")
    source.ensure(16, "cosine")
    source.upsert(batch_of(known_versions.v1))
    out = tmp_path / "export.parquet"
    assert run(repo, "export", "source", "--out", str(out)).code == 0
    _db(repo).create_table("docs_staging", data=pq.read_table(out))  # as a team would, with lancedb itself

    _adopt_then_move_to_v2(repo, known_versions, import_drift=(0, 0, 0), first_update=0)
    columns = _db(repo).open_table("docs_staging").schema.names
    assert "metadata" not in columns and {"title", "chunk", "score", "flag", "tags"} <= set(columns)  # kept its layout


def test_a_table_with_metadata_as_json_is_adopted(dataset_repo_copy, known_versions) -> None:
    import pyarrow as pa

    repo = dataset_repo_copy
    _adopt_manifest(repo, "v1")
    v1 = known_versions.v1
    meta = [json.dumps({k: v for k, v in r.items() if k not in ("id", "vector")}) for r in v1]
    _db(repo).create_table("docs_staging", data=pa.table({"id": [r["id"] for r in v1], "vector": _vectors(v1), "metadata": meta}))
    _adopt_then_move_to_v2(repo, known_versions, import_drift=(0, 0, 0), first_update=0)


def test_a_table_without_metadata_is_adopted_and_gains_the_columns(dataset_repo_copy, known_versions) -> None:
    import pyarrow as pa

    repo = dataset_repo_copy
    _adopt_manifest(repo, "v1")
    v1 = known_versions.v1
    _db(repo).create_table("docs_staging", data=pa.table({"id": [r["id"] for r in v1], "vector": _vectors(v1)}))
    # every record lacks its metadata: modified, then rewritten (metadata-only updates)
    _adopt_then_move_to_v2(repo, known_versions, import_drift=(0, 0, 1000), first_update=1000)


def test_a_table_of_another_shape_is_refused_before_anything_is_written(dataset_repo_copy, known_versions) -> None:
    import pyarrow as pa

    repo = dataset_repo_copy
    _adopt_manifest(repo, "v1")
    v1 = known_versions.v1[:5]
    table = _db(repo).create_table(
        "docs_staging", data=pa.table({"doc_id": [r["id"] for r in v1], "embedding": _vectors(v1)})
    )
    before = table.version
    for args in (("import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve"), ("plan", "staging"), ("apply", "staging", "--auto-approve")):
        result = run(repo, *args)
        assert result.code == 1, (args, result.output)
        assert "lancedb:.vectorops/lancedb#docs_staging: this table cannot be adopted" in result.stderr
        assert "no string column 'id' and no column 'vector' (its columns: doc_id, embedding)" in result.stderr
        assert "a string column 'id'" in result.stderr and "fixed-size lists of float32 of the manifest's dimension" in result.stderr
        assert "Traceback" not in result.output and "vectorops bug" not in result.output
    assert _db(repo).open_table("docs_staging").version == before
    assert json.loads(run(repo, "history", "staging", "--json").stdout)["history"] == []  # no state recorded


def test_metadata_that_does_not_fit_the_tables_columns_is_refused_before_writing(dataset_repo_copy, known_versions) -> None:
    import pyarrow as pa

    repo = dataset_repo_copy
    _adopt_manifest(repo, "v1")
    v1 = known_versions.v1[:5]
    table = _db(repo).create_table(
        "docs_staging", data=pa.table({"id": [r["id"] for r in v1], "vector": _vectors(v1), "title": [1, 2, 3, 4, 5]})
    )
    before = table.version
    for args in (("plan", "staging"), ("apply", "staging", "--auto-approve")):
        result = run(repo, *args)
        assert result.code == 1, (args, result.output)
        assert "metadata field 'title' is string in the dataset, but the table's column 'title' is int64" in result.stderr
        assert "nothing was written" in result.stderr and "Traceback" not in result.output
    assert _db(repo).open_table("docs_staging").version == before


def test_pinecone_index_of_another_dimension_or_metric_is_refused_before_writing(dataset_repo_copy, pinecone_server) -> None:
    repo = dataset_repo_copy
    repo.write_manifest(PINECONE_MANIFEST)
    pinecone_server.create_index("adopt-test", dimension=8, metric="cosine")
    result = run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve")
    assert result.code == 1, result.output
    assert "pinecone:adopt-test cannot be adopted for environment 'staging': its dimension is 8, the manifest declares 16" in result.stderr
    refused = run(repo, "apply", "--auto-approve")
    assert refused.code == 1 and "pinecone:adopt-test: its dimension is 8 but the manifest declares 16" in refused.stderr
    assert "__vectorops__" not in pinecone_server.index("adopt-test").namespaces  # nothing recorded

    repo.write_manifest(PINECONE_MANIFEST.replace("adopt-test", "adopt-metric"))
    pinecone_server.create_index("adopt-metric", dimension=16, metric="euclidean")
    result = run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve")
    assert result.code == 1, result.output
    assert "its metric is euclidean, the manifest declares cosine" in result.stderr and "nothing was written" in result.stderr
    assert "__vectorops__" not in pinecone_server.index("adopt-metric").namespaces


def test_a_table_with_a_timestamp_column_keeps_it_typed_and_plans_no_drift(make_dataset_repo) -> None:
    """A dataset's timestamps go into an adopted table's timestamp column as timestamps (not text
    the column would refuse), hash as the ISO text they always did, and a full refresh of the table
    finds it exactly as the dataset says; a changed timestamp is one metadata update."""
    import datetime as dt

    import pyarrow as pa

    from fixtures.records import make_records

    records = make_records(30, 16, seed=5)
    for i, r in enumerate(records):
        r["published"] = dt.datetime(2024, 1, 5, 10, i, tzinfo=dt.timezone.utc)
    repo = make_dataset_repo()
    repo.commit_version(records, tag="v1")
    _adopt_manifest(repo, "v1")
    table = pa.table({"id": [r["id"] for r in records], "vector": _vectors(records), "title": [r["title"] for r in records],
                      "published": pa.array([r["published"] for r in records], pa.timestamp("us", tz="UTC"))})
    _db(repo).create_table("docs_staging", data=table)
    result = run(repo, "import", "staging", "--version", "v1", "--refresh", "full", "--auto-approve")
    assert result.code == 0, result.output
    plan = json.loads(run(repo, "plan", "staging", "--refresh", "full", "--json").stdout)["environments"][0]
    # the dataset's other fields (chunk, score, …) are new columns for the table: every record gains them
    assert plan["changes"]["update"] == 30 and plan["drift"]["modified"] == 30
    assert run(repo, "apply", "staging", "--refresh", "full", "--auto-approve").code == 0

    records[7]["published"] = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    repo.commit_version(records, tag="v2")
    _adopt_manifest(repo, "v2")
    plan = json.loads(run(repo, "plan", "staging", "--refresh", "full", "--json").stdout)["environments"][0]
    assert plan["changes"] == {"add": 0, "update": 1, "delete": 0} and plan["drift"]["modified"] == 0
    assert run(repo, "apply", "staging", "--auto-approve").code == 0
    stored = _db(repo).open_table("docs_staging").to_arrow()
    assert stored.schema.field("published").type == pa.timestamp("us", tz="UTC")
    by_id = dict(zip(stored.column("id").to_pylist(), stored.column("published").to_pylist(), strict=True))
    assert by_id[records[7]["id"]] == dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
