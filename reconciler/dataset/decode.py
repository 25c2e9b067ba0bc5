"""Arrow columns -> RecordBatch, with every check on bad input done vectorised, per batch.

Vectors may be stored three ways (FixedSizeList, list of floats, fixed_size_binary of float32);
each becomes one float32 (n, d) matrix without Python loops, and fixed_size_binary without even a
copy. Every error names the dataset, the version, the file and the offending ids or rows, because
the person reading it has to find them in a file of millions of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler.dataset.model import FolderField
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch, exact_floats
from reconciler.redact import printable

SHOWN = 10  # how many ids or rows a message lists


@dataclass(frozen=True)
class Layout:
    """Which columns to read and what they must hold."""

    where: str  # "dataset 'docs' (vectorops.yaml:5:5) at v2 (abc123def456), file data/docs.parquet"
    id_field: str
    vector_field: str
    metadata: tuple[str, ...]  # read from the file
    dimension: int
    folder: tuple[FolderField, ...] = ()  # metadata from the Hive-style folders above the file (``folders``)

    @property
    def columns(self) -> list[str]:
        return [self.id_field, self.vector_field, *self.metadata]


def layout_for(
    where: str, id_field: str, vector_field: str, metadata_fields: Sequence[str] | None, dimension: int, available: Sequence[str],
    folder: Sequence[FolderField] = (),
) -> Layout:
    """Check the declared columns exist; ``metadata_fields=None`` means every other column, and
    every field of the folders above the file (``folder``)."""
    _refuse_folder_clash(where, id_field, vector_field, available, folder)
    named = {f.name for f in folder}
    wanted = [id_field, vector_field, *(metadata_fields or [])]
    missing = [c for c in wanted if c not in available and c not in named]
    if missing:
        raise DatasetError(
            f"{where}: missing column(s) {_names(missing)}; the file has: {_names(available)}"
            + (f", and the folders above it give {_names(sorted(named))}" if named else ""),
            hint="Set id_field, vector_field and metadata_fields in the manifest to columns the file has.",
        )
    if metadata_fields is None:
        metadata = tuple(c for c in available if c not in (id_field, vector_field))
        return Layout(where, id_field, vector_field, metadata, dimension, tuple(folder))
    chosen = set(metadata_fields)
    metadata = tuple(c for c in metadata_fields if c not in named)
    return Layout(where, id_field, vector_field, metadata, dimension, tuple(f for f in folder if f.name in chosen))


def _refuse_folder_clash(where: str, id_field: str, vector_field: str, available: Sequence[str], folder: Sequence[FolderField]) -> None:
    """A folder field that would give a record a second value of a field it has (``folders``)."""
    for field in folder:
        if field.name in (id_field, vector_field):
            role = "id" if field.name == id_field else "vector"
            raise DatasetError(
                f"{where}: a folder above this file is named '{printable(field.name)}=…', which would set the {role} field "
                f"'{printable(field.name)}' of every record in it",
                hint="Rename the folder (Hive-style `key=value` folders become metadata fields), then `dvc add` the directory and commit again.",
            )
        if field.name in available:
            raise DatasetError(
                f"{where}: '{printable(field.name)}' is both a column of this file and the name of a folder above it "
                f"('{printable(field.name)}=…'), so each record would have two values of it",
                hint=f"Drop the column '{printable(field.name)}' from the files (Spark's partitionBy leaves it out), or rename "
                "the folder; then `dvc add` the directory and commit again.",
            )


def to_records(
    data: pa.RecordBatch | pa.Table, layout: Layout, rows: Callable[[np.ndarray], str], ids_only: bool = False
) -> RecordBatch:
    """Decode and check one batch. ``rows`` turns batch positions into "rows 3, 9" for messages."""
    n = data.num_rows
    ids = check_ids(_column(data, layout.id_field), layout, rows)
    check_unique(ids, layout)
    if ids_only:
        return RecordBatch(ids=ids, vectors=np.empty((n, 0), np.float32), metadata=_no_columns(n))
    vectors = decode_vectors(_column(data, layout.vector_field), layout, ids)
    check_finite(vectors, ids, layout)
    metadata = pa.table({name: _metadata_column(data, name, layout) for name in layout.metadata}) if layout.metadata else _no_columns(n)
    check_metadata_finite(metadata, ids, layout)
    for field in layout.folder:  # the same value for every record below the folder
        kind = pa.int64() if field.type == "int64" else pa.string()
        value = pa.nulls(n, kind) if field.value is None else pa.repeat(pa.scalar(field.value, kind), n)
        metadata = metadata.append_column(field.name, value)
    return RecordBatch(ids=ids, vectors=vectors, metadata=metadata)


def check_ids(column: pa.Array, layout: Layout, rows: Callable[[np.ndarray], str]) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_large_string(column.type) or _is(column.type, "is_string_view"):
        column = column.cast(pa.string())
    if not pa.types.is_string(column.type):
        valid = column.drop_null()
        example = f" (first value: {valid[0].as_py()!r})" if len(valid) else ""
        raise DatasetError(
            f"{layout.where}: id column '{layout.id_field}' holds {column.type} values{example}; ids must be strings",
            hint="Write the ids as strings (e.g. df['id'] = df['id'].astype(str)), then `dvc add` and commit again.",
        )
    bad = pc.or_kleene(pc.is_null(column), pc.equal(pc.binary_length(column), 0))
    bad = pc.fill_null(bad, True)
    if pc.any(bad).as_py():
        positions = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
        raise DatasetError(
            f"{layout.where}: empty or missing ids at {rows(positions)}",
            hint="Every record needs a non-empty string id; fix those rows, then `dvc add` and commit again.",
        )
    return column


def check_unique(ids: pa.Array, layout: Layout) -> None:
    """Duplicates within the batch; the engine's id table catches those across batches."""
    if len(ids) < 2:
        return
    counts = pc.value_counts(ids)
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        names = dup.field("values").to_pylist()
        raise DatasetError(
            f"{layout.where}: duplicate ids: {_names(sorted(names))}",
            hint="Ids must be unique within a dataset version; deduplicate the file, then `dvc add` and commit again.",
        )


def decode_vectors(column: pa.Array, layout: Layout, ids: pa.Array) -> np.ndarray:
    """The vector column as a float32 (n, dimension) matrix (a view where the layout allows)."""
    dim, n, t = layout.dimension, len(column), column.type
    if pa.types.is_dictionary(t):
        column, t = column.dictionary_decode(), t.value_type
    if column.null_count:
        _fail_rows(layout, ids, pc.is_null(column), "have no vector (null)")
    if pa.types.is_fixed_size_binary(t):
        if t.byte_width != 4 * dim:
            found = f"{t.byte_width // 4}" if t.byte_width % 4 == 0 else f"{t.byte_width} bytes"
            _dimension_error(layout, found)
        if n == 0:
            return np.empty((0, dim), np.float32)
        flat = np.frombuffer(column.buffers()[1], dtype=np.float32)
        return flat[column.offset * dim : (column.offset + n) * dim].reshape(n, dim)
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            _dimension_error(layout, str(t.list_size))
        values = column.flatten()
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or _is(t, "is_list_view") or _is(t, "is_large_list_view"):
        lengths = pc.list_value_length(column)
        wrong = pc.not_equal(lengths, dim)
        if pc.any(wrong).as_py():
            lengths_found = sorted(set(lengths.filter(wrong).to_pylist()))
            _fail_rows(layout, ids, wrong, f"have {_names(lengths_found, quote=False)} values per vector; the manifest declares dimension {dim}",
                       hint="Set embedding.dimension in the manifest to the model's dimension, or re-embed the data.")
        values = column.flatten()
    else:
        raise DatasetError(
            f"{layout.where}: vector column '{layout.vector_field}' has type {t}; expected a list of floats, "
            f"fixed_size_list<float32>[{dim}] or fixed_size_binary({4 * dim}) of float32",
            hint="Write the vectors as float32 lists (or set vector_field to the column that holds them).",
        )
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise DatasetError(
            f"{layout.where}: vector column '{layout.vector_field}' holds {values.type} values; vectors must be numbers",
            hint="Write the vectors as lists of float32.",
        )
    if values.type != pa.float32():
        values = values.cast(pa.float32(), safe=False)
    # nulls inside a vector become NaN here and are reported by check_finite
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(n, dim) if n else np.empty((0, dim), np.float32)


def check_finite(vectors: np.ndarray, ids: pa.Array, layout: Layout) -> None:
    # a row with a NaN or infinity sums to NaN or infinity: one cheap pass instead of a full
    # boolean matrix; only rows whose sum is not finite (or overflowed) are looked at closely
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = ~np.isfinite(vectors.sum(axis=1))
    if not suspect.any():
        return
    finite = np.ones(len(vectors), bool)
    finite[suspect] = np.isfinite(vectors[suspect]).all(axis=1)
    if not finite.all():
        _fail_rows(layout, ids, pa.array(~finite), "have NaN, infinite or missing values in their vectors",
                   hint="Fix or drop those records (NaN usually means the embedding job failed), then `dvc add` again.")


def check_metadata_finite(metadata: pa.Table, ids: pa.Array, layout: Layout) -> None:
    """Canonical JSON has no NaN or infinity, so such metadata cannot be hashed or stored."""
    for name in metadata.column_names:
        col = metadata.column(name)
        if not pa.types.is_floating(col.type):
            continue
        bad = pc.fill_null(pc.invert(pc.is_finite(col)), False)
        if pc.any(bad).as_py():
            _fail_rows(layout, ids, bad.combine_chunks() if isinstance(bad, pa.ChunkedArray) else bad,
                       f"have NaN or infinite values in metadata field '{name}'",
                       hint="JSON has no NaN or infinity: use null (field absent) instead, then `dvc add` again.")


def _fail_rows(layout: Layout, ids: pa.Array, mask: pa.Array, what: str, hint: str | None = None) -> None:
    positions = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    shown = ids.take(pa.array(positions[:SHOWN])).to_pylist()
    more = f" and {len(positions) - SHOWN} more" if len(positions) > SHOWN else ""
    if len(positions) == 1 and what.startswith("have "):
        raise DatasetError(f"{layout.where}: record {_names(shown)} has {what[5:]}", hint=hint)
    raise DatasetError(f"{layout.where}: records {_names(shown)}{more} {what}", hint=hint)


def _dimension_error(layout: Layout, found: str) -> None:
    raise DatasetError(
        f"{layout.where}: vector column '{layout.vector_field}' has dimension {found}; "
        f"the manifest declares {layout.dimension}",
        hint="Set embedding.dimension to the dimension the model produces, or pin a version embedded with that model.",
    )


def _is(t: pa.DataType, predicate: str) -> bool:
    """Type predicates newer pyarrow versions add (view types); False where they do not exist."""
    check = getattr(pa.types, predicate, None)
    return bool(check and check(t))


def _metadata_column(data: pa.RecordBatch | pa.Table, name: str, layout: Layout) -> pa.Array:
    """A metadata column as the value it holds for JSON: a dictionary-encoded column (pandas'
    ``category``) as its values, so a shard written with one and a shard without agree on the type;
    a decimal as a number (float64), as JSON and every destination's filters hold numbers; a
    float32 as the float64 of its shortest text (``records.exact_floats``). A
    duration or interval has no JSON form: refused, naming the field. (Timestamps, dates and times
    stay typed, for a table with such columns; as JSON they are ISO 8601 text: ``records.json_ready``.)"""
    col = _column(data, name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_decimal(col.type):  # through its text: Arrow's direct cast makes 19.90 into 19.900000000000002
        return col.cast(pa.string()).cast(pa.float64())
    col = exact_floats(col)  # a float32 0.1 is 0.1 (not 0.10000000149011612), in every destination
    if pa.types.is_duration(col.type) or pa.types.is_interval(col.type):
        raise DatasetError(
            f"{layout.where}: metadata field '{printable(name)}' is {col.type}, which has no JSON form",
            hint=f"Store it as a number (e.g. seconds: df['{printable(name)}'].dt.total_seconds()), then `dvc add` and commit again.",
        )
    return col


def _column(data: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    col = data.column(name)
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _no_columns(n: int) -> pa.Table:
    return pa.table({"_": pa.nulls(n)}).drop(["_"])


def _names(values: Sequence[object], quote: bool = True) -> str:
    items = [f"'{printable(v)}'" if quote else printable(v) for v in list(values)[:SHOWN]]
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return ", ".join(items) + more
