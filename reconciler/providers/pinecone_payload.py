"""Pinecone request bodies: exact values, compact text, packed to the service's caps.

Pure functions (no SDK calls), so the request arithmetic can be read and tested on its own:
which items go in which upsert, and how many bytes each one costs once the SDK encodes it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from reconciler.records import RecordBatch

MAX_VECTORS_PER_UPSERT = 1000
# Body bytes per upsert request. Pinecone documents "2MB" per upsert (reference §3.1) and answers 413
# above it; its own batch-size table (768 dims + 500 B metadata -> 559 records) is computed with
# 2,000,000 bytes, so that is the reading kept here, 97 KB under 2 MiB, which also leaves the
# headers room should the cap count them. Body sizes are computed exactly (``vector_items``).
MAX_UPSERT_BYTES = 2_000_000
MAX_IDS_PER_REQUEST = 1000
MAX_ID_BYTES_PER_FETCH = 32_000  # ids travel in the URL of a fetch; keep it well under 64 KB


# Pinecone stores float32. Any decimal that rounds to the same float32 is the same stored value,
# so each value is sent as the shortest decimal that reads back as exactly that float32 (0.1 for
# float32(0.1), not the double repr 0.10000000149011612): about 12 bytes a value instead of 21.
# The decimal travels as the float64 nearest to it, whose shortest repr (what orjson prints) is
# that decimal again. It is only used when that float64 lies strictly between the float32's
# rounding midpoints, so both a float64-then-float32 parse (what the SDK and most JSON stacks
# do) and a direct decimal-to-float32 parse land on the original bits; anything else is sent as
# the float32 value itself, which is exact too.

_P10 = np.array([float(f"1e{i}") for i in range(23)])  # 10**0 .. 10**22: every one exact in float64
_P10_OFFSET = 64
_P10_ANY = np.array([float(f"1e{i}") for i in range(-_P10_OFFSET, _P10_OFFSET)])  # nearest doubles
# per biased binary exponent: floor(log10(2**(b - 127))), and the next power of ten above it;
# a value with that exponent has decimal exponent e or e + 1 (subnormals, b = 0, are out of range)
_E_OF_EXP2 = np.floor((np.arange(256) - 127) * math.log10(2.0)).astype(np.int32)
_NEXT_P10_OF_EXP2 = _P10_ANY[np.clip(_E_OF_EXP2 + 1 + _P10_OFFSET, 0, len(_P10_ANY) - 1)]
_CHUNK_VALUES = 1 << 15  # values per vectorised pass: temporaries stay in cache


def compact_values(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each float32 as the float64 of its shortest round-tripping decimal, and each row's JSON size.

    Returns ``(values, row_bytes)``: ``values`` has the shape of ``vectors`` (float64, for
    ``tolist``) with ``np.float32(values) == vectors`` bit for bit; ``row_bytes[i]`` is the exact
    length of row i as the SDK's JSON encoder writes it, values joined by commas, brackets excluded.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    rows, dim = x.shape
    flat = x.reshape(-1)
    out = np.empty(flat.shape, np.float64)
    lengths = np.empty(flat.shape, np.int32)
    # NaN passes through untouched (plan refuses it anyway); the float32 after the largest is inf
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, len(flat), _CHUNK_VALUES):
            stop = start + _CHUNK_VALUES
            _compact_chunk(flat[start:stop], out[start:stop], lengths[start:stop])
    row_bytes = lengths.reshape(rows, dim).sum(axis=1, dtype=np.int64) + max(dim - 1, 0)
    return out.reshape(rows, dim), row_bytes


def _compact_chunk(x: np.ndarray, out: np.ndarray, lengths: np.ndarray) -> None:
    bits = x.view(np.uint32)
    mag = bits & np.uint32(0x7FFFFFFF)
    negative = (bits >> np.uint32(31)).astype(np.int32)
    finite = mag < np.uint32(0x7F800000)
    if not finite.all():
        negative[~finite] = 0  # NaN and infinities print as null, sign or not
    a = mag.view(np.float32).astype(np.float64)
    # decimal exponent e (10**e <= a < 10**(e+1)): from the binary exponent, then one comparison
    biased = mag >> np.uint32(23)
    e = np.take(_E_OF_EXP2, biased)
    e += a >= np.take(_NEXT_P10_OF_EXP2, biased)
    # the fast path: normal, non-zero, 1e-14 <= a < 1e9, so 9 significant digits scale by 10**0..22
    fast = (e >= -14) & (e <= 8) & (mag != 0)
    if fast.all():
        out[:], ok, lengths[:] = _shortest(mag, a, e)
        slow = np.flatnonzero(~ok)
    else:
        idx = np.flatnonzero(fast)
        out[idx], ok, lengths[idx] = _shortest(mag[idx], a[idx], e[idx])
        zero = mag == 0
        out[zero] = 0.0
        lengths[zero] = 3  # "0.0"
        slow = np.union1d(idx[~ok], np.flatnonzero(~fast & ~zero))
    for i in slow:  # zero to a handful a batch: subnormal, huge, not finite, or a tie the check refused
        out[i], lengths[i] = _shortest_one(float(a[i]))
    np.copysign(out, x, out=out)  # the sign, -0.0 included, comes back here
    lengths += negative


def _shortest(mag: np.ndarray, a: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fast path on magnitudes: (float64 values, which are valid, their JSON lengths)."""
    # the float32's rounding interval (lo, hi), exact in float64: halfway to each neighbour
    lo = (mag - np.uint32(1)).view(np.float32).astype(np.float64)
    lo += a
    lo *= 0.5
    hi = (mag + np.uint32(1)).view(np.float32).astype(np.float64)
    hi += a
    hi *= 0.5
    # scaled so that a has 9 digits before the point: a * 10**p9 in [1e8, 1e9)
    p9 = 8 - e
    scale = np.take(_P10, p9)
    lo_s, hi_s, a_s = lo * scale, hi * scale, a * scale
    # the shortest decimal inside (lo, hi) is a multiple of 10**j (in these units) for the largest
    # such j; the interval is 6..120 units wide, so j starts at 0..2 and rarely climbs far
    width = hi_s - lo_s
    j = (width >= 10).astype(np.int32) + (width >= 100)
    unit = np.take(_P10, j + 1)
    climbed = (np.ceil(hi_s / unit) - 1) * unit > lo_s
    j += climbed
    step = np.flatnonzero(climbed & (j < 8))
    while len(step):
        unit_s = np.take(_P10, j[step] + 1)
        inside = (np.ceil(hi_s[step] / unit_s) - 1) * unit_s > lo_s[step]
        step = step[inside]
        j[step] += 1
        step = step[j[step] < 8]
    unit = np.take(_P10, j)
    m = np.rint(a_s / unit)  # the nearest such multiple, moved inside the interval if needed
    edge = m * unit
    m += edge <= lo_s
    m -= edge >= hi_s
    edge = m * unit
    # the value m * 10**(j - p9), correctly rounded from exact integers and powers of ten
    shift = p9 - j
    y = m / np.take(_P10, np.maximum(shift, 0))
    up = np.flatnonzero(shift < 0)
    if len(up):
        y[up] = m[up] * _P10[-shift[up]]
    ok = (y > lo) & (y < hi)
    # its JSON text: digits D (trailing zeros dropped) and decimal exponent E of the leading digit;
    # m * 10**j is within a unit of [1e8, 1e9), so m has 9 - j digits give or take one
    digits = (9 - j) + (edge >= 1e9) - (edge < 1e8)
    exponent = digits - 1 - shift
    zeros = np.flatnonzero(np.rint(m * 0.1) * 10 == m)  # m is a multiple of 10: rare, but exact
    while len(zeros):
        digits[zeros] -= 1
        m_z = m[zeros] / 10
        m[zeros] = m_z
        zeros = zeros[(np.rint(m_z * 0.1) * 10 == m_z) & (m_z > 0)]
    return y, ok, _json_float_length(digits, exponent)


def _json_float_length(digits: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """Characters orjson (the 10.x SDK's encoder) writes for a positive float with these digits.

    Positional for 1e-5 <= v < 1e16 ("0.00001", "123.0", "1.5"), else scientific with an
    unpadded exponent ("1e-7", "1.5e+16").
    """
    d, x = digits, exponent
    positional = np.where(x >= 0, np.where(d <= x + 1, x + 3, d + 1), d - x + 1)
    scientific = d + (d > 1) + 3 + (np.abs(x) >= 10) + (np.abs(x) >= 100)
    return np.where((x >= -5) & (x < 16), positional, scientific)


def _shortest_one(a: float) -> tuple[float, int]:
    """The slow path for one magnitude (subnormal, tiny, huge, not finite): value and JSON length.

    The shortest float32 decimal is not always the shortest text here ("1e+15" prints as
    1000000000000000.0, a digit longer than 999999986991104.0), so the float32 value itself is
    kept when it prints no longer.
    """
    best = (len(_dumps(a)), a)
    if math.isfinite(a):
        f = np.float32(a)
        y = float(np.format_float_scientific(f, unique=True, trim="-"))
        with np.errstate(over="ignore"):  # the float32 after the largest one is inf
            below, above = float(np.nextafter(f, np.float32(0))), float(np.nextafter(f, np.float32(np.inf)))
        lo = (a + below) / 2
        hi = (a + above) / 2 if math.isfinite(above) else a + (a - below) / 2  # past it: overflow
        if lo < y < hi:
            best = min(best, (len(_dumps(y)), y))
    return best[1], best[0]


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@functools.cache
def _sdk_encoder() -> tuple[Callable[[Any], bytes], bool]:
    """How the SDK encodes a request body, and whether our sizes are exact for it.

    10.x posts ``orjson.dumps(body)``: compact, UTF-8, floats as their shortest repr. Older SDKs
    go through ``json.dumps`` with its default ``", "`` separators and ASCII escapes; for them
    sizes are bounded from above instead (see ``_legacy_margin``).
    """
    try:
        from pinecone._internal.http_client import _encode_json

        return _encode_json, True
    except ImportError:
        return _json_dumps, False


def _dumps(obj: Any) -> bytes:
    """``obj`` as the SDK encodes it (the SDK is imported on first use: a manifest naming no Pinecone
    destination never loads it, ~80 ms of every command)."""
    return _sdk_encoder()[0](obj)


def _exact_sizes() -> bool:
    return _sdk_encoder()[1]


def _legacy_margin(values: int, metadata_bytes: int) -> int:
    # json.dumps: a space after every comma and colon, a 2-digit exponent ("1e-07"), \uXXXX
    # escapes for non-ASCII text (at most 3x its UTF-8 size)
    return 2 * values + 3 * metadata_bytes + 64


def vector_items(batch: RecordBatch) -> tuple[list[dict[str, Any]], list[int]]:
    """Upsert items for the batch, and each item's exact size in the request body."""
    values, value_bytes = compact_values(batch.vectors)
    ids = batch.id_list
    rows = batch.metadata_rows()
    out: list[dict[str, Any]] = []
    sizes: list[int] = []
    dim = values.shape[1]
    for vid, vals, md, nbytes in zip(ids, values.tolist(), rows, value_bytes.tolist(), strict=False):
        item: dict[str, Any] = {"id": vid, "values": vals}
        shell: dict[str, Any] = {"id": vid, "values": []}
        if md:
            item["metadata"] = shell["metadata"] = md
        size = len(_safe_dumps(shell)) + nbytes
        if not _exact_sizes():
            size += _legacy_margin(dim, size - nbytes)
        out.append(item)
        sizes.append(size)
    return out, sizes


def _safe_dumps(obj: Any) -> bytes:
    try:
        return _dumps(obj)
    except (TypeError, ValueError):  # the SDK refuses it too; size it anyway, the request reports why
        return _json_dumps(obj)


def item_sizes(items: list[dict[str, Any]]) -> list[int]:
    """Exact encoded sizes of arbitrary upsert items (vectorops' own documents)."""
    sizes = [len(_safe_dumps(item)) for item in items]
    if not _exact_sizes():
        sizes = [s + _legacy_margin(len(item.get("values") or ()), s) for s, item in zip(sizes, items, strict=False)]
    return sizes


def envelope_bytes(namespace: str) -> int:
    """``{"vectors":[`` … ``]}`` plus ``,"namespace":"…"`` (the SDK leaves out the default one)."""
    size = len('{"vectors":[]}')
    if namespace or not _exact_sizes():
        size += len(',"namespace":') + len(_safe_dumps(namespace))
    return size


def upsert_chunks(items: list[dict[str, Any]], sizes: list[int], namespace: str) -> Iterator[list[dict[str, Any]]]:
    """Cut items, in order, into requests of at most 1000 vectors and ``MAX_UPSERT_BYTES`` body bytes.

    Greedy: a request is cut only when the next item would not fit, so every request but the
    last is full to within one item.
    """
    cap = MAX_UPSERT_BYTES
    base = envelope_bytes(namespace)
    chunk: list[dict[str, Any]] = []
    size = base
    for item, s in zip(items, sizes, strict=False):
        if chunk and (len(chunk) >= MAX_VECTORS_PER_UPSERT or size + 1 + s > cap):
            yield chunk
            chunk, size = [], base
        size += s + (1 if chunk else 0)  # items are joined by commas
        chunk.append(item)
    if chunk:
        yield chunk


def id_chunks(ids: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for vid in ids:
        s = len(vid) * 3 + 5  # worst-case URL encoding plus "&ids="
        if chunk and (len(chunk) >= MAX_IDS_PER_REQUEST or size + s > MAX_ID_BYTES_PER_FETCH):
            yield chunk
            chunk, size = [], 0
        chunk.append(vid)
        size += s
    if chunk:
        yield chunk
