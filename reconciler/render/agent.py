"""The agent's log lines in text form (`--log-format text`), made from its events' JSON."""

from __future__ import annotations

from typing import Any

from reconciler.redact import printable_lines


def _ref(ref: dict[str, Any] | None) -> str:
    return f"{ref['version']} ({ref['commit'][:7]})" if ref else "nothing"


def event_line(time: str, doc: dict[str, Any]) -> str:
    """``2026-12-06T13:40:02Z [3] staging apply applied: v1 (1a2b3c4) → v2 (5d6e7f8) +120 ~45 -30``."""
    where = f" {doc['environment']}" if doc.get("environment") else ""
    head = f"{time} [{doc['cycle']}]{where} {doc['action']} {doc['result']}"
    parts: list[str] = []
    if doc.get("from") is not None or doc.get("to") is not None:
        parts.append(f"{_ref(doc.get('from'))} → {_ref(doc.get('to'))}")
    changes = doc.get("changes")
    if changes:
        parts.append(f"+{changes.get('add', 0):,} ~{changes.get('update', 0):,} -{changes.get('delete', 0):,}")
    if doc.get("drift_records"):
        parts.append(f"{doc['drift_records']:,} records drifted")
    if doc.get("retry_in_s") is not None:
        parts.append(f"retry in {doc['retry_in_s']:.1f}s")
    if doc.get("message"):
        parts.append(str(doc["message"]))
    return printable_lines(head + (": " + "; ".join(parts) if parts else ""))
