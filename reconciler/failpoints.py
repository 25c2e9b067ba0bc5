"""Named points where a test can kill the process, to prove crash safety at exactly that instant.

``VECTOROPS_FAILPOINT=after-intent`` (for example) makes the apply SIGKILL itself when it reaches
that point: no cleanup, no finally blocks, exactly like an OOM kill or a cancelled CI runner.
``VECTOROPS_FAILPOINT=pause:mid-write`` instead holds the apply there, so that a test can act while
it is stopped mid-apply (force-unlock it, run another apply): the apply creates
``$VECTOROPS_FAILPOINT_FILE.reached`` and waits until ``$VECTOROPS_FAILPOINT_FILE.resume`` exists.
``VECTOROPS_FAILPOINT=mid-write:enospc`` instead raises the ``OSError`` a full disk raises at that
write (``ENOSPC``, naming the path being written), to prove how an ordinary I/O failure is told.
Unset (always, outside tests), a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

#: blue/green adds "before-switch" (slot written and validated, alias not moved) and "after-switch"
#: (alias moved, the environment's state not yet recorded)
POINTS = ("after-intent", "mid-write", "before-result", "before-switch", "after-switch")
_ERRORS = {"enospc": errno.ENOSPC, "eacces": errno.EACCES}


PAUSE_LIMIT_S = 300


def hit(name: str, where: str | None = None) -> None:
    point = os.environ.get("VECTOROPS_FAILPOINT")
    if point is None:
        return
    if point == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif point == f"pause:{name}":
        _pause(Path(os.environ["VECTOROPS_FAILPOINT_FILE"]))
    at, _, error = point.partition(":")
    if at == name and error in _ERRORS:
        code = _ERRORS[error]
        raise OSError(code, os.strerror(code), where)


def _pause(file: Path) -> None:
    file.with_name(file.name + ".reached").touch()
    resume = file.with_name(file.name + ".resume")
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
