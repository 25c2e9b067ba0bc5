"""Canary validation (SPEC §5): load a canary file, check it against a dataset version, run it.

A canary file lists queries whose answers must contain known ids; after an apply they prove the
index actually retrieves what the dataset says it should. The file is checked before anything is
written (unknown ids, wrong dimensions, NaN), because a typo in a canary must not turn into a
"failed" apply that was in fact fine. Every message names ``file:line:column`` and the fix.

Flow: ``load_canaries`` → ``check_canaries`` (against the version's ids) → ``resolve_query_vectors``
(reads only the vectors it needs, streaming) → ``run_canaries`` (``render.human.render_validation`` shows the verdict).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from reconciler.errors import CanaryError, ManifestError
from reconciler.manifest import Positions, parse_yaml_with_positions, read_bounded_text

if TYPE_CHECKING:
    from reconciler.dataset import DatasetVersion
    from reconciler.manifest import LoadedManifest
    from reconciler.providers.base import Destination

__all__ = [
    "CanaryFile",
    "CanaryQuery",
    "check_canaries",
    "load_canaries",
    "resolve_query_vectors",
    "run_canaries",
]

_SHOWN_IDS = 10  # ids listed in one message; the rest are counted


class _Model(BaseModel):
    # strict like the manifest: `expect: [17]` is an int, and ids are strings, so it must be quoted
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CanaryQuery(_Model):
    """One query: a vector (given, or taken from an id of the dataset) and the ids it must return."""

    name: str = Field(min_length=1, description="Shown in results and failures")
    vector_of: str | None = Field(None, min_length=1, description="Query with the vector this id has in the dataset version")
    vector: list[float] | None = Field(None, min_length=1, description="An explicit query vector")
    expect: list[str] = Field(min_length=1, description="Ids that must all be in the top_k results")

    @model_validator(mode="after")
    def _one_source(self) -> CanaryQuery:
        if (self.vector_of is None) == (self.vector is None):
            raise PydanticCustomError("vector_source", "give exactly one of 'vector_of' or 'vector'")
        return self


class CanaryFile(_Model):
    """A whole canary file; positions are kept so later checks can point at the offending line."""

    top_k: int = Field(10, ge=1, le=10_000, description="Results fetched per query")
    queries: list[CanaryQuery] = Field(min_length=1)
    _positions: Positions | None = PrivateAttr(None)

    def where(self, *path: Any) -> str:
        """``file:line:column`` of a value, e.g. ``where("queries", 2, "expect", 0)``."""
        return self._positions.at(path) if self._positions is not None else "(canaries)"


# -- loading -------------------------------------------------------------------------------------

_HINTS = {
    "extra_forbidden": "Remove it or check its spelling; allowed keys: top_k, queries, and per query name, vector_of, vector, expect.",
    "missing": "Add it.",
    "vector_source": "Use 'vector_of: <id>' to query with a dataset record's vector, or 'vector: [...]' for an explicit one, not both.",
    "string_type": 'Write it as text; quote ids YAML reads as numbers or booleans (e.g. "17", "yes").',
    "string_too_short": "It must not be empty.",
    "int_type": "Give a whole number.",
    "float_type": "Give a number.",
    "list_type": "Write it as a list, e.g. [doc-1, doc-2].",
    "model_type": "Write it as a mapping: indented 'key: value' lines.",
    "too_short": "Give at least one entry.",
    "greater_than_equal": "Give a value in the allowed range.",
    "less_than_equal": "Give a value in the allowed range.",
}
_FALLBACK_HINT = "See SPEC §5 (canary queries) for the format."
_KNOWN_KEYS = frozenset({"top_k", "queries", "name", "vector_of", "vector", "expect"})


def load_canaries(path: Path, shown: str) -> CanaryFile:
    """Read and validate a canary file; ``shown`` is how the path appears in messages."""
    p = Path(path)
    if not p.is_file():
        raise CanaryError(
            f"{shown}: no such canary file",
            hint="Create it (see SPEC §5) or fix validation.canaries in the manifest; it is relative to the manifest's folder.",
        )
    try:
        text = read_bounded_text(p, shown, CanaryError)
        data, pos = parse_yaml_with_positions(text, shown, echo=False)
    except ManifestError as exc:  # the shared YAML reader speaks of manifests; these are canaries
        if exc.message.endswith("the manifest is empty"):
            raise CanaryError(f"{shown}:1:1: the canary file is empty", hint="Add 'queries:' with at least one query (SPEC §5).") from None
        raise CanaryError(exc.message, hint=exc.hint) from None
    if not isinstance(data, dict):
        raise CanaryError(f"{pos.at(())}: a canary file must be a mapping with keys top_k and queries", hint="See SPEC §5.")
    try:
        canaries = CanaryFile.model_validate(data)
    except ValidationError as exc:
        raise _format_error(exc, pos, shown) from None
    canaries._positions = pos
    return canaries


def _format_error(exc: ValidationError, pos: Positions, shown: str) -> CanaryError:
    """One line per problem: its place and kind, never the file's text (keys or values).

    The file was named in the manifest, which a pull request edits; until it has the shape of a
    canary file, what it holds is not known to be canary queries, and the Action publishes errors.
    """
    lines = []
    for err in exc.errors():
        path = tuple(err["loc"])
        kind = err["type"]
        hint = _HINTS.get(kind, _FALLBACK_HINT)
        dotted = ".".join(str(p) for p in path) or "the top level"
        if kind == "extra_forbidden":
            owner = ".".join(str(p) for p in path[:-1] if isinstance(p, int) or p in _KNOWN_KEYS) or "the top level"
            where, msg = pos.at(path, key=True), f"unknown key in {owner}"
        elif kind == "missing":
            parent = path[:-1]
            where, msg = pos.at(parent), f"missing required key '{path[-1]}' in {'.'.join(str(p) for p in parent) or 'the top level'}"
        else:
            where, msg = pos.at(path), f"{dotted}: {err['msg']}"
        lines.append(f"{where}: {msg}. {hint}")
    return CanaryError(f"invalid canary file {shown}:\n" + "\n".join(f"  {line}" for line in lines))


# -- checking against a dataset version ----------------------------------------------------------


def check_canaries(
    canaries: CanaryFile,
    *,
    dimension: int,
    version_ids: pa.Array | pa.ChunkedArray,
    version_label: str = "the dataset version",
) -> None:
    """Refuse a canary file that cannot be meaningful for this version, listing every problem.

    Checked: duplicate query names, explicit vectors of the wrong length or with NaN/infinity,
    ``vector_of`` and ``expect`` ids absent from ``version_ids``, and ``expect`` lists longer than
    ``top_k`` (such a query can never pass).
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, q in enumerate(canaries.queries):
        if q.name in seen:
            problems.append(
                f"{canaries.where('queries', i, 'name')}: duplicate query name '{q.name}' (also at "
                f"{canaries.where('queries', seen[q.name], 'name')}). Give each query its own name."
            )
        else:
            seen[q.name] = i
        if q.vector is not None:
            if len(q.vector) != dimension:
                problems.append(
                    f"{canaries.where('queries', i, 'vector')}: query '{q.name}': vector has {len(q.vector)} values, "
                    f"the dataset's dimension is {dimension}. Give {dimension} values, or use vector_of: <id>."
                )
            bad = [j for j, x in enumerate(q.vector) if not math.isfinite(x)]
            if bad:
                problems.append(
                    f"{canaries.where('queries', i, 'vector', bad[0])}: query '{q.name}': vector holds NaN or infinity "
                    f"at position(s) {', '.join(str(j) for j in bad[:_SHOWN_IDS])}. Use finite numbers."
                )
        if len(q.expect) > canaries.top_k:
            problems.append(
                f"{canaries.where('queries', i, 'expect')}: query '{q.name}' expects {len(q.expect)} ids but only "
                f"top_k={canaries.top_k} are returned, so it can never pass. Raise top_k or expect fewer ids."
            )
    problems.extend(_unknown_id_problems(canaries, version_ids, version_label))
    if problems:
        raise CanaryError("invalid canary file:\n" + "\n".join(f"  {p}" for p in problems))


def _unknown_id_problems(canaries: CanaryFile, version_ids: pa.Array | pa.ChunkedArray, label: str) -> list[str]:
    referenced = sorted({q.vector_of for q in canaries.queries if q.vector_of is not None} | {e for q in canaries.queries for e in q.expect})
    if not referenced:
        return []
    candidates = pa.array(referenced, pa.string())
    ids = version_ids.combine_chunks() if isinstance(version_ids, pa.ChunkedArray) else version_ids
    # one vectorised membership test over the (possibly millions of) version ids
    present = pc.is_in(candidates, value_set=ids.cast(pa.string())).to_pylist()
    unknown = {ref for ref, ok in zip(referenced, present, strict=False) if not ok}
    problems = []
    for i, q in enumerate(canaries.queries):
        if q.vector_of is not None and q.vector_of in unknown:
            problems.append(
                f"{canaries.where('queries', i, 'vector_of')}: query '{q.name}': vector_of id '{q.vector_of}' is not in "
                f"{label}. Use an id that exists there, or an explicit vector."
            )
        missing = [e for e in q.expect if e in unknown]
        if missing:
            first = q.expect.index(missing[0])
            problems.append(
                f"{canaries.where('queries', i, 'expect', first)}: query '{q.name}': expected id(s) not in {label}: "
                f"{_list(missing)}. Remove them or pin a version that has them."
            )
    return problems


# -- query vectors -------------------------------------------------------------------------------


def resolve_query_vectors(
    canaries: CanaryFile, manifest: LoadedManifest, dataset_name: str, version: DatasetVersion | str, precision: str = "float32"
) -> list[np.ndarray]:
    """One float32 vector per query, in file order; ``vector_of`` ids are read from the version.

    The version is streamed batch by batch and only the wanted rows are kept, stopping as soon as
    every id is found, so memory stays bounded whatever the dataset's size.
    """
    from reconciler.dataset import resolve_version
    from reconciler.engine.shards import read_by_id

    src = manifest.dataset_source(dataset_name)
    ver = resolve_version(src, version) if isinstance(version, str) else version
    wanted = sorted({q.vector_of for q in canaries.queries if q.vector_of is not None})
    found: dict[str, np.ndarray] = {}
    for batch in read_by_id(manifest, dataset_name, ver, wanted, precision):  # precision: which shard caches place the ids
        for row, rid in enumerate(batch.id_list):
            found[rid] = np.array(batch.vectors[row], dtype=np.float32)
    lost = [w for w in wanted if w not in found]
    if lost:
        raise CanaryError(
            f"canary vector_of id(s) not in dataset '{dataset_name}' at {ver.rev}: {_list(lost)}",
            hint="Check the canary file against this version (`vectorops validate --canaries`), or use explicit vectors.",
        )
    out = []
    for q in canaries.queries:
        vec = found[q.vector_of] if q.vector_of is not None else np.asarray(q.vector, dtype=np.float32)
        out.append(vec)
    return out


# -- running -------------------------------------------------------------------------------------


def run_canaries(
    canaries: CanaryFile, vectors: list[np.ndarray], destination: Destination, min_pass_rate: float
) -> dict[str, Any]:
    """Run every query against the destination; the JSON-able result is what history records.

    A query passes when all its ``expect`` ids are among the ``top_k`` ids returned.
    """
    if len(vectors) != len(canaries.queries):
        raise ValueError(f"{len(vectors)} vectors for {len(canaries.queries)} canary queries")
    failures: list[dict[str, Any]] = []
    for q, vec in zip(canaries.queries, vectors, strict=False):
        returned = [str(x) for x in destination.query(np.asarray(vec, dtype=np.float32), canaries.top_k)]
        got = set(returned)
        missing = [e for e in q.expect if e not in got]
        if missing:
            failures.append({"name": q.name, "expected": list(q.expect), "returned": returned, "missing": missing})
    total = len(canaries.queries)
    passed = total - len(failures)
    rate = passed / total
    return {
        "passed": passed,
        "total": total,
        "pass_rate": rate,
        "min_pass_rate": float(min_pass_rate),
        "top_k": canaries.top_k,
        # tolerance: 19/20 must meet 0.95 however the division rounds
        "ok": rate >= float(min_pass_rate) - 1e-9,
        "failures": failures,
    }


def _list(ids: Iterable[str]) -> str:
    items = list(ids)
    shown = ", ".join(f"'{i}'" for i in items[:_SHOWN_IDS])
    return shown + (f" and {len(items) - _SHOWN_IDS} more" if len(items) > _SHOWN_IDS else "")


# -- the manifest's view: one environment's canaries --------------------------------------------


def canaries_of(manifest: LoadedManifest, env_name: str) -> tuple[CanaryFile, float] | None:
    """The environment's parsed canary file and min pass rate, or None without `validation`."""
    env = manifest.model.environments[env_name]
    if env.validation is None:
        return None
    path = manifest.resolve_local(env.validation.canaries)
    outside = manifest.outside_repository(path)
    if outside:  # checked when the manifest loads; again here, right before the file is read
        raise CanaryError(f"{manifest.where('environments', env_name, 'validation', 'canaries')}: {outside}")
    return load_canaries(path, env.validation.canaries), env.validation.min_pass_rate


def check_canary_file(
    manifest: LoadedManifest, env_name: str, version: DatasetVersion, version_ids: pa.Array | pa.ChunkedArray | None = None
) -> int:
    """Check an environment's canary file against a dataset version; returns the number of queries."""
    from reconciler import dataset as ds

    found = canaries_of(manifest, env_name)
    if found is None:
        return 0
    canaries, _ = found
    env = manifest.model.environments[env_name]
    if version_ids is None:
        src = manifest.dataset_source(env.dataset)
        parts = [b.ids for b in ds.read_batches(src, version, ids_only=True)]
        version_ids = pa.concat_arrays([p.cast(pa.string()) for p in parts]) if parts else pa.array([], pa.string())
    check_canaries(
        canaries,
        dimension=manifest.model.datasets[env.dataset].embedding.dimension,
        version_ids=version_ids,
        version_label=f"{env.dataset} at {version.rev}",
    )
    return len(canaries.queries)


def validate_deployment(manifest: LoadedManifest, env_name: str, version: DatasetVersion, destination: Destination) -> dict[str, Any] | None:
    """Run the environment's canaries against what was just deployed; None without `validation`."""
    found = canaries_of(manifest, env_name)
    if found is None:
        return None
    canaries, min_pass_rate = found
    env = manifest.model.environments[env_name]
    vectors = resolve_query_vectors(canaries, manifest, env.dataset, version, destination.capabilities.vector_precision)
    return run_canaries(canaries, vectors, destination, min_pass_rate)


def check_environments(manifest: LoadedManifest, *, canaries: bool = False) -> list[dict[str, Any]]:
    """`vectorops validate`: every environment's pinned version resolves and reads (its schema), and
    with ``canaries`` its canary file agrees with that version. Touches no destination; raises the
    first problem, else returns what was checked (name, dataset, version, commit, digest, canaries)."""
    from reconciler import dataset as ds

    checked: list[dict[str, Any]] = []
    for name, env in manifest.model.environments.items():
        version = manifest.pinned_version(name)
        ds.read_schema(manifest.dataset_source(env.dataset), version)
        found: dict[str, Any] = {"name": name, "dataset": env.dataset, "version": env.version, "commit": version.commit, "digest": version.digest, "canaries": None}
        if canaries and env.validation is not None:
            found["canaries"] = {"file": env.validation.canaries, "queries": check_canary_file(manifest, name, version)}
        checked.append(found)
    return checked
