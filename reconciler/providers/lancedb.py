"""LanceDB: the embedded default destination. One table per environment, state in a side table.

Every write is a commit (a version of the table), so a plan is written in as few calls as its size
allows: all upserts as one ``merge_insert``, all deletes as one ``delete`` that finds its rows
through the id index. (A single merge that also deletes "not matched by source" rows would be one
commit, but it scans the whole table: 6-8 s at 1M x 768 against ~0.4 s for the two commits.)
Each applied version is tagged, so a rollback restores a tag instead of rewriting records.
Metadata is stored as canonical JSON in one column so any dataset's fields round-trip exactly.
A table vectorops did not create (one built from `vectorops export` output, say) is adopted as it
is: metadata as real columns, as one JSON string column, or none, as long as it has a string `id`
and a fixed-size-list `vector` column (``TableLayout``); anything else is refused before a write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, StringConstraints

from reconciler.canonical import records_from_table, records_table
from reconciler.errors import DestinationError, DestinationMismatchError, DestinationStorageError, DestinationUnavailableError
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
from reconciler.providers.documents import parse_document
from reconciler.providers.settings import DestinationContext, DestinationSettings
from reconciler.records import RecordBatch

DOCS_TABLE = "_vectorops"
DOCS_SCHEMA = pa.schema([("key", pa.string()), ("doc", pa.string())])
_LANCE_METRIC = {"cosine": "cosine", "euclidean": "l2", "dotproduct": "dot"}
KEEP_VERSIONS_FOR = timedelta(days=7)  # old table versions kept for fast rollback
COMPACT_AT_SMALL_FRAGMENTS = 16


def _quote(ids: Sequence[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


#: rows per batch when scanning columns (ids): LanceDB's default batches are ~1k rows
SCAN_BATCH = 262_144
#: ids per delete commit (one SQL IN list)
DELETE_CHUNK = 50_000


REST_CLIENT = "lance_namespace_urllib3_client"


def defer_rest_client() -> None:
    """Keep lancedb's REST client from loading at start-up, which cost 0.4 s of every command.

    ``import lancedb`` pulls in ``lance_namespace``, which needs only the ``models`` of the generated
    REST client, but the client package's ``__init__`` also builds ~360 API functions wrapped in
    pydantic ``validate_call``; local tables never call one. So the package is registered without
    running its ``__init__``: submodules such as ``models`` import as usual, and the first time
    anyone asks the package itself for a name, ``__getattr__`` (PEP 562) runs the ``__init__`` then,
    so a remote connection still finds the whole client. Does nothing once the client is loaded, or
    where a lancedb release no longer ships it.
    """
    if REST_CLIENT in sys.modules:
        return
    spec = importlib.util.find_spec(REST_CLIENT)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.Lock()

    def __getattr__(name: str) -> Any:
        with lock:
            if package.__dict__.get("__getattr__") is __getattr__:
                del package.__getattr__
                loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {REST_CLIENT!r} has no attribute {name!r}") from None

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[REST_CLIENT] = package


class LanceDBSettings(DestinationSettings):
    """LanceDB: an embedded, on-disk table; no server needed."""

    type: Literal["lancedb"]
    uri: str = Field(".vectorops/lancedb", min_length=1, description="Database folder; relative to the manifest's folder")
    table: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)]

    def address(self) -> str:
        return f"lancedb:{self.uri}#{self.table}"

    def key(self, context: DestinationContext) -> str:
        return f"lancedb:{self._uri(context)}#{self.table}"

    def blue_green_refusal(self) -> str | None:
        return (
            "rollout: blue_green needs an alias readers address, and LanceDB has none (a table cannot be repointed). "
            "A LanceDB apply is already one atomic commit, so readers never see a half-written version, and "
            "`vectorops rollback` restores a tagged snapshot in about a second. Remove `rollout` (in_place is the default)."
        )

    def open(self, context: DestinationContext) -> LanceDBDestination:
        return LanceDBDestination(uri=self._uri(context), table=self.table, shown_uri=self.uri)

    def _uri(self, context: DestinationContext) -> str:
        return self.uri if "://" in self.uri else str(context.resolve(self.uri))


@dataclass(frozen=True)
class TableLayout:
    """How a table keeps its records: vectorops' own tables hold metadata as one JSON string column
    (``json``); an adopted table may hold it as real columns (``columns``) or not at all (``none``)."""

    id_type: pa.DataType
    vector_type: pa.DataType
    metadata: str  # json | columns | none
    columns: tuple[str, ...] = ()  # the metadata columns, in ``columns`` mode

    @property
    def select(self) -> list[str]:
        return ["id", "vector", *(("metadata",) if self.metadata == "json" else self.columns)]

    @staticmethod
    def of(schema: pa.Schema, address: str) -> TableLayout:
        """The layout of a table, or a DestinationError saying what the table must look like."""
        names = schema.names
        id_type = schema.field("id").type if "id" in names else None
        vector_type = schema.field("vector").type if "vector" in names else None
        problems = []
        if id_type is None or not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
            problems.append("no string column 'id'" if id_type is None else f"its 'id' column is {id_type}, not a string")
        if vector_type is None or not (pa.types.is_fixed_size_list(vector_type) and pa.types.is_floating(vector_type.value_type)):
            problems.append("no column 'vector'" if vector_type is None else f"its 'vector' column is {vector_type}, not a fixed-size list of floats")
        if problems:
            raise DestinationError(
                f"{address}: this table cannot be adopted: {' and '.join(problems)} (its columns: {', '.join(names) or 'none'}); nothing was written",
                hint="vectorops needs a string column 'id' and a column 'vector' of fixed-size lists of float32 of the "
                "manifest's dimension, e.g. pa.list_(pa.float32(), 384); metadata may be further columns, one JSON "
                "string column 'metadata', or absent. Point the environment at a new table to let vectorops create it.",
            )
        others = tuple(n for n in names if n not in ("id", "vector"))
        if not others:
            return TableLayout(id_type, vector_type, "none")
        if others == ("metadata",) and pa.types.is_string(schema.field("metadata").type):
            return TableLayout(id_type, vector_type, "json")
        return TableLayout(id_type, vector_type, "columns", others)


class LanceDBDestination(Destination):
    # every write is a table commit: one merge for all upserts, one delete; a first apply is one
    # plain add; each deployed version is tagged for rollback
    OWN_TABLE = Capabilities(fill=True, single_step=True, snapshots=True)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """``OWN_TABLE``'s, and for an adopted table that keeps metadata as columns also
        ``check_records``: plan then checks that the records' metadata fits those columns before
        anything is written. vectorops' own JSON layout takes any record, so plans against it never
        read records just to check them."""
        table = self._open()
        if table is not None and TableLayout.of(table.schema, self.address).metadata != "json":
            return dataclasses.replace(self.OWN_TABLE, check_records=True)
        return self.OWN_TABLE

    def __init__(self, *, uri: str, table: str, shown_uri: str | None = None) -> None:
        os.environ.setdefault("LANCE_LOG", "error")
        if "lancedb" not in sys.modules:
            defer_rest_client()
        self.uri = uri
        self.table_name = table
        self.address = f"lancedb:{shown_uri or uri}#{table}"
        import lancedb  # lazy: ~0.5 s of imports

        self._connect = lancedb.connect
        self._conn: Any = None
        self._table: Any = None
        self._docs: Any = None
        self._metric = "cosine"
        folder = self._folder()
        if folder is not None and folder.exists() and not folder.is_dir():
            _ = self._db  # something else is in the way: connecting says what, now, as it always did

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        """lance reports I/O as ``OSError`` (the base class's) and its other failures (a corrupt or
        concurrently rewritten table, a commit conflict) as ``RuntimeError``/``ValueError`` with a
        "lance error" message; both are the table's storage failing, not vectorops."""
        translated = super().translate_error(exc, doing)
        if translated is not None:
            return translated
        if _from_lance(exc):
            return DestinationStorageError(
                f"{self.address}: {doing} failed: {describe_exception(exc)}",
                hint="The LanceDB table could not be read or written; check its folder (free space, permissions, "
                "intact files) and run the command again.",
            )
        return None

    # -- tables --------------------------------------------------------------------------------

    @property
    def remote(self) -> bool:
        return "://" in self.uri

    def _folder(self) -> Path | None:
        """The database folder of a local ``uri`` (None for object stores and other remote URIs)."""
        return None if "://" in self.uri else Path(self.uri)

    def _exists(self) -> bool:
        """Whether there is a database to read: a local folder that is not there holds nothing."""
        folder = self._folder()
        return self._conn is not None or folder is None or folder.is_dir()

    @property
    def _db(self) -> Any:
        """The connection, made on first use. ``lancedb.connect`` creates the folder (parents
        included), so nothing that only reads may call it before the folder exists: readers ask
        ``_exists`` first, and only writers (``ensure``, documents) get here on a fresh uri."""
        if self._conn is None:
            self._conn = self._call(lambda: self._connect(self.uri))
        return self._conn

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run a LanceDB call that touches the store, telling a failure to reach it as what it is."""
        try:
            return action()
        except OSError as exc:
            if exc.filename is None:  # lance names no path: name the store
                raise OSError(exc.errno, exc.strerror, self.uri) from exc
            raise
        except (RuntimeError, ValueError) as exc:
            if not self.remote:
                raise
            from reconciler.ioerrors import lance_reason

            raise DestinationUnavailableError(
                f"{self.address}: cannot reach the LanceDB store at {self.uri}: {lance_reason(exc)}",
                hint="Check the uri (bucket and path), network access and the storage credentials "
                "(for s3://, AWS_REGION and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile), then run the command again.",
            ) from None

    def _tables(self) -> list[str]:
        if not self._exists():
            return []
        result = self._call(lambda: self._db.list_tables())
        names = getattr(result, "tables", result)
        return list(names)

    def _open(self) -> Any | None:
        if self._table is None and self.table_name in self._tables():
            self._table = self._db.open_table(self.table_name)
        return self._table

    def _require(self) -> Any:
        table = self._open()
        if table is None:
            raise DestinationError(f"{self.address}: table does not exist")
        return table

    def layout(self) -> TableLayout:
        return TableLayout.of(self._require().schema, self.address)

    def describe(self) -> DestinationInfo:
        table = self._open()
        if table is None:
            return DestinationInfo(exists=False)
        dim = TableLayout.of(table.schema, self.address).vector_type.list_size
        meta = (table.schema.metadata or {}).get(b"vectorops.metric")
        return DestinationInfo(exists=True, dimension=dim, metric=meta.decode() if meta else None, count=table.count_rows())

    def ensure(self, dimension: int, metric: str) -> None:
        if self._open() is not None:
            info = self.describe()
            problems = []
            if info.dimension is not None and info.dimension != dimension:
                problems.append(f"dimension {info.dimension} (the dataset's embedding has {dimension})")
            if info.metric and info.metric != metric:
                problems.append(f"metric {info.metric} (the manifest says {metric})")
            if problems:
                raise DestinationMismatchError(
                    f"{self.address}: the table has " + " and ".join(problems),
                    hint="Point the environment at a table created for this embedding, or change the manifest.",
                )
            return
        schema = pa.schema(
            [("id", pa.string()), ("vector", pa.list_(pa.float32(), dimension)), ("metadata", pa.string())],
            metadata={"vectorops.metric": metric},
        )
        self._table = self._db.create_table(self.table_name, schema=schema)
        from lancedb.index import BTree

        with contextlib.suppress(Exception):  # an index on an empty table is optional; retried after apply
            self._table.create_index("id", config=BTree())

    def table_version(self) -> int | None:
        table = self._open()
        return None if table is None else int(table.version)

    # -- records -------------------------------------------------------------------------------

    def _scan(self, columns: list[str], where: str | None = None) -> pa.Table:
        table = self._require()
        query = table.search().select(columns)
        if where:
            query = query.where(where)
        # big batches: to_arrow() gathers ~1k-row batches one by one (1M ids: 0.28 s against 0.06 s)
        batches = list(query.limit(None).to_batches(SCAN_BATCH))
        return pa.Table.from_batches(batches) if batches else query.limit(None).to_arrow()

    def _records(self, table: pa.Table, layout: TableLayout) -> RecordBatch:
        """Rows of this table, whatever its layout, as records (vectors as float32)."""
        if layout.metadata == "json":
            try:
                return records_from_table(table)
            except (ValueError, TypeError, AttributeError):  # JSONDecodeError is a ValueError
                _explain_json(table, self.address)
                raise
        vec = table.column("vector").combine_chunks()
        vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, vec.type.list_size)
        ids = table.column("id").combine_chunks().cast(pa.string())
        metadata = table.select(list(layout.columns)).combine_chunks() if layout.columns else _no_metadata(len(ids))
        return RecordBatch(ids=ids, vectors=vectors, metadata=metadata)

    def _rows(self, batch: RecordBatch, schema: pa.Schema) -> pa.Table:
        """Records as rows of this table: vectorops' JSON layout, or the adopted table's own columns."""
        layout = TableLayout.of(schema, self.address)
        if len(batch) and batch.vectors.shape[1] != layout.vector_type.list_size:
            raise DestinationMismatchError(
                f"{self.address}: vectors of dimension {batch.vectors.shape[1]} cannot go into this table "
                f"(dimension {layout.vector_type.list_size}); nothing was written",
                hint="Point the environment at a table created for this embedding.",
            )
        if layout.metadata == "json":
            return records_table(batch).cast(schema)
        flat = pa.array(np.ascontiguousarray(batch.vectors, dtype=np.float32).reshape(-1), pa.float32())
        columns: dict[str, Any] = {
            "id": batch.ids.cast(layout.id_type),
            "vector": pa.FixedSizeListArray.from_arrays(flat, batch.vectors.shape[1]).cast(layout.vector_type),
        }
        have = set(batch.metadata.column_names) if batch.metadata.num_columns else set()
        for name in layout.columns:
            kind = schema.field(name).type
            columns[name] = batch.metadata.column(name).cast(kind) if name in have else pa.nulls(len(batch), kind)
        return pa.table(columns).cast(schema)

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        """Metadata that would not keep its meaning in the adopted table's columns (a number in a
        text column, say), one sentence per field; a field the table lacks gets a new column."""
        schema = self._require().schema
        problems = []
        for name in _fields_present(batch):
            if name not in schema.names:
                continue
            have, want = batch.metadata.column(name).type, schema.field(name).type
            if not _fits(have, want):
                present = pc.is_valid(batch.metadata.column(name).combine_chunks())
                ids = ", ".join(batch.ids.filter(present)[:3].to_pylist())
                problems.append(f"metadata field '{name}' is {have} in the dataset, but the table's column '{name}' is {want} (records {ids})")
        return problems

    def _add_columns_for(self, batch: RecordBatch) -> Any:
        """An adopted table that keeps metadata as columns gets a nullable column for each metadata
        field it lacks (idempotent, so an interrupted apply simply finds it there)."""
        table = self._require()
        if TableLayout.of(table.schema, self.address).metadata == "json":
            return table
        new = [pa.field(name, batch.metadata.column(name).type) for name in _fields_present(batch) if name not in table.schema.names]
        if new:
            table.add_columns(new)
        return table

    def iter_ids(self, batch_size: int = 100_000) -> Iterator[list[str]]:
        for ids in self.id_batches():  # streamed, never the whole column at once
            for i in range(0, len(ids), batch_size):
                yield ids.slice(i, batch_size).to_pylist()

    def id_batches(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> Iterator[pa.Array]:
        """Every id, a scan batch at a time (``SCAN_BATCH``): LanceDB streams its scan. ``all_ids``
        (the base class's) joins these: 1M ids in ~0.05 s, 10M in ~0.3–0.6 s."""
        table = self._open()
        if table is None:
            return
        listed = 0
        for batch in table.search().select(["id"]).limit(None).to_batches(SCAN_BATCH):
            if batch.num_rows:
                listed += batch.num_rows
                yield batch.column(0).cast(pa.string())
                if progress is not None:
                    progress(listed)

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        layout = self.layout()
        parts = []
        for i in range(0, len(ids), 1000):
            chunk = list(ids[i : i + 1000])
            parts.append(self._scan(layout.select, f"id IN ({_quote(chunk)})"))
        if not parts:
            return self._empty_batch()
        return self._records(pa.concat_tables(parts), layout)

    def fetch_many(self, ids: Sequence[str], batch_size: int = 1_000) -> Iterator[RecordBatch]:
        """Many ids found in ONE scan of the ids, then read by row id a batch at a time.

        Without an index on ``id`` every ``id IN (...)`` query scans the table's ids: a 10,000-id
        sample fetched 1,000 at a time scanned a 10M-record table ten times (1.2 s, +338 MB). One
        streamed scan that keeps only the row ids of the wanted ids, then takes by row id: 0.7 s,
        +125 MB (bench/RESULTS.md). The table object reads one version throughout, so the row ids
        found are the rows taken."""
        table = self._open()
        if table is None or not ids:
            return
        if len(ids) <= batch_size:
            yield self.fetch(ids)
            return
        wanted = pa.array(list(dict.fromkeys(ids)), pa.string())
        found = []
        for batch in table.search().select(["id"]).with_row_id(True).limit(None).to_batches(SCAN_BATCH):
            hit = pc.is_in(batch.column("id").cast(pa.string()), value_set=wanted)
            if pc.any(hit).as_py():
                found.append(batch.column("_rowid").filter(hit))
        row_ids = pa.concat_arrays(found).to_pylist() if found else []
        layout = self.layout()
        for start in range(0, len(row_ids), batch_size):
            taken = table.take_row_ids(row_ids[start : start + batch_size]).select(layout.select).to_arrow()
            yield self._records(taken, layout)

    def _empty_batch(self) -> RecordBatch:
        info = self.describe()
        return RecordBatch.from_rows([], np.zeros((0, info.dimension or 0), np.float32), [], info.dimension or 0)

    def iter_records(self, batch_size: int = 20_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        table = self._open()
        if table is None:
            return
        layout = self.layout()
        reader = table.search().select(layout.select).limit(None).to_batches(batch_size)
        for rb in reader:
            if rb.num_rows:
                yield self._records(pa.Table.from_batches([rb]), layout)

    def fill(self, batches: Iterable[RecordBatch]) -> None:
        """Fill an empty table from a stream in ONE commit: a plain add, no merge, no compaction after.

        (Adding 5,000 records at a time made 200 commits and small fragments at 1M records, and
        the compaction that followed rewrote the whole table.)
        """
        table = self._require()
        if TableLayout.of(table.schema, self.address).metadata != "json":
            for batch in batches:  # an adopted table's columns may grow with the records: batch by batch
                self.upsert(batch)
            return
        schema = table.schema
        failed: list[BaseException] = []

        def arrow() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    yield from self._rows(batch, schema).to_batches()
            except BaseException as exc:  # Arrow would wrap it in a "C Data interface error"
                failed.append(exc)
                raise

        try:
            table.add(pa.RecordBatchReader.from_batches(schema, arrow()))
        except Exception:
            if failed:  # the stream failed (the dataset, not LanceDB): raise what it raised
                raise failed[0] from None
            raise

    def upsert(self, batch: RecordBatch) -> None:
        """One ``merge_insert``: one commit however many records."""
        if len(batch):
            table = self._add_columns_for(batch)
            table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(self._rows(batch, table.schema))

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes by id find their rows through the id index (10k of 1M: ~0.1 s)."""
        if not ids:
            return
        table = self._require()
        for i in range(0, len(ids), DELETE_CHUNK):
            table.delete(f"id IN ({_quote(list(ids[i : i + DELETE_CHUNK]))})")

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        table = self._require()
        metric = self.describe().metric or "cosine"
        result = (
            table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
            .distance_type(_LANCE_METRIC[metric])
            .limit(top_k)
            .select(["id", "_distance"])
            .to_arrow()
        )
        return result.column("id").to_pylist()

    def after_apply(self) -> None:
        table = self._open()
        if table is None:
            return
        from lancedb.index import BTree

        with contextlib.suppress(Exception):
            table.create_index("id", config=BTree(), replace=True)
        # Compaction rewrites data files (seconds per GB): worth it only once small fragments pile
        # up, not after every incremental apply. Old versions are pruned either way.
        with contextlib.suppress(Exception):
            small = table.stats()["fragment_stats"]["num_small_fragments"]
            if small >= COMPACT_AT_SMALL_FRAGMENTS:
                table.optimize(cleanup_older_than=KEEP_VERSIONS_FOR)
            else:
                with warnings.catch_warnings():  # deprecated in favour of optimize(), which also compacts
                    warnings.simplefilter("ignore")
                    table.cleanup_old_versions(older_than=KEEP_VERSIONS_FOR)

    # -- table versions (fast rollback) ----------------------------------------------------------

    def restore_tag(self, tag: str) -> bool:
        """Make the table's content that of a tagged version again, as one new commit.

        Rollback to a version vectorops deployed recently is then a metadata operation, not a
        re-upload: the tag was taken right after that version's apply succeeded.
        """
        table = self._open()
        if table is None:
            return False
        tags = table.tags.list()
        if tag not in tags:
            return False
        try:
            table.restore(int(tags[tag]["version"]))
        except Exception:  # cleaned up or otherwise unavailable: fall back to a diff apply
            return False
        return True

    def tag_version(self, tag: str) -> None:
        table = self._require()
        with contextlib.suppress(Exception):
            table.tags.delete(tag)
        table.tags.create(tag, table.version)

    # -- vectorops documents ---------------------------------------------------------------------

    def _docs_table(self) -> Any:
        if self._docs is None:
            if DOCS_TABLE in self._tables():
                self._docs = self._db.open_table(DOCS_TABLE)
            else:
                try:
                    self._docs = self._db.create_table(DOCS_TABLE, schema=DOCS_SCHEMA)
                except Exception:  # created by a concurrent process a moment ago
                    self._docs = self._db.open_table(DOCS_TABLE)
        return self._docs

    def _key(self, key: str) -> str:
        return f"{self.table_name}/{key}"

    def _existing_docs_table(self) -> Any | None:
        """The documents table if it exists: reading state must never create anything."""
        if self._docs is None and DOCS_TABLE not in self._tables():
            return None
        return self._docs_table()

    def read_doc(self, key: str) -> dict[str, Any] | None:
        docs = self._existing_docs_table()
        if docs is None:
            return None
        docs.checkout_latest()
        rows = docs.search().where(f"key = {_quote([self._key(key)])}").select(["doc"]).limit(None).to_arrow()
        if rows.num_rows == 0:
            return None
        return parse_document(rows.column("doc")[0].as_py(), self.address, key)

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        docs = self._docs_table()
        row = pa.table({"key": [self._key(key)], "doc": [json.dumps(doc, sort_keys=True)]}, schema=DOCS_SCHEMA)
        docs.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row)

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """Several documents in one ``merge_insert``: one commit, all or nothing."""
        if not docs:
            return
        table = self._docs_table()
        rows = pa.table(
            {"key": [self._key(k) for k in docs], "doc": [json.dumps(d, sort_keys=True) for d in docs.values()]},
            schema=DOCS_SCHEMA,
        )
        table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(rows)

    def delete_doc(self, key: str) -> None:
        docs = self._existing_docs_table()
        if docs is None:
            return
        docs.delete(f"key = {_quote([self._key(key)])}")

    def _docs_under(self, prefix: str, columns: list[str]) -> pa.Table | None:
        docs = self._existing_docs_table()
        if docs is None:
            return None
        docs.checkout_latest()
        like = self._key(prefix).replace("'", "''").replace("%", "\\%").replace("_", "\\_")
        return docs.search().where(f"key LIKE '{like}%'").select(columns).limit(None).to_arrow()

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._docs_under(prefix, ["key", "doc"])
        if rows is None:
            return []
        strip = len(self._key(""))
        out = [(k[strip:], parse_document(d, self.address, k[strip:])) for k, d in zip(rows.column("key").to_pylist(), rows.column("doc").to_pylist(), strict=False)]
        return sorted(out, key=lambda kv: kv[0])

    def list_doc_keys(self, prefix: str) -> list[str]:
        rows = self._docs_under(prefix, ["key"])
        strip = len(self._key(""))
        return [] if rows is None else sorted(k[strip:] for k in rows.column("key").to_pylist())

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """A file lock around state read-modify-write, so two local processes never both win a lock."""
        folder = self._folder()
        if folder is None:
            yield
            return
        folder.mkdir(parents=True, exist_ok=True)  # only writers (apply, import, force-unlock) get here
        with open(folder / f".{self.table_name}.vectorops.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _from_lance(exc: BaseException) -> bool:
    """A failure lance/lancedb raised: their own exception types, or the builtin ``RuntimeError``/
    ``ValueError`` their Rust core and Python layer raise (a damaged table, a commit conflict, vectors
    the table cannot hold), told apart from our own by the frame that raised it."""
    if (type(exc).__module__ or "").split(".")[0] in ("lance", "lancedb"):
        return True
    if not isinstance(exc, (RuntimeError, ValueError)):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", "")) if tb is not None else ""
    return module.split(".")[0] in ("lance", "lancedb") or "lance error" in str(exc).lower()


def _fields_present(batch: RecordBatch) -> list[str]:
    """Metadata fields with a value in at least one record of the batch (null means absent)."""
    if batch.metadata.num_columns == 0:
        return []
    return [name for name in batch.metadata.column_names if batch.metadata.column(name).null_count < len(batch)]


def _fits(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether values of type ``have`` keep their meaning (and so their hash) in a column of ``want``:
    numbers stay numbers, text stays text, lists stay lists of the same kind."""
    if have == want or pa.types.is_null(have):
        return True
    for kind in (pa.types.is_boolean, _is_number, _is_text, pa.types.is_timestamp, pa.types.is_date):
        if kind(have) and kind(want):
            return True
    if _is_list(have) and _is_list(want):
        return _fits(have.value_type, want.value_type)
    if pa.types.is_struct(have) and pa.types.is_struct(want):
        return all(want.get_field_index(f.name) >= 0 and _fits(f.type, want.field(f.name).type) for f in have)
    return False


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _no_metadata(n: int) -> pa.Table:
    return pa.table({"__none": pa.nulls(n)}).drop(["__none"])


def _explain_json(table: pa.Table, address: str) -> None:
    """A JSON metadata column written by someone else may hold anything: name the record it cannot read."""
    for rid, text in zip(table.column("id").to_pylist(), table.column("metadata").to_pylist(), strict=False):
        if not text:
            continue
        try:
            ok = isinstance(json.loads(text), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            raise DestinationError(
                f"{address}: record '{rid}': the 'metadata' column holds {text[:40]!r}, not a JSON object",
                hint="A table with one string column 'metadata' keeps each record's metadata there as a JSON object; "
                "fix that row, or rename the column so it is read as an ordinary metadata field.",
            )
