"""Stopping on SIGTERM/SIGINT within 30 s, with nothing half-written and no lock left behind.

The first signal only asks: the loop stops sleeping, and an apply in flight finishes the write
batch it is in and stops at the next batch boundary (``ApplyHooks.should_stop``), its intent
recorded and its lock released, so the restarted agent finishes it. If that batch has not ended
after ``grace`` seconds (a destination that hangs), or a second signal comes, ``Abandoned`` is
raised in the main thread wherever it is: the engine unwinds as after any failure (the intent
stays, ``locked()`` releases the lock), which is exactly as safe as a crash, and the agent exits 0.
A last-resort thread ends the process at ``HARD_LIMIT_S`` whatever happens, since a pod is killed
at 30 s anyway.

The handler itself takes no lock and does no I/O beyond one ``os.write`` (a handler runs in the
main thread between two bytecodes, possibly inside a ``with lock:`` of the code it interrupted:
taking that lock again would hang forever). The loop sleeps in ``select`` on the wake-up file
descriptor that CPython writes to on every signal, so a signal ends the sleep at once.
"""

from __future__ import annotations

import os
import select
import signal
import socket
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
        self.on_request = on_request  # called once, from the loop (never from the handler)
        self._signal: str | None = None
        self._announced = False
        self._previous: dict[int, object] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._hard_r, self._hard_w = os.pipe()

    def install(self) -> None:
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        signal.signal(signal.SIGALRM, self._abandon)
        threading.Thread(target=self._last_resort, name="vectorops-shutdown", daemon=True).start()

    def restore(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_fd)

    def should_stop(self) -> bool:
        if self._signal is not None and not self._announced:
            self._announced = True
            self.on_request(self._signal)
        return self._signal is not None

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, less if a signal comes; True when asked to stop."""
        if not self.should_stop():
            select.select([self._wake_r], [], [], max(0.0, timeout))
            try:
                while self._wake_r.recv(64):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        return self.should_stop()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None:
            raise Abandoned(f"a second signal ({name})")
        self._signal = name
        signal.setitimer(signal.ITIMER_REAL, max(self.grace, 0.001))
        os.write(self._hard_w, b"x")

    def _abandon(self, _signum: int, _frame: FrameType | None) -> None:
        raise Abandoned(f"the write batch in flight did not finish within {self.grace:g} s")

    def _last_resort(self) -> None:
        os.read(self._hard_r, 1)  # blocks until the first signal
        threading.Event().wait(HARD_LIMIT_S)
        os._exit(0)
