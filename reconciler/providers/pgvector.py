"""PostgreSQL with pgvector: one table per environment, state in a side table, applies in one transaction.

Records live in ``schema.table`` with columns ``id text primary key``, ``embedding vector(d)``
(``halfvec(d)`` with ``vector_type: halfvec``) and ``metadata jsonb`` (SPEC §7), so the index
stays queryable with ordinary SQL and the JSONB operators. vectorops' own documents (state, lock, history) live in ``schema._vectorops_state``,
one row per document, keyed ``<table>/<key>``.

Why the writes look the way they do:

* An apply is ONE transaction (``capabilities.single_commit``): the records to write are streamed
  with binary ``COPY`` into a temporary table, then one ``INSERT … ON CONFLICT DO UPDATE`` and
  one ``DELETE … WHERE id = ANY(…)`` move them into the table before ``COMMIT``. PostgreSQL's
  MVCC then guarantees that a reader sees the old version or the new one, never a mix, and a
  reader is never blocked (writers do not block readers). A crash before ``COMMIT`` leaves nothing
  written, so the next apply simply redoes the work. Memory stays one batch: the staging table
  lives on the server.
* The HNSW index for the metric is built after the first bulk load (building it over an empty
  table and inserting a million rows through it is several times slower than building it once).
  When the graph outgrows the memory the build is given, pgvector sends a NOTICE and goes on on
  disk, several times slower; that notice becomes a warning to the user (``Destination.warn``)
  naming ``index_build_memory_mb`` and a value for it, worked out from what a vector took.
* Vectors round-trip bit-exact: ``vector`` stores float4, which is the dataset's float32.
  ``halfvec`` (``vector_type: halfvec``) stores float2: half the table and index memory, each
  component rounded to the nearest float16 (numpy rounds on the client; the server stores those
  bits). What it holds is then never the dataset's float32, so the destination declares
  ``capabilities.vector_precision = "float16"`` and the engine hashes the dataset's vectors rounded
  the same way: a ``full`` refresh compares like with like and finds exactly the records changed
  by hand (the same rounding makes a change smaller than float16's step invisible, as it is to the
  index). Values beyond float16's range (±65504) are refused at plan time (``check_records``).
* The connection string comes from the environment variable named by ``dsn_env`` only; it holds a
  password, so it is never part of an address, message or state, and every message derived from a
  driver error is redacted with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
from pydantic import Field, StringConstraints

from reconciler.canonical import canonical_metadata_array
from reconciler.errors import (
    DestinationAuthError,
    DestinationConfigError,
    DestinationError,
    DestinationMismatchError,
    DestinationRejectedError,
    DestinationUnavailableError,
)
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
from reconciler.providers.documents import parse_document
from reconciler.providers.settings import ENV_VAR_PATTERN, DestinationContext, DestinationSettings
from reconciler.records import RecordBatch
from reconciler.redact import redact

if TYPE_CHECKING:
    import psycopg

STATE_TABLE = "_vectorops_state"
#: blue/green slots are tables ``<table>__<slot>`` behind a view named ``<table>``
SLOT_SEPARATOR = "__"
#: the column types vectorops creates: float32 (``vector``) or float16 (``halfvec``) components
VectorType = Literal["vector", "halfvec"]
#: the operator class of the HNSW index per column type and metric
_OPCLASS: dict[str, dict[str, str]] = {
    kind: {"cosine": f"{kind}_cosine_ops", "dotproduct": f"{kind}_ip_ops", "euclidean": f"{kind}_l2_ops"}
    for kind in ("vector", "halfvec")
}
#: the distance operator of canary queries, per metric (the same for both column types)
_OPERATOR = {"cosine": "<=>", "dotproduct": "<#>", "euclidean": "<->"}
#: pgvector's HNSW index takes vectors of at most this many dimensions (``vector``) ...
HNSW_MAX_DIMENSION = 2000
#: ... and of ``halfvec``, half the bytes a component, twice as many
HNSW_MAX_DIMENSION_HALFVEC = 4000
#: the largest finite float16: a component beyond it cannot be stored in a ``halfvec``
HALFVEC_MAX = float(np.finfo(np.float16).max)
_PRECISION = {"vector": "float32", "halfvec": "float16"}
#: the most ``index_build_memory_mb`` takes (1 TB), and so the most vectorops ever suggests
INDEX_BUILD_MEMORY_MAX_MB = 1_048_576
#: ids per ``= ANY(%s)`` parameter (fetch, delete): one round trip each
ID_CHUNK = 10_000
#: rows per fetch from a server-side cursor
CURSOR_ROWS = 20_000
_IDENT = r"^[a-z_][a-z0-9_]*$"
_NUL = "\x00"


def _q(name: str) -> str:
    """A quoted SQL identifier (names are validated to ``[a-z_][a-z0-9_]*``; quoting is belt and braces)."""
    return '"' + name.replace('"', '""') + '"'


class PgvectorSettings(DestinationSettings):
    """PostgreSQL + pgvector: a table of (id text, embedding vector(d), metadata jsonb)."""

    type: Literal["pgvector"]
    dsn_env: str = Field(
        "VECTOROPS_PG_DSN",
        pattern=ENV_VAR_PATTERN,
        description="NAME of the environment variable holding the connection string (it holds a password: never the DSN itself)",
    )
    schema_: Annotated[str, StringConstraints(pattern=_IDENT, max_length=63)] = Field(
        "public", alias="schema", description="PostgreSQL schema of the table (created if missing)"
    )
    table: Annotated[str, StringConstraints(pattern=_IDENT, max_length=48)] = Field(
        description="Table holding the records: id text primary key, embedding vector(dimension), metadata jsonb"
    )
    vector_type: VectorType = Field(
        "vector",
        description="Column type of embedding: vector (float32, stored exactly) or halfvec (float16: half the storage "
        "and index memory, each component rounded to float16; pgvector 0.7+)",
    )
    index_build_memory_mb: int | None = Field(
        None,
        ge=1,
        le=INDEX_BUILD_MEMORY_MAX_MB,
        description="Memory in MB the HNSW index build is given (maintenance_work_mem, for that one statement). Default: what "
        "the graph needs, at most 2,048 MB. Below what it needs, pgvector builds the rest of the graph on disk, several "
        "times slower (1M x 768 needs ~4,500 MB); vectorops then warns after the apply, with the value to set",
    )

    secret_env_fields = ("dsn_env",)
    pattern_hints = {
        "schema": "Schema names use lowercase letters, digits and '_', starting with a letter or '_'.",
        "table": "Table names use lowercase letters, digits and '_' (at most 48), starting with a letter or '_'.",
        "dsn_env": "Give the NAME of an environment variable (e.g. VECTOROPS_PG_DSN), never the connection string.",
    }

    def address(self) -> str:
        return f"pgvector:${self.dsn_env}/{self.schema_}.{self.table}"

    def open(self, context: DestinationContext) -> PgvectorDestination:
        dsn = os.environ.get(self.dsn_env, "")
        if not dsn:
            raise DestinationConfigError(
                f"environment '{context.environment}': the variable {self.dsn_env} is not set "
                "(it must hold the PostgreSQL connection string)",
                hint=f"export {self.dsn_env}='postgresql://USER:PASSWORD@HOST:5432/DB' (or set it as a CI secret).",
            )
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError:
            raise DestinationConfigError(
                f"environment '{context.environment}': the pgvector destination needs psycopg and pgvector",
                hint="pip install 'vectorops[pgvector]'",
            ) from None
        kind = HalfvecDestination if self.vector_type == "halfvec" else PgvectorDestination
        return kind(
            dsn=dsn, schema=self.schema_, table=self.table, address=self.address(), index_build_memory_mb=self.index_build_memory_mb
        )


class PgvectorDestination(Destination):
    # a view of the configured name, replaced in one transaction, is the alias of blue/green rollouts
    capabilities = Capabilities(single_commit=True, check_records=True, aliases=True)
    #: the ``embedding`` column's type: ``vector`` here, ``halfvec`` in ``HalfvecDestination``
    vector_type: ClassVar[VectorType] = "vector"

    def __init__(self, *, dsn: str, schema: str, table: str, address: str, index_build_memory_mb: int | None = None) -> None:
        self._dsn = dsn
        #: ``maintenance_work_mem`` of the HNSW build; None: what the graph needs, capped (``_index_build_memory_mb``)
        self.index_build_memory_mb = index_build_memory_mb
        self.schema = schema
        self.table_name = table
        self.address = address
        self._conn: psycopg.Connection[Any] | None = None
        self._docs_conn: psycopg.Connection[Any] | None = None
        #: one thread at a time on the documents connection (the lease heartbeat is a thread)
        self._docs_guard = threading.RLock()
        #: one thread at a time inside ``critical_section``
        self._section_lock = threading.RLock()
        self._section_depth = 0
        self._vector_registered = False
        self._table = f"{_q(schema)}.{_q(table)}"
        self._state = f"{_q(schema)}.{_q(STATE_TABLE)}"
        self._prefix = f"{table}/"
        self._info: DestinationInfo | None = None

    # -- connection and errors -------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        """The password inside the DSN: masked in every message (the host and port stay, so an
        unreachable server is named; the DSN itself is never put in a message)."""
        out: list[str] = []
        with contextlib.suppress(ValueError):
            password = urlsplit(self._dsn).password
            if password:
                out += [password, unquote(password)]
        match = re.search(r"password\s*=\s*(\S+)", self._dsn)
        if match:
            out.append(match.group(1).strip("'\""))
        return [s for s in out if s]

    def _describe(self, exc: BaseException) -> str:
        return redact(describe_exception(exc), self._secrets())

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        import psycopg

        if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.InsufficientPrivilege):
            if isinstance(exc, psycopg.errors.InvalidPassword) or "password authentication failed" in str(exc):
                return DestinationAuthError(
                    f"{self.address}: {doing} failed: PostgreSQL refused the credentials",
                    hint="Check the user and password in the connection string's variable.",
                )
            return DestinationUnavailableError(
                f"{self.address}: {doing} failed: {self._describe(exc)}",
                hint="Check that the PostgreSQL server is running and reachable at the connection string's "
                "host and port, then run the command again.",
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return DestinationAuthError(
                f"{self.address}: {doing} failed: {self._describe(exc)}",
                hint="Grant the connecting role the privileges it needs on the schema and table "
                "(CREATE on the schema for the first apply; SELECT, INSERT, UPDATE, DELETE on the tables).",
            )
        if isinstance(exc, psycopg.errors.UndefinedFile) or (
            isinstance(exc, psycopg.Error) and 'extension "vector" is not available' in str(exc)
        ):
            return DestinationConfigError(
                f"{self.address}: {doing} failed: the pgvector extension is not installed on this server",
                hint="Install pgvector on the PostgreSQL server (https://github.com/pgvector/pgvector), "
                "or ask your database administrator to.",
            )
        if isinstance(exc, psycopg.Error):
            return DestinationRejectedError(
                f"{self.address}: {doing} failed: {self._describe(exc)}",
                hint="PostgreSQL refused the request; the message above says why.",
            )
        return super().translate_error(exc, doing)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._new_connection()
            self._vector_registered = False
        return self._conn

    def _new_connection(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)

    def _docs(self) -> psycopg.Connection[Any]:
        """A second connection for vectorops' documents: the lease heartbeat renews the lock while
        an apply's records transaction is open, and a renewal inside that transaction would stay
        invisible to other processes until COMMIT."""
        if self._docs_conn is None or self._docs_conn.closed:
            self._docs_conn = self._new_connection()
        return self._docs_conn

    def _vectors(self) -> psycopg.Connection[Any]:
        """The connection with pgvector's types registered (needs the extension to exist)."""
        conn = self._connect()
        if not self._vector_registered:
            from pgvector.psycopg import register_vector

            register_vector(conn)
            self._vector_registered = True
        return conn

    # -- the table -------------------------------------------------------------------------------

    def _columns(self) -> dict[str, tuple[str, int]] | None:
        """column -> (type name, type modifier) of the records table, or None when it does not exist."""
        rows = self._connect().execute(
            """
            SELECT a.attname, t.typname, a.atttypmod
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
              AND c.relkind IN ('r', 'p')
            """,
            (self.schema, self.table_name),
        ).fetchall()
        return {name: (typ, mod) for name, typ, mod in rows} or None

    def _shape_error(self, columns: dict[str, tuple[str, int]]) -> tuple[str, str] | None:
        """(problem, how to fix it) when the table is not what vectorops writes, None when it is."""
        found = ", ".join(f"{name} {typ}" for name, (typ, _) in sorted(columns.items()))
        wanted = {"id": "text", "embedding": self.vector_type, "metadata": "jsonb"}
        other = "vector" if self.vector_type == "halfvec" else "halfvec"
        embedding, modifier = columns.get("embedding", ("", -1))
        if embedding == other and {n: t for n, (t, _) in columns.items() if n != "embedding"} == {"id": "text", "metadata": "jsonb"}:
            size = f"({modifier})" if modifier > 0 else ""
            problem = (
                f"{self.address}: the table's embedding column is {other}{size} ({_PRECISION[other]}) but the manifest asks for "
                f"vector_type: {self.vector_type} ({_PRECISION[self.vector_type]}); vectorops never converts a column"
            )
            fix = (
                f"Set vector_type: {other} in the environment's destination to keep this table, or point the environment "
                f"at a new table; to convert this one yourself, ALTER TABLE … ALTER COLUMN embedding TYPE "
                f"{self.vector_type}{size} and recreate its HNSW index with the {self.vector_type}_*_ops operator class."
            )
            return problem, fix
        if any(columns.get(name, ("",))[0] != typ for name, typ in wanted.items()) or set(columns) - set(wanted):
            problem = (
                f"{self.address}: the table exists with columns ({found}); vectorops needs exactly "
                f"(id text primary key, embedding {self.vector_type}(DIMENSION), metadata jsonb)"
            )
            fix = (
                "Point the environment at another table, or rename or convert this one "
                "(e.g. ALTER TABLE … RENAME COLUMN); vectorops never changes a table's columns."
            )
            return problem, fix
        return None

    def describe(self) -> DestinationInfo:
        columns = self._columns()
        if columns is None:
            return DestinationInfo(exists=False)
        problem = self._shape_error(columns)
        if problem:
            raise DestinationMismatchError(problem[0], hint=problem[1])
        dimension = columns["embedding"][1] if columns["embedding"][1] > 0 else None
        conn = self._connect()
        comment = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"{self._table}",)
        ).fetchone()
        metric = None
        with contextlib.suppress(ValueError, TypeError):
            metric = json.loads(comment[0] or "{}").get("vectorops", {}).get("metric") if comment else None
        metric = metric or self._index_metric()
        count = conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()
        return DestinationInfo(exists=True, dimension=dimension, metric=metric, count=int(count[0]) if count else 0)

    def _index_metric(self) -> str | None:
        """The metric of an HNSW/IVFFlat index on ``embedding`` (a table vectorops did not create)."""
        rows = self._connect().execute(
            """
            SELECT opc.opcname FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_opclass opc ON opc.oid = i.indclass[0]
            WHERE n.nspname = %s AND c.relname = %s
            """,
            (self.schema, self.table_name),
        ).fetchall()
        by_opclass = {opclass: metric for per_type in _OPCLASS.values() for metric, opclass in per_type.items()}
        for (name,) in rows:
            if name in by_opclass:
                return by_opclass[name]
        return None

    def ensure(self, dimension: int, metric: str) -> None:
        info = self.describe()
        if info.exists:
            if info.dimension not in (None, dimension) or (info.metric is not None and info.metric != metric):
                raise DestinationMismatchError(
                    f"{self.address}: the table holds vectors of dimension {info.dimension} and metric "
                    f"{info.metric}; the manifest asks for {dimension} and {metric}",
                    hint="Point the environment at a table made for this embedding, or change the manifest's embedding.",
                )
            return
        conn = self._connect()
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self.schema)}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} "
                f"(id text PRIMARY KEY, embedding {self.vector_type}({int(dimension)}) NOT NULL, "
                "metadata jsonb NOT NULL DEFAULT '{}')"
            )
            comment = json.dumps({"vectorops": {"metric": metric}})
            conn.execute(f"COMMENT ON TABLE {self._table} IS {_literal(comment)}")
        self._vector_registered = False

    def _exists(self) -> bool:
        row = self._connect().execute("SELECT to_regclass(%s)", (self._table,)).fetchone()
        return bool(row and row[0])

    # -- reading records -------------------------------------------------------------------------

    def iter_ids(self, batch_size: int = 100_000) -> Iterator[list[str]]:
        """Every id through a server-side cursor, 100k a round trip (1M ids: about a second); ``all_ids``
        and ``id_batches`` read it."""
        if not self._exists():
            return
        conn = self._connect()
        with conn.transaction(), conn.cursor(name="vectorops_ids") as cur:
            cur.itersize = batch_size
            cur.execute(f"SELECT id FROM {self._table}")
            while rows := cur.fetchmany(batch_size):
                yield [r[0] for r in rows]

    def _batch(self, rows: list[tuple[Any, ...]]) -> RecordBatch:
        dimension = self._dimension()
        ids = [r[0] for r in rows]
        vectors = np.stack([_array(r[1]) for r in rows]) if rows else np.zeros((0, dimension), np.float32)
        return RecordBatch.from_rows(ids, vectors, [r[2] or {} for r in rows], dimension)

    def _dimension(self) -> int:
        if self._info is None:
            self._info = self.describe()
        return self._info.dimension or 0

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        if not ids or not self._exists():
            return self._batch([])
        conn = self._vectors()
        rows: list[tuple[Any, ...]] = []
        unique = list(dict.fromkeys(ids))
        with conn.cursor(binary=True) as cur:
            for i in range(0, len(unique), ID_CHUNK):
                cur.execute(
                    f"SELECT id, embedding, metadata FROM {self._table} WHERE id = ANY(%s)", (unique[i : i + ID_CHUNK],)
                )
                rows.extend(cur.fetchall())
        return self._batch(rows)

    def iter_records(self, batch_size: int = CURSOR_ROWS, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        if not self._exists():
            return
        conn = self._vectors()
        with conn.transaction(), conn.cursor(name="vectorops_records", binary=True) as cur:
            cur.itersize = batch_size
            cur.execute(f"SELECT id, embedding, metadata FROM {self._table}")
            while rows := cur.fetchmany(batch_size):
                yield self._batch(rows)

    # -- writing records -------------------------------------------------------------------------

    def _stage(self, conn: psycopg.Connection[Any], batches: Iterable[RecordBatch]) -> Iterator[int]:
        """Binary-COPY the batches into a temporary table of this transaction, yielding each batch's size."""
        from psycopg.types.json import Jsonb

        conn.execute(
            f"CREATE TEMP TABLE _vectorops_stage (LIKE {self._table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        for batch in batches:
            if not len(batch):
                continue
            metadata = canonical_metadata_array(batch).to_pylist()
            vectors = self._column_values(batch)
            with conn.cursor().copy(
                "COPY _vectorops_stage (id, embedding, metadata) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", self.vector_type, "jsonb"])
                for vid, vec, meta in zip(batch.ids.to_pylist(), vectors, metadata, strict=False):
                    copy.write_row((vid, vec, Jsonb(meta, dumps=_as_is)))
            yield len(batch)

    def _column_values(self, batch: RecordBatch) -> np.ndarray | list[Any]:
        """The batch's vectors as the ``embedding`` column's binary dumper takes them: float32 rows
        for ``vector``; for ``halfvec``, ``HalfVector``s of the rows rounded to float16 by numpy (round
        to nearest even), the rounding the engine hashes with (``hashing.round_vectors``)."""
        vectors = np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if self.vector_type == "vector":
            return vectors
        from pgvector import HalfVector

        return [HalfVector(row) for row in vectors.astype(np.float16)]

    def _merge_stage(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f"INSERT INTO {self._table} (id, embedding, metadata) SELECT id, embedding, metadata FROM _vectorops_stage "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata"
        )

    def _delete_in(self, conn: psycopg.Connection[Any], ids: Sequence[str]) -> None:
        for i in range(0, len(ids), ID_CHUNK):
            conn.execute(f"DELETE FROM {self._table} WHERE id = ANY(%s)", (list(ids[i : i + ID_CHUNK]),))

    def apply_changes(self, batches: Iterable[RecordBatch], delete_ids: Sequence[str]) -> Iterator[int]:
        """``capabilities.single_commit``: every upsert and delete of an apply in ONE transaction.

        Yields how many records were staged as they are staged (progress); the table changes
        only at the ``COMMIT`` after the last batch, all at once. Abandoning the iterator (an
        exception, a kill) rolls everything back.
        """
        conn = self._vectors()
        with conn.transaction():
            yield from self._stage(conn, batches)
            self._merge_stage(conn)
            self._delete_in(conn, delete_ids)

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        conn = self._vectors()
        with conn.transaction():
            for _ in self._stage(conn, [batch]):
                pass
            self._merge_stage(conn)

    def delete(self, ids: Sequence[str]) -> None:
        if not ids or not self._exists():
            return
        conn = self._connect()
        with conn.transaction():
            self._delete_in(conn, ids)

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        info = self.describe()
        operator = _OPERATOR[info.metric or "cosine"]
        conn = self._vectors()
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * int(top_k))}")
            rows = conn.execute(
                f"SELECT id FROM {self._table} ORDER BY embedding {operator} %s::{self.vector_type} LIMIT %s",
                (np.asarray(vector, dtype=np.float32), int(top_k)),
            ).fetchall()
        return [r[0] for r in rows]

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        """PostgreSQL text and jsonb cannot hold the NUL character, and an id may not be empty."""
        problems = []
        ids = batch.id_list
        empty = [i for i in ids if not i]
        if empty:
            problems.append(f"{len(empty)} record(s) with an empty id")
        nul_ids = [i for i in ids if _NUL in i]
        if nul_ids:
            problems.append(f"ids containing the NUL character, which PostgreSQL text cannot hold: {_sample(nul_ids)}")
        nul_meta = [i for i, m in zip(ids, canonical_metadata_array(batch).to_pylist(), strict=False) if "\\u0000" in m]
        if nul_meta:
            problems.append(f"metadata containing the NUL character, which PostgreSQL jsonb cannot hold: {_sample(nul_meta)}")
        if self.vector_type == "halfvec" and len(batch):
            with np.errstate(invalid="ignore"):
                beyond = np.flatnonzero(~(np.abs(batch.vectors) <= HALFVEC_MAX).all(axis=1))
            if len(beyond):
                problems.append(
                    f"vectors with components beyond halfvec's range (±{HALFVEC_MAX:g}), or NaN or infinite, which "
                    f"vector_type: halfvec cannot store: {_sample([ids[int(k)] for k in beyond])}"
                )
        return problems

    def after_apply(self) -> None:
        """Build the HNSW index once the table holds data (first apply), warning when the build
        outgrew its memory, and refresh the planner's statistics."""
        self._info = None
        info = self.describe()
        if not info.exists or info.count == 0:
            return
        conn = self._connect()
        opclasses = _OPCLASS[self.vector_type]
        limit = HNSW_MAX_DIMENSION_HALFVEC if self.vector_type == "halfvec" else HNSW_MAX_DIMENSION
        if info.dimension is not None and info.dimension <= limit and info.metric in opclasses:
            name = _q(_index_name(self.table_name))
            with conn.transaction():
                # pgvector builds HNSW many times faster when the graph fits in maintenance_work_mem
                # (PostgreSQL's default, 64 MB, holds ~20k vectors of 768 dimensions): raise it for
                # this one statement only, to what the graph needs, capped so a large table cannot
                # take the server's memory; the manifest's index_build_memory_mb overrides both. Past
                # the memory it is given, pgvector goes on building on disk: ~4x slower per vector in
                # the 1M x 768 bench (bench/RESULTS.md, issue 17).
                memory_mb = int(self.index_build_memory_mb or _index_build_memory_mb(info.count, info.dimension))
                conn.execute(f"SET LOCAL maintenance_work_mem = '{memory_mb}MB'")
                with _notices(conn) as notices:  # pgvector says so when the graph outgrows that memory
                    conn.execute(
                        f"CREATE INDEX IF NOT EXISTS {name} ON {self._table} USING hnsw (embedding {opclasses[info.metric]})"
                    )
            warning = build_memory_warning(notices, memory_mb, info.count, info.dimension)
            if warning is not None:
                self.warn(warning, self._secrets())
        conn.execute(f"ANALYZE {self._table}")

    # -- vectorops documents -------------------------------------------------------------------

    def _state_exists(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT to_regclass(%s)", (self._state,)).fetchone()
        return bool(row and row[0])

    def read_doc(self, key: str) -> dict[str, Any] | None:
        with self._docs_guard:
            conn = self._docs()
            if not self._state_exists(conn):
                return None
            row = conn.execute(f"SELECT doc FROM {self._state} WHERE key = %s", (self._prefix + key,)).fetchone()
        return None if row is None else parse_document(row[0], self.address, key)

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.write_docs({key: doc})

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """Every document in one transaction: all land or none does."""
        if not docs:
            return
        with self._docs_guard:
            conn = self._docs()
            with conn.transaction():
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self.schema)}")
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self._state} (key text PRIMARY KEY, doc text NOT NULL)")
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {self._state} (key, doc) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc",
                        [(self._prefix + k, json.dumps(d, sort_keys=True)) for k, d in docs.items()],
                    )

    def delete_doc(self, key: str) -> None:
        with self._docs_guard:
            conn = self._docs()
            if self._state_exists(conn):
                conn.execute(f"DELETE FROM {self._state} WHERE key = %s", (self._prefix + key,))

    def _doc_rows(self, prefix: str, columns: str) -> list[tuple[Any, ...]]:
        with self._docs_guard:
            conn = self._docs()
            if not self._state_exists(conn):
                return []
            return conn.execute(
                f'SELECT {columns} FROM {self._state} WHERE starts_with(key, %s) ORDER BY key COLLATE "C"',
                (self._prefix + prefix,),
            ).fetchall()

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        strip = len(self._prefix)
        return [(k[strip:], parse_document(d, self.address, k[strip:])) for k, d in self._doc_rows(prefix, "key, doc")]

    def list_doc_keys(self, prefix: str) -> list[str]:
        strip = len(self._prefix)
        return [k[strip:] for (k,) in self._doc_rows(prefix, "key")]

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """A PostgreSQL advisory lock on a key derived from the table around state read-modify-write.

        Session-level, on the documents connection: two processes (on any machines) never both win
        vectorops' lease, and a holder that dies releases it with its session. Threads of this
        process are kept apart by ``_section_lock``, since an advisory lock is re-entrant within
        one session; ``_docs_guard`` is held only per statement, so the lease heartbeat can renew
        the lock while an apply's write holds the section (``StateStore.fenced``).
        """
        with self._section_lock:
            outermost = self._section_depth == 0
            key = _advisory_key(self.schema, self.table_name)
            if outermost:
                with self._docs_guard:
                    self._docs().execute("SELECT pg_advisory_lock(%s)", (key,))
            self._section_depth += 1
            try:
                yield
            finally:
                self._section_depth -= 1
                conn = self._docs_conn
                if outermost and conn is not None and not conn.closed:
                    with self._docs_guard, contextlib.suppress(Exception):
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    # -- blue/green: slot tables behind a view (SPEC §9) --------------------------------------------

    def _slot_table(self, slot: str) -> str:
        return f"{self.table_name}{SLOT_SEPARATOR}{slot}"

    def open_slot(self, slot: str) -> PgvectorDestination:
        """The table ``<table>__<slot>``; its documents are keyed by its own name in the state table."""
        name = self._slot_table(slot)
        address = self.address.rsplit(".", 1)[0] + f".{name}"
        return type(self)(dsn=self._dsn, schema=self.schema, table=name, address=address, index_build_memory_mb=self.index_build_memory_mb)

    def list_slots(self) -> list[str]:
        prefix = self.table_name + SLOT_SEPARATOR
        rows = self._connect().execute(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND starts_with(c.relname, %s)
            """,
            (self.schema, prefix),
        ).fetchall()
        return sorted(name[len(prefix):] for (name,) in rows if name[len(prefix):].isalnum())

    def _relkind(self) -> str | None:
        row = self._connect().execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self.table_name),
        ).fetchone()
        return None if row is None else str(row[0])

    def alias_target(self) -> str | None:
        """The slot table the view selects from (read from PostgreSQL's dependency catalog, so a
        view replaced by hand is reported as it is), None when there is no view yet."""
        kind = self._relkind()
        if kind is None:
            return None
        if kind != "v":
            raise DestinationConfigError(
                f"{self.address}: {self.schema}.{self.table_name} is a table, so it cannot become the view readers use "
                "under rollout: blue_green",
                hint=f"Rename it to {self._slot_table('blue')} (ALTER TABLE … RENAME) or apply with rollout: in_place, "
                "or point the environment at a new table name.",
            )
        rows = self._connect().execute(
            """
            SELECT DISTINCT t.relname FROM pg_rewrite r
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
            JOIN pg_class t ON t.oid = d.refobjid
            WHERE r.ev_class = to_regclass(%s) AND t.oid <> r.ev_class
            """,
            (self._table,),
        ).fetchall()
        prefix = self.table_name + SLOT_SEPARATOR
        slots = [name[len(prefix):] for (name,) in rows if name.startswith(prefix)]
        if len(slots) != 1 or len(rows) != 1:
            raise DestinationConfigError(
                f"{self.address}: the view {self.schema}.{self.table_name} does not select from exactly one of vectorops' "
                f"slot tables ({prefix}<slot>)",
                hint="Drop the view or point it back at a slot table, then apply again.",
            )
        return slots[0]

    def switch_alias(self, slot: str) -> None:
        """``CREATE OR REPLACE VIEW`` in one transaction: a reader's query runs against the old
        table or the new one, never neither. A slot of another dimension changes the view's column
        type, which ``OR REPLACE`` cannot do; then the view is dropped and created inside the same
        transaction, still one atomic step for readers."""
        target = f"{_q(self.schema)}.{_q(self._slot_table(slot))}"
        conn = self._connect()
        with conn.transaction():
            kind = self._relkind()
            if kind not in (None, "v"):
                self.alias_target()  # raises: a table of that name
            if kind == "v" and self._view_column(self._table) != self._view_column(target):
                conn.execute(f"DROP VIEW {self._table}")
            conn.execute(f"CREATE OR REPLACE VIEW {self._table} AS SELECT id, embedding, metadata FROM {target}")

    def _view_column(self, relation: str) -> tuple[int, int]:
        """The ``embedding`` column's (type, dimension): a view can take neither change in place."""
        row = self._connect().execute(
            "SELECT a.atttypid::int, a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding'",
            (relation,),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, -1)

    def drop_slot(self, slot: str) -> None:
        if self._relkind() == "v" and self.alias_target() == slot:
            raise DestinationError(f"{self.address}: refusing to delete the slot '{slot}': the view selects from it")
        slot_dest = self.open_slot(slot)
        try:
            conn = self._connect()
            conn.execute(f"DROP TABLE IF EXISTS {slot_dest._table}")
            with self._docs_guard:
                docs = self._docs()
                if self._state_exists(docs):
                    docs.execute(f"DELETE FROM {self._state} WHERE starts_with(key, %s)", (slot_dest._prefix,))
        finally:
            slot_dest.close()

    def close(self) -> None:
        for conn in (self._conn, self._docs_conn):
            if conn is not None and not conn.closed:
                conn.close()
        self._conn = self._docs_conn = None


class HalfvecDestination(PgvectorDestination):
    """``vector_type: halfvec``: the same table with an ``embedding halfvec(d)`` column, whose float16
    components are declared (``capabilities.vector_precision``) so the engine compares at that precision."""

    capabilities = dataclasses.replace(PgvectorDestination.capabilities, vector_precision="float16")
    vector_type: ClassVar[VectorType] = "halfvec"


def _array(value: Any) -> np.ndarray:
    """A loaded ``vector`` as float32 (pgvector's loader gives a ``Vector`` in recent releases, an array in older ones)."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy is not None else value, dtype=np.float32)


def _as_is(text: str) -> str:
    """``Jsonb(text, dumps=_as_is)``: canonical JSON text goes to COPY as jsonb without a parse and re-dump."""
    return text


def _advisory_key(schema: str, table: str) -> int:
    """A signed 64-bit advisory-lock key for ``schema.table`` (stable across processes and versions)."""
    digest = hashlib.blake2b(f"vectorops:{schema}.{table}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


#: the most memory an HNSW build is given (``SET LOCAL maintenance_work_mem``), in MB
INDEX_BUILD_MEMORY_CAP_MB = 2048
#: PostgreSQL's default ``maintenance_work_mem``: vectorops never gives or suggests less
_DEFAULT_MEMORY_MB = 64
#: memory given over the estimate: the estimate is rough, and a build that runs out is several times slower
_HEADROOM = 1.25
#: what pgvector says when the graph being built no longer fits in ``maintenance_work_mem``
_OUTGREW = re.compile(r"hnsw graph no longer fits into maintenance_work_mem after (\d+) tuples")


def _graph_bytes_per_vector(dimension: int) -> int:
    """What one vector takes in pgvector's HNSW graph while it is built: the vector (4 bytes a
    dimension) plus its neighbour lists, tuple and allocator overhead, ~720 bytes at the default
    m=16 (measured with pgvector 0.8 on PostgreSQL 18 from its own "no longer fits" notice: 781
    bytes a vector at 16 dimensions, 3,791 at 768)."""
    return 4 * dimension + 720


def _index_build_memory_mb(count: int, dimension: int) -> int:
    """What pgvector's HNSW graph of ``count`` vectors needs in memory, with headroom; never below
    PostgreSQL's default, never above the cap."""
    needed = count * _graph_bytes_per_vector(dimension) * _HEADROOM / 2**20
    return int(min(max(_DEFAULT_MEMORY_MB, needed), INDEX_BUILD_MEMORY_CAP_MB))


def build_memory_warning(notices: Iterable[str], memory_mb: int, count: int, dimension: int) -> str | None:
    """The warning for a build of ``count`` vectors given ``memory_mb`` during which the server sent
    ``notices`` (their primary text), or None when none of them says the graph outgrew its memory.

    The notice names how many vectors fitted, so the build measured what a vector takes on this
    server (3,791 bytes at 768 dimensions in the 1M x 768 bench; the estimate says 3,792); the
    suggestion is the larger of that and the estimate, for every vector, with the same headroom as
    the default, rounded up to two significant figures.
    """
    for text in notices:
        found = _OUTGREW.search(text)
        if found is None:
            continue
        fitted = int(found.group(1))
        per_vector = max(_graph_bytes_per_vector(dimension), memory_mb * 2**20 / fitted if fitted else 0)
        suggested = _round_up(max(_DEFAULT_MEMORY_MB, count * per_vector * _HEADROOM / 2**20))
        if suggested <= memory_mb:  # the notice named no vector (a parallel build can): at least double it
            suggested = _round_up(2 * memory_mb)
        suggested = min(suggested, INDEX_BUILD_MEMORY_MAX_MB)
        return (
            f"the HNSW index build outgrew its memory ({memory_mb:,} MB) after {fitted:,} of {count:,} records and built "
            f"the rest on disk, several times slower; set index_build_memory_mb: {suggested} on this destination "
            f"(about {per_vector / 1000:.1f} kB a vector at {dimension:,} dimensions) if the server has the memory"
        )
    return None


def _round_up(mb: float) -> int:
    """``mb`` rounded up to two significant figures (4,519 -> 4,600; 64 stays 64): a figure to type."""
    whole = math.ceil(mb)
    step = 10 ** max(0, len(str(whole)) - 2)
    return -(-whole // step) * step


@contextlib.contextmanager
def _notices(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """The primary text of each notice the server sends on ``conn`` while the block runs (read in
    the handler: psycopg's ``Diagnostic`` is valid only during the call)."""
    heard: list[str] = []

    def hear(diagnostic: psycopg.errors.Diagnostic) -> None:
        heard.append(diagnostic.message_primary or "")

    conn.add_notice_handler(hear)
    try:
        yield heard
    finally:
        conn.remove_notice_handler(hear)


def _index_name(table: str) -> str:
    return f"{table}_embedding_hnsw"[:63]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sample(ids: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


__all__ = ["HalfvecDestination", "PgvectorDestination", "PgvectorSettings"]
