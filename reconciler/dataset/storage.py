"""Open a dataset's bytes as DVC stores them at a commit: local cache first, else the remote.

This is the only module that imports DVC, and only inside functions, so `vectorops --help` stays
fast. DVC is always given a full commit sha (never None, which would mean "the working tree"), so
uncommitted edits can never leak into a plan.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import posixpath
import re
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reconciler.dataset import git
from reconciler.errors import DatasetError
from reconciler.redact import redact

_KEEP = 8  # open DVC views kept for reuse (a plan reads two versions, `versions` a few more)
_open: OrderedDict[tuple[str, str], Any] = OrderedDict()
# the commit each open DVC view was opened at, for messages (DVCFileSystem keeps it only privately)
_commit_of: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def filesystem(repo: str, local: Path, commit: str) -> Any:
    """A DVCFileSystem over ``local`` at ``commit``; opening one costs ~50 ms, so a few are kept."""
    key = (str(local), commit)
    if key in _open:
        _open.move_to_end(key)
        return _open[key]
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(local), rev=commit, remote_config=_relative_remote_fix(repo, local))
    except ImportError as exc:
        raise (missing_plugin(exc, None, f"DVC cannot open {local} at commit {commit}") or exc) from exc
    _open[key] = fs
    _commit_of[fs] = commit
    while len(_open) > _KEEP:
        _close(_open.popitem(last=False)[1])
    return fs


@atexit.register
def close_all() -> None:
    while _open:
        _close(_open.popitem()[1])


def _close(fs: Any) -> None:
    with contextlib.suppress(Exception):
        fs.repo.close()


def _relative_remote_fix(repo: str, local: Path) -> dict[str, str] | None:
    """In a clone, a relative remote url must still point where the original repo meant (DVC #2756)."""
    if not git.is_url(repo):
        return None
    origin = git.origin_path(repo)
    _name, url = _default_remote(local)
    if origin is None or not url or _is_absolute(url):
        return None
    return {"url": os.path.normpath(os.path.join(origin, ".dvc", url))}


def _default_remote(local: Path) -> tuple[str | None, str | None]:
    from configobj import ConfigObj

    name: str | None = None
    url: str | None = None
    for file in (local / ".dvc" / "config", local / ".dvc" / "config.local"):
        if not file.is_file():
            continue
        cfg = ConfigObj(str(file))
        name = cfg.get("core", {}).get("remote", name)
        if name and f'remote "{name}"' in cfg:
            url = cfg[f'remote "{name}"'].get("url", url)
    return name, url


def _is_absolute(url: str) -> bool:
    return os.path.isabs(url) or bool(re.match(r"^[a-z][a-z0-9+.-]*://", url, re.IGNORECASE))


# DVC's plugin for a remote's storage, and the vectorops extra that installs it (pyproject.toml)
_PLUGIN_EXTRAS = {"dvc-s3": "s3", "dvc-gs": "gs", "dvc-azure": "azure"}
_MISSING_PLUGIN = re.compile(r"(?P<scheme>[\w-]+) is supported, but requires '(?P<plugin>dvc-[\w-]+)' to be installed")


def missing_plugin(exc: BaseException, fs: Any, what: str) -> DatasetError | None:
    """The error to show when DVC lacks the plugin for the remote's storage (s3, gs, azure, ...), else None.

    DVC raises a bare ImportError naming its own package ("requires 'dvc-s3'"), which a vectorops
    user did not choose to install: name the vectorops extra that brings it instead.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        match = _MISSING_PLUGIN.search(str(cause)) if isinstance(cause, ImportError) else None
        if match:
            scheme, plugin = match["scheme"], match["plugin"]
            extra = _PLUGIN_EXTRAS.get(plugin)
            install = (
                f"pip install 'vectorops[{extra}]' (in the GitHub Action: `extras: {extra}`)"
                if extra
                else f"pip install {plugin} (into the same environment as vectorops)"
            )
            remote = describe_remote(fs) if fs is not None else "the DVC remote"
            return DatasetError(
                f"{what}: {remote} is {scheme} storage, and support for {scheme} remotes is not installed",
                hint=f"Install it with: {install}.",
            )
        cause = cause.__cause__ or cause.__context__
    return None


def describe_remote(fs: Any) -> str:
    """'remote "name" (url)' for messages; the url without credentials."""
    try:
        config = fs.repo.config
        name = config["core"].get("remote")
        if not name or name == "auto-generated-upstream":  # DVC's stand-in, the clone's own cache, when none is set
            return "no DVC remote (none is configured as default)"
        url = str(config["remote"].get(name, {}).get("url", "?"))
    except Exception:  # noqa: BLE001 - a message helper must not mask the real error
        return "the default DVC remote"
    return f"DVC remote '{name}' ({redact(url)})"


def nowhere(fs: Any) -> str:
    """Where DVC looked and did not find something: "in neither <cache> nor <remote>", or, with no
    default remote, "not in <cache>, and no DVC remote is configured as the default"."""
    remote = describe_remote(fs)
    if remote.startswith("no DVC remote"):
        return f"not in {describe_cache(fs)}, and no DVC remote is configured as the default"
    return f"in neither {describe_cache(fs)} nor {remote}"


def describe_cache(fs: Any) -> str:
    try:
        return f"the local DVC cache ({fs.repo.cache.local.path})"
    except Exception:  # noqa: BLE001
        return "the local DVC cache"


def info(fs: Any, path: str) -> dict[str, Any] | None:
    """DVC's view of ``path`` at the commit (digest from git; no data read)."""
    try:
        return fs.info(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed .dvc file at that commit
        plugin = missing_plugin(exc, fs, f"DVC cannot read {path}{_at_commit(fs)}")
        if plugin:
            raise plugin from exc
        raise DatasetError(
            f"DVC cannot read {path}{_at_commit(fs)}: {type(exc).__name__}: {redact(str(exc))}",
            hint="Check the .dvc / dvc.yaml files at that commit (`dvc status` there shows what is wrong).",
        ) from exc


def _at_commit(fs: Any) -> str:
    """' at commit <sha>' for messages about a DVC view opened by `filesystem`, else nothing."""
    try:
        commit = _commit_of.get(fs)
    except TypeError:  # not weakly referenceable: not one of ours
        commit = None
    return f" at commit {commit}" if commit else ""


@dataclass(frozen=True)
class DirectoryFiles:
    """What a tracked directory holds, as vectorops reads it (``data_file_names``)."""

    data: list[str]  # the data files, sorted
    foreign: list[str]  # files of records in a form this dataset is not read in (left out silently otherwise)
    table_format: str | None = None  # a table format whose folder keeps files of rows it deleted (Delta Lake…)


def data_files(fs: Any, path: str, suffixes: tuple[str, ...], missing: str, foreign: tuple[str, ...] = ()) -> DirectoryFiles:
    """The file itself, or for a tracked directory what it holds (``data_file_names``)."""
    entry = info(fs, path)
    if entry is None or entry.get("type") != "directory":
        return DirectoryFiles([path], [])
    try:  # listing needs the directory's .dir object from the cache or the remote
        found = fs.find(path)
    except Exception as exc:  # noqa: BLE001 - DVC raises several types for a missing .dir object
        plugin = missing_plugin(exc, fs, missing)
        if plugin:
            raise plugin from exc
        raise DatasetError(
            f"{missing}: the directory listing is {nowhere(fs)}",
            hint="Run `dvc push` where this version was `dvc add`-ed, or make the remote that holds it the default.",
        ) from exc
    return data_file_names((p.lstrip("/") for p in found), suffixes, foreign, root=path)


#: folders that make a directory a table of a format that keeps the files of rows it deleted or
#: rewrote until they are vacuumed: reading every Parquet file would deploy those rows too
_TABLE_FORMATS = (("_delta_log", "Delta Lake"), (".hoodie", "Apache Hudi"))


def data_file_names(paths: Iterable[str], suffixes: tuple[str, ...], foreign: tuple[str, ...] = (), root: str = "") -> DirectoryFiles:
    """Of a tracked directory's files (under ``root``), the data files in a stable (sorted) order:
    those with a data suffix, and none below a hidden folder or named like one (``.`` or ``_``
    first, as pyarrow, Spark and pandas skip them: ``_temporary/`` a failed Spark job left,
    ``.ipynb_checkpoints/``); and the files ending in a ``foreign`` suffix (records in another
    format, which would be left out silently). Anything else (a README, Spark's ``_SUCCESS``,
    ``_metadata``) is not data."""
    names = sorted(paths)
    parts = {p: (posixpath.relpath(p, root) if root else p).split("/") for p in names}
    shown = [p for p in names if not any(part.startswith((".", "_")) for part in parts[p])]
    data = [p for p in shown if p.endswith(suffixes)]
    others = [p for p in shown if foreign and p.endswith(foreign) and not p.endswith(suffixes)]
    return DirectoryFiles(data, others, _table_format([parts[p] for p in names]))


def _table_format(relative: list[list[str]]) -> str | None:
    for folder, name in _TABLE_FORMATS:
        if any(len(p) > 1 and p[0] == folder for p in relative):
            return name
    if any(len(p) == 2 and p[0] == "metadata" and p[1].endswith(".metadata.json") for p in relative):
        return "Apache Iceberg"
    return None


@contextlib.contextmanager
def open_binary(fs: Any, path: str, missing: str) -> Iterator[IO[bytes]]:
    """A seekable binary file; ``missing`` is the message prefix when neither cache nor remote has it."""
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{missing}: the data is {nowhere(fs)}",
            hint="Run `dvc push` where this version was `dvc add`-ed (check out that commit first), "
            "or make the remote that holds it the default.",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - DVC raises many types for unreachable storage
        plugin = missing_plugin(exc, fs, missing)
        if plugin:
            raise plugin from exc
        raise DatasetError(
            f"{missing}: DVC could not read the data from {describe_remote(fs)}: {type(exc).__name__}: {redact(str(exc))}",
            hint="Check that the DVC remote is reachable and its credentials are set (e.g. in .dvc/config.local).",
        ) from exc
    with handle:
        yield handle


def local_path(handle: IO[bytes]) -> str | None:
    """The real file behind a DVC handle (cache or local remote), so pyarrow can read it natively."""
    name = getattr(handle, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return name
    return None


def missing_objects(fs: Any, files: list[str]) -> tuple[list[str], str | None]:
    """The data files whose bytes neither the local DVC cache nor the default remote holds.

    Only asks whether DVC's objects exist (a stat in the cache; a stat, HEAD or listing on the
    remote), so a plan can tell cheaply that an apply could not read a version (`dvc add` without
    `dvc push`, a remote that lost the data) without decoding anything. Also returns why the remote
    could not be asked (no default remote, unreachable), if so. A cloud-versioned remote holds no
    content-addressed objects to ask about: its files count as present.
    """
    from dvc.cachemgr import LEGACY_HASH_NAMES
    from dvc.config import NoRemoteError

    wanted: dict[str, tuple[str, bool]] = {}  # file -> (md5, stored under a legacy hash name)
    for file in files:
        dvc_info = (info(fs, file) or {}).get("dvc_info") or {}
        if not dvc_info.get("md5"):
            continue  # not a DVC output: git holds it
        hash_info = getattr(dvc_info.get("entry"), "hash_info", None)
        wanted[file] = (str(dvc_info["md5"]), getattr(hash_info, "name", "md5") in LEGACY_HASH_NAMES)
    cache = fs.repo.cache
    missing = [f for f, (oid, legacy) in wanted.items() if not (cache.legacy if legacy else cache.local).exists(oid)]
    if not missing:
        return [], None
    try:
        remote = fs.repo.cloud.get_remote(command="fetch")
        if remote.fs.version_aware or remote.worktree:
            return [], None
        present: set[str] = set()
        for legacy in (False, True):
            oids = [wanted[f][0] for f in missing if wanted[f][1] is legacy]
            if oids:
                present |= set((remote.legacy_odb if legacy else remote.odb).oids_exist(oids))
    except NoRemoteError:
        return missing, "no DVC remote is configured as default"
    except Exception as exc:  # noqa: BLE001 - DVC raises many types for a remote it cannot reach
        first = redact(str(exc)).strip().splitlines()[:1]
        return missing, f"DVC could not ask {describe_remote(fs)}: {type(exc).__name__}" + (f": {first[0]}" if first else "")
    return [f for f in missing if wanted[f][0] not in present], None


def local_object(local: Path, md5: str) -> str | None:
    """The object named ``md5`` in the repo's own DVC cache (``.dvc/cache/files/md5``, DVC 3's
    default place), if it is there, to be read without DVC.

    Importing DVC, opening it at a commit and listing a directory there is ~1 s of a cold plan
    that reads one new shard. Objects are named by the md5 of their content and every read checks
    that md5, so an object found here is the pinned one whichever cache DVC is configured to use;
    anything not found here is read through DVC, as before.
    """
    path = local / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return str(path) if len(md5) > 2 and path.is_file() else None


def object_of(fs: Any, handle: IO[bytes]) -> tuple[str, str]:
    """(path, "cache" or "remote") of the stored object behind a handle, for messages; ``fs`` None:
    a handle on ``local_object``'s file."""
    name = local_path(handle) or ""
    if fs is None:
        return name, "cache"
    try:
        cache = os.path.realpath(str(fs.repo.cache.local.path))
    except Exception:  # noqa: BLE001 - only a message depends on it
        cache = None
    if name and cache and os.path.realpath(name).startswith(cache + os.sep):
        return name, "cache"
    return name, "remote"


def spool(handle: IO[bytes], text: bool) -> tuple[Any, set[str]]:
    """Copy a remote stream into a temporary file, hashing it on the way (one download)."""
    import tempfile

    from reconciler.dataset.integrity import HashingReader

    out = tempfile.NamedTemporaryFile(prefix="vectorops-object-", suffix=".tmp")  # noqa: SIM115 - handed to the caller, who closes it
    reader = HashingReader(handle, dos2unix=text)
    while True:
        chunk = reader.read(8 * 1024 * 1024)
        if not chunk:
            break
        out.write(chunk)
    out.flush()
    digests, _ = reader.finish()
    return out, digests


def verify_listing(fs: Any, path: str, digest: str, where: str, pinned_in: str) -> dict[str, tuple[str, int | None]] | None:
    """A tracked directory's listing, checked against the pinned ``<md5>.dir`` digest.

    DVC reads the listing (the ``.dir`` object: JSON whose md5 is the digest) from the cache, else
    the remote, and trusts it; the md5 of each file in it is what the file is verified against,
    so the listing itself is verified first. Returns {path in repo: (md5, size)}, or None when
    neither copy of the listing can be read here (DVC's own view of each file is used then).
    """
    data, obj, place = _listing_bytes(fs, digest)
    if data is None:
        return None
    return parse_listing(data, path, digest, where, pinned_in, obj, place)


def parse_listing(
    data: bytes, path: str, digest: str, where: str, pinned_in: str, obj: str, place: str
) -> dict[str, tuple[str, int | None]]:
    """A ``.dir`` object's bytes, checked against the pinned digest, as {path in repo: (md5, size)}."""
    import hashlib
    import json

    from reconciler.dataset.integrity import Expected, corrupt

    expected = Expected(digest[: -len(".dir")], None, pinned_in)
    found = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if found != expected.md5:
        raise corrupt(where, expected, f"the directory listing's md5 is {found}", obj, place)
    try:
        entries = json.loads(data)
    except ValueError as exc:
        raise corrupt(where, expected, f"the listing is not JSON ({exc})", obj, place) from None
    return {posixpath.join(path, e["relpath"]): (str(e["md5"]), e.get("size")) for e in entries if "relpath" in e and "md5" in e}


def _listing_bytes(fs: Any, digest: str) -> tuple[bytes | None, str, str]:
    try:
        path = fs.repo.cache.local.oid_to_path(digest)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read(), path, "cache"
    except Exception:  # noqa: BLE001 - fall through to the remote
        pass
    try:
        odb = fs.repo.cloud.get_remote_odb()
        path = odb.oid_to_path(digest)
        with odb.fs.open(path, "rb") as f:
            return f.read(), str(path), "remote"
    except Exception:  # noqa: BLE001
        return None, "", "remote"
