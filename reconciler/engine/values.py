"""The typed pieces a plan and an apply result are made of: frozen values with one JSON form each.

A plan used to carry these as dicts that any stage (and the CLI) could reach into and change, and
each reader re-derived "has changes" or "has drift" on its own. Here each is a frozen value that
knows its predicates and writes its own JSON (the plan JSON of SPEC §4, byte for byte as before);
``from_json`` reads a saved plan back. Levels, statuses and operations are ``str`` enums, so they
compare equal to (and serialise as) the words users see in flags, manifests and JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal


class RefreshLevel(str, Enum):
    """How closely a plan reads the destination (SPEC §4, §10)."""

    NONE = "none"
    STATS = "stats"
    SAMPLE = "sample"
    IDS = "ids"
    FULL = "full"

    def __str__(self) -> str:
        return self.value


class ApplyStatus(str, Enum):
    """How one environment's apply ended (the result line and history)."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    BLOCKED = "blocked"
    STOPPED = "stopped"
    VALIDATION_FAILED = "validation_failed"

    def __str__(self) -> str:
        return self.value

    @property
    def ok(self) -> bool:
        return self in (ApplyStatus.APPLIED, ApplyStatus.UNCHANGED)


#: What an apply run does to an environment, as its lock, intent and history record it (a plain
#: string there, so state written by 0.1.0 reads back unchanged; typed here so a misspelling fails mypy).
Operation = Literal["apply", "rollback"]


@dataclass(frozen=True)
class VersionRef:
    """A dataset version as a plan names it: the rev users pin, its commit and content digest."""

    version: str
    commit: str
    digest: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "commit": self.commit, "digest": self.digest}

    @staticmethod
    def from_json(doc: Mapping[str, Any] | None) -> VersionRef | None:
        if doc is None:
            return None
        return VersionRef(str(doc["version"]), str(doc["commit"]), str(doc["digest"]))

    def same_content_and_name(self, other: VersionRef | None) -> bool:
        return other is not None and (self.version, self.commit, self.digest) == (other.version, other.commit, other.digest)


@dataclass(frozen=True)
class ChangeCounts:
    """Records an apply adds, updates and deletes."""

    add: int = 0
    update: int = 0
    delete: int = 0

    @property
    def any(self) -> bool:
        return bool(self.add or self.update or self.delete)

    @property
    def total(self) -> int:
        return self.add + self.update + self.delete

    def to_json(self) -> dict[str, int]:
        return {"add": self.add, "update": self.update, "delete": self.delete}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> ChangeCounts:
        return ChangeCounts(int(doc.get("add", 0)), int(doc.get("update", 0)), int(doc.get("delete", 0)))


@dataclass(frozen=True)
class SampleBound:
    """What a `sample` refresh saw (SPEC §10): how many expected ids it fetched, how many differed,
    and the one-sided upper bound on the drifted fraction at 95% confidence."""

    sampled: int
    drifted: int
    upper_bound: float | None
    bound: str

    def to_json(self) -> dict[str, Any]:
        return {"sampled": self.sampled, "sample_drifted": self.drifted, "drifted_fraction_upper_bound": self.upper_bound, "bound": self.bound}


@dataclass(frozen=True)
class Drift:
    """How the destination differs from the version recorded as deployed, at the level it was read.

    A count that the level cannot know is None (``modified`` below `full`/`sample`; everything at
    `none`). At `stats`, ``missing`` and ``unexpected`` are what the counts alone prove.
    """

    level: RefreshLevel
    expected_count: int
    actual_count: int | None
    missing: int | None
    unexpected: int | None
    modified: int | None
    sample: SampleBound | None = None

    @property
    def found(self) -> bool:
        """Any record missing, unexpected or modified."""
        return any((n or 0) > 0 for n in (self.missing, self.unexpected, self.modified))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "level": self.level.value,
            "expected_count": self.expected_count,
            "actual_count": self.actual_count,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "modified": self.modified,
        }
        if self.sample is not None:
            doc.update(self.sample.to_json())
        return doc

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Drift:
        sample = None
        if "sampled" in doc:
            sample = SampleBound(int(doc["sampled"]), int(doc.get("sample_drifted") or 0), doc.get("drifted_fraction_upper_bound"), str(doc.get("bound", "")))
        return Drift(
            level=RefreshLevel(doc["level"]),
            expected_count=int(doc.get("expected_count") or 0),
            actual_count=doc.get("actual_count"),
            missing=doc.get("missing"),
            unexpected=doc.get("unexpected"),
            modified=doc.get("modified"),
            sample=sample,
        )
