"""`vectorops cache prune`'s rule on a cache folder laid out as plans leave it: versions are kept or
dropped whole, least recently used first, and a shard a kept version shares is never removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.engine.cache_pruning import cache_contents, entry_id, prune, record_version_use, release_held_versions
from reconciler.render.cache import render_prune

HOUR = 3600.0


def _file(root: Path, relative: str, size: int, age_s: float = 0.0) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def _shard(root: Path, name: str, size: int, age_s: float = 0.0) -> None:
    """A shard's table, its keys and its sorted run: one entry."""
    for suffix, part in ((".arrow", size // 2), (".keys.npy", size // 4), (".run", size - size // 2 - size // 4)):
        _file(root, f"shards/{name}{suffix}", part, age_s)


def _version(root: Path, key: str, label: str, shards: list[str], age_s: float) -> None:
    record_version_use(key, label, [f"shards/{s}" for s in shards] + [f"index/{key}", f"partitions/{key}"])
    when = time.time() - age_s
    os.utime(root / "used" / f"{key}.json", (when, when))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(root))
    # v1 and v2 share shard "a"; v2 replaced "b" with "c"; each version has its partitions (two bit counts for v1)
    for name in ("a", "b", "c"):
        _shard(root, f"{name}-sig", 1000, age_s=5 * HOUR)
    _file(root, "partitions/v1-sig-b4/00000.rows", 3000, 5 * HOUR)
    _file(root, "partitions/v1-sig-b5/00000.rows", 3000, 5 * HOUR)
    _file(root, "partitions/v2-sig-b4/00000.rows", 3000, 2 * HOUR)
    _version(root, "v1-sig", "docs@v1", ["a-sig", "b-sig"], age_s=3 * HOUR)
    _version(root, "v2-sig", "docs@v2", ["a-sig", "c-sig"], age_s=1 * HOUR)
    release_held_versions()  # the plans that used them are over
    return root


def test_a_shard_s_table_keys_and_run_are_one_entry_and_a_version_s_partitions_another() -> None:
    assert {entry_id(Path(f"shards/m-s{x}")) for x in (".arrow", ".keys.npy", ".run")} == {"shards/m-s"}
    assert entry_id(Path("partitions/k-b5/00003.rows")) == entry_id(Path("partitions/k-b6/partitions")) == "partitions/k"
    assert entry_id(Path("partitions/.k-b5-x1y2/00003.rows")) == "partitions/.k-b5-x1y2"  # being written
    assert entry_id(Path("verified/ab/abcdef")) == "verified/ab/abcdef"


def test_contents_list_versions_most_recent_first_with_their_sizes(cache: Path) -> None:
    contents = cache_contents()
    assert [v.label for v in contents.versions] == ["docs@v2", "docs@v1"]
    v1 = contents.versions[1]
    record = (cache / "used" / "v1-sig.json").stat().st_size
    assert v1.size == 1000 + 1000 + 6000 + record  # shards a and b, both partition folders, the record
    assert contents.by_kind()["shards"] == (3, 3000)


def test_max_size_drops_the_least_recently_used_version_but_keeps_the_shard_it_shares(cache: Path) -> None:
    v2 = next(v for v in cache_contents().versions if v.label == "docs@v2")
    v1_record = (cache / "used" / "v1-sig.json").stat().st_size
    result = prune(max_size=v2.size, keep_since=time.time())
    assert result.kept_versions == ("docs@v2",) and result.removed_versions == ("docs@v1",)
    shards = sorted(p.name for p in (cache / "shards").iterdir())
    assert shards == sorted(f"{n}-sig{x}" for n in "ac" for x in (".arrow", ".keys.npy", ".run"))  # a stays: v2 needs it
    assert sorted(p.name for p in (cache / "partitions").iterdir()) == ["v2-sig-b4"]
    assert [v.label for v in cache_contents().versions] == ["docs@v2"]
    assert result.removed_bytes == 1000 + 6000 + v1_record  # shard b, v1's two partition folders, its record
    assert result.kept_bytes == v2.size


def test_dry_run_removes_nothing_and_says_the_same(cache: Path) -> None:
    before = sorted(str(p) for p in cache.rglob("*"))
    v2 = next(v for v in cache_contents().versions if v.label == "docs@v2")
    dry = prune(max_size=v2.size, keep_since=time.time(), dry_run=True)
    assert sorted(str(p) for p in cache.rglob("*")) == before
    real = prune(max_size=v2.size, keep_since=time.time())
    assert (dry.removed_entries, dry.removed_bytes, dry.removed_versions) == (real.removed_entries, real.removed_bytes, real.removed_versions)


def test_older_than_drops_what_no_plan_used_since(cache: Path) -> None:
    _file(cache, "stash/old-from-x", 500, age_s=48 * HOUR)
    _file(cache, "stash/new-from-y", 500, age_s=0.5 * HOUR)
    result = prune(older_than=2 * HOUR, keep_since=time.time() - 60)
    assert result.removed_versions == ("docs@v1",) and result.kept_versions == ("docs@v2",)
    assert sorted(p.name for p in (cache / "stash").iterdir()) == ["new-from-y"]


def test_what_was_used_recently_stays_whatever_the_size(cache: Path) -> None:
    result = prune(max_size=1, keep_since=time.time() - 1.5 * HOUR)
    assert result.kept_versions == ("docs@v2",) and result.over_budget
    assert (cache / "used" / "v2-sig.json").exists() and not (cache / "used" / "v1-sig.json").exists()


def test_leftovers_of_killed_runs_go_once_they_are_not_recent(cache: Path) -> None:
    _file(cache, "partitions/.v3-sig-b4-abc/00000.rows", 100, age_s=HOUR)
    os.utime(cache / "partitions" / ".v3-sig-b4-abc", (time.time() - HOUR, time.time() - HOUR))  # last written an hour ago
    _file(cache, "shards/.x-sig.arrow.123.tmp", 100, age_s=HOUR)
    _file(cache, "tmp/spill-1", 100, age_s=HOUR)
    _file(cache, "shards/.y-sig.arrow.456.tmp", 100, age_s=0)  # being written now
    prune(keep_since=time.time() - 600)  # no size, no age: only leftovers
    assert not (cache / "partitions" / ".v3-sig-b4-abc").exists() and not (cache / "tmp" / "spill-1").exists()
    assert not (cache / "shards" / ".x-sig.arrow.123.tmp").exists() and (cache / "shards" / ".y-sig.arrow.456.tmp").exists()
    assert [v.label for v in cache_contents().versions] == ["docs@v2", "docs@v1"]


def test_only_what_vectorops_writes_is_ever_removed(cache: Path) -> None:
    """The agent's checkout is not a cache of ours, and a cache folder set to ~ by mistake loses nothing."""
    _file(cache, "agent/k/repo/.git/HEAD", 10, age_s=100 * HOUR)
    _file(cache, "Documents/thesis.tex", 10, age_s=100 * HOUR)
    _file(cache, "notes.txt", 10, age_s=100 * HOUR)
    result = prune(max_size=0, older_than=1.0, keep_since=time.time())
    assert result.removed_versions == ("docs@v2", "docs@v1")
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) == [
        "Documents/thesis.tex", "agent/k/repo/.git/HEAD", "notes.txt"]


def test_a_record_that_cannot_be_read_is_pruned_by_its_age(cache: Path) -> None:
    _file(cache, "used/torn.json", 5, age_s=10 * HOUR)
    result = prune(older_than=2.5 * HOUR, keep_since=time.time())
    assert not (cache / "used" / "torn.json").exists() and result.removed_versions == ("docs@v1",)


def test_a_version_known_by_its_commit_is_named_by_a_short_sha() -> None:
    from reconciler.engine.cache_pruning import version_label

    assert version_label("docs", "v2") == "docs@v2"
    assert version_label("docs", "4488bd4275cb7fb5fcb2d9401c4ebb5e73e020c2") == "docs@4488bd4275cb"


def test_a_version_once_named_by_its_tag_keeps_that_name_when_used_by_its_commit(cache: Path) -> None:
    """A plan names the version it is asked for (docs@v2); status, rollback and saved plans know the
    deployed one by its commit. `cache info` keeps saying docs@v2, and a new tag still renames it."""
    record_version_use("k-sig", "docs@v2", ["shards/a-sig"])
    record_version_use("k-sig", "docs@4488bd4275cb", ["shards/a-sig"])
    release_held_versions()
    assert [v.label for v in cache_contents().versions if v.key == "k-sig"] == ["docs@v2"]
    record_version_use("k-sig", "docs@release-7", ["shards/a-sig"])
    release_held_versions()
    assert [v.label for v in cache_contents().versions if v.key == "k-sig"] == ["docs@release-7"]


def test_a_version_a_running_plan_holds_is_kept_however_long_ago_it_began(cache: Path) -> None:
    """A cold plan of 100M records outlasts any --keep-recent window: a version another process's plan
    holds (``hold_version``, a shared lock) is kept and named as in use; once that process is gone it
    is dropped by the usual rule. A dry run takes nothing and makes no version look used."""
    script = (
        "from reconciler.engine.cache_pruning import hold_version\n"
        "hold_version('v1-sig')\n"  # what record_version_use does once it has noted the use
        "print('held', flush=True)\n"
        "input()\n"
    )
    env = {**os.environ, "VECTOROPS_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)}
    old = time.time() - 3 * HOUR
    plan = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert plan.stdout is not None and plan.stdout.readline().strip() == "held"
        os.utime(cache / "used" / "v1-sig.json", (old, old))  # its plan began three hours ago
        dry = prune(max_size=0, keep_since=time.time(), dry_run=True)
        assert dry.in_use == ("docs@v1",) and "docs@v1" in dry.kept_versions and dry.removed_versions == ("docs@v2",)
        result = prune(max_size=0, keep_since=time.time())
        assert result.in_use == ("docs@v1",) and result.over_budget
        assert "kept because a running plan reads them: docs@v1" in render_prune(result.to_json())
        assert (cache / "shards" / "b-sig.arrow").exists() and (cache / "used" / "v1-sig.json").exists()
        assert not (cache / "shards" / "c-sig.arrow").exists()  # docs@v2, held by nobody, went
    finally:
        assert plan.stdin is not None
        plan.stdin.close()
        plan.wait(timeout=30)
    assert [v.label for v in cache_contents().versions] == ["docs@v1"]  # the lock file did not make it look used
    result = prune(max_size=0, keep_since=time.time())
    assert result.removed_versions == ("docs@v1",) and not result.in_use
    assert not (cache / "shards" / "b-sig.arrow").exists() and not any((cache / "used").iterdir())
