"""End-to-end through the `vectorops` CLI against Pinecone: the real SDK over HTTP to the local server (issue 4).

The CLI runs in-process (``main(argv)``, so exit codes are the console script's); what Pinecone
holds is read back from the local server's store, and changes made "behind vectorops' back" go
through the real SDK. The index is created by the first apply (``ensure``), as a user's would be.

The dataset repo is the shared v1/v2 repo plus three tags built once per module: ``big`` (5,000
records), ``nested`` (one record with a nested-object metadata field) and ``unicode`` (one
non-ASCII id).
"""

from __future__ import annotations

import io
import json
import shlex
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pinecone")


from fixtures.cli import Result, run_vectorops  # noqa: E402
from fixtures.manifests import environment, pinecone_destination, write_manifest  # noqa: E402
from fixtures.records import KnownVersions, make_records  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from tests.pinecone_server import Faults, PineconeServer  # noqa: E402
from tests.pinecone_server.fixtures import API_KEY  # noqa: E402

INDEX = "docs-prod"
KEY_ENV = "VECTOROPS_TEST_PINECONE_KEY"  # the manifest names this variable, never the key
NESTED_ID = "doc-3"
UNICODE_ID = "doc-é5"




@pytest.fixture(scope="module")
def big_records() -> list[dict[str, Any]]:
    return make_records(5000, 16, seed=5)


@pytest.fixture(scope="module")
def pc_repo(tmp_path_factory: pytest.TempPathFactory, dataset_repo: DatasetRepo, big_records: list[dict[str, Any]]) -> DatasetRepo:
    """v1, v2 (shared) plus big / nested / unicode; read-only for tests."""
    repo = dataset_repo.copy(tmp_path_factory.mktemp("cli-pinecone"))
    repo.commit_version(big_records, tag="big")
    nested = make_records(50, 16, seed=3)
    for r in nested:
        r["extra"] = {"a": 1} if r["id"] == NESTED_ID else None  # null: the field is absent
    repo.commit_version(nested, tag="nested")
    uni = make_records(50, 16, seed=4)
    uni[5]["id"] = UNICODE_ID
    repo.commit_version(uni, tag="unicode")
    return repo


def by_id(records: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    return {
        r["id"]: (np.asarray(r["vector"], dtype=np.float32), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
        for r in records
    }


class Workspace:
    """A manifest whose `prod` environment is a Pinecone index on the local server."""

    def __init__(self, folder: Path, repo: DatasetRepo, server: PineconeServer) -> None:
        self.folder = folder
        self.repo = repo
        self.server = server
        self.manifest = folder / "vectorops.yaml"
        self.results: list[Result] = []
        self.pin("v1")

    def pin(self, version: str) -> None:
        write_manifest(self.manifest, {"prod": environment(version, pinecone_destination(INDEX, KEY_ENV))}, repo=self.repo.root)

    def run(self, *args: str) -> Result:
        result = run_vectorops("-m", str(self.manifest), "--no-color", *args)
        self.results.append(result)
        return result

    def ok(self, *args: str, code: int = 0) -> Result:
        result = self.run(*args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    # -- what the server holds -----------------------------------------------------------------

    def namespaces(self) -> dict[str, Any]:
        try:
            return self.server.index(INDEX).namespaces
        except KeyError:
            return {}

    def stored(self, namespace: str = "__default__") -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        space = self.namespaces().get(namespace)
        return dict(space.records) if space is not None else {}

    def assert_content(self, records: list[dict[str, Any]]) -> None:
        got, want = self.stored(), by_id(records)
        assert sorted(got) == sorted(want)
        for rid, (vector, metadata) in want.items():
            gv, gm = got[rid]
            assert np.asarray(gv, dtype=np.float32).tobytes() == vector.tobytes(), f"vector of {rid} differs"
            assert gm == metadata, f"metadata of {rid} differs"

    def sdk_index(self) -> Any:
        from pinecone import Pinecone

        return Pinecone(api_key=API_KEY).Index(host=self.server.index(INDEX).host)


@pytest.fixture
def ws(tmp_path: Path, pc_repo: DatasetRepo, pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)  # only the variable the manifest names is used
    folder = tmp_path / "project"
    folder.mkdir()
    return Workspace(folder, pc_repo, pinecone_server)


# -- plan and apply ------------------------------------------------------------------------------


def test_first_and_incremental_apply_are_exact(ws: Workspace, known_versions: KnownVersions, pc_repo: DatasetRepo) -> None:
    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["current"] is None and env["destination"] == f"pinecone:{INDEX}"
    assert env["changes"] == {"add": 1000, "update": 0, "delete": 0}
    assert ws.namespaces() == {}  # plan creates nothing

    ws.ok("apply", "--auto-approve")
    ws.assert_content(known_versions.v1)
    assert ws.server.index(INDEX).dimension == 16 and ws.server.index(INDEX).metric == "cosine"
    ws.ok("plan", "--detailed-exitcode")  # no-op: exit 0

    ws.pin("v2")
    env = ws.ok("plan", "--json", "--detailed-exitcode", code=2).json["environments"][0]
    v1 = pc_repo.versions[0]
    assert env["current"] == {"version": "v1", "commit": v1.commit, "digest": v1.digest}
    assert env["changes"] == {"add": 120, "update": 45, "delete": 30}
    assert env["drift"] == {"level": "ids", "expected_count": 1000, "actual_count": 1000, "missing": 0, "unexpected": 0, "modified": None}
    ws.ok("apply", "--auto-approve")
    ws.assert_content(known_versions.v2)
    ws.ok("plan", "--detailed-exitcode", "--refresh", "full")
    row = ws.ok("status", "--json").json["environments"][0]
    assert (row["status"], row["records"], row["deployed"]["version"]) == ("Synced", 1090, "v2")
    entries = ws.ok("history", "prod", "--json").json["history"]
    assert [(e["from"] and e["from"]["version"], e["to"]["version"], e["counts"]) for e in entries] == [
        ("v1", "v2", {"add": 120, "update": 45, "delete": 30}),
        (None, "v1", {"add": 1000, "update": 0, "delete": 0}),
    ]


def test_saved_plan_show_and_apply(ws: Workspace, known_versions: KnownVersions, tmp_path: Path) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    planfile = tmp_path / "prod.plan"
    made = ws.ok("plan", "--json", "-o", str(planfile)).json
    assert ws.ok("show", "--json", str(planfile)).json == made
    stale = tmp_path / "stale.plan"
    ws.ok("plan", "-o", str(stale))
    ws.ok("apply", str(planfile))
    ws.assert_content(known_versions.v2)
    refused = ws.run("apply", str(stale))
    assert refused.code == 1 and "stale" in refused.stderr
    ws.assert_content(known_versions.v2)


def test_state_lives_in_reserved_namespace_and_is_never_counted(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.ok("apply", "--auto-approve")
    docs = ws.stored("__vectorops__")
    assert any("state" in k for k in docs) and any("history/" in k for k in docs)
    assert not any(k.startswith("__") or "state" in k for k in ws.stored())  # user namespace: records only

    stats = ws.sdk_index().describe_index_stats()
    assert stats.total_vector_count > 1000  # the service counts the state vectors too ...
    row = ws.ok("status", "--json").json["environments"][0]
    assert row["records"] == 1000  # ... vectorops never does
    for level in ("stats", "ids", "full"):
        drift = ws.ok("drift", "--refresh", level, "--json").json["environments"][0]["drift"]
        assert (drift["expected_count"], drift["actual_count"], drift["missing"], drift["unexpected"]) == (1000, 1000, 0, 0)


@pytest.mark.parametrize("split_listing", [False, True], ids=["one-listing", "split-listing"])
def test_drift_at_stats_ids_and_full(
    ws: Workspace, known_versions: KnownVersions, split_listing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the listing split by the deployed ids' prefixes too: "foreign-1" sits under none of them,
    and is found all the same."""
    if split_listing:
        monkeypatch.setattr("reconciler.providers.pinecone.LIST_SPLIT_MIN", 100)
    ws.pin("v2")
    ws.ok("apply", "--auto-approve")
    v2 = sorted(known_versions.v2, key=lambda r: r["id"])
    removed = [r["id"] for r in v2[:5]]
    modified = v2[10]["id"]
    idx = ws.sdk_index()
    idx.delete(ids=removed, namespace="")
    idx.upsert(vectors=[{"id": "foreign-1", "values": [0.5] * 16, "metadata": {"who": "someone else"}}], namespace="")
    idx.upsert(vectors=[{"id": modified, "values": [0.25] * 16, "metadata": by_id(v2)[modified][1]}], namespace="")

    stats = ws.ok("drift", "--refresh", "stats", "--json", code=2).json["environments"][0]["drift"]
    assert stats == {"level": "stats", "expected_count": 1090, "actual_count": 1086, "missing": 4, "unexpected": 0, "modified": None}
    ids = ws.ok("drift", "--json", code=2).json["environments"][0]
    assert ids["drift"] == {"level": "ids", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": None}
    assert sorted(ids["samples"]["missing"]) == sorted(removed) and ids["samples"]["unexpected"] == ["foreign-1"]
    user_listings = {p for p in ws.server.list_prefixes if not p.startswith("__default__/")}
    assert (len(user_listings) > 1) == split_listing  # "" (one listing) always: the split fell back
    assert "" in user_listings
    full = ws.ok("drift", "--refresh", "full", "--json", code=2).json["environments"][0]
    assert full["drift"] == {"level": "full", "expected_count": 1090, "actual_count": 1086, "missing": 5, "unexpected": 1, "modified": 1}
    assert full["samples"]["modified"] == [modified]

    assert ws.ok("plan", "--refresh", "full", "--json").json["environments"][0]["changes"] == {"add": 5, "update": 1, "delete": 1}
    ws.ok("apply", "--auto-approve", "--refresh", "full")
    ws.assert_content(known_versions.v2)
    ws.ok("drift", "--refresh", "full")


def test_apply_with_10_percent_failing_requests_ends_exact(
    ws: Workspace, big_records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.providers.pinecone_payload as provider

    ws.ok("apply", "--auto-approve")  # v1, no faults: creates the index
    monkeypatch.setattr(provider, "MAX_VECTORS_PER_UPSERT", 100)  # many small requests: many chances to fail
    monkeypatch.setattr(provider, "MAX_IDS_PER_REQUEST", 100)
    ws.server.faults = Faults(rate_429=0.04, rate_5xx=0.03, rate_lost_response=0.03, retry_after=0, seed=21)
    ws.pin("big")
    env = ws.ok("plan", "--json").json["environments"][0]
    assert env["changes"] == {"add": 4000, "update": 1000, "delete": 0}
    ws.ok("apply", "--auto-approve")
    faults = ws.server.fault_counts
    assert sum(faults.values()) >= 10, faults  # faults really happened ...
    assert faults.get("lost", 0) >= 1, faults  # ... some after the write was applied
    ws.assert_content(big_records)
    ws.ok("plan", "--detailed-exitcode", "--refresh", "full")
    row = ws.ok("status", "--json").json["environments"][0]
    assert (row["status"], row["records"]) == ("Synced", 5000)


# -- refused at plan time ----------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "bad_id", "reason"), [("nested", NESTED_ID, "nested object"), ("unicode", UNICODE_ID, "non-ASCII")])
def test_records_pinecone_would_refuse_stop_the_plan(ws: Workspace, tag: str, bad_id: str, reason: str) -> None:
    ws.pin(tag)
    for args in (("plan",), ("plan", "--json"), ("apply", "--auto-approve")):
        result = ws.run(*args)
        assert result.code == 1
        assert bad_id in result.stderr and reason in result.stderr
        assert result.stdout == "" or "Plan:" not in result.stdout
    assert ws.namespaces() == {}  # nothing written: not even the index's first record


def test_records_refused_at_plan_time_after_a_deploy(ws: Workspace, known_versions: KnownVersions) -> None:
    ws.ok("apply", "--auto-approve")
    ws.pin("nested")
    result = ws.run("apply", "--auto-approve", "--allow-deletes")
    assert result.code == 1 and NESTED_ID in result.stderr
    ws.assert_content(known_versions.v1)


# -- the API key ---------------------------------------------------------------------------------


def test_api_key_appears_nowhere(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    ws.ok("apply", "--auto-approve")
    ws.pin("v2")
    planfile = tmp_path / "prod.plan"
    ws.ok("plan", "-o", str(planfile))
    ws.ok("plan", "--json", "-v")
    ws.ok("apply", str(planfile))
    ws.ok("status", "--json")
    ws.ok("history", "prod")
    ws.ok("drift", "--refresh", "full")
    ws.run("-v", "force-unlock", "prod", "nope")

    # a key the server refuses: the error must say so without echoing it
    wrong = "WRONG-SECRET-a1b2c3d4e5"
    monkeypatch.setenv(KEY_ENV, wrong)
    refused = ws.run("-v", "plan")
    assert refused.code == 1 and KEY_ENV not in refused.stdout
    monkeypatch.delenv(KEY_ENV)
    unset = ws.run("plan")
    assert unset.code == 1 and KEY_ENV in unset.stderr  # names the variable, not a value

    blobs = [r.stdout.encode() + r.stderr.encode() for r in ws.results]
    raw = planfile.read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        blobs += [raw, *(zf.read(n) for n in zf.namelist())]
    docs = ws.stored("__vectorops__")
    blobs += [json.dumps(md, default=str).encode() for _, md in docs.values()]
    cache = Path(os.environ["VECTOROPS_CACHE_DIR"])
    blobs += [p.read_bytes() for p in cache.rglob("*") if p.is_file()]
    assert len(docs) >= 3 and len(ws.results) >= 9
    for blob in blobs:
        assert API_KEY.encode() not in blob
        assert wrong.encode() not in blob
