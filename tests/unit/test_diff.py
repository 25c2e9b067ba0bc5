"""The diff engine on hand-made id→hash tables: exact sets, drift at each level, hashing rules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import canonical
from reconciler.engine import diff as d
from reconciler.engine import hashing, index_cache
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch


def batch(ids: list[str], vectors: list[list[float]], meta: list[dict]) -> RecordBatch:
    return RecordBatch.from_rows(ids, np.asarray(vectors, np.float32), meta, len(vectors[0]))


def index(rows: dict[str, tuple[list[float], dict]]) -> d.VersionIndex:
    ids = list(rows)
    return d.VersionIndex.build([batch(ids, [rows[i][0] for i in ids], [rows[i][1] for i in ids])], what="test")


def test_negative_zero_hashes_like_positive_zero() -> None:
    vh1, _ = hashing.hash_batch(batch(["a"], [[0.0, 1.0]], [{}]))
    vh2, _ = hashing.hash_batch(batch(["a"], [[-0.0, 1.0]], [{}]))
    assert vh1[0] == vh2[0]


def test_metadata_hash_ignores_key_order_and_integral_float_form() -> None:
    _, m1 = hashing.hash_batch(batch(["a"], [[1.0]], [{"b": 1, "a": "x"}]))
    _, m2 = hashing.hash_batch(batch(["a"], [[1.0]], [{"a": "x", "b": 1.0}]))
    _, m3 = hashing.hash_batch(batch(["a"], [[1.0]], [{"a": "x", "b": 1.5}]))
    assert m1[0] == m2[0] != m3[0]


def test_canonical_json_is_sorted_compact_utf8_and_rejects_nan() -> None:
    assert canonical.canonical_json({"b": [1, 2.5], "a": "é", "n": None}) == '{"a":"é","b":[1,2.5],"n":null}'.encode()
    with pytest.raises(ValueError):
        canonical.canonical_json({"x": float("nan")})


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
    key = index_cache.index_cache_key("abc123", "sig")
    assert index_cache.load_cached_index(key) is None
    index_cache.store_cached_index(key, idx)
    again = index_cache.load_cached_index(key)
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
    assert canonical.canonical_metadata_array(b).to_pylist() == [canonical.canonical_json(row).decode() for row in b.metadata_rows()]


_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "title": _text,
                "ü key": _text,
                "chunk": st.integers(-(2**63), 2**63 - 1),
                "flag": st.booleans(),
                "score": st.floats(allow_nan=False, allow_infinity=False, width=64),
                "tags": st.lists(_text, max_size=3),
            },
        ),
        min_size=1,
        max_size=20,
    )
)
def test_canonical_metadata_equals_canonical_json_for_any_rows(rows) -> None:
    """Arrow kernels (plain strings, ints, bools) and the json fallback agree with json.dumps."""
    columns = {}
    for key, kind in (("title", pa.string()), ("ü key", pa.large_string()), ("chunk", pa.int64()), ("flag", pa.bool_()),
                      ("score", pa.float64()), ("tags", pa.list_(pa.string()))):
        if any(key in r for r in rows):
            columns[key] = pa.array([r.get(key) for r in rows], kind)
    b = RecordBatch(ids=pa.array([f"r{i}" for i in range(len(rows))]), vectors=np.zeros((len(rows), 1), np.float32),
                    metadata=pa.table(columns) if columns else pa.table({"x": pa.nulls(len(rows))}).drop_columns(["x"]))
    expected = [canonical.canonical_json(row).decode() for row in b.metadata_rows()]
    assert canonical.canonical_metadata_array(b).to_pylist() == expected
    _, mh = hashing.hash_batch(b)
    assert mh.tolist() == [xxhash.xxh3_64_intdigest(e.encode()) for e in expected]


def test_nan_metadata_names_the_record() -> None:
    b = RecordBatch(ids=pa.array(["a", "b"]), vectors=np.zeros((2, 2), np.float32), metadata=pa.table({"s": [1.0, float("nan")]}))
    with pytest.raises(DatasetError, match="record 'b'.*'s'"):
        hashing.hash_batch(b)


def test_records_without_metadata_hash_and_slice() -> None:
    b = RecordBatch.from_rows(["a", "b"], [[1.0], [2.0]], [{}, {}], 1)
    assert len(b.take(np.array([1]))) == 1
    _, mh = hashing.hash_batch(b)
    assert mh[0] == mh[1]
    assert canonical.canonical_metadata_array(b).to_pylist() == ["{}", "{}"]


# -- compute_diff against a plain-Python model -----------------------------------------------------

_content = st.tuples(st.integers(1, 3), st.integers(1, 3))  # (vector hash, metadata hash): few values, many collisions
_side = st.dictionaries(st.sampled_from([f"id{i}" for i in range(12)]), _content, max_size=12)


def _index(records: dict[str, tuple[int, int]]) -> d.VersionIndex:
    table = pa.table(
        {"id": list(records), "vh": [v for v, _ in records.values()], "mh": [m for _, m in records.values()]},
        schema=d.INDEX_SCHEMA,
    )
    return d.VersionIndex.from_table(table, what="test")


@settings(max_examples=300, deadline=None)
@given(desired=_side, deployed=_side, actual=_side, level=st.sampled_from(["none", "ids", "full"]), prune=st.booleans())
def test_compute_diff_matches_a_plain_python_model(desired, deployed, actual, level, prune) -> None:
    if level == "none":
        actual = deployed  # not looked: the destination is assumed to hold the deployed version
    ids = list(actual)[::-1]  # destination order is arbitrary
    result = d.compute_diff(
        _index(desired),
        _index(deployed),
        pa.array(ids, pa.string()) if level == "ids" else None,
        _index(actual) if level == "full" else None,
        prune=prune,
    )
    believed = actual if level == "full" else {i: deployed.get(i) for i in actual}  # None: never written by us
    update_vector = {i for i in desired if i in actual and (believed[i] is None or believed[i][0] != desired[i][0])}
    update_metadata = {i for i in desired if i in actual and i not in update_vector and believed[i][1] != desired[i][1]}
    extra = set(actual) - set(desired)
    assert set(result.add.to_pylist()) == set(desired) - set(actual)
    assert set(result.update_vector.to_pylist()) == update_vector
    assert set(result.update_metadata.to_pylist()) == update_metadata
    assert set(result.delete.to_pylist()) == (extra if prune else set())
    assert result.kept_unexpected == (0 if prune else len(extra))
    if level == "none":
        assert result.drift_missing is None and result.drift_unexpected is None
    else:
        assert set(result.drift_missing.to_pylist()) == set(deployed) - set(actual)
        assert set(result.drift_unexpected.to_pylist()) == set(actual) - set(deployed)
        modified = {i for i in set(deployed) & set(actual) if deployed[i] != actual[i]} if level == "full" else None
        assert (set(result.drift_modified.to_pylist()) if result.drift_modified is not None else None) == modified


def test_hash_strings_reads_arrow_buffers_like_hashing_each_string() -> None:
    values = pa.array(["", "é", "doc-1", "x" * 300] * 40_000)  # several 65k chunks
    for arr in (values, values.slice(3, 70_001), pa.chunked_array([values.slice(0, 5), values.slice(9, 4)]),
                values.cast(pa.large_string()), pa.array([], pa.string())):
        expected = [xxhash.xxh3_64_intdigest(s.encode()) for s in arr.to_pylist()]
        assert hashing.hash_strings(arr).tolist() == expected


# -- the fast hashing paths give the very hashes earlier versions stored ----------------------------
# (hashes are cached on disk and compared across versions of vectorops: HASH_VERSION must not need a bump)


def _old_hash_strings(values: pa.Array | pa.ChunkedArray) -> list[int]:
    """The earlier hash_strings, verbatim: xxh3 of each value's bytes, sliced from the Arrow buffers."""
    out: list[int] = []
    for arr in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
        data = memoryview(arr.buffers()[2] or b"")
        out.extend(xxhash.xxh3_64_intdigest(data[a:b]) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True))
    return out


_any_text = st.text(st.characters(codec="utf-8"), max_size=40)  # empty, non-ASCII, NUL and control characters included


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_any_text, max_size=60), cut=st.integers(0, 60), keep=st.integers(0, 60), chunk=st.integers(1, 7),
       large=st.booleans(), split=st.booleans())
def test_hash_strings_equals_the_per_string_xxh3_of_earlier_versions(values, cut, keep, chunk, large, split) -> None:
    arr = pa.array(values, pa.large_string() if large else pa.string())
    arr = arr.slice(min(cut, len(arr)), keep)  # a slice: offsets into shared buffers
    given_values = pa.chunked_array([arr.slice(0, len(arr) // 2), arr.slice(len(arr) // 2)]) if split else arr
    expected = [xxhash.xxh3_64_intdigest(s.encode()) for s in arr.to_pylist()]
    assert _old_hash_strings(given_values) == expected
    assert hashing.hash_strings(given_values, chunk=chunk).tolist() == expected


_component = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, float(np.finfo(np.float32).tiny)]),
                       st.floats(width=32, allow_nan=False, allow_infinity=False))


@settings(max_examples=150, deadline=None)
@given(dim=st.sampled_from([1, 3, 8, 255, 256, 257, 300]), rows=st.integers(0, 25), seed=st.integers(0, 2**32 - 1),
       specials=st.lists(st.tuples(st.integers(0, 10**6), _component), max_size=30), chunk=st.integers(1, 9),
       precision=st.sampled_from(["float32", "float16"]))
def test_vector_hashes_equal_the_per_row_xxh3_of_earlier_versions(dim, rows, seed, specials, chunk, precision) -> None:
    """Narrow rows are hashed from bytes copies in chunks, wide ones in place (256 float32 is the
    line): both give xxh3 of the row's float32 bytes with -0.0 read as +0.0, as before."""
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    for at, value in specials:  # -0.0, zeros (trailing NUL bytes), tiny and huge values
        if rows:
            vectors.reshape(-1)[at % vectors.size] = value
    rounded = hashing.round_vectors(vectors, precision)
    expected = [xxhash.xxh3_64_intdigest(np.where(r == 0, np.float32(0), r).tobytes()) for r in rounded]
    b = RecordBatch(ids=pa.array([f"r{i}" for i in range(rows)], pa.string()), vectors=vectors, metadata=pa.table({"n": list(range(rows))}))
    assert hashing.hash_batch(b, precision)[0].tolist() == expected
    plain = np.ascontiguousarray(rounded)
    assert hashing.hash_rows(plain, chunk=chunk).tolist() == [xxhash.xxh3_64_intdigest(r.tobytes()) for r in plain]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"title": _any_text, "ü key": _any_text, "chunk": st.integers(-(2**63), 2**63 - 1),
                                             "flag": st.booleans()}), min_size=1, max_size=20),
       large=st.booleans(), cut=st.integers(0, 3))
def test_metadata_present_in_every_row_is_joined_in_one_pass_exactly_as_canonical_json(rows, large, cut) -> None:
    """Every field in every row (no nulls): the one-join path, on sliced columns too; a string that
    needs escaping sends the batch down the field-by-field path. Same text, same hash either way."""
    meta = pa.table({"title": pa.array([r["title"] for r in rows], pa.large_string() if large else pa.string()),
                     "ü key": [r["ü key"] for r in rows], "chunk": pa.array([r["chunk"] for r in rows], pa.int64()),
                     "flag": [r["flag"] for r in rows]}).slice(min(cut, len(rows) - 1))
    n = meta.num_rows
    b = RecordBatch(ids=pa.array([f"r{i}" for i in range(n)]), vectors=np.zeros((n, 1), np.float32), metadata=meta)
    expected = [canonical.canonical_json(row).decode() for row in b.metadata_rows()]
    assert canonical.canonical_metadata_array(b).to_pylist() == expected
    assert hashing.hash_batch(b)[1].tolist() == [xxhash.xxh3_64_intdigest(e.encode()) for e in expected]
