"""Where the agent reads the manifest from: a clone it owns that follows a branch, or the
current checkout (`--repo .`).

The owned clone is checked out at one commit at a time (detached). A new commit whose manifest
does not load is checked back out to the last good one, so the working tree the engine reads
(canary files, the manifest itself) always belongs to the commit in force. The checkout never
cleans untracked files: a LanceDB folder kept inside the clone survives every move.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.caches import cache_dir
from reconciler.errors import VectorOpsError
from reconciler.redact import redact

GIT_TIMEOUT_S = 120


class GitSyncError(VectorOpsError):
    """Fetching or checking out the branch failed (network, credentials, a branch that is gone)."""


def _git(cwd: Path | None, *args: str) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")  # never wait for a password on a terminal nobody watches
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise GitSyncError(f"git {args[0]} did not finish within {GIT_TIMEOUT_S} s", hint="Check that the repository is reachable.") from None
    if proc.returncode != 0:
        detail = redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
        raise GitSyncError(f"git {args[0]} failed: {detail}", hint="Check the --repo URL, the --branch name and the credentials git uses.")
    return proc.stdout.strip()


@dataclass
class OwnedClone:
    """A clone of ``url`` that only the agent uses, following ``branch``."""

    url: str
    branch: str
    folder: Path

    @staticmethod
    def default_folder(url: str, branch: str) -> Path:
        """One clone per (repository, branch) under the cache folder: deleting it costs a clone."""
        key = hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()[:16]
        return cache_dir() / "agent" / key

    @property
    def root(self) -> Path:
        return self.folder

    @property
    def describe(self) -> str:
        return f"{redact(self.url)}#{self.branch}"

    def fetch(self) -> str:
        """Bring the branch's tip into the clone (cloning it the first time); returns its commit."""
        if not (self.folder / ".git").exists():
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            _git(None, "clone", "--quiet", "--no-checkout", "--origin", "origin", self.url, str(self.folder))
        # every branch and tag as the remote has them, so a pin naming a branch or tag resolves as it
        # does there (HEAD is detached after the first checkout; --update-head-ok covers the first)
        _git(self.folder, "fetch", "--quiet", "--prune", "--tags", "--force", "--update-head-ok", "origin", "+refs/heads/*:refs/heads/*")
        try:
            return _git(self.folder, "rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}^{{commit}}")
        except GitSyncError:
            raise GitSyncError(
                f"branch '{self.branch}' does not exist in {redact(self.url)}", hint="Check --branch (the agent follows one branch)."
            ) from None

    def checkout(self, commit: str) -> None:
        """Make the working tree that commit's (untracked files such as a local LanceDB stay)."""
        _git(self.folder, "checkout", "--quiet", "--force", "--detach", commit)

    def current(self) -> str | None:
        try:
            return _git(self.folder, "rev-parse", "HEAD")
        except GitSyncError:
            return None


@dataclass
class CurrentCheckout:
    """`--repo .`: the checkout the agent runs in, read as it is (kept current by something else,
    a git-sync sidecar or a cron `git pull`); the agent never fetches or checks out here."""

    folder: Path

    @property
    def root(self) -> Path:
        return self.folder

    @property
    def describe(self) -> str:
        return str(self.folder)

    def fetch(self) -> str:
        try:
            return _git(self.folder, "rev-parse", "HEAD")
        except GitSyncError:
            return "working-tree"  # not a git repository: the manifest on disk is all there is

    def checkout(self, commit: str) -> None:
        """The working tree is whatever is on disk."""

    def current(self) -> str | None:
        return self.fetch()
