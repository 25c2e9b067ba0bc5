"""The `sample` refresh (SPEC §10): a drift check whose cost does not grow with the index.

Instead of listing every id, it compares the destination's record count with the expected one and
fetches a uniform random sample of the expected ids (``--sample-size``, default 10,000), comparing
each by content hash. What it cannot see it bounds: with ``x`` drifted records among ``n``
sampled, the drifted share of the whole index is below the one-sided 95% Clopper-Pearson upper
bound (exact binomial; ``1 - 0.05**(1/n)`` ≈ 3/n, the "rule of three", when ``x = 0``). Sampling
without replacement from a finite index makes the binomial bound conservative; a sample that
covers the whole index is a census, and its bound is the observed share.

The sample is fetched by id through ``Destination.fetch``, so every destination supports it, in
a fixed number of requests whatever the index size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from reconciler.engine.diff import Diff, VersionIndex
from reconciler.engine.hashing import hash_batch
from reconciler.engine.values import Drift, RefreshLevel, SampleBound
from reconciler.errors import UsageError
from reconciler.providers.base import Destination

DEFAULT_SAMPLE_SIZE = 10_000
CONFIDENCE = 0.95
BOUND_NAME = "Clopper-Pearson one-sided 95% upper bound"
FETCH_CHUNK = 1_000  # ids per fetch call: memory stays ~1,000 vectors whatever the sample size

_sample_size = DEFAULT_SAMPLE_SIZE


def configure(size: int | None) -> None:
    """``--sample-size``: how many expected ids the `sample` refresh fetches."""
    if size is not None and size < 1:
        raise UsageError(f"--sample-size {size}: needs at least 1", hint="Leave it out for 10,000.")
    global _sample_size
    _sample_size = DEFAULT_SAMPLE_SIZE if size is None else size


def sample_size() -> int:
    return _sample_size


@dataclass
class SampleCheck:
    """What a sample of the expected ids found in the destination."""

    sampled: int  # how many expected ids were fetched
    population: int  # how many ids were expected
    missing: pa.Array  # sampled ids the destination lacks
    modified: pa.Array  # sampled ids it holds with other content

    @property
    def drifted(self) -> int:
        return len(self.missing) + len(self.modified)

    @property
    def upper_bound(self) -> float:
        """One-sided 95% upper bound on the drifted share of the expected records."""
        if self.sampled == 0:
            return 1.0 if self.population else 0.0
        if self.sampled >= self.population:  # a census: the share is known exactly
            return self.drifted / self.sampled
        return clopper_pearson_upper(self.drifted, self.sampled, CONFIDENCE)


def check_sample(dest: Destination, expected: VersionIndex, size: int | None = None, seed: int | None = None) -> SampleCheck:
    """Fetch a uniform random sample (without replacement) of the expected ids and compare hashes."""
    n = len(expected)
    k = min(size if size is not None else _sample_size, n)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=k, replace=False)) if k else np.empty(0, np.int64)
    table = expected.take(rows)
    ids = table.column("id").combine_chunks().cast(pa.string())
    want_vh = table.column("vh").to_numpy()
    want_mh = table.column("mh").to_numpy()
    asked = ids.to_pylist()
    position = {rid: at for at, rid in enumerate(asked)}
    seen = np.zeros(k, bool)
    changed = np.zeros(k, bool)
    # fetched FETCH_CHUNK at a time, in whatever order the destination finds them (``fetch_many``)
    for batch in dest.fetch_many(asked, FETCH_CHUNK):
        if not len(batch):
            continue
        vh, mh = hash_batch(batch)
        at = np.array([position.get(rid, -1) for rid in batch.ids.cast(pa.string()).to_pylist()], np.int64)
        ours = at >= 0  # a destination answering with an id not asked for is not read as drift here
        at, vh, mh = at[ours], vh[ours], mh[ours]
        seen[at] = True
        changed[at] = (vh != want_vh[at]) | (mh != want_mh[at])
    return SampleCheck(sampled=k, population=n, missing=ids.filter(pa.array(~seen)), modified=ids.filter(pa.array(changed)))


def clopper_pearson_upper(x: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The largest p with P(X <= x | n, p) >= 1 - confidence: the exact one-sided upper bound.

    For x = 0 it is ``1 - (1 - confidence) ** (1 / n)`` in closed form (≈ 3/n at 95%).
    """
    if x >= n:
        return 1.0
    alpha = 1.0 - confidence
    if x == 0:
        return 1.0 - alpha ** (1.0 / n)
    lo, hi = x / n, 1.0
    for _ in range(100):  # bisection on the binomial CDF, which falls as p rises
        mid = (lo + hi) / 2
        if _binomial_cdf(x, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _binomial_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p), summed in log space (n up to millions without overflow)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if x < n else 1.0
    k = np.arange(x + 1, dtype=np.float64)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) for i in k])
        - np.array([math.lgamma(n - i + 1) for i in k])
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def repair(diff: Diff, check: SampleCheck, desired: VersionIndex) -> None:
    """Fold what the sample found into the plan's changes: apply rewrites what it saw drifted.

    A sampled id found missing is written again (an add, not an update; no longer a delete); one
    found modified is rewritten whole (a vector update) if the desired version keeps it.
    """
    import pyarrow.compute as pc

    gone = _held_by(desired, check.missing)
    changed = _held_by(desired, check.modified)

    def without(ids: pa.Array, drop: pa.Array) -> pa.Array:
        return ids.filter(pc.invert(pc.is_in(ids, value_set=drop))) if len(drop) and len(ids) else ids

    diff.update_vector = without(without(diff.update_vector, gone), changed)
    diff.update_metadata = without(without(diff.update_metadata, gone), changed)
    diff.delete = without(diff.delete, check.missing)
    diff.add = pa.concat_arrays([diff.add.cast(pa.string()), gone])
    diff.update_vector = pa.concat_arrays([diff.update_vector.cast(pa.string()), changed])


def _held_by(index: VersionIndex, ids: pa.Array) -> pa.Array:
    """Those of ``ids`` (what a sample saw drifted: a few) that ``index`` holds, in their order.

    Looked for a part of the version at a time: collecting a large version's ids to ask was
    ~0.3 GB of a 10M-record `sample` plan, whose point is costing the same at any size.
    """
    import pyarrow.compute as pc

    if len(ids) == 0:
        return ids
    ids = ids.cast(pa.string())
    held = [column.filter(pc.is_in(column, value_set=ids)) for column in
            (chunk.column("id").combine_chunks().cast(pa.string()) for chunk in index.chunks(["id"]))]
    return ids.filter(pc.is_in(ids, value_set=pa.concat_arrays(held))) if held else ids.slice(0, 0)


def drift_summary(drift: Drift, check: SampleCheck | None) -> Drift:
    """The count check's lower bounds, raised by what the sample saw, with the sample and its bound.

    ``unexpected`` stays the count's lower bound: a sample of expected ids cannot see ids nobody
    expected. ``modified`` is what the sample saw (a lower bound too, never an estimate).
    """
    if check is None:  # nothing deployed, or no destination yet: only counts are known
        return replace(drift, level=RefreshLevel.SAMPLE, sample=SampleBound(0, 0, None, BOUND_NAME))
    return replace(
        drift,
        level=RefreshLevel.SAMPLE,
        missing=max(drift.missing or 0, len(check.missing)),
        modified=len(check.modified),
        sample=SampleBound(check.sampled, check.drifted, round(check.upper_bound, 8), BOUND_NAME),
    )


def list_requests_estimate(count: int, page_size: int | None) -> int | None:
    """How many list requests an `ids` refresh of ``count`` records needs, where listing pages."""
    if not page_size:
        return None
    return -(-count // page_size)
