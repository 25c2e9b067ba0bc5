"""LanceDB: the embedded default destination. One table per environment, state in a side table.

Every write is a commit (a version of the table), so a plan is written in as few calls as its size
allows: all upserts as one ``merge_insert``, all deletes as one ``delete`` that finds its rows
through the id index. (A single merge that also deletes "not matched by source" rows would be one
commit, but it scans the whole table: 6-8 s at 1M x 768 against ~0.4 s for the two commits.)
Each applied version is tagged, so a rollback restores a tag instead of rewriting records.
Metadata is stored as canonical JSON in one column so any dataset's fields round-trip exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, StringConstraints

from reconciler.diff import records_from_table, records_table
from reconciler.errors import DestinationError, DestinationStorageError
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
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

    package.__getattr__ = __getattr__  # type: ignore[attr-defined]
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

    def open(self, context: DestinationContext) -> LanceDBDestination:
        return LanceDBDestination(uri=self._uri(context), table=self.table, shown_uri=self.uri)

    def _uri(self, context: DestinationContext) -> str:
        return self.uri if "://" in self.uri else str(context.resolve(self.uri))


class LanceDBDestination(Destination):
    # every write is a table commit: one merge for all upserts, one delete; a first apply is one
    # plain add; each deployed version is tagged for rollback
    capabilities = Capabilities(fill=True, single_step=True, snapshots=True)

    def __init__(self, *, uri: str, table: str, shown_uri: str | None = None) -> None:
        os.environ.setdefault("LANCE_LOG", "error")
        if "lancedb" not in sys.modules:
            defer_rest_client()
        import lancedb  # lazy: ~0.5 s of imports

        self.uri = uri
        self.table_name = table
        self.address = f"lancedb:{shown_uri or uri}#{table}"
        self._db = lancedb.connect(uri)
        self._table: Any = None
        self._docs: Any = None
        self._metric = "cosine"

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

    def _tables(self) -> list[str]:
        result = self._db.list_tables()
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

    def describe(self) -> DestinationInfo:
        table = self._open()
        if table is None:
            return DestinationInfo(exists=False)
        field = table.schema.field("vector")
        dim = field.type.list_size if pa.types.is_fixed_size_list(field.type) else None
        meta = (table.schema.metadata or {}).get(b"vectorops.metric")
        return DestinationInfo(exists=True, dimension=dim, metric=meta.decode() if meta else None, count=table.count_rows())

    def ensure(self, dimension: int, metric: str) -> None:
        if self._open() is not None:
            return
        schema = pa.schema(
            [("id", pa.string()), ("vector", pa.list_(pa.float32(), dimension)), ("metadata", pa.string())],
            metadata={"vectorops.metric": metric},
        )
        self._table = self._db.create_table(self.table_name, schema=schema)
        from lancedb.index import BTree

        with contextlib.suppress(Exception):  # an index on an empty table is optional; retried after apply
            self._table.create_index("id", config=BTree())  # type: ignore[call-arg]

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

    def iter_ids(self, batch_size: int = 100_000) -> Iterator[list[str]]:
        if self._open() is None:
            return
        ids = self._scan(["id"]).column("id")
        for i in range(0, len(ids), batch_size):
            yield ids.slice(i, batch_size).to_pylist()

    def all_ids(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> pa.Array:
        """Every id as one Arrow array: LanceDB lists a million ids in well under a second."""
        if self._open() is None:
            return pa.array([], pa.string())
        return self._scan(["id"]).column("id").combine_chunks()

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        parts = []
        for i in range(0, len(ids), 1000):
            chunk = list(ids[i : i + 1000])
            parts.append(self._scan(["id", "vector", "metadata"], f"id IN ({_quote(chunk)})"))
        if not parts:
            return self._empty_batch()
        return records_from_table(pa.concat_tables(parts))

    def _empty_batch(self) -> RecordBatch:
        info = self.describe()
        return RecordBatch.from_rows([], np.zeros((0, info.dimension or 0), np.float32), [], info.dimension or 0)

    def iter_records(self, batch_size: int = 20_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        table = self._open()
        if table is None:
            return
        reader = table.search().select(["id", "vector", "metadata"]).limit(None).to_batches(batch_size)
        for rb in reader:
            if rb.num_rows:
                yield records_from_table(pa.Table.from_batches([rb]))

    def fill(self, batches: Iterable[RecordBatch]) -> None:
        """Fill an empty table from a stream in ONE commit: a plain add, no merge, no compaction after.

        (Adding 5,000 records at a time made 200 commits and small fragments at 1M records, and
        the compaction that followed rewrote the whole table.)
        """
        table = self._require()
        schema = table.schema
        failed: list[BaseException] = []

        def arrow() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    yield from records_table(batch).cast(schema).to_batches()
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
            self._require().merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(records_table(batch))

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
            table.create_index("id", config=BTree(), replace=True)  # type: ignore[call-arg]
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
        return _parse_doc(rows.column("doc")[0].as_py(), self._key(key))

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
        out = [(k[strip:], _parse_doc(d, k)) for k, d in zip(rows.column("key").to_pylist(), rows.column("doc").to_pylist())]
        return sorted(out, key=lambda kv: kv[0])

    def list_doc_keys(self, prefix: str) -> list[str]:
        rows = self._docs_under(prefix, ["key"])
        strip = len(self._key(""))
        return [] if rows is None else sorted(k[strip:] for k in rows.column("key").to_pylist())

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """A file lock around state read-modify-write, so two local processes never both win a lock."""
        if "://" in self.uri:
            yield
            return
        Path(self.uri).mkdir(parents=True, exist_ok=True)
        with open(Path(self.uri) / f".{self.table_name}.vectorops.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _from_lance(exc: BaseException) -> bool:
    """An exception raised by lance/lancedb themselves (their Rust core raises builtin types)."""
    module = type(exc).__module__ or ""
    if module.split(".")[0] in ("lance", "lancedb"):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, ValueError)) and ("lance error" in text.lower() or "LanceError" in text)


def _parse_doc(text: str, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        from reconciler.errors import StateError

        raise StateError(
            f"vectorops state record '{key}' is not valid JSON ({exc.msg})",
            hint="Run `vectorops import ENV --version REV` to re-adopt the index and rewrite its state.",
        ) from None
    if not isinstance(doc, dict):
        from reconciler.errors import StateError

        raise StateError(f"vectorops state record '{key}' is malformed", hint="Run `vectorops import ENV --version REV` to rewrite it.")
    return doc
