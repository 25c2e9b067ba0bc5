"""Stream Parquet and JSONL files in bounded batches.

Parquet goes through ``ParquetFile.iter_batches`` reading only the needed columns, so memory is a
batch (plus pyarrow's row-group buffers), not the file. JSONL is cut into blocks of
``batch_size`` lines and each block parsed by pyarrow's JSON reader; only when a block fails to
parse are its lines re-read one by one with ``json`` to name the bad line.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from reconciler.dataset import decode
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch

LayoutFor = Callable[[Sequence[str]], decode.Layout]


def open_parquet(handle: IO[bytes], local: str | None, where: str) -> pq.ParquetFile:
    try:
        # no memory map: mapped pages count as the process's memory, so a mapped read of a 3 GB
        # version looks like 3 GB resident even though each batch is freed (plan memory must stay
        # bounded by a batch); buffered reads of one row group at a time keep it that way
        return pq.ParquetFile(local, memory_map=False, buffer_size=8 << 20) if local else pq.ParquetFile(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(
            f"{where}: not a readable Parquet file ({exc})",
            hint="Check the dataset's `format:` in the manifest (parquet or jsonl) and that the file was written completely.",
        ) from exc


def parquet_batches(
    pf: pq.ParquetFile, layout_for: LayoutFor, batch_size: int, ids_only: bool
) -> Iterator[RecordBatch]:
    layout = layout_for(pf.schema_arrow.names)
    columns = [layout.id_field] if ids_only else layout.columns
    if not ids_only:  # column types and fixed dimensions are known from the footer: fail before reading data
        decode.to_records(pf.schema_arrow.empty_table().select(columns), layout, _rows)
    offset = 0
    pool = pa.default_memory_pool()
    # one row group at a time: ParquetFile.iter_batches reads several row groups ahead (measured:
    # ~1.3 GB allocated for a 0.9 GB file), which made plan memory grow with the dataset
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group, columns=columns, use_threads=True)
        for batch in table.to_batches(max_chunksize=batch_size):
            start = offset
            yield decode.to_records(batch, layout, lambda pos: _rows(pos + start), ids_only)
            offset += batch.num_rows
        del table
        pool.release_unused()


def _rows(positions: np.ndarray) -> str:
    shown = ", ".join(str(int(p)) for p in positions[: decode.SHOWN])
    more = f" and {len(positions) - decode.SHOWN} more" if len(positions) > decode.SHOWN else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more} (counting from 0)"


def _lines(numbers: np.ndarray) -> Callable[[np.ndarray], str]:
    def describe(positions: np.ndarray) -> str:
        picked = numbers[positions]
        shown = ", ".join(str(int(p)) for p in picked[: decode.SHOWN])
        more = f" and {len(picked) - decode.SHOWN} more" if len(picked) > decode.SHOWN else ""
        return f"line{'s' if len(picked) > 1 else ''} {shown}{more}"

    return describe


def jsonl_batches(
    handle: IO[bytes], where: str, layout_for: LayoutFor, batch_size: int, ids_only: bool, limit: int | None = None
) -> Iterator[RecordBatch]:
    """One RecordBatch per ``batch_size`` non-blank lines; ``limit`` stops after that many lines."""
    block: list[bytes] = []
    numbers: list[int] = []
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        block.append(line if line.endswith(b"\n") else line + b"\n")
        numbers.append(number)
        if len(block) == batch_size or (limit is not None and len(block) >= limit):
            yield _jsonl_block(block, np.asarray(numbers), where, layout_for, ids_only)
            block, numbers = [], []
            if limit is not None:
                return
    if block:
        yield _jsonl_block(block, np.asarray(numbers), where, layout_for, ids_only)


def _jsonl_block(
    block: list[bytes], numbers: np.ndarray, where: str, layout_for: LayoutFor, ids_only: bool
) -> RecordBatch:
    data = b"".join(block)
    try:
        table = pajson.read_json(
            io.BytesIO(data), read_options=pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, len(data) + 1))
        )
    except pa.ArrowInvalid as exc:
        raise _explain_jsonl(block, numbers, where, exc) from None
    layout = layout_for(table.column_names)
    # a field no record of this block has is simply absent for all of them
    for name in layout.metadata:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return decode.to_records(table, layout, _lines(numbers), ids_only)


def _explain_jsonl(block: list[bytes], numbers: np.ndarray, where: str, exc: Exception) -> DatasetError:
    """pyarrow says what broke but not on which line; find the line with the json module."""
    kinds: dict[str, str] = {}
    for line, number in zip(block, numbers):
        try:
            record = json.loads(line)
        except ValueError as err:
            return DatasetError(f"{where}: line {number} is not valid JSON ({err})", hint="Each line must hold one JSON object.")
        if not isinstance(record, dict):
            return DatasetError(f"{where}: line {number} is not a JSON object", hint="Each line must hold one JSON object.")
        for key, value in record.items():
            kind = _kind(value)
            if kind == "null":
                continue
            if kinds.setdefault(key, kind) != kind:
                return DatasetError(
                    f"{where}: line {number}: field '{key}' is a {kind} here but a {kinds[key]} on earlier lines",
                    hint="Give each field one JSON type on every line (ids are strings).",
                )
    return DatasetError(f"{where}: cannot parse lines {numbers[0]}-{numbers[-1]}: {exc}", hint="Each line must hold one JSON object.")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"
