"""A destination's ids, listed for a plan diffed on disk: spilled to a file, only their keys held.

An `ids` refresh held the whole listing as one Arrow array, and the on-disk diff its 64-bit keys
twice (in listing order and sorted): ~35 bytes an id, what made a 10M-record plan's peak memory
grow to ~1.9x a 1M-record plan's while everything else stayed a partition at a time. Here the
destination's ids arrive in pieces (``Destination.id_batches``); each piece is hashed to its keys
(``hash_strings``: the keys the partitioned diff compares), written to an unlinked temporary file
with them, and dropped. What stays is the keys, sorted: 8 bytes an id. The diff names the few
listed keys it acts on (ids to delete, ids vectorops did not write), and ``select`` reads the file
back once, a piece at a time, for their ids, in the listing's order as the in-memory diff gives them.

The file is unlinked from the start, so it goes when the plan ends or dies, whatever happens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

from reconciler import caches
from reconciler.engine.hashing import hash_strings
from reconciler.engine.partitioned import KeyIndex

SPILL_SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("key", pa.uint64())])


class ListedIds:
    """The ids a destination listed: their sorted keys in memory, the ids themselves in a spill file."""

    def __init__(self, spill: IO[bytes], sorted_keys: np.ndarray) -> None:
        self._spill = spill
        self.sorted_keys = sorted_keys  # uint64, ascending; a repeat is two ids with one key (or an id listed twice)

    @staticmethod
    def collect(pieces: Iterable[pa.Array | pa.ChunkedArray], count_hint: int = 0, folder: Path | None = None) -> ListedIds:
        """Spill ``pieces`` (string arrays, in listing order) and keep their keys.

        ``count_hint``: about how many ids will come (the destination's count): the keys go into
        one array of that size, grown if the listing is longer, never gathered in pieces and joined
        (which would hold them twice at the end)."""
        where = folder if folder is not None else caches.cache_dir() / "tmp"
        where.mkdir(parents=True, exist_ok=True)
        spill = tempfile.TemporaryFile(dir=where, prefix="listed-")  # noqa: SIM115 - kept open by the ListedIds, closed by it
        try:
            keys = np.empty(max(count_hint, 0), np.uint64)
            count = 0
            sink = pa.PythonFile(spill, mode="w")
            with pa.ipc.new_stream(sink, SPILL_SCHEMA) as writer:
                for piece in pieces:
                    ids = _strings(piece)
                    piece_keys = hash_strings(ids)
                    writer.write_batch(pa.record_batch([ids, pa.array(piece_keys, pa.uint64())], schema=SPILL_SCHEMA))
                    if count + len(piece_keys) > len(keys):
                        keys = np.resize(keys, max(2 * len(keys), count + len(piece_keys)))
                    keys[count : count + len(piece_keys)] = piece_keys
                    count += len(piece_keys)
            spill.flush()
        except BaseException:
            spill.close()
            raise
        keys = keys[:count] if count >= len(keys) * 3 // 4 else keys[:count].copy()  # a stale hint: not kept at its size
        keys.sort()  # in place: no second copy of the keys
        return ListedIds(spill, keys)

    @staticmethod
    def of(ids: pa.Array | pa.ChunkedArray, piece: int = 262_144) -> ListedIds:
        """A listing already in memory (a caller that had the whole array), kept the same way."""
        flat = _strings(ids)
        return ListedIds.collect((flat.slice(start, piece) for start in range(0, len(flat), piece)), len(flat))

    def __len__(self) -> int:
        return len(self.sorted_keys)

    def pieces(self) -> Iterator[pa.RecordBatch]:
        """The spilled (id, key) pieces, in listing order, one at a time."""
        self._spill.seek(0)
        yield from pa.ipc.open_stream(pa.PythonFile(self._spill, mode="r"))

    def select(self, wanted: dict[str, np.ndarray]) -> dict[str, pa.Array]:
        """For each name, the listed ids whose keys are in its sorted key set, in listing order."""
        looking = {name: KeyIndex.of(keys) for name, keys in wanted.items() if len(keys)}
        found: dict[str, list[pa.Array]] = {name: [] for name in wanted}
        if looking:
            for piece in self.pieces():
                keys = piece.column(1).to_numpy()
                for name, index in looking.items():
                    hit = index.contains(keys)
                    if hit.any():
                        found[name].append(piece.column(0).filter(pa.array(hit)))
        return {name: pa.concat_arrays(parts) if parts else pa.array([], pa.string()) for name, parts in found.items()}

    def to_array(self) -> pa.Array:
        """Every listed id as one array, in listing order: for the diffs that hold the listing anyway
        (in memory after a key collision, a rebuild's ids to delete, a Ray cluster's buckets)."""
        parts = [piece.column(0) for piece in self.pieces()]
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())

    def close(self) -> None:
        self._spill.close()

    @property
    def closed(self) -> bool:
        return self._spill.closed


def whole(ids: pa.Array | ListedIds | None) -> pa.Array | None:
    """A listing as one array, whichever form the refresh gave it (``ListedIds.to_array`` of a
    spilled one): for the diffs that hold the listing anyway."""
    return ids.to_array() if isinstance(ids, ListedIds) else ids


def _strings(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    flat = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return flat if flat.type == pa.string() else flat.cast(pa.string())
