"""Prove that the bytes read are the version the ``.dvc`` file pins, before anything uses them.

DVC names every stored object by the md5 of its content but never checks it when reading: a
cache or remote object that was swapped, truncated or bit-rotted is served as if it were the
pinned version, and would be deployed, recorded in state and cached under the pinned digest.
So every read of a dataset file is checked against DVC's own md5 of that file (for a tracked
directory, each file's md5 from the directory listing, whose own md5 is the pinned ``.dir``
digest):

* a full read (what plans do) hashes the file *while* it is read, in the same pass: a thread
  hashes the mapped file alongside the decoders (the pages are read once, from disk into the
  page cache), and the stream holds back its last batch until the digest matches, so no caller
  ever sees a whole version that was not verified, and the hash cache, filled at the end of a
  read, is never filled from unverified bytes;
* a partial read that feeds writes (the records an apply upserts) checks the whole file first,
  unless this machine already verified that very file: a marker keyed by the file's identity
  (device, inode, size, mtime and ctime, which no user can set back) records it, so the apply
  after a plan does not hash the version again;
* a file shorter or longer than the size the pin records is refused before it is opened, so a
  truncated object is reported as corrupt, never as "not a readable Parquet file".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from reconciler.errors import DatasetError

T = TypeVar("T")
_CHUNK = 8 * 1024 * 1024  # hashlib releases the GIL on buffers this size: the hash runs beside the decoders


@dataclass(frozen=True)
class Expected:
    """What DVC recorded for one file: its md5 (hex) and, when known, its size in bytes."""

    md5: str
    size: int | None
    pinned_in: str  # the .dvc / dvc.lock file (or the directory listing) that records it


class CorruptObject(DatasetError):
    """A DVC cache or remote object whose content is not what its name (the pinned md5) says."""


def corrupt(where: str, expected: Expected, found: str, obj: str, place: str) -> CorruptObject:
    """The message for a corrupt object: which object, what was pinned, and how to repair it."""
    if place == "cache":
        fix = (
            f"The local DVC cache holds a damaged copy. Remove it (`rm -f {obj}`) and fetch a good one from the "
            "DVC remote: `dvc fetch --force` (then `dvc gc -w` tidies the cache). If the remote's copy is damaged "
            "too, re-push the data from a machine with a good copy (`dvc push`)."
        )
        what = f"the local DVC cache object {obj}"
    else:
        fix = (
            "The DVC remote holds a damaged copy: re-push the data from a machine whose copy is good "
            "(`dvc push`; check it there with `dvc status -c`), then run vectorops again."
        )
        what = f"the DVC remote object {obj}" if obj else "the object the DVC remote sent"
    return CorruptObject(
        f"{where}: {what} is corrupt: {found}, but {expected.pinned_in} pins md5 {expected.md5}"
        + (f" ({expected.size:,} bytes)" if expected.size is not None else "")
        + "; nothing was read from it",
        hint=fix,
    )


# -- hashing while reading -------------------------------------------------------------------


class FileHasher:
    """The md5 of a local file, computed by a thread while the caller decodes the same file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="vectorops-md5", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with open(self.path, "rb", buffering=0) as f:
                buf = bytearray(_CHUNK)
                view = memoryview(buf)
                while not self._stopped:
                    n = f.readinto(buf)
                    if not n:
                        break
                    self._md5.update(view[:n])
                    self._size += n
        except BaseException as exc:  # noqa: BLE001 - reported to the caller by result()
            self._error = exc

    def stop(self) -> None:
        """Give up: the digest is not wanted any more."""
        self._stopped = True

    def result(self) -> tuple[str, int]:
        self._thread.join()
        if self._error is not None:
            raise DatasetError(f"cannot read {self.path} to verify it: {self._error}")
        return self._md5.hexdigest(), self._size


class HashingReader:
    """A sequential binary stream that hashes what passes through it (JSONL, remote streams)."""

    def __init__(self, raw: IO[bytes], dos2unix: bool = False) -> None:
        self._raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)
        # DVC 2.x pinned text files by the md5 of their content with CRLF turned into LF
        self.md5_dos2unix = hashlib.md5(usedforsecurity=False) if dos2unix else None
        self._held_cr = False
        self.size = 0

    def _feed(self, data: bytes) -> bytes:
        if data:
            self.md5.update(data)
            self.size += len(data)
            if self.md5_dos2unix is not None:
                text = (b"\r" if self._held_cr else b"") + data
                self._held_cr = text.endswith(b"\r")
                if self._held_cr:
                    text = text[:-1]
                self.md5_dos2unix.update(text.replace(b"\r\n", b"\n"))
        return data

    def read(self, n: int = -1) -> bytes:
        return self._feed(self._raw.read(n))

    def readline(self, limit: int = -1) -> bytes:
        return self._feed(self._raw.readline(limit))

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def finish(self) -> tuple[set[str], int]:
        """Read what the caller left unread, then every md5 the content may be pinned by."""
        while self.read(_CHUNK):
            pass
        digests = {self.md5.hexdigest()}
        if self.md5_dos2unix is not None:
            if self._held_cr:
                self.md5_dos2unix.update(b"\r")
                self._held_cr = False
            digests.add(self.md5_dos2unix.hexdigest())
        return digests, self.size


def hold_last(batches: Iterator[T], check: Any) -> Iterator[T]:
    """``batches``, with the last one released only after ``check()`` passed.

    A consumer that reads to the end (a plan building its id->hash table) therefore never
    completes on content that turns out not to be the pinned version.
    """
    held: list[T] = []
    for batch in batches:
        if held:
            yield held.pop()
        held.append(batch)
    check()
    if held:
        yield held.pop()


# -- files this machine already verified ------------------------------------------------------


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _marker(path: str, md5: str) -> Path:
    from reconciler.caches import cache_dir

    key = hashlib.sha256(f"{_identity(path)}|{md5}".encode()).hexdigest()
    return cache_dir() / "verified" / key[:2] / key


def already_verified(path: str, md5: str) -> bool:
    try:
        marker = _marker(path, md5)
        if not marker.exists():
            return False
    except OSError:
        return False
    with contextlib.suppress(OSError):  # last used now: `vectorops cache prune` keeps what is in use
        os.utime(marker)
    return True


def remember_verified(path: str, md5: str) -> None:
    """Record that ``path``, exactly as it is now, holds content with this md5."""
    try:
        marker = _marker(path, md5)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only cache only costs a second hash later
        pass


def md5_of_file(path: str) -> tuple[str, int]:
    return FileHasher(path).result()
