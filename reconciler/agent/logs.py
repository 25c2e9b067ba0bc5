"""The agent's log: one line per event on stderr, as text or as one JSON object per line.

``--log-format json`` is for log collectors (Loki, CloudWatch, Elasticsearch): every line is a
complete object with ``time``, ``level``, ``cycle``, ``environment``, ``action`` and ``result``.
Every string passes through ``redact`` on its way out, whatever the loop put in it.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

from reconciler.agent.events import Event
from reconciler.redact import redact
from reconciler.render.agent import event_line

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class LogWriter:
    """A listener that writes each event as one line (``fmt``: text | json)."""

    def __init__(self, fmt: str = "text", stream: TextIO | None = None, level: str = "info") -> None:
        self.fmt = fmt
        self.stream = stream or sys.stderr
        self.threshold = LEVELS[level]
        self._lock = threading.RLock()  # the webhook's thread logs too

    def __call__(self, event: Event) -> None:
        if LEVELS.get(event.level, 20) < self.threshold:
            return
        doc = _redacted(event.to_json())
        time = _now()
        line = json.dumps({"time": time, "level": event.level, **doc}, ensure_ascii=False, default=str) if self.fmt == "json" else event_line(time, doc)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
