"""One command's destinations: each environment's opened once, every one closed when the command ends.

A plan, the apply that follows it and the validation after it all talk to the same destinations,
and `requires` reads another environment's state on the way. Opening a destination is not free
(Pinecone: a new client and an index host look-up; PostgreSQL: a connection), and a destination
that holds a client or a connection must be closed. So a command opens its destinations through
one ``DestinationSession``: the first ask opens, later asks get the same object, and leaving the
session closes everything it opened, in ``finally``, whatever happened in between.

The session is also where a command hears what its destinations warned about (``Destination.warn``):
it takes each destination's warnings before closing it, so every command, whatever it wrote
through, ends with them in ``take_warnings`` for its caller to show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, final

from reconciler.providers import EnvironmentDestinations, open_destination
from reconciler.providers.base import Destination

Opener = Callable[[EnvironmentDestinations, str], Destination]


@dataclass(frozen=True)
class DestinationWarning:
    """Something a destination told the user that is not a failure, with the address it came from."""

    destination: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "message": self.message}


@final
class DestinationSession:
    """The destinations one command has opened, by environment name."""

    def __init__(self, manifest: EnvironmentDestinations, opener: Opener = open_destination) -> None:
        self.manifest = manifest
        self._opener = opener
        self._open: dict[str, Destination] = {}
        self._extra: list[Destination] = []
        self._closed = False
        self._warnings: list[DestinationWarning] = []

    def destination(self, env_name: str) -> Destination:
        """The environment's destination, opened on the first ask of this session."""
        if self._closed:
            raise RuntimeError("this destination session is closed")  # a vectorops bug, not the user's
        dest = self._open.get(env_name)
        if dest is None:
            dest = self._opener(self.manifest, env_name)
            self._open[env_name] = dest
        return dest

    def adopt(self, dest: Destination) -> Destination:
        """Close ``dest`` with the others: a destination opened from one of this session's (a
        blue/green slot), which the caller does not close itself."""
        self._extra.append(dest)
        return dest

    @property
    def opened(self) -> list[str]:
        return list(self._open)

    def take_warnings(self) -> list[DestinationWarning]:
        """What the destinations of this session warned about since the last take, in the order
        they were opened, each once. After ``close`` it still holds what they said before closing."""
        self._collect()
        taken, self._warnings = self._warnings, []
        return taken

    def _collect(self) -> None:
        for dest in [*self._open.values(), *self._extra]:
            for message in dest.take_warnings():
                warning = DestinationWarning(dest.address, message)
                if warning not in self._warnings:
                    self._warnings.append(warning)

    def close(self) -> None:
        """Close every destination opened here, keeping what each warned about. Closing is best
        effort: whatever a command wrote was committed before it got here, and a failing close must
        not hide the command's outcome."""
        self._closed = True
        with contextlib.suppress(Exception):  # nothing stops the closing, not even a plug-in's broken take_warnings
            self._collect()
        while self._extra:  # slots first: they may share their environment destination's connection
            with contextlib.suppress(Exception):
                self._extra.pop().close()
        while self._open:
            _, dest = self._open.popitem()
            with contextlib.suppress(Exception):
                dest.close()

    def __enter__(self) -> DestinationSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def session_for(manifest: EnvironmentDestinations, session: DestinationSession | None) -> Iterator[DestinationSession]:
    """``session`` when the caller has one (it stays open: the caller closes it), else a new one
    closed on the way out. Engine entry points take ``session=None`` and go through this."""
    if session is not None:
        yield session
        return
    with DestinationSession(manifest) as own:
        yield own
