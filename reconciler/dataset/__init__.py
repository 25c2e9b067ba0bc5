"""Datasets pinned in git, stored by DVC: resolve a rev, list versions, stream records.

A version is read exactly as DVC stores it at a commit (local cache, else the DVC remote) and
never from the working tree, so the same manifest plans the same everywhere the remote is
reachable. Resolving a rev and listing versions read only git; DVC is imported on first data read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.dataset import decode, git, pins, readers, storage
from reconciler.dataset.model import DatasetSource, DatasetVersion, VersionInfo, where
from reconciler.errors import DatasetError
from reconciler.records import RecordBatch

__all__ = [
    "DatasetSource",
    "DatasetVersion",
    "VersionInfo",
    "count_records",
    "list_versions",
    "read_batches",
    "read_records",
    "read_schema",
    "resolve_version",
    "unreadable",
]

_SUFFIXES = {"parquet": (".parquet", ".parq", ".pq"), "jsonl": (".jsonl", ".json", ".ndjson")}


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
        rev=rev, commit=commit, digest=pin.digest, size=pin.size, committed_at=git.committed_at(local, commit)
    )


def read_batches(
    src: DatasetSource, version: DatasetVersion, batch_size: int = 65_536, ids_only: bool = False
) -> Iterator[RecordBatch]:
    """Every record of the version, ``batch_size`` at a time, checked as it streams."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    fs, files = _files(src, version)
    for file in files:
        yield from _read_file(src, version, fs, file, batch_size, ids_only)


def read_records(src: DatasetSource, version: DatasetVersion, ids: Any) -> Iterator[RecordBatch]:
    """Only the records with these ids, streamed batch by batch; stops once every id was seen.

    ``ids`` is a pyarrow string array (or a list); batches without any of them are skipped.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
    wanted = wanted.cast(pa.string())
    remaining = len(wanted)
    if remaining == 0:
        return
    batches = read_batches(src, version)
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


def read_schema(src: DatasetSource, version: DatasetVersion) -> None:
    """Cheap check that the version has the declared columns and dimension (footer + first batch)."""
    fs, files = _files(src, version)
    batches = _read_file(src, version, fs, files[0], 1024, False, first_only=True)
    try:
        next(batches, None)
    finally:
        batches.close()


def unreadable(src: DatasetSource, version: DatasetVersion) -> str | None:
    """None when DVC can serve every byte of the version (local cache or remote), else what is
    missing and where DVC looked. Asks only whether the objects exist: nothing is decoded."""
    try:
        fs, files = _files(src, version)
    except DatasetError as exc:  # a directory whose listing (.dir object) is nowhere
        return exc.message
    missing, reason = storage.missing_objects(fs, files)
    if not missing:
        return None
    looked = f"in neither {storage.describe_cache(fs)} nor {storage.describe_remote(fs)}"
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
    fs, files = _files(src, version)
    total = 0
    for file in files:
        at = where(src, version, file)
        with storage.open_binary(fs, file, at) as handle:
            total += readers.ParquetSource(handle, storage.local_path(handle), at).file.metadata.num_rows
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
    return DatasetError(f"dataset '{src.name}' ({src.origin}): unknown git rev '{rev}' in {src.repo}", hint=hint)


def _pin_from_dvc(src: DatasetSource, local: Path, commit: str) -> pins.Pin | None:
    """Outputs inside a tracked directory: only DVC (with the .dir object) knows their md5."""
    entry = storage.info(storage.filesystem(src.repo, local, commit), src.path)
    dvc_info = (entry or {}).get("dvc_info") or {}
    if not dvc_info.get("md5"):
        return None  # absent, or a plain git-tracked file
    return pins.Pin(digest=str(dvc_info["md5"]), size=dvc_info.get("size"), declared_in="(DVC)")


def _files(src: DatasetSource, version: DatasetVersion) -> tuple[Any, list[str]]:
    if src.format not in _SUFFIXES:
        raise DatasetError(f"dataset '{src.name}' ({src.origin}): unknown format '{src.format}'", hint="Use parquet or jsonl.")
    local = git.local_repo(src.repo, _who(src))
    fs = storage.filesystem(src.repo, local, version.commit)
    files = storage.data_files(fs, src.path, _SUFFIXES[src.format], where(src, version))
    if not files:
        raise DatasetError(
            f"{where(src, version)}: the tracked directory holds no {src.format} files",
            hint=f"Put files ending in {', '.join(_SUFFIXES[src.format])} in it, or fix `format:`.",
        )
    return fs, files


def _read_file(
    src: DatasetSource,
    version: DatasetVersion,
    fs: Any,
    file: str,
    batch_size: int,
    ids_only: bool,
    first_only: bool = False,
) -> Iterator[RecordBatch]:
    at = where(src, version, file)

    def layout_for(available: Sequence[str]) -> decode.Layout:
        return decode.layout_for(at, src.id_field, src.vector_field, src.metadata_fields, src.dimension, available)

    with storage.open_binary(fs, file, at) as handle:
        if src.format == "parquet":
            source = readers.ParquetSource(handle, storage.local_path(handle), at)
            batches = readers.parquet_batches(source, layout_for, batch_size, ids_only)
        else:
            batches = readers.jsonl_batches(handle, at, layout_for, batch_size, ids_only, limit=batch_size if first_only else None)
        for batch in batches:
            yield batch
            if first_only:
                return
