"""The Qdrant destination through the real qdrant-client, in its embedded local mode (``path:``).

A Qdrant server cannot be installed here; local mode is Qdrant's own embedded implementation in
qdrant-client, and the provider talks to it through the same client API it uses for a server.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from qdrant_client import models  # noqa: E402

from reconciler.errors import (  # noqa: E402
    DestinationConfigError,
    DestinationMismatchError,
    DestinationUnavailableError,
)
from reconciler.providers.qdrant import (  # noqa: E402
    ID_FIELD,
    QdrantDestination,
    QdrantSettings,
    _LocalClients,
    check_records,
    point_id,
)
from reconciler.providers.settings import DestinationContext  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402

DIM = 8


def _batch(n: int, start: int = 0, seed: int = 0) -> RecordBatch:
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i:05d}" for i in range(start, start + n)]
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    metadata = [{"title": f"title {i}", "n": i, "score": float(i) + 0.25, "ok": i % 2 == 0, "tags": ["a", f"t{i % 3}"]} for i in range(start, start + n)]
    return RecordBatch.from_rows(ids, vectors, metadata, DIM)


def _sorted(batch: RecordBatch) -> RecordBatch:
    return batch.take(np.argsort(batch.id_list))


def _assert_same(expected: RecordBatch, got: RecordBatch) -> None:
    got, exp = _sorted(got), _sorted(expected)
    assert got.id_list == exp.id_list
    assert got.vectors.dtype == np.float32
    assert got.vectors.tobytes() == exp.vectors.tobytes()  # bit-exact float32, even in a Cosine collection
    assert got.metadata_rows() == exp.metadata_rows()


def _concat(batches: list[RecordBatch]) -> RecordBatch:
    ids = [i for b in batches for i in b.id_list]
    return RecordBatch.from_rows(ids, np.concatenate([b.vectors for b in batches]), [r for b in batches for r in b.metadata_rows()], DIM)


@contextlib.contextmanager
def hand_client(path: Path) -> Iterator[Any]:
    """qdrant-client on the folder, as a user's own script would hold it (the process's one client)."""
    client = _LocalClients.acquire(str(path))
    try:
        yield client
    finally:
        _LocalClients.release(str(path))


@pytest.fixture
def folder(qdrant_folder: Path) -> Path:
    return qdrant_folder


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_round_trip_is_exact_under_every_metric(folder: Path, metric: str) -> None:
    dest = QdrantDestination(collection="docs", path=str(folder))
    assert not dest.describe().exists
    dest.ensure(DIM, metric)
    dest.ensure(DIM, metric)  # idempotent
    batch = _batch(1300)
    dest.upsert(batch)
    info = dest.describe()
    assert (info.exists, info.dimension, info.metric, info.count) == (True, DIM, metric, 1300)
    _assert_same(batch, dest.fetch(batch.id_list + ["absent"]))
    _assert_same(batch, _concat(list(dest.iter_records(batch_size=500))))
    assert sorted(i for ids in dest.iter_ids(batch_size=700) for i in ids) == batch.id_list
    probe = batch.vectors[5]
    # the nearest under Dot is the largest inner product, not the vector itself
    nearest = batch.id_list[int(np.argmax(batch.vectors.astype(np.float64) @ probe))] if metric == "dotproduct" else batch.id_list[5]
    assert dest.query(probe, top_k=1) == [nearest]
    dest.delete(batch.id_list[:1200] + ["never-there"])
    assert dest.describe().count == 100
    assert sorted(dest.all_ids().to_pylist()) == batch.id_list[1200:]
    dest.close()


def test_points_are_uuid5_of_the_record_id_with_the_id_in_the_payload(folder: Path) -> None:
    dest = QdrantDestination(collection="docs", path=str(folder))
    dest.ensure(DIM, "dotproduct")
    dest.upsert(_batch(3))
    with hand_client(folder) as client:
        points = client.retrieve("docs", ids=[point_id("doc-00001")], with_payload=True)
        assert [p.id for p in points] == [point_id("doc-00001")]
        assert points[0].payload == {ID_FIELD: "doc-00001", "title": "title 1", "n": 1, "score": 1.25, "ok": False, "tags": ["a", "t1"]}
    import uuid

    assert point_id("doc-00001") == str(uuid.uuid5(uuid.UUID("6f1c5b52-3f57-5d7e-9a59-76656374306f"), "doc-00001"))
    dest.close()


def test_state_documents_live_beside_the_records_and_are_never_records(folder: Path) -> None:
    dest = QdrantDestination(collection="docs", path=str(folder))
    assert dest.read_doc("state") is None
    with hand_client(folder) as client:
        assert not client.collection_exists("_vectorops_state__docs")  # reading never creates anything
    dest.ensure(DIM, "cosine")
    dest.upsert(_batch(5))
    dest.write_docs({"state": {"v": 1}, "history/0001": {"n": 1}, "history/0002": {"n": 2}})
    dest.write_doc("state", {"v": 2})
    assert dest.read_doc("state") == {"v": 2}
    assert dest.list_doc_keys("history/") == ["history/0001", "history/0002"]
    assert dest.list_docs("hist") == [("history/0001", {"n": 1}), ("history/0002", {"n": 2})]
    dest.delete_doc("history/0001")
    assert dest.list_doc_keys("") == ["history/0002", "state"]
    assert dest.describe().count == 5
    assert len(dest.all_ids()) == 5
    dest.close()


def test_cosine_full_read_sees_hand_changes_and_nothing_else(folder: Path) -> None:
    """Qdrant returns normalised vectors from a Cosine collection; untouched points still read back
    as the dataset's exact float32, a vector or metadata changed by hand reads back changed."""
    dest = QdrantDestination(collection="docs", path=str(folder))
    dest.ensure(DIM, "cosine")
    batch = _batch(50)
    dest.upsert(batch)
    with hand_client(folder) as client:
        raw = client.retrieve("docs", ids=[point_id("doc-00003")], with_vectors=True)[0].vector
        assert not np.array_equal(np.float32(raw), batch.vectors[3])  # Qdrant did normalise it
        client.update_vectors("docs", points=[models.PointVectors(id=point_id("doc-00007"), vector=(batch.vectors[8]).tolist())])
        client.set_payload("docs", payload={"title": "edited by hand"}, points=[point_id("doc-00009")])
        # a whole point rewritten by hand (the original vector gone from its payload)
        client.upsert("docs", points=[models.PointStruct(id=point_id("doc-00011"), vector=batch.vectors[11].tolist(),
                                                          payload={ID_FIELD: "doc-00011", **batch.metadata_rows()[11]})])
    got = _sorted(_concat(list(dest.iter_records())))
    same = [i for i in range(50) if i not in (7, 9, 11)]
    assert got.take(np.array(same)).vectors.tobytes() == batch.take(np.array(same)).vectors.tobytes()
    assert not np.array_equal(got.vectors[7], batch.vectors[7])
    assert got.metadata_rows()[9]["title"] == "edited by hand"
    assert got.vectors[9].tobytes() == batch.vectors[9].tobytes()
    # same direction, but not what vectorops wrote: reported as it is stored (so it hashes differently)
    assert not np.array_equal(got.vectors[11], batch.vectors[11])
    dest.close()


def test_ensure_refuses_another_dimension_or_distance_before_writing(folder: Path) -> None:
    dest = QdrantDestination(collection="docs", path=str(folder))
    dest.ensure(DIM, "cosine")
    with pytest.raises(DestinationMismatchError, match=r"dimension 8 \(the dataset's embedding has 16\)"):
        dest.ensure(16, "cosine")
    with pytest.raises(DestinationMismatchError, match=r"distance Cosine \(the manifest's metric euclidean needs Euclid\)"):
        dest.ensure(DIM, "euclidean")
    assert dest.read_doc("state") is None
    dest.close()


def test_check_records_names_what_qdrant_cannot_hold() -> None:
    batch = RecordBatch.from_rows(
        ["ok", "", "nan", "reserved"],
        np.array([[1.0] * DIM, [1.0] * DIM, [np.nan] * DIM, [1.0] * DIM], np.float32),
        [{}, {}, {}, {"_vectorops_id": "x"}],
        DIM,
    )
    problems = check_records(batch, DIM)
    assert any(p.startswith("empty id: 1 record(s)") for p in problems)
    assert any("NaN or infinite" in p and "nan" in p for p in problems)
    assert any("'_vectorops_id'" in p and "reserved" in p for p in problems)


def test_local_folder_is_shared_within_a_process_and_released_on_close(folder: Path) -> None:
    first = QdrantDestination(collection="docs", path=str(folder))
    second = QdrantDestination(collection="docs", path=str(folder))  # plan, then apply, in one command
    first.ensure(DIM, "dotproduct")
    second.upsert(_batch(3))
    first.close()
    assert second.describe().count == 3
    second.close()
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(folder))  # the folder's lock is free again
    assert client.count("docs").count == 3
    client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_unavailable_and_names_the_address() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    dest = QdrantDestination(collection="docs", url=url, api_key="sekrit-key-123", address=f"qdrant:{url}#docs")
    with pytest.raises(DestinationUnavailableError) as info:
        dest.describe()
    assert f"qdrant:{url}#docs" in str(info.value) and "could not be reached" in str(info.value)
    assert "sekrit" not in str(info.value)


def test_settings_need_the_key_variable_and_the_sdk_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_TEST_KEY", raising=False)
    settings = QdrantSettings(type="qdrant", url="http://127.0.0.1:6333", collection="docs", api_key_env="QDRANT_TEST_KEY")
    context = DestinationContext(environment="prod", folder=tmp_path)
    with pytest.raises(DestinationConfigError, match="QDRANT_TEST_KEY is not set"):
        settings.open(context)
    assert settings.address() == "qdrant:http://127.0.0.1:6333#docs"
    local = QdrantSettings(type="qdrant", path="q", collection="docs")
    assert local.key(context) == f"qdrant:{tmp_path / 'q'}#docs"
    with pytest.raises(ValueError, match="exactly one of 'url'"):
        QdrantSettings(type="qdrant", url="http://x:6333", path="q", collection="docs")
    with pytest.raises(ValueError, match="exactly one of 'url'"):
        QdrantSettings(type="qdrant", collection="docs")
    assert os.environ.get("QDRANT_TEST_KEY") is None
