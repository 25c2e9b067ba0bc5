"""A dataset's DVC content digest at a commit, read from git alone (no data, no DVC import).

DVC records every tracked output's md5 in a ``.dvc`` file next to it or in a ``dvc.lock`` of a
pipeline; both are small YAML files in git, so `git show` answers "which content is pinned here"
in milliseconds. Outputs nested inside a tracked directory need DVC's ``.dir`` object and are
resolved by the caller through DVC instead.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.dataset import git

try:  # the C loader is 10x faster where PyYAML was built with it
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Pin:
    digest: str  # md5, or "<md5>.dir" for a tracked directory
    size: int | None
    declared_in: str  # the .dvc or dvc.lock file that records it


def candidate_files(path: str) -> list[str]:
    """Files that may record ``path``'s digest: its .dvc file, then dvc.lock files up the tree."""
    files = [path + ".dvc"]
    parts = path.split("/")
    for i in range(len(parts) - 1, -1, -1):
        folder = "/".join(parts[:i])
        files.append(f"{folder}/dvc.lock" if folder else "dvc.lock")
    return files


def find_pin(repo: Path, commit: str, path: str) -> Pin | None:
    """The digest DVC recorded for ``path`` at ``commit``, or None when nothing records it."""
    for file in candidate_files(path):
        text = git.show(repo, commit, file)
        if text is None:
            continue
        pin = _pin_in(text, file, path)
        if pin is not None:
            return pin
    return None


def _pin_in(text: str, file: str, path: str) -> Pin | None:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - safe loader
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    base = posixpath.dirname(file)
    if file.endswith(".dvc"):
        outs = doc.get("outs") or []
    else:
        outs = [out for stage in (doc.get("stages") or {}).values() if isinstance(stage, dict) for out in stage.get("outs") or []]
    for out in outs:
        if not isinstance(out, dict) or "path" not in out:
            continue
        if posixpath.normpath(posixpath.join(base, str(out["path"]))) != path:
            continue
        digest = out.get("md5") or out.get("etag") or out.get("checksum")
        if not digest:
            return None
        size = out.get("size")
        return Pin(digest=str(digest), size=int(size) if isinstance(size, int) else None, declared_in=file)
    return None
