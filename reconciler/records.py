"""Batches of records, the unit every reader, hasher and destination works in.

A batch is columnar (ids as an Arrow string array, vectors as one float32 matrix, metadata as an
Arrow table) so hot paths stay vectorised and memory stays bounded by the batch size.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ONE_MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass
class RecordBatch:
    ids: pa.Array  # string
    vectors: np.ndarray  # shape (n, dimension), float32
    metadata: pa.Table  # one column per metadata field, n rows (may have zero columns)

    def __post_init__(self) -> None:
        n = len(self.ids)
        # a metadata table without columns cannot carry a row count: it means "no metadata" for all
        meta_rows = n if self.metadata.num_columns == 0 else self.metadata.num_rows
        if self.vectors.shape[0] != n or meta_rows != n:
            raise ValueError(
                f"batch columns disagree: {n} ids, {self.vectors.shape[0]} vectors, "
                f"{self.metadata.num_rows} metadata rows"
            )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def id_list(self) -> list[str]:
        return self.ids.to_pylist()

    def metadata_rows(self) -> list[dict[str, Any]]:
        """Metadata as one dict per record, JSON values (``json_ready``); nulls are dropped (a missing
        key and null are one)."""
        if self.metadata.num_columns == 0:
            return [{} for _ in range(len(self))]
        table = json_ready(self.metadata)
        rows = table.to_pylist()
        for field in table.schema:
            if _walked(field.type):
                for row in rows:
                    row[field.name] = json_value(row[field.name], field.type)
        return [{k: v for k, v in row.items() if v is not None} for row in rows]

    def take(self, indices: np.ndarray | pa.Array) -> RecordBatch:
        idx = pa.array(indices) if not isinstance(indices, pa.Array) else indices
        return RecordBatch(
            ids=self.ids.take(idx),
            vectors=self.vectors[np.asarray(indices)],
            metadata=self.metadata.take(idx) if self.metadata.num_columns else self.metadata,
        )

    @staticmethod
    def from_rows(
        ids: list[str], vectors: np.ndarray | list[list[float]], metadata: list[dict[str, Any]], dimension: int
    ) -> RecordBatch:
        arr = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dimension)
        keys = sorted({k for row in metadata for k in row})
        table = pa.table({k: [row.get(k) for row in metadata] for k in keys}) if keys else _empty_meta(len(ids))
        return RecordBatch(ids=pa.array(ids, pa.string()), vectors=arr, metadata=table)


def _empty_meta(n: int) -> pa.Table:
    return pa.table({"__dummy": pa.nulls(n)}).drop(["__dummy"])


def json_ready(metadata: pa.Table) -> pa.Table:
    """Metadata with each timestamp, date or time column as the ISO 8601 text JSON holds it as
    (``iso_text``), each binary column as hex text, and float32 values as the numbers they are
    written as (``exact_floats``): what is hashed (``canonical``) and what every destination that
    takes JSON is sent, so one dataset gives every destination the same values (Qdrant's client
    refused Python datetimes and bytes). Maps, and times or bytes inside lists and structs, become
    JSON where the rows are made (``json_value``). Other columns as they are."""
    for i, field in enumerate(metadata.schema):
        kind = field.type
        if _with_floats(kind, pa.float64()) != kind:
            metadata = metadata.set_column(i, field.name, exact_floats(metadata.column(i).combine_chunks()))
        elif pa.types.is_temporal(kind) and _plain_text(kind):
            metadata = metadata.set_column(i, field.name, iso_text(metadata.column(i).combine_chunks()))
        elif _plain_text(kind):
            hexed = [None if v is None else v.hex() for v in metadata.column(i).to_pylist()]
            metadata = metadata.set_column(i, field.name, pa.array(hexed, pa.string()))
    return metadata


def iso_text(values: pa.Array) -> pa.Array:
    """Each value's ``isoformat()``. Nanoseconds (pandas' unit) are written as pandas writes them
    (``.123456789``) whether pandas is installed or not: without it pyarrow cannot make such a
    value a ``datetime`` at all, and with it the text would differ from a machine without it."""
    if not (pa.types.is_timestamp(values.type) and values.type.unit == "ns"):
        return pa.array([None if v is None else v.isoformat() for v in values.to_pylist()], pa.string())
    nanos = values.cast(pa.int64())
    extra = pc.subtract(nanos, pc.multiply(pc.divide(nanos, 1000), 1000)).to_pylist()  # divide truncates, as the cast below
    micros = values.cast(pa.timestamp("us", values.type.tz), safe=False).to_pylist()
    out: list[str | None] = []
    for value, rest in zip(micros, extra, strict=True):
        if value is None:
            out.append(None)
            continue
        if rest < 0:  # -5 ns: the microsecond below, plus 995 ns
            value, rest = value - _ONE_MICROSECOND, rest + 1000
        text = value.isoformat()
        if rest:
            naive = value.replace(tzinfo=None).isoformat()
            text = (naive if value.microsecond else naive + ".000000") + f"{rest:03d}" + text[len(naive):]
        out.append(text)
    return pa.array(out, pa.string())


def exact_floats(values: pa.Array) -> pa.Array:
    """float32 (and float16) values, also inside lists, structs and maps, as the float64 of their shortest
    text: a float32 0.1 is 0.1, not 0.10000000149011612, which is what ``float()`` of it gives and
    what a range filter ``score <= 0.1`` in the index would then miss. Arrow writes a float32 as
    its shortest round-trip text, and reads that text back as the nearest float64."""
    wide = _with_floats(values.type, pa.float64())
    if wide == values.type:
        return values
    return values.cast(_with_floats(values.type, pa.string())).cast(wide)


def _with_floats(kind: pa.DataType, to: pa.DataType) -> pa.DataType:
    """``kind`` with every float16/float32 in it made ``to`` (``with_types_replaced``)."""
    return with_types_replaced(kind, lambda t: pa.types.is_float16(t) or pa.types.is_float32(t), to)


def with_types_replaced(kind: pa.DataType, pick: Callable[[pa.DataType], bool], to: pa.DataType) -> pa.DataType:
    """``kind`` with every type ``pick`` selects in it, at any depth of lists, structs and maps'
    values, made ``to``; ``kind`` itself when there is none."""
    if pick(kind):
        return to
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = with_types_replaced(kind.value_type, pick, to)
        if inner == kind.value_type:
            return kind
        return pa.list_(inner) if pa.types.is_list(kind) else pa.large_list(inner)
    if pa.types.is_struct(kind):
        fields = [pa.field(f.name, with_types_replaced(f.type, pick, to), f.nullable) for f in kind]
        return kind if all(f.type == o.type for f, o in zip(fields, kind, strict=True)) else pa.struct(fields)
    if pa.types.is_map(kind):
        item = with_types_replaced(kind.item_type, pick, to)
        return kind if item == kind.item_type else pa.map_(kind.key_type, item)
    return kind


def json_value(value: Any, kind: pa.DataType) -> Any:
    """A Python value of Arrow type ``kind`` as JSON holds it, at any depth of lists and structs: a
    map (pyarrow gives a list of key/value pairs) as a dict, a JSON object as Spark and DuckDB write
    it; a datetime, date or time as its ISO 8601 text and bytes as hex, the text the hash takes
    (``canonical``). A key twice in one map is a ``KeyError`` (which of its values would the
    record hold?). pyarrow's own ``maps_as_pydicts`` needs a newer pyarrow than vectorops requires."""
    if value is None:
        return None
    if pa.types.is_map(kind):
        out: dict[Any, Any] = {}
        for key, item in value:
            if key in out:
                raise KeyError(key)
            out[key] = json_value(item, kind.item_type)
        return out
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return [json_value(item, kind.value_type) for item in value]
    if pa.types.is_struct(kind):
        return {f.name: json_value(value.get(f.name), f.type) for f in kind}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _walked(kind: pa.DataType) -> bool:
    """Whether values of ``kind`` need ``json_value``: a map, or a time or bytes inside a list or struct."""
    if pa.types.is_map(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _walked(kind.value_type) or _plain_text(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_walked(f.type) or _plain_text(f.type) for f in kind)
    return False


def _plain_text(kind: pa.DataType) -> bool:
    """A time (timestamp, date, time of day) or bytes: JSON holds it as text."""
    temporal = pa.types.is_temporal(kind) and not (pa.types.is_duration(kind) or pa.types.is_interval(kind))
    return temporal or pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def python_values(values: pa.Array) -> list[Any]:
    """``values.to_pylist()``, as JSON holds them (``json_value``)."""
    rows = values.to_pylist()
    return [json_value(v, values.type) for v in rows] if _walked(values.type) else rows
