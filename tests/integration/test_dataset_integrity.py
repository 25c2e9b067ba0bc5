"""Only bytes whose md5 is the one the `.dvc` file pins are ever deployed (issue 15 item 1).

DVC names each stored object by the md5 of its content but does not check it when reading, so
these tests damage the objects behind a pinned version the ways they get damaged (another valid
Parquet file copied over it, in the local cache, the remote or both; a truncated copy; one file of
a tracked directory) and run the CLI: every apply must refuse with one message that names the
corrupt object and how to repair it, write nothing to the destination, and leave no id->hash table
in the hash cache under the pinned digest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fixtures import DatasetRepo, make_records
from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest

DIM = 16


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return run_vectorops(*args, env={"NO_COLOR": "1", **(env or {})})


def object_path(root: Path, digest: str) -> Path:
    """Where DVC 3 keeps an object: the cache (``.dvc/cache``) or a local remote share the layout."""
    return root / "files" / "md5" / digest[:2] / digest[2:]


def overwrite(target: Path, data: bytes) -> None:
    """Replace an object's bytes in place (DVC makes objects read-only)."""
    target.chmod(0o644)
    target.write_bytes(data)


def project(tmp_path: Path, repo: DatasetRepo, version: str) -> tuple[Path, Path]:
    db = tmp_path / "db"
    manifest = write_manifest(
        tmp_path / "project" / "vectorops.yaml",
        {"staging": environment(version, lancedb_destination("docs", uri=str(db)))},
        repo=repo.root, dimension=DIM, metric=None,
    )
    return manifest, db


def assert_refused_as_corrupt(result: Result, place: str) -> str:
    text = result.output
    assert result.code == 1, text
    assert "Traceback" not in text and "vectorops bug" not in text, text
    assert f"the {place} object" in text and "is corrupt" in text, text
    assert "pins md5" in text, text
    assert ("dvc fetch --force" in text) if place == "local DVC cache" else ("dvc push" in text), text
    assert "not a readable Parquet file" not in text, text
    return text


def assert_nothing_written(db: Path) -> None:
    tables = list(db.glob("*.lance")) if db.exists() else []
    assert not tables, f"a table was written: {tables}"
    index = Path(os.environ["VECTOROPS_CACHE_DIR"]) / "index"
    cached = list(index.iterdir()) if index.exists() else []
    assert not cached, f"the hash cache was filled: {cached}"


@pytest.mark.parametrize("swapped", ["cache", "cache and remote"])
def test_a_swapped_cache_object_is_refused_before_anything_is_written(tmp_path: Path, dataset_repo_copy: DatasetRepo, swapped: str) -> None:
    repo = dataset_repo_copy
    v1, v2 = repo.versions[0].digest, repo.versions[1].digest
    good_v1 = object_path(repo.root / ".dvc" / "cache", v1).read_bytes()  # a valid Parquet file of the same shape
    overwrite(object_path(repo.root / ".dvc" / "cache", v2), good_v1)
    if swapped == "cache and remote":
        overwrite(object_path(repo.remote, v2), good_v1)
    manifest, db = project(tmp_path, repo, "v2")

    text = assert_refused_as_corrupt(run("-m", str(manifest), "apply", "--auto-approve"), "local DVC cache")
    assert v2 in text and "data/docs.parquet.dvc" in text, text
    assert_nothing_written(db)
    assert_refused_as_corrupt(run("-m", str(manifest), "plan"), "local DVC cache")


def test_a_swapped_remote_object_is_refused_when_read_from_the_remote(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> None:
    repo = dataset_repo_copy
    v1, v2 = repo.versions[0].digest, repo.versions[1].digest
    object_path(repo.root / ".dvc" / "cache", v2).unlink()  # not in the cache: DVC reads the remote
    overwrite(object_path(repo.remote, v2), object_path(repo.remote, v1).read_bytes())
    manifest, db = project(tmp_path, repo, "v2")

    assert_refused_as_corrupt(run("-m", str(manifest), "apply", "--auto-approve"), "DVC remote")
    assert_nothing_written(db)


def test_a_truncated_object_is_called_corrupt_not_a_bad_parquet_file(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> None:
    repo = dataset_repo_copy
    target = object_path(repo.root / ".dvc" / "cache", repo.versions[1].digest)
    overwrite(target, target.read_bytes()[: target.stat().st_size // 2])
    manifest, db = project(tmp_path, repo, "v2")

    text = assert_refused_as_corrupt(run("-m", str(manifest), "apply", "--auto-approve"), "local DVC cache")
    assert "bytes" in text, text
    assert_nothing_written(db)


def test_an_object_swapped_after_the_plan_is_refused_by_the_apply(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> None:
    """The plan verified v2 (and cached its id->hash table); the object changes before the apply,
    which re-reads the records it writes (no stash kept): the apply checks the object again."""
    repo = dataset_repo_copy
    v1, v2 = repo.versions[0].digest, repo.versions[1].digest
    manifest, db = project(tmp_path, repo, "v2")
    planfile = tmp_path / "v2.plan"
    planned = run("-m", str(manifest), "plan", "-o", str(planfile), env={"VECTOROPS_STASH_MAX_BYTES": "0"})
    assert planned.code == 0, planned.output

    overwrite(object_path(repo.root / ".dvc" / "cache", v2), object_path(repo.root / ".dvc" / "cache", v1).read_bytes())
    applied = run("-m", str(manifest), "apply", str(planfile), env={"VECTOROPS_STASH_MAX_BYTES": "0"})
    assert_refused_as_corrupt(applied, "local DVC cache")
    tables = list(db.glob("*.lance")) if db.exists() else []
    if tables:  # the table may be created empty before records are written; no record of v1 may be in it
        import lancedb

        assert lancedb.connect(str(db)).open_table("docs").count_rows() == 0


def test_a_verified_object_is_applied_and_the_apply_after_a_plan_does_not_fail(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> None:
    manifest, _db = project(tmp_path, dataset_repo_copy, "v2")
    planfile = tmp_path / "v2.plan"
    assert run("-m", str(manifest), "plan", "-o", str(planfile)).code == 0
    applied = run("-m", str(manifest), "apply", str(planfile))
    assert applied.code == 0, applied.output
    markers = list((Path(os.environ["VECTOROPS_CACHE_DIR"]) / "verified").rglob("*"))
    assert any(m.is_file() for m in markers), "the verified object is remembered, so the apply did not hash it again"


def test_one_swapped_file_of_a_tracked_directory_is_refused(tmp_path: Path, make_dataset_repo: object) -> None:
    repo: DatasetRepo = make_dataset_repo(path="data/shards")  # type: ignore[operator]
    repo.commit_shards([make_records(20, DIM, 1), make_records(20, DIM, 2, start=20)], tag="v1")
    cache = repo.root / ".dvc" / "cache"
    parts = sorted(p for p in (cache / "files" / "md5").rglob("*") if p.is_file() and not p.name.endswith(".dir"))
    assert len(parts) == 2
    overwrite(parts[0], parts[1].read_bytes())
    db = tmp_path / "db"
    manifest = write_manifest(
        tmp_path / "project" / "vectorops.yaml",
        {"staging": environment("v1", lancedb_destination("docs", uri=str(db)))},
        repo=repo.root, dimension=DIM, metric=None, dataset_keys={"path": "data/shards"},
    )
    text = assert_refused_as_corrupt(run("-m", str(manifest), "apply", "--auto-approve"), "local DVC cache")
    assert "directory listing" in text, text
    assert_nothing_written(db)


def test_a_swapped_directory_listing_is_refused(tmp_path: Path, make_dataset_repo: object) -> None:
    repo: DatasetRepo = make_dataset_repo(path="data/shards")  # type: ignore[operator]
    repo.commit_shards([make_records(20, DIM, 1), make_records(20, DIM, 2, start=20)], tag="v1")
    [listing] = (repo.root / ".dvc" / "cache" / "files" / "md5").rglob("*.dir")
    entries = listing.read_text()
    overwrite(listing, entries.replace("part-0001", "part-0009").encode())
    shutil.rmtree(repo.remote / "files" / "md5" / listing.parent.name, ignore_errors=True)
    db = tmp_path / "db"
    manifest = write_manifest(
        tmp_path / "project" / "vectorops.yaml",
        {"staging": environment("v1", lancedb_destination("docs", uri=str(db)))},
        repo=repo.root, dimension=DIM, metric=None, dataset_keys={"path": "data/shards"},
    )
    text = assert_refused_as_corrupt(run("-m", str(manifest), "apply", "--auto-approve"), "local DVC cache")
    assert "listing" in text, text
    assert_nothing_written(db)


def test_a_shard_verified_before_is_not_read_again_for_its_md5_until_it_changes(
    tmp_path: Path, make_dataset_repo: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard hashed again (here: its cached table removed) is not md5-ed a second time while it is
    the same file, size and times this machine verified; once its bytes change it is, and refused."""
    from reconciler.dataset import integrity

    repo: DatasetRepo = make_dataset_repo(path="data/shards")  # type: ignore[operator]
    repo.commit_shards([make_records(20, DIM, 1), make_records(20, DIM, 2, start=20)], tag="v1")
    manifest = write_manifest(
        tmp_path / "project" / "vectorops.yaml",
        {"staging": environment("v1", lancedb_destination("docs", uri=str(tmp_path / "db")))},
        repo=repo.root, dimension=DIM, metric=None, dataset_keys={"path": "data/shards"},
    )
    hashed: list[str] = []

    class Counted(integrity.FileHasher):
        def __init__(self, path: str) -> None:
            hashed.append(path)
            super().__init__(path)

    monkeypatch.setattr(integrity, "FileHasher", Counted)
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"])
    first = run("-m", str(manifest), "plan", "--json", "--jobs", "1")
    assert first.code == 0 and len(hashed) == 2, first.output  # both shards decoded and verified
    shutil.rmtree(cache / "shards")
    shutil.rmtree(cache / "index", ignore_errors=True)
    hashed.clear()
    again = run("-m", str(manifest), "plan", "--json", "--jobs", "1")
    assert again.code == 0 and hashed == [], again.output  # decoded again, not md5-ed again
    assert again.json["environments"][0]["shards"]["decoded"] == 2
    parts = sorted(p for p in (repo.root / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file() and not p.name.endswith(".dir"))
    overwrite(parts[0], parts[1].read_bytes())
    shutil.rmtree(cache / "shards")
    shutil.rmtree(cache / "index", ignore_errors=True)
    assert_refused_as_corrupt(run("-m", str(manifest), "plan", "--jobs", "1"), "local DVC cache")
