"""SIGTERM to `vectorops reconcile` mid-apply (SPEC §11): exit 0 within 30 s, the lock released, and
the restarted agent finishes the apply.

The apply is held mid-write with the failpoint ``pause:mid-write`` (after LanceDB's upsert commit,
before its delete commit), so the signal arrives at a known instant of a real apply.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.agent import AgentProcess, GitOpsRepo
from fixtures.cli import run_vectorops
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo

AUTO = {"auto": True}


@pytest.fixture
def held_apply(tmp_path: Path, dataset_repo_copy: DatasetRepo, request: pytest.FixtureRequest) -> Any:
    """v1 deployed; v2 pushed; an agent (shutdown grace: the test's param) whose apply of v2 is
    paused mid-write. Yields (gitops, agent, failpoint file)."""
    gitops = GitOpsRepo(dataset_repo_copy, tmp_path)
    gitops.push_pins({"staging": "v1"}, {"staging": AUTO})
    assert run_vectorops("-m", str(gitops.manifest), "apply", "--auto-approve").code == 0
    gitops.push_pins({"staging": "v2"}, {"staging": AUTO})
    failpoint = tmp_path / "failpoint"
    agent = AgentProcess(gitops, "-v", "--shutdown-grace", str(request.param), env={"VECTOROPS_FAILPOINT": "pause:mid-write", "VECTOROPS_FAILPOINT_FILE": str(failpoint)})
    reached = failpoint.with_name("failpoint.reached")
    deadline = time.monotonic() + 60
    while not reached.exists():
        assert agent.proc.poll() is None and time.monotonic() < deadline, "".join(agent.lines)
        time.sleep(0.05)
    yield gitops, agent, failpoint
    agent.kill()


def status(gitops: GitOpsRepo) -> dict[str, Any]:
    result = run_vectorops("-m", str(gitops.manifest), "status", "staging", "--json")
    assert result.code == 0, result.output
    return result.json["environments"][0]


def finish_with_a_new_agent(gitops: GitOpsRepo, known_versions: KnownVersions) -> None:
    again = AgentProcess(gitops, "-v")
    try:
        applied = again.event("apply", "applied", "staging")
        assert applied["to"]["version"] == "v2"
        assert gitops.ids("staging") == {r["id"] for r in known_versions.v2}
        after = status(gitops)
        assert (after["status"], after["interrupted"], after["lock"]) == ("Synced", None, None)
        assert again.stop() == 0
    finally:
        again.kill()
    history = run_vectorops("-m", str(gitops.manifest), "history", "staging", "--json").json["history"]
    assert [e["result"] for e in history[:2]] == ["success", "interrupted"]


@pytest.mark.parametrize("held_apply", [20], indirect=True)
def test_sigterm_mid_apply_finishes_the_batch_stops_cleanly_and_a_restart_finishes_the_apply(held_apply: Any, known_versions: KnownVersions) -> None:
    gitops, agent, failpoint = held_apply
    sent = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the handler runs within the paused apply's next 50 ms sleep
    failpoint.with_name("failpoint.resume").touch()  # the write batch in flight ends; the apply stops at the next boundary
    assert agent.proc.wait(30) == 0
    assert time.monotonic() - sent < 30
    agent.event("stop", "requested")
    stopped = agent.event("apply", "stopped", "staging")
    assert "next apply" in stopped["message"]

    cut = status(gitops)
    assert cut["lock"] is None, "the lock was left held"
    assert cut["interrupted"]["version"] == "v2" and cut["deployed"]["version"] == "v1"
    finish_with_a_new_agent(gitops, known_versions)


@pytest.mark.parametrize("held_apply", [2], indirect=True)
def test_a_batch_that_does_not_end_is_abandoned_after_the_grace_period(held_apply: Any, known_versions: KnownVersions) -> None:
    gitops, agent, _failpoint = held_apply
    sent = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)  # the failpoint never resumes: the batch hangs
    assert agent.proc.wait(30) == 0
    assert time.monotonic() - sent < 10  # a 2 s grace, then out
    abandoned = agent.event("stop", "abandoned")
    assert "within 2 s" in abandoned["message"] and "next start finishes it" in abandoned["message"]
    cut = status(gitops)
    assert cut["lock"] is None and cut["interrupted"]["version"] == "v2"
    finish_with_a_new_agent(gitops, known_versions)


def test_sigint_while_waiting_exits_0_at_once(tmp_path: Path, dataset_repo_copy: DatasetRepo) -> None:
    gitops = GitOpsRepo(dataset_repo_copy, tmp_path)
    gitops.push_pins({"staging": "v1"}, {"staging": AUTO})
    agent = AgentProcess(gitops, "-v", interval=30)
    try:
        agent.event("apply", "applied", "staging")
        agent.event("cycle", "ended")
        sent = time.monotonic()
        assert agent.stop(signal.SIGINT) == 0
        assert time.monotonic() - sent < 5
        assert agent.events[-1]["action"] == "stop" and agent.events[-1]["result"] == "ok"
    finally:
        agent.kill()
