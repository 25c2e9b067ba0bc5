"""Batches of records, the unit every reader, hasher and destination works in.

A batch is columnar (ids as an Arrow string array, vectors as one float32 matrix, metadata as an
Arrow table) so hot paths stay vectorised and memory stays bounded by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa


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
        """Metadata as one dict per record; nulls are dropped (a missing key and null are one)."""
        if self.metadata.num_columns == 0:
            return [{} for _ in range(len(self))]
        return [{k: v for k, v in row.items() if v is not None} for row in self.metadata.to_pylist()]

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
