"""The reconcile loop (SPEC §11): fetch the branch, plan every selected environment, apply where
the manifest allows, report everything else; never stop for a failure.

Each wake-up is a *cycle*. Every environment has its own schedule: after a good attempt it is due
again one interval later; after a failed one (an error, a blocked plan, failed canaries) it is
retried with exponential backoff, capped at the interval, so one broken environment neither stops
the others nor hammers its destination. A new commit on the branch makes every environment due at
once. The decision per environment, from its plan:

    nothing to change                     -> Synced (or Drifted, when drift changes nothing)
    suspended, or sync.auto off           -> OutOfSync / Drifted, reported only
    pin moved, or an apply was cut off    -> applied (sync.auto)
    only drift, pin unchanged             -> repaired with sync.self_heal, else reported (Drifted)

Plans and applies are the engine's own (``engine_calls``): the agent adds a loop, not a second engine.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.agent import engine_calls as engine
from reconciler.agent.events import Event, Reporter
from reconciler.agent.gitsync import CurrentCheckout, OwnedClone
from reconciler.agent.server import Health
from reconciler.agent.shutdown import Abandoned, Shutdown
from reconciler.errors import VectorOpsError
from reconciler.redact import redact

HEALTH_BEAT_S = 5.0  # the longest the loop sleeps without beating


@dataclass
class LoopSettings:
    manifest: Path  # the manifest inside the source's working tree
    environments: tuple[str, ...]  # none: every environment, in manifest order
    interval: float
    backoff: float  # the first retry's delay; doubles per failure, capped at ``interval``
    refresh: str | None = None  # None: each environment's policy.refresh, else ids
    once: bool = False
    cache_max_size: int | None = None  # bytes: prune the hash cache to this after every cycle


@dataclass
class Schedule:
    """When an environment is next due, and how many attempts in a row have failed."""

    failures: int = 0
    due_at: float = 0.0
    last: tuple[Any, ...] | None = None  # what was last reported, to log a steady state once per change


def describe_failure(exc: BaseException) -> str:
    """A failure as one redacted message: the user's problem where it is one, else a bug report."""
    if isinstance(exc, VectorOpsError):
        return redact(str(exc))
    from reconciler.ioerrors import as_io_error

    io_error = as_io_error(exc)
    if io_error is not None:
        return redact(str(io_error))
    return redact(f"unexpected {exc.__class__.__name__}: {exc} (this is a vectorops bug; please report it)")


@dataclass
class Agent:
    source: OwnedClone | CurrentCheckout
    settings: LoopSettings
    reporter: Reporter
    shutdown: Shutdown
    health: Health
    cycle: int = 0
    manifest: engine.LoadedManifest | None = None
    commit: str | None = None  # the commit in force (its manifest loaded)
    _rejected: tuple[str, str] | None = None  # (commit, manifest digest) last reported invalid
    _schedules: dict[str, Schedule] = field(default_factory=dict)
    _failed_this_cycle: bool = False

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        """Cycle until asked to stop (or once). 0 after a stop; with ``once``, 1 if anything failed."""
        try:
            while not self.shutdown.should_stop():
                self.run_cycle()
                if self.settings.once:
                    return 1 if self._failed_this_cycle else 0
                self._sleep_until_due()
        except Abandoned as why:
            self._emit("stop", "abandoned", level="warning", message=(
                f"stopped mid-apply ({why}); the apply's intent stays recorded and its lock was released, "
                "so the next start finishes it"
            ))
        return 0

    def run_cycle(self) -> None:
        started = time.time()
        self.cycle += 1
        self._failed_this_cycle = False
        self.health.beat()
        self._emit("cycle", "started", level="debug")
        self._follow_branch()
        if self.manifest is not None:
            names = self._selected()
            # one session a cycle: each destination opened once for its plan and apply (and for the
            # environments `requires` reads), every one closed when the cycle ends
            with engine.open_session(self.manifest) as session:
                for name in names:
                    if self.shutdown.should_stop():
                        break
                    schedule = self._schedules.setdefault(name, Schedule())
                    if time.monotonic() >= schedule.due_at:
                        self._reconcile(name, schedule, session)
            for warning in session.take_warnings():  # what no apply took: said before closing, or by a plan
                self._emit("cycle", "warning", level="warning", message=warning.message, details={"destination": warning.destination})
        engine.release_cache_holds()  # the versions this cycle's plans read: others may prune them now
        if self.settings.cache_max_size is not None:
            self._prune_cache(started)
        self._emit("cycle", "ended", level="debug")

    def _prune_cache(self, cycle_started: float) -> None:
        """An agent plans for days: each re-pin leaves a version's hashes in the cache (~0.8 GB at 10M
        records). Keep it to --cache-max-size, never dropping what this cycle used (the next one's
        warm start); a failure is said, never fatal."""
        try:
            result = engine.prune_cache(self.settings.cache_max_size, keep_since=cycle_started - 60)
        except Exception as exc:
            self._emit("cache", "failed", level="warning", message=describe_failure(exc))
            return
        if result.removed_entries or result.failed:
            self._emit("cache", "pruned", level="warning" if result.failed else "info", message=(
                f"removed {result.removed_entries} cache entries ({result.removed_bytes:,} bytes)"
                + (f", versions {', '.join(result.removed_versions)}" if result.removed_versions else "")
                + (f"; could not remove {'; '.join(result.failed)}" if result.failed else "")
            ), details={"removed_bytes": result.removed_bytes, "kept_bytes": result.kept_bytes, "removed_versions": list(result.removed_versions)})

    def _sleep_until_due(self) -> None:
        next_fetch = time.monotonic() + self.settings.interval
        due = min([next_fetch, *(s.due_at for s in self._schedules.values())])
        while not self.shutdown.should_stop():
            left = due - time.monotonic()
            if left <= 0:
                return
            self.shutdown.wait(min(left, HEALTH_BEAT_S))
            self.health.beat()

    # -- the branch ------------------------------------------------------------------------------

    def _follow_branch(self) -> None:
        """Bring the newest commit's manifest in force, or keep the last good one and say why."""
        try:
            head = self.source.fetch()
        except Exception as exc:
            self._failed_this_cycle = True
            kept = f"; the manifest of {self.commit[:12]} stays in force" if self.commit and self.manifest else ""
            self._emit("fetch", "failed", level="error", message=describe_failure(exc) + kept)
            return
        # the owned clone's working tree is the good commit's until checked out: a commit is its key;
        # the current checkout may change on disk under one commit: its manifest's bytes count too
        digest = self._manifest_digest() if isinstance(self.source, CurrentCheckout) else ""
        if self.manifest is not None and head == self.commit and isinstance(self.source, OwnedClone):
            return
        if self._rejected == (head, digest):
            return  # reported once; it stays rejected until the branch moves
        try:
            self.source.checkout(head)
            manifest = engine.load(self.settings.manifest)
        except Exception as exc:
            self._failed_this_cycle = True
            self._rejected = (head, digest)
            kept = (
                f"the last good commit {self.commit[:12]} stays in force" if self.commit and self.manifest
                else "no environment is reconciled until a commit with a valid manifest arrives"
            )
            self._emit("load", "invalid", level="error", message=f"commit {head[:12]}: {describe_failure(exc)}\n  {kept}", details={"commit": head})
            if self.commit is not None and isinstance(self.source, OwnedClone):
                self.source.checkout(self.commit)  # the working tree the engine reads is the good commit's
            return
        moved = head != self.commit or self.manifest is None or self._rejected is not None
        self.manifest, self.commit, self._rejected = manifest, head, None
        if moved:
            self._emit("load", "ok", details={"commit": head})
            for schedule in self._schedules.values():  # a new commit may move any pin: all due now
                schedule.due_at = 0.0

    def _manifest_digest(self) -> str:
        try:
            return hashlib.sha256(self.settings.manifest.read_bytes()).hexdigest()
        except OSError:
            return ""

    def _selected(self) -> list[str]:
        assert self.manifest is not None
        names = list(self.settings.environments) or list(self.manifest.model.environments)
        unknown = [n for n in names if n not in self.manifest.model.environments]
        for name in unknown:
            schedule = self._schedules.setdefault(name, Schedule())
            if time.monotonic() >= schedule.due_at:
                self._fail(name, schedule, "plan", f"environment '{name}' is not in the manifest of {self.commit and self.commit[:12]}; "
                           f"environments defined: {', '.join(self.manifest.model.environments)}")
        return [n for n in names if n not in unknown]

    # -- one environment -------------------------------------------------------------------------

    def _reconcile(self, name: str, schedule: Schedule, session: engine.DestinationSession) -> None:
        assert self.manifest is not None
        manifest = self.manifest
        started = time.monotonic()
        try:
            plan = engine.plan_one(manifest, name, refresh=self.settings.refresh, progress=lambda *_: self.health.beat(), session=session)
        except Abandoned:
            raise
        except Exception as exc:
            self._fail(name, schedule, "plan", describe_failure(exc))
            return
        auto, self_heal = engine.sync_settings(manifest, name)
        drift = engine.drift_records(plan.drift)
        moves = plan.moves_version or plan.interrupted is not None
        details: dict[str, Any] = {
            "commit": self.commit,
            "from": plan.current.to_json() if plan.current is not None else None,
            "to": plan.desired.to_json(),
            "changes": plan.changes.to_json(),
            "drift_records": drift,
            "suspended": plan.suspended is not None,
        }
        if not plan.has_changes:
            self._steady(name, schedule, "drifted" if drift else "synced", details)
            return
        if plan.suspended is not None:
            why = "the environment is suspended (vectorops resume " + name + " lifts it)"
        elif not auto:
            why = "sync.auto is off: apply it yourself, or set sync: {auto: true}"
        elif not moves and not self_heal:
            why = "sync.self_heal is off: the drift is reported, not repaired"
        else:
            why = None
        if why is not None:
            self._steady(name, schedule, "out_of_sync" if moves else "drifted", details, message=why)
            return
        self._emit("plan", "out_of_sync" if moves else "drifted", environment=name, details=details,
                   message="applying" if moves else "repairing the drift (sync.self_heal)")
        if plan.blocked:
            self._fail(name, schedule, "apply", plan.blocked, result="blocked", details=details)
            return
        hooks = engine.ApplyHooks(
            on_progress=lambda _env, _n: self.health.beat(),
            on_message=lambda env, text: self._emit("apply", "message", environment=env, message=redact(text)),
            should_stop=self.shutdown.should_stop,
        )
        result = engine.apply_one(manifest, plan, hooks, session=session)
        warnings = session.take_warnings()  # e.g. the index build outgrew its memory: logged after the outcome
        details = {**details, "reason": "sync" if moves else "self_heal", "duration_s": round(time.monotonic() - started, 3)}
        if result.validation is not None:
            details["validation"] = {k: result.validation.get(k) for k in ("passed", "total", "pass_rate", "min_pass_rate", "ok")}
        if result.status.ok:
            self._emit("apply", "applied", environment=name, details=details)
            self._succeeded(schedule)
        elif result.status == "stopped":
            self._emit("apply", "stopped", environment=name, level="warning", message=result.message, details=details)
        else:
            self._fail(name, schedule, "apply", result.message or result.status, result=result.status, details=details)
        for warning in warnings:
            self._emit("apply", "warning", environment=name, level="warning", message=warning.message,
                       details={"destination": warning.destination})

    def _steady(self, name: str, schedule: Schedule, result: str, details: dict[str, Any], message: str | None = None) -> None:
        """A state the agent leaves as it is: logged when it changes (debug otherwise), counted always."""
        key = (result, details["commit"], details["drift_records"], details["suspended"], (details["to"] or {}).get("commit"))
        level = "info" if key != schedule.last else "debug"
        schedule.last = key
        self._emit("plan", result, environment=name, details=details, message=message, level=level)
        self._succeeded(schedule)

    def _succeeded(self, schedule: Schedule) -> None:
        schedule.failures = 0
        schedule.due_at = time.monotonic() + self.settings.interval

    def _fail(self, name: str, schedule: Schedule, action: str, message: str, *, result: str = "failed", details: dict[str, Any] | None = None) -> None:
        self._failed_this_cycle = True
        schedule.failures += 1
        schedule.last = None
        delay = min(self.settings.backoff * 2 ** (schedule.failures - 1), self.settings.interval)
        schedule.due_at = time.monotonic() + delay
        self._emit(action, result, environment=name, level="error", message=message,
                   details={**(details or {}), "attempt": schedule.failures, "retry_in_s": round(delay, 3)})

    def _emit(self, action: str, result: str, *, environment: str | None = None, message: str | None = None,
              level: str = "info", details: dict[str, Any] | None = None) -> None:
        self.reporter.emit(Event(cycle=self.cycle, action=action, result=result, environment=environment,
                                 message=redact(message) if message else None, level=level, details=details or {}))
