"""The one interface every destination implements (documented in docs/destinations.md).

Providers know nothing of plans, manifests or datasets: they move records and small JSON
documents (vectorops' own state) in and out of one index/table. Everything else lives in the
engine, so a new destination is a single module.

The contract is closed three ways:

* optional features are declared, never probed: a class sets ``capabilities`` (a frozen
  ``Capabilities``) and the engine calls ``fill``, ``tag_version``/``restore_tag`` or
  ``check_records`` only where the matching flag is set;
* every failure leaves a provider as a ``DestinationError`` subclass: each public method a
  subclass defines is wrapped (``__init_subclass__``) so that whatever it raises goes through
  ``translate_error`` once, at this boundary (httpx's ``map_httpcore_exceptions``). What a
  provider does not recognise stays what it was: a bug, reported as one;
* the settings, address and factory live beside the class, in the provider's own
  ``DestinationSettings`` subclass, found through ``registry`` by the manifest's ``type``.

What is not a failure but the user should still hear (pgvector's index build ran out of memory
and went on, several times slower, on disk) a destination records with ``warn``; the command's
``DestinationSession`` takes it (``take_warnings``) and the CLI prints it once the command is done.
A warning goes through the same redaction as an error's message, so it can never carry a secret.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from reconciler.errors import (
    DestinationError,
    DestinationStorageError,
    DestinationUnavailableError,
    VectorOpsError,
)
from reconciler.records import RecordBatch

#: the longest warning kept (after redaction): one line, never a dump of a server's reply
WARNING_CHARS = 1_000

#: the precisions a destination can store vectors at (``Capabilities.vector_precision``)
VectorPrecision = Literal["float32", "float16"]


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do beyond the required methods; the engine reads these, never probes.

    Every flag defaults to False, so a destination that declares nothing is driven through the
    required methods alone, correctly if not always at its fastest. A flag set to True promises
    that the matching methods work (the contract suite, ``tests/contract``, checks it).
    """

    #: ``fill(batches)``: stream every record into an EMPTY destination in one step (one commit),
    #: cheaper than upserts that must match existing ids. Used for a first apply with no deletes.
    fill: bool = False
    #: a whole bounded plan is best written as ONE ``upsert`` and ONE ``delete`` call, because each
    #: call is a commit (fewer, larger calls are faster). Without it, apply streams batches through
    #: ``upsert_stream`` and deletes in batches, saving progress between them.
    single_step: bool = False
    #: ``tag_version(tag)`` and ``restore_tag(tag)``: named snapshots of the whole content, so a
    #: rollback to a recently deployed version is a metadata operation, not a re-upload.
    snapshots: bool = False
    #: ``check_records(batch, dimension)`` finds records the destination would refuse (id length,
    #: metadata types), so plan refuses them before anything is written. Plan reads the records it
    #: would write only for destinations that check.
    check_records: bool = False
    #: ``apply_changes(batches, delete_ids)``: an apply's upserts and deletes become visible
    #: together (one transaction), so readers see the old version or the new one, never a mix, and
    #: an apply cut off before the end leaves nothing written (pgvector, SPEC §7).
    single_commit: bool = False
    #: readers address a stable alias that can be repointed atomically between physical slots
    #: (``rollout: blue_green``, SPEC §9): ``open_slot``, ``list_slots``, ``alias_target``,
    #: ``switch_alias`` and ``drop_slot`` work. The destination opened from the manifest stands
    #: for the alias (its documents hold the environment's state); each slot is a destination of
    #: its own, with its own state, written by the ordinary apply.
    aliases: bool = False
    #: what the destination stores a vector's components as, and so gives back: ``float32``, the
    #: dataset's own (bit-exact), or ``float16`` (pgvector's ``halfvec``: each component rounded to
    #: the nearest float16). The engine hashes the dataset's vectors rounded to this precision for
    #: this destination, so a ``full`` or ``sample`` refresh compares what the destination can hold
    #: with what it holds, and the plan never rewrites a record whose change the rounding erases.
    vector_precision: VectorPrecision = "float32"


@dataclass(frozen=True)
class DestinationInfo:
    exists: bool
    dimension: int | None = None
    metric: str | None = None  # cosine | dotproduct | euclidean
    count: int = 0  # user records only: never counts vectorops' own state


#: public methods whose failures are translated into ``DestinationError``s (``translate_error``)
GUARDED_METHODS = frozenset({
    "describe", "ensure", "iter_ids", "all_ids", "id_batches", "fetch", "fetch_many", "iter_records", "upsert", "upsert_stream",
    "delete", "query", "read_doc", "write_doc", "write_docs", "delete_doc", "list_docs", "list_doc_keys",
    "after_apply", "fill", "tag_version", "restore_tag", "close", "apply_changes",
    "open_slot", "list_slots", "alias_target", "switch_alias", "drop_slot",
})
#: those that return iterators: their failures happen while the caller iterates
_STREAMING = frozenset({"iter_ids", "id_batches", "fetch_many", "iter_records", "upsert_stream", "apply_changes"})
_DOING = {
    "describe": "describing it", "ensure": "creating it", "iter_ids": "listing ids", "all_ids": "listing ids", "id_batches": "listing ids",
    "fetch": "fetching records", "fetch_many": "fetching records", "iter_records": "reading records", "upsert": "writing records",
    "upsert_stream": "writing records", "delete": "deleting records", "query": "querying",
    "read_doc": "reading vectorops state", "write_doc": "writing vectorops state",
    "write_docs": "writing vectorops state", "delete_doc": "writing vectorops state",
    "list_docs": "reading vectorops state", "list_doc_keys": "reading vectorops state",
    "after_apply": "finishing the apply", "fill": "writing records", "tag_version": "tagging the version",
    "restore_tag": "restoring a tagged version", "close": "closing the connection",
    "apply_changes": "writing records", "open_slot": "opening a slot", "list_slots": "listing slots",
    "alias_target": "reading the alias", "switch_alias": "switching the alias", "drop_slot": "deleting a slot",
}


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, bounded, secrets masked: what a translated error quotes."""
    from reconciler.redact import printable, redact

    text = " ".join(str(exc).split()) or "(no message)"
    return printable(redact(f"{type(exc).__name__}: {text}")[:500])


def _guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Destination, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except VectorOpsError:
            raise
        except Exception as exc:
            translated = self.translate_error(exc, _DOING.get(name, name))
            if translated is None:
                raise
            raise translated from None  # the original may quote a secret; the message says what it was
        return _guard_stream(self, name, result) if name in _STREAMING else result

    guarded.__vectorops_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _guard_stream(self: Destination, name: str, stream: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from stream
    except VectorOpsError:
        raise
    except Exception as exc:
        translated = self.translate_error(exc, _DOING.get(name, name))
        if translated is None:
            raise
        raise translated from None


class Destination(ABC):
    """One index (or table, or namespace) that holds one environment's records.

    Subclasses implement the abstract methods, set ``capabilities`` for what they can do beyond
    them, and override ``translate_error`` to say what their SDK's exceptions mean.
    """

    #: a stable, secret-free address shown in plans, e.g. ``lancedb:.vectorops/lancedb#docs``
    address: str
    #: what this destination can do beyond the required methods (see ``Capabilities``)
    capabilities: ClassVar[Capabilities] = Capabilities()

    #: ids per list request where listing pages (Pinecone: 100), so a plan can tell how many
    #: requests an `ids` refresh costs; None where ids come in one scan
    list_page_size: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED_METHODS & set(vars(cls)):
            method = vars(cls)[name]
            if callable(method) and not getattr(method, "__vectorops_guarded__", False):
                setattr(cls, name, _guard(name, method))

    def warn(self, message: str, secrets: Sequence[str] = ()) -> None:
        """Tell the user something that is not a failure (how to make the next apply faster, say).

        One sentence without the address (the session adds it). It is made safe to show here, once:
        masked like an error message (the values of secret-looking variables, every registered
        secret, and ``secrets``: what the provider holds itself, such as the password of its DSN),
        on one line, bounded.
        """
        from reconciler.redact import printable, redact

        text = printable(redact(" ".join(message.split()), list(secrets))[:WARNING_CHARS])
        pending: list[str] = vars(self).setdefault("_pending_warnings", [])
        if text and text not in pending:
            pending.append(text)

    def take_warnings(self) -> list[str]:
        """The warnings recorded since the last take, oldest first, each once; taking clears them."""
        pending: list[str] = vars(self).pop("_pending_warnings", [])
        return pending

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        """The ``DestinationError`` a failure while ``doing`` (e.g. "writing records") means, or
        None when it is not the destination's failure but a bug (then it propagates as it was).

        The default knows the standard library's I/O errors. Providers extend it with their SDK's
        exception types, and keep secrets out of the message (``describe_exception`` masks the
        values of secret-looking environment variables).
        """
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return DestinationUnavailableError(
                f"{self.address}: {doing} failed: {describe_exception(exc)}",
                hint="The destination could not be reached; check the network and run the command again.",
            )
        if isinstance(exc, OSError):
            return DestinationStorageError(
                f"{self.address}: {doing} failed: {describe_exception(exc)}",
                hint="Check the destination's storage: free space, permissions, and that its files are intact.",
            )
        return None

    @abstractmethod
    def describe(self) -> DestinationInfo: ...

    @abstractmethod
    def ensure(self, dimension: int, metric: str) -> None:
        """Create the index/table when it does not exist yet."""

    @abstractmethod
    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        """Every user record id, in batches."""

    def all_ids(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> pa.Array:
        """Every user record id as one Arrow string array (ids are small; vectors never are).

        ``expected``: the ids the destination most likely holds (sorted), a hint a destination that
        can only page through ids uses to split the listing; the answer never depends on it.
        ``progress``: called with how many ids are listed so far, where listing takes a while."""
        chunks = list(self.id_batches(expected, progress))
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    def id_batches(self, expected: pa.Array | None = None, progress: Callable[[int], None] | None = None) -> Iterator[pa.Array]:
        """Every user record id, as Arrow string arrays one after the other (``all_ids`` in pieces).

        What a plan of a version too large to hold reads (``engine/listed.py``): it keeps each
        array only while it hashes and spills it, so a listing of 100M ids never sits in memory.
        ``expected`` and ``progress`` as for ``all_ids``. A destination that can only list whole
        (all its ids at once, checked together) yields one array."""
        listed = 0
        for batch in self.iter_ids():
            listed += len(batch)
            yield pa.array(batch, pa.string())
            if progress is not None:
                progress(listed)

    @abstractmethod
    def fetch(self, ids: Sequence[str]) -> RecordBatch:
        """The records with these ids that exist (missing ids are simply absent)."""

    def fetch_many(self, ids: Sequence[str], batch_size: int = 1_000) -> Iterator[RecordBatch]:
        """``fetch`` of many ids (a ``sample`` refresh's 10,000): the records that exist, at most
        ``batch_size`` at a time, in no particular order (missing ids simply absent).

        Default: ``fetch`` of ``batch_size`` ids at a time. A store that can only find ids by
        scanning (LanceDB without an index on ``id``) overrides it to find them all in one scan."""
        for start in range(0, len(ids), batch_size):
            yield self.fetch(ids[start : start + batch_size])

    @abstractmethod
    def iter_records(self, batch_size: int = 5_000, expected: pa.Array | None = None) -> Iterator[RecordBatch]:
        """Every user record with vector and metadata, in batches (full refresh, export).
        ``expected``: the same hint as for ``all_ids``."""

    @abstractmethod
    def upsert(self, batch: RecordBatch) -> None:
        """Write records, replacing any with the same id. Idempotent."""

    def upsert_stream(self, batches: Iterable[RecordBatch]) -> Iterator[int]:
        """Upsert every batch, yielding how many records have landed as they land (progress).

        The default upserts batch by batch. A destination that cuts batches into requests packs
        records across batch boundaries instead, so only the very last request is part-full."""
        for batch in batches:
            self.upsert(batch)
            yield len(batch)

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Delete by id; ids that do not exist are ignored. Idempotent."""

    @abstractmethod
    def query(self, vector: np.ndarray, top_k: int) -> list[str]:
        """Ids of the ``top_k`` nearest records under the index's metric."""

    # -- vectorops' own documents (state, lock, history), kept beside the records -----------

    @abstractmethod
    def read_doc(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def write_doc(self, key: str, doc: dict[str, Any]) -> None: ...

    def write_docs(self, docs: dict[str, dict[str, Any]]) -> None:
        """Write several documents in as few requests as the destination allows.

        Each document lands whole, as ``write_doc`` would write it, and is readable when this
        returns. Where the documents cannot all land in one step they land in the order given.
        The default writes them one by one, in that order.
        """
        for key, doc in docs.items():
            self.write_doc(key, doc)

    @abstractmethod
    def delete_doc(self, key: str) -> None: ...

    @abstractmethod
    def list_docs(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """All documents whose key starts with ``prefix``, sorted by key."""

    def list_doc_keys(self, prefix: str) -> list[str]:
        """The keys alone, sorted: destinations that can list without reading documents override it."""
        return [key for key, _ in self.list_docs(prefix)]

    @contextlib.contextmanager
    def critical_section(self) -> Iterator[None]:
        """Mutual exclusion around a state read-modify-write, where the destination can give one."""
        yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Mutual exclusion among processes for taking vectorops' lock (``StateStore.acquire``).

        Stronger than ``critical_section`` where that is a no-op: a destination whose reads may lag
        its writes (Pinecone) must still let only one process at a time decide that the lock is
        free and take it. The default is the critical section."""
        with self.critical_section():
            yield

    def after_apply(self) -> None:
        """Housekeeping after a successful apply (compaction, waiting for consistency)."""

    # -- optional: called only where ``capabilities`` says so -----------------------------------

    def fill(self, batches: Iterable[RecordBatch]) -> None:
        """``capabilities.fill``: write every record of ``batches`` into the empty destination in one step."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.fill")

    def tag_version(self, tag: str) -> None:
        """``capabilities.snapshots``: name the current content ``tag`` (replacing an older one)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.snapshots")

    def restore_tag(self, tag: str) -> bool:
        """``capabilities.snapshots``: make the content that of ``tag`` again; False when the tag is
        gone (the engine then applies the diff instead)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.snapshots")

    def apply_changes(self, batches: Iterable[RecordBatch], delete_ids: Sequence[str]) -> Iterator[int]:
        """``capabilities.single_commit``: upsert every batch and delete ``delete_ids`` so that all of
        it becomes visible at once, when the iterator is exhausted; yields how many records have
        been staged as they are (progress). Abandoning the iterator writes nothing.

        This default upserts then deletes, visibly step by step: a destination that declares
        ``single_commit`` overrides it with one transaction."""
        yield from self.upsert_stream(batches)
        self.delete(list(delete_ids))

    def check_records(self, batch: RecordBatch, dimension: int) -> list[str]:
        """``capabilities.check_records``: what the destination would refuse in ``batch``, one sentence
        per problem naming the ids; no I/O."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.check_records")

    # -- optional: ``capabilities.aliases`` (blue/green rollouts, SPEC §9) -----------------------

    def open_slot(self, slot: str) -> Destination:
        """``capabilities.aliases``: the physical slot ``slot`` (a namespace, collection or table
        beside the alias) as a destination of its own, with its own state documents. Opening
        creates nothing."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.aliases")

    def list_slots(self) -> list[str]:
        """``capabilities.aliases``: the names of the slots that exist, sorted."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.aliases")

    def alias_target(self) -> str | None:
        """``capabilities.aliases``: the slot the alias points at now, None when there is no alias
        yet. A name the alias cannot take (a real table, collection or namespace of that name) is
        a ``DestinationConfigError`` that says how to move it aside."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.aliases")

    def switch_alias(self, slot: str) -> None:
        """``capabilities.aliases``: point the alias at ``slot`` (creating it the first time) in ONE
        atomic step: readers see the old slot or the new one, never neither. Safe to repeat."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.aliases")

    def drop_slot(self, slot: str) -> None:
        """``capabilities.aliases``: delete the slot's records and its own documents. Never called
        for the slot the alias points at. Idempotent."""
        raise NotImplementedError(f"{type(self).__name__} does not declare capabilities.aliases")

    def close(self) -> None:
        """Release connections."""
