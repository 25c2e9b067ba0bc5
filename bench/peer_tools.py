"""The tools teams use instead of vectorops, each driven the way its documentation shows, one version at a time.

``python bench/peer_tools.py TOOL PARQUET LOOKUP WORKDIR --dim D`` syncs one dataset version into
the tool's own LanceDB table under WORKDIR (creating it on the first call, syncing it after) and
prints one JSON line: what the tool itself reported. bench/peers.py runs it in a measured child per
tool and version, so wall time and peak RSS are the tool's, imports included.

Embeddings: every tool re-embeds documents by design. Each gets an embedding function that returns
the dataset's own float32 vector for the document (a lookup by record id in a side file written from
the same Parquet, no model), so the comparison measures syncing, not embedding.

Documents: the dataset has no text; a document's text is ``"<record id> <xxh3 of its vector bytes>"``,
standing for the text the vector embeds, so a changed vector is a changed document. (With the id alone,
LangChain and LlamaIndex would see the 0.5 % of records whose vector changed but metadata did not as
unchanged and keep their old vectors.) The metadata is the dataset's: title, source, chunk, lang.

Documents are streamed from Parquet in batches (bounded memory) wherever the tool's API takes an
iterable; LlamaIndex's ``IngestionPipeline.run`` takes a list, and its delete strategy deletes
whatever one run was not given, so it gets every document of the version at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

TABLE = "docs"
META_KEYS = ("title", "source", "chunk", "lang")
READ_BATCH = 10_000
LANGCHAIN_BATCH = 1_000  # index()'s default is 100: ten times fewer LanceDB appends and SQLite round trips
LLAMAINDEX_EMBED_BATCH = 1_000  # BaseEmbedding's default is 10
TOOLS = ("langchain-incremental", "langchain-full", "llamaindex", "dlt")


# -- the documents and the embedding lookup ------------------------------------------------------------


class Progress:
    """How far this run got: records read from the Parquet file and handed to the tool, records embedded.

    bench/peers.py stops a step that runs over its time budget or memory cap (bench/step_limits.py);
    this file, rewritten at most once a second where ``$BENCH_PROGRESS_FILE`` says, is how it learns how
    far the step got before it was stopped. Without that variable nothing is written.
    """

    def __init__(self, total: int) -> None:
        target = os.environ.get("BENCH_PROGRESS_FILE")
        self.path = Path(target) if target else None
        self.total, self.read, self.embedded = total, 0, 0
        self.last = 0.0
        self.lock = threading.Lock()  # dlt embeds in its load threads

    def add(self, read: int = 0, embedded: int = 0) -> None:
        with self.lock:
            self.read += read
            self.embedded += embedded
            now = time.monotonic()
            if self.path is None or now - self.last < 1.0:
                return
            self.last = now
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"read": self.read, "embedded": self.embedded, "total": self.total}))
            os.replace(tmp, self.path)  # the parent never reads half a file


PROGRESS = Progress(0)  # main() replaces it with one that knows the version's size



@dataclass
class Row:
    record_id: str
    text: str
    metadata: dict[str, Any]


def vectors_of(batch: pa.RecordBatch) -> np.ndarray:
    vec = batch.column("vector")
    dim = vec.type.list_size
    return vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)


def document_text(record_id: str, vector: np.ndarray) -> str:
    return f"{record_id} {xxhash.xxh3_64_hexdigest(vector.tobytes())}"


def record_id_of(text: str) -> str:
    return text.split(" ", 1)[0]


def rows(parquet: Path) -> Iterator[Row]:
    """The version's records as documents, read a batch at a time."""
    pf = pq.ParquetFile(parquet)
    for batch in pf.iter_batches(batch_size=READ_BATCH, columns=["id", "vector", *META_KEYS]):
        vectors = vectors_of(batch)
        ids = batch.column("id").to_pylist()
        meta = {k: batch.column(k).to_pylist() for k in META_KEYS}
        for i, record_id in enumerate(ids):
            yield Row(record_id, document_text(record_id, vectors[i]), {k: meta[k][i] for k in META_KEYS})
            PROGRESS.add(read=1)  # the tool asked for the next one: this one is in its hands


def write_lookup(parquet: Path, folder: Path) -> None:
    """Side files for the embedding lookup: raw float32 vectors in file order, and the ids sorted.

    Written once per version before anything is timed. A tool's child reads a vector with one
    ``pread``, so the lookup costs the tool's process ~20 bytes a record, not the vectors.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ids: list[np.ndarray] = []
    with open(folder / "vectors.f32", "wb") as out:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=65_536, columns=["id", "vector"]):
            out.write(vectors_of(batch).tobytes())
            ids.append(np.asarray(batch.column("id").to_pylist(), dtype="S"))
    all_ids = np.concatenate(ids)
    order = np.argsort(all_ids, kind="stable")
    np.save(folder / "ids_sorted.npy", all_ids[order])
    np.save(folder / "order.npy", order.astype(np.int64))


class VectorLookup:
    """The dataset's own vector for a record id: what each tool's embedding function returns."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.ids = np.load(folder / "ids_sorted.npy")
        self.order = np.load(folder / "order.npy")
        self.dim = dim
        self.fd = os.open(folder / "vectors.f32", os.O_RDONLY)
        self.calls = 0

    def vectors(self, record_ids: Sequence[str]) -> np.ndarray:
        self.calls += len(record_ids)
        PROGRESS.add(embedded=len(record_ids))
        wanted = np.asarray(record_ids, dtype="S")
        at = np.searchsorted(self.ids, wanted)
        at = np.minimum(at, len(self.ids) - 1)
        if not np.array_equal(self.ids[at], wanted):
            missing = [r for r, ok in zip(record_ids, self.ids[at] == wanted, strict=False) if not ok]
            raise SystemExit(f"embedding lookup: ids not in this version: {missing[:5]}")
        out = np.empty((len(record_ids), self.dim), np.float32)
        size = 4 * self.dim
        for i, row in enumerate(self.order[at]):
            out[i] = np.frombuffer(os.pread(self.fd, size, int(row) * size), np.float32)
        return out


# -- a quoting fix two peers need on today's LanceDB ---------------------------------------------------

QUOTING_FIX = (
    "dlt 1.31 and llama-index-vector-stores-lancedb 0.6 write string literals in LanceDB filters in double quotes "
    "(`version_hash = \"...\"`, `doc_id = \"...\"`), which LanceDB 0.40 reads as column names: unpatched, dlt's "
    "second run fails (\"No field named ...\") and every LlamaIndex delete fails. The bench rewrites `= \"x\"` "
    "to `= 'x'` in LanceDB filters inside their children (peer_tools.fix_lancedb_string_quoting) so the rest of "
    "their job can be measured."
)


def fix_lancedb_string_quoting() -> None:
    """Rewrite ``col = "x"`` to ``col = 'x'`` in LanceDB delete and query filters (see QUOTING_FIX)."""
    import re

    from lancedb.query import LanceQueryBuilder
    from lancedb.table import LanceTable

    literal = re.compile(r'(=\s*)"([^"\']*)"')
    delete, where = LanceTable.delete, LanceQueryBuilder.where

    def fixed_delete(self: Any, condition: str) -> Any:
        return delete(self, literal.sub(r"\1'\2'", condition))

    def fixed_where(self: Any, condition: str, *args: Any, **kwargs: Any) -> Any:
        return where(self, literal.sub(r"\1'\2'", condition), *args, **kwargs)

    LanceTable.delete = fixed_delete  # type: ignore[method-assign]
    LanceQueryBuilder.where = fixed_where  # type: ignore[method-assign]


# -- LangChain: index() + SQLRecordManager (SQLite) into LangChain's LanceDB vector store --------------


def run_langchain(parquet: Path, lookup: VectorLookup, work: Path, cleanup: str) -> dict[str, Any]:
    from langchain_classic.indexes import SQLRecordManager
    from langchain_community.vectorstores import LanceDB
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index

    class LookupEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return lookup.vectors([record_id_of(t) for t in texts]).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    manager = SQLRecordManager(f"lancedb/{TABLE}", db_url=f"sqlite:///{work / 'record_manager.sqlite'}")
    manager.create_schema()
    store = LanceDB(uri=str(work / "lancedb"), table_name=TABLE, embedding=LookupEmbeddings(), mode="append")
    docs = (Document(page_content=r.text, metadata={"record_id": r.record_id, **r.metadata}) for r in rows(parquet))
    result = index(docs, manager, store, cleanup=cleanup, source_id_key="record_id", batch_size=LANGCHAIN_BATCH,
                   key_encoder="sha256")
    return {"reported": result, "embedded": lookup.calls}


# -- LlamaIndex: IngestionPipeline with a docstore and DocstoreStrategy.UPSERTS_AND_DELETE -------------


def run_llamaindex(parquet: Path, lookup: VectorLookup, work: Path) -> dict[str, Any]:
    from llama_index.core import Document
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.schema import BaseNode, NodeRelationship, TextNode, TransformComponent
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    class LookupEmbedding(BaseEmbedding):
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return lookup.vectors([record_id_of(t) for t in texts]).tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

    class DocumentAsNode(TransformComponent):
        """What a splitter makes of a document shorter than one chunk: one node pointing at it."""

        def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
            return [
                TextNode(id_=n.id_, text=n.text, metadata=dict(n.metadata), excluded_embed_metadata_keys=list(META_KEYS),
                         excluded_llm_metadata_keys=list(META_KEYS),
                         relationships={NodeRelationship.SOURCE: n.as_related_node_info()})
                for n in nodes
            ]

    docstore_file = work / "docstore.json"
    docstore = SimpleDocumentStore.from_persist_path(str(docstore_file)) if docstore_file.exists() else SimpleDocumentStore()
    store = LanceDBVectorStore(uri=str(work / "lancedb"), table_name=TABLE, mode="overwrite")
    pipeline = IngestionPipeline(
        transformations=[DocumentAsNode(), LookupEmbedding(embed_batch_size=LLAMAINDEX_EMBED_BATCH)],
        docstore=docstore, vector_store=store, docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
        disable_cache=True,  # the transformation cache would keep every node's embedding a second time
    )
    documents = [Document(id_=r.record_id, text=r.text, metadata=r.metadata, excluded_embed_metadata_keys=list(META_KEYS),
                          excluded_llm_metadata_keys=list(META_KEYS)) for r in rows(parquet)]
    nodes = pipeline.run(documents=documents)
    docstore.persist(str(docstore_file))  # the next sync needs it
    return {"reported": {"nodes_written": len(nodes)}, "embedded": lookup.calls}


# -- dlt: LanceDB destination, write_disposition="merge" on the id, orphan removal -----------------------

_DLT_LOOKUP: VectorLookup | None = None


def run_dlt(parquet: Path, lookup: VectorLookup, work: Path) -> dict[str, Any]:
    global _DLT_LOOKUP
    _DLT_LOOKUP = lookup
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    # arrow items skip dlt's row normalizer; orphan removal needs these two columns on them
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"] = "true"
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "true"
    import dlt
    from dlt.destinations.adapters import lancedb_adapter
    from lancedb.embeddings import TextEmbeddingFunction, register

    @register("vectorops-lookup")
    class LookupFunction(TextEmbeddingFunction):  # type: ignore[misc,unused-ignore]
        name: str = "lookup"
        dim: int = lookup.dim

        def ndims(self) -> int:
            return self.dim

        def generate_embeddings(self, texts: Any) -> list[np.ndarray]:
            assert _DLT_LOOKUP is not None
            return list(_DLT_LOOKUP.vectors([record_id_of(str(t)) for t in texts]))

    @dlt.resource(name=TABLE, write_disposition="merge", primary_key="id")
    def documents() -> Iterator[pa.Table]:
        pf = pq.ParquetFile(parquet)
        for batch in pf.iter_batches(batch_size=READ_BATCH * 5, columns=["id", "vector", *META_KEYS]):
            vectors = vectors_of(batch)
            ids = batch.column("id").to_pylist()
            texts = pa.array([document_text(r, vectors[i]) for i, r in enumerate(ids)], pa.string())
            yield pa.table({"id": batch.column("id"), "text": texts, **{k: batch.column(k) for k in META_KEYS}})
            PROGRESS.add(read=len(ids))

    destination = dlt.destinations.lancedb(lance_uri=str(work / "lancedb"), embedding_model_provider="vectorops-lookup",
                                           embedding_model="lookup", embedding_model_dimensions=lookup.dim)
    pipeline = dlt.pipeline(pipeline_name="peers_dlt", pipelines_dir=str(work / "dlt-pipelines"), destination=destination,
                            dataset_name="bench", progress="log" if os.environ.get("PEERS_DLT_PROGRESS") else None)
    info = pipeline.run(lancedb_adapter(documents(), embed="text", merge_key="id"))
    norm = pipeline.last_trace.last_normalize_info
    rows_loaded = dict(norm.row_counts) if norm is not None else {}
    return {"reported": {"row_counts": rows_loaded, "loads": len(info.loads_ids)}, "embedded": lookup.calls}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tool", choices=TOOLS)
    ap.add_argument("parquet", type=Path)
    ap.add_argument("lookup", type=Path)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--dim", type=int, required=True)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    global PROGRESS
    PROGRESS = Progress(pq.ParquetFile(args.parquet).metadata.num_rows)
    lookup = VectorLookup(args.lookup, args.dim)
    if args.tool.startswith("langchain-"):
        out = run_langchain(args.parquet, lookup, args.workdir, args.tool.split("-", 1)[1])
    elif args.tool == "llamaindex":
        fix_lancedb_string_quoting()
        out = run_llamaindex(args.parquet, lookup, args.workdir)
    else:
        fix_lancedb_string_quoting()
        out = run_dlt(args.parquet, lookup, args.workdir)
    print(json.dumps(out, default=str), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
