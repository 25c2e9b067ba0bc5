"""vectorops destination ``jsondir``: an index kept as JSON files in a folder (an example plug-in).

The whole plug-in is this module: a settings model registered under the entry point ``jsondir``
(see pyproject.toml) and the ``Destination`` it opens. Layout of one index, ``<path>/<name>/``:

    index.json        {"dimension": 8, "metric": "cosine"}: written by ``ensure``
    records.json      {"<id>": [[vector...], {metadata}]}: rewritten whole by every write
    docs/<key>.json   vectorops' own documents (state, lock, history), one file each

Every file is replaced atomically (written beside, then renamed), so a reader sees the old file
or the new one. Fine for demos and tests; a real destination would not rewrite everything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
from pydantic import Field

from reconciler.errors import DestinationError, DestinationMismatchError, DestinationStorageError
from reconciler.providers.base import Capabilities, Destination, DestinationInfo, describe_exception
from reconciler.providers.settings import DestinationContext, DestinationSettings
from reconciler.records import RecordBatch

__version__ = "0.1.0"


class JsonDirSettings(DestinationSettings):
    """JSON files in a folder (example plug-in): ``destination: {type: jsondir, path: ..., name: ...}``."""

    type: Literal["jsondir"]
    path: str = Field(".vectorops/jsondir", min_length=1, description="Folder of indexes; relative to the manifest's folder")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63, description="The index: a subfolder of path")

    pattern_hints = {"name": "Index names use lowercase letters, digits, '-' and '_'."}

    def address(self) -> str:
        return f"jsondir:{self.path}#{self.name}"

    def key(self, context: DestinationContext) -> str:
        return f"jsondir:{context.resolve(self.path)}#{self.name}"

    def open(self, context: DestinationContext) -> JsonDirDestination:
        return JsonDirDestination(context.resolve(self.path) / self.name, address=self.address())


class JsonDirDestination(Destination):
    """One index folder. Each write rewrites records.json, so fewer, larger writes are better."""

    capabilities = Capabilities(single_step=True)

    def __init__(self, folder: Path, *, address: str) -> None:
        self.folder = folder
        self.address = address

    # -- files ---------------------------------------------------------------------------------

    def _read(self, name: str) -> Any:
        path = self.folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def _write(self, name: str, data: Any) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def _records(self) -> dict[str, list[Any]]:
        return self._read("records.json") or {}

    def _index(self) -> dict[str, Any]:
        index = self._read("index.json")
        if index is None:
            raise DestinationError(f"{self.address}: the index does not exist", hint="`vectorops apply` creates it.")
        return index

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        """A file that is not the JSON this module wrote: the folder was damaged or edited by hand."""
        if isinstance(exc, json.JSONDecodeError):
            return DestinationStorageError(
                f"{self.address}: {doing} failed: {describe_exception(exc)}",
                hint=f"A file under {self.folder} is damaged; restore it, or delete the folder and apply again.",
            )
        return super().translate_error(exc, doing)

    # -- records -------------------------------------------------------------------------------

    def describe(self) -> DestinationInfo:
        index = self._read("index.json")
        if index is None:
            return DestinationInfo(exists=False)
        return DestinationInfo(exists=True, dimension=index["dimension"], metric=index["metric"], count=len(self._records()))

    def ensure(self, dimension: int, metric: str) -> None:
        index = self._read("index.json")
        if index is None:
            self._write("index.json", {"dimension": dimension, "metric": metric})
        elif (index["dimension"], index["metric"]) != (dimension, metric):
            raise DestinationMismatchError(
                f"{self.address}: the index has dimension {index['dimension']} and metric {index['metric']}, "
                f"not {dimension} and {metric}",
                hint="Point the environment at another name for the new embedding.",
            )

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        ids = list(self._records())
        for i in range(0, len(ids), batch_size):
            yield ids[i : i + batch_size]

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        records = self._records()
        return self._batch([(i, records[i]) for i in dict.fromkeys(ids) if i in records])

    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        items = list(self._records().items())
        for i in range(0, len(items), batch_size):
            yield self._batch(items[i : i + batch_size])

    def _batch(self, items: list[tuple[str, list[Any]]]) -> RecordBatch:
        dimension = int(self._read("index.json")["dimension"]) if items else 0
        vectors = np.asarray([v for _, (v, _) in items], dtype=np.float32).reshape(len(items), dimension)
        return RecordBatch.from_rows([i for i, _ in items], vectors, [m for _, (_, m) in items], dimension)

    def upsert(self, batch: RecordBatch) -> None:
        if not len(batch):
            return
        dimension = self._index()["dimension"]
        if batch.vectors.shape[1] != dimension:
            raise DestinationMismatchError(f"{self.address}: vectors of dimension {batch.vectors.shape[1]}, the index has {dimension}")
        records = self._records()
        vectors = np.asarray(batch.vectors, dtype=np.float32)
        for k, (vid, metadata) in enumerate(zip(batch.id_list, batch.metadata_rows(), strict=False)):
            records[vid] = [[float(x) for x in vectors[k]], metadata]  # float32 -> float is exact
        self._write("records.json", records)

    def delete(self, ids: Sequence[str]) -> None:
        records = self._records()
        if any(i in records for i in ids):
            for i in ids:
                records.pop(i, None)
            self._write("records.json", records)

    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        metric = self._index()["metric"]
        items = list(self._records().items())
        if not items:
            return []
        matrix = np.asarray([v for _, (v, _) in items], dtype=np.float64)
        q = np.asarray(vector, dtype=np.float64)
        if metric == "euclidean":
            score = -np.linalg.norm(matrix - q, axis=1)
        elif metric == "dotproduct":
            score = matrix @ q
        else:
            score = (matrix @ q) / np.maximum(np.linalg.norm(matrix, axis=1) * np.linalg.norm(q), 1e-30)
        return [items[k][0] for k in np.argsort(-score, kind="stable")[:top_k]]

    # -- vectorops' documents ------------------------------------------------------------------

    def _doc_name(self, key: str) -> str:
        return f"docs/{quote(key, safe='')}.json"

    def read_doc(self, key: str) -> dict[str, Any] | None:
        return self._read(self._doc_name(key))  # type: ignore[no-any-return]

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self._write(self._doc_name(key), doc)

    def delete_doc(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / self._doc_name(key)).unlink()

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(key, doc) for key in self.list_doc_keys(prefix) if (doc := self.read_doc(key)) is not None]

    def list_doc_keys(self, prefix: str) -> list[str]:
        folder = self.folder / "docs"
        names = [p.name[: -len(".json")] for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(key for key in map(unquote, names) if key.startswith(prefix))

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """A file lock, so two processes never both win vectorops' lock."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["JsonDirDestination", "JsonDirSettings"]
