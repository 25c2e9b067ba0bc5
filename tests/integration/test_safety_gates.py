"""End-to-end tests of the safety gates (issue 6) through the `vectorops` CLI, on LanceDB and Pinecone.

Canary validation after apply, `requires` between environments, the embedding-model / dimension /
metric guards and `apply --replace`, `rollback` (LanceDB's tag fast path included), automatic
rollback on a failed validation, `promote`, and `validate --canaries`. Every test drives the CLI as
a user does (``main(argv)`` in-process, stdin not a terminal) and then reads what the destination
really holds: LanceDB opened directly, Pinecone through the local server's store.

The dataset is the shared read-only repo (``known_versions`` v1 → v2). Canary files are built from
brute-force nearest neighbours (numpy, cosine), so "passes" and "fails" are facts about the data,
not guesses: ``good`` passes at both versions, ``bad`` fails at both (it expects the record
farthest from its query), ``v1_only`` queries with a vector that v2 changed, so it passes at v1
and fails at v2, and ``v2_only`` the reverse.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from fixtures.cli import Result, run_vectorops
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo

TOP_K = 5
DIM = 16




# -- canary files from brute-force truth ---------------------------------------------------------


def _nearest(records: list[dict[str, Any]], vector: np.ndarray, k: int) -> list[str]:
    matrix = np.asarray([r["vector"] for r in records], dtype=np.float64)
    q = np.asarray(vector, dtype=np.float64)
    scores = matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    return [records[i]["id"] for i in np.argsort(-scores)[:k]]


def _vector_yaml(vector: Any) -> str:
    return "[" + ", ".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


@dataclass
class CanaryTexts:
    anchor: str
    far: str  # the record farthest from the anchor: never in its top_k
    anchor_top: list[str]  # what a correct index returns for the anchor (same in v1 and v2)
    changed: str  # a record whose vector v2 changed
    texts: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def canaries(known_versions: KnownVersions) -> CanaryTexts:
    v1 = {r["id"]: r for r in known_versions.v1}
    v2 = {r["id"]: r for r in known_versions.v2}

    def stable(x: str) -> bool:
        """x's top_k is the same at v1 and v2, led by x itself, and its farthest record is in both."""
        top = _nearest(known_versions.v1, np.asarray(v1[x]["vector"]), TOP_K)
        far = _nearest(known_versions.v2, -np.asarray(v1[x]["vector"]), 1)[0]
        return top[0] == x and top == _nearest(known_versions.v2, np.asarray(v1[x]["vector"]), TOP_K) and far in known_versions.unchanged

    anchor = next(x for x in sorted(known_versions.unchanged) if stable(x))
    top_v1 = _nearest(known_versions.v1, np.asarray(v1[anchor]["vector"]), TOP_K)
    far = _nearest(known_versions.v2, -np.asarray(v1[anchor]["vector"]), 1)[0]
    assert far not in top_v1

    def moved_away(x: str) -> bool:
        """x is its own nearest neighbour at each version, and not in the other version's top_k."""
        return (
            _nearest(known_versions.v1, np.asarray(v1[x]["vector"]), TOP_K)[0] == x
            and _nearest(known_versions.v2, np.asarray(v2[x]["vector"]), TOP_K)[0] == x
            and x not in _nearest(known_versions.v2, np.asarray(v1[x]["vector"]), TOP_K)
            and x not in _nearest(known_versions.v1, np.asarray(v2[x]["vector"]), TOP_K)
        )

    changed = next(x for x in sorted(known_versions.updated_vector) if moved_away(x))
    good = f"  - name: anchor\n    vector_of: {anchor}\n    expect: [{anchor}]\n"
    texts = {
        "good": f"top_k: {TOP_K}\nqueries:\n{good}",
        "bad": f"top_k: {TOP_K}\nqueries:\n{good}  - name: far away\n    vector_of: {anchor}\n    expect: [{anchor}, {far}]\n",
        "v1_only": f"top_k: {TOP_K}\nqueries:\n{good}  - name: changed doc\n    vector: {_vector_yaml(v1[changed]['vector'])}\n    expect: [{changed}]\n",
        "v2_only": f"top_k: {TOP_K}\nqueries:\n{good}  - name: changed doc\n    vector: {_vector_yaml(v2[changed]['vector'])}\n    expect: [{changed}]\n",
    }
    return CanaryTexts(anchor=anchor, far=far, anchor_top=top_v1, changed=changed, texts=texts)


# -- a workspace: manifest, canary files, CLI, and what the destinations hold -------------------


@dataclass
class EnvSpec:
    kind: str  # lancedb | pinecone
    version: str = "v1"
    canaries: str | None = None  # key of CanaryTexts.texts, written to canaries/<env>.yaml
    requires: list[str] = field(default_factory=list)
    rollback_on_failure: bool = False
    comment: str = ""


def _dest_name(env: str) -> str:
    return f"docs-{env}"  # a LanceDB table name and a Pinecone index name alike


class Workspace:
    def __init__(self, folder: Path, repo: DatasetRepo, canaries: CanaryTexts, server: Any | None) -> None:
        self.folder = folder
        self.repo = repo
        self.canary_texts = canaries
        self.server = server
        self.manifest = folder / "vectorops.yaml"
        self.db_uri = folder / "db"
        self.envs: dict[str, EnvSpec] = {}
        self.model, self.dimension, self.metric = "test-model", DIM, "cosine"

    def setup(self, **envs: EnvSpec) -> Workspace:
        self.envs = dict(envs)
        self.write()
        return self

    def write(self) -> None:
        lines = [
            "version: 1",
            "datasets:",
            "  docs:",
            "    path: data/docs.parquet",
            f"    repo: {self.repo.root}",
            "    embedding:",
            f"      model: {self.model}",
            f"      dimension: {self.dimension}",
            f"      metric: {self.metric}",
            "environments:",
        ]
        for name, spec in self.envs.items():
            lines += [f"  {name}:", "    dataset: docs", f"    version: {spec.version}{spec.comment}", "    destination:"]
            if spec.kind == "lancedb":
                lines += ["      type: lancedb", "      uri: db", f"      table: {_dest_name(name)}"]
            else:
                lines += ["      type: pinecone", f"      index: {_dest_name(name)}"]
            if spec.canaries is not None:
                self.write_canaries(name, self.canary_texts.texts[spec.canaries])
                lines += ["    validation:", f"      canaries: canaries/{name}.yaml", "      min_pass_rate: 0.95"]
            if spec.requires:
                lines.append(f"    requires: [{', '.join(spec.requires)}]")
            if spec.rollback_on_failure:
                lines.append("    rollback_on_failure: true")
        self.manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def write_canaries(self, env: str, text: str) -> Path:
        path = self.folder / "canaries" / f"{env}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def pin(self, env: str, version: str) -> None:
        self.envs[env].version = version
        self.write()

    def run(self, *args: str) -> Result:
        return run_vectorops("-m", str(self.manifest), "--no-color", *args)

    def ok(self, *args: str, code: int = 0) -> Result:
        result = self.run(*args)
        assert result.code == code, f"vectorops {shlex.join(args)} exited {result.code}\n{result.stdout}\n{result.stderr}"
        return result

    def history(self, env: str) -> list[dict[str, Any]]:
        return self.ok("history", env, "--json").json["history"]

    def status(self, env: str) -> dict[str, Any]:
        return self.ok("status", env, "--json").json["environments"][0]

    def deployed_state(self, env: str) -> Any:
        from reconciler.engine.state import StateStore
        from reconciler.manifest import load_manifest
        from reconciler.providers import open_destination

        return StateStore(open_destination(load_manifest(self.manifest), env)).load().deployed

    # -- what the destination holds ------------------------------------------------------------

    def lance_table(self, env: str) -> Any:
        return lancedb.connect(str(self.db_uri)).open_table(_dest_name(env))

    def exists(self, env: str) -> bool:
        if self.envs[env].kind == "lancedb":
            db = lancedb.connect(str(self.db_uri))
            return _dest_name(env) in list(getattr(db.list_tables(), "tables", []))
        try:
            self.server.index(_dest_name(env))
        except KeyError:
            return False
        return True

    def content(self, env: str) -> dict[str, tuple[bytes, dict[str, Any]]]:
        """id → (vector as float32 bytes, metadata without absent fields)."""
        if not self.exists(env):
            return {}
        if self.envs[env].kind == "lancedb":
            t = self.lance_table(env).to_arrow()
            ids = t.column("id").to_pylist()
            vectors = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(ids), -1)
            meta = [json.loads(m) for m in t.column("metadata").to_pylist()]
            assert len(set(ids)) == len(ids), "duplicate ids in the table"
            return {i: (vectors[n].astype(np.float32).tobytes(), meta[n]) for n, i in enumerate(ids)}
        space = self.server.index(_dest_name(env)).namespaces.get("__default__")
        records = dict(space.records) if space is not None else {}
        return {rid: (np.asarray(v, dtype=np.float32).tobytes(), dict(m)) for rid, (v, m) in records.items()}

    def assert_content(self, env: str, records: list[dict[str, Any]]) -> None:
        got = self.content(env)
        want = {
            r["id"]: (np.asarray(r["vector"], dtype=np.float32).tobytes(), {k: v for k, v in r.items() if k not in ("id", "vector") and v is not None})
            for r in records
        }
        assert sorted(got) == sorted(want)
        for rid, (vector, metadata) in want.items():
            assert got[rid][0] == vector, f"vector of {rid} differs"
            assert got[rid][1] == metadata, f"metadata of {rid} differs"


@pytest.fixture(params=["lancedb", "pinecone"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "pinecone":
        pytest.importorskip("pinecone")
    return str(request.param)


def _workspace(tmp_path: Path, repo: DatasetRepo, canaries: CanaryTexts, request: pytest.FixtureRequest, kinds: set[str]) -> Workspace:
    server = request.getfixturevalue("pinecone_server") if "pinecone" in kinds else None
    folder = tmp_path / "project"
    folder.mkdir()
    return Workspace(folder, repo, canaries, server)


@pytest.fixture
def ws(tmp_path: Path, dataset_repo: DatasetRepo, canaries: CanaryTexts, request: pytest.FixtureRequest, kind: str) -> Workspace:
    """A workspace on the parametrised destination kind (tests set up its environments)."""
    return _workspace(tmp_path, dataset_repo, canaries, request, {kind})


@pytest.fixture
def lws(tmp_path: Path, dataset_repo: DatasetRepo, canaries: CanaryTexts, request: pytest.FixtureRequest) -> Workspace:
    """A LanceDB-only workspace, for LanceDB-specific behaviour and CLI paths covered once."""
    return _workspace(tmp_path, dataset_repo, canaries, request, set())


def _entry_summary(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["operation"], e["from"] and e["from"]["version"], e["to"]["version"], e["result"])


# -- canary validation ---------------------------------------------------------------------------


def test_passing_canaries_are_recorded(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind, canaries="good"))
    result = ws.ok("apply", "staging", "--auto-approve")
    assert "validation passed: 1/1 canary queries passed (100%, minimum 95%)" in result.stdout
    ws.assert_content("staging", known_versions.v1)
    (entry,) = ws.history("staging")
    assert entry["result"] == "success"
    assert entry["validation"] == {"passed": 1, "total": 1, "pass_rate": 1.0, "min_pass_rate": 0.95, "ok": True}
    row = ws.status("staging")
    assert row["validated"] is True and row["status"] == "Synced"
    assert "canaries passed" in ws.ok("status", "staging").stdout


def test_failing_canaries_exit_1_and_mark_the_version_unvalidated(
    ws: Workspace, kind: str, canaries: CanaryTexts, known_versions: KnownVersions
) -> None:
    ws.setup(staging=EnvSpec(kind, canaries="bad"))
    result = ws.run("apply", "staging", "--auto-approve")
    assert result.code == 1
    assert "1/2 canary queries passed (50%, minimum 95%)" in result.stdout
    assert "far away" in result.stdout
    assert f"expected: {canaries.anchor}, {canaries.far}" in result.stdout
    assert f"missing:  {canaries.far}" in result.stdout
    assert f"returned: {', '.join(canaries.anchor_top)}" in result.stdout  # exactly the true nearest neighbours
    assert "validation_failed" in result.stderr and "marked unvalidated at v1" in result.stderr
    ws.assert_content("staging", known_versions.v1)  # the records were written; only the verdict failed
    (entry,) = ws.history("staging")
    assert entry["result"] == "validation_failed"
    assert entry["validation"]["passed"] == 1 and entry["validation"]["ok"] is False
    assert ws.status("staging")["validated"] is False
    assert ws.deployed_state("staging").validated is False
    # a second apply with nothing to write does not launder the verdict
    ws.run("apply", "staging", "--auto-approve")
    assert ws.status("staging")["validated"] is False
    assert len(ws.history("staging")) == 1


# -- requires ------------------------------------------------------------------------------------


def test_requires_blocks_prod_until_staging_applied_and_validated(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind, canaries="v1_only"), prod=EnvSpec(kind, requires=["staging"]))
    plan = ws.ok("plan", "prod", "--json").json["environments"][0]
    assert plan["blocked"] and "requires 'staging'" in plan["blocked"] and "nothing deployed" in plan["blocked"]
    assert "blocked" in ws.ok("plan", "prod").stdout
    refused = ws.run("apply", "prod", "--auto-approve")
    assert refused.code == 1 and "requires 'staging'" in refused.stderr
    assert not ws.exists("prod")  # nothing written, not even the table/index

    ws.ok("apply", "staging", "--auto-approve")
    assert ws.status("staging")["validated"] is True
    assert ws.ok("plan", "prod", "--json").json["environments"][0]["blocked"] is None
    ws.ok("apply", "prod", "--auto-approve")
    ws.assert_content("prod", known_versions.v1)

    # v2 fails staging's canaries: prod stays blocked at v1
    ws.pin("staging", "v2")
    ws.pin("prod", "v2")
    failed = ws.run("apply", "staging", "--auto-approve")
    assert failed.code == 1 and "validation_failed" in failed.stderr
    ws.assert_content("staging", known_versions.v2)
    blocked = ws.ok("plan", "prod", "--json").json["environments"][0]["blocked"]
    assert blocked and "requires 'staging' to pass validation at v2" in blocked and "failed" in blocked
    refused = ws.run("apply", "prod", "--auto-approve")
    assert refused.code == 1 and "requires 'staging'" in refused.stderr
    ws.assert_content("prod", known_versions.v1)
    assert [_entry_summary(e) for e in ws.history("prod")] == [("apply", None, "v1", "success")]


def _blocked(ws: Workspace, env: str) -> str | None:
    return ws.ok("plan", env, "--json").json["environments"][0]["blocked"]


def test_requires_gates_moving_forward_only(lws: Workspace, known_versions: KnownVersions) -> None:
    """Issue 14 item 1, the quick start's flow: staging moving on never freezes prod where it is,
    nor takes away prod's way back (SPEC §1: `requires` gates moving forward only)."""
    ws = lws.setup(staging=EnvSpec("lancedb", canaries="good"), prod=EnvSpec("lancedb", requires=["staging"]))
    ws.ok("apply", "staging", "--auto-approve")
    ws.ok("apply", "prod", "--auto-approve")
    ws.pin("staging", "v2")
    ws.ok("apply", "staging", "--auto-approve")

    # prod has nothing to do: a plain `apply` of every environment (what CI runs on each merge) passes
    assert _blocked(ws, "prod") is None
    result = ws.ok("apply", "--auto-approve")
    assert "No changes. 2 environments match their pinned versions." in result.stdout and "Blocked" not in result.stdout
    ws.assert_content("prod", known_versions.v1)

    # drift at the deployed version is repaired, not frozen because staging moved on
    ws.lance_table("prod").delete(f"id = '{known_versions.v1[0]['id']}'")
    repair = ws.ok("plan", "prod", "--json").json["environments"][0]
    assert repair["changes"] == {"add": 1, "update": 0, "delete": 0} and repair["blocked"] is None
    ws.ok("apply", "prod", "--auto-approve")
    ws.assert_content("prod", known_versions.v1)

    # moving forward is still gated: v2 is validated on staging, so prod may take it
    ws.pin("prod", "v2")
    ws.ok("apply", "prod", "--auto-approve")
    ws.assert_content("prod", known_versions.v2)

    # the incident path: back to the version prod ran before, though staging has moved on from it
    ws.ok("rollback", "prod", "--auto-approve")
    ws.assert_content("prod", known_versions.v1)
    ws.ok("rollback", "staging", "--to", "v1", "--auto-approve")  # staging leaves v2
    ws.ok("rollback", "prod", "--to", "v2", "--auto-approve")  # prod ran v2 before: not gated
    ws.assert_content("prod", known_versions.v2)
    assert _blocked(ws, "prod") is None  # pinned v2, at v2: nothing to do, whatever staging runs
    ws.ok("apply", "prod", "--auto-approve")
    assert [_entry_summary(e) for e in ws.history("prod")][:3] == [
        ("rollback", "v1", "v2", "success"),
        ("rollback", "v2", "v1", "success"),
        ("apply", "v1", "v2", "success"),
    ]


def test_rollback_to_a_version_never_deployed_there_is_still_gated(lws: Workspace, known_versions: KnownVersions) -> None:
    """`rollback --to REV` is a way back, not a way around the gate: a rev prod never ran needs staging's word."""
    ws = lws.setup(staging=EnvSpec("lancedb", canaries="good"), prod=EnvSpec("lancedb", requires=["staging"]))
    ws.ok("apply", "staging", "--auto-approve")
    ws.ok("apply", "prod", "--auto-approve")  # both at v1; neither ever ran v2
    refused = ws.run("rollback", "prod", "--to", "v2", "--auto-approve")
    assert refused.code == 1
    assert "requires 'staging' to have v2" in refused.stderr and "rollback skips `requires` only for a version prod ran before" in refused.stderr
    assert "Traceback" not in refused.output
    ws.assert_content("prod", known_versions.v1)
    assert len(ws.history("prod")) == 1


# -- embedding-model, dimension and metric guards --------------------------------------------


def test_model_guard_blocks(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    """v2 re-embedded with another model: writing it over v1's vectors in place is refused (then see --replace below)."""
    ws.setup(staging=EnvSpec(kind))
    ws.ok("apply", "staging", "--auto-approve")
    ws.model = "other-model"
    ws.pin("staging", "v2")
    env = ws.ok("plan", "staging", "--json").json["environments"][0]
    blocked = env["blocked"]
    assert blocked and "'test-model'" in blocked and "'other-model'" in blocked and "--replace" in blocked
    assert "new table/index" in blocked
    refused = ws.run("apply", "staging", "--auto-approve")
    assert refused.code == 1 and "'other-model'" in refused.stderr and "--replace" in refused.stderr
    ws.assert_content("staging", known_versions.v1)
    assert len(ws.history("staging")) == 1
    assert ws.deployed_state("staging").model == "test-model"


def test_replace_rebuilds_with_the_new_model(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind))
    ws.ok("apply", "staging", "--auto-approve")
    ws.model = "other-model"
    ws.pin("staging", "v2")
    replace_plan = ws.ok("plan", "staging", "--replace", "--json").json["environments"][0]
    assert replace_plan["blocked"] is None
    assert replace_plan["changes"] == {"add": 120, "update": 970, "delete": 30}  # every v2 record is rewritten
    assert any("--replace" in w for w in replace_plan.get("warnings", []))
    ws.ok("apply", "staging", "--replace", "--auto-approve")
    ws.assert_content("staging", known_versions.v2)
    newest = ws.history("staging")[0]
    assert newest["counts"] == {"add": 120, "update": 970, "delete": 30} and newest["result"] == "success"
    deployed = ws.deployed_state("staging")
    assert (deployed.version, deployed.model, deployed.dimension, deployed.metric) == ("v2", "other-model", DIM, "cosine")
    after = ws.ok("plan", "staging", "--json").json["environments"][0]
    assert after["blocked"] is None and after["changes"] == {"add": 0, "update": 0, "delete": 0}


def test_metric_guard(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind))
    ws.ok("apply", "staging", "--auto-approve")
    ws.metric = "euclidean"
    ws.pin("staging", "v2")
    blocked = ws.ok("plan", "staging", "--json").json["environments"][0]["blocked"]
    assert blocked and "metric is cosine" in blocked and "euclidean" in blocked and "new table/index" in blocked
    refused = ws.run("apply", "staging", "--auto-approve")
    assert refused.code == 1 and "metric is cosine" in refused.stderr
    assert len(ws.history("staging")) == 1
    ws.assert_content("staging", known_versions.v1)


def test_blocked_apply_exits_1_even_with_nothing_to_write(lws: Workspace) -> None:
    """Only the manifest's model changed (same version): apply must refuse, not report success."""
    ws = lws.setup(staging=EnvSpec("lancedb"))
    ws.ok("apply", "staging", "--auto-approve")
    ws.model = "other-model"
    ws.write()
    assert "other-model" in ws.ok("plan", "staging", "--json").json["environments"][0]["blocked"]
    refused = ws.run("apply", "staging", "--auto-approve")
    assert refused.code == 1 and "other-model" in refused.stderr


def test_dimension_guard(ws: Workspace, kind: str) -> None:
    """The manifest's environment points at an existing table/index made for another dimension."""
    ws.setup(staging=EnvSpec(kind))
    if kind == "lancedb":
        db = lancedb.connect(str(ws.db_uri))
        schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), 8)), ("metadata", pa.string())])
        db.create_table(_dest_name("staging"), data=[{"id": "old-1", "vector": [0.1] * 8, "metadata": "{}"}], schema=schema)
    else:
        ws.server.create_index(_dest_name("staging"), dimension=8, metric="cosine")
    before = ws.content("staging")
    blocked = ws.ok("plan", "staging", "--json").json["environments"][0]["blocked"]
    assert blocked and "dimension is 8" in blocked and "declares 16" in blocked and "new table/index" in blocked
    refused = ws.run("apply", "staging", "--auto-approve")
    assert refused.code == 1 and "dimension is 8" in refused.stderr
    assert ws.content("staging") == before
    assert ws.history("staging") == []


# -- rollback ------------------------------------------------------------------------------------


def test_rollback_content_exact(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind))
    ws.ok("apply", "staging", "--auto-approve")
    ws.pin("staging", "v2")
    ws.ok("apply", "staging", "--auto-approve")
    ws.assert_content("staging", known_versions.v2)
    ws.ok("rollback", "staging", "--auto-approve")
    ws.assert_content("staging", known_versions.v1)
    newest = ws.history("staging")[0]
    assert _entry_summary(newest) == ("rollback", "v2", "v1", "success")
    assert newest["counts"] == {"add": 30, "update": 45, "delete": 120}
    assert ws.status("staging")["deployed"]["version"] == "v1"
    ws.ok("rollback", "staging", "--to", "v2", "--auto-approve")
    ws.assert_content("staging", known_versions.v2)


def test_rollback_on_lancedb_restores_its_own_snapshot(lws: Workspace, known_versions: KnownVersions) -> None:
    """The fast path: the table goes back to the tagged v1 snapshot instead of rewriting records.

    A diff apply re-inserts the 30 deleted rows and rewrites the 45 updated ones (LanceDB's
    merge_insert appends them), so the physical row order would differ from v1's; a restore of
    the tag brings back v1's data files, row order included.
    """
    ws = lws.setup(staging=EnvSpec("lancedb"))
    ws.ok("apply", "staging", "--auto-approve")
    v1_order = ws.lance_table("staging").to_arrow().column("id").to_pylist()
    ws.pin("staging", "v2")
    ws.ok("apply", "staging", "--auto-approve")
    assert ws.lance_table("staging").to_arrow().column("id").to_pylist() != v1_order
    v2_order = ws.lance_table("staging").to_arrow().column("id").to_pylist()
    ws.ok("rollback", "staging", "--to", "v1", "--auto-approve")
    ws.assert_content("staging", known_versions.v1)
    assert ws.lance_table("staging").to_arrow().column("id").to_pylist() == v1_order
    assert [_entry_summary(e) for e in ws.history("staging")] == [
        ("rollback", "v2", "v1", "success"),
        ("apply", "v1", "v2", "success"),
        ("apply", None, "v1", "success"),
    ]
    ws.ok("rollback", "staging", "--auto-approve")  # previous is v2 now: also a tagged snapshot
    ws.assert_content("staging", known_versions.v2)
    assert ws.lance_table("staging").to_arrow().column("id").to_pylist() == v2_order


def test_rollback_with_nothing_previous(lws: Workspace, known_versions: KnownVersions) -> None:
    ws = lws.setup(staging=EnvSpec("lancedb"))
    ws.ok("apply", "staging", "--auto-approve")
    result = ws.run("rollback", "staging", "--auto-approve")
    assert result.code == 1
    assert "no previous version to roll back to" in result.stderr and "--to" in result.stderr
    ws.assert_content("staging", known_versions.v1)
    assert len(ws.history("staging")) == 1


def test_rollback_on_failure(ws: Workspace, kind: str, known_versions: KnownVersions) -> None:
    ws.setup(staging=EnvSpec(kind, canaries="v1_only", rollback_on_failure=True))
    ws.ok("apply", "staging", "--auto-approve")
    ws.pin("staging", "v2")
    result = ws.run("apply", "staging", "--auto-approve")
    assert result.code == 1
    assert "changed doc" in result.stdout and "1/2" in result.stdout
    assert "rolled back automatically to v1" in result.stderr
    ws.assert_content("staging", known_versions.v1)
    assert [_entry_summary(e) for e in ws.history("staging")] == [
        ("rollback", "v2", "v1", "success"),
        ("apply", "v1", "v2", "validation_failed"),
        ("apply", None, "v1", "success"),
    ]
    row = ws.status("staging")
    assert row["deployed"]["version"] == "v1" and row["status"] == "OutOfSync"


def test_automatic_rollback_leaves_the_restored_version_validated(lws: Workspace) -> None:
    """A manual `rollback` re-runs the canaries (via apply_plan); the automatic one should too."""
    ws = lws.setup(staging=EnvSpec("lancedb", canaries="v1_only", rollback_on_failure=True))
    ws.ok("apply", "staging", "--auto-approve")
    ws.pin("staging", "v2")
    assert ws.run("apply", "staging", "--auto-approve").code == 1
    row = ws.status("staging")
    assert row["deployed"]["version"] == "v1"
    assert row["validated"] is True


# -- promote -------------------------------------------------------------------------------------


def test_promote_refuses_unvalidated_then_rewrites_the_pin(lws: Workspace) -> None:
    ws = lws.setup(
        staging=EnvSpec("lancedb", canaries="v2_only"),
        prod=EnvSpec("lancedb", comment="   # prod's pin: moved by `vectorops promote`", requires=["staging"]),
    )
    text = "# team manifest: review pins in PRs\n" + ws.manifest.read_text()
    ws.manifest.write_text(text)
    nothing = ws.run("promote", "staging", "prod")
    assert nothing.code == 1 and "nothing deployed" in nothing.stderr

    failed = ws.run("apply", "staging", "--auto-approve")  # v1 fails the v2 canaries
    assert failed.code == 1
    refused = ws.run("promote", "staging", "prod")
    assert refused.code == 1 and "not passed validation" in refused.stderr
    assert ws.manifest.read_text() == text

    text = text.replace("version: v1\n", "version: v2\n", 1)  # staging's pin (prod's line has a comment)
    ws.manifest.write_text(text)
    ws.ok("apply", "staging", "--auto-approve")
    result = ws.ok("promote", "staging", "prod")
    expected = text.replace("version: v1   # prod's pin", "version: v2   # prod's pin")
    assert expected != text
    assert ws.manifest.read_text() == expected  # one value changed: comments and layout kept
    assert "-    version: v1   # prod's pin: moved by `vectorops promote`" in result.stdout
    assert "+    version: v2   # prod's pin: moved by `vectorops promote`" in result.stdout
    assert "Pinned prod to v2" in result.stdout
    assert ws.ok("plan", "prod", "--json").json["environments"][0]["blocked"] is None


# -- checking canary files before anything is written -------------------------------------------


@pytest.mark.parametrize("problem", ["unknown id", "wrong dimension"])
def test_bad_canary_file_is_refused_before_anything_is_written(lws: Workspace, canaries: CanaryTexts, problem: str) -> None:
    ws = lws.setup(staging=EnvSpec("lancedb", canaries="good"))
    if problem == "unknown id":
        bad = f"top_k: {TOP_K}\nqueries:\n  - name: typo\n    vector_of: {canaries.anchor}\n    expect: [doc-999999]\n"
        where, words = "canaries/staging.yaml:5:14", "doc-999999"
    else:
        bad = f"top_k: {TOP_K}\nqueries:\n  - name: short\n    vector: [0.1, 0.2, 0.3]\n    expect: [{canaries.anchor}]\n"
        where, words = "canaries/staging.yaml:4:13", "3 values"
    ws.write_canaries("staging", bad)
    result = ws.run("validate", "--canaries")
    assert result.code == 1
    assert where in result.stderr and words in result.stderr
    for args in (("plan", "staging"), ("plan", "staging", "--json"), ("apply", "staging", "--auto-approve")):
        result = ws.run(*args)
        assert result.code == 1, args
        assert where in result.stderr and words in result.stderr
    assert not ws.exists("staging")  # nothing written

    ws.write_canaries("staging", canaries.texts["good"])
    assert "1 query OK" in ws.ok("validate", "--canaries").stdout
