"""Metadata reaches the index as the dataset holds it: JSONL strings stay the text written, a pandas
``category`` column is its values, a decimal a number; what has no JSON form is refused by name."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json

import numpy as np
import pyarrow as pa
import pytest

from reconciler.canonical import canonical_json, canonical_metadata_array
from reconciler.dataset import decode, readers
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch

WHERE = "dataset 'docs' at v1, file data/docs.jsonl"


def _layout(available: list[str]) -> decode.Layout:
    return decode.layout_for(WHERE, "id", "vector", None, 2, available)


def test_jsonl_strings_that_look_like_dates_stay_the_text_written() -> None:
    rows = [
        {"id": "a", "vector": [1.0, 2.0], "published": "2024-01-05", "at": "2024-01-05T10:00:00Z",
         "seen": ["2024-01-05", "2024-02-01"], "source": {"fetched": "2023-12-31T23:59:59+01:00", "site": "x"}},
        {"id": "b", "vector": [3.0, 4.0], "published": "2024-01-06", "at": "2024-01-06T10:00:00Z", "seen": [], "source": None},
    ]
    lines = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    (batch,) = readers.jsonl_batches(lines, WHERE, _layout, 100, False)
    for row, metadata in zip(rows, batch.metadata_rows(), strict=True):
        expected = {k: v for k, v in row.items() if k not in ("id", "vector") and v is not None}
        assert metadata == expected
        assert canonical_json(metadata) == canonical_json(expected)
    assert canonical_metadata_array(batch).to_pylist() == [canonical_json(m).decode() for m in batch.metadata_rows()]


def _data(**metadata: pa.Array) -> pa.Table:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(4, dtype=np.float32)), 2)
    return pa.table({"id": ["a", "b"], "vector": vectors, **metadata})


def test_a_category_column_is_its_values_and_a_decimal_a_number() -> None:
    data = _data(lang=pa.array(["en", "fr"]).dictionary_encode(), price=pa.array([decimal.Decimal("19.90"), decimal.Decimal(20)], pa.decimal128(6, 2)),
                 day=pa.array([dt.date(2024, 1, 5), None], pa.date32()))
    batch = decode.to_records(data, _layout(data.column_names), str)
    assert batch.metadata.schema.field("lang").type == pa.string() and batch.metadata.schema.field("price").type == pa.float64()
    assert canonical_metadata_array(batch).to_pylist() == ['{"day":"2024-01-05","lang":"en","price":19.9}', '{"lang":"fr","price":20}']


@pytest.mark.parametrize("kind", [pa.duration("s"), pa.month_day_nano_interval()])
def test_metadata_with_no_json_form_is_refused_naming_the_field(kind: pa.DataType) -> None:
    value = dt.timedelta(seconds=5) if pa.types.is_duration(kind) else pa.scalar((1, 2, 3), kind).as_py()
    data = _data(took=pa.array([value, value], kind))
    with pytest.raises(DatasetError, match=rf"{WHERE}: metadata field 'took' is .*, which has no JSON form") as err:
        decode.to_records(data, _layout(data.column_names), str)
    assert "total_seconds" in (err.value.hint or "")


def test_timestamps_dates_and_times_are_sent_as_the_iso_8601_text_the_hash_always_took() -> None:
    utc = dt.datetime(2024, 1, 5, 10, 0, tzinfo=dt.timezone.utc)
    columns = {
        "at": pa.array([utc, None], pa.timestamp("us", tz="UTC")),
        "local": pa.array([dt.datetime(2024, 1, 5, 10, 0, 0, 250), dt.datetime(2024, 1, 6)], pa.timestamp("ms")),
        "day": pa.array([dt.date(2024, 1, 5), dt.date(1999, 12, 31)], pa.date32()),
        "time": pa.array([dt.time(9, 30), dt.time(23, 59, 59)], pa.time64("us")),
    }
    data = _data(**columns)
    batch = decode.to_records(data, _layout(data.column_names), str)
    # typed in the batch (a table with a timestamp column takes them as they are), text as JSON
    assert all(batch.metadata.schema.field(name).type == columns[name].type for name in columns)
    assert batch.metadata_rows()[0] == {"at": "2024-01-05T10:00:00+00:00", "local": "2024-01-05T10:00:00", "day": "2024-01-05", "time": "09:30:00"}
    # the text each destination is sent is the text the hash covers, as when the hash read the datetimes
    as_objects = [{k: v for k, v in row.items() if v is not None} for row in pa.table(columns).to_pylist()]
    assert canonical_metadata_array(batch).to_pylist() == [canonical_json(row).decode() for row in as_objects]


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_nanosecond_timestamps_are_the_text_pandas_writes_with_or_without_pandas(tz: str | None) -> None:
    """pandas' unit is the nanosecond. Without pandas installed pyarrow cannot make 10:00:00.123456789 a
    datetime (the plan failed); with it the text has nine digits. Either way it is pandas' text."""
    pytest.importorskip("pandas")  # the oracle: with pandas, pyarrow gives pandas Timestamps
    nanos = [1704448800123456789, 1704448800000000001, 1704448800000000000, -1, -1001, None, 1704448800123456000]
    stamps = pa.array(nanos, pa.timestamp("ns", tz))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * len(nanos), np.float32)), 2)
    data = pa.table({"id": [f"r{i}" for i in range(len(nanos))], "vector": vectors, "at": stamps})
    batch = decode.to_records(data, _layout(data.column_names), str)
    sent = [row.get("at") for row in batch.metadata_rows()]
    assert sent == [None if v is None else v.isoformat() for v in stamps.to_pylist()]
    assert sent[0] == ("2024-01-05T10:00:00.123456789" + ("+00:00" if tz == "UTC" else "")
                       if tz != "Europe/Paris" else "2024-01-05T11:00:00.123456789+01:00")
    hashed = canonical_metadata_array(batch).to_pylist()
    assert hashed == [canonical_json({"at": t} if t is not None else {}).decode() for t in sent]


def test_binary_metadata_is_sent_as_the_hex_text_the_hash_covers() -> None:
    data = _data(digest=pa.array([b"\x00\x01ab", None], pa.binary()), key=pa.array([b"\xff" * 4, b"\x10" * 4], pa.binary(4)))
    batch = decode.to_records(data, _layout(data.column_names), str)
    assert batch.metadata_rows() == [{"digest": "00016162", "key": "ffffffff"}, {"key": "10101010"}]
    as_objects = [{k: v for k, v in row.items() if v is not None} for row in data.select(["digest", "key"]).to_pylist()]
    assert canonical_metadata_array(batch).to_pylist() == [canonical_json(row).decode() for row in as_objects]


def test_float32_metadata_is_the_number_written_and_a_map_a_json_object() -> None:
    """A float32 0.1 as float() gives 0.10000000149011612, which an index's range filter `score <= 0.1`
    misses; a map as pyarrow gives it is a list of pairs. Both reach JSON as they are written."""
    point = pa.struct([("x", pa.float32()), ("label", pa.string())])
    data = _data(score=pa.array([0.1, 123456.79], pa.float32()), box=pa.array([[0.1, 0.7], None], pa.list_(pa.float32())),
                 at=pa.array([{"x": 0.3, "label": "a"}, None], point),
                 attrs=pa.array([[("color", "red"), ("size", "L")], []], pa.map_(pa.string(), pa.string())),
                 weights=pa.array([[("a", 0.1)], [("b", 0.7)]], pa.map_(pa.string(), pa.float32())))
    batch = decode.to_records(data, _layout(data.column_names), str)
    assert batch.metadata_rows() == [
        {"score": 0.1, "box": [0.1, 0.7], "at": {"x": 0.3, "label": "a"}, "attrs": {"color": "red", "size": "L"}, "weights": {"a": 0.1}},
        {"score": 123456.79, "attrs": {}, "weights": {"b": 0.7}},
    ]
    assert canonical_metadata_array(batch).to_pylist() == [canonical_json(row).decode() for row in batch.metadata_rows()]
    # a destination that keeps float32 columns gives them back as float32: they hash the same
    back = RecordBatch(ids=batch.ids, vectors=batch.vectors, metadata=data.select(["score", "box", "at", "attrs", "weights"]))
    assert canonical_metadata_array(back).to_pylist() == canonical_metadata_array(batch).to_pylist()


def test_a_map_with_a_key_twice_in_one_record_is_refused_naming_the_field() -> None:
    data = _data(attrs=pa.array([[("k", "a"), ("k", "b")], []], pa.map_(pa.string(), pa.string())))
    batch = decode.to_records(data, _layout(data.column_names), str)
    with pytest.raises(DatasetError, match=r"metadata field 'attrs' holds a map with the key 'k' twice in one record"):
        canonical_metadata_array(batch)


def test_jsonl_ids_that_look_like_dates_are_the_strings_written() -> None:
    """Ids such as "2024-01-05" were parsed as timestamps and refused as "not strings"."""
    rows = [{"id": "2024-01-05", "vector": [1.0, 2.0]}, {"id": "2024-01-06T10:00:00Z", "vector": [3.0, 4.0]}]
    lines = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    (batch,) = readers.jsonl_batches(lines, WHERE, _layout, 100, False)
    assert batch.id_list == ["2024-01-05", "2024-01-06T10:00:00Z"]


def test_times_and_bytes_inside_lists_and_structs_are_sent_as_the_text_the_hash_takes() -> None:
    seen = pa.array([[dt.date(2024, 1, 5), dt.date(2024, 2, 1)], None], pa.list_(pa.date32()))
    source = pa.array([{"fetched": dt.datetime(2024, 1, 5, 10, tzinfo=dt.timezone.utc), "digest": b"\x01\xff"}, None],
                      pa.struct([("fetched", pa.timestamp("us", tz="UTC")), ("digest", pa.binary())]))
    data = _data(seen=seen, source=source)
    batch = decode.to_records(data, _layout(data.column_names), str)
    assert batch.metadata_rows() == [{"seen": ["2024-01-05", "2024-02-01"], "source": {"fetched": "2024-01-05T10:00:00+00:00", "digest": "01ff"}}, {}]
    as_objects = [{k: v for k, v in row.items() if v is not None} for row in data.select(["seen", "source"]).to_pylist()]
    assert canonical_metadata_array(batch).to_pylist() == [canonical_json(row).decode() for row in as_objects]
