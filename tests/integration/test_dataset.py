"""The dataset reader against real git + DVC repos with a local-folder remote.

Reads go through fresh `git clone`s (no DVC cache) wherever the remote path matters. Each bad
input has its own test asserting what the user is told.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fixtures import DatasetRepo, make_records, records_table, run_git, write_dataset  # noqa: E402
from reconciler import dataset as ds  # noqa: E402
from reconciler.errors import DatasetError  # noqa: E402

DIM = 16


def read_all(src: ds.DatasetSource, version: ds.DatasetVersion, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """id -> {vector, **metadata} over every batch."""
    out: dict[str, dict[str, Any]] = {}
    for batch in ds.read_batches(src, version, **kwargs):
        for rid, vec, meta in zip(batch.id_list, batch.vectors, batch.metadata_rows(), strict=False):
            out[rid] = {"vector": vec.tolist(), **meta}
    return out


def as_expected(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records}


def error_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DatasetError) as info:
        result = fn(*args, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    assert info.value.exit_code == 1
    return str(info.value)


# -- reading what DVC stores ---------------------------------------------------------------------


def test_reads_each_version_from_a_fresh_clone_through_the_remote(dataset_repo, dataset_clone, known_versions):
    assert not (dataset_clone / ".dvc" / "cache").exists()
    src = dataset_repo.source(repo=dataset_clone)
    assert read_all(src, ds.resolve_version(src, "v1")) == as_expected(known_versions.v1)
    assert read_all(src, ds.resolve_version(src, "v2")) == as_expected(known_versions.v2)


def test_known_versions_differ_exactly_as_declared(dataset_repo, dataset_clone, known_versions):
    src = dataset_repo.source(repo=dataset_clone)
    old, new = (read_all(src, ds.resolve_version(src, tag)) for tag in ("v1", "v2"))
    assert set(new) - set(old) == known_versions.added and len(known_versions.added) == 120
    assert set(old) - set(new) == known_versions.deleted and len(known_versions.deleted) == 30
    common = set(old) & set(new)
    vector = {i for i in common if old[i]["vector"] != new[i]["vector"]}
    meta = {i for i in common if {**old[i], "vector": 0} != {**new[i], "vector": 0}}
    assert vector == known_versions.updated_vector and len(vector) == 25
    assert meta == known_versions.updated_metadata and len(meta) == 20 and not vector & meta
    assert common - vector - meta == known_versions.unchanged and len(new) == 1090


@pytest.mark.parametrize(
    ("fmt", "vector_type", "path"),
    [
        ("parquet", "fixed_size_list", "data/docs.parquet"),
        ("parquet", "list", "data/docs.parquet"),
        ("parquet", "binary", "data/docs.parquet"),
        ("jsonl", "fixed_size_list", "data/docs.jsonl"),
    ],
)
def test_every_layout_round_trips(make_dataset_repo, tmp_path, fmt, vector_type, path):
    repo = make_dataset_repo(path=path, fmt=fmt, vector_type=vector_type)
    records = make_records(250, 8, seed=5)
    repo.commit_version(records, tag="v1")
    src = repo.source(repo=repo.clone(tmp_path / "clone"), dimension=8)
    version = ds.resolve_version(src, "v1")
    batches = list(ds.read_batches(src, version, batch_size=100))
    assert [len(b) for b in batches] == [100, 100, 50]
    assert all(b.vectors.dtype == np.float32 and b.vectors.shape[1] == 8 for b in batches)
    assert read_all(src, version) == as_expected(records)
    assert ds.count_records(src, version) == (250 if fmt == "parquet" else None)


def test_a_tracked_directory_reads_its_files_in_order(make_dataset_repo, tmp_path):
    repo = make_dataset_repo(path="data/shards")
    records = make_records(30, 4, seed=6)
    repo.commit_shards([records[:10], records[10:]], tag="v1")
    src = repo.source(repo=repo.clone(tmp_path / "clone"), dimension=4)
    version = ds.resolve_version(src, "v1")
    assert version.digest.endswith(".dir") and version.digest == repo.digest_in_dvc_file("v1")
    assert [b.id_list for b in ds.read_batches(src, version)] == [[r["id"] for r in records[:10]], [r["id"] for r in records[10:]]]
    assert ds.count_records(src, version) == 30
    inner = repo.source(repo=src.repo, dimension=4, path="data/shards/part-0001.parquet")
    assert read_all(inner, ds.resolve_version(inner, "v1")) == as_expected(records[10:])


def test_fixed_size_binary_vectors_are_a_view_not_a_copy(make_dataset_repo):
    repo = make_dataset_repo(vector_type="binary")
    repo.commit_version(make_records(10, 4, seed=1), tag="v1")
    src = repo.source(dimension=4)
    batch = next(ds.read_batches(src, ds.resolve_version(src, "v1")))
    assert not batch.vectors.flags.owndata


def test_batches_are_bounded(dataset_repo, dataset_clone):
    src = dataset_repo.source(repo=dataset_clone)
    sizes = [len(b) for b in ds.read_batches(src, ds.resolve_version(src, "v1"), batch_size=100)]
    assert sizes == [100] * 10
    sizes = [len(b) for b in ds.read_batches(src, ds.resolve_version(src, "v2"), batch_size=100)]
    assert max(sizes) == 100 and sum(sizes) == 1090


def test_many_row_groups_read_in_parallel_keep_file_order(make_dataset_repo, monkeypatch):
    """Row groups are decoded by several workers; batches still come in file order."""
    from reconciler.dataset import readers

    monkeypatch.setattr(readers, "READ_THREADS", 3)
    repo = make_dataset_repo()
    records = make_records(500, 4, seed=11)
    repo.commit_table(records_table(records, 4), tag="v1", row_group_size=37)  # 14 groups, the last short
    src = repo.source(dimension=4)
    version = ds.resolve_version(src, "v1")
    batches = list(ds.read_batches(src, version, batch_size=20))
    assert [i for b in batches for i in b.id_list] == [r["id"] for r in records]
    assert max(len(b) for b in batches) == 20
    assert read_all(src, version) == as_expected(records)
    first = next(iter(ds.read_batches(src, version, batch_size=20)))  # stopping early leaves no worker behind
    assert first.id_list == [r["id"] for r in records[:20]]


def test_a_bad_row_deep_in_a_later_row_group_is_named_by_its_file_row(make_dataset_repo, monkeypatch):
    from reconciler.dataset import readers

    monkeypatch.setattr(readers, "READ_THREADS", 2)
    repo = make_dataset_repo()
    records = make_records(300, 4, seed=12)
    records[233]["vector"] = [0.0, math.nan, 0.0, 0.0]
    repo.commit_table(records_table(records, 4), tag="nan", row_group_size=50)
    records[233]["vector"] = [0.0, 1.0, 0.0, 0.0]
    records[205]["id"] = ""
    repo.commit_table(records_table(records, 4), tag="empty-id", row_group_size=50)
    src = repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "nan"))
    assert f"record '{records[233]['id']}' has NaN" in msg
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "empty-id"))
    assert "row 205 (counting from 0)" in msg


def test_a_row_group_too_large_to_hold_is_streamed_with_the_same_records_and_row_numbers(make_dataset_repo, monkeypatch):
    """``df.to_parquet()`` writes up to 1Mi rows a group, so a million 768-d vectors are one 3 GB group:
    such a group is read a slice at a time through a small buffer (``readers.STREAM_GROUP_BYTES``,
    made small here), never decoded whole ahead. Same records in file order, and a bad row in it is
    named by its row in the file, between groups read ahead as usual."""
    from reconciler.dataset import readers

    monkeypatch.setattr(readers, "READ_THREADS", 2)
    monkeypatch.setattr(readers, "STREAM_GROUP_BYTES", 4096)  # between a 50-row group and a 300-row one
    streamed: list[int] = []
    opened = readers.ParquetSource.streaming_reader

    def noting(self: readers.ParquetSource) -> Any:
        streamed.append(1)
        return opened(self)

    monkeypatch.setattr(readers.ParquetSource, "streaming_reader", noting)
    repo = make_dataset_repo()
    records = make_records(400, 4, seed=13)
    spans = ((0, 50), (50, 300), (350, 50))  # the middle group is streamed
    repo.commit_row_groups([records_table(records[a:a + n], 4) for a, n in spans], tag="v1")
    src = repo.source(dimension=4)
    version = ds.resolve_version(src, "v1")
    batches = list(ds.read_batches(src, version, batch_size=64))
    assert streamed, "the 300-row group was decoded whole"
    assert [i for b in batches for i in b.id_list] == [r["id"] for r in records]
    assert max(len(b) for b in batches) <= 64
    assert read_all(src, version) == as_expected(records)
    stream = ds.read_batches(src, version, batch_size=64)
    for batch in stream:  # stopping inside the streamed group leaves no thread reading ahead
        if records[120]["id"] in batch.id_list:
            assert [t for t in threading.enumerate() if t.name == "vectorops-read-ahead"]
            break
    stream.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "vectorops-read-ahead"]

    records[271]["id"] = ""
    repo.commit_row_groups([records_table(records[a:a + n], 4) for a, n in spans], tag="bad")
    assert "row 271 (counting from 0)" in error_of(ds.read_batches, src, ds.resolve_version(src, "bad"))
    streamed.clear()
    repo.commit_row_groups([records_table(records[:50], 4)], tag="small")
    list(ds.read_batches(src, ds.resolve_version(src, "small")))
    assert not streamed


def test_ids_only_reads_no_vectors_or_metadata(dataset_repo, known_versions):
    src = dataset_repo.source()
    batches = list(ds.read_batches(src, ds.resolve_version(src, "v1"), ids_only=True))
    assert {i for b in batches for i in b.id_list} == known_versions.v1_ids
    assert all(b.vectors.shape == (len(b), 0) and b.metadata.num_columns == 0 for b in batches)


def test_metadata_fields_limit_the_columns(dataset_repo):
    src = dataset_repo.source(metadata_fields=("title", "tags"))
    batch = next(ds.read_batches(src, ds.resolve_version(src, "v1"), batch_size=10))
    assert batch.metadata.column_names == ["title", "tags"]
    assert batch.metadata_rows()[0] == {"title": "Document 0", "tags": ["alpha"]}


def test_metadata_types_survive(dataset_repo, known_versions):
    src = dataset_repo.source()
    first = read_all(src, ds.resolve_version(src, "v1"))["doc-1"]
    assert first == {k: v for k, v in known_versions.v1[1].items() if k != "id"}
    assert isinstance(first["chunk"], int) and isinstance(first["flag"], bool) and isinstance(first["score"], float)


# -- resolving revs ------------------------------------------------------------------------------


def test_resolves_tag_branch_and_commit(dataset_repo):
    src = dataset_repo.source()
    v1, v2 = dataset_repo.versions
    assert ds.resolve_version(src, "v1").commit == v1.commit
    assert ds.resolve_version(src, "main").commit == v2.commit
    by_sha = ds.resolve_version(src, v1.commit[:10])
    assert (by_sha.rev, by_sha.commit, by_sha.digest) == (v1.commit[:10], v1.commit, v1.digest)
    assert ds.resolve_version(src, "v2").committed_at == "2024-01-01T02:00:00+00:00"


def test_digest_is_the_md5_in_the_dvc_file_and_of_the_bytes(dataset_repo):
    src = dataset_repo.source()
    for tag in ("v1", "v2"):
        version = ds.resolve_version(src, tag)
        assert version.digest == dataset_repo.digest_in_dvc_file(tag)
        stored = dataset_repo.remote / "files" / "md5" / version.digest[:2] / version.digest[2:]
        assert hashlib.md5(stored.read_bytes()).hexdigest() == version.digest
        assert version.size == stored.stat().st_size


def test_resolving_imports_no_dvc_and_reads_no_data():
    code = (
        "import sys; from reconciler import dataset as ds; "
        "assert not any(m == 'dvc' or m.startswith('dvc.') for m in sys.modules), 'dvc imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_digest_of_a_pipeline_output_comes_from_dvc_lock(make_dataset_repo):
    repo = make_dataset_repo(path="data/built.parquet")
    lock = "schema: '2.0'\nstages:\n  embed:\n    cmd: python embed.py\n    outs:\n    - path: built.parquet\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n      size: 42\n"
    repo.commit_file("data/dvc.lock", lock)
    run_git(repo.root, "tag", "built")
    version = ds.resolve_version(repo.source(), "built")
    assert (version.digest, version.size) == ("0123456789abcdef0123456789abcdef", 42)


def test_working_tree_edits_are_never_read(dataset_repo_copy, known_versions):
    repo = dataset_repo_copy
    write_dataset(make_records(5, DIM, seed=99, id_prefix="wip-"), repo.file)  # edited, not committed
    src = repo.source()
    assert read_all(src, ds.resolve_version(src, "HEAD")) == as_expected(known_versions.v2)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        from dvc.repo import Repo

        with Repo(str(repo.root)) as dvc_repo:  # `dvc add` without a commit: cache and .dvc file change
            dvc_repo.add(str(repo.file))
    assert "wip-" not in repo.git("show", "HEAD:data/docs.parquet.dvc")
    assert read_all(src, ds.resolve_version(src, "HEAD")) == as_expected(known_versions.v2)


def test_git_url_with_relative_remote_is_cloned_and_cleaned_up(make_dataset_repo):
    repo = make_dataset_repo(relative_remote=True)
    records = make_records(20, 4, seed=3)
    repo.commit_version(records, tag="v1")
    src = repo.source(repo=f"file://{repo.root}", dimension=4)
    version = ds.resolve_version(src, "v1")
    assert read_all(src, version) == as_expected(records)
    clone = ds.git._clones[src.repo]
    assert clone.exists() and not (clone / ".dvc" / "cache").exists()
    ds.storage.close_all()
    ds.git.cleanup()
    assert not clone.exists()


# -- bad input: one test each, asserting what the user reads -------------------------------------


def test_unknown_rev_names_it_and_lists_tags(dataset_repo):
    msg = error_of(ds.resolve_version, dataset_repo.source(), "v9")
    assert "unknown git rev 'v9'" in msg and "dataset 'docs' (vectorops.yaml:3:3)" in msg
    assert "Tags there: v2, v1" in msg or "Tags there: v1, v2" in msg


def test_unknown_rev_in_a_shallow_clone_says_fetch_depth_0(dataset_repo, tmp_path):
    shallow = tmp_path / "shallow"
    run_git(tmp_path, "clone", "-q", "--depth", "1", f"file://{dataset_repo.root}", str(shallow))
    msg = error_of(ds.resolve_version, dataset_repo.source(repo=shallow), "v1")
    assert "unknown git rev 'v1'" in msg and "fetch-depth: 0" in msg and "shallow" in msg


def test_path_not_tracked_at_that_rev(dataset_repo):
    first = dataset_repo.git("rev-list", "--max-parents=0", "HEAD")
    msg = error_of(ds.resolve_version, dataset_repo.source(), first)
    assert "data/docs.parquet is not tracked by DVC at" in msg and "dvc add data/docs.parquet" in msg
    msg = error_of(ds.resolve_version, dataset_repo.source(path="data/other.parquet"), "v1")
    assert "data/other.parquet is not tracked by DVC at v1" in msg


def test_a_file_in_git_but_not_in_dvc_is_not_a_dataset(make_dataset_repo):
    repo = make_dataset_repo(path="data/plain.jsonl", fmt="jsonl")
    repo.commit_file("data/plain.jsonl", '{"id": "a", "vector": [1.0]}\n')
    run_git(repo.root, "tag", "v1")
    msg = error_of(ds.resolve_version, repo.source(dimension=1), "v1")
    assert "data/plain.jsonl is not tracked by DVC at v1" in msg


def test_dimension_is_checked_from_the_footer_even_without_rows(make_dataset_repo):
    repo = make_dataset_repo(vector_type="binary")
    repo.commit_table(records_table([], 8, "binary"), tag="empty")
    src = repo.source(dimension=4)
    version = ds.resolve_version(src, "empty")
    assert ds.count_records(src, version) == 0
    assert "has dimension 8; the manifest declares 4" in error_of(ds.read_schema, src, version)


def test_data_in_neither_cache_nor_remote_names_the_remote(dataset_repo_copy, tmp_path):
    repo = dataset_repo_copy
    repo.commit_version(make_records(10, DIM, seed=8), tag="v3", push=False)
    src = repo.source(repo=repo.clone(tmp_path / "clone"))
    version = ds.resolve_version(src, "v3")  # resolving needs no data
    msg = error_of(ds.read_batches, src, version)
    assert "in neither the local DVC cache" in msg and f"DVC remote 'storage' ({repo.remote})" in msg
    assert "dvc push" in msg and "at v3" in msg and "data/docs.parquet" in msg


def test_data_missing_where_no_remote_is_configured_says_so_plainly(make_dataset_repo, tmp_path):
    """Not "in neither the local DVC cache nor no DVC remote": the cache it looked in, and that no
    default remote exists to fetch from."""
    repo = make_dataset_repo()
    config = repo.root / ".dvc" / "config"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if "remote" not in line and "url" not in line) + "\n")
    repo.commit_version(make_records(10, DIM, seed=9), tag="v1", push=False)
    src = repo.source(repo=repo.clone(tmp_path / "clone"))
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "v1"))
    assert "not in the local DVC cache (" in msg and "and no DVC remote is configured as the default" in msg
    assert "nor no" not in msg


def test_missing_columns_are_named_with_what_exists(dataset_repo):
    src = dataset_repo.source(vector_field="embedding", metadata_fields=("title", "url"))
    msg = error_of(ds.read_schema, src, ds.resolve_version(src, "v1"))
    assert "missing column(s) 'embedding', 'url'" in msg
    assert "the file has: 'id', 'vector', 'title', 'chunk', 'score', 'flag', 'tags'" in msg


@pytest.mark.parametrize("vector_type", ["fixed_size_list", "list", "binary"])
def test_dimension_differing_from_the_manifest(make_dataset_repo, vector_type):
    repo = make_dataset_repo(vector_type=vector_type)
    repo.commit_version(make_records(5, 8, seed=1), tag="v1")
    src = repo.source(dimension=12)
    msg = error_of(ds.read_schema, src, ds.resolve_version(src, "v1"))
    assert "8" in msg and "declares" in msg and "12" in msg


@pytest.fixture(scope="module")
def bad_repo(tmp_path_factory) -> DatasetRepo:
    """One repo, one tagged commit per kind of bad data (built once for the module)."""
    repo = DatasetRepo.create(tmp_path_factory.mktemp("bad") / "repo")
    good = make_records(30, 4, seed=1)

    def table(records: list[dict[str, Any]], **columns: Any) -> pa.Table:
        t = records_table(records, 4)
        for name, values in columns.items():
            t = t.set_column(t.schema.get_field_index(name), name, values)
        return t

    nan = [dict(r) for r in good]
    nan[3]["vector"] = [1.0, math.nan, 0.0, 0.0]
    nan[7]["vector"] = [math.inf, 0.0, 0.0, 0.0]
    repo.commit_table(records_table(nan, 4), tag="nan")
    meta_nan = [dict(r) for r in good]
    meta_nan[5]["score"] = math.nan
    repo.commit_table(records_table(meta_nan, 4), tag="meta-nan")
    ids = [r["id"] for r in good]
    ids[2], ids[9] = "", None
    repo.commit_table(table(good, id=pa.array(ids, pa.string())), tag="empty-ids")
    late = [r["id"] for r in good]
    late[23] = ""
    repo.commit_table(table(good, id=pa.array(late, pa.string())), tag="late-empty-id")
    repo.commit_table(table(good, id=pa.array(range(30), pa.int64())), tag="int-ids")
    dup = [dict(r) for r in good]
    dup[4]["id"] = dup[1]["id"]
    dup[6]["id"] = dup[0]["id"]
    repo.commit_table(records_table(dup, 4), tag="dup-ids")
    nulls = records_table(good, 4)
    vec = nulls.column("vector").to_pylist()
    vec[11] = None
    repo.commit_table(nulls.set_column(1, "vector", pa.array(vec, pa.list_(pa.float32(), 4))), tag="null-vector")
    return repo


def test_nan_or_infinite_vectors_name_the_ids(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "nan"))
    assert "records 'doc-3', 'doc-7' have NaN, infinite or missing values" in msg and "at nan" in msg


def test_nan_metadata_names_the_field_and_ids(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "meta-nan"))
    assert "record 'doc-5' has" in msg and "metadata field 'score'" in msg


def test_empty_or_missing_ids_name_the_rows(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "empty-ids"))
    assert "empty or missing ids at rows 2, 9 (counting from 0)" in msg


def test_row_numbers_count_across_batches(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "late-empty-id"), batch_size=10)
    assert "empty or missing ids at row 23 (counting from 0)" in msg


def test_non_string_ids(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "int-ids"))
    assert "id column 'id' holds int64 values" in msg and "ids must be strings" in msg


def test_duplicate_ids_within_a_batch_are_named(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "dup-ids"))
    assert "duplicate ids: 'doc-0', 'doc-1'" in msg


def test_null_vectors_name_the_ids(bad_repo):
    src = bad_repo.source(dimension=4)
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "null-vector"))
    assert "record 'doc-11' has no vector (null)" in msg


def test_broken_jsonl_names_the_line(make_dataset_repo):
    repo = make_dataset_repo(path="data/docs.jsonl", fmt="jsonl")
    lines = b'{"id": "a", "vector": [1, 2]}\n\n{"id": "b", "vector": [1, 2]\n'
    repo.commit_bytes(lines, tag="syntax")
    repo.commit_bytes(b'{"id": "a", "vector": [1, 2]}\n{"id": 7, "vector": [1, 2]}\n', tag="mixed")
    repo.commit_bytes(b'{"id": 1, "vector": [1, 2]}\n{"id": 7, "vector": [1, 2]}\n', tag="numbers")
    src = repo.source(dimension=2)
    assert "line 3 is not valid JSON" in error_of(ds.read_batches, src, ds.resolve_version(src, "syntax"))
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "mixed"))
    assert "line 2: field 'id' is a number here but a string on earlier lines" in msg
    msg = error_of(ds.read_batches, src, ds.resolve_version(src, "numbers"))
    assert "ids must be strings" in msg


def test_jsonl_errors_give_line_numbers(make_dataset_repo):
    repo = make_dataset_repo(path="data/docs.jsonl", fmt="jsonl")
    repo.commit_bytes(b'{"id": "a", "vector": [1, 2]}\n\n{"id": "", "vector": [1, 2]}\n', tag="v1")
    src = repo.source(dimension=2)
    assert "empty or missing ids at line 3" in error_of(ds.read_batches, src, ds.resolve_version(src, "v1"))


def test_not_parquet_at_all(make_dataset_repo):
    repo = make_dataset_repo()
    repo.commit_bytes(b"id,vector\n", tag="v1")
    src = repo.source()
    assert "not a readable Parquet file" in error_of(ds.read_schema, src, ds.resolve_version(src, "v1"))


# -- versions ------------------------------------------------------------------------------------


def test_list_versions_newest_first_with_tags_and_counts(dataset_repo_copy, tmp_path):
    repo = dataset_repo_copy
    repo.commit_file("README.md", "docs\n")  # no data change: not a version, but its tag shows on v2
    run_git(repo.root, "tag", "v2.1")
    v3 = repo.commit_version(make_records(7, DIM, seed=4))  # untagged version
    src = repo.source(repo=repo.clone(tmp_path / "clone"))
    versions = ds.list_versions(src)
    v1, v2 = repo.versions[:2]
    assert [v.commit for v in versions] == [v3.commit, v2.commit, v1.commit]
    assert [v.tags for v in versions] == [(), ("v2", "v2.1"), ("v1",)]
    assert [v.records for v in versions] == [7, 1090, 1000]
    assert [v.digest for v in versions] == [v3.digest, v2.digest, v1.digest]
    assert versions[1].committed_at == "2024-01-01T02:00:00+00:00"
    assert [v.commit for v in ds.list_versions(src, limit=1)] == [v3.commit]


def test_list_versions_counts_are_none_when_data_is_unreachable(make_dataset_repo):
    repo = make_dataset_repo(path="data/docs.jsonl", fmt="jsonl")
    repo.commit_version(make_records(3, 4, seed=1), tag="v1")
    [info] = ds.list_versions(repo.source(dimension=4))
    assert info.tags == ("v1",) and info.records is None
