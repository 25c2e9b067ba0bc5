"""Terraform's dirty-workspace warning: a manifest or .dvc file that git does not have as committed.

vectorops deploys what git holds: datasets are read at the pinned commit, never from the working
tree, while the manifest is read from disk. So an uncommitted manifest is applied although nobody
can review it, and an uncommitted ``.dvc`` file is silently *not* applied. Both deserve a warning
(not an error: trying a change before committing it is normal work).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from reconciler.manifest import LoadedManifest


def dirty_warnings(manifest: LoadedManifest) -> list[str]:
    """One sentence per manifest or referenced ``.dvc`` file that differs from git's HEAD (or is untracked)."""
    root = manifest.repo_root
    if root is None:
        return []  # not in a git repo: nothing to compare with (the dataset repo is named by `repo:`)
    dvc_files = []
    for name, ds in manifest.model.datasets.items():
        try:
            if Path(manifest.dataset_repo(name)).resolve() != root:
                continue
        except Exception:  # a git URL or an unusable repo: reported where it is read
            continue
        dvc_files.append(root / f"{os.path.normpath(ds.path)}.dvc")
    paths = [manifest.path, *dvc_files]
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *map(str, paths)],
            capture_output=True,
            check=False,
        )
    except OSError:
        return []
    if proc.returncode != 0:
        return []
    shown = {}
    for item in proc.stdout.decode(errors="replace").split("\0"):
        if len(item) > 3:
            shown[(root / item[3:]).resolve()] = item[:2]
    warnings = []
    for path in paths:
        code = shown.get(path.resolve())
        if code is None:
            continue
        rel = os.path.relpath(path, Path.cwd())
        state = "is not tracked by git" if code == "??" else "has uncommitted changes"
        if path == manifest.path:
            warnings.append(
                f"{rel} {state}: this run uses the file as it is on disk, which nobody has reviewed. "
                "Commit it so that what is deployed can be traced to a commit."
            )
        else:
            warnings.append(
                f"{rel} {state}: vectorops reads datasets as committed at the pinned rev, so this change is not part of the plan. "
                "Commit (and tag) it, and pin that rev, to deploy it."
            )
    return warnings
