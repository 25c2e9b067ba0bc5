"""Sharded datasets end to end through the CLI (SPEC §10, issue 19): a DVC-tracked directory of
shards, hash tables cached per shard by md5, only changed shards decoded, `--jobs`.

The dataset repo is real git + DVC; the destination is real LanceDB. What the user sees of the
per-shard cache is `plan --json`'s ``shards`` block: how many shards there are and which had to
be decoded (the rest came from the cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import make_records, records_table
from fixtures.repo import DatasetRepo
from reconciler.engine.index_cache import read_table_file

SHARDS, PER_SHARD, DIM = 20, 1000, 8
CHANGED = 7  # the shard v2 changes


def _shards(n: int = SHARDS, per: int = PER_SHARD) -> list[list[dict[str, Any]]]:
    return [make_records(per, DIM, seed=100 + s, id_prefix="doc-", start=s * per) for s in range(n)]


@pytest.fixture(scope="module")
def sharded_repo(tmp_path_factory: pytest.TempPathFactory) -> DatasetRepo:
    """v1: 20 shards × 1k records. v2: shard 7 changes (3 vectors, 2 metadata, 1 record gone, 1 new)."""
    repo = DatasetRepo.create(tmp_path_factory.mktemp("sharded") / "repo", path="data/docs")
    shards = _shards()
    repo.commit_shards(shards, tag="v1")
    changed = [dict(r) for r in shards[CHANGED]]
    for r in changed[:3]:
        r["vector"] = [v + 1.0 for v in r["vector"]]
    for r in changed[3:5]:
        r["title"] = r["title"] + " (edited)"
    del changed[5]
    changed.append(make_records(1, DIM, seed=999, start=99_999)[0])
    v2 = list(shards)
    v2[CHANGED] = changed
    repo.commit_shards(v2, tag="v2")
    return repo


class Project:
    def __init__(self, folder: Path, repo: DatasetRepo) -> None:
        self.folder, self.repo = folder, repo
        self.manifest = folder / "vectorops.yaml"
        self.pin("v1")

    def pin(self, version: str) -> None:
        env = environment(version, lancedb_destination("docs"))
        write_manifest(self.manifest, {"staging": env}, repo=self.repo.root, dimension=DIM, dataset_keys={"path": "data/docs"})

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_vectorops("-m", str(self.manifest), "--no-color", *args, env=env)

    def ok(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    def content(self) -> dict[str, tuple[bytes, dict[str, Any]]]:
        t = lancedb.connect(str(self.folder / "db")).open_table("docs").to_arrow()
        ids = t.column("id").to_pylist()
        vectors = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(ids), -1)
        meta = [json.loads(m) for m in t.column("metadata").to_pylist()]
        return {i: (vectors[n].astype(np.float32).tobytes(), meta[n]) for n, i in enumerate(ids)}


def _expected(records: list[dict[str, Any]]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector")})
        for r in records
    }


@pytest.fixture
def project(tmp_path: Path, sharded_repo: DatasetRepo) -> Project:
    folder = tmp_path / "project"
    folder.mkdir()
    return Project(folder, sharded_repo)


def test_changing_one_shard_decodes_only_that_shard_and_applies_exactly(project: Project, sharded_repo: DatasetRepo) -> None:
    first = project.ok("plan", "--json").json["environments"][0]
    assert first["shards"]["total"] == SHARDS and first["shards"]["decoded"] == SHARDS
    assert first["changes"] == {"add": SHARDS * PER_SHARD, "update": 0, "delete": 0}
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected(sharded_repo.versions[0].records or [])

    again = project.ok("plan", "--json").json["environments"][0]
    assert again["shards"] == {"total": SHARDS, "decoded": 0, "from_cache": SHARDS, "decoded_files": [], "workers": 0}
    assert again["changes"] == {"add": 0, "update": 0, "delete": 0}

    project.pin("v2")
    saved = project.folder / "v2.plan"
    human = project.ok("plan", "-o", str(saved)).output
    assert f"1 of {SHARDS + 1} shards decoded" in human and f"part-{CHANGED:04d}.parquet" in human
    plan = project.ok("show", str(saved), "--json").json["environments"][0]
    # v1's twenty shards come from the cache; of v2 only the one new md5 is decoded
    assert plan["shards"]["decoded_files"] == [f"data/docs/part-{CHANGED:04d}.parquet"]
    assert plan["shards"]["decoded"] == 1 and plan["shards"]["total"] == SHARDS + 1  # distinct shards of v1 and v2
    assert plan["changes"] == {"add": 1, "update": 5, "delete": 1}
    assert plan["update_detail"] == {"vector": 3, "metadata": 2}
    warm = project.ok("plan", "--json").json["environments"][0]
    assert warm["shards"]["decoded"] == 0 and warm["changes"] == plan["changes"]

    project.ok("apply", str(saved))
    assert project.content() == _expected(sharded_repo.versions[1].records or [])


def test_apply_reads_changed_records_from_the_shard_stash(project: Project, sharded_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the plan decoded the changed shard, apply needs nothing else from the dataset: with every
    other shard file made unreadable in the DVC cache, the apply still writes v2 exactly."""
    project.ok("apply", "--auto-approve")
    project.pin("v2")
    project.ok("plan", "--json")
    import reconciler.dataset as ds

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("apply read a shard although the stash holds every changed record")

    monkeypatch.setattr(ds, "read_shard_records", refuse)
    monkeypatch.setattr(ds, "read_records", refuse)
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected(sharded_repo.versions[1].records or [])


def test_an_id_in_two_shards_names_both_shards(tmp_path: Path) -> None:
    repo = DatasetRepo.create(tmp_path / "dup", path="data/docs")
    shards = _shards(3, 50)
    shards[2].append(dict(shards[0][17]))  # doc-17 also in the third shard
    repo.commit_shards(shards, tag="v1")
    project = Project(tmp_path / "p", repo) if (tmp_path / "p").mkdir() is None else None
    assert project is not None
    result = project.run("plan")
    assert result.code == 1
    assert "duplicate ids: doc-17; 'doc-17' is in both data/docs/part-0000.parquet and data/docs/part-0002.parquet" in result.stderr
    assert "unique across all shards" in result.stderr
    assert "Traceback" not in result.output
    assert not (project.folder / "db").exists()


def test_jsonl_shards(tmp_path: Path) -> None:
    repo = DatasetRepo.create(tmp_path / "jsonl", path="data/docs", fmt="jsonl")
    shards = _shards(4, 25)
    repo.commit_shards(shards, tag="v1")
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p", repo)
    write_manifest(project.manifest, {"staging": environment("v1", lancedb_destination("docs"))}, repo=repo.root, dimension=DIM,
                   dataset_keys={"path": "data/docs", "format": "jsonl"})
    plan = project.ok("plan", "--json").json["environments"][0]
    assert plan["shards"]["decoded"] == 4 and plan["changes"]["add"] == 100
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected([r for s in shards for r in s])


def test_jobs_2_gives_the_same_plan_and_hash_tables_as_jobs_1(project: Project, tmp_path: Path) -> None:
    """Hashing in two worker processes is the same computation as in one: same plan, same tables."""
    tables = {}
    plans = {}
    for jobs in ("1", "2"):
        cache = tmp_path / f"cache-{jobs}"
        # VECTOROPS_PARALLEL_MIN_BYTES=0: worker processes even for shards this small
        result = project.ok("plan", "--json", "--jobs", jobs, env={"VECTOROPS_CACHE_DIR": str(cache), "VECTOROPS_PARALLEL_MIN_BYTES": "0"})
        body = result.json
        env = body["environments"][0]
        assert env["shards"]["decoded"] == SHARDS
        assert env["shards"].pop("workers") == int(jobs)
        for key in ("plan_id", "created_at"):
            body.pop(key)
        plans[jobs] = body
        tables[jobs] = {p.name: read_table_file(p) for p in sorted((cache / "shards").glob("*.arrow"))}
    assert plans["1"] == plans["2"]
    assert list(tables["1"]) == list(tables["2"]) and len(tables["1"]) == SHARDS
    for name, table in tables["1"].items():
        assert table.equals(tables["2"][name]), name


def test_jobs_2_starts_two_workers_on_a_real_dvc_directory(project: Project, tmp_path: Path) -> None:
    """DVC's .dir listing carries no per-file sizes: the version's size decides, so --jobs does parallelise.

    (With the listing's missing sizes read as 0 bytes, every real directory version stayed in one
    process whatever --jobs said; the test above hides that by setting the threshold to 0.)"""
    result = project.ok("plan", "--json", "--jobs", "2", env={"VECTOROPS_CACHE_DIR": str(tmp_path / "cache"), "VECTOROPS_PARALLEL_MIN_BYTES": "1"})
    assert result.json["environments"][0]["shards"]["workers"] == 2
    # below the threshold (far more bytes than this dataset holds) it stays in this process
    result = project.ok("plan", "--json", "--jobs", "2", env={"VECTOROPS_CACHE_DIR": str(tmp_path / "cache2"), "VECTOROPS_PARALLEL_MIN_BYTES": str(1 << 40)})
    assert result.json["environments"][0]["shards"]["workers"] == 1


def test_a_bad_record_in_a_worker_is_the_same_clear_message(tmp_path: Path) -> None:
    repo = DatasetRepo.create(tmp_path / "bad", path="data/docs")
    shards = _shards(3, 20)
    shards[1][4]["vector"] = [float("nan")] * DIM
    repo.commit_shards(shards, tag="v1")
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p", repo)
    result = project.run("plan", "--jobs", "2", env={"VECTOROPS_PARALLEL_MIN_BYTES": "0"})
    assert result.code == 1
    assert "file data/docs/part-0001.parquet: record 'doc-24' has NaN" in result.stderr
    assert "Traceback" not in result.output


def test_jobs_must_be_positive(project: Project) -> None:
    result = project.run("plan", "--jobs", "0")
    assert result.code == 1 and "--jobs" in result.stderr and "Traceback" not in result.output


def test_canaries_and_plan_checks_read_only_the_shards_holding_their_ids(tmp_path: Path, sharded_repo: DatasetRepo,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`vector_of` canaries are read from the one shard holding each id, not by scanning the version."""
    (tmp_path / "canaries.yaml").write_text("top_k: 5\nqueries:\n  - name: three\n    vector_of: doc-3003\n    expect: [doc-3003]\n")
    project = Project(tmp_path, sharded_repo)
    env = environment("v1", lancedb_destination("docs"), validation={"canaries": "canaries.yaml", "min_pass_rate": 1.0})
    write_manifest(project.manifest, {"staging": env}, repo=sharded_repo.root, dimension=DIM, dataset_keys={"path": "data/docs"})
    project.ok("plan")  # hashes every shard once
    import reconciler.dataset as ds

    opened: list[str] = []
    original = ds.read_shard_records

    def recording(src: Any, version: Any, shard: Any, ids: Any) -> Any:
        opened.append(shard.path)
        return original(src, version, shard, ids)

    monkeypatch.setattr(ds, "read_shard_records", recording)
    monkeypatch.setattr(ds, "read_records", lambda *a, **k: pytest.fail("a sharded version was scanned whole"))
    result = project.ok("apply", "--auto-approve")
    assert "1/1 canary queries passed" in result.output
    assert "data/docs/part-0003.parquet" in opened


def _tamper(db: Path) -> None:
    """Drift by hand: two records gone, one nobody wrote."""
    table = lancedb.connect(str(db)).open_table("docs")
    table.delete("id IN ('doc-3', 'doc-7010')")
    stranger = table.search().where("id = 'doc-4'").limit(1).to_arrow().select(table.schema.names)
    table.add(stranger.set_column(stranger.schema.get_field_index("id"), "id", pa.array(["zz-stranger"])))


def test_a_large_sharded_version_is_diffed_on_disk_with_the_same_plan_and_result(
    tmp_path: Path, sharded_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above shards.ON_DISK_MIN_RECORDS the plan diffs partitions on disk, not in-memory tables: the
    same pair of versions planned both ways gives the same plan JSON at every refresh level and the
    same records once applied (drift repaired, the stranger pruned)."""
    from reconciler.engine import partitioned, shards
    from reconciler.engine.listed import ListedIds

    calls: list[int] = []
    original = partitioned.diff_indexes

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(partitioned, "diff_indexes", counted)
    spilled: list[ListedIds] = []
    collect = ListedIds.collect

    def kept(*a: Any, **k: Any) -> ListedIds:
        spilled.append(collect(*a, **k))
        return spilled[-1]

    monkeypatch.setattr(ListedIds, "collect", kept)
    plans: dict[str, dict[str, Any]] = {}
    contents = {}
    for way, threshold in (("memory", shards.ON_DISK_MIN_RECORDS), ("disk", 1)):
        monkeypatch.setattr(shards, "ON_DISK_MIN_RECORDS", threshold)
        monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path / f"cache-{way}"))
        folder = tmp_path / way
        folder.mkdir()
        project = Project(folder, sharded_repo)
        project.ok("apply", "--auto-approve")
        _tamper(folder / "db")
        project.pin("v2")
        calls.clear()
        assert all(listing.closed for listing in spilled)  # the apply's plan, if it listed
        spilled.clear()
        for refresh in ("ids", "none", "sample"):
            body = project.ok("plan", "--json", "--refresh", refresh, "--sample-size", "50000").json
            for key in ("plan_id", "created_at"):
                body.pop(key)
            plans[f"{way} {refresh}"] = body
        assert len(calls) == (3 if way == "disk" else 0)
        # on disk, the `ids` plan spilled the listing (and closed its file when the diff was done)
        assert len(spilled) == (1 if way == "disk" else 0) and all(listing.closed for listing in spilled)
        project.ok("apply", "--auto-approve")
        contents[way] = project.content()
    for refresh in ("ids", "none", "sample"):
        assert plans[f"disk {refresh}"] == plans[f"memory {refresh}"], refresh
    ids_plan = plans["disk ids"]["environments"][0]
    assert ids_plan["changes"] == {"add": 1 + 2, "update": 5, "delete": 1 + 1}
    assert ids_plan["drift"]["missing"] == 2 and ids_plan["drift"]["unexpected"] == 1
    assert ids_plan["samples"]["missing"] == ["doc-3", "doc-7010"] and ids_plan["samples"]["unexpected"] == ["zz-stranger"]
    assert contents["disk"] == contents["memory"] == _expected(sharded_repo.versions[1].records or [])


def test_an_id_in_two_shards_of_a_large_version_names_both_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On disk a duplicated id is two rows with one key: the plan falls back to the exact check."""
    from reconciler.engine import shards

    monkeypatch.setattr(shards, "ON_DISK_MIN_RECORDS", 1)
    test_an_id_in_two_shards_names_both_shards(tmp_path)


def test_a_version_s_shard_listing_is_read_from_dvc_once(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing of a directory version never changes (its digest is the listing's md5): the next
    plan takes it from the cache instead of asking DVC again, with the same result."""
    first = project.ok("plan", "--json").json["environments"][0]
    import reconciler.dataset as ds

    monkeypatch.setattr(ds, "list_shards", lambda *a, **k: pytest.fail("the shard listing was asked of DVC again"))
    again = project.ok("plan", "--json").json["environments"][0]
    assert again["changes"] == first["changes"] and again["shards"]["total"] == SHARDS


def test_a_version_planned_before_is_read_from_its_one_combined_table(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm plan reads a sharded version's table from one cached file instead of reassembling it from
    every shard's table; it plans the same, and a shard table that changed under it is not trusted."""
    first = project.ok("plan", "--json").json["environments"][0]
    from reconciler.engine import shards

    original = shards._combine
    monkeypatch.setattr(shards, "_combine", lambda *a, **k: pytest.fail("the version was reassembled from its shard tables"))
    again = project.ok("plan", "--json").json["environments"][0]
    assert again["changes"] == first["changes"] == {"add": SHARDS * PER_SHARD, "update": 0, "delete": 0}
    assert again["shards"]["decoded"] == 0

    # a shard table removed from the cache: that shard is decoded again and the version reassembled
    monkeypatch.setattr(shards, "_combine", original)
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"]) / "shards"
    next(iter(sorted(cache.glob("*.arrow")))).unlink()
    third = project.ok("plan", "--json").json["environments"][0]
    assert third["shards"]["decoded"] == 1 and third["changes"] == first["changes"]


def test_keys_files_that_do_not_match_their_tables_never_leave_records_out(project: Project, sharded_repo: DatasetRepo) -> None:
    """Apply finds the shards holding the records it writes by each shard's keys file first; a keys
    file that lies (here: every one emptied) must cost reads, never records."""
    project.ok("apply", "--auto-approve")
    project.pin("v2")
    project.ok("plan", "--json")
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"]) / "shards"
    lying = sorted(cache.glob("*.keys.npy"))
    assert len(lying) == SHARDS + 1
    for path in lying:
        np.save(path, np.zeros(3, np.uint64))
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected(sharded_repo.versions[1].records or [])


def test_a_large_version_is_partitioned_once_and_a_damaged_partition_is_rebuilt(
    tmp_path: Path, sharded_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On disk, a version's partitions follow from its digest: the next plan reuses them (only the
    listed ids are partitioned again) and plans the same; a partition file removed by hand is rebuilt,
    from the shards' sorted runs, or spilled from their tables when the runs are gone."""
    from reconciler.engine import partitioned, shards

    monkeypatch.setattr(shards, "ON_DISK_MIN_RECORDS", 1)
    spilled: list[str] = []  # every version partitioned, whichever way
    from_runs: list[str] = []
    original_spill, original_runs = partitioned.write_partitions, partitioned.partitions_from_runs

    def counted(folder: Path, *a: Any, **k: Any) -> int:
        spilled.append(folder.name)
        return original_spill(folder, *a, **k)

    def counted_runs(folder: Path, *a: Any, **k: Any) -> int:
        spilled.append(folder.name)
        from_runs.append(folder.name)
        return original_runs(folder, *a, **k)

    monkeypatch.setattr(partitioned, "write_partitions", counted)
    monkeypatch.setattr(partitioned, "partitions_from_runs", counted_runs)
    project = Project(tmp_path, sharded_repo)
    project.ok("apply", "--auto-approve")
    project.pin("v2")

    def plan() -> dict[str, Any]:
        body = project.ok("plan", "--json").json
        for key in ("plan_id", "created_at"):
            body.pop(key)
        body["environments"][0].pop("shards")  # the first plan decodes v2's changed shard, the others none
        return body

    spilled.clear()
    from_runs.clear()
    first = plan()
    assert len(spilled) == 1  # v2's partitions (v1's came from its apply); the listing is partitioned in memory
    assert len(from_runs) == 1  # from its shards' runs, which hashing them wrote
    spilled.clear()
    assert plan() == first
    assert spilled == []

    cached = Path(os.environ["VECTOROPS_CACHE_DIR"]) / "partitions"
    next(iter(sorted(cached.glob("*/00000.rows")))).unlink()
    spilled.clear()
    assert plan() == first
    assert len(spilled) == 1

    # a version some of whose shards kept no run (hashed by an earlier vectorops) or a torn one:
    # spilled from the tables, never merged from what runs there are; the same plan
    runs = sorted((Path(os.environ["VECTOROPS_CACHE_DIR"]) / "shards").glob("*.run"))
    assert len(runs) == SHARDS + 1  # v1's shards and v2's changed one
    runs[0].unlink()
    runs[1].write_bytes(runs[1].read_bytes()[:-24])  # one row short
    for folder in cached.iterdir():
        (folder / "00000.rows").unlink()
    spilled.clear()
    from_runs.clear()
    assert plan() == first
    assert len(spilled) == 2 and from_runs == []  # both versions' partitions rebuilt, neither from runs
    assert first["environments"][0]["changes"] == {"add": 1, "update": 5, "delete": 1}
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected(sharded_repo.versions[1].records or [])


def test_plan_knows_which_records_to_write_are_not_in_a_stash(project: Project, sharded_repo: DatasetRepo) -> None:
    """Plan asks DVC whether the data exists only for the records apply would have to read (those no
    stash holds): after v2's plan every record to write is in the changed shard's stash; with the
    stash gone, none is."""
    from reconciler import dataset as ds
    from reconciler.engine import index_cache, shards
    from reconciler.engine.plan import dataset_signature
    from reconciler.manifest import load_manifest

    project.ok("apply", "--auto-approve")
    project.pin("v2")
    assert project.ok("plan", "--json").json["environments"][0]["changes"] == {"add": 1, "update": 5, "delete": 1}
    old = _expected(sharded_repo.versions[0].records or [])
    new = _expected(sharded_repo.versions[1].records or [])
    to_write = sorted(i for i, record in new.items() if old.get(i) != record)
    assert len(to_write) == 6

    manifest = load_manifest(project.manifest)
    src = manifest.dataset_source("docs")
    v2 = ds.resolve_version(src, "v2")
    sig = index_cache.signature_key(dataset_signature(manifest, "docs"))
    baseline = sharded_repo.versions[0].digest

    def unstashed() -> list[str]:
        return sorted(shards.unstashed_ids(src, v2, sig, baseline, pa.array(to_write)).to_pylist())

    assert unstashed() == []
    for stash in (Path(os.environ["VECTOROPS_CACHE_DIR"]) / "stash").glob("*.arrow"):
        stash.unlink()
    assert unstashed() == to_write


def test_hash_tables_cached_by_an_earlier_version_are_replaced_not_kept(project: Project) -> None:
    """Hash tables used to be cached as Parquet; they are rebuilt in the new format, and the old file
    of the same shard or version is removed rather than left to grow the cache."""
    project.ok("plan", "--json")
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"])
    tables = sorted((cache / "shards").glob("*.arrow")) + sorted((cache / "index").glob("*.arrow"))
    assert len(tables) == SHARDS + 1  # every shard's table and the version's combined one
    for table in tables:
        table.unlink()
        table.with_suffix(".parquet").write_bytes(b"PAR1 as an earlier vectorops left it")
    again = project.ok("plan", "--json").json["environments"][0]
    assert again["shards"]["decoded"] == SHARDS and again["changes"] == {"add": SHARDS * PER_SHARD, "update": 0, "delete": 0}
    assert not list(cache.rglob("*.parquet"))
    assert all(table.exists() for table in tables)


def test_a_version_in_the_repo_s_dvc_cache_is_read_without_dvc_and_plans_as_through_dvc(tmp_path: Path, sharded_repo: DatasetRepo) -> None:
    """A cold plan reads a directory version's listing and its new shards straight from the repo's
    DVC cache when they are there: DVC is not even imported (importing it, opening it at the commit
    and listing the directory was ~1 s of a plan decoding one shard). A fresh clone has no DVC cache,
    so there everything is read through DVC from the remote: the plans are the same."""
    import subprocess
    import sys

    from fixtures.manifests import write_manifest as write

    def cold_plan(repo: Path, folder: Path) -> tuple[dict[str, Any], bool]:
        folder.mkdir()
        write(folder / "vectorops.yaml", {"staging": environment("v2", lancedb_destination("docs"))}, repo=repo, dimension=DIM,
              dataset_keys={"path": "data/docs"})
        probe = (
            "import sys\nfrom reconciler.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('dvc imported:', 'dvc' in sys.modules, file=sys.stderr)\n"
        )
        env = dict(os.environ, VECTOROPS_CACHE_DIR=str(folder / "cache"))
        run = subprocess.run([sys.executable, "-c", probe, "-m", "vectorops.yaml", "--no-color", "plan", "--json"], cwd=folder,
                             capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["environments"][0], "dvc imported: True" in run.stderr

    local, dvc_used = cold_plan(sharded_repo.root, tmp_path / "local")
    assert not dvc_used
    assert local["shards"]["decoded"] == SHARDS and local["changes"] == {"add": SHARDS * PER_SHARD, "update": 0, "delete": 0}

    clone = sharded_repo.clone(tmp_path / "clone")
    assert not (clone / ".dvc" / "cache").exists()
    remote, dvc_used = cold_plan(clone, tmp_path / "remote")
    assert dvc_used
    for key in ("desired", "changes", "samples", "shards", "drift", "blocked"):
        assert remote[key] == local[key], key


def test_a_sample_of_a_version_kept_on_disk_repairs_what_it_saw_drifted(project: Project, sharded_repo: DatasetRepo,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`sample` on a large sharded version (kept on disk as its shard tables): what the sample saw
    missing or modified is looked up in the desired version a shard at a time (collecting its ids
    was ~0.3 GB at 10M records) and rewritten by the apply, exactly."""
    from reconciler.engine import shards

    monkeypatch.setattr(shards, "ON_DISK_MIN_RECORDS", 1)
    project.ok("apply", "--auto-approve")
    table = lancedb.connect(str(project.folder / "db")).open_table("docs")
    table.delete("id IN ('doc-3', 'doc-7500', 'doc-19999')")
    table.update(where="id = 'doc-42'", values={"vector": [0.5] * DIM})

    project.pin("v2")  # v2 keeps all four; the sample (a census at this size) sees them
    env = project.ok("plan", "--json", "--refresh", "sample", "--sample-size", str(SHARDS * PER_SHARD)).json["environments"][0]
    assert (env["drift"]["missing"], env["drift"]["modified"]) == (3, 1)
    assert env["changes"] == {"add": 1 + 3, "update": 5 + 1, "delete": 1}
    project.ok("apply", "--auto-approve", "--refresh", "sample", "--sample-size", str(SHARDS * PER_SHARD))
    assert project.content() == _expected(sharded_repo.versions[1].records or [])


def test_a_listing_that_fails_half_way_on_disk_is_one_clear_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spilled listing (``ListedIds``) of a version diffed on disk: a destination that fails
    while its ids stream in is one message naming it, exit 1, and no spill file is left behind."""
    from reconciler.engine import shards

    monkeypatch.setattr(shards, "ON_DISK_MIN_RECORDS", 1)
    project.ok("apply", "--auto-approve")
    first = set((project.folder / "db" / "docs.lance" / "data").iterdir())
    project.pin("v2")
    project.ok("apply", "--auto-approve")
    later = set((project.folder / "db" / "docs.lance" / "data").iterdir()) - first
    assert first and later  # the scan reads v1's file before the one v2's apply added
    for damaged in later:
        damaged.write_bytes(b"not a lance file")  # what a failing disk or a bad copy leaves
    project.pin("v1")
    from reconciler.engine import listed

    pieces: list[int] = []
    hash_strings = listed.hash_strings

    def counted(ids: Any) -> Any:
        pieces.append(len(ids))
        return hash_strings(ids)

    monkeypatch.setattr(listed, "hash_strings", counted)
    result = project.run("plan")
    assert pieces and sum(pieces) > 0  # some ids were listed and spilled before the failure
    assert result.code == 1, result.output
    assert "lancedb:" in result.stderr and "listing ids failed" in result.stderr, result.stderr
    assert "Traceback" not in result.output and "vectorops bug" not in result.output
    if Path("/proc/self/fd").is_dir():  # the spill file (unlinked from the start) was closed, not left open
        open_files = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
        assert not [f for f in open_files if "listed-" in f], open_files


def test_cache_prune_drops_the_version_used_least_recently_and_never_a_shard_the_kept_one_needs(
    tmp_path: Path, sharded_repo: DatasetRepo
) -> None:
    """Two projects on one machine: one plans v1, later the other plans v2 (they share 19 shards).
    Pruning to v2's size drops v1 alone; v2 still plans warm, and v1 costs its one own shard again."""
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"])
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    at_v1 = Project(old, sharded_repo)
    assert at_v1.ok("plan", "--json").json["environments"][0]["shards"]["decoded"] == SHARDS
    an_hour_ago = time.time() - 3600
    for record in (cache / "used").glob("*.json"):
        os.utime(record, (an_hour_ago, an_hour_ago))
    at_v2 = Project(new, sharded_repo)
    at_v2.pin("v2")
    assert at_v2.ok("plan", "--json").json["environments"][0]["shards"]["decoded"] == 1

    info = at_v2.ok("cache", "info", "--json").json
    assert [v["label"] for v in info["versions"]] == ["docs@v2", "docs@v1"]
    human = at_v2.ok("cache", "info").output
    assert "docs@v2" in human and "shard hash tables" in human and str(cache) in human

    v2_bytes = info["versions"][0]["bytes"]
    dry = at_v2.ok("cache", "prune", "--max-size", str(v2_bytes), "--keep-recent", "1m", "--dry-run").output
    assert "Would remove" in dry and "docs@v1" in dry
    assert [v["label"] for v in at_v2.ok("cache", "info", "--json").json["versions"]] == ["docs@v2", "docs@v1"]

    pruned = at_v2.ok("cache", "prune", "--max-size", str(v2_bytes), "--keep-recent", "1m", "--json").json
    assert pruned["removed"]["versions"] == ["docs@v1"] and pruned["kept"]["versions"] == ["docs@v2"]
    assert pruned["kept"]["bytes"] <= v2_bytes
    assert [v["label"] for v in at_v2.ok("cache", "info", "--json").json["versions"]] == ["docs@v2"]

    assert at_v2.ok("plan", "--json").json["environments"][0]["shards"]["decoded"] == 0  # nothing of v2 went
    again = at_v1.ok("plan", "--json").json["environments"][0]
    assert again["shards"]["decoded_files"] == [f"data/docs/part-{CHANGED:04d}.parquet"]  # v1's only shard of its own
    assert again["changes"] == {"add": SHARDS * PER_SHARD, "update": 0, "delete": 0}


def test_cache_prune_bad_flags_are_one_clear_message(project: Project) -> None:
    for flags, needle in ((["--max-size", "lots"], "--max-size 'lots' is not a size"), (["--older-than", "soon"], "--older-than 'soon' is not a duration")):
        result = project.run("cache", "prune", *flags)
        assert result.code == 1 and needle in result.output and "Traceback" not in result.output + result.stderr
    alone = project.run("cache")  # like `vectorops` alone: help, not an error
    assert alone.code == 0 and "info" in alone.output and "prune" in alone.output


# -- shard directories as real pipelines write them ---------------------------------------------------


def _directory_project(tmp_path: Path, files: dict[str, pa.Table | bytes], fmt: str = "parquet") -> Project:
    repo = DatasetRepo.create(tmp_path / "repo", path="data/docs", fmt=fmt)
    repo.commit_directory(files, tag="v1")
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p", repo)
    write_manifest(project.manifest, {"staging": environment("v1", lancedb_destination("docs"))}, repo=repo.root, dimension=DIM,
                   dataset_keys={"path": "data/docs", "format": fmt})
    return project


def _table(n: int, start: int) -> pa.Table:
    return records_table(make_records(n, DIM, seed=start, start=start), DIM)


def test_a_metadata_field_typed_differently_in_two_shards_is_refused_at_plan_naming_both(tmp_path: Path) -> None:
    """Each Parquet file has one type per column, but two shards may disagree (a string title in one, a
    number in the other). No destination write can merge them, so the plan refuses, naming the field,
    both shards and both types, and nothing is written; also when one of them comes from the cache."""
    numbered = _table(10, 10)
    numbered = numbered.set_column(numbered.schema.get_field_index("title"), "title", pa.array(range(10), pa.int64()))
    project = _directory_project(tmp_path, {"part-0.parquet": _table(10, 0), "part-1.parquet": _table(10, 20)})
    project.ok("plan")  # both shards hashed, their types cached with them
    project.repo.commit_directory({"part-0.parquet": _table(10, 0), "part-1.parquet": _table(10, 20), "part-2.parquet": numbered}, tag="v2")
    project.pin("v2")
    result = project.run("plan")
    assert result.code == 1, result.output
    assert ("metadata field 'title' is string in data/docs/part-0.parquet but int64 in data/docs/part-2.parquet" in result.stderr)
    assert "one type in every shard" in result.stderr and "Traceback" not in result.output + result.stderr
    assert project.run("apply", "--auto-approve").code == 1
    assert not (project.folder / "db").exists()


def test_shards_whose_types_arrow_widens_and_empty_shards_plan_and_apply(tmp_path: Path) -> None:
    """int32 in one shard and int64 in another, a field only some shards have, and a shard with no rows
    written the way pandas writes an empty frame (every column typed null) are all fine."""
    narrow = _table(10, 0)
    narrow = narrow.set_column(narrow.schema.get_field_index("chunk"), "chunk", narrow.column("chunk").cast(pa.int32()))
    empty = pa.table({name: pa.nulls(0) for name in narrow.column_names})
    project = _directory_project(tmp_path, {"a.parquet": narrow, "b.parquet": _table(10, 10).drop_columns(["tags"]), "c.parquet": empty})
    plan = project.ok("plan", "--json").json["environments"][0]
    assert plan["changes"]["add"] == 20 and plan["shards"]["total"] == 3
    project.ok("apply", "--auto-approve")
    content = project.content()
    assert len(content) == 20 and content["doc-3"][1]["chunk"] == 3 and "tags" not in content["doc-13"][1]


def test_records_in_another_format_in_a_shard_directory_are_refused_by_name(tmp_path: Path) -> None:
    """A .jsonl among Parquet shards, or a compressed .jsonl.gz among JSONL ones, would otherwise be
    left out without a word; a README, Spark's _SUCCESS and its .crc files are not data and are ignored."""
    line = json.dumps({"id": "x-1", "vector": [0.5] * DIM}).encode() + b"\n"
    spark = {"part-00000.snappy.parquet": _table(10, 0), "_SUCCESS": b"", ".part-00000.snappy.parquet.crc": b"crc", "README.md": b"# docs"}
    mixed = _directory_project(tmp_path / "mixed", {**spark, "extra.jsonl": line})
    result = mixed.run("validate")
    assert result.code == 1 and "data/docs/extra.jsonl is not parquet" in result.stderr and "records would be left out" in result.stderr
    assert "Traceback" not in result.output + result.stderr

    gz = _directory_project(tmp_path / "gz", {"part-0.jsonl": line, "part-1.jsonl.gz": b"\x1f\x8b..."}, fmt="jsonl")
    result = gz.run("plan")
    assert result.code == 1 and "data/docs/part-1.jsonl.gz is compressed" in result.stderr and "Decompress" in result.stderr

    clean = _directory_project(tmp_path / "clean", spark)
    plan = clean.ok("plan", "--json").json["environments"][0]
    assert plan["changes"]["add"] == 10 and plan["shards"]["decoded_files"] == ["data/docs/part-00000.snappy.parquet"]


def test_a_shard_table_cached_without_its_metadata_types_is_hashed_again(project: Project) -> None:
    """A shard hashed before vectorops kept each shard's metadata types is decoded once more (so the
    plan can compare its types with the other shards'), and only that one."""
    project.ok("plan")
    cached = sorted((Path(os.environ["VECTOROPS_CACHE_DIR"]) / "shards").glob("*.arrow"))
    assert len(cached) == SHARDS
    old = read_table_file(cached[3])
    assert old is not None
    from reconciler.engine.index_cache import write_table_file

    write_table_file(cached[3], old.replace_schema_metadata(None))
    again = project.ok("plan", "--json").json["environments"][0]
    assert again["shards"]["decoded"] == 1 and again["changes"]["add"] == SHARDS * PER_SHARD


@pytest.mark.parametrize("where", ["repo's DVC cache", "through DVC from the remote"])
def test_an_apply_reads_each_shard_it_needs_alone_never_the_version_s_listing(
    tmp_path: Path, sharded_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A first apply has no stash: every record comes from its shard. Each shard is opened on its own
    (verified first); listing the whole version through DVC for each shard made an apply of 2,000
    shards × 50 records take ~110 s instead of ~7 s."""
    import reconciler.dataset as ds

    root = sharded_repo.root if where == "repo's DVC cache" else sharded_repo.clone(tmp_path / "clone")
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p", sharded_repo)
    write_manifest(project.manifest, {"staging": environment("v1", lancedb_destination("docs"))}, repo=root, dimension=DIM,
                   dataset_keys={"path": "data/docs"})
    project.ok("plan")

    def listed(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the apply listed the whole version to read one shard")

    monkeypatch.setattr(ds, "_files", listed)
    project.ok("apply", "--auto-approve")
    assert project.content() == _expected(sharded_repo.versions[0].records or [])


def test_hive_style_folders_become_metadata_fields_as_pyarrow_reads_them(tmp_path: Path) -> None:
    """A directory written partitioned (Spark's partitionBy, pandas' partition_cols) keeps the key only
    in folder names. Its records get those fields, as pyarrow, pandas, Spark and DuckDB read them: a
    file moved to another folder (same md5) is hashed again and its records updated, never served
    from the hash table cached for its old folder."""
    import pyarrow.parquet as pq

    files = {
        "lang=en/year=2024/part-0.parquet": _table(10, 0),
        "lang=fr/year=2023/part-0.parquet": _table(10, 10),
        "lang=__HIVE_DEFAULT_PARTITION__/year=2024/part-0.parquet": _table(10, 20),
        "_SUCCESS": b"",
    }
    project = _directory_project(tmp_path, files)
    project.ok("apply", "--auto-approve")
    content = project.content()
    assert len(content) == 30
    read = pq.read_table(project.repo.file, partitioning="hive").to_pylist()
    by_id = {r["id"]: r for r in read}
    assert {i: (m.get("lang"), m.get("year")) for i, (_, m) in content.items()} == {i: (r["lang"], r["year"]) for i, r in by_id.items()}
    assert content["doc-3"][1]["lang"] == "en" and content["doc-3"][1]["year"] == 2024 and content["doc-13"][1]["lang"] == "fr"
    assert content["doc-23"][1].get("lang") is None and content["doc-23"][1]["title"] == "Document 23"

    moved = {**files, "lang=de/year=2023/part-0.parquet": files["lang=fr/year=2023/part-0.parquet"]}
    del moved["lang=fr/year=2023/part-0.parquet"]
    project.repo.commit_directory(moved, tag="v2")
    project.pin("v2")
    plan = project.ok("plan", "--json").json["environments"][0]
    assert plan["changes"] == {**plan["changes"], "add": 0, "update": 10, "delete": 0}
    assert plan["shards"]["decoded_files"] == ["data/docs/lang=de/year=2023/part-0.parquet"]
    project.ok("apply", "--auto-approve")
    after = project.content()
    assert after["doc-13"][1]["lang"] == "de" and after["doc-13"][1]["year"] == 2023 and after["doc-3"] == content["doc-3"]
    assert project.ok("plan", "--json").json["environments"][0]["changes"]["update"] == 0


def test_a_folder_named_for_a_column_of_the_files_below_it_is_refused_naming_the_file(tmp_path: Path) -> None:
    project = _directory_project(tmp_path, {"title=old/part-0.parquet": _table(10, 0)})
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        result = project.run(*command)
        assert result.code == 1, result.output
        assert "file data/docs/title=old/part-0.parquet: 'title' is both a column of this file and the name of a folder above it" in result.stderr
        assert "Drop the column 'title'" in result.stderr and "Traceback" not in result.output + result.stderr
    assert not (project.folder / "db").exists()


def test_jsonl_shards_in_hive_style_folders_get_their_fields_too(tmp_path: Path) -> None:
    lines = b"".join(json.dumps({"id": f"j-{i}", "vector": [0.25 * i] * DIM, "title": f"t{i}"}).encode() + b"\n" for i in range(4))
    project = _directory_project(tmp_path, {"lang=en/part-0.jsonl": lines, "lang=pt%2DBR/part-0.jsonl": lines.replace(b"j-", b"k-")}, fmt="jsonl")
    project.ok("apply", "--auto-approve")
    content = project.content()
    assert content["j-1"][1] == {"title": "t1", "lang": "en"} and content["k-1"][1] == {"title": "t1", "lang": "pt-BR"}


def test_folders_readers_skip_are_skipped_and_a_delta_lake_table_is_refused(tmp_path: Path) -> None:
    """A failed Spark job's ``_temporary/`` and a notebook's ``.ipynb_checkpoints/`` hold copies of shards
    that pyarrow, Spark and pandas skip: so does vectorops (their ids would otherwise be "in two shards").
    A Delta Lake table's folder keeps the files of rows it deleted until VACUUM, so reading its Parquet
    files would deploy those rows: refused, saying what to do, nothing written."""
    part = _table(10, 0)
    leftovers = {"part-0.parquet": part, "_temporary/0/_temporary/attempt_0/part-0.parquet": part,
                 ".ipynb_checkpoints/part-0-checkpoint.parquet": part, "_SUCCESS": b""}
    project = _directory_project(tmp_path / "spark", leftovers)
    plan = project.ok("plan", "--json").json["environments"][0]
    assert plan["changes"]["add"] == 10 and plan["shards"]["decoded_files"] == ["data/docs/part-0.parquet"]

    delta = _directory_project(tmp_path / "delta", {"part-0.parquet": part, "part-1.parquet": _table(10, 10),
                                                    "_delta_log/00000000000000000000.json": b"{}\n"})
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        result = delta.run(*command)
        assert result.code == 1 and "this directory is a Delta Lake table" in result.stderr, result.output
        assert "current snapshot out as plain Parquet" in result.stderr and "Traceback" not in result.output + result.stderr
    assert not (delta.folder / "db").exists()


def test_a_category_column_in_one_shard_and_a_decimal_in_another_plan_and_apply_as_values(tmp_path: Path) -> None:
    """pandas writes a ``category`` column dictionary-encoded: beside a shard where the same field is a
    plain string it is the same field, not two types. A decimal (Spark and SQL exports) is a number."""
    import decimal

    categorical = _table(10, 0)
    categorical = categorical.set_column(categorical.schema.get_field_index("title"), "title", categorical.column("title").dictionary_encode())
    priced = _table(10, 10).append_column("price", pa.array([decimal.Decimal("19.90")] * 10, pa.decimal128(8, 2)))
    project = _directory_project(tmp_path, {"part-0.parquet": categorical, "part-1.parquet": priced})
    project.ok("apply", "--auto-approve")
    content = project.content()
    assert content["doc-3"][1]["title"] == "Document 3" and content["doc-13"][1]["price"] == 19.9
    assert project.ok("plan", "--json").json["environments"][0]["changes"]["update"] == 0


def test_float32_scores_and_map_columns_reach_the_index_as_written(tmp_path: Path) -> None:
    """numpy's float32 scores were deployed as 0.10000000149011612 (what a filter `score <= 0.1` misses)
    and a Spark MapType column as a list of pairs; they are 0.1 and a JSON object, and a full refresh
    finds the table exactly as planned."""
    scored = _table(10, 0).append_column("confidence", pa.array([0.1 * (i + 1) for i in range(10)], pa.float32()))
    scored = scored.append_column("attrs", pa.array([[("color", "red")]] * 10, pa.map_(pa.string(), pa.string())))
    project = _directory_project(tmp_path, {"part-0.parquet": scored})
    project.ok("apply", "--auto-approve")
    content = project.content()
    assert content["doc-0"][1]["confidence"] == 0.1 and content["doc-2"][1]["confidence"] == 0.3
    assert content["doc-0"][1]["attrs"] == {"color": "red"}
    drift = project.ok("drift", "--refresh", "full", "--json").json["environments"][0]["drift"]
    assert (drift["missing"], drift["unexpected"], drift["modified"]) == (0, 0, 0)
