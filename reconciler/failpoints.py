"""Named points where a test can kill the process, to prove crash safety at exactly that instant.

``VECTOROPS_FAILPOINT=after-intent`` (for example) makes the apply SIGKILL itself when it reaches
that point: no cleanup, no finally blocks, exactly like an OOM kill or a cancelled CI runner.
Unset (always, outside tests), a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after-intent", "mid-write", "before-result")


def hit(name: str) -> None:
    if os.environ.get("VECTOROPS_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
