"""`vectorops reconcile` (SPEC §11) end to end: a bare git repository as the remote, the agent as a
real subprocess with a 0.5 s interval, real LanceDB tables, /metrics read with Prometheus' parser.

The agent's JSON log is how these tests follow it (one object per line, as a log collector reads
it); what the destination holds is always checked on the destination itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fixtures.agent import INTERVAL, AgentProcess, GitOpsRepo
from fixtures.cli import run_vectorops
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo

HEAL = {"auto": True, "self_heal": True}
AUTO = {"auto": True}


@pytest.fixture
def gitops(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> GitOpsRepo:
    return GitOpsRepo(dataset_repo_copy, tmp_path)


@pytest.fixture
def agents() -> Any:
    """Start agents with ``agents(gitops, *args)``; every one still running at the end is killed."""
    started: list[AgentProcess] = []

    def start(gitops: GitOpsRepo, *args: str, **kw: Any) -> AgentProcess:
        agent = AgentProcess(gitops, "-v", *args, **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


def cycle_now(agent: AgentProcess) -> int:
    """The number of the latest cycle the agent started."""
    started = [e["cycle"] for e in agent.events if e.get("action") == "cycle" and e.get("result") == "started"]
    return started[-1] if started else 0


def deployed(gitops: GitOpsRepo, env: str) -> dict[str, Any]:
    result = run_vectorops("-m", str(gitops.manifest), "status", env, "--json")
    assert result.code == 0, result.output
    return result.json["environments"][0]


def metrics(agent: AgentProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = agent.get("/metrics")
    assert code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_pushed_re_pin_reaches_lancedb_within_two_intervals_and_metrics_say_so(gitops: GitOpsRepo, agents: Any, known_versions: KnownVersions) -> None:
    gitops.push_pins({"staging": "v1"}, {"staging": AUTO})
    agent = agents(gitops)
    agent.event("apply", "applied", "staging")
    assert gitops.ids("staging") == {r["id"] for r in known_versions.v1}

    before = cycle_now(agent)
    mark = len(agent.events)
    pushed_at = time.time()
    commit = gitops.push_pins({"staging": "v2"}, {"staging": AUTO})
    applied = agent.event("apply", "applied", "staging", after=mark)
    assert applied["commit"] == commit and applied["to"]["version"] == "v2"
    assert applied["changes"] == {"add": 120, "update": 45, "delete": 30}
    # picked up by the first or second cycle after the push, not merely "eventually"
    assert applied["cycle"] <= before + 2, f"applied at cycle {applied['cycle']}, the push came during cycle {before}"
    assert gitops.ids("staging") == {r["id"] for r in known_versions.v2}
    state = deployed(gitops, "staging")
    assert (state["status"], state["deployed"]["version"]) == ("Synced", "v2")

    scraped = metrics(agent)
    assert scraped[("vectorops_environment_synced", (("environment", "staging"),))] == 1
    assert scraped[("vectorops_environment_drift_records", (("environment", "staging"),))] == 0
    assert scraped[("vectorops_apply_total", (("environment", "staging"), ("result", "applied")))] == 2
    assert scraped[("vectorops_last_reconcile_timestamp_seconds", ())] >= pushed_at
    assert agent.get("/healthz") == (200, "ok\n")
    assert agent.stop() == 0


def test_drift_is_repaired_with_self_heal_and_only_reported_without(gitops: GitOpsRepo, agents: Any, known_versions: KnownVersions) -> None:
    gitops.push_pins({"staging": "v1", "prod": "v1"}, {"staging": HEAL, "prod": AUTO})
    agent = agents(gitops)
    agent.event("apply", "applied", "staging")
    agent.event("apply", "applied", "prod")
    v1 = {r["id"] for r in known_versions.v1}

    mark = len(agent.events)
    gone = sorted(v1)[:3]
    for env in ("staging", "prod"):  # someone deletes records by hand, behind the pipeline's back
        gitops.table(env).delete("id IN (" + ", ".join(f"'{i}'" for i in gone) + ")")

    healed = agent.event("apply", "applied", "staging", after=mark)
    assert healed["reason"] == "self_heal" and healed["changes"] == {"add": 3, "update": 0, "delete": 0}
    assert gitops.ids("staging") == v1

    reported = agent.event("plan", "drifted", "prod", after=mark)
    assert reported["drift_records"] == 3 and "self_heal is off" in reported["message"]
    later = len(agent.events)
    while agent.cycles_after(later) < 3:
        agent.event("cycle", "ended", after=len(agent.events) - 1)
    assert gitops.ids("prod") == v1 - set(gone)  # reported, never repaired
    assert not any(e.get("action") == "apply" and e.get("environment") == "prod" for e in agent.events[mark:])
    scraped = metrics(agent)
    assert scraped[("vectorops_environment_drift_records", (("environment", "prod"),))] == 3
    assert scraped[("vectorops_environment_synced", (("environment", "prod"),))] == 0
    assert scraped[("vectorops_environment_synced", (("environment", "staging"),))] == 1
    assert agent.stop() == 0


def test_a_suspended_environment_is_planned_but_never_written(gitops: GitOpsRepo, agents: Any, known_versions: KnownVersions) -> None:
    gitops.push_pins({"staging": "v1"}, {"staging": HEAL})
    assert run_vectorops("-m", str(gitops.manifest), "apply", "--auto-approve").code == 0
    suspended = run_vectorops("-m", str(gitops.manifest), "suspend", "staging", "--reason", "reindexing by hand")
    assert suspended.code == 0, suspended.output
    assert "Suspended staging" in suspended.stdout and "reindexing by hand" in suspended.stdout
    table_version = gitops.table("staging").version

    commit = gitops.push_pins({"staging": "v2"}, {"staging": HEAL})
    gitops.table("staging").delete("id = 'doc-1'")  # drift too: self_heal must not touch it either
    table_version = gitops.table("staging").version
    agent = agents(gitops)
    held = agent.wait_for(lambda e: e.get("action") == "plan" and e.get("environment") == "staging" and e.get("commit") == commit)
    assert held["result"] == "out_of_sync" and held["suspended"] is True and "suspended" in held["message"]
    mark = len(agent.events)
    while agent.cycles_after(mark) < 4:
        agent.event("cycle", "ended", after=len(agent.events) - 1)
    assert gitops.table("staging").version == table_version  # not one commit to the table
    assert not any(e.get("action") == "apply" for e in agent.events)
    assert metrics(agent)[("vectorops_environment_suspended", (("environment", "staging"),))] == 1
    assert deployed(gitops, "staging")["suspended"]["reason"] == "reindexing by hand"

    # a laptop's apply sees the suspension too, and says so before writing
    laptop = run_vectorops("-m", str(gitops.manifest), "plan", "staging")
    assert "suspended" in laptop.stdout and "reindexing by hand" in laptop.stdout

    mark = len(agent.events)
    assert run_vectorops("-m", str(gitops.manifest), "resume", "staging").code == 0
    applied = agent.event("apply", "applied", "staging", after=mark)
    assert applied["to"]["version"] == "v2"
    assert gitops.ids("staging") == {r["id"] for r in known_versions.v2}
    assert agent.stop() == 0


def test_an_invalid_manifest_is_reported_and_the_last_good_commit_stays_in_force(gitops: GitOpsRepo, agents: Any, known_versions: KnownVersions) -> None:
    good = gitops.push_pins({"staging": "v1"}, {"staging": HEAL})
    agent = agents(gitops)
    agent.event("apply", "applied", "staging")

    mark = len(agent.events)
    text = gitops.manifest.read_text().replace("version: v1", "version: v2\n    verison: v2")
    bad = gitops.push_manifest(text, "a typo")
    rejected = agent.event("load", "invalid", after=mark)
    assert rejected["commit"] == bad and rejected["level"] == "error"
    assert "vectorops.yaml:" in rejected["message"] and "verison" in rejected["message"]
    assert f"the last good commit {good[:12]} stays in force" in rejected["message"]
    assert agent.get("/healthz") == (200, "ok\n")
    assert metrics(agent)[("vectorops_manifest_valid", ())] == 0

    # the previous pin is still enforced: drift is repaired to v1, and v2 is not applied
    gitops.table("staging").delete("id = 'doc-2'")
    healed = agent.event("apply", "applied", "staging", after=mark)
    assert healed["to"]["version"] == "v1" and healed["commit"] == good
    assert gitops.ids("staging") == {r["id"] for r in known_versions.v1}
    assert sum(1 for e in agent.events if e.get("action") == "load" and e.get("result") == "invalid") == 1  # reported once per commit

    mark = len(agent.events)
    fixed = gitops.push_pins({"staging": "v2"}, {"staging": HEAL})
    applied = agent.event("apply", "applied", "staging", after=mark)
    assert applied["commit"] == fixed and applied["to"]["version"] == "v2"
    assert metrics(agent)[("vectorops_manifest_valid", ())] == 1
    assert agent.stop() == 0


def test_failures_never_stop_the_agent_and_back_off(gitops: GitOpsRepo, agents: Any, tmp_path: Path) -> None:
    """A destination the agent cannot write (its folder is a file) fails every attempt; the agent
    reports each one with a growing delay capped at the interval, and keeps serving."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the LanceDB folder should be")
    envs = gitops.environments({"staging": "v1"}, {"staging": AUTO})
    envs["staging"]["destination"]["uri"] = str(blocker)
    from fixtures.manifests import manifest_text

    gitops.push_manifest(manifest_text(envs))
    agent = agents(gitops, "--backoff", "0.1s")
    failures = [agent.wait_for(lambda e: e.get("level") == "error" and e.get("environment") == "staging", after=0)]
    for _ in range(3):
        failures.append(agent.wait_for(lambda e: e.get("level") == "error" and e.get("environment") == "staging", after=agent.events.index(failures[-1]) + 1))
    delays = [f["retry_in_s"] for f in failures]
    assert delays == [0.1, 0.2, 0.4, INTERVAL], delays
    assert [f["attempt"] for f in failures] == [1, 2, 3, 4]
    assert "not-a-folder" in failures[0]["message"] and "vectorops bug" not in failures[0]["message"]
    assert agent.proc.poll() is None and agent.get("/healthz")[0] == 200
    assert metrics(agent)[("vectorops_reconcile_failures_total", (("environment", "staging"),))] >= 4
    assert agent.stop() == 0


def test_once_with_repo_dot_reads_the_checkout_as_it_is_and_exits_with_the_cycle_result(gitops: GitOpsRepo, known_versions: KnownVersions) -> None:
    import json
    import os
    import subprocess
    import sys

    from fixtures.manifests import manifest_text

    root = gitops.repo.root
    (root / "vectorops.yaml").write_text(manifest_text(gitops.environments({"staging": "v2"}, {"staging": AUTO})))  # not committed

    def once() -> tuple[int, list[dict[str, Any]]]:
        proc = subprocess.run([sys.executable, "-m", "reconciler", "reconcile", "--once", "--log-format", "json"],
                              cwd=root, capture_output=True, text=True, env=dict(os.environ), timeout=120)
        return proc.returncode, [json.loads(line) for line in proc.stderr.splitlines()]

    code, events = once()
    assert code == 0, events
    applied = [e for e in events if e["action"] == "apply"]
    assert [(e["environment"], e["result"], e["to"]["version"]) for e in applied] == [("staging", "applied", "v2")]
    assert gitops.ids("staging") == {r["id"] for r in known_versions.v2}

    (root / "vectorops.yaml").write_text(manifest_text(gitops.environments({"staging": "v9"}, {"staging": AUTO})))
    code, events = once()
    assert code == 1
    (failed,) = [e for e in events if e["level"] == "error"]
    assert failed["action"] == "plan" and "'v9'" in failed["message"] and failed["retry_in_s"] > 0


@pytest.mark.parametrize("policy", ["sample", "ids"])
def test_the_agent_plans_at_each_environments_policy_refresh(policy: str, gitops: GitOpsRepo) -> None:
    """Without --refresh, each cycle reads the destination at the environment's policy.refresh, as
    `vectorops plan` does: a record changed by hand (same id, other metadata) is found and healed at
    `sample` (it fetches and hashes a sample: here every record), and is invisible at `ids`."""
    import json
    import os
    import subprocess
    import sys

    from fixtures.manifests import manifest_text

    root = gitops.repo.root
    envs = gitops.environments({"staging": "v1"}, {"staging": HEAL})
    envs["staging"]["policy"] = {"refresh": policy}
    (root / "vectorops.yaml").write_text(manifest_text(envs))

    def once() -> list[dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-m", "reconciler", "reconcile", "--once", "--log-format", "json"],
                              cwd=root, capture_output=True, text=True, env=dict(os.environ), timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stderr.splitlines()]

    once()
    table = gitops.table("staging")
    victim = min(gitops.ids("staging"))
    before = table.search().where(f"id = '{victim}'").to_list()[0]["metadata"]
    table.update(where=f"id = '{victim}'", values={"metadata": '{"tampered":true}'})
    applied = [e for e in once() if e["action"] == "apply"]
    after = gitops.table("staging").search().where(f"id = '{victim}'").to_list()[0]["metadata"]
    if policy == "sample":
        assert [(e["reason"], e["changes"]) for e in applied] == [("self_heal", {"add": 0, "update": 1, "delete": 0})]
        assert after == before
    else:
        assert applied == [] and after == '{"tampered":true}'


def test_cache_max_size_prunes_the_hash_cache_after_a_cycle_but_keeps_what_it_used(gitops: GitOpsRepo) -> None:
    """An agent plans for days and every re-pin leaves a version's hashes behind: with
    --cache-max-size, a version no cycle used lately goes, logged; the cycle's own stays."""
    import json
    import os
    import subprocess
    import sys

    from fixtures.manifests import manifest_text
    from reconciler.engine.cache_pruning import record_version_use, release_held_versions

    cache = Path(os.environ["VECTOROPS_CACHE_DIR"])
    old = cache / "shards" / "0ld-sig.arrow"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"x" * 2_000_000)
    record_version_use("0ld-sig", "docs@v0", ["shards/0ld-sig"])
    release_held_versions()  # the plan that used it ended a day ago
    a_day_ago = time.time() - 86400
    for path in (old, cache / "used" / "0ld-sig.json"):
        os.utime(path, (a_day_ago, a_day_ago))
    root = gitops.repo.root
    (root / "vectorops.yaml").write_text(manifest_text(gitops.environments({"staging": "v2"}, {"staging": AUTO})))
    proc = subprocess.run([sys.executable, "-m", "reconciler", "reconcile", "--once", "--log-format", "json", "--cache-max-size", "1MB"],
                          cwd=root, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert proc.returncode == 0, events
    (pruned,) = [e for e in events if e["action"] == "cache"]
    assert pruned["result"] == "pruned" and "docs@v0" in pruned["message"] and pruned["removed_versions"] == ["docs@v0"]
    assert not old.exists()
    labels = sorted(json.loads(p.read_text())["label"] for p in (cache / "used").glob("*.json"))
    assert labels == ["docs@v2"]  # the version the cycle planned and applied, kept for the next one

    bad = subprocess.run([sys.executable, "-m", "reconciler", "reconcile", "--once", "--cache-max-size", "big"],
                         cwd=root, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert bad.returncode == 1 and "--cache-max-size 'big' is not a size" in bad.stderr and "Traceback" not in bad.stderr
