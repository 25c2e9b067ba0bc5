"""The plan as data: building it (desired vs actual), and saving/loading plan files.

A plan is what apply will do, computed once and shown before anything is written. Its public part
is SPEC §4's JSON, from which both the human and the Markdown renderings are made, so they can
never disagree. A saved plan also carries the exact ids to write and delete, so `apply PLANFILE`
does exactly what was reviewed (ids only: no vector or metadata values, no secrets).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from reconciler.engine import diff as d
from reconciler.engine import executors, hashing, index_cache
from reconciler.engine.cache_pruning import entry_of, record_version_use, version_label
from reconciler.engine.listed import ListedIds, whole
from reconciler.engine.session import DestinationSession, session_for
from reconciler.engine.state import EnvState, StateStore, iso, now
from reconciler.engine.values import ChangeCounts, Drift, RefreshLevel, VersionRef
from reconciler.errors import DatasetError, PlanFileError, VectorOpsError
from reconciler.manifest import LoadedManifest
from reconciler.providers import destination_address
from reconciler.providers.base import Destination, DestinationInfo

FORMAT_VERSION = "1"
DEFAULT_REFRESH = "ids"
#: beyond this many list requests an `ids` refresh is slow enough to suggest `sample`
LIST_REQUESTS_HINT = 10_000

Progress = Callable[[str, int, int | None], None]  # (what, done, total)


@dataclass(frozen=True)
class ChangeIds:
    """The ids apply acts on. Kept out of the public JSON (samples only) but saved in plan files."""

    add: pa.Array
    update: pa.Array
    delete: pa.Array

    @staticmethod
    def empty() -> ChangeIds:
        e = pa.array([], pa.string())
        return ChangeIds(e, e, e)

    @property
    def upsert(self) -> pa.Array:
        return pa.concat_arrays([self.add.cast(pa.string()), self.update.cast(pa.string())])


@dataclass(frozen=True)
class EnvironmentPlan:
    """One environment's plan: a frozen value, built once by the stages below (``replace`` makes a
    changed copy); ``public()`` is its SPEC §4 JSON and ``private()`` what a plan file adds for apply."""

    name: str
    dataset: str
    destination: str
    current: VersionRef | None
    desired: VersionRef
    changes: ChangeCounts
    drift: Drift
    blocked: str | None
    samples: dict[str, list[str]]
    # beyond SPEC §4, still public
    update_detail: dict[str, int] = field(default_factory=lambda: {"vector": 0, "metadata": 0})
    interrupted: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    #: who suspended the environment, when and why (``vectorops suspend``); None when it is not
    suspended: dict[str, Any] | None = None
    shards: dict[str, Any] | None = None  # sharded datasets: how many shards were decoded (engine/shards.py)
    # private: what apply needs
    serial: int = 0
    lineage: str | None = None
    embedding: dict[str, Any] = field(default_factory=dict)
    allow_deletes: bool = False
    replace: bool = False
    destination_count: int = 0
    ids: ChangeIds = field(default_factory=ChangeIds.empty)
    #: ``rollout: blue_green`` (SPEC §9): the live slot, every slot, the slot this apply targets and
    #: what it does there (``engine/rollout.py``); None for in-place environments
    rollout: dict[str, Any] | None = None
    #: the precision the destination stores vectors at (``Capabilities.vector_precision``): the
    #: dataset's hashes, caches and stashes this plan used are those of vectors rounded to it
    vector_precision: str = "float32"

    @property
    def moves_version(self) -> bool:
        return not self.desired.same_content_and_name(self.current)

    @property
    def has_changes(self) -> bool:
        switching = self.rollout is not None and self.rollout.get("action") not in (None, "none")
        return self.changes.any or self.moves_version or switching

    @property
    def has_drift(self) -> bool:
        """Drift found, whether or not the plan changes anything (prune: false, stats)."""
        return self.drift.found

    def public(self) -> dict[str, Any]:
        extra = {"rollout": self.rollout} if self.rollout is not None else {}
        return {
            **extra,
            "name": self.name,
            "dataset": self.dataset,
            "destination": self.destination,
            "current": self.current.to_json() if self.current is not None else None,
            "desired": self.desired.to_json(),
            "changes": self.changes.to_json(),
            "drift": self.drift.to_json(),
            "blocked": self.blocked,
            "samples": {k: list(v) for k, v in self.samples.items()},
            "update_detail": dict(self.update_detail),
            "interrupted": self.interrupted,
            "warnings": list(self.warnings),
            "suspended": self.suspended,
            **({"shards": dict(self.shards)} if self.shards is not None else {}),
            # the predicates, decided here once: renderers and scripts read them instead of re-deriving
            "has_changes": self.has_changes,
            "has_drift": self.has_drift,
        }

    def private(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "lineage": self.lineage,
            "embedding": self.embedding,
            "allow_deletes": self.allow_deletes,
            "replace": self.replace,
            "destination_count": self.destination_count,
            "vector_precision": self.vector_precision,
        }


@dataclass(frozen=True)
class Plan:
    """Every selected environment's plan, with the id a saved plan file is applied by."""

    environments: tuple[EnvironmentPlan, ...]
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(default_factory=lambda: iso(now()))
    manifest_path: str = ""
    refresh: str = "ids"

    @property
    def has_changes(self) -> bool:
        return any(e.has_changes for e in self.environments)

    @property
    def has_drift(self) -> bool:
        """Drift found in any environment, whether or not it changes anything (prune: false, stats)."""
        return any(e.has_drift for e in self.environments)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "has_changes": self.has_changes,
            "has_drift": self.has_drift,
            "plan_id": self.plan_id,
            "created_at": self.created_at,
            "refresh": self.refresh,
            "environments": [e.public() for e in self.environments],
        }

    # -- plan files ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        body = self.to_json()
        body["manifest_path"] = self.manifest_path
        body["private"] = {e.name: e.private() for e in self.environments}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("plan.json", json.dumps(body, indent=2, sort_keys=True))
            for e in self.environments:
                table = pa.table(
                    {
                        "op": pa.array(["add"] * len(e.ids.add) + ["update"] * len(e.ids.update) + ["delete"] * len(e.ids.delete)),
                        "id": pa.concat_arrays([e.ids.add.cast(pa.string()), e.ids.update.cast(pa.string()), e.ids.delete.cast(pa.string())]),
                    }
                )
                out = io.BytesIO()
                pq.write_table(table, out)
                zf.writestr(f"ids/{e.name}.parquet", out.getvalue())
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(target)

    @staticmethod
    def load(path: str | Path) -> Plan:
        p = Path(path)
        try:
            with zipfile.ZipFile(p) as zf:
                body = json.loads(zf.read("plan.json"))
                if body.get("format_version") != FORMAT_VERSION:
                    raise PlanFileError(
                        f"{p}: plan file format {body.get('format_version')!r} is not supported by this vectorops (expects {FORMAT_VERSION})",
                        hint="Make the plan again with this version of vectorops.",
                    )
                envs = []
                for pub in body["environments"]:
                    priv = body["private"][pub["name"]]
                    ids_table = pq.read_table(io.BytesIO(zf.read(f"ids/{pub['name']}.parquet")))
                    envs.append(_env_from_saved(pub, priv, ids_table))
        except PlanFileError:
            raise
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, pa.ArrowInvalid, OSError, TypeError, ValueError) as exc:
            raise PlanFileError(
                f"{p}: not a readable vectorops plan file ({exc.__class__.__name__})",
                hint="Pass a file written by `vectorops plan -o PLANFILE`, or make a new plan.",
            ) from None
        return Plan(
            environments=tuple(envs),
            plan_id=body["plan_id"],
            created_at=body["created_at"],
            manifest_path=body.get("manifest_path", ""),
            refresh=body.get("refresh", "ids"),
        )


def _required(ref: VersionRef | None) -> VersionRef:
    if ref is None:
        raise ValueError("a plan's desired version is missing")  # read as an unreadable plan file
    return ref


def _env_from_saved(pub: dict[str, Any], priv: dict[str, Any], ids_table: pa.Table) -> EnvironmentPlan:
    ops = ids_table.column("op").combine_chunks() if ids_table.num_rows else pa.array([], pa.string())
    ids = ids_table.column("id").combine_chunks() if ids_table.num_rows else pa.array([], pa.string())

    def pick(op: str) -> pa.Array:
        return ids.filter(pa.compute.equal(ops, op)) if len(ids) else pa.array([], pa.string())

    return EnvironmentPlan(
        name=pub["name"],
        dataset=pub["dataset"],
        destination=pub["destination"],
        current=VersionRef.from_json(pub["current"]),
        desired=_required(VersionRef.from_json(pub["desired"])),
        changes=ChangeCounts.from_json(pub["changes"]),
        drift=Drift.from_json(pub["drift"]),
        blocked=pub["blocked"],
        samples=pub["samples"],
        update_detail=pub.get("update_detail", {}),
        interrupted=pub.get("interrupted"),
        warnings=tuple(pub.get("warnings", [])),
        suspended=pub.get("suspended"),
        shards=pub.get("shards"),
        serial=priv["serial"],
        lineage=priv["lineage"],
        embedding=priv["embedding"],
        allow_deletes=priv["allow_deletes"],
        replace=priv.get("replace", False),
        destination_count=priv.get("destination_count", 0),
        ids=ChangeIds(pick("add"), pick("update"), pick("delete")),
        rollout=pub.get("rollout"),
        vector_precision=priv.get("vector_precision", "float32"),
    )


# -- building a plan -----------------------------------------------------------------------------


def dataset_signature(manifest: LoadedManifest, dataset: str, precision: str = "float32") -> str:
    """What, besides the data, decides a version's hashes: how the file is read, and the precision
    the destination stores vectors at (``Capabilities.vector_precision``; float32 adds nothing, so
    the caches of every float32 destination stay what they were)."""
    src = manifest.dataset_source(dataset)
    read = [src.format, src.id_field, src.vector_field, list(src.metadata_fields or []), src.metadata_fields is None, src.dimension]
    return json.dumps(read if precision == "float32" else [*read, precision])


def stash_location(manifest: LoadedManifest, dataset: str, desired_digest: str, baseline_digest: str, precision: str = "float32") -> Path:
    from reconciler.engine.stash import stash_path

    return stash_path(desired_digest, baseline_digest, index_cache.signature_key(dataset_signature(manifest, dataset, precision)))


def version_index(
    manifest: LoadedManifest,
    dataset: str,
    version: Any,
    progress: Progress | None = None,
    *,
    stash_against: tuple[d.VersionIndex, str] | None = None,
    log: Any = None,
    precision: str = "float32",
) -> d.VersionIndex:
    """The id→hash table of a dataset version: from the local cache, else hashed once and cached.

    When it has to read the version anyway and ``stash_against`` names the deployed version's
    table, the records that differ from it are kept for the apply that follows (``stash.py``).
    ``precision``: the destination's ``Capabilities.vector_precision``; vectors are hashed rounded
    to it, and cached apart from other precisions.
    """
    from reconciler import dataset as ds
    from reconciler.engine.stash import StashWriter

    src = manifest.dataset_source(dataset)
    if ds.is_sharded(version):  # a directory of shards: cached per shard (engine/shards.py)
        from reconciler.engine import shards

        sig = index_cache.signature_key(dataset_signature(manifest, dataset, precision))
        return shards.sharded_index(
            src, version, sig, progress=progress, stash_against=stash_against, log=log, executor=executors.for_manifest(manifest),
            precision=precision,
        )
    key = index_cache.index_cache_key(version.digest, dataset_signature(manifest, dataset, precision))
    record_version_use(key, version_label(dataset, version.rev), [entry_of(index_cache.cached_index_path(key))])
    cached = index_cache.load_cached_index(key)
    if cached is not None:
        return cached
    total = ds.count_records(src, version)
    done = 0

    def batches():
        nonlocal done
        for batch in ds.read_batches(src, version):
            done += len(batch)
            if progress:
                progress(f"hashing {dataset}@{version.rev}", done, total)
            yield batch

    writer = None
    if stash_against is not None and len(stash_against[0]):
        path = stash_location(manifest, dataset, version.digest, stash_against[1], precision)
        writer = StashWriter(path, stash_against[0], src.dimension)
    try:
        index = d.VersionIndex.build(
            batches(), what=f"dataset '{dataset}' at {version.rev} ({src.path})", on_batch=writer.offer if writer else None,
            precision=precision,
        )
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    if writer is not None:
        writer.close()
    index_cache.store_cached_index(key, index)
    return index


def _ref(version: Any) -> VersionRef:
    """A dataset version (``dataset.DatasetVersion``) as a plan names it."""
    return VersionRef(version.rev, version.commit, version.digest)


def refresh_actual(
    dest: Destination, level: str, progress: Progress | None = None, expected: d.VersionIndex | None = None, count: int | None = None,
    *, spill: bool = False,
) -> tuple[pa.Array | ListedIds | None, d.VersionIndex | None]:
    """What the destination holds, read at the requested level. ``expected``: the version it should
    hold, a hint for how to split the listing (``Destination.all_ids``); ``count``: how many records
    it reports, the listing's progress total. ``spill``: at ``ids``, the listing is for the on-disk
    diff, which needs only its keys in memory: it is spilled as it comes (``ListedIds``)."""
    if level in ("none", "stats", "sample"):  # sample: engine/sampling.py fetches by id instead
        return None, None
    hint = expected.listing_hint() if expected is not None and len(expected) else None
    if level == "ids":
        listing = (lambda n: progress(f"listing ids in {dest.address}", n, count)) if progress is not None else None
        if spill:
            return ListedIds.collect(dest.id_batches(hint, progress=listing), count or 0), None
        return dest.all_ids(hint, progress=listing), None
    parts = []
    done = 0
    for batch in dest.iter_records(expected=hint):
        vh, mh = hashing.hash_batch(batch)
        parts.append(pa.table({"id": batch.ids, "vh": vh, "mh": mh}, schema=d.INDEX_SCHEMA))
        done += len(batch)
        if progress:
            progress(f"reading {dest.address}", done, None)
    table = pa.concat_tables(parts) if parts else d.INDEX_SCHEMA.empty_table()
    return None, d.VersionIndex.from_table(table, what=dest.address)


def drift_summary(level: str, expected: int, actual: int | None, diff: d.Diff) -> Drift:
    """What a refresh at ``level`` proves about the destination against the ``expected`` records."""
    lvl = RefreshLevel(level)
    if lvl is RefreshLevel.NONE:
        return Drift(lvl, expected, None, None, None, None)
    if lvl is RefreshLevel.STATS or diff.drift_missing is None:
        actual_n = actual or 0
        return Drift(lvl, expected, actual_n, max(0, expected - actual_n), max(0, actual_n - expected), None)
    return Drift(
        lvl,
        expected,
        actual,
        len(diff.drift_missing),
        len(diff.drift_unexpected or []),
        len(diff.drift_modified) if diff.drift_modified is not None else None,
    )


def plan_environment(
    manifest: LoadedManifest,
    name: str,
    *,
    refresh: str | None = "ids",
    allow_deletes: bool = False,
    version_override: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    destination: Destination | None = None,
    rollback: bool = False,
    session: DestinationSession | None = None,
) -> EnvironmentPlan:
    """What apply would do to one environment. ``rollback``: the plan goes back to a version this
    environment ran before, which `requires` does not gate (SPEC §1). Destinations come from
    ``session`` (each opened once per command; a session of its own, closed on return, without one).
    ``refresh`` None: the environment's ``policy.refresh``, else ``ids``."""
    env = manifest.model.environments[name]
    with session_for(manifest, session) as opened:
        if env.rollout.strategy == "blue_green" and destination is None:
            from reconciler.engine.rollout import plan_blue_green  # plans against the slot it will write

            return plan_blue_green(
                manifest, name, refresh=refresh, allow_deletes=allow_deletes, version_override=version_override,
                progress=progress, rollback=rollback, session=opened,
            )
        refresh = refresh or env.policy.refresh or DEFAULT_REFRESH  # --refresh, else policy.refresh
        return _plan_environment(
            manifest, name, refresh=refresh, allow_deletes=allow_deletes, version_override=version_override, replace=replace,
            progress=progress, destination=destination, rollback=rollback, session=opened,
        )


def _plan_environment(
    manifest: LoadedManifest,
    name: str,
    *,
    refresh: str,
    allow_deletes: bool,
    version_override: str | None,
    replace: bool,
    progress: Progress | None,
    destination: Destination | None,
    rollback: bool,
    session: DestinationSession,
) -> EnvironmentPlan:
    """The pipeline: what the destination records → resolve → refresh → diff → decide → the plan.

    Each stage is a function of the values before it (the frozen dataclasses below) and never goes
    back to an earlier stage's inputs: ``recorded`` reads the destination's documents and
    description, ``resolve`` the dataset's version tables, ``refresh`` the destination's records,
    ``diff_stage`` compares tables, ``plan_value`` shapes what the user sees, and ``decide`` checks
    canaries, readability and the blocking rules.
    """
    pinned = manifest.pinned_version(name, version_override)  # a pin that names no rev is reported before any destination is read
    dest = destination if destination is not None else session.destination(name)
    rec = recorded(dest)
    res = resolve(manifest, name, rec, pinned, progress)
    act = refresh_stage(dest, rec, res, refresh, progress, replace=replace)
    prune = manifest.model.environments[name].policy.prune
    try:
        found = diff_stage(manifest, res, rec, act, replace=replace, prune=prune, progress=progress)
    finally:
        if isinstance(act.ids, ListedIds):
            act.ids.close()  # its spill file goes now, not whenever the plan is collected (the agent plans for days)
    plan = plan_value(manifest, name, rec, res, act, found, refresh=refresh, allow_deletes=allow_deletes, replace=replace)
    return decide(manifest, name, plan, rec, res, dest, rollback=rollback, session=session)


@dataclass(frozen=True)
class Recorded:
    """What the destination says about itself: vectorops' state document and its description."""

    store: StateStore
    state: EnvState
    info: DestinationInfo
    list_page_size: int | None = None  # ids per list request, for the hint that an `ids` refresh will be slow
    #: what it stores vectors as (``Capabilities.vector_precision``): the dataset is hashed rounded to it
    vector_precision: str = "float32"


@dataclass(frozen=True)
class Resolved:
    """The versions involved, resolved in the dataset repo, and their id→hash tables."""

    dataset: str
    desired: Any  # dataset.DatasetVersion
    desired_index: d.VersionIndex
    deployed_index: d.VersionIndex | None  # None: nothing deployed
    current: VersionRef | None  # the deployed version (SPEC §4's `current`)
    shard_log: Any  # shards.ShardLog: which shards were decoded and which came from the cache (plan JSON `shards`)


@dataclass(frozen=True)
class Actual:
    """The destination's records, read at ``level`` (raised to full after an interrupted apply)."""

    level: str
    ids: pa.Array | ListedIds | None  # at `ids` (spilled when the diff is on disk: ``refresh_actual``)
    hashes: d.VersionIndex | None  # at `full`
    present: pa.Array | None = None  # with --replace: every id there, whatever the level (all are rewritten or deleted)
    sample: Any = None  # sampling.SampleCheck at `sample`: the expected ids fetched and what differed


@dataclass(frozen=True)
class Found:
    """The changes to make (``diff``) and the drift from the deployed version (``drift_diff``)."""

    diff: d.Diff
    drift_diff: d.Diff
    drift: Drift


def recorded(dest: Destination) -> Recorded:
    store = StateStore(dest)
    return Recorded(store, store.load(), dest.describe(), dest.list_page_size, dest.capabilities.vector_precision)


def resolve(manifest: LoadedManifest, name: str, rec: Recorded, desired: Any, progress: Progress | None) -> Resolved:
    """The pinned (or asked) version and the deployed one, as id→hash tables (cached, else hashed once)."""
    from reconciler import dataset as ds
    from reconciler.engine.shards import ShardLog

    env = manifest.model.environments[name]
    shard_log = ShardLog()
    src = manifest.dataset_source(env.dataset)
    deployed = rec.state.deployed
    deployed_index: d.VersionIndex | None = None
    current = None
    if deployed is not None:
        current = VersionRef(deployed.version, deployed.commit, deployed.digest)
        try:
            deployed_version = ds.resolve_version(src, deployed.commit)
            deployed_index = version_index(manifest, env.dataset, deployed_version, progress, log=shard_log, precision=rec.vector_precision)
        except DatasetError as exc:
            raise DatasetError(
                f"environment '{name}': the deployed version {deployed.version} ({deployed.commit[:7]}) "
                f"cannot be read from the dataset repo: {exc.message}",
                hint="Fetch the full git history (fetch-depth: 0) and make sure its data is in the DVC remote.",
            ) from None
    stash_against = (deployed_index, deployed.digest) if deployed_index is not None and deployed else None
    desired_index = version_index(
        manifest, env.dataset, desired, progress, stash_against=stash_against, log=shard_log, precision=rec.vector_precision
    )
    if len(desired_index) == 0 and not env.policy.allow_empty:
        _refuse_empty(manifest, name, desired)
    return Resolved(env.dataset, desired, desired_index, deployed_index, current, shard_log)


def refresh_stage(dest: Destination, rec: Recorded, res: Resolved, refresh: str, progress: Progress | None, *, replace: bool = False) -> Actual:
    # an interrupted apply left records half-way between two versions: read them all at full so the
    # plan finishes exactly what is missing, whatever level was asked
    info = rec.info
    level = "full" if rec.state.intent is not None and refresh != "full" and info.exists else refresh
    on_disk = d.diffed_on_disk(res.desired_index, res.deployed_index)
    actual_ids, actual_hashes = (
        refresh_actual(dest, level, progress, res.deployed_index or res.desired_index, info.count, spill=on_disk) if info.exists else (None, None)
    )
    if info.exists and level in ("ids", "full") and actual_ids is None and actual_hashes is None:
        actual_ids = pa.array([], pa.string())
    if not info.exists and level in ("ids", "full"):
        actual_ids = pa.array([], pa.string())
    present = None
    if replace:
        listed = whole(actual_ids)
        present = actual_hashes.ids.combine_chunks() if actual_hashes is not None else (listed if listed is not None else dest.all_ids())
    sample = None
    if level == "sample" and info.exists and res.deployed_index is not None and len(res.deployed_index):
        from reconciler.engine import sampling

        sample = sampling.check_sample(dest, res.deployed_index)
    return Actual(level, actual_ids, actual_hashes, present, sample)


def diff_stage(manifest: LoadedManifest, res: Resolved, rec: Recorded, act: Actual, *, replace: bool, prune: bool, progress: Progress | None) -> Found:
    from reconciler import dataset as ds

    executor = executors.for_manifest(manifest)  # local, or a Ray cluster's tasks: the same diff
    if replace:
        # rebuild: every desired record is written, every other record deleted; against no baseline
        # every record present is of unknown content, so it is rewritten
        diff = executor.diff(res.desired_index, None, act.present, None, prune=True)
        drift_diff = executor.diff(res.desired_index, res.deployed_index, act.ids, act.hashes, prune=prune)
    else:
        diff = executor.diff(res.desired_index, res.deployed_index, act.ids, act.hashes, prune=prune)
        drift_diff = diff
    if act.sample is not None:
        from reconciler.engine import sampling

        sampling.repair(diff, act.sample, res.desired_index)
    intent = rec.state.intent
    if intent is not None and act.hashes is not None:
        target = ds.resolve_version(manifest.dataset_source(res.dataset), intent.commit)
        target_index = version_index(manifest, res.dataset, target, progress, log=res.shard_log, precision=rec.vector_precision)
        _explain_in_flight(drift_diff, res.deployed_index, target_index, act.hashes)
    expected = len(res.deployed_index) if res.deployed_index is not None else 0
    drift = drift_summary(act.level, expected, rec.info.count if rec.info.exists else 0, drift_diff)
    if act.level == "sample":
        from reconciler.engine import sampling

        drift = sampling.drift_summary(drift, act.sample)
    return Found(diff, drift_diff, drift)


def plan_value(
    manifest: LoadedManifest, name: str, rec: Recorded, res: Resolved, act: Actual, found: Found, *, refresh: str, allow_deletes: bool, replace: bool
) -> EnvironmentPlan:
    """The plan as the user will see it, before the decide stage says whether apply may run it."""
    env = manifest.model.environments[name]
    emb = manifest.model.datasets[env.dataset].embedding
    state, info, diff, drift_diff = rec.state, rec.info, found.diff, found.drift_diff
    expected = len(res.deployed_index) if res.deployed_index is not None else 0
    destination_count = info.count if info.exists else 0
    samples = {"add": d.sample(diff.add), "update": d.sample(diff.update), "delete": d.sample(diff.delete)}
    if act.sample is not None:
        samples["missing"] = d.sample(act.sample.missing)
        samples["modified"] = d.sample(act.sample.modified)
    if drift_diff.drift_missing is not None:
        samples["missing"] = d.sample(drift_diff.drift_missing)
        samples["unexpected"] = d.sample(drift_diff.drift_unexpected)
    if drift_diff.drift_modified is not None:
        samples["modified"] = d.sample(drift_diff.drift_modified)
    warnings: list[str] = []
    pages = rec.list_page_size
    if act.level == "ids" and pages and max(expected, destination_count) / pages > LIST_REQUESTS_HINT:
        requests = -(-max(expected, destination_count) // pages)
        warnings.append(
            f"the ids refresh lists every id: ~{requests:,} list requests of {pages} ids; `--refresh sample` "
            f"(or policy.refresh: sample) checks the count and a random sample in a fixed number of requests"
        )
    if replace:
        warnings.append(f"--replace: the destination is rebuilt from the dataset; all {len(res.desired_index):,} records are rewritten")
    if diff.kept_unexpected:
        kept = diff.kept_unexpected
        warnings.append(f"{kept:,} record{'' if kept == 1 else 's'} not in the dataset {'is' if kept == 1 else 'are'} kept because policy.prune is false")
    interrupted = None
    intent = state.intent
    if intent is not None:
        interrupted = {
            "plan_id": intent.plan_id,
            "version": intent.version,
            "commit": intent.commit,
            "started_at": intent.started_at,
            "actor": intent.actor,
            "done": intent.done,
            "total": intent.total,
        }
        if act.level != refresh:
            warnings.append(f"an apply was interrupted, so the destination was read at full (not {refresh}) to finish it exactly")
        if intent.allow_deletes and intent.commit == res.desired.commit:
            allow_deletes = True  # finishing an interrupted apply keeps the approval it started with
    return EnvironmentPlan(
        name=name,
        dataset=env.dataset,
        destination=destination_address(manifest, name),
        current=res.current,
        desired=_ref(res.desired),
        changes=ChangeCounts(**diff.counts()),
        drift=found.drift,
        blocked=None,
        samples=samples,
        update_detail={"vector": len(diff.update_vector), "metadata": len(diff.update_metadata)},
        interrupted=interrupted,
        warnings=tuple(warnings),
        suspended=state.suspended.model_dump(mode="json") if state.suspended is not None else None,
        shards=res.shard_log.public() if res.shard_log.total else None,
        serial=state.serial,
        lineage=state.lineage if state.deployed is not None or state.serial else None,
        embedding={"model": emb.model, "dimension": emb.dimension, "metric": emb.metric},
        allow_deletes=allow_deletes,
        replace=replace,
        destination_count=destination_count,
        ids=ChangeIds(diff.add, diff.update, diff.delete),
        vector_precision=rec.vector_precision,
    )


def decide(
    manifest: LoadedManifest, name: str, plan: EnvironmentPlan, rec: Recorded, res: Resolved, dest: Destination, *, rollback: bool, session: DestinationSession
) -> EnvironmentPlan:
    """Whether apply may run the plan: canaries that fit the version, records that can be read and that
    the destination takes, then the blocking rules (``blocked_reason``)."""
    env = manifest.model.environments[name]
    if env.validation is not None:  # a bad canary file is refused before anything is written
        from reconciler.engine.validation import check_canary_file

        check_canary_file(manifest, name, res.desired, res.desired_index.ids)
    unreadable = unreadable_records(manifest, plan, res.desired)
    if dest.capabilities.check_records and len(plan.ids.upsert) and unreadable is None:
        _check_writable(manifest, plan, dest, res.desired)
    blocked = unreadable or blocked_reason(manifest, name, plan, rec.state, rec.info, rec.store, rollback=rollback, session=session)
    return replace(plan, blocked=blocked)


def unreadable_records(manifest: LoadedManifest, plan: EnvironmentPlan, desired: Any) -> str | None:
    """Why apply could not read the records it would write, as a sentence that says how to fix it.

    A plan served from the hash cache never reads the data, so a version that was `dvc add`-ed but
    never pushed plans fine on another machine; apply would then fail mid-write. This asks DVC
    only whether the data exists (cache or remote) for the records the stash does not hold.
    """
    from reconciler import dataset as ds
    from reconciler.engine.stash import unstashed

    wanted = plan.ids.upsert
    if len(wanted) and plan.current is not None and ds.is_sharded(desired):
        from reconciler.engine.shards import unstashed_ids

        sig = index_cache.signature_key(dataset_signature(manifest, plan.dataset, plan.vector_precision))
        wanted = unstashed_ids(manifest.dataset_source(plan.dataset), desired, sig, plan.current.digest, wanted)
    elif len(wanted) and plan.current is not None:
        path = stash_location(manifest, plan.dataset, desired.digest, plan.current.digest, plan.vector_precision)
        wanted = unstashed(path, wanted)
    if len(wanted) == 0:
        return None
    problem = ds.unreadable(manifest.dataset_source(plan.dataset), desired)
    if problem is None:
        return None
    return (
        f"the {len(wanted):,} records to write cannot be read: {problem}; run `dvc push` where this version was "
        "`dvc add`-ed (or make the remote that holds it the default), then plan again"
    )


def _refuse_empty(manifest: LoadedManifest, name: str, desired: Any) -> None:
    """A 0-record version would empty the index: almost always a broken pipeline, so it takes an opt-in."""
    env = manifest.model.environments[name]
    raise DatasetError(
        f"{manifest.where('environments', name, 'version')}: environment '{name}': dataset '{env.dataset}' at {desired.rev} "
        f"(commit {desired.commit[:7]}) has 0 records; applying it would leave {destination_address(manifest, name)} empty. "
        "Nothing was written.",
        hint="Check the pipeline that produced that version and pin one with records; if an empty index is really "
        f"what you want, set environments.{name}.policy.allow_empty: true.",
    )


def _check_writable(manifest: LoadedManifest, plan: EnvironmentPlan, dest: Destination, desired: Any) -> None:
    """Refuse, before anything is written, records the destination would reject (ids, metadata types).

    Only the records apply would write are checked; a destination opts in with ``capabilities.check_records``.
    """
    from reconciler.engine.shards import read_by_id

    problems: list[str] = []
    for picked in read_by_id(manifest, plan.dataset, desired, plan.ids.upsert, plan.vector_precision):
        problems.extend(dest.check_records(picked, plan.embedding["dimension"]))
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        raise DatasetError(
            f"environment '{plan.name}': dataset '{plan.dataset}' at {desired.rev} has records that "
            f"{plan.destination} would refuse; nothing was written:\n{shown}",
            hint="Fix those records in the dataset (or leave them out), `dvc add` and commit a new version, and pin it.",
        )


def _explain_in_flight(diff: d.Diff, before: d.VersionIndex | None, target: d.VersionIndex, actual: d.VersionIndex) -> None:
    """Drift after an interrupted apply: only what neither the old nor the target version explains.

    A record the cut-off apply already wrote (or deleted) is in flight, not drift: it matches the
    target version (or is absent because the target drops it).
    """
    import pyarrow.compute as pc

    old = (before or d.VersionIndex.empty()).table
    new = target.table
    a = actual.table
    joined = a.join(old, keys="id", join_type="left outer", right_suffix="_c").join(
        new, keys="id", join_type="left outer", right_suffix="_t"
    )
    in_c = pc.is_valid(joined.column("vh_c"))
    in_t = pc.is_valid(joined.column("vh_t"))
    same_c = pc.and_(in_c, pc.and_(pc.equal(joined.column("vh"), joined.column("vh_c")), pc.equal(joined.column("mh"), joined.column("mh_c"))))
    same_t = pc.and_(in_t, pc.and_(pc.equal(joined.column("vh"), joined.column("vh_t")), pc.equal(joined.column("mh"), joined.column("mh_t"))))
    ids = joined.column("id")
    diff.drift_unexpected = ids.filter(pc.invert(pc.or_(in_c, in_t))).combine_chunks()
    explained = pc.or_(pc.fill_null(same_c, False), pc.fill_null(same_t, False))
    diff.drift_modified = ids.filter(pc.and_(pc.or_(in_c, in_t), pc.invert(explained))).combine_chunks()
    both = old.join(new, keys="id", join_type="inner", right_suffix="_t").column("id")
    both = both.combine_chunks() if isinstance(both, pa.ChunkedArray) else both
    diff.drift_missing = both.filter(pc.invert(pc.is_in(both, value_set=a.column("id")))).cast(pa.string())


def blocked_reason(
    manifest: LoadedManifest,
    name: str,
    plan: EnvironmentPlan,
    state: EnvState,
    info: Any,
    store: StateStore,
    *,
    rollback: bool = False,
    session: DestinationSession | None = None,
) -> str | None:
    """Why apply would refuse this environment, as one sentence that says how to proceed."""
    env = manifest.model.environments[name]
    emb = plan.embedding
    if info.exists and info.dimension is not None and info.dimension != emb["dimension"]:
        return (
            f"the destination {plan.destination}: its dimension is {info.dimension} but the manifest declares {emb['dimension']}; "
            "point the environment at a new table/index for the new dimension"
        )
    if info.exists and info.metric is not None and info.metric != emb["metric"]:
        return (
            f"the destination {plan.destination}: its metric is {info.metric} but the manifest declares {emb['metric']}; "
            "point the environment at a new table/index for the new metric"
        )
    dep = state.deployed
    if dep is not None and not plan.replace:
        for key, label in (("model", "embedding model"), ("dimension", "dimension"), ("metric", "metric")):
            if getattr(dep, key) != emb[key]:
                return (
                    f"the deployed vectors come from {label} {getattr(dep, key)!r} but the desired version declares {emb[key]!r}; "
                    "mixing them in one index ruins retrieval — use a new table/index, or `vectorops apply --replace` to rebuild it"
                )
    deletes = plan.changes.delete
    limit = env.policy.max_delete_fraction
    if deletes and not plan.allow_deletes and plan.destination_count and deletes > limit * plan.destination_count:
        return (
            f"the plan deletes {deletes:,} of {plan.destination_count:,} records ({deletes / plan.destination_count:.0%}), "
            f"over policy.max_delete_fraction {limit:.0%}; re-run with --allow-deletes to approve"
        )
    if env.requires and _moves_forward(plan, state, store, rollback=rollback):
        for req in env.requires:
            with session_for(manifest, session) as opened:
                reason = _requires_unmet(manifest, req, plan.desired, opened)
            if reason:
                if rollback:
                    reason += f" (rollback skips `requires` only for a version {name} ran before)"
                return reason
    lock = store.current_lock()
    if lock is not None and not lock.expired() and not lock.holder_is_dead():
        return (
            f"the environment is locked: {lock.describe()}; wait for that apply to finish (a dead holder's lease lapses "
            f"within a minute) or run `vectorops force-unlock {name} {lock.id}`"
        )
    return None


def _moves_forward(plan: EnvironmentPlan, state: EnvState, store: StateStore, *, rollback: bool) -> bool:
    """Whether the plan takes the environment to a version `requires` must vouch for (SPEC §1).

    `requires` gates moving forward only. Staying at the deployed content (nothing to do, or only
    drift to repair), finishing an interrupted apply that passed the gate when it started, and
    rolling back to a version this environment ran before are never blocked by it: staging moving
    on must not freeze prod where it is, nor take away the way back.
    """
    target = (plan.desired.commit, plan.desired.digest)
    cur = plan.current
    if cur is not None and (cur.commit, cur.digest) == target:
        return False
    if state.intent is not None and (state.intent.commit, state.intent.digest) == target:
        return False
    if rollback:
        ran_before = {(d.commit, d.digest) for d in (state.deployed, state.previous) if d is not None}
        if target in ran_before:
            return False
        for entry in store.history():
            if entry.result != "failed" and (entry.to.commit, entry.to.digest) == target:
                return False
    return True


def _requires_unmet(manifest: LoadedManifest, req: str, desired: VersionRef, session: DestinationSession) -> str | None:
    try:
        other = StateStore(session.destination(req)).load()
    except VectorOpsError as exc:
        return f"requires '{req}', whose state cannot be read ({exc.message})"
    dep = other.deployed
    if dep is None or dep.commit != desired.commit or dep.digest != desired.digest:
        have = f"{dep.version} ({dep.commit[:7]})" if dep else "nothing deployed"
        return f"requires '{req}' to have {desired.version} ({desired.commit[:7]}) applied and validated first; it has {have}"
    if dep.validated is False:
        return f"requires '{req}' to pass validation at {desired.version}, but its canaries failed there"
    if dep.validated is None and manifest.model.environments[req].validation is not None:
        return f"requires '{req}' to pass validation at {desired.version}, and it has not been validated there yet (apply {req} again)"
    return None


def build_plan(
    manifest: LoadedManifest,
    names: list[str],
    *,
    refresh: str | None = "ids",
    allow_deletes: bool = False,
    replace: bool = False,
    progress: Progress | None = None,
    session: DestinationSession | None = None,
) -> Plan:
    with session_for(manifest, session) as opened:
        envs = [
            plan_environment(manifest, n, refresh=refresh, allow_deletes=allow_deletes, replace=replace, progress=progress, session=opened)
            for n in names
        ]
    levels = {e.drift.level.value for e in envs}
    shown = refresh or (levels.pop() if len(levels) == 1 else "per environment")
    return Plan(environments=tuple(envs), manifest_path=str(manifest.path), refresh=str(shown))


def check_saved_plan(manifest: LoadedManifest, plan: Plan, path: str) -> None:
    """Refuse a saved plan the manifest no longer matches: an environment it does not define, or one
    it now points at another destination (the plan would write where nobody reviewed)."""
    for e in plan.environments:
        if e.name not in manifest.model.environments:
            raise PlanFileError(
                f"{path}: the plan is for environment '{e.name}', which {manifest.path.name} does not define",
                hint="Apply the plan with the manifest it was made from, or make a new plan.",
            )
        now_at = destination_address(manifest, e.name)
        if now_at != e.destination:
            raise PlanFileError(
                f"{path}: the plan for '{e.name}' targets {e.destination}, but the manifest now points it at {now_at}",
                hint="Make a new plan with `vectorops plan -o PLANFILE`.",
            )
