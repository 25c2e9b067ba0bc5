"""Every state document carries its format; older ones are upgraded, newer ones refused (SPEC §6).

Driven through ``StateStore`` on the in-memory destination; tests/integration/test_state_from_010.py
does the same over state the 0.1.0 release really wrote to LanceDB and Pinecone.
"""

from __future__ import annotations

import pytest

from fixtures.state import history_entry
from reconciler.engine.state import STATE_FORMAT_VERSION, StateStore
from reconciler.errors import StateError, StateFormatError
from reconciler.providers.memory import MemoryDestination

OLD_STATE = {"lineage": "l-1", "serial": 4, "deployed": None, "previous": None, "intent": None}  # as 0.1.0 wrote it


def test_every_document_written_carries_the_format_and_the_writer() -> None:
    dest = MemoryDestination()
    store = StateStore(dest)
    with store.locked("apply") as lock:
        assert dest.read_doc("lock")["format_version"] == STATE_FORMAT_VERSION  # type: ignore[index]
        store.save_and_release(store.load(), history_entry(1), lock)
    for key in ("state", "lock", "history/0000000001"):
        doc = dest.read_doc(key)
        assert doc is not None and doc["format_version"] == STATE_FORMAT_VERSION and doc["vectorops_version"], key


def test_an_unversioned_010_document_is_read_and_upgraded_by_the_next_write() -> None:
    dest = MemoryDestination()
    dest.write_doc("state", OLD_STATE)
    store = StateStore(dest)
    state = store.load()
    assert (state.lineage, state.serial) == ("l-1", 4)
    assert dest.read_doc("state") == OLD_STATE  # reading writes nothing
    store.save(state)
    assert dest.read_doc("state") == {**OLD_STATE, "format_version": STATE_FORMAT_VERSION, "vectorops_version": state.vectorops_version}


@pytest.mark.parametrize("key", ["state", "lock", "history/0000000001"])
def test_a_newer_document_is_refused_and_never_rewritten(key: str) -> None:
    dest = MemoryDestination(address="memory:prod")
    newer = {"format_version": STATE_FORMAT_VERSION + 1, "vectorops_version": "0.9.1", "id": "x"}
    dest.write_doc(key, newer)
    store = StateStore(dest)
    with pytest.raises(StateFormatError) as err:
        store.load()
        store.history()
        store.acquire("apply")  # a newer vectorops' lock is never taken over
    assert str(err.value).startswith(f"memory:prod: vectorops state was written by vectorops 0.9.1 (state format {STATE_FORMAT_VERSION + 1})")
    assert "pip install 'vectorops>=0.9.1'" in str(err.value)
    assert dest.read_doc(key) == newer


def test_a_newer_document_without_a_writer_still_says_what_to_do() -> None:
    dest = MemoryDestination()
    dest.write_doc("state", {**OLD_STATE, "format_version": 99})
    with pytest.raises(StateFormatError, match=r"(?s)written by a newer vectorops \(state format 99\).*pip install -U vectorops"):
        StateStore(dest).load()


@pytest.mark.parametrize("bad", ["2", 0, True, None])
def test_a_format_version_no_vectorops_writes_is_malformed_state(bad: object) -> None:
    dest = MemoryDestination()
    dest.write_doc("state", {**OLD_STATE, "format_version": bad})
    with pytest.raises(StateError, match="which no vectorops writes") as err:
        StateStore(dest).load()
    assert not isinstance(err.value, StateFormatError) and "vectorops import" in str(err.value)


def test_a_suspension_is_an_optional_field_older_documents_read_as_not_suspended() -> None:
    """Added without a format bump: a document without it (0.1.0's, or format 2's) is not
    suspended, and a state that is not suspended is written exactly as before."""
    from reconciler.engine.state import Suspension

    dest = MemoryDestination()
    dest.write_doc("state", OLD_STATE)
    store = StateStore(dest)
    state = store.load()
    assert state.suspended is None
    store.save(state)
    assert "suspended" not in dest.read_doc("state")  # type: ignore[operator]

    state = state.model_copy(update={"suspended": Suspension(by="ann@laptop", at="2026-12-06T10:00:00Z", reason="reindexing")})
    store.save(state)
    doc = dest.read_doc("state")
    assert doc is not None and doc["format_version"] == STATE_FORMAT_VERSION
    assert store.load().suspended == state.suspended
    state = state.model_copy(update={"suspended": None})
    store.save(state)
    assert "suspended" not in dest.read_doc("state")  # type: ignore[operator]
