"""The canonical form of a record outside a dataset: canonical JSON metadata and the Arrow table
vectorops writes (LanceDB rows, the stash).

It sits below both the engine and the providers: the engine hashes canonical JSON, and a destination
that stores metadata as JSON text (LanceDB, PostgreSQL) must store exactly the same text, so a
``full`` refresh reads back what was hashed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler.errors import DatasetError
from reconciler.records import RecordBatch, json_ready, python_values


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN or infinite metadata value")
        # JSON has one number type (as Pinecone does): 3.0 and 3 are the same number (RFC 8785)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def canonical_json(metadata: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8, shortest round-trip floats, NaN/inf rejected."""
    return json.dumps(
        _canonical_value(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_metadata_array(batch: RecordBatch) -> pa.StringArray:
    """Each record's metadata as canonical JSON text, built column by column.

    Equal to ``canonical_json(row)`` for every row (tests hold the two together), but strings that
    need no escaping, integers and booleans are encoded by Arrow kernels, so the usual metadata
    (a few short fields) costs no Python work per record. Other columns fall back to ``json``.
    Null cells mean "field absent", as in ``RecordBatch.metadata_rows``.
    """
    table = json_ready(batch.metadata)  # timestamps as ISO text: the fast string path, nanoseconds too
    n = len(batch)
    names = sorted(table.column_names)
    if not names:
        return pa.array(["{}"] * n, pa.string())
    whole = _joined_when_every_field_is_plain(table, names)
    if whole is not None:
        return whole
    # each present field as ",name:value" ("" when absent), concatenated, the first comma dropped.
    # (binary_join_element_wise's null_handling="skip" drops rows whose every field is null:
    # seen in pyarrow 26, so nulls are filled first.)
    parts = [pc.fill_null(pc.binary_join_element_wise(",", _fragments(name, table.column(name), batch), ""), "") for name in names]
    joined = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    return pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 1), "}", "")


def records_table(batch: RecordBatch) -> pa.Table:
    """Records as vectorops keeps them outside a dataset (LanceDB rows, the stash): id, vector as
    FixedSizeList<float32>, metadata as canonical JSON text. ``records_from_table`` reads them back."""
    flat = pa.array(np.ascontiguousarray(batch.vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.table(
        {
            "id": batch.ids.cast(pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, batch.vectors.shape[1]),
            "metadata": canonical_metadata_array(batch),
        }
    )


def records_from_table(table: pa.Table) -> RecordBatch:
    vec = table.column("vector").combine_chunks()
    dim = vec.type.list_size
    vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    rows = [json.loads(m) if m else {} for m in table.column("metadata").to_pylist()]
    return RecordBatch.from_rows(table.column("id").to_pylist(), vectors, rows, dim)


def _joined_when_every_field_is_plain(table: pa.Table, names: list[str]) -> pa.StringArray | None:
    """The whole text in one kernel call when every field is present in every row and each is a
    string needing no escape, an integer or a boolean (the usual metadata); None otherwise.

    Field by field (below) costs several kernels a field; this is one join over all of them
    (4 fields, 100k records: 16 ms against 75 ms).
    """
    pieces: list[str | pa.Array] = []
    glue = "{"
    for name in names:
        values = _plain_column(table.column(name))
        encoded = None if values.null_count else _encoded_by_kernels(values)
        if encoded is None:
            return None
        opening, text, closing = encoded
        pieces += [glue + json.dumps(name, ensure_ascii=False) + ":" + opening, text]
        glue = closing + ","
    pieces.append(glue.removesuffix(",") + "}")
    return pc.binary_join_element_wise(*pieces, "")


def _plain_column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array; large and view strings as plain strings (the same text)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = values.type
    if pa.types.is_large_string(kind) or getattr(pa.types, "is_string_view", lambda t: False)(kind):
        values = values.cast(pa.string())
    return values


def _needs_escape(values: pa.StringArray) -> bool:
    """Whether a string holds a character ``json.dumps(ensure_ascii=False)`` escapes: '"', '\\' or
    U+0000..U+001F. In UTF-8 each is one byte that never occurs inside a multi-byte character, so
    the data buffer is checked as bytes (null slots' bytes too, if any: at worst the slow path).
    """
    if len(values) == 0 or values.buffers()[2] is None:
        return False
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return bool(((data < 0x20) | (data == 0x22) | (data == 0x5C)).any())


def _fragments(name: str, column: pa.ChunkedArray, batch: RecordBatch) -> pa.StringArray:
    """``"name":value`` per row (null where the cell is null)."""
    prefix = json.dumps(name, ensure_ascii=False) + ":"
    values = _plain_column(column)
    encoded = _encoded_by_kernels(values)
    if encoded is None:
        return pa.array(_python_fragments(prefix, name, values, batch), pa.string())
    opening, text, closing = encoded
    return pc.binary_join_element_wise(prefix + opening, text, closing, "")


def _encoded_by_kernels(values: pa.Array) -> tuple[str, pa.Array, str] | None:
    """A column's JSON values as (text before, text, text after) when Arrow kernels can write them
    exactly as ``json.dumps`` does: strings needing no escape, integers, booleans; None otherwise.
    The one place both fast paths (whole-row join, per-field fragments) take their encoding from."""
    kind = values.type
    if pa.types.is_string(kind) and not _needs_escape(values):
        return '"', values, '"'
    if pa.types.is_integer(kind):
        return "", values.cast(pa.string()), ""
    if pa.types.is_boolean(kind):
        return "", pc.if_else(values, "true", "false"), ""
    return None


def _python_fragments(prefix: str, name: str, column: pa.Array, batch: RecordBatch) -> list[str | None]:
    kind = column.type
    try:
        values = python_values(column)  # a map is a JSON object, as Spark and DuckDB write it
    except KeyError as exc:
        raise DatasetError(f"metadata field '{name}' holds a map with the key {exc.args[0]!r} twice in one record") from None
    if pa.types.is_string(kind):
        encode = _STRING_ENCODER.encode  # one encoder: json.dumps(..., ensure_ascii=False) builds one per call
        return [None if v is None else prefix + encode(v) for v in values]
    if pa.types.is_floating(kind):
        bad = pc.invert(pc.is_finite(column))
        if pc.any(pc.fill_null(bad, False)).as_py():
            first = pc.index(pc.fill_null(bad, False), True).as_py()
            raise DatasetError(f"record '{batch.ids[first].as_py()}': metadata field '{name}' is NaN or infinite")
        return [None if v is None else prefix + _number(v) for v in values]
    out: list[str | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(prefix + canonical_json(v).decode("utf-8"))
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"record '{batch.ids[i].as_py()}': metadata field '{name}' cannot be hashed as JSON ({exc})") from None
    return out


_STRING_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
