"""Splitting an id listing by prefix, so a destination that pages through ids can page in parallel.

Pinecone lists ids 100 to a page and each page needs the previous one's token: a million-record
namespace is 10,000 round trips in a row, minutes at real network latency. Listings under
disjoint prefixes are independent, so the ids we expect (the deployed version's) choose prefixes
that cut them into even parts, and the parts are listed side by side. Whether the parts covered
everything is for the caller to check (against the destination's own count): ids nobody expected
may sit under no chosen prefix.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

#: more prefixes than this and the split costs more requests (one per prefix at least) than it saves
MAX_PREFIXES = 1024


def split_by_prefix(ids: Sequence[str], parts: int) -> list[str] | None:
    """Prefixes, none a prefix of another, that together cover every id in ``ids`` (sorted, distinct,
    ASCII), each covering about ``len(ids) / parts`` of them; None when no useful split exists (too
    few ids, or they cannot be cut into few enough prefixes).

    A prefix that is itself one of the ids is never split further: listing its children would miss it.
    """
    if parts < 2 or len(ids) < 2 * parts:
        return None
    target = max(1, len(ids) // parts)
    out: list[str] = []
    stack: list[tuple[str, int, int]] = [("", 0, len(ids))]
    while stack:
        prefix, lo, hi = stack.pop()
        depth = len(prefix)
        if hi - lo <= target or len(ids[lo]) == depth:  # sorted: an id equal to the prefix comes first
            out.append(prefix)
            if len(out) > MAX_PREFIXES:
                return None
            continue
        children = []
        i = lo
        while i < hi:
            child = ids[i][: depth + 1]
            j = bisect.bisect_left(ids, child[:-1] + chr(ord(child[-1]) + 1), i, hi)
            children.append((child, i, j))
            i = j
        stack.extend(reversed(children))
    return out if len(out) > 1 else None
