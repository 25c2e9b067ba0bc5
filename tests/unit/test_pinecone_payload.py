"""Pinecone upsert bodies: exact float32 values in the shortest text, sized exactly, packed to the cap.

The values are checked bit for bit after both ways a server may read a decimal into float32:
through float64 (Python's json, most JSON stacks) and directly (an exact, correctly rounded
parse, done here with fractions). Sizes are checked against the bytes the installed SDK's own
encoder produces for the body it would build.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

pytest.importorskip("pinecone")

from pinecone._internal.data_plane_helpers import _vector_to_dict  # noqa: E402
from pinecone._internal.http_client import _encode_json  # noqa: E402
from pinecone._internal.vector_factory import VectorFactory  # noqa: E402

from reconciler.providers import pinecone as pc  # noqa: E402
from reconciler.providers import pinecone_payload as payload  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
# every float32 bit pattern that is finite: subnormals, extremes, powers of two, -0.0
bits32 = st.integers(0, 2**32 - 1).filter(lambda b: (b >> 23) & 0xFF != 0xFF)


def _from_bits(bits: list[int]) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def _text(value: float) -> bytes:
    return _encode_json(value)


def _sdk_body(items: list[dict[str, Any]], namespace: str) -> bytes:
    """The body ``Index.upsert(vectors=items, namespace=...)`` posts (10.x, one request)."""
    body: dict[str, Any] = {"vectors": [_vector_to_dict(VectorFactory.build(v)) for v in items]}
    if namespace:
        body["namespace"] = namespace
    return _encode_json(body)


@np.errstate(over="ignore")  # the float32 after the largest one is inf
def _direct_float32(text: bytes) -> np.float32 | None:
    """The float32 a correctly rounded decimal-to-float32 parse gives, or None on a tie or overflow."""
    m = abs(Fraction(text.decode()))
    negative = text.startswith(b"-")
    if m == 0:
        return np.float32(-0.0 if negative else 0.0)
    down, up = np.float32(0), np.float32(np.inf)
    f = np.float32(float(m))  # a neighbour of the answer at worst; the exact comparison decides
    for cand in (np.nextafter(f, down), f, np.nextafter(f, up)):
        if not np.isfinite(cand) or cand == 0:
            continue
        c, prev, nxt = Fraction(float(cand)), Fraction(float(np.nextafter(cand, down))), np.nextafter(cand, up)
        lo = (c + prev) / 2
        hi = (c + Fraction(float(nxt))) / 2 if np.isfinite(nxt) else c + (c - prev) / 2
        if lo < m < hi:
            return np.float32(-cand if negative else cand)
    return None


def _check_values(x: np.ndarray) -> None:
    values, row_bytes = payload.compact_values(x.reshape(1, -1))
    assert values.dtype == np.float64
    # float32(sent) == original, bit for bit (-0.0 stays -0.0)
    assert values.astype(np.float32).view(np.uint32).tobytes() == x.view(np.uint32).tobytes()
    texts = [_text(v) for v in values[0].tolist()]
    for original, sent, text in zip(x.tolist(), values[0].tolist(), texts, strict=False):
        # never longer than what the double repr of the float32 value would send
        assert len(text) <= len(_text(original)), (original, text)
        # a server that parses the decimal straight to float32 stores the same bits
        direct = _direct_float32(text)
        assert direct is not None and np.float32(direct).view(np.uint32) == np.float32(original).view(np.uint32), (
            original, text,
        )
        assert float(text) == sent
    # the size is the exact length the SDK's encoder writes
    assert int(row_bytes[0]) == len(b",".join(texts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(np.float32, st.integers(1, 64), elements=finite32))
def test_values_round_trip_exactly_and_are_never_longer(x: np.ndarray) -> None:
    _check_values(x)


@settings(max_examples=300, deadline=None)
@given(st.lists(bits32, min_size=1, max_size=64))
def test_any_finite_bit_pattern_round_trips(bits: list[int]) -> None:
    _check_values(_from_bits(bits))


def test_edge_values() -> None:
    f32 = np.finfo(np.float32)
    edges = [
        0.0, -0.0, 0.1, -0.1, 1.0, 1e-5, 1e-6, 1e-7, 9.999999e-6, 1e16, 1e15, 123456789.0, 1e9, 999999999.0,
        float(f32.max), -float(f32.max), float(f32.tiny), float(f32.smallest_subnormal), 1e-14, 1e-15, 3e38,
        2.0**-10, 2.0**30, 2.0**24 + 2, 16777216.0, 0.3, 1 / 3, math.pi, 1e-38, 5e-45,
    ]
    x = np.asarray(edges, dtype=np.float32)
    with np.errstate(over="ignore"):
        x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])
    _check_values(x[np.isfinite(x)])
    values, _ = payload.compact_values(np.asarray([[0.1, -0.0, 1e-5, 1e16]], np.float32))
    assert [_text(v) for v in values[0].tolist()] == [b"0.1", b"-0.0", b"0.00001", b"1e+16"]


def test_random_embeddings_half_the_bytes() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((200, 768)) / np.sqrt(768)).astype(np.float32)
    values, row_bytes = payload.compact_values(x)
    assert values.astype(np.float32).tobytes() == x.tobytes()
    exact = [len(_encode_json(row)) - 2 for row in values.tolist()]
    assert row_bytes.tolist() == exact
    double = sum(len(_encode_json(row)) - 2 for row in x.astype(np.float64).tolist())
    assert sum(exact) < 0.62 * double  # ~12.4 bytes a value instead of ~21


def test_non_finite_values_are_sized_as_sent() -> None:
    x = np.asarray([[np.nan, -np.inf, np.inf, 1.5]], np.float32)  # plan refuses these; sizes stay exact
    values, row_bytes = payload.compact_values(x)
    assert int(row_bytes[0]) == len(_encode_json(values[0].tolist())) - 2


# -- whole bodies ----------------------------------------------------------------------------

metadata_values = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.text(max_size=8), max_size=3),
)
metadata = st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith("$")), metadata_values, max_size=4)
ascii_ids = st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 24),
    st.integers(1, 40),
    st.data(),
    st.sampled_from(["", "tenant-a", 'quo"te\\ns', "__vectorops__"]),
)
def test_body_size_is_exact(n: int, dim: int, data: st.DataObject, namespace: str) -> None:
    ids = data.draw(st.lists(ascii_ids, min_size=n, max_size=n, unique=True))
    x = data.draw(hnp.arrays(np.float32, (n, dim), elements=finite32))
    rows = data.draw(st.lists(metadata, min_size=n, max_size=n))
    batch = RecordBatch(ids=pa.array(ids, pa.string()), vectors=x, metadata=_table(rows, n))
    items, sizes = payload.vector_items(batch)
    for chunk in payload.upsert_chunks(items, sizes, namespace):
        start = items.index(chunk[0])
        predicted = payload.envelope_bytes(namespace) + sum(sizes[start : start + len(chunk)]) + len(chunk) - 1
        assert predicted == len(_sdk_body(chunk, namespace))


def _table(rows: list[dict[str, Any]], n: int) -> pa.Table:
    from reconciler.records import _empty_meta

    keys = sorted({k for r in rows for k in r})
    if not keys:
        return _empty_meta(n)
    columns = {}
    for k in keys:
        column = [r.get(k) for r in rows]
        try:
            columns[k] = pa.array(column)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types: keep them as text
            columns[k] = pa.array([None if v is None else str(v) for v in column])
    return pa.table(columns)


def test_document_items_are_sized_exactly() -> None:
    unit = [1.0] + [0.0] * 767
    items = [
        {"id": "__default__/state#0000", "values": unit,
         "metadata": {"k": "state", "i": 0, "n": 1, "g": "ab" * 16, "d": '{"a":"\\u00e9\\"x"}' * 500}},
        {"id": "__default__/lock#0000", "values": unit, "metadata": {"k": "lock", "i": 0, "n": 1, "g": "c", "d": "{}"}},
    ]
    sizes = payload.item_sizes(items)
    assert payload.envelope_bytes(pc.DOCS_NAMESPACE) + sum(sizes) + 1 == len(_sdk_body(items, pc.DOCS_NAMESPACE))


# -- packing ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 400_000), min_size=1, max_size=3000), st.sampled_from(["", "ns"]))
def test_requests_never_exceed_the_caps_and_are_full(sizes: list[int], namespace: str) -> None:
    items = [{"id": str(i)} for i in range(len(sizes))]
    size_of = dict(zip((id(it) for it in items), sizes, strict=False))
    chunks = list(payload.upsert_chunks(items, sizes, namespace))
    assert [it for c in chunks for it in c] == items  # order kept, nothing lost or repeated
    base = payload.envelope_bytes(namespace)
    for k, chunk in enumerate(chunks):
        body = base + sum(size_of[id(it)] for it in chunk) + len(chunk) - 1
        assert len(chunk) <= payload.MAX_VECTORS_PER_UPSERT
        assert body <= payload.MAX_UPSERT_BYTES
        if k + 1 < len(chunks):  # cut only when the next item would not fit
            nxt = size_of[id(chunks[k + 1][0])]
            assert len(chunk) == payload.MAX_VECTORS_PER_UPSERT or body + 1 + nxt > payload.MAX_UPSERT_BYTES


def test_768_dim_embeddings_fill_requests_to_the_cap() -> None:
    rng = np.random.default_rng(1)
    n = 1000
    x = (rng.standard_normal((n, 768)) / np.sqrt(768)).astype(np.float32)
    md = [{"source": "wiki", "lang": "en", "title": f"title {i}"} for i in range(n)]
    batch = RecordBatch.from_rows([f"doc-{i:09d}" for i in range(n)], x, md, 768)
    items, sizes = payload.vector_items(batch)
    chunks = list(payload.upsert_chunks(items, sizes, ""))
    bodies = [len(_sdk_body(c, "")) for c in chunks]
    assert max(bodies) <= payload.MAX_UPSERT_BYTES
    assert len(chunks) == math.ceil(sum(bodies) / payload.MAX_UPSERT_BYTES)  # 5 requests, not 10
    assert all(b > payload.MAX_UPSERT_BYTES - 12_000 for b in bodies[:-1])  # each within one record of the cap
