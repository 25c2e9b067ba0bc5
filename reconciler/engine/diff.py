"""A version's id→hash table and the set difference between desired and actual.

Everything here works on hashes, never on vectors: a version's table is ~40 bytes a record, so the
diff of two million-record versions is arrays of ids and numpy over positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler.engine.hashing import hash_batch, hash_strings
from reconciler.engine.listed import ListedIds, whole
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch

INDEX_SCHEMA = pa.schema([("id", pa.string()), ("vh", pa.uint64()), ("mh", pa.uint64())])
#: ``INDEX_SCHEMA`` plus each id's 64-bit key (xxh3 of the id): what ``VersionIndex.build(with_keys=True)`` holds
KEYED_SCHEMA = INDEX_SCHEMA.append(pa.field("key", pa.uint64()))
SAMPLE_SIZE = 10


# -- a version's id→hash table -----------------------------------------------------------------


@dataclass
class VersionIndex:
    """Ids sorted, with their vector and metadata hashes. Small: ~40 bytes a record.

    A large sharded version is kept on disk instead (``shards.ShardedIndex``, ``on_disk``): the
    methods below are how the diff, the sample refresh and the stash read a version either way.
    """

    table: pa.Table
    on_disk: ClassVar[bool] = False
    # a sharded version's: the per-shard cache files it was assembled from, which a distributed
    # diff's tasks read themselves instead of receiving the table (engine/executors/ray.py)
    shard_files: tuple[str, ...] = ()
    #: names the version (its digest and how it was hashed) so its on-disk partitions can be cached
    #: for the next plan (``partitioned._partitions``); None: not cacheable (set by ``shards.ShardedIndex``)
    cache_key: str | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def ids(self) -> pa.ChunkedArray:
        return self.table.column("id")

    def chunk_count(self) -> int:
        return 1

    def chunk(self, i: int, columns: list[str] | None = None) -> pa.Table:
        """Part ``i`` of the table (all of it here; one shard's table on disk)."""
        return self.table.select(columns) if columns is not None else self.table

    def chunks(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        for i in range(self.chunk_count()):
            yield self.chunk(i, columns)

    def chunk_keys(self, i: int) -> np.ndarray:
        """The 64-bit keys (xxh3) of part ``i``'s ids, in its order (``partitioned.py``)."""
        return hash_strings(self.chunk(i, ["id"]).column("id"))

    def chunk_run(self, i: int) -> Path | None:
        """The file of part ``i``'s (key, vh, mh) rows sorted by key, where one is stored (a large
        sharded version's shards: ``shards.ShardedIndex``); None here: ``partitioned.py`` spills the part."""
        return None

    def take(self, rows: np.ndarray) -> pa.Table:
        """The records at these positions (sorted, ascending): a sample of the version."""
        return self.table.take(pa.array(rows, pa.int64()))

    def listing_hint(self) -> pa.Array:
        """Sorted ids a destination may use to split a listing (``Destination.all_ids``)."""
        return self.ids.combine_chunks()

    def in_memory(self) -> VersionIndex:
        return self

    @staticmethod
    def empty() -> VersionIndex:
        return VersionIndex(INDEX_SCHEMA.empty_table())

    @staticmethod
    def build(
        batches: Iterable[RecordBatch], *, what: str,
        on_batch: Callable[[RecordBatch, np.ndarray, np.ndarray, np.ndarray | None], None] | None = None,
        precision: str = "float32", with_keys: bool = False,
    ) -> VersionIndex:
        """The table of ``batches``, vectors hashed as a destination storing ``precision`` holds them.

        ``on_batch(batch, vh, mh, keys)`` sees each batch as it is hashed; ``with_keys`` hashes each
        id once (``keys``, else None) for it and keeps them as a ``key`` column (``KEYED_SCHEMA``),
        sorted with the ids: a shard's cache stores them beside its table (``shards.hash_shard``).
        """
        schema = KEYED_SCHEMA if with_keys else INDEX_SCHEMA
        parts: list[pa.Table] = []
        for batch in batches:
            vh, mh = hash_batch(batch, precision)
            keys = hash_strings(batch.ids) if with_keys else None
            if on_batch is not None:
                on_batch(batch, vh, mh, keys)
            columns = {"id": batch.ids, "vh": vh, "mh": mh}
            if keys is not None:
                columns["key"] = keys
            parts.append(pa.table(columns, schema=schema))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return VersionIndex.from_table(table, what=what)

    @staticmethod
    def from_table(table: pa.Table, *, what: str) -> VersionIndex:
        table = table.sort_by("id").combine_chunks()
        ids = table.column("id")
        if len(ids) > 1:
            same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
            if pc.any(same).as_py():
                dup_positions = np.flatnonzero(same.to_numpy(zero_copy_only=False))
                dups = sorted({ids[int(i)].as_py() for i in dup_positions})
                shown = ", ".join(dups[:SAMPLE_SIZE]) + (f" and {len(dups) - SAMPLE_SIZE} more" if len(dups) > SAMPLE_SIZE else "")
                raise DatasetError(
                    f"{what}: duplicate ids: {shown}",
                    hint="Ids must be unique within a dataset version; deduplicate the file and `dvc add` it again.",
                )
        return VersionIndex(table)


# -- set difference ----------------------------------------------------------------------------


@dataclass
class Diff:
    """What apply must do, and what the destination holds that vectorops did not put there."""

    add: pa.Array
    update_vector: pa.Array
    update_metadata: pa.Array
    delete: pa.Array
    kept_unexpected: int  # unexpected ids not deleted because prune is off
    drift_missing: pa.Array | None
    drift_unexpected: pa.Array | None
    drift_modified: pa.Array | None

    @property
    def update(self) -> pa.Array:
        return pa.concat_arrays([self.update_vector, self.update_metadata])

    def counts(self) -> dict[str, int]:
        return {"add": len(self.add), "update": len(self.update_vector) + len(self.update_metadata), "delete": len(self.delete)}


def _u64(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def diffed_on_disk(desired: VersionIndex, deployed: VersionIndex | None) -> bool:
    """Whether ``compute_diff`` diffs these versions partition by partition on disk (a large sharded
    version on either side): the refresh then spills its listing for it (``ListedIds``)."""
    return desired.on_disk or (deployed is not None and deployed.on_disk)


def compute_diff(
    desired: VersionIndex,
    deployed: VersionIndex | None,
    actual_ids: pa.Array | ListedIds | None,
    actual_hashes: VersionIndex | None,
    *,
    prune: bool,
) -> Diff:
    """Desired vs actual. ``actual_ids`` None means "not looked": assume the deployed version is there;
    a ``ListedIds`` is a listing spilled for the on-disk diff (``refresh_actual``).

    An id the destination holds but vectorops never wrote has unknown content, so if the desired
    version has it, it is rewritten (an update) rather than trusted.

    A version kept on disk (a large sharded one) is diffed partition by partition on disk
    (``partitioned.diff_indexes``), which gives this same diff; if two of its ids share a 64-bit
    key (or an id is duplicated) it is loaded and diffed here, exactly.
    """
    if actual_hashes is None and diffed_on_disk(desired, deployed):
        from reconciler.engine.partitioned import KeyCollision, diff_indexes

        try:
            return diff_indexes(desired, deployed, actual_ids, prune=prune)
        except KeyCollision:
            pass
    desired = desired.in_memory()
    deployed = deployed.in_memory() if deployed is not None else None
    base = deployed if deployed is not None else VersionIndex.empty()
    # a listing spilled for the on-disk diff, which a key collision sent here, is read back whole
    listing = whole(actual_ids)
    if actual_hashes is not None:
        listing = actual_hashes.ids.combine_chunks()
    looked = listing is not None
    if listing is None:
        listing = base.ids.combine_chunks()
    listing = listing.cast(pa.string())

    d = desired.table
    desired_ids = d.column("id").combine_chunks()
    base_ids = base.ids.combine_chunks()
    n_desired, n_actual = len(desired_ids), len(listing)
    # One hash table of the destination's ids, probed by the desired and the deployed ids at once;
    # everything else is numpy over positions (four is_in calls and a join were most of a warm plan).
    probes = pa.concat_arrays([desired_ids, base_ids]) if looked else desired_ids
    where = pc.index_in(probes, value_set=listing)
    found = pc.is_valid(where).to_numpy(zero_copy_only=False)
    at = pc.fill_null(where, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    desired_at = at[:n_desired]  # each desired id's position among the actual ids, -1 when absent
    present = found[:n_desired]
    add = desired_ids.filter(pa.array(~present))
    # which deployed row each actual id is (-1: not deployed by vectorops)
    base_row = np.full(n_actual, -1, np.int64)
    if looked:
        base_row[at[n_desired:][found[n_desired:]]] = np.flatnonzero(found[n_desired:])
    else:  # the actual ids are the deployed ones, in order
        base_row[:] = np.arange(n_actual)
    deployed_here = base_row >= 0
    # -1 picks the appended 0, which ``deployed_here`` says not to trust
    base_vh = np.append(_u64(base.table, "vh"), np.uint64(0))[base_row]
    base_mh = np.append(_u64(base.table, "mh"), np.uint64(0))[base_row]

    # the content each actual id is believed to hold: what we saw (full), else what we deployed
    if actual_hashes is not None:
        known = np.ones(n_actual, bool)
        seen_vh, seen_mh = _u64(actual_hashes.table, "vh"), _u64(actual_hashes.table, "mh")
    else:
        known, seen_vh, seen_mh = deployed_here, base_vh, base_mh
    rows = np.flatnonzero(present)
    spot = desired_at[rows]
    # an id the destination holds but vectorops never wrote has unknown content: rewrite it
    vec_changed = ~known[spot] | (seen_vh[spot] != _u64(d, "vh")[rows])
    meta_changed = ~vec_changed & (seen_mh[spot] != _u64(d, "mh")[rows])
    update_vector = desired_ids.take(pa.array(rows[vec_changed]))
    update_metadata = desired_ids.take(pa.array(rows[meta_changed]))

    wanted = np.zeros(n_actual, bool)
    wanted[spot] = True
    extra = listing.filter(pa.array(~wanted))
    delete = extra if prune else pa.array([], pa.string())

    drift_missing = drift_unexpected = drift_modified = None
    if looked:
        drift_missing = base_ids.filter(pa.array(~found[n_desired:]))
        drift_unexpected = listing.filter(pa.array(~deployed_here))
        if actual_hashes is not None:
            differs = deployed_here & ((seen_vh != base_vh) | (seen_mh != base_mh))
            drift_modified = listing.filter(pa.array(differs))
    return Diff(
        add=add,
        update_vector=update_vector,
        update_metadata=update_metadata,
        delete=delete,
        kept_unexpected=0 if prune else len(extra),
        drift_missing=drift_missing,
        drift_unexpected=drift_unexpected,
        drift_modified=drift_modified,
    )


def sample(ids: pa.Array | None, n: int = SAMPLE_SIZE) -> list[str]:
    """Up to ``n`` ids to show a reviewer; ids only, never values."""
    if ids is None:
        return []
    return sorted(ids.slice(0, 10 * n).to_pylist())[:n]

