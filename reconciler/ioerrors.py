"""Ordinary I/O and network failures, told as what they are: not a vectorops bug.

A full disk, a folder that does not exist, a permission refused or an address that cannot be
reached is something the user fixes, so it gets one message naming the path or address and what
to do, like every other ``VectorOpsError``. Only what is left over is reported as a bug.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from reconciler.errors import VectorOpsError


class EnvironmentIOError(VectorOpsError):
    """The machine or the network refused a read or write (disk full, permission, no such folder, unreachable)."""


_ACTIONS = {
    errno.ENOSPC: "the disk is full. Free space on the device that holds it",
    errno.EDQUOT: "the disk quota is exhausted. Free space (or raise the quota)",
    errno.EACCES: "permission denied. Choose a location you may write to, or fix its permissions",
    errno.EPERM: "operation not permitted. Choose a location you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only. Choose a writable location",
    errno.ENOENT: "no such file or folder. Create the folder first, or choose an existing path",
    errno.ENOTDIR: "a part of the path is a file, not a folder. Choose another path",
    errno.EISDIR: "it is a folder, not a file. Name a file inside it",
}
_NETWORK = (errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)

#: lance reports I/O as RuntimeError text: "LanceError(IO): <reason>, /path/to/lance-io/src/x.rs:12:5"
_LANCE_IO = re.compile(r"LanceError\(IO\):\s*(?P<reason>.*?)(?:,\s*/\S+\.rs:\d+:\d+)?\s*$", re.DOTALL)
_OS_ERROR_CODE = re.compile(r"\(os error (?P<code>\d+)\)")
#: a Python OSError carried through Arrow's C stream (an exception inside a batch reader lance consumed)
_WRAPPED_OS_ERROR = re.compile(r"\[Errno (?P<code>\d+)\] (?P<reason>[^:'\n]+)(?:: '(?P<path>[^'\n]+)')?")


def lance_reason(exc: BaseException) -> str:
    """The useful sentence of a lance/LanceDB error: no Rust source paths, no backtrace, one line."""
    text = str(exc).strip()
    if " { " in text:  # a Rust debug dump: keep its first words and the innermost OS message
        head = text.split(" { ")[0].rsplit(":", 1)[0]
        messages = re.findall(r'message: "([^"]+)"', text)
        peer = re.search(r'ConnectError\("[^"]*", ([^,\s)]+)', text)
        reason = head
        if messages:
            reason += f": {messages[-1]}" + (f" ({peer.group(1)})" if peer else "")
        return reason[:300]
    match = _LANCE_IO.search(text)
    reason = match.group("reason") if match else text
    reason = reason.splitlines()[0] if reason else exc.__class__.__name__
    return reason[:300]


def as_io_error(exc: BaseException, where: str | None = None, hint: str | None = None) -> EnvironmentIOError | None:
    """The user-facing error for an ordinary I/O or network failure; None when ``exc`` is not one.

    ``where`` names the path or address when the exception itself does not (lance raises bare
    ``OSError(errno, strerror)``).
    """
    if isinstance(exc, VectorOpsError):
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        path = exc.filename if exc.filename is not None else where
        shown = f"{path}: " if path else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not path:  # a write ran out of room: say whose
            return EnvironmentIOError(
                f"{_where_space_ran_out()}: {_ACTIONS[exc.errno]}",
                hint=hint or "Free space there, or point VECTOROPS_CACHE_DIR (the hash cache) or TMPDIR at a larger disk.",
            )
        if exc.errno in _ACTIONS:
            return EnvironmentIOError(f"{shown}{_ACTIONS[exc.errno]}", hint=hint)
        if exc.errno in _NETWORK or isinstance(exc, (ConnectionError, TimeoutError)):
            return EnvironmentIOError(
                f"{shown}cannot be reached ({exc.strerror or exc})",
                hint=hint or "Check the address, your network and credentials, then run the command again.",
            )
        return EnvironmentIOError(f"{shown}{exc.strerror or exc}", hint=hint)
    if isinstance(exc, RuntimeError):
        text = str(exc)
        wrapped = _WRAPPED_OS_ERROR.search(text)
        if wrapped is not None:
            return as_io_error(OSError(int(wrapped.group("code")), wrapped.group("reason"), wrapped.group("path") or where), hint=hint)
        code = _OS_ERROR_CODE.search(text)
        if code is not None:
            return as_io_error(OSError(int(code.group("code")), lance_reason(exc), where), hint=hint)
        if "LanceError(IO)" in text:
            shown = f"{where}: " if where else ""
            return EnvironmentIOError(f"{shown}{lance_reason(exc)}", hint=hint)
    return None


#: below this much free space, a folder vectorops writes to is named as the one that filled up
_LOW_SPACE_BYTES = 64 * 1024 * 1024


def _where_space_ran_out() -> str:
    """The folders vectorops writes to without naming them in the error (its hash cache, temporary
    files) whose disk is (nearly) full now; all of them when none is, as one may have been freed."""
    import shutil
    import tempfile

    from reconciler import caches

    folders = {"the hash cache": caches.cache_dir(), "the temporary folder": Path(tempfile.gettempdir())}
    full = []
    for label, folder in folders.items():
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            usage = shutil.disk_usage(probe)
        except OSError:
            continue
        if usage.free < _LOW_SPACE_BYTES or usage.free < usage.total // 100:
            full.append(f"{label} {folder}")
    return ", ".join(full) if full else " or ".join(f"{label} {folder}" for label, folder in folders.items())
