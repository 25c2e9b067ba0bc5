"""The key lookup for many probes in a large key set (engine/partitioned.KeyIndex) answers exactly what a set would."""

from __future__ import annotations

import numpy as np
import pytest

from reconciler.engine.partitioned import KeyIndex

TOP = np.uint64(2**64 - 1)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 1000, 100_003])
def test_contains_is_set_membership_for_any_size(n: int) -> None:
    rng = np.random.default_rng(n)
    keys = np.unique(rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True))
    index = KeyIndex.of(keys)
    absent = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)
    present = rng.choice(keys, 5000) if len(keys) else np.empty(0, np.uint64)
    probes = rng.permutation(np.concatenate([absent, present, np.array([0, TOP], np.uint64)]))  # any order, repeats
    assert np.array_equal(index.contains(probes), np.isin(probes, keys))
    assert index.contains(present).all()


def test_the_smallest_and_largest_keys_and_crowded_prefixes_are_found() -> None:
    # keys bunched under a few prefixes (not the uniform hashes the index is sized for): still exact
    base = np.array([0, 1, 2, 2**63, 2**63 + 1, 2**64 - 2, 2**64 - 1], np.uint64)
    crowd = np.arange(10_000, dtype=np.uint64) + np.uint64(2**40)
    keys = np.unique(np.concatenate([base, crowd]))
    index = KeyIndex.of(keys)
    probes = np.concatenate([keys, keys + np.uint64(1), keys - np.uint64(1)])  # wraps at both ends: still uint64
    assert np.array_equal(index.contains(probes), np.isin(probes, keys))


def test_an_empty_index_holds_nothing() -> None:
    index = KeyIndex.of(np.empty(0, np.uint64))
    assert not index.contains(np.array([0, 5, TOP], np.uint64)).any()
    assert index.contains(np.empty(0, np.uint64)).shape == (0,)


def test_probes_looked_up_in_chunks_give_the_same_answer() -> None:
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(0, 2**64 - 1, 3000, dtype=np.uint64, endpoint=True))
    probes = np.concatenate([rng.choice(keys, 2000), rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64, endpoint=True)])
    index = KeyIndex.of(keys)
    assert np.array_equal(index.contains(probes, chunk=7), np.isin(probes, keys))


@pytest.mark.parametrize("n", [0, 1, 1000, 100_003])
@pytest.mark.parametrize("chunk", [65_536, 7])
def test_lookup_gives_where_each_found_probe_is(n: int, chunk: int) -> None:
    """``lookup``'s positions are the keys' own positions where found (what ``_ids_of`` labels by)."""
    rng = np.random.default_rng(n + chunk)
    keys = np.unique(rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True))
    present = rng.choice(keys, 3000) if len(keys) else np.empty(0, np.uint64)
    probes = rng.permutation(np.concatenate([present, rng.integers(0, 2**64 - 1, 3000, dtype=np.uint64, endpoint=True)]))
    at, hit = KeyIndex.of(keys).lookup(probes, chunk=chunk)
    assert np.array_equal(hit, np.isin(probes, keys)) and len(at) == len(probes)
    assert np.array_equal(keys[at[hit]], probes[hit])
