"""What `status` and `history` report, decided here as values; the CLI prints their JSON form.

``status`` compares what an environment's state says is deployed with what the manifest pins and
what the destination holds: ``Synced`` (deployed is desired, the counts agree), ``OutOfSync``
(another version is pinned, or nothing is deployed) or ``Drifted`` (an apply was cut off, or the
destination holds another number of records than was recorded). ``history`` lists every apply,
newest first, an apply that was cut off (or is still running) included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from reconciler.engine.session import DestinationSession
from reconciler.engine.state import Deployed, HistoryEntry, Intent, StateStore, interrupted_entry
from reconciler.errors import VectorOpsError
from reconciler.manifest import LoadedManifest
from reconciler.providers import destination_address


class SyncStatus(str, Enum):
    """An environment's standing, as `status` names it (SPEC §3)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    DRIFTED = "Drifted"


def classify(deployed: Deployed | None, desired: tuple[str, str, str], intent: Intent | None, records: int | None) -> SyncStatus:
    """``desired``: the pinned (version, commit, digest); ``records``: what the destination holds."""
    version, commit, digest = desired
    if deployed is None or (deployed.version, deployed.commit, deployed.digest) != (version, commit, digest):
        return SyncStatus.OUT_OF_SYNC
    if intent is not None or records != deployed.records:
        return SyncStatus.DRIFTED
    return SyncStatus.SYNCED


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    status: SyncStatus
    destination: str
    deployed: Deployed | None
    desired: dict[str, str]
    records: int | None
    serial: int
    last_apply: HistoryEntry | None
    lock: dict[str, Any] | None
    interrupted: Intent | None
    suspended: Any = None  # state.Suspension: the agent leaves the environment alone
    rollout: dict[str, Any] | None = None  # blue/green: the live slot and every slot's version (SPEC §9)

    def to_json(self) -> dict[str, Any]:
        dep = self.deployed
        return {
            "name": self.name,
            "status": self.status.value,
            "destination": self.destination,
            "deployed": {"version": dep.version, "commit": dep.commit, "digest": dep.digest} if dep else None,
            "desired": dict(self.desired),
            "validated": dep.validated if dep else None,
            "records": self.records,
            "serial": self.serial,
            "last_apply": self.last_apply.to_doc() if self.last_apply else None,
            "lock": dict(self.lock) if self.lock else None,
            "interrupted": self.interrupted.model_dump(mode="json") if self.interrupted else None,
            "suspended": self.suspended.model_dump(mode="json") if self.suspended else None,
            **({"rollout": self.rollout} if self.rollout is not None else {}),
        }


def environment_status(manifest: LoadedManifest, name: str, session: DestinationSession) -> EnvironmentStatus:
    env = manifest.model.environments[name]
    desired = manifest.pinned_version(name)
    dest = session.destination(name)
    store = StateStore(dest)
    st = store.load()
    rollout = None
    if env.rollout.strategy == "blue_green":  # readers see the live slot: count what it holds
        from reconciler.engine.rollout import rollout_status

        rollout, live_slot = rollout_status(manifest, name, dest, st)
        if live_slot is not None:
            session.adopt(live_slot)
        info = live_slot.describe() if live_slot is not None else dest.describe()
    else:
        info = dest.describe()
    last = store.history(limit=1)
    lock = store.current_lock()
    return EnvironmentStatus(
        name=name,
        status=classify(st.deployed, (env.version, desired.commit, desired.digest), st.intent, info.count),
        destination=destination_address(manifest, name),
        deployed=st.deployed,
        desired={"version": env.version, "commit": desired.commit, "digest": desired.digest},
        records=info.count,
        serial=st.serial,
        last_apply=last[0] if last else None,
        lock=(
            {"lock_id": lock.id, "owner": lock.owner, "operation": lock.operation, "acquired_at": lock.acquired_at, "expires_at": lock.expires_at}
            if lock and not lock.expired()
            else None
        ),
        interrupted=st.intent,
        suspended=st.suspended,
        rollout=rollout,
    )


@dataclass(frozen=True)
class HistoryReport:
    environment: str
    total: int
    entries: tuple[HistoryEntry, ...]
    unreadable: tuple[tuple[str, str], ...]  # (document key, why), skipped: one bad entry must not hide the rest

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"environment": self.environment, "total": self.total, "history": [e.to_doc() for e in self.entries]}
        if self.unreadable:
            body["unreadable"] = [{"key": key, "problem": why} for key, why in self.unreadable]
        return body


def history_report(manifest: LoadedManifest, name: str, limit: int | None, session: DestinationSession) -> HistoryReport:
    store = StateStore(session.destination(name))
    try:
        st: Any = store.load()
    except VectorOpsError:  # a corrupt state document: the history entries still show
        st = None
    found: list[HistoryEntry] = []
    if st is not None and st.intent is not None:  # an apply cut off (or still running): it has no entry of its own yet
        lock = store.current_lock()
        entry = interrupted_entry(st.intent, st.serial, st.deployed, finished=False)
        if lock is not None and not lock.expired() and not lock.holder_is_dead():
            entry = entry.model_copy(update={"result": "in progress", "message": f"{st.intent.done:,} of {st.intent.total:,} changes written so far"})
        found.append(entry)
    total = store.history_count() + len(found)
    rest = None if limit is None else limit - len(found)
    if rest is None or rest > 0:
        found.extend(store.history(rest))
    return HistoryReport(name, total, tuple(found), tuple(store.unreadable_history))
