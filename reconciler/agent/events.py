"""What the agent reports: one ``Event`` per thing that happened, fanned out to its listeners.

The loop never prints, counts or posts by itself: it emits events, and the log, the metrics and
the webhook each turn them into their own form. So the three can never disagree about what
happened, and a test can listen to the same stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: action: what the agent did — fetch | load | plan | apply | heal | listen | start | stop | cache
#: result: how it went — ok | synced | out_of_sync | drifted | suspended | applied | failed |
#:         blocked | validation_failed | stopped | invalid | warning (a destination's: after its apply, or at the end of the cycle)


@dataclass(frozen=True)
class Event:
    """One line of the agent's log. ``details`` holds JSON values only: versions, counts, drift
    counts and redacted messages, never a record's values or a secret."""

    cycle: int
    action: str
    result: str
    environment: str | None = None
    message: str | None = None
    level: str = "info"  # info | warning | error
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"cycle": self.cycle, "environment": self.environment, "action": self.action, "result": self.result}
        if self.message is not None:
            doc["message"] = self.message
        doc.update(self.details)
        return doc


Listener = Callable[[Event], None]


class Reporter:
    """Hands every event to each listener; a listener that fails is never the loop's problem."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = list(listeners)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken log pipe or metrics bug must not stop reconciling
                continue
