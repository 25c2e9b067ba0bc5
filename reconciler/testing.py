"""The destination contract suite, for every destination: built in, plug-in, or yet to be written.

Subclass ``DestinationContract`` in a test module, give it an ``open_destination`` fixture, and
pytest runs every check below against your destination::

    import pytest
    from reconciler.testing import DestinationContract

    class TestQdrant(DestinationContract):
        @pytest.fixture
        def open_destination(self, tmp_path):
            settings = QdrantSettings(type="qdrant", path=str(tmp_path / "q"), collection="docs")
            return lambda: settings.open(DestinationContext("test", tmp_path))

``open_destination()`` must open the SAME destination each time it is called, and that destination
must be empty (no index, no documents) when the test starts: several checks open it twice to see
that what one handle wrote, another reads. The checks use only the public interface
(``reconciler.providers.base.Destination``, docs/destinations.md) and vectorops' own ``StateStore``
on top of it, so they hold for whatever the destination does underneath. ``MemoryDestination``
passes them, and is the reference to compare with. Needs pytest (the test extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from reconciler.engine.hashing import hash_batch, round_vectors
from reconciler.engine.state import STATE_FORMAT_VERSION, StateStore
from reconciler.errors import DestinationError, DestinationMismatchError, LockError
from reconciler.providers.base import Capabilities, Destination
from reconciler.providers.memory import MemoryDestination
from reconciler.records import RecordBatch

DIMENSION = 8
Opener = Callable[[], Destination]


def make_batch(ids: list[str], seed: int = 0, dimension: int = DIMENSION) -> RecordBatch:
    """Records with every metadata type a destination must round-trip (text, int, float, bool, list of text)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(ids), dimension)).astype(np.float32)
    metadata = [
        {"title": f"Document {i} ({seed})", "chunk": k % 5, "score": round(float(rng.random()), 6), "flag": bool(k % 2), "tags": ["a", f"t{k % 3}"]}
        for k, i in enumerate(ids)
    ]
    return RecordBatch.from_rows(ids, vectors, metadata, dimension)


def ids(n: int, prefix: str = "doc-") -> list[str]:
    return [f"{prefix}{k:05d}" for k in range(n)]


def contents(batch: RecordBatch, precision: str = "float32") -> dict[str, tuple[int, int]]:
    """id -> (vector hash, metadata hash): how the engine compares records at refresh ``full``, vectors
    as a destination storing ``precision`` holds them (``Capabilities.vector_precision``)."""
    vh, mh = hash_batch(batch, precision)
    return {vid: (int(v), int(m)) for vid, v, m in zip(batch.id_list, vh, mh, strict=False)}


def stored(dest: Destination) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for batch in dest.iter_records(batch_size=700):
        out.update(contents(batch))
    return out


class DestinationContract:
    """Every check a destination must pass; subclasses provide the ``open_destination`` fixture."""

    @pytest.fixture
    def open_destination(self) -> Opener:  # pragma: no cover - always overridden
        raise NotImplementedError("define an open_destination fixture returning a callable that opens the destination")

    @pytest.fixture
    def dest(self, open_destination: Opener) -> Any:
        destination = open_destination()
        yield destination
        destination.close()

    @pytest.fixture
    def ready(self, dest: Destination) -> Destination:
        """The destination, created for dimension ``DIMENSION`` and cosine."""
        dest.ensure(DIMENSION, "cosine")
        return dest

    # -- existence ---------------------------------------------------------------------------

    def test_a_destination_that_was_never_written_is_absent_and_reading_creates_nothing(self, dest: Destination, open_destination: Opener) -> None:
        assert dest.describe().exists is False
        assert dest.read_doc("state") is None and dest.list_docs("") == [] and dest.list_doc_keys("") == []
        assert list(dest.iter_ids()) == [] and len(dest.all_ids()) == 0
        assert open_destination().describe().exists is False

    def test_ensure_creates_it_once_and_refuses_another_embedding(self, dest: Destination, open_destination: Opener) -> None:
        dest.ensure(DIMENSION, "cosine")
        dest.ensure(DIMENSION, "cosine")
        info = open_destination().describe()
        assert info.exists and info.count == 0 and info.dimension in (DIMENSION, None) and info.metric in ("cosine", None)
        with pytest.raises(DestinationMismatchError):
            dest.ensure(DIMENSION * 2, "cosine")

    # -- records -----------------------------------------------------------------------------

    def test_records_round_trip_exactly(self, ready: Destination) -> None:
        batch = make_batch(ids(40))
        ready.upsert(batch)
        ready.after_apply()
        got = ready.fetch(list(reversed(batch.id_list)) + ["doc-missing"])
        assert sorted(got.id_list) == batch.id_list  # missing ids are simply absent
        precision = ready.capabilities.vector_precision
        # vectors bit-exact at the declared precision (float32: the dataset's own), metadata as canonical JSON
        assert contents(got) == contents(batch, precision)
        assert np.array_equal(round_vectors(got.vectors, precision), got.vectors)  # never more precise than declared
        by_id = dict(zip(got.id_list, got.metadata_rows(), strict=False))
        assert [by_id[i] for i in batch.id_list] == batch.metadata_rows()

    def test_many_ids_are_fetched_in_batches_with_what_fetch_gives(self, ready: Destination) -> None:
        written = ids(2500)
        for k in range(0, 2500, 500):
            ready.upsert(make_batch(written[k : k + 500], seed=k))
        ready.after_apply()
        asked = written[::2] + ["doc-missing-1", "doc-missing-2"]  # 1,250 there, 2 not: more than one batch
        batches = list(ready.fetch_many(asked, batch_size=400))
        assert all(len(batch) <= 400 for batch in batches)
        fetched: dict[str, tuple[int, int]] = {}
        for batch in batches:
            got = contents(batch)
            assert not set(got) & set(fetched)  # each record once
            fetched.update(got)
        assert sorted(fetched) == sorted(written[::2])  # missing ids are simply absent, in any order
        assert fetched == contents(ready.fetch(asked))  # the same records as one fetch gives
        assert list(ready.fetch_many(asked[:3], batch_size=400))  # fewer ids than a batch
        assert [len(batch) for batch in ready.fetch_many([], batch_size=400)] in ([], [0])

    def test_upsert_replaces_by_id_and_is_idempotent(self, ready: Destination) -> None:
        first, second = make_batch(ids(30), seed=1), make_batch(ids(30)[10:], seed=2)
        ready.upsert(first)
        ready.upsert(second)
        ready.upsert(second)
        ready.after_apply()
        assert ready.describe().count == 30
        precision = ready.capabilities.vector_precision
        assert stored(ready) == {**contents(first, precision), **contents(second, precision)}

    def test_delete_removes_by_id_ignoring_unknown_ids(self, ready: Destination) -> None:
        batch = make_batch(ids(30))
        ready.upsert(batch)
        ready.delete(batch.id_list[:10] + ["doc-never-written"])
        ready.delete(batch.id_list[:10])
        ready.after_apply()
        assert sorted(ready.all_ids().to_pylist()) == batch.id_list[10:]
        assert ready.describe().count == 20

    def test_upsert_stream_reports_every_record_as_it_lands(self, ready: Destination) -> None:
        batches = [make_batch(ids(1200)[k : k + 400], seed=k) for k in (0, 400, 800)]
        assert sum(ready.upsert_stream(iter(batches))) == 1200
        ready.after_apply()
        assert ready.describe().count == 1200

    # -- what each refresh level reads ---------------------------------------------------------

    def test_refresh_stats_counts_user_records_only(self, ready: Destination) -> None:
        ready.upsert(make_batch(ids(25)))
        ready.write_docs({"state": {"serial": 1}, "history/0000000001": {"x": 1}})
        ready.after_apply()
        assert ready.describe().count == 25

    def test_refresh_ids_lists_every_id_and_no_document(self, ready: Destination) -> None:
        written = ids(2500)
        for k in range(0, 2500, 500):
            ready.upsert(make_batch(written[k : k + 500], seed=k))
        ready.write_doc("state", {"serial": 1})
        ready.after_apply()
        listed = [i for page in ready.iter_ids(batch_size=300) for i in page]
        assert sorted(listed) == written
        hint = pa.array(sorted(written), pa.string())
        assert sorted(ready.all_ids().to_pylist()) == written
        assert sorted(ready.all_ids(expected=hint).to_pylist()) == written  # a hint never changes the answer
        wrong_hint = pa.array(ids(3000, prefix="zz-"), pa.string())
        assert sorted(ready.all_ids(expected=wrong_hint).to_pylist()) == written
        # the same ids in pieces (``id_batches``: what a plan of a version kept on disk reads and spills)
        for given in (None, hint, wrong_hint):
            pieces = list(ready.id_batches(expected=given))
            assert all(isinstance(piece, pa.Array) and piece.type == pa.string() for piece in pieces)
            assert sorted(i for piece in pieces for i in piece.to_pylist()) == written

    def test_refresh_full_reads_back_the_hashes_that_were_written(self, ready: Destination) -> None:
        batch = make_batch(ids(1500), seed=7)
        ready.upsert(batch)
        ready.write_doc("state", {"serial": 1})
        ready.after_apply()
        assert stored(ready) == contents(batch, ready.capabilities.vector_precision)

    def test_query_finds_the_nearest_record(self, ready: Destination) -> None:
        batch = make_batch(ids(50), seed=3)
        ready.upsert(batch)
        ready.after_apply()
        for k in (0, 17, 49):
            assert ready.query(batch.vectors[k], 3)[0] == batch.id_list[k]

    # -- vectorops' documents (state, lock, history) --------------------------------------------

    def test_documents_round_trip_beside_the_records(self, ready: Destination, open_destination: Opener) -> None:
        big = {"text": "x" * 100_000, "nested": {"list": list(range(50)), "none": None, "unicode": "ünïcödé ✓"}}
        ready.write_doc("state", big)
        ready.write_docs({"history/0000000002": {"n": 2}, "history/0000000001": {"n": 1}, "lock": {"id": "a"}})
        ready.write_doc("lock", {"id": "b"})
        other = open_destination()
        assert other.read_doc("state") == big
        assert other.read_doc("lock") == {"id": "b"}
        assert other.list_docs("history/") == [("history/0000000001", {"n": 1}), ("history/0000000002", {"n": 2})]
        assert other.list_doc_keys("") == ["history/0000000001", "history/0000000002", "lock", "state"]
        other.delete_doc("lock")
        other.delete_doc("never-written")
        assert ready.read_doc("lock") is None and ready.read_doc("never-written") is None
        assert ready.describe().count == 0 and len(ready.all_ids()) == 0  # documents are never records

    def test_state_saved_through_one_handle_is_loaded_through_another(self, ready: Destination, open_destination: Opener) -> None:
        store = StateStore(ready)
        state = store.load().model_copy(update={"serial": 7})
        store.save(state)
        loaded = StateStore(open_destination()).load()
        assert (loaded.lineage, loaded.serial, loaded.format_version) == (state.lineage, 7, STATE_FORMAT_VERSION)

    def test_a_lock_held_through_one_handle_stops_another(self, ready: Destination, open_destination: Opener) -> None:
        mine, theirs = StateStore(ready), StateStore(open_destination())
        lock = mine.acquire("apply")
        with pytest.raises(LockError, match="is locked"):
            theirs.acquire("apply")
        mine.save_and_release(mine.load(), None, lock)
        theirs.release(theirs.acquire("apply"))
        assert theirs.current_lock() is None

    # -- capabilities -------------------------------------------------------------------------

    def test_capabilities_are_declared_and_keep_their_promises(self, ready: Destination) -> None:
        caps = ready.capabilities  # a class attribute, or a property where it depends on what the destination holds
        assert isinstance(caps, Capabilities)
        batch = make_batch(ids(300), seed=5)
        if caps.fill:
            ready.fill(iter([batch.take(np.arange(0, 150)), batch.take(np.arange(150, 300))]))
            ready.after_apply()
            assert stored(ready) == contents(batch, ready.capabilities.vector_precision)
        else:
            ready.upsert(batch)
        if caps.snapshots:
            ready.tag_version("contract-v1")
            ready.upsert(make_batch(batch.id_list[:50], seed=6))
            ready.delete(batch.id_list[250:])
            assert ready.restore_tag("contract-v1") is True
            ready.after_apply()
            assert stored(ready) == contents(batch, ready.capabilities.vector_precision)
            assert ready.restore_tag("contract-never-tagged") is False
        if caps.check_records:
            assert ready.check_records(batch, DIMENSION) == []
            bad = RecordBatch.from_rows([""], np.ones((1, DIMENSION), np.float32), [{}], DIMENSION)
            problems = ready.check_records(bad, DIMENSION)
            assert problems and all(isinstance(p, str) for p in problems)

    def test_aliases_switch_between_slots_that_keep_their_own_state(self, dest: Destination) -> None:
        """``capabilities.aliases`` (blue/green, SPEC §9): slots are destinations of their own, the
        alias is repointed in one step, reads through it see the slot it points at, the live slot
        cannot be dropped."""
        if not dest.capabilities.aliases:
            pytest.skip("the destination declares no aliases")
        assert dest.alias_target() is None
        batches = {"blue": make_batch(ids(20), seed=11), "green": make_batch(ids(20), seed=12)}
        slots = {name: dest.open_slot(name) for name in batches}
        for name, slot in slots.items():
            slot.ensure(DIMENSION, "cosine")
            slot.upsert(batches[name])
            slot.after_apply()
        assert {"blue", "green"} <= set(dest.list_slots())
        slots["blue"].write_doc("state", {"slot": "blue"})
        assert slots["green"].read_doc("state") is None and dest.read_doc("state") is None  # state of their own
        for name in ("blue", "green", "green"):  # a repeated switch is harmless
            dest.switch_alias(name)
            assert dest.alias_target() == name
            probe = batches[name]
            assert dest.query(probe.vectors[3], 1) == [probe.id_list[3]]  # read through the alias
        with pytest.raises(DestinationError):
            dest.drop_slot("green")
        dest.drop_slot("blue")
        dest.drop_slot("blue")  # idempotent
        reopened = dest.open_slot("blue")
        assert "blue" not in dest.list_slots() and reopened.read_doc("state") is None
        assert dest.alias_target() == "green"
        for slot in (*slots.values(), reopened):
            slot.close()

    # -- errors -------------------------------------------------------------------------------

    def test_failures_leave_as_destination_errors(self, dest: Destination, open_destination: Opener) -> None:
        with pytest.raises(DestinationError):
            dest.upsert(make_batch(ids(3)))  # the index does not exist yet
        dest.ensure(DIMENSION, "cosine")
        with pytest.raises(DestinationError):
            dest.upsert(make_batch(ids(3), dimension=DIMENSION + 3))  # vectors the index cannot hold
        dest.close()
        dest.close()


__all__ = ["DIMENSION", "DestinationContract", "MemoryDestination", "contents", "ids", "make_batch", "stored"]
