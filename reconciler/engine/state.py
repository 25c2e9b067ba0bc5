"""vectorops state kept in the destination itself: deployed version, serial, intent, lock, history.

Keeping state beside the records means every machine that can reach the index (a laptop, a CI
runner) agrees on what is deployed with nothing else to configure. The serial advances whenever an
apply records its intent and again when it records its result, so a saved plan can tell that the
world moved since it was made (Terraform's stale-plan check).

Every document (state, lock, history entry) carries ``format_version`` and the ``vectorops_version``
that wrote it (SPEC §6). Reading goes through ``read_document``: a document from an older format
(0.1.0 wrote format 1, which had no such field) is upgraded in memory and written back in the
current format by the next write; one from a newer format is refused with the version to install,
before anything is written, so an older vectorops never rewrites what it cannot read.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler import __version__
from reconciler.errors import LeaseLostError, LockError, StateError, StateFormatError
from reconciler.providers.base import Destination
from reconciler.redact import printable

STATE_KEY = "state"
LOCK_KEY = "lock"
HISTORY_PREFIX = "history/"
LEASE_SECONDS = int(os.environ.get("VECTOROPS_LOCK_LEASE_SECONDS", "60"))
#: a lock document carrying this field is a released lock (``StateStore.save_and_release``)
RELEASED_AT = "released_at"
#: the id ``force-unlock`` takes for a lock document too corrupt to carry one
UNREADABLE_LOCK_ID = "unreadable"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def actor() -> str:
    """Who is applying: VECTOROPS_ACTOR, else the CI actor, else user@host."""
    if os.environ.get("VECTOROPS_ACTOR"):
        return os.environ["VECTOROPS_ACTOR"]
    if os.environ.get("GITHUB_ACTOR"):
        run = os.environ.get("GITHUB_RUN_ID")
        return f"{os.environ['GITHUB_ACTOR']} (GitHub Actions run {run})" if run else os.environ["GITHUB_ACTOR"]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class _Doc(BaseModel):
    """A state document's part: a frozen value. Code that changes state makes a changed copy
    (``model_copy(update=...)``) and saves that, so nothing holding the state it loaded sees it move.
    Unknown fields are kept: a document written by a newer vectorops keeps what this one does not know."""

    model_config = ConfigDict(extra="allow", frozen=True)


#: the state format this vectorops writes. 1: what 0.1.0 wrote (no format field); 2: every
#: document says its format and writer
STATE_FORMAT_VERSION = 2
FORMAT_FIELD = "format_version"
WRITER_FIELD = "vectorops_version"


def _from_format_1(doc: dict[str, Any]) -> dict[str, Any]:
    """0.1.0's documents hold everything format 2 does; only the format fields are new."""
    return doc


#: format n -> the function that turns a format-n document into format n + 1
UPGRADES = {1: _from_format_1}


def read_document(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """``doc`` as the current format: upgraded from an older one, refused if from a newer one."""
    found = doc.get(FORMAT_FIELD, 1)  # absent: written by 0.1.0
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise StateError(
            f"{where}: vectorops state document has format_version {found!r}, which no vectorops writes",
            hint="Re-adopt the index with `vectorops import ENV --version REV`, which rewrites the state from what the index holds.",
        )
    if found > STATE_FORMAT_VERSION:
        writer = doc.get(WRITER_FIELD)
        newer = f"vectorops {writer}" if isinstance(writer, str) and writer else "a newer vectorops"
        install = f"pip install 'vectorops>={writer}'" if isinstance(writer, str) and writer else "pip install -U vectorops"
        raise StateFormatError(
            f"{where}: vectorops state was written by {newer} (state format {found}); this is vectorops {__version__}, "
            f"which reads state formats up to {STATE_FORMAT_VERSION}. Nothing was changed.",
            hint=f"Install vectorops {writer} or newer ({install}) to work with this environment."
            if isinstance(writer, str) and writer
            else f"Install a newer vectorops ({install}) to work with this environment.",
        )
    out = dict(doc)
    for version in range(found, STATE_FORMAT_VERSION):
        out = UPGRADES[version](out)
    out[FORMAT_FIELD] = STATE_FORMAT_VERSION
    return out


class _Document(_Doc):
    """A top-level document (state, lock, history entry): written with its format and writer."""

    format_version: int = STATE_FORMAT_VERSION
    vectorops_version: str = __version__

    def stamped(self) -> dict[str, Any]:
        """The JSON form as this vectorops writes it: current format, this version as writer."""
        doc = self.model_dump(mode="json")
        doc[FORMAT_FIELD], doc[WRITER_FIELD] = STATE_FORMAT_VERSION, __version__
        return doc


class VersionRef(_Doc):
    version: str
    commit: str
    digest: str


class Deployed(VersionRef):
    model: str
    dimension: int
    metric: str
    records: int
    applied_at: str
    validated: bool | None = None  # None: the environment has no validation configured
    validation: dict[str, Any] | None = None


class Intent(VersionRef):
    plan_id: str
    started_at: str
    actor: str
    total: int
    done: int = 0
    allow_deletes: bool = False
    replace: bool = False
    operation: str = "apply"
    #: the whole move's counts (add/update/delete), kept when a later apply finishes this one
    counts: dict[str, int] | None = None


class Suspension(_Doc):
    """Who suspended the environment, when and why (``vectorops suspend``): the reconcile agent
    plans a suspended environment but never applies it; `apply` from a laptop warns."""

    by: str
    at: str
    reason: str | None = None

    def describe(self) -> str:
        return f"by {printable(self.by)} since {self.at}" + (f": {printable(self.reason)}" if self.reason else "")


class SlotRef(VersionRef):
    """One blue/green slot as the environment's state records it (its own state says more)."""

    name: str
    model: str | None = None
    applied_at: str | None = None
    validated: bool | None = None


class RolloutState(_Doc):
    """``rollout: blue_green`` (SPEC §9): which slot the alias points at and what every slot holds.

    Added to format 2 as an optional field: a vectorops that predates it keeps it untouched
    (documents allow unknown fields) and an in-place environment never has it."""

    strategy: str = "blue_green"
    live: str | None = None
    slots: list[SlotRef] = []
    #: a rollout that recorded its target slot and was cut off before recording its result
    pending: dict[str, Any] | None = None


class EnvState(_Document):
    """One environment's state document.

    ``suspended`` was added without a new format version on purpose: the field is optional (a
    document without it, from 0.1.0 on, reads as not suspended), and a reader of format 2 that
    predates it keeps it untouched (unknown fields are kept, ``extra="allow"``) and loses nothing
    it relies on, since only the agent, which is newer, acts on it. A format bump would make every
    older vectorops refuse every environment this one writes, for a field they can safely ignore.
    """

    lineage: str
    serial: int = 0
    deployed: Deployed | None = None
    previous: Deployed | None = None
    intent: Intent | None = None
    suspended: Suspension | None = None
    rollout: RolloutState | None = None

    def stamped(self) -> dict[str, Any]:
        doc = super().stamped()
        for optional in ("suspended", "rollout"):  # absent: the document stays as earlier releases wrote it
            if doc.get(optional) is None:
                doc.pop(optional, None)
        return doc

    @staticmethod
    def new() -> EnvState:
        return EnvState(lineage=str(uuid.uuid4()))


class Lock(_Document):
    """The lease on an environment. Not a frozen value: it is the live handle an apply shares with
    the thread that renews it, so a renewal (``expires_at``) is seen by the apply's next fenced write."""

    model_config = ConfigDict(extra="allow", frozen=False)

    id: str
    owner: str
    operation: str
    acquired_at: str
    expires_at: str
    host: str | None = None
    pid: int | None = None
    unreadable: bool = False  # the lock document could not be read: holder unknown (``Lock.unknown_holder``)

    @staticmethod
    def unknown_holder(doc: Any) -> Lock:
        """What a corrupt lock document stands for: a lock of unknown holder whose lease cannot be
        known, so it counts as lapsed. Nobody is stranded (the next apply takes it over, as it would
        a dead holder's) and ``force-unlock ENV <id>`` removes it; a real holder, if any, finds its
        lock gone at its next write and stops (``StateStore.check_held``)."""
        found = doc.get("id") if isinstance(doc, dict) else None
        lock_id = found if isinstance(found, str) and found else UNREADABLE_LOCK_ID
        return Lock(
            id=lock_id, owner="an unknown holder (the lock document is unreadable)", operation="unknown",
            acquired_at=iso(datetime.fromtimestamp(0, timezone.utc)), expires_at=iso(datetime.fromtimestamp(0, timezone.utc)),
            unreadable=True,
        )

    def stamped(self) -> dict[str, Any]:
        doc = super().stamped()
        doc.pop("unreadable", None)  # in memory only: what ``unknown_holder`` made of an unreadable document
        return doc

    def expired(self, at: datetime | None = None) -> bool:
        return parse_iso(self.expires_at) <= (at or now())

    def holder_is_dead(self) -> bool:
        """True when the holder ran on this machine and its process is gone (no need to wait for the lease)."""
        if self.host != socket.gethostname() or not self.pid or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        if self.unreadable:
            return f"held by an unknown holder: the lock document is unreadable (lock id {self.id})"
        return f"held by {self.owner} (lock id {self.id}, {self.operation} since {self.acquired_at}, lease expires {self.expires_at})"


class HistoryEntry(_Document):
    serial: int
    started_at: str
    finished_at: str
    duration_s: float
    actor: str
    operation: str  # apply | rollback | import | replace
    from_: VersionRef | None = None
    to: VersionRef
    counts: dict[str, int]
    result: str  # success | failed | validation_failed | interrupted (cut off; a later apply finished it)
    plan_id: str
    message: str | None = None
    validation: dict[str, Any] | None = None
    #: the serial at which the apply recorded its intent (``serial`` is its result's): every serial
    #: the state passed through belongs to one entry. None for entries that take one serial (import).
    intent_serial: int | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_doc(self) -> dict[str, Any]:
        """The entry as `history --json` shows it (the stored form is ``stamped()``)."""
        doc = self.model_dump(mode="json", exclude={"from_", FORMAT_FIELD, WRITER_FIELD})
        doc["from"] = self.from_.model_dump(mode="json") if self.from_ else None
        return doc

    def stamped(self) -> dict[str, Any]:
        return {**self.to_doc(), FORMAT_FIELD: STATE_FORMAT_VERSION, WRITER_FIELD: __version__}

    @staticmethod
    def from_doc(doc: dict[str, Any], where: str = "history") -> HistoryEntry:
        data = read_document(doc, where)
        data["from_"] = data.pop("from", None)
        return HistoryEntry.model_validate(data)


def interrupted_entry(intent: Intent, serial: int, deployed: Deployed | None, *, finished: bool) -> HistoryEntry:
    """The history entry of an apply that was cut off (kill -9, a lost runner) after recording its
    intent at ``serial``: never finished by itself, so it never wrote its own entry."""
    later = "finished by the next apply" if finished else "the next apply finishes it"
    return HistoryEntry(
        serial=serial,
        started_at=intent.started_at,
        finished_at=intent.started_at,
        duration_s=0.0,
        actor=intent.actor,
        operation=intent.operation,
        from_=VersionRef(version=deployed.version, commit=deployed.commit, digest=deployed.digest) if deployed else None,
        to=VersionRef(version=intent.version, commit=intent.commit, digest=intent.digest),
        counts=dict(intent.counts or {}),
        result="interrupted",
        plan_id=intent.plan_id,
        message=f"cut off after {intent.done:,} of {intent.total:,} changes were recorded as written; {later}",
    )


def _history_key(entry: HistoryEntry) -> str:
    return f"{HISTORY_PREFIX}{entry.serial:010d}"


def _malformed(what: str, exc: Exception, where: str) -> StateError:
    return StateError(
        f"{where}: vectorops {what} record is malformed ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
        hint="Re-adopt the index with `vectorops import ENV --version REV`, which rewrites the state from what the index holds.",
    )


class StateStore:
    """State, lock and history of one environment, stored through its destination's documents."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._heartbeats: dict[str, _Heartbeat] = {}
        self._settled: set[str] = set()  # locks save_and_release already released (or found taken over)
        self.unreadable_history: list[tuple[str, str]] = []  # (key, why) skipped by the last ``history``
        # one renewal at a time: the heartbeat's and a write's (``fenced``) would otherwise race to
        # write the same lock document; always taken before the destination's critical section
        self._renewing = threading.Lock()
        self._fencing = False  # a ``fenced`` write holds the critical section right now

    # -- state ---------------------------------------------------------------------------------

    def load(self) -> EnvState:
        doc = self.destination.read_doc(STATE_KEY)
        if doc is None:
            return EnvState.new()
        doc = read_document(doc, self.destination.address)
        try:
            return EnvState.model_validate(doc)
        except ValidationError as exc:
            raise _malformed("state", exc, self.destination.address) from None

    def save(self, state: EnvState) -> None:
        self.destination.write_doc(STATE_KEY, state.stamped())

    # -- history -------------------------------------------------------------------------------

    def append_history(self, entry: HistoryEntry) -> None:
        self.destination.write_doc(_history_key(entry), entry.stamped())

    def history_count(self) -> int:
        return len(self.destination.list_doc_keys(HISTORY_PREFIX))

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        """Newest first. With ``limit``, only that many readable documents are read (keys are listed
        first): an environment with years of applies does not fetch them all to show the last one.

        An unreadable entry (not JSON, or not a history record) is skipped, never fatal: one bad
        document must not hide every other apply. The skipped keys and why are left in
        ``unreadable_history`` for the caller to report.
        """
        self.unreadable_history = []
        docs: list[tuple[str, dict[str, Any]]] | None = None
        if limit is None:
            try:
                docs = self.destination.list_docs(HISTORY_PREFIX)
            except StateError:  # one unreadable document: read them one by one, below
                docs = None
        if docs is not None:
            pairs: Iterator[tuple[str, dict[str, Any] | StateError | None]] = iter(reversed(docs))
        else:
            keys = self.destination.list_doc_keys(HISTORY_PREFIX) if limit is None or limit > 0 else []
            pairs = ((key, self._read_or_error(key)) for key in reversed(keys))  # lazily: stops at ``limit``
        entries: list[HistoryEntry] = []
        if limit is not None and limit <= 0:
            return entries
        for key, doc in pairs:
            if doc is None:
                continue
            if isinstance(doc, StateError):
                self.unreadable_history.append((key, doc.message))
                continue
            try:
                entries.append(HistoryEntry.from_doc(doc, self.destination.address))
            except ValidationError as exc:
                self.unreadable_history.append((key, f"not a history record ({str(exc).splitlines()[0]})"))
                continue
            if limit is not None and len(entries) >= limit:
                break  # before the next document is read
        return entries

    def _read_or_error(self, key: str) -> dict[str, Any] | StateError | None:
        try:
            return self.destination.read_doc(key)
        except StateError as exc:
            return exc

    # -- lock ----------------------------------------------------------------------------------

    def current_lock(self) -> Lock | None:
        """The lock in force, if any. A released lock (see ``save_and_release``) is no lock, and so is
        a missing lock document (how ``release`` and versions before the released marker leave it)."""
        try:
            doc = self.destination.read_doc(LOCK_KEY)
        except StateError:  # not JSON: a lock of unknown holder
            return Lock.unknown_holder(None)
        if doc is None:
            return None
        doc = read_document(doc, self.destination.address)  # a newer vectorops' lock is never taken over
        if doc.get(RELEASED_AT) is not None:
            return None
        try:
            return Lock.model_validate(doc)
        except ValidationError:
            return Lock.unknown_holder(doc)

    def acquire(self, operation: str, lease_seconds: int = LEASE_SECONDS) -> Lock:
        """Take the lock, or raise ``LockError`` naming its holder.

        Deciding that the lock is free and writing ours happen inside ``destination.exclusive()``,
        so two applies never both find it free: LanceDB's is a file lock; Pinecone, whose reads
        lag its writes, orders contenders by the LSNs of their claims (the argument is written out
        at ``PineconeDestination.exclusive``). A loser then reads the winner's lock and names it.
        """
        with self.destination.exclusive():
            held = self.current_lock()
            if held is not None and not held.expired() and not held.holder_is_dead():
                raise LockError(
                    f"{self.destination.address} is locked: {held.describe()}",
                    hint="Wait for that apply to finish; a holder that died loses the lock when its lease lapses "
                    f"(at most {LEASE_SECONDS} s), or run `vectorops force-unlock ENV {held.id}`.",
                )
            t = now()
            lock = Lock(
                id=str(uuid.uuid4()),
                owner=actor(),
                operation=operation,
                acquired_at=iso(t),
                expires_at=iso(t + timedelta(seconds=lease_seconds)),
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            self.destination.write_doc(LOCK_KEY, lock.stamped())
        confirmed = self.current_lock()
        if confirmed is None or confirmed.id != lock.id:
            raise LockError(
                f"{self.destination.address}: another apply took the lock at the same moment"
                + (f" ({confirmed.describe()})" if confirmed else ""),
                hint="Run the apply again once the other one has finished.",
            )
        return lock

    def renew(self, lock: Lock, lease_seconds: int = LEASE_SECONDS) -> None:
        # while this process's own write holds the critical section (``fenced``), nobody else can
        # force-unlock or take over, so the renewal goes ahead without it: waiting for it would let
        # a write longer than the lease lose the lock it holds
        with self._renewing, (contextlib.nullcontext() if self._fencing else self.destination.critical_section()):
            held = self.current_lock()
            if held is None or held.id != lock.id:
                return  # taken over or force-unlocked: never steal it back
            lock.expires_at = iso(now() + timedelta(seconds=lease_seconds))
            self.destination.write_doc(LOCK_KEY, lock.stamped())

    def check_held(self, lock: Lock) -> None:
        """Raise ``LeaseLostError`` unless ``lock`` is still ours and its lease still runs.

        Called before every write of an apply (``fenced``). A lapsed lease counts as lost even when
        nobody took it over yet: from the moment it lapsed, another apply may have planned against
        the destination, so writing on could mix content behind that plan's back.
        """
        held = self.current_lock()
        if held is not None and held.id == lock.id and not held.expired():
            return
        if held is None:
            why = "it was force-unlocked"
        elif held.id != lock.id:
            why = f"it is now {held.describe()}"
        else:
            why = f"its lease lapsed at {held.expires_at}"
        raise LeaseLostError(
            f"{self.destination.address}: this apply lost its lock ({why}); it stopped before its next write. "
            "What it wrote so far stays recorded as an interrupted apply",
            hint="Run `vectorops plan`: it reads the records that apply was writing at full, and the next "
            "`vectorops apply` makes the destination exactly the desired version.",
        )

    @contextmanager
    def fenced(self, lock: Lock) -> Iterator[None]:
        """One write of an apply, made only while ``lock`` is still ours.

        Inside the destination's critical section where it has one (LanceDB: a file lock that
        ``acquire`` and ``force_unlock`` take too), so a force-unlock or a takeover cannot slip in
        between the check and the write: it waits for the write, and the write after it is refused.
        A lease past half its time is renewed first, so that a long write cannot outlive it.
        """
        with contextlib.ExitStack() as section:
            with self._renewing:  # always before the critical section (``renew`` takes them in that order)
                section.enter_context(self.destination.critical_section())
                self.check_held(lock)
                if parse_iso(lock.expires_at) - now() < timedelta(seconds=LEASE_SECONDS / 2):
                    lock.expires_at = iso(now() + timedelta(seconds=LEASE_SECONDS))
                    self.destination.write_doc(LOCK_KEY, lock.stamped())
                self._fencing = True
            try:
                yield
            finally:
                self._fencing = False

    def release(self, lock: Lock) -> None:
        if lock.id in self._settled:
            return  # save_and_release released it already, or found it taken over
        with self.destination.critical_section():
            held = self.current_lock()
            if held is not None and held.id == lock.id:
                self.destination.delete_doc(LOCK_KEY)

    def force_unlock(self, lock_id: str) -> Lock:
        if self.current_lock() is None:  # looked at first: an unlock of nothing writes nothing
            raise LockError(f"{self.destination.address} is not locked; nothing to unlock")
        with self.destination.critical_section():
            held = self.current_lock()
            if held is None:
                raise LockError(f"{self.destination.address} is not locked; nothing to unlock")
            if held.id != lock_id:
                raise LockError(
                    f"{self.destination.address}: lock id {lock_id!r} does not match the lock {held.describe()}",
                    hint="Pass the lock id exactly as shown, so you never release someone else's newer lock.",
                )
            self.destination.delete_doc(LOCK_KEY)
            return held

    def save_and_release(self, state: EnvState, entry: HistoryEntry | None, lock: Lock, *, check: bool = False) -> None:
        """Save the state, append the history entry and release the lock, in one ``write_docs``.

        The end of an apply in one write (one request on Pinecone, one commit on LanceDB) instead
        of three. Releasing overwrites the lock document with a released marker, which
        ``current_lock`` reads as no lock. With ``check``, nothing is written unless the lock is
        still ours (``LeaseLostError``): an apply that lost its lock must not record a result over
        the state of the apply that took over. Without it (validation's verdict), the state is
        written regardless and another apply's lock left alone.
        Call it inside ``locked()``; the release at the block's end is then a no-op.
        """
        docs: dict[str, dict[str, Any]] = {STATE_KEY: state.stamped()}
        if entry is not None:
            docs[_history_key(entry)] = entry.stamped()
        heartbeat = self._heartbeats.pop(lock.id, None)
        if heartbeat is not None:  # a renewal racing the release could write the lock back
            heartbeat.stop()
        with self.destination.critical_section():
            if check:
                self.check_held(lock)
            held = self.current_lock()
            if held is not None and held.id == lock.id:
                docs[LOCK_KEY] = {
                    "id": lock.id, "owner": lock.owner, RELEASED_AT: iso(now()),
                    FORMAT_FIELD: STATE_FORMAT_VERSION, WRITER_FIELD: __version__,
                }
            self.destination.write_docs(docs)  # in this order where it takes several writes
        self._settled.add(lock.id)

    @contextmanager
    def locked(self, operation: str, lease_seconds: int = LEASE_SECONDS) -> Iterator[Lock]:
        """Hold the lock for the duration, renewing the lease from a heartbeat thread."""
        lock = self.acquire(operation, lease_seconds)
        heartbeat = _Heartbeat(self, lock, lease_seconds)
        self._heartbeats[lock.id] = heartbeat
        heartbeat.start()
        try:
            yield lock
        finally:
            heartbeat.stop()
            self._heartbeats.pop(lock.id, None)
            self.release(lock)


@dataclass
class _Heartbeat:
    store: StateStore
    lock: Lock
    lease_seconds: int

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vectorops-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(1.0, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.store.renew(self.lock, self.lease_seconds)
            except Exception:  # a missed renewal is retried; the lease outlives two misses
                continue
