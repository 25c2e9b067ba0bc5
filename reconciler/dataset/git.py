"""Just enough git to pin a dataset: resolve revs, read files at a commit, clone git URLs.

Everything here is plain `git` in a subprocess: it is fast (a few ms per call), needs no DVC
import, and behaves exactly like the git the user runs. A repo given as a URL is cloned once per
process into a temp folder that is removed at exit, so every later call works on a local path.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from reconciler.errors import DatasetError
from reconciler.redact import redact

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:", re.IGNORECASE)
_clones: dict[str, Path] = {}
_known_repos: set[Path] = set()  # local paths found to be git repositories (``local_repo``)
_clone_lock = threading.Lock()


def is_url(repo: str) -> bool:
    return bool(_URL.match(repo))


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``repo``; never prompts (no terminal, no credential helper dialogs)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise DatasetError(
            f"git {' '.join(args[:2])} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}",
            hint="Check that the dataset repo is a readable git repository.",
        )
    return proc


def local_repo(repo: str, origin: str) -> Path:
    """The local git checkout for ``repo``: the path itself, or a private clone of a URL.

    ``origin`` prefixes messages, e.g. "dataset 'docs' (vectorops.yaml:5:5)".
    """
    if is_url(repo):
        with _clone_lock:
            if repo not in _clones:
                _clones[repo] = _clone(repo, origin)
            return _clones[repo]
    path = Path(repo)
    if not path.is_dir():
        raise DatasetError(f"{origin}: dataset repo {repo} does not exist", hint="Set 'repo:' to a git repository path or URL.")
    if path not in _known_repos:  # asked once a process: an apply reading 2,000 shards asked 2,000 times (~2 ms each)
        if git(path, "rev-parse", "--git-dir", check=False).returncode != 0:
            raise DatasetError(
                f"{origin}: dataset repo {repo} is not a git repository",
                hint="vectorops reads datasets tracked by DVC in git; run `git init` and `dvc init` there first.",
            )
        _known_repos.add(path)
    return path


def origin_path(repo: str) -> Path | None:
    """The local folder a file:// URL (or plain path) points at, for resolving relative remotes."""
    if repo.startswith("file://"):
        return Path(repo[len("file://") :])
    if not is_url(repo):
        return Path(repo)
    return None


def _clone(url: str, origin: str) -> Path:
    dest = Path(tempfile.mkdtemp(prefix="vectorops-clone-"))
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    proc = subprocess.run(["git", "clone", "--quiet", "--", url, str(dest)], capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise DatasetError(
            f"{origin}: cannot clone dataset repo {redact(url)}: {redact(_first_line(proc.stderr))}",
            hint="Check the URL and that this machine can reach it (credentials come from git's own configuration).",
        )
    return dest


def _first_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[0] if lines else "git clone failed"


def resolve_commit(repo: Path, rev: str) -> str | None:
    """Full sha for a tag, branch, remote branch or (abbreviated) commit; None when unknown."""
    if not rev or rev.startswith("-"):
        return None
    for candidate in (rev, f"refs/remotes/origin/{rev}"):
        proc = git(repo, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    return None


def is_shallow(repo: Path) -> bool:
    return git(repo, "rev-parse", "--is-shallow-repository", check=False).stdout.decode().strip() == "true"


def tags(repo: Path) -> list[str]:
    """Tag names, newest commit first."""
    out = git(repo, "tag", "--list", "--sort=-creatordate", check=False).stdout.decode()
    return [t for t in out.splitlines() if t]


def show(repo: Path, commit: str, path: str) -> str | None:
    """Text of ``path`` at ``commit``, None when the file does not exist there."""
    proc = git(repo, "show", f"{commit}:{path}", check=False)
    return proc.stdout.decode("utf-8", errors="replace") if proc.returncode == 0 else None


def committed_at(repo: Path, commit: str) -> str:
    return git(repo, "show", "-s", "--format=%cI", commit).stdout.decode().strip()


def log(repo: Path, starts: list[str], paths: list[str]) -> list[tuple[str, str, str | None]]:
    """(commit, committer date, first parent) of commits from ``starts`` touching ``paths``, newest first."""
    proc = git(repo, "log", "--date-order", "--format=%H %cI %P", *starts, "--", *paths, check=False)
    rows = []
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            rows.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    return rows


def tags_by_commit(repo: Path) -> dict[str, list[str]]:
    """commit sha -> tag names pointing at it (annotated tags peeled)."""
    out = git(repo, "for-each-ref", "--format=%(objectname) %(*objectname) %(refname:short)", "refs/tags", check=False)
    result: dict[str, list[str]] = {}
    for line in out.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3:
            obj, peeled, name = parts
        elif len(parts) == 2:
            obj, name = parts
            peeled = ""
        else:
            continue
        result.setdefault(peeled or obj, []).append(name)
    return result


@atexit.register
def cleanup() -> None:
    """Remove our clones and any temp clones DVC made (its API never removes them itself)."""
    for path in _clones.values():
        shutil.rmtree(path, ignore_errors=True)
    _clones.clear()
    if "dvc.repo.open_repo" in sys.modules:
        with contextlib.suppress(Exception):  # cleanup at exit must never fail the run
            sys.modules["dvc.repo.open_repo"].clean_repos()
