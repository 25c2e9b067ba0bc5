"""The local executor: shards hashed by ``--jobs`` processes on this machine, the diff and the
record reads in this process (what vectorops always did; the default)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING

import pyarrow as pa

from reconciler.engine import diff as d
from reconciler.engine import shards

if TYPE_CHECKING:
    from reconciler.dataset import DatasetShard, DatasetSource, DatasetVersion
    from reconciler.engine.listed import ListedIds
    from reconciler.records import RecordBatch


def _bytes_to_hash(version: DatasetVersion, todo: list[DatasetShard]) -> int:
    """The bytes the shards to hash hold. DVC's ``.dir`` listing names each file's md5 but, as DVC
    writes it, no size: then the version's total (the ``.dvc`` file's ``size``, an upper bound) stands
    in. Counting an unknown size as 0 kept every real directory version in one process."""
    if all(s.size is not None for s in todo):
        return sum(s.size or 0 for s in todo)
    if version.size:
        return version.size
    return shards.parallel_min_bytes() if len(todo) > 1 else 0  # nothing known: more than one shard is worth the workers


#: the hashing workers' environment, where the user has not set these. Arrow allocates with mimalloc,
#: which hands freed memory back to the OS 10 ms after it is freed: each row group's buffers were then
#: faulted in and zeroed again, most of a worker's system time (~0.4 CPU-s a million 128-d records).
#: A worker's memory is bounded by a row group, so it keeps it. And one BLAS thread each: the
#: workers are the parallelism (numpy's idle BLAS threads were spinning beside them).
WORKER_ENV = {"MIMALLOC_PURGE_DELAY": "-1", "OPENBLAS_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """``WORKER_ENV`` for the processes started inside (the forkserver copies the environment once,
    when it starts), and this process's environment as it was afterwards."""
    added = {k: v for k, v in WORKER_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class LocalExecutor:
    name = "local"

    def hash_shards(
        self, src: DatasetSource, version: DatasetVersion, todo: list[DatasetShard], signature_key: str, stash: shards.StashSpec | None,
        progress: Callable[[int], None], precision: str = "float32",
    ) -> int:
        """Hash shards with up to ``shards.jobs()`` processes (returned); the first error (in shard order) is raised."""
        workers = min(shards.jobs(), len(todo))
        if _bytes_to_hash(version, todo) < shards.parallel_min_bytes():
            workers = 1  # starting worker processes (~1 s of imports each) costs more than hashing this here
        if workers <= 1:
            for done, shard in enumerate(todo, start=1):
                shards.hash_shard(src, version, shard, signature_key, stash, precision)
                progress(done)
            return 1
        context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        with _worker_environment(), ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=shards.one_row_group_at_a_time) as pool:
            pending: dict[Future[int], int] = {}
            queue: Iterator[tuple[int, DatasetShard]] = iter(enumerate(todo))
            errors: dict[int, BaseException] = {}
            done = 0

            def submit() -> None:
                for position, shard in queue:
                    pending[pool.submit(shards.hash_shard, src, version, shard, signature_key, stash, precision)] = position
                    return

            for _ in range(workers * 2):  # a couple queued per worker: no idle gap, few tasks in flight
                submit()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    position = pending.pop(future)
                    error = future.exception()
                    if error is not None:
                        errors[position] = error
                        continue
                    done += 1
                    progress(done)
                    if not errors:
                        submit()
            if errors:
                raise errors[min(errors)]
        return workers

    def diff(
        self, desired: d.VersionIndex, deployed: d.VersionIndex | None, actual_ids: pa.Array | ListedIds | None,
        actual_hashes: d.VersionIndex | None, *, prune: bool,
    ) -> d.Diff:
        return d.compute_diff(desired, deployed, actual_ids, actual_hashes, prune=prune)

    def shard_records(
        self, src: DatasetSource, version: DatasetVersion, work: list[tuple[DatasetShard, pa.Array]], signature_key: str,
        baseline_digest: str | None, batch_size: int,
    ) -> Iterator[RecordBatch]:
        from reconciler import dataset as ds
        from reconciler.engine.stash import read_stashed

        plan: list[tuple[list[RecordBatch], DatasetShard, pa.Array]] = []
        for shard, wanted in work:
            stashed: list[RecordBatch] = []
            if baseline_digest is not None:
                stashed, wanted = read_stashed(shards.shard_stash_path(shard, baseline_digest, signature_key), wanted, batch_size)
            if len(wanted):
                ds.verify_shard(src, version, shard)
            plan.append((stashed, shard, wanted))
        return _stream(src, version, plan)


def _stream(src: DatasetSource, version: DatasetVersion, plan: list[tuple[list[RecordBatch], DatasetShard, pa.Array]]) -> Iterator[RecordBatch]:
    from reconciler import dataset as ds

    for stashed, shard, wanted in plan:
        yield from stashed
        if len(wanted):
            yield from ds.read_shard_records(src, version, shard, wanted)
