"""Datasets pinned in git, stored by DVC: resolve a rev, list versions, stream records.

A version is read exactly as DVC stores it at a commit (local cache, else the DVC remote) and
never from the working tree, so the same manifest plans the same everywhere the remote is
reachable. Resolving a rev and listing versions read only git; DVC is imported on the first data
read that the repo's own DVC cache cannot serve (objects there are read directly: they are named
by their md5, which every read checks).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.dataset import decode, folders, git, integrity, pins, readers, storage
from reconciler.dataset.model import DatasetShard, DatasetSource, DatasetVersion, FolderField, VersionInfo, where
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch
from reconciler.redact import printable

__all__ = [
    "DatasetShard",
    "DatasetSource",
    "DatasetVersion",
    "UnknownRevError",
    "VersionInfo",
    "count_records",
    "is_sharded",
    "list_shards",
    "list_versions",
    "read_batches",
    "read_records",
    "read_schema",
    "read_shard",
    "read_shard_records",
    "resolve_version",
    "unreadable",
    "verify_shard",
    "verify_version",
    "with_folder_fields",
]

_SUFFIXES = {"parquet": (".parquet", ".parq", ".pq"), "jsonl": (".jsonl", ".json", ".ndjson")}
_COMPRESSED = tuple(f"{s}.{c}" for s in _SUFFIXES["jsonl"] for c in ("gz", "bz2", "xz", "zst"))
#: in a directory of one format, files holding records in a form it is not read in: refused by name
#: rather than left out (a .json beside Parquet shards is often a description of them, so not that)
_FOREIGN = {"parquet": (".jsonl", ".ndjson", *_COMPRESSED), "jsonl": (*_SUFFIXES["parquet"], *_COMPRESSED)}


def resolve_version(src: DatasetSource, rev: str) -> DatasetVersion:
    """Rev -> commit sha and DVC digest, from git alone (no data read)."""
    local = git.local_repo(src.repo, _who(src))
    commit = git.resolve_commit(local, rev)
    if commit is None:
        raise _unknown_rev(src, rev, local)
    pin = pins.find_pin(local, commit, src.path)
    if pin is None:
        pin = _pin_from_dvc(src, local, commit)
    if pin is None:
        raise DatasetError(
            f"dataset '{src.name}' ({src.origin}): {src.path} is not tracked by DVC at {rev} ({commit[:12]}): "
            f"no {src.path}.dvc file and no dvc.lock output records it",
            hint=f"Run `dvc add {src.path}` and commit the .dvc file, or pin a rev where the dataset exists "
            f"(`vectorops versions {src.name}` lists them).",
        )
    return DatasetVersion(
        rev=rev, commit=commit, digest=pin.digest, size=pin.size, committed_at=git.committed_at(local, commit),
        pinned_in=f"{pin.declared_in} at {commit[:12]}" if pin.declared_in != "(DVC)" else f"DVC at {commit[:12]}",
    )


def read_batches(
    src: DatasetSource, version: DatasetVersion, batch_size: int = 65_536, ids_only: bool = False
) -> Iterator[RecordBatch]:
    """Every record of the version, ``batch_size`` at a time, checked as it streams."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    fs, files, expected = _files(src, version)
    folder = _folder_fields(src, version, files)
    for file in files:
        yield from _read_file(src, version, fs, file, batch_size, ids_only, expected=expected[file], folder=folder.get(file, ()))


def is_sharded(version: DatasetVersion) -> bool:
    """A version stored as a DVC-tracked directory (its digest names a ``.dir`` listing)."""
    return version.digest.endswith(".dir")


def list_shards(src: DatasetSource, version: DatasetVersion) -> list[DatasetShard]:
    """The data files of a directory version in a stable order, each with its pinned md5.

    Reads only the directory listing (git and DVC's ``.dir`` object): no shard is opened. The
    listing is read straight from the repo's DVC cache when it is there (``storage.local_object``).
    """
    found = _local_files(src, version)
    _fs, files, expected = found if found is not None else _files(src, version)
    return with_folder_fields(src, version, [DatasetShard(file, expected[file].md5, expected[file].size) for file in files])


def with_folder_fields(src: DatasetSource, version: DatasetVersion, shards: list[DatasetShard]) -> list[DatasetShard]:
    """The shards, each with the fields of the Hive-style folders above it (``folders``): they follow
    from the shards' paths alone, so a listing kept without them gets them back here."""
    found = _folder_fields(src, version, [shard.path for shard in shards])
    return [DatasetShard(s.path, s.md5, s.size, found.get(s.path, ())) for s in shards]


def read_shard(
    src: DatasetSource, version: DatasetVersion, shard: DatasetShard, batch_size: int = 65_536, ids_only: bool = False
) -> Iterator[RecordBatch]:
    """Every record of one shard, verified against its pinned md5 in the same pass; read straight
    from the repo's DVC cache when the shard is there (``storage.local_object``), else through DVC."""
    expected, local, cached = _shard_object(src, version, shard)
    if cached is not None:
        with open(cached, "rb") as handle:
            layout_for = _layout_for(src, version, shard.path, shard.folder)
            yield from _verified_batches(src, version, None, shard.path, handle, expected, layout_for, batch_size, ids_only)
        return
    fs = storage.filesystem(src.repo, local, version.commit)
    yield from _read_file(src, version, fs, shard.path, batch_size, ids_only, expected=expected, folder=shard.folder)


def _shard_object(src: DatasetSource, version: DatasetVersion, shard: DatasetShard) -> tuple[integrity.Expected, Path, str | None]:
    """What one shard must hash to, the dataset repo, and the shard's object in that repo's DVC cache
    (None when it is not there: it is then read through DVC)."""
    local = git.local_repo(src.repo, _who(src))
    return integrity.Expected(shard.md5, shard.size, _in_listing(version)), local, storage.local_object(local, shard.md5)


def read_shard_records(src: DatasetSource, version: DatasetVersion, shard: DatasetShard, ids: Any) -> Iterator[RecordBatch]:
    """Only the records of one shard with these ids, the shard checked before its first record; read
    straight from the repo's DVC cache when it is there, else through DVC, as ``read_shard``. Only
    this shard is opened: not the version's listing (listing 2,000 shards through DVC for each of
    them made a first apply of 100k records take ~2 minutes)."""
    yield from _pick(_shard_verified_first(src, version, shard), ids)


def _shard_verified_first(src: DatasetSource, version: DatasetVersion, shard: DatasetShard, batch_size: int = 65_536) -> Iterator[RecordBatch]:
    expected, local, cached = _shard_object(src, version, shard)
    if cached is not None:
        with open(cached, "rb") as handle:
            _verify_whole(src, version, None, shard.path, handle, expected)  # a local file: verified, or refused
            layout_for = _layout_for(src, version, shard.path, shard.folder)
            yield from _decoded(src, handle, where(src, version, shard.path), layout_for, batch_size, False)
        return
    fs = storage.filesystem(src.repo, local, version.commit)
    with storage.open_binary(fs, shard.path, where(src, version, shard.path)) as handle:
        verified = _verify_whole(src, version, fs, shard.path, handle, expected)
    yield from _read_file(src, version, fs, shard.path, batch_size, False, expected=None if verified else expected, folder=shard.folder)


def verify_shard(src: DatasetSource, version: DatasetVersion, shard: DatasetShard) -> None:
    """Check one shard against its pinned md5 now (remembered once verified)."""
    expected, local, cached = _shard_object(src, version, shard)
    if cached is not None:
        with open(cached, "rb") as handle:
            _verify_whole(src, version, None, shard.path, handle, expected)
        return
    fs = storage.filesystem(src.repo, local, version.commit)
    with storage.open_binary(fs, shard.path, where(src, version, shard.path)) as handle:
        if not _verify_whole(src, version, fs, shard.path, handle, expected):
            batches = _read_file(src, version, fs, shard.path, 65_536, True, expected=expected)
            for _ in batches:  # a remote stream: spooled and verified before its first batch
                break
            batches.close()


def read_records(src: DatasetSource, version: DatasetVersion, ids: Any) -> Iterator[RecordBatch]:
    """Only the records with these ids, streamed batch by batch; stops once every id was seen.

    ``ids`` is a pyarrow string array (or a list); batches without any of them are skipped.
    """
    yield from _pick(_read_verified_first(src, version), ids)


def _pick(batches: Any, ids: Any) -> Iterator[RecordBatch]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
    wanted = wanted.cast(pa.string())
    remaining = len(wanted)
    if remaining == 0:
        batches.close()
        return
    try:
        for batch in batches:
            rows = pc.indices_nonzero(pc.is_in(batch.ids, value_set=wanted)).to_numpy()
            if len(rows) == 0:
                continue
            yield batch if len(rows) == len(batch) else batch.take(np.asarray(rows))
            remaining -= len(rows)
            if remaining <= 0:
                break
    finally:
        batches.close()  # releases the open file when we stop early


def _read_verified_first(src: DatasetSource, version: DatasetVersion, batch_size: int = 65_536) -> Iterator[RecordBatch]:
    """Every record, each file checked against its pinned md5 *before* its first record is handed out.

    For reads that may stop early and whose records are written (an apply's upserts): hashing
    while reading would only know at the end. A file this machine verified before, unchanged
    since, is not hashed again (``integrity.already_verified``).
    """
    fs, files, expected = _files(src, version)
    folder = _folder_fields(src, version, files)
    for file in files:
        with storage.open_binary(fs, file, where(src, version, file)) as handle:
            verified = _verify_whole(src, version, fs, file, handle, expected[file])
        yield from _read_file(src, version, fs, file, batch_size, False, expected=None if verified else expected[file], folder=folder.get(file, ()))


def verify_version(src: DatasetSource, version: DatasetVersion) -> None:
    """Check every file of the version against its pinned md5 now (remembered once verified)."""
    fs, files, expected = _files(src, version)
    for file in files:
        with storage.open_binary(fs, file, where(src, version, file)) as handle:
            if not _verify_whole(src, version, fs, file, handle, expected[file]):
                batches = _read_file(src, version, fs, file, 65_536, True, expected=expected[file])
                for _ in batches:  # a remote stream: spooled and verified before its first batch
                    break
                batches.close()


def read_schema(src: DatasetSource, version: DatasetVersion) -> None:
    """Cheap check that the version has the declared columns and dimension (footer + first batch)."""
    fs, files, expected = _files(src, version)
    folder = _folder_fields(src, version, files)
    batches = _read_file(src, version, fs, files[0], 1024, False, first_only=True, folder=folder.get(files[0], ()))
    try:
        next(batches, None)
    except DatasetError:
        with storage.open_binary(fs, files[0], where(src, version, files[0])) as handle:
            _verify_whole(src, version, fs, files[0], handle, expected[files[0]])  # a damaged object is named as such
        raise
    finally:
        batches.close()


def unreadable(src: DatasetSource, version: DatasetVersion) -> str | None:
    """None when DVC can serve every byte of the version (local cache or remote), else what is
    missing and where DVC looked. Asks only whether the objects exist: nothing is decoded."""
    local = git.local_repo(src.repo, _who(src))
    if not is_sharded(version) and storage.local_object(local, version.digest) is not None:
        return None
    try:
        found = _local_files(src, version) if is_sharded(version) else None
    except DatasetError:  # a damaged listing: the read reports it; here DVC is asked as before
        found = None
    if found is not None and all(storage.local_object(local, e.md5) is not None for e in found[2].values()):
        return None
    try:
        fs, files = _data_files(src, version)
    except DatasetError as exc:  # a directory whose listing (.dir object) is nowhere
        return exc.message
    missing, reason = storage.missing_objects(fs, files)
    if not missing:
        return None
    looked = storage.nowhere(fs)
    if reason:
        looked = f"not in {storage.describe_cache(fs)}, and {reason}"
    if len(files) == 1:
        return f"{where(src, version, missing[0])}: the data is {looked}"
    shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
    return f"{where(src, version)}: {len(missing)} of its {len(files)} files ({shown}) are {looked}"


def count_records(src: DatasetSource, version: DatasetVersion) -> int | None:
    """Record count from Parquet footers; None for JSONL (it would need a full read)."""
    if src.format != "parquet":
        return None
    fs, files, expected = _files(src, version)
    total = 0
    for file in files:
        at = where(src, version, file)
        with storage.open_binary(fs, file, at) as handle:
            try:
                total += readers.ParquetSource(handle, storage.local_path(handle), at).file.metadata.num_rows
            except DatasetError:
                _verify_whole(src, version, fs, file, handle, expected[file])  # a damaged object is named as such
                raise
    return total


def list_versions(src: DatasetSource, limit: int | None = None) -> list[VersionInfo]:
    """Newest first: every commit (from HEAD and all tags) that changed the dataset's digest."""
    local = git.local_repo(src.repo, _who(src))
    paths = pins.candidate_files(src.path)
    digests: dict[str, str | None] = {}

    def digest_at(commit: str | None) -> str | None:
        if commit is None:
            return None
        if commit not in digests:
            pin = pins.find_pin(local, commit, src.path)
            digests[commit] = pin.digest if pin else None
        return digests[commit]

    changes: list[tuple[str, str, str]] = []
    for commit, date, parent in git.log(local, ["HEAD", "--tags"], paths):
        digest = digest_at(commit)
        if digest is not None and digest != digest_at(parent):
            changes.append((commit, date, digest))
    kept = {c for c, _, _ in changes}
    tag_map: dict[str, list[str]] = {}
    for commit, names in git.tags_by_commit(local).items():
        target = commit if commit in kept else next((c for c, _, _ in git.log(local, [commit], paths) if c in kept), None)
        if target:
            tag_map.setdefault(target, []).extend(names)
    result = []
    for commit, date, digest in changes[:limit] if limit else changes:
        version = DatasetVersion(rev=commit, commit=commit, digest=digest, size=None, committed_at=date)
        try:
            records = count_records(src, version)
        except DatasetError:
            records = None
        result.append(VersionInfo(commit, date, tuple(sorted(tag_map.get(commit, []))), digest, records))
    return result


# -- internals -----------------------------------------------------------------------------------


def _who(src: DatasetSource) -> str:
    return f"dataset '{src.name}' ({src.origin})"


def _unknown_rev(src: DatasetSource, rev: str, repo: Path) -> DatasetError:
    known = git.tags(repo)[:10]
    hint = "Pin an existing tag, branch or commit of the dataset repo."
    if known:
        hint += f" Tags there: {', '.join(known)}."
    if git.is_shallow(repo):
        hint += (
            " This checkout is shallow, so older revs and tags are missing: use `actions/checkout` with "
            "`fetch-depth: 0`, or run `git fetch --unshallow --tags`."
        )
    else:
        hint += " If the rev exists upstream, run `git fetch --tags`."
    return UnknownRevError(f"dataset '{src.name}' ({src.origin}): unknown git rev '{printable(rev)}' in {src.repo}", hint=hint)


class UnknownRevError(DatasetError):
    """A rev that names no commit of the dataset's repo (the caller knows which manifest line pinned it)."""


def _pin_from_dvc(src: DatasetSource, local: Path, commit: str) -> pins.Pin | None:
    """Outputs inside a tracked directory: only DVC (with the .dir object) knows their md5."""
    entry = storage.info(storage.filesystem(src.repo, local, commit), src.path)
    dvc_info = (entry or {}).get("dvc_info") or {}
    if not dvc_info.get("md5"):
        return None  # absent, or a plain git-tracked file
    return pins.Pin(digest=str(dvc_info["md5"]), size=dvc_info.get("size"), declared_in="(DVC)")


def _files(src: DatasetSource, version: DatasetVersion) -> tuple[Any, list[str], dict[str, integrity.Expected]]:
    """The version's data files and, for each, the md5 (and size) DVC pinned for it."""
    fs, files = _data_files(src, version)
    if not version.digest.endswith(".dir"):
        pinned_in = version.pinned_in or f"the .dvc file at {version.commit[:12]}"
        return fs, files, {files[0]: integrity.Expected(version.digest, version.size, pinned_in)}
    listing = storage.verify_listing(fs, src.path, version.digest, where(src, version), version.pinned_in or "the .dvc file")
    expected = {}
    for file in files:
        entry = listing.get(file) if listing is not None else _dvc_md5(fs, file)
        if entry is None:
            raise DatasetError(f"{where(src, version, file)}: not in the directory listing {version.digest}", hint="Check the dataset with `dvc status`.")
        expected[file] = integrity.Expected(entry[0], entry[1], _in_listing(version))
    return fs, files, expected


def _local_files(src: DatasetSource, version: DatasetVersion) -> tuple[None, list[str], dict[str, integrity.Expected]] | None:
    """``_files`` of a directory version from its ``.dir`` object in the repo's DVC cache, without
    DVC (``storage.local_object``); None when the object is not there (or the version is one file)."""
    if not is_sharded(version) or src.format not in _SUFFIXES:
        return None
    cached = storage.local_object(git.local_repo(src.repo, _who(src)), version.digest)
    if cached is None:
        return None
    try:
        with open(cached, "rb") as f:
            data = f.read()
    except OSError:
        return None  # unreadable here: DVC will say why
    listing = storage.parse_listing(data, src.path, version.digest, where(src, version), version.pinned_in or "the .dvc file", cached, "cache")
    files = _checked(src, version, storage.data_file_names(listing, _SUFFIXES[src.format], _FOREIGN[src.format], root=src.path))
    pinned_in = _in_listing(version)
    return None, files, {file: integrity.Expected(listing[file][0], listing[file][1], pinned_in) for file in files}


def _in_listing(version: DatasetVersion) -> str:
    """Where a shard's md5 is pinned, for messages."""
    return f"the directory listing {version.digest} (pinned in {version.pinned_in or 'the .dvc file'})"


def _dvc_md5(fs: Any, file: str) -> tuple[str, int | None] | None:
    entry = storage.info(fs, file) or {}
    md5 = entry.get("md5") or (entry.get("dvc_info") or {}).get("md5")
    return (str(md5), entry.get("size")) if md5 else None


def _data_files(src: DatasetSource, version: DatasetVersion) -> tuple[Any, list[str]]:
    if src.format not in _SUFFIXES:
        raise DatasetError(f"dataset '{src.name}' ({src.origin}): unknown format '{src.format}'", hint="Use parquet or jsonl.")
    local = git.local_repo(src.repo, _who(src))
    fs = storage.filesystem(src.repo, local, version.commit)
    return fs, _checked(src, version, storage.data_files(fs, src.path, _SUFFIXES[src.format], where(src, version), _FOREIGN[src.format]))


def _checked(src: DatasetSource, version: DatasetVersion, found: storage.DirectoryFiles) -> list[str]:
    """The data files of a directory, or why it cannot be read as a dataset."""
    if found.table_format is not None:
        raise DatasetError(
            f"{where(src, version)}: this directory is a {found.table_format} table, whose folder keeps the files of rows it "
            "deleted or rewrote until they are vacuumed: reading its Parquet files would deploy those rows too",
            hint="Write the table's current snapshot out as plain Parquet (e.g. Spark: "
            "`spark.read.format('delta').load(...).write.parquet('data/docs')`), `dvc add` that directory, and point `path` at it.",
        )
    if found.foreign:
        raise _foreign_files(src, version, found.foreign)
    if not found.data:
        raise _no_data_files(src, version)
    return found.data


def _foreign_files(src: DatasetSource, version: DatasetVersion, foreign: list[str]) -> DatasetError:
    """Records vectorops would leave out without a word: shards of the other format, or compressed."""
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    compressed = [f for f in foreign if f.endswith(_COMPRESSED)]
    if len(compressed) == len(foreign):
        return DatasetError(
            f"{where(src, version)}: {shown} {'is' if len(foreign) == 1 else 'are'} compressed, and vectorops reads "
            f"{src.format} shards uncompressed ({', '.join(_SUFFIXES[src.format])}): {'its' if len(foreign) == 1 else 'their'} "
            "records would be left out",
            hint="Decompress them (DVC stores its own copy compactly enough), then `dvc add` the directory and commit again.",
        )
    other = "JSONL" if src.format == "parquet" else "Parquet"
    return DatasetError(
        f"{where(src, version)}: {shown} {'is' if len(foreign) == 1 else 'are'} not {src.format} "
        f"(this dataset's `format:`), so {'its' if len(foreign) == 1 else 'their'} records would be left out; "
        f"only files ending in {', '.join(_SUFFIXES[src.format])} are read",
        hint=f"Write every shard in one format (convert the {other} files, or all shards and set `format:` to match), "
        "or move the others out of the tracked directory; then `dvc add` it and commit again.",
    )


def _no_data_files(src: DatasetSource, version: DatasetVersion) -> DatasetError:
    return DatasetError(
        f"{where(src, version)}: the tracked directory holds no {src.format} files",
        hint=f"Put files ending in {', '.join(_SUFFIXES[src.format])} in it, or fix `format:`.",
    )


def _read_file(
    src: DatasetSource,
    version: DatasetVersion,
    fs: Any,
    file: str,
    batch_size: int,
    ids_only: bool,
    first_only: bool = False,
    expected: integrity.Expected | None = None,
    folder: tuple[FolderField, ...] = (),
) -> Generator[RecordBatch, None, None]:
    """One file's records, with the fields of the folders above it (``folder``). With ``expected``
    the file is verified in the same pass (see integrity)."""
    at = where(src, version, file)
    layout_for = _layout_for(src, version, file, folder)
    with storage.open_binary(fs, file, at) as handle:
        if first_only or expected is None:  # a schema check, or a file verified before: read as it is
            yield from _decoded(src, handle, at, layout_for, batch_size, ids_only, first_only)
            return
        yield from _verified_batches(src, version, fs, file, handle, expected, layout_for, batch_size, ids_only)


def _decoded(
    src: DatasetSource, handle: Any, at: str, layout_for: readers.LayoutFor, batch_size: int, ids_only: bool, first_only: bool = False
) -> Iterator[RecordBatch]:
    """A file's records as they are (no md5 checked here): only the first batch with ``first_only``."""
    if src.format == "parquet":
        batches = readers.parquet_batches(readers.ParquetSource(handle, storage.local_path(handle), at), layout_for, batch_size, ids_only)
    else:
        batches = readers.jsonl_batches(handle, at, layout_for, batch_size, ids_only, limit=batch_size if first_only else None)
    for batch in batches:
        yield batch
        if first_only:
            return


def _layout_for(src: DatasetSource, version: DatasetVersion, file: str, folder: tuple[FolderField, ...] = ()) -> readers.LayoutFor:
    at = where(src, version, file)

    def layout_for(available: Sequence[str]) -> decode.Layout:
        return decode.layout_for(at, src.id_field, src.vector_field, src.metadata_fields, src.dimension, available, folder)

    return layout_for


def _folder_fields(src: DatasetSource, version: DatasetVersion, files: Sequence[str]) -> dict[str, tuple[FolderField, ...]]:
    """The Hive-style folder fields of a directory version's files (``folders``); none for a single file."""
    if not is_sharded(version):
        return {}
    return folders.folder_fields(where(src, version), src.path, files)


def _verified_batches(
    src: DatasetSource,
    version: DatasetVersion,
    fs: Any,
    file: str,
    handle: Any,
    expected: integrity.Expected,
    layout_for: readers.LayoutFor,
    batch_size: int,
    ids_only: bool,
) -> Iterator[RecordBatch]:
    """Decode and hash in one pass; the last batch waits for the digest (``integrity.hold_last``).

    A decoding error on bytes that are not the pinned version is reported as the corrupt object
    it is, not as bad data in "the Parquet file".
    """
    at = where(src, version, file)
    local = storage.local_path(handle)
    obj, place = storage.object_of(fs, handle)
    if local is not None and expected.size is not None:
        size = os.path.getsize(local)
        if size != expected.size:
            raise integrity.corrupt(at, expected, f"it holds {size:,} bytes", obj, place)
    spooled = None
    if local is None:  # a stream from a remote: hash it into a temporary file, then read that
        spooled, digests = storage.spool(handle, src.format == "jsonl")
        if expected.md5 not in digests:
            spooled.close()
            raise integrity.corrupt(at, expected, f"its md5 is {min(digests)}", obj, place)
        local = spooled.name
    try:
        if src.format == "parquet":
            # these very bytes (same file, size and times) were verified on this machine before: a
            # shard hashed again (for a destination of another precision, or its cached table gone)
            # is not read a second time for its md5, as every other read path already skips it
            trusted = integrity.already_verified(local, expected.md5)
            hasher = None if trusted else integrity.FileHasher(local)

            def check() -> None:
                if hasher is None:
                    return
                md5, size = hasher.result()
                if md5 != expected.md5:
                    raise integrity.corrupt(at, expected, f"its md5 is {md5} ({size:,} bytes)", obj, place)
                integrity.remember_verified(local, md5)

            try:
                with open(local, "rb") as f:
                    source = readers.ParquetSource(f, local, at)
                    yield from integrity.hold_last(readers.parquet_batches(source, layout_for, batch_size, ids_only), check)
            except integrity.CorruptObject:
                raise
            except DatasetError:
                check()  # bytes that are not the pinned version: say so instead
                raise
            finally:
                if hasher is not None:
                    hasher.stop()  # a reader that stopped early (every wanted id found) needs no digest
        else:
            with open(local, "rb") as f:
                reader = integrity.HashingReader(f, dos2unix=True)

                def check_stream() -> None:
                    digests, size = reader.finish()
                    if expected.md5 not in digests:
                        raise integrity.corrupt(at, expected, f"its md5 is {min(digests)} ({size:,} bytes)", obj, place)
                    integrity.remember_verified(local, expected.md5)

                try:
                    yield from integrity.hold_last(readers.jsonl_batches(reader, at, layout_for, batch_size, ids_only), check_stream)
                except integrity.CorruptObject:
                    raise
                except DatasetError:
                    check_stream()
                    raise
    finally:
        if spooled is not None:
            spooled.close()


def _verify_whole(src: DatasetSource, version: DatasetVersion, fs: Any, file: str, handle: Any, expected: integrity.Expected) -> bool:
    """Check a whole file before any of it is used, unless this machine verified it unchanged.

    False for a remote stream: the read itself spools and verifies it before its first record.
    """
    at = where(src, version, file)
    local = storage.local_path(handle)
    obj, place = storage.object_of(fs, handle)
    if local is None:
        return False
    if integrity.already_verified(local, expected.md5):
        return True
    size = os.path.getsize(local)
    if expected.size is not None and size != expected.size:
        raise integrity.corrupt(at, expected, f"it holds {size:,} bytes", obj, place)
    if src.format == "jsonl":
        with open(local, "rb") as f:
            digests, size = integrity.HashingReader(f, dos2unix=True).finish()
    else:
        md5, size = integrity.md5_of_file(local)
        digests = {md5}
    if expected.md5 not in digests:
        raise integrity.corrupt(at, expected, f"its md5 is {min(digests)} ({size:,} bytes)", obj, place)
    integrity.remember_verified(local, expected.md5)
    return True
