"""The Ray executor: shard hashing, the diff and apply's record reads run as Ray tasks (SPEC §10).

- Hashing: one task per shard never seen. The task reads the shard itself (through DVC, from the
  dataset repo and its remote) and writes the shard's id→hash table to the per-shard cache, so
  nothing large passes through the driver. The cache folder (``VECTOROPS_CACHE_DIR``) must be one
  every node reaches (a shared filesystem): the driver passes its path to each task.
- Diff: a shuffle by id hash into K buckets. One map task per shard table (read from the cache by
  the task) splits it into K parts kept in Ray's object store; one task per bucket runs
  ``diff.compute_diff`` on its part of the desired, deployed and destination tables and returns only
  the changes (ids). The driver puts them back in ``compute_diff``'s order, so the plan is the same
  bit for bit.
- Apply: the lock, intent and state stay with the driver (one writer); each shard's records to
  write are read by a task (stash first, then the shard) and streamed back batch by batch, a few
  shards in flight, so the driver holds a few batches, never the dataset.

Ray is imported here only: ``import reconciler`` works without it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reconciler import caches
from reconciler.engine import diff as d
from reconciler.engine import shards
from reconciler.engine.hashing import hash_strings
from reconciler.engine.listed import ListedIds, whole
from reconciler.errors import UsageError

if TYPE_CHECKING:
    from reconciler.dataset import DatasetShard, DatasetSource, DatasetVersion
    from reconciler.records import RecordBatch

INSTALL_HINT = "Install the extra: pip install 'vectorops[ray]' (or run without --executor ray / executor: {type: ray})."
RECORD_SHARDS_IN_FLIGHT = 2  # shards whose records are being read ahead of the writer
BATCHES_AHEAD = 4  # per shard: batches a reading task may produce before the driver takes them


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs the ray package, which is not installed", hint=INSTALL_HINT) from None
    return ray


def connect(address: str | None) -> str:
    """Join the Ray cluster at ``address`` (None: ``RAY_ADDRESS``, else ``auto``); returns the address used.

    ``local`` starts a private Ray instance on this machine for this command (its worker processes
    use the cores here). A cluster that cannot be reached is one clear message naming the address.
    """
    ray = _ray()
    if address in (None, "auto"):
        address = os.environ.get("RAY_ADDRESS") or "auto"
    if ray.is_initialized():
        if getattr(connect, "_address", None) == address:
            return address
        ray.shutdown()
    _check_reachable(address)
    # Ray's own notices (token auth, where its logs are) are not the user's business; failures arrive as exceptions
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    try:
        if address == "local":
            ray.init(include_dashboard=False, object_store_memory=_local_object_store_bytes(), **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise _unreachable(address, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    connect._address = address  # type: ignore[attr-defined]
    return address


def _local_object_store_bytes() -> int:
    return int(os.environ.get("VECTOROPS_RAY_OBJECT_STORE_BYTES", str(200_000_000)))


def _check_reachable(address: str) -> None:
    """A host:port that refuses connections fails here in seconds (Ray itself retries for a minute)."""
    if address in ("auto", "local") or address.startswith("ray://") and ":" not in address[6:]:
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"Ray address '{address}' is not host:port, ray://host:port, auto or local",
            hint="Set executor.address in the manifest (or RAY_ADDRESS) to the head node's address, e.g. 10.0.0.5:6379.",
        )
    try:
        socket.create_connection((host, int(port)), timeout=float(os.environ.get("VECTOROPS_RAY_CONNECT_TIMEOUT", "5"))).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc)) from None


def _unreachable(address: str, why: str) -> UsageError:
    if address == "auto":
        return UsageError(
            f"--executor ray: no running Ray cluster found (address auto: RAY_ADDRESS is unset and none was started on this machine): {why}",
            hint="Start one (`ray start --head`), or point RAY_ADDRESS / executor.address at the cluster's head (host:port), "
            "or use executor address 'local' to start Ray on this machine for the command.",
        )
    return UsageError(
        f"--executor ray: cannot reach the Ray cluster at {address}: {why}",
        hint="Check that the cluster is running and this machine can reach its head node at that address "
        "(`ray status --address " + address + "`), or fix RAY_ADDRESS / executor.address.",
    )


def _raise_cause(error: BaseException) -> None:
    """A task's own exception (a DatasetError reads the same as from a local worker), not Ray's wrapper."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        raise cause from None
    raise error


# -- the tasks (module-level functions, made remote when first used) ---------------------------------


def _use_cache(cache_dir: str) -> None:
    os.environ["VECTOROPS_CACHE_DIR"] = cache_dir  # the driver's cache folder, reached from every node


def _hash_task(cache_dir: str, src: Any, version: Any, shard: Any, signature_key: str, stash: Any, precision: str = "float32") -> int:
    _use_cache(cache_dir)
    shards.one_row_group_at_a_time()
    return shards.hash_shard(src, version, shard, signature_key, stash, precision)


def _bucket_of(ids: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    return (hash_strings(ids) % np.uint64(buckets)).astype(np.int64)


def _split(table: pa.Table, buckets: int) -> list[pa.Table]:
    """A hash table's rows in ``buckets`` parts by id hash (each part keeps the table's order)."""
    where = _bucket_of(table.column("id"), buckets)
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(buckets + 1))
    taken = table.take(pa.array(order))
    return [taken.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b])) for b in range(buckets)]


def _split_shard_task(cache_dir: str, shard_file: str, buckets: int) -> list[pa.Table] | pa.Table:
    """Map: one shard's cached table, read here from the shared cache, split into bucket parts."""
    _use_cache(cache_dir)
    from pathlib import Path

    table = shards.load_shard_index(Path(shard_file))
    if table is None:
        raise RuntimeError(f"the shard hash table {shard_file} is missing or torn on this node: is the cache folder shared by all nodes?")
    parts = _split(table, buckets)
    return parts if buckets > 1 else parts[0]  # Ray: num_returns=1 is one object, not a list of one


def _split_table_task(table: pa.Table, buckets: int) -> list[pa.Table] | pa.Table:
    parts = _split(table, buckets)
    return parts if buckets > 1 else parts[0]  # Ray: num_returns=1 is one object, not a list of one


def _index(parts: tuple[pa.Table, ...]) -> d.VersionIndex:
    table = pa.concat_tables(parts) if parts else d.INDEX_SCHEMA.empty_table()
    return d.VersionIndex(table.sort_by("id").combine_chunks())


def _has_duplicates(index: d.VersionIndex) -> bool:
    ids = index.table.column("id")
    return len(ids) > 1 and bool(pc.any(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py())


def _diff_bucket_task(
    n_desired: int, n_deployed: int, actual_ids: pa.Array | None, actual_hashes: pa.Table | None, prune: bool, *parts: pa.Table
) -> dict[str, Any]:
    """Reduce: ``compute_diff`` of one bucket; returns only the changes (ids) and a count."""
    desired = _index(parts[:n_desired])
    deployed = _index(parts[n_desired : n_desired + n_deployed]) if n_deployed >= 0 else None
    if _has_duplicates(desired) or (deployed is not None and _has_duplicates(deployed)):
        return {"duplicate": True}  # a large version's shards were never checked together: the driver names them
    hashes = d.VersionIndex(actual_hashes) if actual_hashes is not None else None
    out = d.compute_diff(desired, deployed, actual_ids, hashes, prune=prune)
    return {
        "add": out.add, "update_vector": out.update_vector, "update_metadata": out.update_metadata, "delete": out.delete,
        "kept_unexpected": out.kept_unexpected, "drift_missing": out.drift_missing, "drift_unexpected": out.drift_unexpected,
        "drift_modified": out.drift_modified,
    }


def _records_task(
    cache_dir: str, src: Any, version: Any, shard: Any, wanted: pa.Array, signature_key: str, baseline_digest: str | None, batch_size: int
) -> Iterator[Any]:
    """One shard's records to write: its stash first, then the shard (verified before its first record)."""
    _use_cache(cache_dir)
    from reconciler import dataset as ds
    from reconciler.engine.stash import read_stashed

    stashed: list[Any] = []
    if baseline_digest is not None:
        stashed, wanted = read_stashed(shards.shard_stash_path(shard, baseline_digest, signature_key), wanted, batch_size)
    if len(wanted):
        ds.verify_shard(src, version, shard)
    yield None  # verified: the driver starts handing records to the destination only after every shard says so
    for batch in stashed:  # (a plain loop: Ray drives this generator with send(), which `yield from` a list refuses)
        yield batch
    if len(wanted):
        for batch in ds.read_shard_records(src, version, shard, wanted):
            yield batch


_REMOTE: dict[str, Any] = {}


def _remote(name: str) -> Any:
    """The Ray task for a module function (one CPU each: a task decodes one row group at a time)."""
    if name not in _REMOTE:
        ray = _ray()
        fn = globals()[name]
        if name == "_records_task":
            _REMOTE[name] = ray.remote(num_cpus=1, num_returns="streaming", _generator_backpressure_num_objects=BATCHES_AHEAD)(fn)
        else:
            _REMOTE[name] = ray.remote(num_cpus=1, max_retries=0)(fn)
    return _REMOTE[name]


# -- the executor ---------------------------------------------------------------------------------------


class RayExecutor:
    name = "ray"

    def __init__(self, address: str) -> None:
        self.address = address

    def _cpus(self) -> int:
        return max(1, int(_ray().cluster_resources().get("CPU", 1)))

    def buckets(self) -> int:
        """How many buckets the diff is split into: ``VECTOROPS_RAY_DIFF_BUCKETS``, else two per CPU."""
        configured = os.environ.get("VECTOROPS_RAY_DIFF_BUCKETS")
        return max(1, int(configured)) if configured else 2 * self._cpus()

    def hash_shards(
        self, src: DatasetSource, version: DatasetVersion, todo: list[DatasetShard], signature_key: str, stash: shards.StashSpec | None,
        progress: Callable[[int], None], precision: str = "float32",
    ) -> int:
        ray = _ray()
        task = _remote("_hash_task")
        cache_dir = str(caches.cache_dir().resolve())
        refs = {task.remote(cache_dir, src, version, shard, signature_key, stash, precision): n for n, shard in enumerate(todo)}
        pending = list(refs)
        errors: dict[int, BaseException] = {}
        done = 0
        while pending and not errors:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                try:
                    ray.get(ref)
                except Exception as exc:  # a task's failure: raised below as the task raised it
                    errors[refs[ref]] = exc
                    continue
                done += 1
                progress(done)
        if errors:
            for ref in pending:
                ray.cancel(ref)
            _raise_cause(errors[min(errors)])
        return min(self._cpus(), len(todo))

    def diff(
        self, desired: d.VersionIndex, deployed: d.VersionIndex | None, actual_ids: pa.Array | ListedIds | None,
        actual_hashes: d.VersionIndex | None, *, prune: bool,
    ) -> d.Diff:
        # the buckets are split from the whole listing, on the driver
        listing_ids = whole(actual_ids)
        ray = _ray()
        k = self.buckets()
        desired_parts = self._split(desired, k)
        deployed_parts = self._split(deployed, k) if deployed is not None else []
        ids_parts: list[Any] = [None] * k
        if listing_ids is not None:  # the destination's listing is the driver's: split here, one object per bucket
            listing = listing_ids.cast(pa.string())
            where = _bucket_of(listing, k)
            ids_parts = [ray.put(listing.filter(pa.array(where == b))) for b in range(k)]
        hash_parts: list[Any] = [None] * k
        if actual_hashes is not None:
            hash_parts = [ray.put(part) for part in _split(actual_hashes.table, k)]
        task = _remote("_diff_bucket_task")
        n_deployed = len(deployed_parts) if deployed is not None else -1
        results = []
        for b in range(k):
            parts = [p[b] if k > 1 else p for p in desired_parts] + [p[b] if k > 1 else p for p in deployed_parts]
            results.append(task.remote(len(desired_parts), n_deployed, ids_parts[b], hash_parts[b], prune, *parts))
        try:
            buckets = ray.get(results)
        except Exception as exc:
            _raise_cause(exc)
        if any(b.get("duplicate") for b in buckets):  # the exact diff here raises the error naming both shards
            return d.compute_diff(desired, deployed, listing_ids, actual_hashes, prune=prune)
        return _merge(buckets, listing_ids, actual_hashes)

    def _split(self, index: d.VersionIndex, k: int) -> list[Any]:
        """Map tasks splitting a version's table: from the shared cache per shard when it came from
        shard tables, else from one copy of the table put into the object store."""
        cache_dir = str(caches.cache_dir().resolve())
        files = index.shard_files  # a sharded version's cached tables (in memory or left on disk: shards.ShardedIndex)
        if files:
            task = _remote("_split_shard_task").options(num_returns=k)
            return [task.remote(cache_dir, f, k) for f in files]
        task = _remote("_split_table_task").options(num_returns=k)
        return [task.remote(_ray().put(index.table), k)]

    def shard_records(
        self, src: DatasetSource, version: DatasetVersion, work: list[tuple[DatasetShard, pa.Array]], signature_key: str,
        baseline_digest: str | None, batch_size: int,
    ) -> Iterator[RecordBatch]:
        ray = _ray()
        task = _remote("_records_task")
        cache_dir = str(caches.cache_dir().resolve())
        streams = [task.remote(cache_dir, src, version, shard, wanted, signature_key, baseline_digest, batch_size) for shard, wanted in work]
        # every shard verified before the first record leaves: each stream's first item says so
        try:
            for stream in streams:
                ray.get(next(stream))
        except Exception as exc:
            for stream in streams:
                ray.cancel(stream)
            _raise_cause(exc)
        return _drain(ray, streams)


def _drain(ray: Any, streams: list[Any]) -> Iterator[RecordBatch]:
    """The records of each stream in shard order; a stream's reader is paused by Ray's back-pressure
    once it is ``BATCHES_AHEAD`` batches ahead, so memory is streams × a few batches."""
    try:
        for stream in streams:
            for ref in stream:
                try:
                    yield ray.get(ref)
                except Exception as exc:
                    _raise_cause(exc)
    finally:
        for stream in streams:
            ray.cancel(stream)


def _order_as(ids: pa.Array, order_of: pa.Array | None) -> pa.Array:
    """``ids`` in ``order_of``'s order (None: sorted), the order ``compute_diff`` returns them in."""
    if len(ids) == 0:
        return ids
    if order_of is None:
        return ids.take(pc.sort_indices(ids))
    at = pc.index_in(ids, value_set=order_of).to_numpy(zero_copy_only=False)
    return ids.take(pa.array(np.argsort(at, kind="stable")))


def _merge(buckets: list[dict[str, Any]], actual_ids: pa.Array | None, actual_hashes: d.VersionIndex | None) -> d.Diff:
    """The buckets' changes as one ``Diff``, each array in the order ``compute_diff`` gives it."""
    actual_order = actual_hashes.ids.combine_chunks() if actual_hashes is not None else actual_ids
    actual_order = actual_order.cast(pa.string()) if actual_order is not None else None

    def joined(key: str, order_of: pa.Array | None) -> pa.Array | None:
        parts = [b[key] for b in buckets]
        if parts and parts[0] is None:
            return None
        ids = pa.concat_arrays([p.cast(pa.string()) for p in parts]) if parts else pa.array([], pa.string())
        return _order_as(ids, order_of)

    def always(key: str, order_of: pa.Array | None) -> pa.Array:
        ids = joined(key, order_of)
        return ids if ids is not None else pa.array([], pa.string())

    sorted_ = None  # desired and deployed ids are sorted
    return d.Diff(
        add=always("add", sorted_),
        update_vector=always("update_vector", sorted_),
        update_metadata=always("update_metadata", sorted_),
        delete=always("delete", actual_order),
        kept_unexpected=sum(int(b["kept_unexpected"]) for b in buckets),
        drift_missing=joined("drift_missing", sorted_),
        drift_unexpected=joined("drift_unexpected", actual_order),
        drift_modified=joined("drift_modified", actual_order),
    )
