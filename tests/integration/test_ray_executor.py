"""The Ray executor end to end through the CLI (SPEC §10, issue 20), on a real two-node Ray cluster
started on this machine (`ray start --head` and a second `ray start`), found through RAY_ADDRESS or
the manifest's `executor:`.

The promise checked: `--executor ray` makes the same plan as the local executor, bit for bit (the
plan file's JSON and its id lists), the same per-shard hash tables, and applies the same records to
LanceDB. The only fields allowed to differ are named where they are dropped.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lancedb
import pyarrow.parquet as pq
import pytest
from integration.test_shards import DIM, Project, _expected

from fixtures.ray_cluster import ENV, RayCluster
from fixtures.records import make_records
from fixtures.repo import DatasetRepo

pytest.importorskip("ray")

SHARDS, PER_SHARD = 20, 200


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)  # the CLI runs in this process: it joins the cluster with the same settings
    cluster = RayCluster.start(nodes=2)
    try:
        yield cluster
    finally:
        import ray

        if ray.is_initialized():  # the CLI ran in this process and joined the cluster
            ray.shutdown()
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def ray_repo(tmp_path_factory: pytest.TempPathFactory) -> DatasetRepo:
    """v1: 20 shards × 200. v2: shard 3 edits vectors and metadata, shard 11 loses a record, a new shard adds 5."""
    repo = DatasetRepo.create(tmp_path_factory.mktemp("ray") / "repo", path="data/docs")
    shards = [make_records(PER_SHARD, DIM, seed=300 + s, id_prefix="doc-", start=s * PER_SHARD) for s in range(SHARDS)]
    repo.commit_shards(shards, tag="v1")
    v2 = [list(s) for s in shards]
    v2[3] = [dict(r) for r in v2[3]]
    for r in v2[3][:4]:
        r["vector"] = [v + 0.5 for v in r["vector"]]
    for r in v2[3][4:7]:
        r["title"] = r["title"] + " (v2)"
    del v2[11][17]
    v2.append(make_records(5, DIM, seed=77, id_prefix="doc-", start=50_000))
    repo.commit_shards(v2, tag="v2")
    return repo


def _project(folder: Path, repo: DatasetRepo, executor: str | None = None) -> Project:
    folder.mkdir(parents=True)
    project = Project(folder, repo)
    if executor is not None:
        with project.manifest.open("a") as f:
            f.write(executor)
    return project


def _pin(project: Project, version: str, executor: str | None = None) -> None:
    project.pin(version)
    if executor is not None:
        with project.manifest.open("a") as f:
            f.write(executor)


def _plan_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A saved plan's JSON and id lists, less what legitimately differs between two runs/executors:
    plan_id and created_at (a new plan each time), manifest_path (two project folders), the state's
    lineage (a random id each destination got at its first apply: two destinations here), and
    shards.workers (how many processes or Ray workers hashed: 2 local processes vs the cluster's CPUs)."""
    with zipfile.ZipFile(path) as zf:
        body = json.loads(zf.read("plan.json"))
        ids = {name: pq.read_table(io.BytesIO(zf.read(name))).to_pydict() for name in zf.namelist() if name.startswith("ids/")}
    for key in ("plan_id", "created_at", "manifest_path"):
        body.pop(key)
    for private in body["private"].values():
        private.pop("lineage")
    for env in body["environments"]:
        if env.get("shards"):
            env["shards"].pop("workers")
    return body, ids


def _tables(cache: Path) -> dict[str, Any]:
    from reconciler.engine.index_cache import read_table_file

    return {p.name: read_table_file(p) for p in sorted((cache / "shards").glob("*.arrow"))}


def test_ray_plans_and_applies_exactly_what_local_does(ray_cluster: RayCluster, ray_repo: DatasetRepo, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Same pair of versions, planned and applied by the local executor (2 processes) and by Ray
    (RAY_ADDRESS + --executor ray): same plan files, same shard tables, same LanceDB content; then
    drift made by hand (two records deleted) is planned alike too, with both versions left on disk
    as their shard tables (as versions of 500k records and more are: the local executor diffs them
    by partitions on disk, Ray by buckets over the shard files)."""
    runs = {
        "local": (_project(tmp_path / "local", ray_repo), ["--executor", "local", "--jobs", "2"],
                  {"VECTOROPS_CACHE_DIR": str(tmp_path / "cache-local"), "VECTOROPS_PARALLEL_MIN_BYTES": "0"}),
        "ray": (_project(tmp_path / "ray", ray_repo), ["--executor", "ray"],
                {"VECTOROPS_CACHE_DIR": str(tmp_path / "cache-ray"), "RAY_ADDRESS": ray_cluster.address}),
    }
    plans: dict[str, Any] = {}
    for step, version in (("v1", "v1"), ("v2", "v2"), ("drift", "v2")):
        for name, (project, flags, env) in runs.items():
            _pin(project, version)
            if step == "drift":  # the same hand edits on both destinations; versions kept on disk
                monkeypatch.setattr("reconciler.engine.shards.ON_DISK_MIN_RECORDS", 1)
                table = lancedb.connect(str(project.folder / "db")).open_table("docs")
                table.delete("id IN ('doc-5', 'doc-2100')")
            saved = project.folder / f"{step}.plan"
            project.ok("plan", *flags, "-o", str(saved), env=env)
            plans[name] = _plan_file(saved)
            result = project.ok("apply", *flags, str(saved), env=env)
            assert "Traceback" not in result.output
        assert plans["ray"] == plans["local"], step
        local, ray_ = runs["local"][0], runs["ray"][0]
        assert ray_.content() == local.content() == _expected(ray_repo.versions[0 if version == "v1" else 1].records or []), step
    body = plans["ray"][0]["environments"][0]
    assert body["changes"] == {"add": 2, "update": 0, "delete": 0} and body["drift"]["missing"] == 2
    tables = {name: _tables(tmp_path / f"cache-{name}") for name in runs}
    assert list(tables["ray"]) == list(tables["local"]) and len(tables["ray"]) == SHARDS + 3  # v2: shards 3, 11 and the new one
    for name, table in tables["local"].items():
        assert table.equals(tables["ray"][name]), name


def test_the_manifest_executor_and_a_second_version(ray_cluster: RayCluster, ray_repo: DatasetRepo, tmp_path: Path) -> None:
    """`executor: {type: ray, address: ...}` in the manifest, no flag: plan, apply, then v2; the plan
    shows the Ray workers that hashed, and v2 decodes only the shards it changed."""
    executor = f"executor:\n  type: ray\n  address: '{ray_cluster.address}'\n"
    project = _project(tmp_path / "p", ray_repo, executor)
    env = {"VECTOROPS_CACHE_DIR": str(tmp_path / "cache")}
    result = project.ok("plan", "--json", env=env)
    assert "WARNING" not in result.stderr and "INFO" not in result.stderr, result.stderr  # Ray's own log lines stay out
    first = result.json["environments"][0]
    assert first["shards"]["decoded"] == SHARDS and first["shards"]["workers"] == 2  # the two nodes' CPUs
    project.ok("apply", "--auto-approve", env=env)
    assert project.content() == _expected(ray_repo.versions[0].records or [])
    _pin(project, "v2", executor)
    plan = project.ok("plan", "--json", env=env).json["environments"][0]
    assert plan["shards"]["decoded"] == 3 and plan["changes"] == {"add": 5, "update": 7, "delete": 1}
    assert plan["update_detail"] == {"vector": 4, "metadata": 3}
    project.ok("apply", "--auto-approve", env=env)
    assert project.content() == _expected(ray_repo.versions[1].records or [])


def test_a_bad_record_in_a_ray_task_is_the_same_clear_message(ray_cluster: RayCluster, tmp_path: Path) -> None:
    repo = DatasetRepo.create(tmp_path / "bad", path="data/docs")
    shards = [make_records(20, DIM, seed=5 + s, id_prefix="doc-", start=s * 20) for s in range(3)]
    shards[1][4]["vector"] = [float("nan")] * DIM
    repo.commit_shards(shards, tag="v1")
    project = _project(tmp_path / "p", repo)
    result = project.run("plan", "--executor", "ray", env={"RAY_ADDRESS": ray_cluster.address})
    assert result.code == 1, result.output
    assert "file data/docs/part-0001.parquet: record 'doc-24' has NaN" in result.stderr
    assert "Traceback" not in result.output and "RayTaskError" not in result.output


def test_an_unreachable_cluster_names_its_address(ray_repo: DatasetRepo, tmp_path: Path) -> None:
    project = _project(tmp_path / "p", ray_repo)
    with socketserver_port() as port:  # a port nothing listens on
        result = project.run("plan", "--executor", "ray", env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert result.code == 1, result.output
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in result.stderr
    assert "RAY_ADDRESS" in result.stderr and "Traceback" not in result.output
    assert not (project.folder / "db").exists()


class socketserver_port:
    """A free port, closed again: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def test_executor_ray_without_ray_installed_names_the_extra(ray_repo: DatasetRepo, tmp_path: Path) -> None:
    """In an interpreter where `import ray` fails (``sys.modules['ray'] = None``, as
    tests/integration/test_missing_extras.py does): one line naming vectorops[ray], exit 1."""
    project = _project(tmp_path / "p", ray_repo)
    code = "import sys\nsys.modules['ray'] = None\nfrom reconciler.cli import main\nmain(sys.argv[1:])\n"
    done = subprocess.run([sys.executable, "-c", code, "-m", str(project.manifest), "--no-color", "plan", "--executor", "ray"],
                          capture_output=True, text=True, env={**os.environ, "VECTOROPS_CACHE_DIR": str(tmp_path / "c")}, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "vectorops[ray]" in out and "Traceback" not in out, out
