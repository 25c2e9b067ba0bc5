"""Progress while hashing, listing and writing: a rich bar on a terminal, plain lines otherwise.

The engine reports progress through callbacks and never prints; this turns those callbacks into
what a user watches. A live bar redraws with cursor escapes, so plain output (no terminal,
--no-color, NO_COLOR) gets a line every ~10 % instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click


class ProgressReporter:
    """``console``: makes the (stderr) rich console when a bar is first needed; ``plain``: no escapes."""

    def __init__(self, console: Callable[[], Any], *, plain: bool) -> None:
        self.tty = sys.stderr.isatty() and not plain
        self._console = console
        self._bar: Any = None
        self._task: Any = None
        self._last_pct: dict[str, int] = {}
        self._done = 0
        self._total = 0

    def _ensure_bar(self) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            class RateColumn(TransferSpeedColumn):
                def render(self, task: Any) -> Any:
                    from rich.text import Text

                    return Text(f"{task.speed or 0:,.0f} rec/s")

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), RateColumn(), TimeRemainingColumn(),
                console=self._console(), transient=True,
            )
            self._bar.start()

    def hashing(self, what: str, done: int, total: int | None) -> None:
        if self.tty:
            self._ensure_bar()
            if self._task is None or self._bar.tasks[self._task].description != what:
                self._task = self._bar.add_task(what, total=total)
            self._bar.update(self._task, completed=done)

    def start(self, env: str, total: int) -> None:
        if self.tty:
            self._ensure_bar()
            self._task = self._bar.add_task(f"applying {env}", total=total or 1)
        else:
            click.echo(f"{env}: writing {total:,} changes", err=True)
        self._last_pct[env] = 0
        self._done = 0
        self._total = total

    def advance(self, env: str, n: int) -> None:
        self._done += n
        if self.tty and self._bar is not None:
            self._bar.update(self._task, advance=n)
        elif self._total:
            pct = int(100 * self._done / self._total)
            if pct >= self._last_pct.get(env, 0) + 10 or self._done == self._total:
                self._last_pct[env] = pct
                click.echo(f"{env}: {self._done:,}/{self._total:,} ({pct}%)", err=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None
