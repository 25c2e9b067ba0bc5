"""Splitting an id listing by prefix: every id under exactly one prefix, parts of even size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.providers.listing import MAX_PREFIXES, split_by_prefix


def _owners(ids: list[str], prefixes: list[str]) -> dict[str, list[str]]:
    return {v: [p for p in prefixes if v.startswith(p)] for v in ids}


def test_zero_padded_ids_split_into_even_parts() -> None:
    ids = [f"doc-{i:09d}" for i in range(100_000)]
    prefixes = split_by_prefix(ids, 32)
    assert prefixes is not None
    sizes = [sum(1 for v in ids if v.startswith(p)) for p in prefixes]
    assert sum(sizes) == len(ids)
    assert len(prefixes) <= 4 * 32
    assert max(sizes) <= len(ids) // 32  # no part larger than asked


def test_an_id_that_is_a_prefix_of_others_is_not_lost() -> None:
    ids = sorted(["a"] + [f"a{i:04d}" for i in range(500)] + [f"b{i:04d}" for i in range(500)])
    prefixes = split_by_prefix(ids, 8)
    assert prefixes is not None
    assert all(len(owners) == 1 for owners in _owners(ids, prefixes).values())
    assert "a" in prefixes  # "a" is itself an id: listing "a0".."a4" instead would miss it


def test_too_few_ids_or_parts_are_not_split() -> None:
    assert split_by_prefix([f"x{i}" for i in range(10)], 8) is None
    assert split_by_prefix([f"x{i:05d}" for i in range(1000)], 1) is None


def test_ids_that_cannot_be_cut_into_few_prefixes_are_not_split() -> None:
    # every id differs only in its last of 40 characters from a neighbour: deep, wide trees
    ids = sorted(f"{i:040b}" for i in range(20_000))
    prefixes = split_by_prefix(ids, 64)
    assert prefixes is None or len(prefixes) <= MAX_PREFIXES


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="ab-01/\x7f", min_size=1, max_size=8), min_size=0, max_size=400, unique=True),
    st.integers(min_value=2, max_value=40),
)
def test_prefixes_cover_every_id_exactly_once(raw: list[str], parts: int) -> None:
    ids = sorted(raw)
    prefixes = split_by_prefix(ids, parts)
    if prefixes is None:
        return
    assert len(prefixes) > 1
    assert all(not b.startswith(a) for a in prefixes for b in prefixes if a != b), "prefix-free"
    assert all(len(owners) == 1 for owners in _owners(ids, prefixes).values())
