"""The values the dataset reader takes and returns (plain, frozen, cheap to pass around)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSource:
    """Everything needed to read one dataset; built by the manifest loader."""

    name: str
    repo: str  # absolute path of a local git repo, or a git URL
    path: str  # posix path of the DVC-tracked file, relative to the repo root
    format: str  # "parquet" | "jsonl"
    id_field: str
    vector_field: str
    metadata_fields: tuple[str, ...] | None  # None = every other column
    dimension: int
    origin: str  # where it was declared, for messages, e.g. "vectorops.yaml:5:5"


@dataclass(frozen=True)
class DatasetVersion:
    """One pinned version: the rev as written, the commit it names and DVC's content digest there."""

    rev: str  # as pinned (tag, branch, commit)
    commit: str  # full sha
    digest: str  # DVC md5 of the file (or "<md5>.dir") at that commit
    size: int | None
    committed_at: str  # ISO 8601
    pinned_in: str = ""  # the .dvc / dvc.lock file recording the digest, for messages


@dataclass(frozen=True)
class FolderField:
    """A metadata field a record gets from a Hive-style folder above its file (``lang=en/``).

    ``type`` is one for the whole version (``dataset.folders``): ``int64`` when every value of the
    field in the version is a plain integer, else ``string``; ``value`` None is Hive's null folder.
    """

    name: str
    value: str | int | None
    type: str  # "int64" | "string"


@dataclass(frozen=True)
class DatasetShard:
    """One data file of a version stored as a DVC-tracked directory, with the md5 DVC pinned for it.

    The md5 names the shard's content wherever it appears (any version, any dataset), which is
    what lets a shard's hashes be computed once per machine. Its records are the file's plus the
    fields of the Hive-style folders above it (``folder``), so those are part of what its cached
    hashes are keyed by (``content_key``): a file moved from ``lang=en/`` to ``lang=fr/`` keeps its
    md5 but not its records.
    """

    path: str  # posix path in the repo, e.g. data/docs/part-007.parquet
    md5: str
    size: int | None
    folder: tuple[FolderField, ...] = ()

    @property
    def content_key(self) -> str:
        """What names the shard's records: its md5, plus its folder fields when it has any."""
        if not self.folder:
            return self.md5
        import hashlib
        import json

        fields = json.dumps([[f.name, f.value, f.type] for f in self.folder])
        return f"{self.md5}-f{hashlib.sha256(fields.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class VersionInfo:
    """One entry of `vectorops versions`: a commit that changed the dataset's content."""

    commit: str
    committed_at: str
    tags: tuple[str, ...]
    digest: str
    records: int | None


def where(src: DatasetSource, version: DatasetVersion | None = None, file: str | None = None) -> str:
    """The prefix of every message: which dataset, declared where, at which version, which file."""
    text = f"dataset '{src.name}' ({src.origin})"
    if version is not None:
        text += f" at {version.rev}" if version.rev.startswith(version.commit[:7]) else f" at {version.rev} ({version.commit[:12]})"
    return f"{text}, file {file or src.path}"
