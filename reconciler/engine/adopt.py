"""Adopting indexes vectorops did not build (import) and turning a live index into a dataset (export).

Teams arrive with an index filled by hand. `import` records it as deployed at a dataset version
(Terraform's import) after showing how far it differs, so the next plan shows exactly the
remaining drift. `export` goes the other way for teams with no dataset yet: it writes the live index
as a Parquet file the reader takes, ready for `dvc add`.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reconciler.engine import diff as d
from reconciler.engine.plan import Progress, drift_summary, refresh_actual, version_index
from reconciler.engine.state import HISTORY_PREFIX, Deployed, EnvState, HistoryEntry, StateStore, VersionRef, actor, iso, now
from reconciler.engine.values import Drift
from reconciler.errors import DestinationError, StateError, UsageError
from reconciler.manifest import LoadedManifest
from reconciler.providers import destination_address, open_destination
from reconciler.providers.base import Destination
from reconciler.records import RecordBatch


@dataclass
class ImportReport:
    name: str
    destination: str
    version: dict[str, Any]
    drift: Drift
    samples: dict[str, list[str]]
    previous: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.name,
            "destination": self.destination,
            "version": self.version,
            "drift": self.drift.to_json(),
            "samples": self.samples,
            "previous": self.previous,
        }


def compare_for_import(
    manifest: LoadedManifest, name: str, rev: str, *, refresh: str, progress: Progress | None = None, destination: Destination | None = None
) -> tuple[ImportReport, Destination, Any]:
    """How the live index differs from the dataset at REV, as drift against that version."""
    from reconciler import dataset as ds

    if refresh not in ("stats", "ids", "full"):
        raise UsageError("import needs to read the index", hint="Use --refresh stats, ids or full.")
    env = manifest.model.environments[name]
    version = ds.resolve_version(manifest.dataset_source(env.dataset), rev)
    dest = destination or open_destination(manifest, name)
    wanted = version_index(manifest, env.dataset, version, progress, precision=dest.capabilities.vector_precision)
    info = dest.describe()
    if not info.exists:
        raise DestinationError(f"{dest.address} does not exist; there is nothing to import", hint=f"Use `vectorops apply {name}` to create it.")
    _check_shape(manifest, name, dest, info)
    actual_ids, actual_hashes = refresh_actual(dest, refresh, progress, wanted, info.count)
    result = d.compute_diff(wanted, wanted, actual_ids, actual_hashes, prune=True)
    drift = drift_summary(refresh, len(wanted), info.count, result)
    samples = {
        "missing": d.sample(result.drift_missing),
        "unexpected": d.sample(result.drift_unexpected),
        "modified": d.sample(result.drift_modified),
    }
    try:
        state = StateStore(dest).load()
    except StateError:  # a malformed state is exactly what import exists to repair: report no deployment
        state = None
    prev = state.deployed.model_dump(mode="json") if state is not None and state.deployed else None
    ref = {"version": version.rev, "commit": version.commit, "digest": version.digest}
    return ImportReport(name, destination_address(manifest, name), ref, drift, samples, prev), dest, version


def _check_shape(manifest: LoadedManifest, name: str, dest: Destination, info: Any) -> None:
    """Refuse, before anything is recorded, an index whose dimension or metric differ from the manifest:
    vectors of another size or for another metric would never be comparable with the dataset's."""
    emb = manifest.model.datasets[manifest.model.environments[name].dataset].embedding
    for what, actual, expected in (("dimension", info.dimension, emb.dimension), ("metric", info.metric, emb.metric)):
        if actual is not None and actual != expected:
            raise DestinationError(
                f"{dest.address} cannot be adopted for environment '{name}': its {what} is {actual}, "
                f"the manifest declares {expected}; nothing was written",
                hint=f"Point the environment at an index with {what} {expected}, or fix the manifest's embedding "
                "if it is the one that is wrong.",
            )


def _last_history_serial(store: StateStore) -> int:
    """The highest serial among history keys (``history/0000000007``), read from the keys alone."""
    try:
        keys = store.destination.list_doc_keys(HISTORY_PREFIX)
    except StateError:  # history as broken as the state: its keys are unreadable too
        return 0
    serials = [int(k[len(HISTORY_PREFIX):]) for k in keys if k[len(HISTORY_PREFIX):].isdigit()]
    return max(serials, default=0)


def record_import(manifest: LoadedManifest, report: ImportReport, dest: Destination) -> None:
    """Write the state as if REV had been applied; the next plan shows the remaining drift."""
    env = manifest.model.environments[report.name]
    emb = manifest.model.datasets[env.dataset].embedding
    store = StateStore(dest)
    started = time.monotonic()
    with store.locked("import") as lock:
        try:
            state = store.load()
        except StateError:  # a malformed state is exactly what import exists to repair
            # continue the serial after the surviving history, so the import's entry never overwrites one
            state = EnvState.new().model_copy(update={"serial": _last_history_serial(store)})
        previous = state.deployed
        deployed = Deployed(
            **report.version,
            model=emb.model,
            dimension=emb.dimension,
            metric=emb.metric,
            records=dest.describe().count,
            applied_at=iso(now()),
            validated=None,
        )
        state = state.model_copy(update={"deployed": deployed, "previous": previous, "intent": None, "serial": state.serial + 1})
        store.save_and_release(  # state, history entry and lock release: one write
            state,
            HistoryEntry(
                serial=state.serial,
                started_at=iso(now()),
                finished_at=iso(now()),
                duration_s=round(time.monotonic() - started, 3),
                actor=actor(),
                operation="import",
                from_=VersionRef(version=previous.version, commit=previous.commit, digest=previous.digest) if previous else None,
                to=VersionRef(**report.version),
                counts={"add": 0, "update": 0, "delete": 0},
                result="success",
                plan_id="import",
                message=f"adopted with drift {report.drift.to_json()}",
            ),
            lock,
        )


def export_environment(dest: Destination, out: Path, progress: Progress | None = None) -> int:
    """Stream the live index to one Parquet file: id, vector (FixedSizeList<float32>), metadata columns.

    Metadata keys may differ between records, and a Parquet writer needs its schema up front, so
    each batch goes to a temporary file first and the union schema is written in a second pass
    (memory stays bounded by a batch either way).
    """
    info = dest.describe()
    if not info.exists:
        raise DestinationError(f"{dest.address} does not exist; there is nothing to export")
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory(prefix="vectorops-export-", dir=out.parent) as tmp:
        parts: list[Path] = []
        schemas: list[pa.Schema] = []
        for batch in dest.iter_records():
            table = _batch_table(batch)
            part = Path(tmp) / f"{len(parts):06d}.parquet"
            pq.write_table(table, part)
            parts.append(part)
            schemas.append(table.schema)
            count += len(batch)
            if progress:
                progress(f"exporting {dest.address}", count, info.count)
        schema = _union(schemas, info.dimension or 0)
        tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with pq.ParquetWriter(tmp_out, schema) as writer:
            for part in parts:
                table = pq.read_table(part)
                columns = [
                    table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
                    for f in schema
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
        tmp_out.replace(out)
    return count


def _batch_table(batch: RecordBatch) -> pa.Table:
    dim = batch.vectors.shape[1]
    flat = pa.array(batch.vectors.astype("float32", copy=False).reshape(-1), pa.float32())
    columns: dict[str, Any] = {"id": batch.ids.cast(pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}
    for name in batch.metadata.column_names:
        if name in ("id", "vector"):
            raise UsageError(f"a metadata field is named '{name}', which the dataset format reserves; rename it in the index first")
        columns[name] = batch.metadata.column(name)
    return pa.table(columns)


def _union(schemas: list[pa.Schema], dimension: int) -> pa.Schema:
    if not schemas:
        return pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), dimension))])
    merged = pa.unify_schemas(schemas, promote_options="permissive")
    fields = [merged.field("id"), merged.field("vector")] + sorted(
        (f for f in merged if f.name not in ("id", "vector")), key=lambda f: f.name
    )
    return pa.schema(fields)
