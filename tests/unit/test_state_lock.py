"""The end of an apply in one write: ``StateStore.save_and_release`` and the released-lock marker."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fixtures.state import history_entry
from reconciler.engine.state import (
    LOCK_KEY,
    RELEASED_AT,
    EnvState,
    Lock,
    StateStore,
    iso,
    now,
)
from reconciler.errors import LockError
from reconciler.providers.base import Destination, DestinationInfo
from reconciler.records import RecordBatch


class MemoryDestination(Destination):
    """Documents in a dict, every document call recorded."""

    address = "memory:test"

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_writes = False

    def describe(self) -> DestinationInfo:
        return DestinationInfo(True, 4, "cosine", 0)

    def ensure(self, dimension: int, metric: str) -> None: ...

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        return iter([])

    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        raise NotImplementedError

    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        return iter([])

    def upsert(self, batch: RecordBatch) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def query(self, vector: Any, top_k: int) -> list[str]:
        return []

    def read_doc(self, key: str) -> dict[str, Any] | None:
        self.calls.append(("read", key))
        return copy.deepcopy(self.docs.get(key))

    def write_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.calls.append(("write", key))
        self.docs[key] = copy.deepcopy(doc)

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        self.calls.append(("write_docs", tuple(docs)))
        if self.fail_writes:
            raise RuntimeError("the destination is down")
        self.docs.update(copy.deepcopy(docs))

    def delete_doc(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.docs.pop(key, None)

    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return sorted((k, copy.deepcopy(v)) for k, v in self.docs.items() if k.startswith(prefix))

    def writes(self) -> list[tuple[str, Any]]:
        return [c for c in self.calls if c[0] != "read"]


def _state(serial: int) -> EnvState:
    return EnvState.new().model_copy(update={"serial": serial})


def test_a_released_lock_reads_as_no_lock() -> None:
    dest = MemoryDestination()
    dest.docs[LOCK_KEY] = {"id": "old", "owner": "someone", RELEASED_AT: iso(now())}
    store = StateStore(dest)
    assert store.current_lock() is None
    lock = store.acquire("apply")  # and it is taken at once
    assert store.current_lock() == lock
    with pytest.raises(LockError, match="is locked"):
        StateStore(dest).acquire("apply")


def test_a_deleted_lock_still_reads_as_no_lock() -> None:
    dest = MemoryDestination()  # state written before the released marker: release deleted the lock
    assert StateStore(dest).current_lock() is None
    with pytest.raises(LockError, match="not locked"):
        StateStore(dest).force_unlock("anything")


def test_save_and_release_is_one_write_and_the_final_release_a_no_op() -> None:
    dest = MemoryDestination()
    store = StateStore(dest)
    with store.locked("apply") as lock:
        heartbeat = store._heartbeats[lock.id]
        store.save(_state(1))  # the intent
        dest.calls.clear()
        store.save_and_release(_state(2), history_entry(2), lock)
        assert not heartbeat._thread.is_alive()  # no renewal can write the lock back after this
    assert dest.writes() == [("write_docs", ("state", "history/0000000002", "lock"))]
    assert dest.calls == [("read", "lock"), ("write_docs", ("state", "history/0000000002", "lock"))]
    assert dest.docs[LOCK_KEY]["id"] == lock.id and RELEASED_AT in dest.docs[LOCK_KEY]
    assert store.current_lock() is None
    assert store.load().serial == 2 and [e.serial for e in store.history()] == [2]


def test_save_and_release_without_a_history_entry() -> None:
    dest = MemoryDestination()
    store = StateStore(dest)
    with store.locked("validate") as lock:
        dest.calls.clear()
        store.save_and_release(_state(5), None, lock)
    assert dest.writes() == [("write_docs", ("state", "lock"))]
    assert store.current_lock() is None


def test_a_taken_over_lock_is_not_released() -> None:
    dest = MemoryDestination()
    slow = StateStore(dest)
    with slow.locked("apply", lease_seconds=0) as mine:  # its lease lapses at once
        other = StateStore(dest).acquire("apply")  # another apply takes the lock over
        slow.save_and_release(_state(3), history_entry(3), mine)
        assert ("write_docs", ("state", "history/0000000003")) in dest.writes()
    held = StateStore(dest).current_lock()
    assert held is not None and held.id == other.id  # the new holder keeps its lock
    assert ("delete", LOCK_KEY) not in dest.writes()
    assert slow.load().serial == 3


def test_a_failed_save_and_release_still_releases_on_the_way_out() -> None:
    dest = MemoryDestination()
    store = StateStore(dest)
    with pytest.raises(RuntimeError, match="down"), store.locked("apply") as lock:
        dest.fail_writes = True
        store.save_and_release(_state(1), history_entry(1), lock)
    assert ("delete", LOCK_KEY) in dest.writes()  # release() did it the old way
    assert store.current_lock() is None


def test_release_still_deletes_and_force_unlock_still_works() -> None:
    dest = MemoryDestination()
    store = StateStore(dest)
    lock = store.acquire("apply")
    store.release(lock)
    assert LOCK_KEY not in dest.docs
    lock = store.acquire("apply")
    assert store.force_unlock(lock.id).id == lock.id
    assert store.current_lock() is None


def test_an_unreadable_lock_is_a_lapsed_lock_of_unknown_holder() -> None:
    """Issue 15 item 5: not "no lock" (force-unlock must be able to remove it), but one whose lease
    cannot be known, so it strands nobody: the next acquire takes it over."""
    dest = MemoryDestination()
    dest.docs[LOCK_KEY] = {"owner": 5}
    held = StateStore(dest).current_lock()
    assert held is not None and held.unreadable and held.id == "unreadable" and held.expired()
    assert "unknown holder" in held.describe()
    assert StateStore(dest).acquire("apply").id != "unreadable"
    dest.docs[LOCK_KEY] = {"id": "abc", "owner": 5}
    assert StateStore(dest).force_unlock("abc").unreadable and StateStore(dest).current_lock() is None
    dest.docs[LOCK_KEY] = Lock(
        id="l", owner="o", operation="apply", acquired_at=iso(now()), expires_at=iso(now())
    ).model_dump(mode="json") | {RELEASED_AT: None}  # a null marker is not a release
    assert StateStore(dest).current_lock() is not None


def test_lancedb_write_docs_is_one_commit(tmp_path: Path) -> None:
    pytest.importorskip("lancedb")
    from reconciler.providers.lancedb import LanceDBDestination

    dest = LanceDBDestination(uri=str(tmp_path / "db"), table="docs")
    store = StateStore(dest)
    with store.locked("apply") as lock:
        store.save(_state(1))
        table = dest._docs_table()
        version = table.version
        store.save_and_release(_state(2), history_entry(2), lock)
        table.checkout_latest()
        assert table.version == version + 1
    assert store.current_lock() is None
    assert store.load().serial == 2 and [e.serial for e in store.history()] == [2]
    assert dest.read_doc(LOCK_KEY) is not None and RELEASED_AT in dest.read_doc(LOCK_KEY)
    with store.locked("apply"):  # the next apply takes it at once
        pass
