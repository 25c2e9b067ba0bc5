"""The Ray executor's diff is ``compute_diff`` split by id hash into K buckets and merged back: for
any versions and destination listing, the merged result must equal ``compute_diff``'s, array by
array and in the same order (the plan file stores these arrays). The bucket functions are the
tasks' own code, called here without Ray (the cluster runs them in tests/integration/test_ray_executor.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reconciler.engine import diff as d
from reconciler.engine.executors import ray as ray_executor


def _index(rng: np.random.Generator, ids: list[str]) -> d.VersionIndex:
    n = len(ids)
    table = pa.table({"id": pa.array(ids, pa.string()), "vh": rng.integers(0, 3, n, dtype=np.uint64),
                      "mh": rng.integers(0, 3, n, dtype=np.uint64)}, schema=d.INDEX_SCHEMA)
    return d.VersionIndex.from_table(table, what="test")


def _bucketed(desired: d.VersionIndex, deployed: d.VersionIndex | None, actual_ids: pa.Array | None,
              actual_hashes: d.VersionIndex | None, prune: bool, k: int) -> d.Diff:
    desired_parts = ray_executor._split(desired.table, k)
    deployed_parts = ray_executor._split(deployed.table, k) if deployed is not None else None
    ids_parts: list[pa.Array | None] = [None] * k
    if actual_ids is not None:
        where = ray_executor._bucket_of(actual_ids, k)
        ids_parts = [actual_ids.filter(pa.array(where == b)) for b in range(k)]
    hash_parts = ray_executor._split(actual_hashes.table, k) if actual_hashes is not None else [None] * k
    buckets = []
    for b in range(k):
        parts = [desired_parts[b]] + ([deployed_parts[b]] if deployed_parts is not None else [])
        buckets.append(ray_executor._diff_bucket_task(1, 1 if deployed_parts is not None else -1, ids_parts[b], hash_parts[b], prune, *parts))
    return ray_executor._merge(buckets, actual_ids, actual_hashes)


FIELDS = ("add", "update_vector", "update_metadata", "delete", "drift_missing", "drift_unexpected", "drift_modified")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", ["none", "ids", "full", "no-baseline"])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_bucketed_diff_is_compute_diff_in_the_same_order(seed: int, level: str, k: int) -> None:
    rng = np.random.default_rng(seed)
    universe = [f"doc-{i}" for i in rng.permutation(400)]
    desired = _index(rng, sorted(rng.choice(universe, 250, replace=False).tolist()))
    deployed = None if level == "no-baseline" else _index(rng, sorted(rng.choice(universe, 220, replace=False).tolist()))
    listing = rng.choice(universe, 230, replace=False).tolist()  # the destination's order, not sorted
    actual_ids = pa.array(listing, pa.string()) if level in ("ids", "no-baseline") else None
    actual_hashes = _index(rng, listing) if level == "full" else None
    for prune in (True, False):
        want = d.compute_diff(desired, deployed, actual_ids, actual_hashes, prune=prune)
        got = _bucketed(desired, deployed, actual_ids, actual_hashes, prune, k)
        for name in FIELDS:
            a, b = getattr(want, name), getattr(got, name)
            assert (a is None) == (b is None), name
            if a is not None:
                assert b.cast(pa.string()).equals(a.cast(pa.string())), (name, a.to_pylist()[:5], b.to_pylist()[:5])
        assert got.kept_unexpected == want.kept_unexpected
