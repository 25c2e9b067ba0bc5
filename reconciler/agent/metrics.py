"""Prometheus metrics (SPEC §11) kept up to date from the agent's events.

Names are the contract's; a few more say what an operator asks next (is it suspended, is the
branch's manifest valid, how long do cycles take). The registry is the agent's own, plus the
process collector (CPU seconds, resident memory), so a scrape shows the agent's cost too.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from reconciler.agent.events import Event

#: result of an apply as counted in vectorops_apply_total{result}
APPLY_RESULTS = ("applied", "failed", "blocked", "validation_failed", "stopped")


class AgentMetrics:
    """A listener that turns events into metric values."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.synced = Gauge("vectorops_environment_synced", "1 when the environment holds its pinned version with no drift, else 0", ["environment"], registry=r)
        self.drift = Gauge("vectorops_environment_drift_records", "Records found drifted at the last plan (missing + unexpected + modified)", ["environment"], registry=r)
        self.suspended = Gauge("vectorops_environment_suspended", "1 while the environment is suspended (vectorops suspend)", ["environment"], registry=r)
        self.applies = Counter("vectorops_apply_total", "Applies the agent made, by result", ["environment", "result"], registry=r)
        self.failures = Counter(
            "vectorops_reconcile_failures_total", "Failed attempts (fetch, manifest, plan, apply), each retried with backoff", ["environment"], registry=r
        )
        self.last_reconcile = Gauge("vectorops_last_reconcile_timestamp_seconds", "Unix time the last reconcile cycle ended", registry=r)
        self.manifest_valid = Gauge("vectorops_manifest_valid", "1 when the branch's newest manifest loads; 0 while an older good commit stays in force", registry=r)
        self.cycles = Counter("vectorops_reconcile_cycles_total", "Reconcile cycles run", registry=r)
        self.cycle_seconds = Histogram(
            "vectorops_reconcile_cycle_duration_seconds", "Duration of a reconcile cycle", registry=r,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        self._cycle_started: float | None = None

    def __call__(self, event: Event) -> None:
        env = event.environment
        if event.action == "cycle" and event.result == "started":
            self._cycle_started = time.monotonic()
        elif event.action == "cycle" and event.result == "ended":
            self.cycles.inc()
            self.last_reconcile.set(time.time())
            if self._cycle_started is not None:
                self.cycle_seconds.observe(time.monotonic() - self._cycle_started)
        elif event.action == "load":
            self.manifest_valid.set(1 if event.result == "ok" else 0)
        if event.result in ("failed", "blocked", "validation_failed", "invalid"):
            self.failures.labels(environment=env or "").inc()
        if env is None:
            return
        if event.action == "apply" and event.result in APPLY_RESULTS:
            self.applies.labels(environment=env, result=event.result).inc()
        if event.action == "plan" or (event.action == "apply" and event.result == "applied"):
            self.synced.labels(environment=env).set(1 if event.result in ("synced", "applied") else 0)
            self.drift.labels(environment=env).set(0 if event.result == "applied" else event.details.get("drift_records", 0))
        if "suspended" in event.details:
            self.suspended.labels(environment=env).set(1 if event.details["suspended"] else 0)
