"""A write that runs out of room without naming its file (``OSError(ENOSPC)`` from a write or a
close, not an open) still names the folder: the one of vectorops' own that is full."""

from __future__ import annotations

import errno
import sys
import tempfile
from pathlib import Path

import pytest

from reconciler.ioerrors import as_io_error


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc reports no free space only on Linux")
def test_a_full_disk_without_a_path_names_the_folder_that_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", "/proc/vectorops-cache")  # a file system with 0 bytes free
    told = as_io_error(OSError(errno.ENOSPC, "No space left on device"))
    assert told is not None
    assert str(told).startswith("the hash cache /proc/vectorops-cache: the disk is full")
    assert tempfile.gettempdir() not in str(told).splitlines()[0]  # it has room: not blamed
    assert "VECTOROPS_CACHE_DIR" in (told.hint or "")


def test_when_no_folder_is_full_any_more_both_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path))
    told = as_io_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert told is not None and str(tmp_path) in str(told) and tempfile.gettempdir() in str(told) and "quota" in str(told)


def test_a_full_disk_with_a_path_names_that_path() -> None:
    told = as_io_error(OSError(errno.ENOSPC, "No space left on device", "/data/plan.json"))
    assert told is not None and str(told).startswith("/data/plan.json: the disk is full")
