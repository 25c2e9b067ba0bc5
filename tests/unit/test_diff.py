"""The diff engine on hand-made id→hash tables: exact sets, drift at each level, hashing rules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reconciler import diff as d
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch


def batch(ids: list[str], vectors: list[list[float]], meta: list[dict]) -> RecordBatch:
    return RecordBatch.from_rows(ids, np.asarray(vectors, np.float32), meta, len(vectors[0]))


def index(rows: dict[str, tuple[list[float], dict]]) -> d.VersionIndex:
    ids = list(rows)
    return d.VersionIndex.build([batch(ids, [rows[i][0] for i in ids], [rows[i][1] for i in ids])], what="test")


def test_negative_zero_hashes_like_positive_zero() -> None:
    vh1, _ = d.hash_batch(batch(["a"], [[0.0, 1.0]], [{}]))
    vh2, _ = d.hash_batch(batch(["a"], [[-0.0, 1.0]], [{}]))
    assert vh1[0] == vh2[0]


def test_metadata_hash_ignores_key_order_and_integral_float_form() -> None:
    _, m1 = d.hash_batch(batch(["a"], [[1.0]], [{"b": 1, "a": "x"}]))
    _, m2 = d.hash_batch(batch(["a"], [[1.0]], [{"a": "x", "b": 1.0}]))
    _, m3 = d.hash_batch(batch(["a"], [[1.0]], [{"a": "x", "b": 1.5}]))
    assert m1[0] == m2[0] != m3[0]


def test_canonical_json_is_sorted_compact_utf8_and_rejects_nan() -> None:
    assert d.canonical_json({"b": [1, 2.5], "a": "é", "n": None}) == '{"a":"é","b":[1,2.5],"n":null}'.encode()
    with pytest.raises(ValueError):
        d.canonical_json({"x": float("nan")})


def test_duplicate_ids_across_batches_are_named() -> None:
    b1 = batch(["a", "b"], [[1.0], [2.0]], [{}, {}])
    b2 = batch(["c", "a"], [[3.0], [4.0]], [{}, {}])
    with pytest.raises(DatasetError, match="duplicate ids: a"):
        d.VersionIndex.build([b1, b2], what="docs@v1")


def test_diff_splits_updates_and_reports_no_drift_when_actual_matches_deployed() -> None:
    v1 = index({"a": ([1.0], {"t": 1}), "b": ([2.0], {"t": 2}), "c": ([3.0], {"t": 3}), "gone": ([9.0], {})})
    v2 = index({"a": ([1.0], {"t": 1}), "b": ([2.5], {"t": 2}), "c": ([3.0], {"t": 30}), "new": ([4.0], {})})
    result = d.compute_diff(v2, v1, v1.ids.combine_chunks(), None, prune=True)
    assert result.add.to_pylist() == ["new"]
    assert result.update_vector.to_pylist() == ["b"]
    assert result.update_metadata.to_pylist() == ["c"]
    assert result.delete.to_pylist() == ["gone"]
    assert len(result.drift_missing) == len(result.drift_unexpected) == 0
    assert result.counts() == {"add": 1, "update": 2, "delete": 1}


def test_drift_repairs_missing_unexpected_and_modified_at_full() -> None:
    deployed = index({"a": ([1.0], {}), "b": ([2.0], {}), "c": ([3.0], {})})
    actual = index({"a": ([1.0], {}), "c": ([3.5], {}), "foreign": ([7.0], {})})  # b missing, c modified
    result = d.compute_diff(deployed, deployed, None, actual, prune=True)
    assert result.add.to_pylist() == ["b"]
    assert result.update_vector.to_pylist() == ["c"]
    assert result.delete.to_pylist() == ["foreign"]
    assert result.drift_missing.to_pylist() == ["b"]
    assert result.drift_unexpected.to_pylist() == ["foreign"]
    assert result.drift_modified.to_pylist() == ["c"]


def test_ids_level_cannot_see_modified_content() -> None:
    deployed = index({"a": ([1.0], {}), "b": ([2.0], {})})
    result = d.compute_diff(deployed, deployed, pa.array(["a", "b"]), None, prune=True)
    assert result.counts() == {"add": 0, "update": 0, "delete": 0}
    assert result.drift_modified is None


def test_prune_off_keeps_unexpected_records() -> None:
    deployed = index({"a": ([1.0], {})})
    result = d.compute_diff(deployed, deployed, pa.array(["a", "x", "y"]), None, prune=False)
    assert result.delete.to_pylist() == []
    assert result.kept_unexpected == 2


def test_present_but_never_written_ids_are_rewritten() -> None:
    desired = index({"a": ([1.0], {}), "b": ([2.0], {})})
    result = d.compute_diff(desired, None, pa.array(["a"]), None, prune=True)
    assert result.add.to_pylist() == ["b"]
    assert result.update_vector.to_pylist() == ["a"]
    assert result.drift_unexpected.to_pylist() == ["a"]


def test_index_cache_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path))
    idx = index({"b": ([2.0], {"k": "v"}), "a": ([1.0], {})})
    key = d.index_cache_key("abc123", "sig")
    assert d.load_cached_index(key) is None
    d.store_cached_index(key, idx)
    again = d.load_cached_index(key)
    assert again is not None and again.table.equals(idx.table)
    assert again.ids.to_pylist() == ["a", "b"]


def test_column_wise_canonical_metadata_equals_canonical_json_per_row() -> None:
    meta = pa.table(
        {
            "title": ['a "quoted" é\n\x01 title', None, "plain"],
            "chunk": pa.array([1, 2, None], pa.int64()),
            "score": [0.1, 3.0, -0.0],
            "flag": [True, None, False],
            "tags": [["x", "y"], [], None],
            "nested": [{"k": 1.5}, None, {"k": 2.0}],
        }
    )
    b = RecordBatch(ids=pa.array(["a", "b", "c"]), vectors=np.zeros((3, 2), np.float32), metadata=meta)
    assert d.canonical_metadata(b) == [d.canonical_json(row).decode() for row in b.metadata_rows()]


def test_nan_metadata_names_the_record() -> None:
    b = RecordBatch(ids=pa.array(["a", "b"]), vectors=np.zeros((2, 2), np.float32), metadata=pa.table({"s": [1.0, float("nan")]}))
    with pytest.raises(DatasetError, match="record 'b'.*'s'"):
        d.hash_batch(b)


def test_records_without_metadata_hash_and_slice() -> None:
    b = RecordBatch.from_rows(["a", "b"], [[1.0], [2.0]], [{}, {}], 1)
    assert len(b.take(np.array([1]))) == 1
    _, mh = d.hash_batch(b)
    assert mh[0] == mh[1]
    assert d.canonical_metadata(b) == ["{}", "{}"]
