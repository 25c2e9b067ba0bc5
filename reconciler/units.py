"""Durations and sizes as people type them in a flag: one parser each, for every command.

``--interval 5m`` (the agent), ``--older-than 30d`` and ``--keep-recent 10m`` (``cache prune``),
``--max-size 2GB`` and ``--cache-max-size 5GB`` all read the same units the same way.
"""

from __future__ import annotations

import re

from reconciler.errors import UsageError

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|w)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_BYTES = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_duration(text: str, what: str, *, example: str = "5m", bare_seconds: bool = True, zero: bool = False) -> float:
    """``500ms``, ``30s``, ``5m``, ``12h``, ``30d``, ``2w`` → seconds.

    ``bare_seconds``: a number without a unit is seconds (an interval: ``0.5``); where it is not,
    only ``0`` goes without one (``--older-than 30`` could mean days as well as seconds).
    ``zero``: whether nothing at all (``0``) is a duration here.
    """
    found = _DURATION.match(text)
    unit = found.group(2) if found else None
    value = float(found.group(1)) if found else 0.0
    ok = found is not None and (unit is not None or bare_seconds or value == 0) and (zero or value > 0)
    if not ok:
        kind = "duration" if zero else "positive duration"
        raise UsageError(f"{what} {text!r} is not a duration", hint=f"Give a {kind} such as 30s, 5m, 1h or 30d (e.g. {what} {example}).")
    return value * _SECONDS[unit] if unit is not None else value


def parse_size(text: str, what: str) -> int:
    """``500MB``, ``2GB``, ``1.5G``, ``10GiB`` or plain bytes → bytes (kB/MB/GB are powers of 1000)."""
    found = _SIZE.match(text)
    unit = found.group(2).lower().removesuffix("b") if found else ""
    if not found or unit not in _BYTES:
        raise UsageError(f"{what} {text!r} is not a size", hint=f"Give a size such as 500MB, 2GB or 10GiB (e.g. {what} 2GB).")
    return int(float(found.group(1)) * _BYTES[unit])
