"""Keeping the hash cache to a size: which versions it holds, when each was last used, and pruning.

The cache (``caches.cache_dir``) only grows by itself: every version a plan reads leaves its shard
tables, its partitions (24 bytes a record for a large version) and its combined table, and shards
are shared between versions. At 10M records that is ~0.8 GB a version, so a GitHub Action cache or
a long-running agent fills its disk within a few re-pins.

Pruning works by *version*, least recently used first, like ccache or ``uv cache prune`` but
aware of sharing: every plan notes each version it reads in ``used/<version key>.json`` (its label,
and the cache entries that hold it), touched at each use. A version is kept whole or dropped whole,
and an entry goes only when no kept version needs it, so pruning an old version never costs the
current one a shard. What belongs to no version (stashed records, verified-file markers, Pinecone
listing resume points, leftovers of killed runs) is an entry of its own, by its own last use.

Everything used since ``keep_since`` is kept whatever the size: a plan may be reading it now. A
plan also *holds* each version it reads (a shared lock on ``used/<version key>.lock``, until its
command or agent cycle ends), and prune never drops a held version, however long ago the plan began
(a cold plan of 100M records outlasts any ``keep_since`` window); it removes a version holding the
lock exclusively, so a plan starting meanwhile waits the moment it takes and then hashes it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import caches

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; keep_since alone protects a running plan
    fcntl = None  # type: ignore[assignment]

USED = "used"
#: the cache's folders prune reads and removes from, and what they hold; nothing else is touched
#: (``agent/``, the reconcile agent's git checkout, is not a cache of computed results)
KINDS = {
    "shards": "shard hash tables",
    "index": "version hash tables",
    "partitions": "version partitions",
    "stash": "stashed records",
    "verified": "verified-file markers",
    "listing": "listing resume points",
    "used": "version use records",
    "tmp": "temporary files",
}


def version_label(dataset: str, rev: str) -> str:
    """How `cache info` names a version: ``docs@v2``; a deployed version known by its commit, ``docs@4488bd4275cb``."""
    return f"{dataset}@{rev[:12] if re.fullmatch(r'[0-9a-f]{40}', rev) else rev}"


def _by_commit(label: str) -> bool:
    """Whether ``version_label`` named the version by its commit (12 hex digits), not by a tag or branch."""
    return re.fullmatch(r"[^@]+@[0-9a-f]{12}", label) is not None


def entry_of(path: Path) -> str:
    """The cache entry (``entry_id``) of a file or folder under the cache folder."""
    return entry_id(path.relative_to(caches.cache_dir()))


def partitions_entry(cache_key: str) -> str:
    """The cache entry of a version's partitions: one, whatever their bit count (``partitioned``
    names the folders ``<cache key>-b<bits>``)."""
    return f"partitions/{cache_key}"


def record_version_use(version_key: str, label: str, members: Iterable[str]) -> None:
    """Note that a plan uses this version now (``label``: how people name it, e.g. ``docs@v2``) and
    which cache entries hold it (``entry_of``, ``partitions_entry``), and hold it until the command
    ends (``hold_version``; first, so no prune removes the record once written). Best effort: a
    cache that cannot be written costs pruning its precision, never a plan."""
    path = caches.cache_dir() / USED / f"{version_key}.json"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    hold_version(version_key)
    try:
        before = path.read_text()
    except OSError:
        before = ""
    if _by_commit(label):  # a deployed version, known by its commit: keep the name a plan gave it (docs@v2)
        with contextlib.suppress(ValueError, TypeError, KeyError):
            named = str(json.loads(before)["label"])
            if named.split("@", 1)[0] == label.split("@", 1)[0] and not _by_commit(named):
                label = named
    body = json.dumps({"label": label, "members": sorted(set(members))}, separators=(",", ":"))
    if before == body:
        with contextlib.suppress(OSError):
            os.utime(path)
        return
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(body)
        os.replace(tmp, path)
    except OSError:
        pass


#: version key -> the open lock file by which this process holds that version (``hold_version``)
_held: dict[str, int] = {}


def _lock_path(version_key: str, folder: Path | None = None) -> Path:
    return (folder if folder is not None else caches.cache_dir()) / USED / f"{version_key}.lock"


def name_is_lock(name: str) -> bool:
    return name.endswith(".lock") and not name.startswith(".")


def hold_version(version_key: str) -> None:
    """Hold a version this process reads until ``release_held_versions``: a shared lock on its lock
    file, so no prune, in any process, drops it meanwhile. Waits while a prune is removing it (the
    plan then hashes it again). Best effort: where locks cannot be taken, ``keep_since`` protects."""
    if fcntl is None or version_key in _held:
        return
    path = _lock_path(version_key)
    for _ in range(5):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_nlink > 0:  # not a file a prune removed while we waited for it
                _held[version_key] = fd
                return
        except OSError:
            pass
        os.close(fd)


def release_held_versions() -> None:
    """Let go of every version this process holds (the end of a command, or of an agent's cycle)."""
    while _held:
        _key, fd = _held.popitem()
        with contextlib.suppress(OSError):
            os.close(fd)


def _take_for_removal(version_key: str, folder: Path) -> int | None:
    """An exclusive lock on a version's lock file, or None when a plan holds the version."""
    if fcntl is None:
        return -1
    try:
        fd = os.open(_lock_path(version_key, folder), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return -1  # cannot tell: decided by its last use, as without locks
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a plan holds it
        os.close(fd)
        return None
    except OSError:  # a file system without locks (some network mounts): decided by its last use
        os.close(fd)
        return -1
    return fd


def entry_id(relative: Path) -> str:
    """The cache entry a file belongs to: a shard's table with its keys and run, a version's
    partitions folder (any bit count), one stash file, one marker… Removed and counted as one."""
    parts = relative.parts
    top, name = parts[0], parts[-1]
    if len(parts) == 1:
        return name
    if name.startswith(".") or (len(parts) > 2 and parts[1].startswith(".")):
        return "/".join(parts[:2])  # a file or folder being written (or left by a killed run)
    if top in ("shards", "index", "stash", "listing", USED):
        return f"{top}/{name.split('.', 1)[0]}" if len(parts) == 2 else "/".join(parts[:2])
    if top == "partitions":
        return f"partitions/{re.sub(r'-b[0-9]+$', '', parts[1])}"
    if top == "verified":
        return "/".join(parts)
    return "/".join(parts[:2])


@dataclass
class Entry:
    id: str
    size: int = 0
    last_used: float = 0.0
    roots: set[Path] = field(default_factory=set)  # what removing it deletes (files, or a folder)

    @property
    def kind(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass(frozen=True)
class VersionUse:
    key: str
    label: str
    last_used: float
    size: int  # of its entries present now (an entry shared with other versions counts in each)
    entries: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "last_used": _iso(self.last_used), "bytes": self.size, "entries": len(self.entries)}


@dataclass(frozen=True)
class CacheContents:
    """What the cache holds: its entries, and the versions plans noted using, most recent first."""

    folder: Path
    entries: dict[str, Entry]
    versions: tuple[VersionUse, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values())

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind → (entries, bytes)."""
        out: dict[str, tuple[int, int]] = {}
        for e in self.entries.values():
            n, b = out.get(e.kind, (0, 0))
            out[e.kind] = (n + 1, b + e.size)
        return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "bytes": self.size,
            "entries": len(self.entries),
            "kinds": {k: {"what": KINDS.get(k, k), "entries": n, "bytes": b} for k, (n, b) in self.by_kind().items()},
            "versions": [v.to_json() for v in self.versions],
        }


@dataclass(frozen=True)
class PruneResult:
    folder: Path
    dry_run: bool
    removed_entries: int
    removed_bytes: int
    kept_entries: int
    kept_bytes: int
    removed_versions: tuple[str, ...]  # labels, most recently used first
    kept_versions: tuple[str, ...]
    over_budget: bool  # what was used since keep_since (or is held) alone exceeds max_size
    failed: tuple[str, ...] = ()  # paths that could not be removed, with why
    in_use: tuple[str, ...] = ()  # labels of versions kept because a running plan holds them

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder), "dry_run": self.dry_run,
            "removed": {"entries": self.removed_entries, "bytes": self.removed_bytes, "versions": list(self.removed_versions)},
            "kept": {"entries": self.kept_entries, "bytes": self.kept_bytes, "versions": list(self.kept_versions)},
            "over_budget": self.over_budget, "failed": list(self.failed), "in_use": list(self.in_use),
        }


def cache_contents(folder: Path | None = None) -> CacheContents:
    folder = folder if folder is not None else caches.cache_dir()
    entries: dict[str, Entry] = {}
    if folder.is_dir():
        for top in sorted(KINDS):  # only what vectorops writes: a cache folder set to ~ by mistake loses nothing
            if (folder / top).is_dir():
                _scan(folder, folder / top, entries)
    records = _records(folder, entries)
    versions = tuple(
        VersionUse(key, label, used, sum(entries[m].size for m in members if m in entries) + entries[f"{USED}/{key}"].size,
                   tuple(m for m in members if m in entries))
        for key, label, used, members in records
    )
    return CacheContents(folder, entries, versions)


def _scan(folder: Path, path: Path, entries: dict[str, Entry]) -> None:
    try:
        st = path.lstat()
    except OSError:
        return  # removed while we looked
    relative = path.relative_to(folder)
    parts = relative.parts
    # a folder two levels down (a version's partitions, a run's temporary folder) is removed whole
    whole_folder = len(parts) >= 2 and parts[0] != "verified"
    if path.is_dir() and not path.is_symlink():
        if len(parts) == 2 and whole_folder:  # counted even when empty, by its own mtime too
            eid = entry_id(relative / "_")
            entry = entries.setdefault(eid, Entry(eid))
            entry.last_used = max(entry.last_used, st.st_mtime)
            entry.roots.add(path)
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            _scan(folder, path / name, entries)
        return
    eid = entry_id(relative)
    entry = entries.setdefault(eid, Entry(eid))
    entry.size += st.st_size
    if not (parts[0] == USED and name_is_lock(parts[-1])):  # a lock file's time says when it was made, not used
        entry.last_used = max(entry.last_used, st.st_mtime)
    entry.roots.add(folder / parts[0] / parts[1] if whole_folder and len(parts) > 2 else path)


def _records(folder: Path, entries: dict[str, Entry]) -> list[tuple[str, str, float, tuple[str, ...]]]:
    """(version key, label, last used, member entry ids) of every use record, most recent first."""
    out = []
    for eid, entry in entries.items():
        if not eid.startswith(f"{USED}/") or Path(eid).name.startswith("."):
            continue
        key = eid.split("/", 1)[1]
        try:
            doc = json.loads((folder / USED / f"{key}.json").read_text())
            label, members = str(doc["label"]), tuple(str(m) for m in doc["members"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # torn or foreign: an entry of its own, pruned by age
        out.append((key, label, entry.last_used, members))
    out.sort(key=lambda r: -r[2])
    return out


def prune(
    *, max_size: int | None = None, older_than: float | None = None, keep_since: float, dry_run: bool = False,
    folder: Path | None = None,
) -> PruneResult:
    """Drop the least recently used versions (and entries of no version) until what is left fits
    ``max_size`` bytes and nothing was last used before ``now - older_than`` seconds; anything used
    since ``keep_since`` (a time) stays whatever the size."""
    contents = cache_contents(folder)
    entries = contents.entries
    cutoff = time.time() - older_than if older_than is not None else None
    owned = {m for v in contents.versions for m in v.entries} | {f"{USED}/{v.key}" for v in contents.versions}
    # the units of pruning: the versions, most recently used first, then what belongs to no version
    # (stashed records, markers, resume points), by the same rule with what budget is left; what a
    # run was writing when it died is never reused, so it goes once it is not recent
    units: list[tuple[float, VersionUse | None, tuple[str, ...]]] = [
        (v.last_used, v, (*v.entries, f"{USED}/{v.key}")) for v in contents.versions
    ]
    loose = [e for e in entries.values() if e.id not in owned and not _temporary(e.id)]
    units += sorted(((e.last_used, None, (e.id,)) for e in loose), key=lambda u: -u[0])
    units += [(e.last_used, None, (e.id,)) for e in entries.values() if _temporary(e.id) and e.last_used >= keep_since]
    kept: set[str] = set()
    kept_size = 0
    kept_versions: list[str] = []
    dropped_versions: list[str] = []
    in_use: list[str] = []
    taken: list[int] = []  # exclusive locks on the versions being dropped, held until they are gone
    over_budget = False
    try:
        for used, version, ids in units:
            new = [i for i in ids if i not in kept]
            extra = sum(entries[i].size for i in new)
            recent = used >= keep_since
            fits = max_size is None or kept_size + extra <= max_size
            young = cutoff is None or used >= cutoff
            held = False
            if version is not None and not (recent or (fits and young)):
                lock = _take_for_removal(version.key, contents.folder)
                held = lock is None
                if lock is not None and lock >= 0:
                    taken.append(lock)
            if recent or held or (fits and young):
                kept.update(new)
                kept_size += extra
                if version is not None:
                    kept_versions.append(version.label)
                    if held:
                        in_use.append(version.label)
                if (recent or held) and not fits:
                    over_budget = True
            elif version is not None:
                dropped_versions.append(version.label)
        doomed = [e for e in entries.values() if e.id not in kept]
        failed: list[str] = []
        if not dry_run:
            # records first: a version half removed must not look whole to the next prune
            for entry in sorted(doomed, key=lambda e: not e.id.startswith(f"{USED}/")):
                for root in sorted(entry.roots):
                    try:
                        if root.is_dir() and not root.is_symlink():
                            shutil.rmtree(root)
                        else:
                            root.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        failed.append(f"{root}: {exc.strerror or exc}")
    finally:
        for fd in taken:
            os.close(fd)
    return PruneResult(
        folder=contents.folder, dry_run=dry_run,
        removed_entries=len(doomed), removed_bytes=sum(e.size for e in doomed),
        kept_entries=len(kept), kept_bytes=kept_size,
        removed_versions=tuple(dropped_versions), kept_versions=tuple(kept_versions), over_budget=over_budget, failed=tuple(failed),
        in_use=tuple(in_use),
    )


def _temporary(eid: str) -> bool:
    """A file or folder being written (a dot name, or under ``tmp/``): never read back by a later run."""
    return eid.startswith("tmp/") or Path(eid).name.startswith(".") or "/." in eid


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
