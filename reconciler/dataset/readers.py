"""Stream Parquet and JSONL files in bounded batches.

Parquet is read a few row groups at a time (only the needed columns), decoded in parallel, so
memory is a handful of row groups, not the file. JSONL is cut into blocks of
``batch_size`` lines and each block parsed by pyarrow's JSON reader; only when a block fails to
parse are its lines re-read one by one with ``json`` to name the bad line.
"""

from __future__ import annotations

import functools
import io
import json
import mmap
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from reconciler.dataset import decode
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch, with_types_replaced

LayoutFor = Callable[[Sequence[str]], decode.Layout]


#: row groups decoded ahead, in parallel. pyarrow decodes a FixedSizeList column on one core; with
#: one worker per core the decoding overlaps the caller's hashing (at 1M x 768 on 2 cores, a cold
#: plan took 10 s with 2 workers, 12 s with 1, 15 s reading in the caller's thread).
READ_THREADS = max(1, int(os.environ.get("VECTOROPS_READ_THREADS", "0")) or min(4, os.cpu_count() or 1))
#: hand the Arrow pool's freed memory back after every row group (``ParquetSource.done_with``);
#: a hashing worker, whose one Arrow thread reuses it, turns this off
RELEASE_EACH_GROUP = True
_PAGE = mmap.PAGESIZE
DECODE_ROWS = 16_384
#: a row group larger than this (uncompressed) is not decoded whole ahead of the caller but streamed
#: a slice at a time, its pages read through a small buffer (``ParquetSource.streaming_reader``):
#: pyarrow writes groups of up to 1Mi rows by default, so ``df.to_parquet()`` of 1M × 768 is ONE
#: 3 GB group, and decoding a group whole held ~2.2× its size (a 1.2 GB group: 2.7 GB peak; streamed: 0.4 GB)
STREAM_GROUP_BYTES = 256 * 1024 * 1024
STREAM_BUFFER_BYTES = 4 * 1024 * 1024
#: slices of such a group decoded ahead of the caller, by one thread
STREAM_AHEAD = 2


class ParquetSource:
    """A Parquet file opened for streaming: memory-mapped when it is a local file.

    Mapping avoids copying every byte through read() into fresh buffers (measured at 1M x 768:
    3.4 s of system time a version buffered, 0.7 s mapped). Mapped pages would count as the
    process's memory until unmapped, so each row group's pages are dropped (MADV_DONTNEED; the
    page cache keeps them) as soon as its batches are consumed: memory stays a few row groups.
    """

    def __init__(self, handle: IO[bytes], local: str | None, where: str) -> None:
        self._map: mmap.mmap | None = None
        self._handle, self._local = handle, local
        self._streaming: pq.ParquetFile | None = None
        try:
            if local is not None and hasattr(mmap, "MADV_DONTNEED") and os.path.getsize(local) > 0:
                with open(local, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                self.file = self.reader()
            else:
                self.file = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(
                f"{where}: not a readable Parquet file ({exc})",
                hint="Check the dataset's `format:` in the manifest (parquet or jsonl) and that the file was written completely.",
            ) from exc

    @property
    def parallel(self) -> bool:
        """Workers need their own readers; a mapped file gives each one for free."""
        return self._map is not None

    def reader(self) -> pq.ParquetFile:
        assert self._map is not None
        return pq.ParquetFile(pa.BufferReader(pa.py_buffer(self._map)))

    def streaming_reader(self) -> pq.ParquetFile:
        """A reader for row groups too large to hold (``STREAM_GROUP_BYTES``): each column's pages come
        through a small buffer, not the whole column chunk at once, and a local file is read, not
        mapped (every mapped page a group touches would count as this process's memory until the
        group ends)."""
        if self._streaming is None:
            source = self._local if self._local is not None else self._handle
            self._streaming = pq.ParquetFile(source, buffer_size=STREAM_BUFFER_BYTES, pre_buffer=False)
        return self._streaming

    def done_with(self, group: int) -> None:
        """A row group is consumed: hand its memory back now rather than when the file ends.

        Its mapped pages are dropped (re-read from the page cache if touched again), and the Arrow
        pool returns what was freed: it otherwise keeps what decoding threads allocated and the
        caller freed, and peak memory grew with the number of groups (1M x 768: 1.69 GB -> 1.41 GB,
        no slower). Except in a hashing worker (``RELEASE_EACH_GROUP`` off): it decodes with one
        Arrow thread, which reuses what the last group freed, and returning that memory and faulting
        it back in every group was ~0.05 s of system time a 100k-record shard (~15% of its work).
        """
        if RELEASE_EACH_GROUP:
            pa.default_memory_pool().release_unused()
        if self._map is None:
            return
        meta = self.file.metadata.row_group(group)
        spans = []
        for c in range(meta.num_columns):
            col = meta.column(c)
            first = min(o for o in (col.dictionary_page_offset, col.data_page_offset) if o is not None and o >= 0)
            spans.append((first, first + col.total_compressed_size))
        lo = min(a for a, _ in spans) // _PAGE * _PAGE
        hi = min(len(self._map), -(-max(b for _, b in spans) // _PAGE) * _PAGE)
        if hi > lo:
            self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def parquet_batches(source: ParquetSource, layout_for: LayoutFor, batch_size: int, ids_only: bool) -> Iterator[RecordBatch]:
    """Batches in file order; row groups decoded and checked by ``READ_THREADS`` workers ahead.

    Memory is bounded by about ``READ_THREADS + 1`` row groups, never by the file (``iter_batches``
    over the whole file reads ahead without a bound: ~1.3 GB allocated for a 0.9 GB file).
    """
    pf = source.file
    layout = layout_for(pf.schema_arrow.names)
    columns = [layout.id_field] if ids_only else layout.columns
    untyped = any(pa.types.is_null(pf.schema_arrow.field(c).type) for c in (layout.id_field, layout.vector_field))
    if pf.metadata.num_rows == 0 and untyped:
        return  # no records, and columns typed null (pandas writes an empty frame so): nothing to check
    if not ids_only:  # column types and fixed dimensions are known from the footer: fail before reading data
        decode.to_records(pf.schema_arrow.empty_table().select(columns), layout, _rows)
    groups = pf.num_row_groups
    starts = np.concatenate([[0], np.cumsum([pf.metadata.row_group(g).num_rows for g in range(groups)])]).astype(np.int64)
    workers = READ_THREADS if source.parallel and groups > 1 else 0
    readers: queue.SimpleQueue[pq.ParquetFile] = queue.SimpleQueue()
    readers.put(pf)
    for _ in range(workers - 1):  # the first worker uses the file the footer came from
        readers.put(source.reader())

    def decode_group(group: int) -> list[RecordBatch]:
        reader = readers.get()
        out = []
        offset = int(starts[group])
        try:
            # in slices of the group: decoding a whole group at once holds its value and level
            # buffers (~3x the decoded vectors) at the same time
            for batch in reader.iter_batches(batch_size=min(batch_size, DECODE_ROWS), row_groups=[group], columns=columns,
                                             use_threads=workers <= 1):
                out.append(decode.to_records(batch, layout, functools.partial(_rows, start=offset), ids_only))
                offset += batch.num_rows
        finally:
            readers.put(reader)
        return out

    def stream_group(group: int) -> Iterator[RecordBatch]:
        """A group too large to decode whole: a slice at a time, the next ones decoded and checked by a
        thread while the caller works on this one (``STREAM_AHEAD`` slices at most)."""
        batches = source.streaming_reader().iter_batches(
            batch_size=min(batch_size, DECODE_ROWS), row_groups=[group], columns=columns, use_threads=True
        )

        def checked() -> Iterator[RecordBatch]:
            offset = int(starts[group])
            for batch in batches:
                yield decode.to_records(batch, layout, functools.partial(_rows, start=offset), ids_only)
                offset += batch.num_rows

        yield from _ahead(checked(), STREAM_AHEAD) if READ_THREADS > 0 else checked()  # not in a hashing worker
        source.done_with(group)

    huge = [pf.metadata.row_group(g).total_byte_size > STREAM_GROUP_BYTES for g in range(groups)]
    if workers == 0:  # a remote stream, or a hashing worker: one reader, in this thread
        try:
            for group in range(groups):
                if huge[group]:
                    yield from stream_group(group)
                    continue
                yield from decode_group(group)
                source.done_with(group)
        finally:
            pa.default_memory_pool().release_unused()
        return
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vectorops-read")
    ahead: deque[tuple[int, Future[list[RecordBatch]]]] = deque()
    try:
        for group in range(groups):
            if huge[group]:  # what was read ahead first, then this one streamed
                while ahead:
                    yield from _drain(ahead.popleft(), source)
                yield from stream_group(group)
                continue
            ahead.append((group, executor.submit(decode_group, group)))
            if len(ahead) >= workers:
                yield from _drain(ahead.popleft(), source)
        while ahead:
            yield from _drain(ahead.popleft(), source)
    finally:  # the consumer may stop early (first batch only, every wanted id found)
        for _, future in ahead:
            future.cancel()
        executor.shutdown(wait=True)
        pa.default_memory_pool().release_unused()  # groups decoded but never consumed


def _ahead(items: Iterator[RecordBatch], depth: int) -> Iterator[RecordBatch]:
    """``items``, produced by a thread at most ``depth`` ahead of the consumer (pyarrow decodes
    without the GIL, so decoding the next slice overlaps the caller's work on this one)."""
    done = object()
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=produce, name="vectorops-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, RecordBatch)
            yield item
    finally:  # the consumer may stop early: the thread stops at its next slice
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _drain(entry: tuple[int, Future[list[RecordBatch]]], source: ParquetSource) -> Iterator[RecordBatch]:
    """A decoded group's batches, each let go once the caller is done with it (not at group end)."""
    group, future = entry
    batches = future.result()
    batches.reverse()
    while batches:
        yield batches.pop()
    source.done_with(group)


def _rows(positions: np.ndarray, start: int = 0) -> str:
    """Where in the file rows are (``start``: the first row of the batch they were found in)."""
    positions = positions + start
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
    handle: Iterable[bytes], where: str, layout_for: LayoutFor, batch_size: int, ids_only: bool, limit: int | None = None
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
    read_options = pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, len(data) + 1))
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=read_options)
        as_text = _timestamps_as_text(table.schema)
        if as_text is not None:  # read again, those fields as the strings they are
            options = pajson.ParseOptions(explicit_schema=as_text, unexpected_field_behavior="infer")
            table = pajson.read_json(io.BytesIO(data), read_options=read_options, parse_options=options)
    except pa.ArrowInvalid as exc:
        raise _explain_jsonl(block, numbers, where, exc) from None
    layout = layout_for(table.column_names)
    # a field no record of this block has is simply absent for all of them
    for name in layout.metadata:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return decode.to_records(table, layout, _lines(numbers), ids_only)


def _timestamps_as_text(schema: pa.Schema) -> pa.Schema | None:
    """The fields pyarrow parsed as timestamps, typed as strings; None when there are none.

    JSON has no timestamp type: pyarrow infers one for strings that look like dates, and the text
    the dataset holds ("2024-01-05", "…T10:00:00Z") would reach the index rewritten
    ("2024-01-05T00:00:00", the zone dropped). Nested fields keep their shape, strings in place of
    timestamps."""
    fields = [pa.field(f.name, with_types_replaced(f.type, pa.types.is_timestamp, pa.string())) for f in schema]
    changed = [f for f, original in zip(fields, schema, strict=True) if f.type != original.type]
    return pa.schema(changed) if changed else None


def _explain_jsonl(block: list[bytes], numbers: np.ndarray, where: str, exc: Exception) -> DatasetError:
    """pyarrow says what broke but not on which line; find the line with the json module."""
    kinds: dict[str, str] = {}
    for line, number in zip(block, numbers, strict=False):
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
