"""The benchmark's dataset: two versions of a Parquet file 1% apart, in a real git + DVC repository.

Shared by bench/run.py (vectorops against the I/O floor) and bench/peers.py (vectorops against the
tools teams use instead), so both measure the very same data: string ids ``doc-000000042``, a
float32 vector, small metadata (``title``, ``source``, ``chunk``, ``lang``); v2 is v1 with 1%
deleted, 1% updated (every one a new vector, half also a new title) and 1% added at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the git + DVC repo helpers live in tests/fixtures
    sys.path.insert(0, str(ROOT))

SOURCES = ("wiki", "docs", "tickets", "forum", "blog")
LANGS = ("en", "de", "fr", "es")

@dataclass
class Change:
    """Which rows of v1 change in v2 (indices into v1), and how many rows v2 appends."""

    n: int
    deleted: np.ndarray
    updated: np.ndarray
    added: int

    @staticmethod
    def one_percent(n: int, seed: int = 7) -> Change:
        k = max(1, n // 100)
        picks = np.random.default_rng(seed).permutation(n)
        return Change(n, np.sort(picks[:k]), np.sort(picks[k : 2 * k]), k)


def _group(start: int, stop: int, dim: int, seed: int, title_suffix: np.ndarray | None = None) -> dict[str, Any]:
    """Rows ``start..stop`` of the base data: same arguments, same rows (vectors seeded per group)."""
    k = np.arange(start, stop)
    rng = np.random.default_rng([seed, start])
    vectors = rng.standard_normal((stop - start, dim), dtype=np.float32)
    titles = np.char.add("Document ", k.astype(str)).astype(object)
    if title_suffix is not None:
        titles[title_suffix] = titles[title_suffix] + " (revised)"
    return {
        "id": np.char.add("doc-", np.char.zfill(k.astype(str), 9)).astype(object),
        "vectors": vectors,
        "title": titles,
        "source": np.asarray(SOURCES, dtype=object)[k % len(SOURCES)],
        "chunk": (k % 13).astype(np.int64),
        "lang": np.asarray(LANGS, dtype=object)[k % len(LANGS)],
    }


def _table(cols: dict[str, Any], vector_type: str) -> pa.Table:
    vectors = np.ascontiguousarray(cols["vectors"], dtype=np.float32)
    n, dim = vectors.shape
    if vector_type == "binary":
        vec: pa.Array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * dim), n, [None, pa.py_buffer(vectors)])
    else:
        vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    return pa.table(
        {
            "id": pa.array(cols["id"], pa.string()),
            "vector": vec,
            "title": pa.array(cols["title"], pa.string()),
            "source": pa.array(cols["source"], pa.string()),
            "chunk": pa.array(cols["chunk"], pa.int64()),
            "lang": pa.array(cols["lang"], pa.string()),
        }
    )


def version_groups(change: Change, dim: int, version: int, row_group: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The row groups of v1 (``version=1``) or v2, generated one at a time (bounded memory)."""
    for start in range(0, change.n, row_group):
        stop = min(change.n, start + row_group)
        if version == 1:
            yield _group(start, stop, dim, seed)
            continue
        upd = change.updated[(change.updated >= start) & (change.updated < stop)] - start
        meta_too = upd[::2]  # half the updated rows also change metadata; all change their vector
        cols = _group(start, stop, dim, seed, title_suffix=meta_too)
        if len(upd):
            cols["vectors"][upd] = np.random.default_rng([seed + 1, start]).standard_normal((len(upd), dim), dtype=np.float32)
        gone = change.deleted[(change.deleted >= start) & (change.deleted < stop)] - start
        if len(gone):
            keep = np.ones(stop - start, bool)
            keep[gone] = False
            cols = {k: v[keep] for k, v in cols.items()}
        yield cols
    if version == 2:
        for start in range(change.n, change.n + change.added, row_group):
            yield _group(start, min(change.n + change.added, start + row_group), dim, seed + 2)


def write_version(path: Path, groups: Iterator[dict[str, Any]], vector_type: str, row_group: int, compression: str) -> int:
    """Stream row groups into one Parquet file; returns the record count."""
    if path.exists():
        path.unlink()  # with DVC's hardlink cache the old file IS the cached object: never write through it
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    for cols in groups:
        table = _table(cols, vector_type)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression=None if compression == "none" else compression)
        writer.write_table(table, row_group_size=row_group)
        rows += table.num_rows
    assert writer is not None
    writer.close()
    return rows


@dataclass
class BenchRepo:
    root: Path
    digests: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.root / "data" / "docs.parquet"

    def cached(self, tag: str) -> Path:
        """The DVC cache object of a version: the very file the engine reads."""
        d = self.digests[tag]
        return self.root / ".dvc" / "cache" / "files" / "md5" / d[:2] / d[2:]


def build_repo(root: Path, n: int, dim: int, args: argparse.Namespace) -> BenchRepo:
    """git init + dvc init, then v1 and v2 each written, `dvc add`-ed, pushed, committed and tagged."""
    from tests.fixtures.repo import BASE_EPOCH, DatasetRepo, _dvc, run_git

    repo = DatasetRepo.create(root)
    with _dvc(repo.root) as dvc, dvc.config.edit() as cfg:
        cfg["cache"]["type"] = "hardlink"  # one copy of each version on disk, not two
    run_git(repo.root, "commit", "-q", "-am", "dvc: hardlink cache", when=BASE_EPOCH + 60)
    out = BenchRepo(repo.root)
    change = Change.one_percent(n)
    for version in (1, 2):
        tag = f"v{version}"
        out.rows[tag] = write_version(out.file, version_groups(change, dim, version, args.row_group), args.vector_type, args.row_group, args.compression)
        with _dvc(repo.root) as dvc:
            dvc.add(str(out.file))
            if not args.no_push:
                dvc.push()
        run_git(repo.root, "add", "-A")
        run_git(repo.root, "commit", "-q", "-m", f"dataset {tag}", when=BASE_EPOCH + 3600 * version)
        run_git(repo.root, "tag", tag)
        out.digests[tag] = repo.digest_in_dvc_file("HEAD")
    return out


def warm(*files: Path) -> None:
    """Read files into the page cache right before a phase that reads them.

    This VM pages out memory (page cache included) idle for ~60 s (DAMON ``pageout``, see
    RESULTS.md), so without this a phase would read from disk or from memory depending on how long
    ago the previous phase touched the file. Every phase that reads a version starts warm, like the
    floor it is compared with: the stricter comparison (disk reads would dilute the ratios).
    """
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(64 << 20):
                pass


def open_repo(root: Path) -> BenchRepo:
    """A repository ``build_repo`` made earlier (``--reuse``): its tags' digests and row counts read back."""
    import yaml

    from tests.fixtures.repo import run_git

    out = BenchRepo(root)
    for tag in ("v1", "v2"):
        doc = yaml.safe_load(run_git(root, "show", f"{tag}:data/docs.parquet.dvc"))
        out.digests[tag] = str(doc["outs"][0]["md5"])
        out.rows[tag] = pq.ParquetFile(out.cached(tag)).metadata.num_rows
    return out
