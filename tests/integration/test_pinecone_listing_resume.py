"""A Pinecone id listing cut off halfway resumes from its last page token (issue 19 item 4).

The real SDK against the local server: list requests start failing after ten pages and keep
failing past the retry budget (an outage), so the listing fails with a clear error; once the
server answers again, the next listing continues where the first stopped: it asks only for the
pages it had not listed, and the answer is every id exactly once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("pinecone")

from reconciler.errors import DestinationUnavailableError  # noqa: E402
from reconciler.providers.pinecone import PineconeDestination  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402
from tests.pinecone_server import PineconeServer  # noqa: E402

N = 3000  # 30 pages of 100


def _dest() -> PineconeDestination:
    return PineconeDestination(index="docs", host=None, namespace="", retry_timeout=0.5, consistency_timeout=10.0)


def _fill(dest: PineconeDestination, ids: list[str]) -> None:
    dest.ensure(4, "cosine")
    vectors = np.random.default_rng(0).standard_normal((len(ids), 4), dtype=np.float32)
    dest.upsert(RecordBatch(ids=pa.array(ids), vectors=vectors, metadata=pa.table({"n": pa.array(range(len(ids)))})))


def _lists(server: PineconeServer, before: dict[str, int]) -> int:
    return server.request_counts.get("list", 0) - before.get("list", 0)


@pytest.mark.parametrize("split", [False, True], ids=["one listing", "split by prefix"])
def test_a_listing_cut_off_halfway_resumes_from_its_last_page_token(
    pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    import reconciler.providers.pinecone as pc

    ids = [f"doc-{i:05d}" for i in range(N)]
    dest = _dest()
    _fill(dest, ids)
    expected = None
    if split:
        monkeypatch.setattr(pc, "LIST_SPLIT_MIN", 100)
        expected = pa.array(sorted(ids))
    before = pinecone_server.request_counts
    clean = dest.all_ids(expected)
    assert sorted(clean.to_pylist()) == ids
    pages = _lists(pinecone_server, before)

    def outage_after_ten_pages(listed: int) -> None:
        if listed >= 1000:
            pinecone_server.fail_next("503", count=10**6, operation="list")

    with pytest.raises(DestinationUnavailableError) as cut:
        dest.all_ids(expected, progress=outage_after_ten_pages)
    assert "listing ids" in cut.value.message
    pinecone_server.clear_script()

    before = pinecone_server.request_counts
    resumed = dest.all_ids(expected)
    assert sorted(resumed.to_pylist()) == ids and len(resumed) == N  # every id exactly once
    assert _lists(pinecone_server, before) <= pages - 10 + (len(pinecone_server.list_prefixes) if split else 1)

    before = pinecone_server.request_counts
    dest.all_ids(expected)  # a completed listing leaves no checkpoint: the next one starts over
    assert _lists(pinecone_server, before) == pages


def test_a_refused_saved_token_lists_that_part_again(pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"doc-{i:05d}" for i in range(N)]
    dest = _dest()
    _fill(dest, ids)

    def outage(listed: int) -> None:
        if listed >= 500:
            pinecone_server.fail_next("503", count=10**6, operation="list")

    with pytest.raises(DestinationUnavailableError):
        dest.all_ids(None, progress=outage)
    pinecone_server.clear_script()
    from reconciler.providers.listing_resume import ListingCheckpoint

    checkpoint = ListingCheckpoint(f"{dest.address}|{dest.host or ''}|{dest.namespace}", [""])
    parts, resumed = checkpoint.load()
    assert resumed and 500 <= parts[""].count == len(parts[""].ids()) < N and parts[""].token
    parts[""].token = "not-a-token"
    checkpoint.save(parts)
    again = dest.all_ids(None)
    assert sorted(again.to_pylist()) == ids and len(again) == N


@pytest.mark.parametrize("split", [False, True], ids=["one listing", "split by prefix"])
def test_a_listing_is_handed_on_in_its_chunks_each_id_once(pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch, split: bool) -> None:
    """Held until checked as Arrow chunks (``listing_resume.CHUNK_IDS``, made small here), and handed
    on as those chunks, never joined into one array: what keeps a 100M-record listing ~2.8 GB."""
    import reconciler.providers.listing_resume as lr
    import reconciler.providers.pinecone as pc

    monkeypatch.setattr(lr, "CHUNK_IDS", 250)
    ids = [f"doc-{i:05d}" for i in range(N)]
    dest = _dest()
    _fill(dest, ids)
    expected = None
    if split:
        monkeypatch.setattr(pc, "LIST_SPLIT_MIN", 100)
        expected = pa.array(sorted(ids))
    pieces = list(dest.id_batches(expected))
    assert len(pieces) >= N // 350 and all(0 < len(p) < 250 + 100 for p in pieces)  # a chunk: 250 ids and the rest of a page
    assert sorted(i for p in pieces for i in p.to_pylist()) == ids  # every id exactly once
