"""The `sample` refresh (SPEC §10, issue 19): a count check plus a random sample of expected ids
fetched and compared by content hash, with a one-sided 95% upper bound on the drifted share.

Drift is made by hand behind vectorops' back: through lancedb directly, and through the real
pinecone SDK against the local server (whose request counters show the cost: no list request,
a fixed number of fetches whatever the index size).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import lancedb
import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.manifests import environment, lancedb_destination, pinecone_destination, write_manifest
from fixtures.records import make_records
from fixtures.repo import DatasetRepo
from reconciler.engine.sampling import clopper_pearson_upper

DIM = 8
KEY_ENV = "VECTOROPS_TEST_PINECONE_KEY"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> DatasetRepo:
    r = DatasetRepo.create(tmp_path_factory.mktemp("sample") / "repo")
    r.commit_version(make_records(2000, DIM, seed=1), tag="small")
    r.commit_version(make_records(6000, DIM, seed=2), tag="large")
    return r


class Project:
    def __init__(self, folder: Path, repo: DatasetRepo, destination: dict[str, Any], **policy: Any) -> None:
        self.folder, self.repo, self.destination = folder, repo, destination
        self.manifest = folder / "vectorops.yaml"
        self.pin("small", **policy)

    def pin(self, version: str, **policy: Any) -> None:
        extra = {"policy": policy} if policy else {}
        write_manifest(self.manifest, {"prod": environment(version, self.destination, **extra)}, repo=self.repo.root, dimension=DIM)

    def ok(self, *args: str, code: int = 0) -> Result:
        result = run_vectorops("-m", str(self.manifest), "--no-color", *args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    def plan(self, *args: str, code: int = 0) -> dict[str, Any]:
        return self.ok("plan", "--json", *args, code=code).json["environments"][0]


# -- LanceDB ------------------------------------------------------------------------------------


@pytest.fixture
def lance(tmp_path: Path, repo: DatasetRepo) -> Project:
    project = Project(tmp_path, repo, lancedb_destination("docs"))
    project.ok("apply", "--auto-approve")
    return project


def test_sample_finds_hand_made_drift_on_lancedb_and_apply_repairs_it(lance: Project) -> None:
    table = lancedb.connect(str(lance.folder / "db")).open_table("docs")
    table.delete("id IN ('doc-3', 'doc-700', 'doc-1999')")
    table.update(where="id = 'doc-42'", values={"vector": [0.5] * DIM})
    table.update(where="id = 'doc-43'", values={"metadata": json.dumps({"title": "tampered"})})

    # a sample as large as the index is a census: every drifted record is seen, the bound is exact
    env = lance.plan("--refresh", "sample", "--sample-size", "2000", "--detailed-exitcode", code=2)
    drift = env["drift"]
    assert drift["level"] == "sample" and drift["sampled"] == 2000
    assert (drift["expected_count"], drift["actual_count"]) == (2000, 1997)
    assert (drift["missing"], drift["modified"], drift["unexpected"]) == (3, 2, 0)
    assert drift["sample_drifted"] == 5 and drift["drifted_fraction_upper_bound"] == pytest.approx(5 / 2000)
    assert "Clopper-Pearson" in drift["bound"]
    assert env["changes"] == {"add": 3, "update": 2, "delete": 0}
    assert sorted(env["samples"]["missing"]) == ["doc-1999", "doc-3", "doc-700"]
    assert sorted(env["samples"]["modified"]) == ["doc-42", "doc-43"]

    human = lance.ok("plan", "--refresh", "sample", "--sample-size", "2000").output
    assert "sampled 2,000" in human and "95%" in human

    lance.ok("apply", "--auto-approve", "--refresh", "sample", "--sample-size", "2000")
    clean = lance.plan("--refresh", "full")
    assert clean["changes"] == {"add": 0, "update": 0, "delete": 0}
    assert (clean["drift"]["missing"], clean["drift"]["modified"], clean["drift"]["unexpected"]) == (0, 0, 0)


def test_a_clean_sample_reports_the_rule_of_three_bound(lance: Project) -> None:
    drift = lance.plan("--refresh", "sample", "--sample-size", "500")["drift"]
    assert drift["sampled"] == 500 and drift["sample_drifted"] == 0
    assert (drift["missing"], drift["modified"]) == (0, 0)
    assert drift["drifted_fraction_upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 500))  # ≈ 3/500
    assert drift["drifted_fraction_upper_bound"] == pytest.approx(3 / 500, rel=0.01)


def test_policy_refresh_sample_in_the_manifest_is_the_default_level(tmp_path: Path, repo: DatasetRepo) -> None:
    project = Project(tmp_path, repo, lancedb_destination("docs"), refresh="sample")
    project.ok("apply", "--auto-approve")
    assert project.plan()["drift"]["level"] == "sample"
    assert project.plan("--refresh", "ids")["drift"]["level"] == "ids"  # the flag wins
    drift = project.ok("drift", "--json").json["environments"][0]["drift"]
    assert drift["level"] == "sample" and drift["sampled"] == 2000


def test_policy_refresh_rejects_an_unknown_level(tmp_path: Path, repo: DatasetRepo) -> None:
    project = Project(tmp_path, repo, lancedb_destination("docs"))
    write_manifest(project.manifest, {"prod": environment("small", lancedb_destination("docs"), policy={"refresh": "sometimes"})},
                   repo=repo.root, dimension=DIM)
    result = run_vectorops("-m", str(project.manifest), "plan")
    assert result.code == 1 and "refresh" in result.stderr and "vectorops.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_clopper_pearson_upper_bound() -> None:
    assert clopper_pearson_upper(0, 10_000) == pytest.approx(2.9952e-4, rel=1e-3)
    assert clopper_pearson_upper(1, 10) == pytest.approx(0.3942, abs=1e-4)  # (1-p)^10 + 10p(1-p)^9 = 0.05
    assert clopper_pearson_upper(10, 10) == 1.0
    # the bound grows with what was found and shrinks with the sample
    assert clopper_pearson_upper(5, 10_000) < clopper_pearson_upper(6, 10_000) < clopper_pearson_upper(6, 5_000)


# -- Pinecone (the real SDK against the local server) ---------------------------------------------


@pytest.fixture
def pine(tmp_path: Path, repo: DatasetRepo, pinecone_server: Any, monkeypatch: pytest.MonkeyPatch) -> Project:
    pytest.importorskip("pinecone")
    from tests.pinecone_server.fixtures import API_KEY

    monkeypatch.setenv(KEY_ENV, API_KEY)
    project = Project(tmp_path, repo, pinecone_destination("docs", KEY_ENV))
    project.server = pinecone_server  # type: ignore[attr-defined]
    return project


def _requests(server: Any, project: Project, *args: str) -> tuple[dict[str, Any], dict[str, int]]:
    before = server.request_counts
    env = project.plan(*args)
    after = server.request_counts
    return env, {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


def test_sample_on_pinecone_finds_tampering_in_a_fixed_number_of_requests(pine: Project) -> None:
    server = pine.server  # type: ignore[attr-defined]
    pine.ok("apply", "--auto-approve")
    from pinecone import Pinecone

    from tests.pinecone_server.fixtures import API_KEY

    index = Pinecone(api_key=API_KEY).Index(host=server.index("docs").host)
    index.delete(ids=["doc-10", "doc-11"])
    index.upsert(vectors=[{"id": "doc-12", "values": [0.25] * DIM, "metadata": {"title": "tampered"}}])

    env = pine.plan("--refresh", "sample", "--sample-size", "2000", "--detailed-exitcode", code=2)
    assert (env["drift"]["missing"], env["drift"]["modified"], env["drift"]["sampled"]) == (2, 1, 2000)
    assert env["changes"] == {"add": 2, "update": 1, "delete": 0}
    pine.ok("apply", "--auto-approve", "--refresh", "sample", "--sample-size", "2000")
    assert pine.plan("--refresh", "full")["changes"] == {"add": 0, "update": 0, "delete": 0}

    # the cost: no list request, and the same number of fetches at 2,000 and at 6,000 records
    _, stats_cost = _requests(server, pine, "--refresh", "stats")
    _, small = _requests(server, pine, "--refresh", "sample", "--sample-size", "1500")
    pine.pin("large")
    pine.ok("apply", "--auto-approve")
    _, stats_cost_large = _requests(server, pine, "--refresh", "stats")
    _, large = _requests(server, pine, "--refresh", "sample", "--sample-size", "1500")
    assert small.get("list", 0) - stats_cost.get("list", 0) == 0
    assert large.get("list", 0) - stats_cost_large.get("list", 0) == 0
    sample_fetches = small.get("fetch", 0) - stats_cost.get("fetch", 0)
    assert sample_fetches == 2  # 1,500 ids in fetches of at most 1,000
    assert large.get("fetch", 0) - stats_cost_large.get("fetch", 0) == sample_fetches


def test_an_ids_refresh_that_would_need_many_list_requests_suggests_sample(pine: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.engine.plan as plan_module

    pine.ok("apply", "--auto-approve")
    monkeypatch.setattr(plan_module, "LIST_REQUESTS_HINT", 10)  # 2,000 ids are 20 pages of 100
    env = pine.plan("--refresh", "ids")
    assert any("~20 list requests of 100 ids" in w and "--refresh sample" in w for w in env["warnings"])
    assert not any("list requests" in w for w in pine.plan("--refresh", "sample")["warnings"])
