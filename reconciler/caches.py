"""Where vectorops keeps what it computed on this machine (version indexes, verified-file markers).

Everything there is a cache: deleting the folder costs time, never correctness.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("VECTOROPS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vectorops"
    )
    return Path(base)
