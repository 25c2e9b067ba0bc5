"""Stopping on SIGTERM/SIGINT within 30 s, with nothing half-written and no lock left behind.

The first signal only asks: the loop stops sleeping, and an apply in flight finishes the write
batch it is in and stops at the next batch boundary (``ApplyHooks.should_stop``), its intent
recorded and its lock released, so the restarted agent finishes it. If that batch has not ended
after ``grace`` seconds (a destination that hangs), or a second signal comes, ``Abandoned`` is
raised in the main thread wherever it is: the engine unwinds as after any failure (the intent
stays, ``locked()`` releases the lock), which is exactly as safe as a crash, and the agent exits 0.
A last-resort timer ends the process at ``HARD_LIMIT_S`` whatever happens, since a pod is killed
at 30 s anyway.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

HARD_LIMIT_S = 28.0


class Abandoned(BaseException):
    """Raised in the main thread when the batch in flight did not end within the grace period.

    A ``BaseException``, like ``KeyboardInterrupt``: the engine's ``except Exception`` handlers
    must not swallow it, while its ``finally`` blocks (lock release) still run."""


class Shutdown:
    """Signal handling for the agent's main thread."""

    def __init__(self, grace: float, on_request: Callable[[str], None] = lambda name: None) -> None:
        self.grace = grace
        self.requested = threading.Event()
        self.on_request = on_request
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def should_stop(self) -> bool:
        return self.requested.is_set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            raise Abandoned(f"a second {signal.Signals(signum).name}")
        self.requested.set()
        self.on_request(signal.Signals(signum).name)
        signal.signal(signal.SIGALRM, self._abandon)
        signal.setitimer(signal.ITIMER_REAL, self.grace)
        last_resort = threading.Timer(HARD_LIMIT_S, lambda: os._exit(0))
        last_resort.daemon = True
        last_resort.start()

    def _abandon(self, _signum: int, _frame: FrameType | None) -> None:
        raise Abandoned(f"the write batch in flight did not finish within {self.grace:g} s")
