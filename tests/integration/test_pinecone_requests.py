"""How many write requests Pinecone receives, and what is in them (issue 9).

Data writes: upserts carry each float32 as its shortest exact decimal and are packed by their
real encoded size up to the 2 MB cap. State writes: an apply writes the lock, the intent, and one
final request carrying the result, the history entry and the lock's release.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pinecone")

from fixtures.cli import run_vectorops  # noqa: E402
from fixtures.records import KnownVersions  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from fixtures.state import history_entry  # noqa: E402
from reconciler.engine.state import EnvState, StateStore  # noqa: E402
from reconciler.providers import pinecone_payload as payload  # noqa: E402
from reconciler.providers.pinecone import DOCS_NAMESPACE, PineconeDestination  # noqa: E402
from reconciler.records import RecordBatch  # noqa: E402
from tests.pinecone_server import Faults, PineconeServer  # noqa: E402
from tests.pinecone_server.fixtures import API_KEY  # noqa: E402

WRITES = ("upsert", "delete", "update")


def _dest(**kw: Any) -> PineconeDestination:
    kw.setdefault("retry_timeout", 20.0)
    kw.setdefault("consistency_timeout", 10.0)
    return PineconeDestination(index="docs", host=None, namespace=kw.pop("namespace", ""), **kw)


def _writes(srv: PineconeServer, before: dict[str, int]) -> int:
    after = srv.request_counts
    return sum(after.get(k, 0) - before.get(k, 0) for k in WRITES)


@pytest.fixture
def bodies(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every request body the SDK encodes, as sent."""
    from pinecone._internal import http_client

    seen: list[bytes] = []
    original = http_client._encode_json

    def recording(body: Any, path_prefix: str = "") -> bytes:
        out = original(body, path_prefix)
        seen.append(out)
        return out

    monkeypatch.setattr(http_client, "_encode_json", recording)
    return seen


def _tricky(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Embedding-like values plus the awkward ones: -0.0, subnormals, extremes, near powers of ten."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, dim)) / np.sqrt(dim)).astype(np.float32)
    f32 = np.finfo(np.float32)
    odd = np.asarray([-0.0, 0.0, 0.1, 1e-5, 1e-7, 9.999999e-6, 1e-40, -1e-45, float(f32.tiny), 1e30, -3e38,
                      float(f32.max), 123456789.0, 1e15, 0.3, 2.0**-20], np.float32)
    rows = rng.integers(0, n, size=len(odd) * 4)
    cols = rng.integers(0, dim, size=len(odd) * 4)
    x[rows, cols] = np.tile(odd, 4)
    x[:, 0] = np.where(x[:, 0] == 0, np.float32(0.5), x[:, 0])  # Pinecone refuses all-zero vectors
    return x


def test_upserts_are_exact_and_packed_to_the_size_cap(pinecone_server: PineconeServer, bodies: list[bytes]) -> None:
    dim = 768
    dest = _dest(max_in_flight=2)
    dest.ensure(dim, "cosine")
    n = 1000
    x = _tricky(n, dim)
    rows = [{"title": f"naïve title {i}", "n": i, "score": i / 7, "tags": ["a", "b"]} for i in range(n)]
    batch = RecordBatch.from_rows([f"doc-{i:06d}" for i in range(n)], x, rows, dim)
    before = pinecone_server.request_counts
    bodies.clear()
    dest.upsert(batch)
    upserts = [b for b in bodies if b.startswith(b'{"vectors":')]
    # packed by real size: as few requests as 2 MB allows, none over it
    assert all(len(b) <= payload.MAX_UPSERT_BYTES for b in upserts)
    assert len(upserts) == math.ceil(sum(len(b) for b in upserts) / payload.MAX_UPSERT_BYTES) == _writes(pinecone_server, before)
    assert sum(len(b) for b in upserts) < 0.62 * n * dim * 21  # ~12.5 bytes a value, not ~21
    # what the server stores is the dataset's float32 values, bit for bit (-0.0 included)
    stored = pinecone_server.index("docs").namespaces["__default__"].records
    for i, vid in enumerate(batch.id_list):
        assert np.asarray(stored[vid][0], np.float32).view(np.uint32).tobytes() == x[i].view(np.uint32).tobytes()
    dest.after_apply()
    got = dest.fetch(batch.id_list)
    assert got.vectors.view(np.uint32).tobytes() == x.view(np.uint32).tobytes()


def test_upsert_stream_packs_requests_across_batches(pinecone_server: PineconeServer, bodies: list[bytes]) -> None:
    """Four batches of 700 records at dim 768 (~6 MB each): cut batch by batch they need 4 x 4
    requests; packed across batches, as few as the total bytes need, every record written once."""
    dim = 768
    dest = _dest(max_in_flight=3)
    dest.ensure(dim, "cosine")
    x = _tricky(2800, dim, seed=5)
    ids = [f"rec-{i:05d}" for i in range(2800)]
    batches = [RecordBatch.from_rows(ids[i : i + 700], x[i : i + 700], [{"i": j} for j in range(i, i + 700)], dim)
               for i in range(0, 2800, 700)]
    bodies.clear()
    landed = list(dest.upsert_stream(iter(batches)))
    upserts = [b for b in bodies if b.startswith(b'{"vectors":')]
    assert sum(landed) == 2800 and all(n > 0 for n in landed)
    assert all(len(b) <= payload.MAX_UPSERT_BYTES for b in upserts)
    assert len(upserts) == math.ceil(sum(len(b) for b in upserts) / payload.MAX_UPSERT_BYTES) < 16
    stored = pinecone_server.index("docs").namespaces["__default__"].records
    assert sorted(stored) == ids
    assert all(np.array_equal(np.asarray(stored[v][0], np.float32), x[i]) for i, v in enumerate(ids))
    assert Counter(v for b in upserts for v in re.findall(rb'"id":"(rec-\d+)"', b)) == Counter(v.encode() for v in ids)


def test_exact_values_under_faults_with_a_namespace(pinecone_server: PineconeServer) -> None:
    dest = _dest(namespace="tenant-a", max_in_flight=3)
    dest.ensure(32, "dotproduct")
    pinecone_server.faults = Faults(rate_429=0.1, rate_lost_response=0.1, retry_after=0, seed=3,
                                    operations=frozenset({"upsert"}))
    x = _tricky(3000, 32, seed=4)
    batch = RecordBatch.from_rows([f"r{i}" for i in range(3000)], x, [{}] * 3000, 32)
    dest.upsert(batch)
    dest.after_apply()
    stored = pinecone_server.index("docs").namespaces["tenant-a"].records
    assert len(stored) == 3000
    assert all(np.asarray(stored[f"r{i}"][0], np.float32).tobytes() == x[i].tobytes() for i in range(3000))


# -- vectorops documents ---------------------------------------------------------------------


def test_write_docs_is_one_request_and_cleans_up(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(8, "cosine")
    big = {"serial": 3, "blob": "é\"\\" * 30000}  # several chunks
    before = pinecone_server.request_counts
    dest.write_docs({"state": big, "history/0000000001": {"n": 1}, "lock": {"id": "a"}})
    assert _writes(pinecone_server, before) == 1
    assert dest.read_doc("state") == big and dest.read_doc("history/0000000001") == {"n": 1}
    assert dest.read_doc("lock") == {"id": "a"}
    before = pinecone_server.request_counts
    dest.write_docs({"state": {"serial": 4}, "lock": {"id": "b"}})  # shrinking: stale chunks go
    assert _writes(pinecone_server, before) == 2  # the upsert and one delete of the stale chunks
    assert dest.read_doc("state") == {"serial": 4}
    docs = pinecone_server.index("docs").namespaces[DOCS_NAMESPACE].records
    assert [v for v in docs if "/state#" in v] == ["__default__/state#0000"]


def test_write_docs_over_the_cap_writes_tails_then_heads_in_order(
    pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = _dest()
    dest.ensure(8, "cosine")
    order: list[list[str]] = []
    original = dest._upsert_items

    def spy(namespace: str, items: list[dict[str, Any]], **kw: Any) -> None:
        order.append([it["id"] for it in items])
        original(namespace, items, **kw)

    monkeypatch.setattr(dest, "_upsert_items", spy)
    monkeypatch.setattr(payload, "MAX_UPSERT_BYTES", 40_000)  # one chunk a request
    docs = {"state": {"blob": "x" * 40_000}, "history/0000000007": {"n": 7}, "lock": {"id": "z"}}
    dest.write_docs(docs)
    flat = [i for ids in order for i in ids]
    heads = [i for i in flat if i.endswith("#0000")]
    assert heads == ["__default__/state#0000", "__default__/history/0000000007#0000", "__default__/lock#0000"]
    assert flat.index(heads[0]) > max(flat.index(i) for i in flat if not i.endswith("#0000"))
    assert all(dest.read_doc(k) == v for k, v in docs.items())


# -- state writes per apply --------------------------------------------------------------------


def test_an_apply_writes_state_in_three_requests(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(8, "cosine")
    store = StateStore(dest)
    before = pinecone_server.request_counts
    with store.locked("apply") as lock:  # 1: the lock (plus its claim written and withdrawn: PineconeDestination.exclusive)
        assert _writes(pinecone_server, before) == 1 + 2
        state = store.load()
        state = state.model_copy(update={"serial": state.serial + 1})
        store.save(state)  # 2: the intent
        state = state.model_copy(update={"serial": state.serial + 1})
        store.save_and_release(state, history_entry(state.serial), lock)  # 3: result + history + release
    assert _writes(pinecone_server, before) == 3 + 2  # three for state, two for the claim that orders contenders
    assert store.current_lock() is None
    assert store.load().serial == 2 and [e.serial for e in store.history()] == [2]
    assert dest.read_doc("lock") is not None  # released by a marker, not deleted
    with store.locked("apply"):  # and the next apply takes it at once
        pass


def test_released_lock_is_no_lock_for_status_plan_and_force_unlock(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(8, "cosine")
    store = StateStore(dest)
    with store.locked("apply") as lock:
        store.save_and_release(EnvState.new(), None, lock)
    assert store.current_lock() is None
    with pytest.raises(Exception, match="not locked"):
        store.force_unlock(lock.id)


def test_the_last_history_entry_is_read_without_fetching_the_others(pinecone_server: PineconeServer) -> None:
    dest = _dest()
    dest.ensure(8, "cosine")
    store = StateStore(dest)
    for serial in range(1, 13):
        store.append_history(history_entry(serial))
    before = pinecone_server.request_counts
    assert [e.serial for e in store.history(limit=1)] == [12]
    after = pinecone_server.request_counts
    assert after.get("fetch", 0) - before.get("fetch", 0) == 1  # the newest document only, not 12
    assert [e.serial for e in store.history(limit=3)] == [12, 11, 10]
    assert [e.serial for e in store.history()] == list(range(12, 0, -1))


# -- through the CLI -----------------------------------------------------------------------------


@pytest.fixture
def writes_by_namespace(pinecone_server: PineconeServer) -> Iterator[Callable[[], Counter[str]]]:
    """Counts committed writes per namespace of index ``docs-prod`` (once it exists)."""
    counts: Counter[str] = Counter()
    patched: list[Any] = []

    def install() -> Counter[str]:
        state = pinecone_server.index("docs-prod")
        original = state.commit

        def counting(name: str, op: Any) -> int:
            counts[name] += 1
            return original(name, op)

        state.commit = counting  # type: ignore[method-assign]
        patched.append((state, original))
        counts.clear()
        return counts

    yield install
    for state, original in patched:
        state.commit = original  # type: ignore[method-assign]


def test_incremental_apply_sends_minimum_writes(
    tmp_path: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions, pinecone_server: PineconeServer,
    writes_by_namespace: Callable[[], Counter[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VECTOROPS_TEST_PINECONE_KEY", API_KEY)
    manifest = tmp_path / "vectorops.yaml"

    def pin(version: str) -> None:
        manifest.write_text(
            f"""version: 1
datasets:
  docs:
    path: data/docs.parquet
    repo: {dataset_repo.root}
    embedding: {{model: test-model, dimension: 16, metric: cosine}}
environments:
  prod:
    dataset: docs
    version: {version}
    destination: {{type: pinecone, index: docs-prod, api_key_env: VECTOROPS_TEST_PINECONE_KEY}}
"""
        )

    def ok(*args: str) -> None:
        result = run_vectorops("-m", str(manifest), "--no-color", *args)
        assert result.code == 0, result.stdout + result.stderr

    pin("v1")
    ok("apply", "--auto-approve")
    pin("v2")
    counts = writes_by_namespace()
    ok("apply", "--auto-approve")  # 120 added, 45 updated, 30 deleted at dimension 16
    assert counts["__default__"] == 2  # one upsert, one delete: the minimum
    # lock, intent, then result + history + release together; plus the lock's claim written and
    # withdrawn, which orders concurrent applies (PineconeDestination.exclusive)
    assert counts[DOCS_NAMESPACE] == 3 + 2
    stored = pinecone_server.index("docs-prod").namespaces["__default__"].records
    want = {r["id"]: np.asarray(r["vector"], np.float32) for r in known_versions.v2}
    assert sorted(stored) == sorted(want)
    assert all(np.asarray(stored[k][0], np.float32).tobytes() == v.tobytes() for k, v in want.items())
    ok("plan", "--detailed-exitcode")  # nothing left to do, and no lock in the way
