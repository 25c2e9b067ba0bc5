"""Who runs a plan's heavy work: this machine's processes (``local``) or a Ray cluster (``ray``).

The heavy work of a sharded dataset is three things: hashing the shards never seen, diffing two
versions' id→hash tables, and reading the records apply writes. Plan and apply call an
``Executor`` for those and never know which one runs; both compute with the same functions
(``shards.hash_shard``, ``diff.compute_diff``, the dataset readers), so the plan is the same bit
for bit whichever runs it (SPEC §10).

Which one: ``--executor`` on the command line, else the manifest's ``executor: {type: ...}``,
else ``local``. Ray is imported only when the ``ray`` executor is used, so vectorops works without
the ``vectorops[ray]`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from reconciler.dataset import DatasetShard, DatasetSource, DatasetVersion
    from reconciler.engine.diff import Diff, VersionIndex
    from reconciler.engine.listed import ListedIds
    from reconciler.engine.shards import StashSpec
    from reconciler.records import RecordBatch

KINDS = ("local", "ray")


class Executor(Protocol):
    """The heavy work of a plan or an apply, wherever it runs."""

    name: str

    def hash_shards(
        self, src: DatasetSource, version: DatasetVersion, todo: list[DatasetShard], signature_key: str, stash: StashSpec | None,
        progress: Callable[[int], None], precision: str = "float32",
    ) -> int:
        """Hash each shard of ``todo`` into the per-shard cache; returns how many workers did it.
        The first failing shard's error (in ``todo`` order) is raised as it was raised there.
        ``precision``: the destination's (``shards.hash_shard``), part of ``signature_key``."""
        ...

    def diff(
        self, desired: VersionIndex, deployed: VersionIndex | None, actual_ids: pa.Array | ListedIds | None,
        actual_hashes: VersionIndex | None, *, prune: bool,
    ) -> Diff:
        """``diff.compute_diff`` of the same arguments (same arrays, same order)."""
        ...

    def shard_records(
        self, src: DatasetSource, version: DatasetVersion, work: list[tuple[DatasetShard, pa.Array]], signature_key: str,
        baseline_digest: str | None, batch_size: int,
    ) -> Iterator[RecordBatch]:
        """The records of each (shard, ids) in ``work``, in that order: from the shard's stash first,
        the rest from the shard itself. Every shard to be read is verified against its md5 before
        the first record is yielded (a destination may consume the stream from native code)."""
        ...


_chosen: tuple[str, str | None] | None = None  # (kind, address) from the command line


def configure(kind: str | None, address: str | None = None) -> None:
    """``--executor KIND``: overrides the manifest's ``executor:`` for this command (None: the manifest's)."""
    global _chosen
    _chosen = (kind, address) if kind is not None else None


def for_manifest(manifest: Any) -> Executor:
    """The executor this command uses: ``--executor``, else the manifest's ``executor:``, else local."""
    setting = getattr(getattr(manifest, "model", None), "executor", None)
    kind, address = _chosen if _chosen is not None else (setting.type, setting.address) if setting is not None else ("local", None)
    if address is None and setting is not None and setting.type == kind:
        address = setting.address
    return get(kind, address)


def get(kind: str, address: str | None = None) -> Executor:
    if kind == "ray":
        from reconciler.engine.executors.ray import RayExecutor, connect

        return RayExecutor(connect(address))
    from reconciler.engine.executors.local import LocalExecutor

    return LocalExecutor()
