"""The GitHub Action's logic against a local fake of the GitHub REST API (tests/github_fake.py).

Most tests feed a plan dict straight into `publish` (the seam after the CLI has run), so they
exercise the real HTTP client, pagination, size limits, summary and outputs without depending on
the CLI. One end-to-end test runs `python -m reconciler.github` for real on a git + DVC repo.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.plan_json import with_predicates

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from github_fake import BODY_LIMIT, FakeGitHub  # noqa: E402
from reconciler import github as action  # noqa: E402

PR = 42
API_KEY = "pcsk_SECRETkey_9f8e7d6c5b4a"
MARKER = "<!-- vectorops:plan manifest=vectorops.yaml -->"


# -- helpers -------------------------------------------------------------------------------------


def env_plan(name: str, add: int = 3, update: int = 1, delete: int = 0, *, id_len: int = 8, samples: int = 3,
             current: bool = True, blocked: str | None = None) -> dict[str, Any]:
    ids = lambda op: [f"{op}-{i}-".ljust(id_len, "x") for i in range(samples)]  # noqa: E731
    return {
        "name": name,
        "dataset": "docs",
        "destination": f"lancedb:.vectorops/lancedb#docs_{name}",
        "current": {"version": "docs-v1", "commit": "1" * 40, "digest": "d1"} if current else None,
        "desired": {"version": "docs-v2", "commit": "2" * 40, "digest": "d2"},
        "changes": {"add": add, "update": update, "delete": delete},
        "drift": {"level": "ids", "expected_count": 100, "actual_count": 100, "missing": 0, "unexpected": 0,
                  "modified": None},
        "blocked": blocked,
        "samples": {"add": ids("a"), "update": ids("u"), "delete": ids("d") if delete else []},
    }


def plan_of(*envs: dict[str, Any]) -> dict[str, Any]:
    return {"format_version": "1", "has_changes": any(sum(e["changes"].values()) for e in envs),
            "environments": [with_predicates(e) for e in envs]}


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def action_env(tmp_path: Path, gh: FakeGitHub, **over: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": PR, "pull_request": {"number": PR}}))
    (tmp_path / "temp").mkdir(exist_ok=True)
    env = {
        "VECTOROPS_COMMAND": "plan",
        "VECTOROPS_MANIFEST": "vectorops.yaml",
        "VECTOROPS_ENVIRONMENTS": "",
        "VECTOROPS_ARGS": "",
        "VECTOROPS_COMMENT": "true",
        "GITHUB_TOKEN": gh.token,
        "GITHUB_API_URL": gh.url,
        "GITHUB_REPOSITORY": gh.repository,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "RUNNER_TEMP": str(tmp_path / "temp"),
        "PINECONE_API_KEY": API_KEY,
    }
    env.update(over)
    return env


def publish(env: dict[str, str], plan: dict[str, Any] | None, exitcode: int, **kw: Any) -> tuple[int, str]:
    """What `main` does after the CLI ran: mask secrets, then publish. Returns (rc, log text)."""
    cfg = action.Config.from_env(env)
    out = io.StringIO()
    action.mask_secrets(cfg, out)
    rc = action.publish(plan, exitcode, cfg, out=out, **kw)
    return rc, out.getvalue()


def read_outputs(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the runner does (name<<DELIM ... DELIM); last write wins."""
    values: dict[str, str] = {}
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"([\w-]+)<<(\S+)", lines[i])
        if m:
            end = lines.index(m.group(2), i + 1)
            values[m.group(1)] = "\n".join(lines[i + 1 : end])
            i = end
        i += 1
    return values


def without_masks(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if not line.startswith("::add-mask::"))


# -- the sticky comment --------------------------------------------------------------------------


def test_first_run_creates_one_sticky_comment(tmp_path: Path, gh: FakeGitHub) -> None:
    rc, log = publish(action_env(tmp_path, gh), plan_of(env_plan("staging")), 2)

    assert rc == 0  # 2 = "changes present" is success for plan
    [body] = gh.bodies(PR)
    assert body.startswith(MARKER + "\n")
    assert "**Plan:** 3 to add, 1 to update, 0 to delete across 1 environment." in body
    assert [r.method for r in gh.writes()] == ["POST"]
    assert "pull/42#issuecomment-" in log


def test_second_run_updates_the_comment_instead_of_adding_one(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh)
    publish(env, plan_of(env_plan("staging", add=3)), 2)
    first_id = gh.comments[PR][0]["id"]

    rc, _ = publish(env, plan_of(env_plan("staging", add=17)), 2)

    assert rc == 0
    assert len(gh.comments[PR]) == 1
    assert gh.comments[PR][0]["id"] == first_id
    assert "17 to add" in gh.bodies(PR)[0] and "3 to add" not in gh.bodies(PR)[0]
    assert [r.method for r in gh.writes()] == ["POST", "PATCH"]
    assert gh.writes()[-1].path.endswith(f"/issues/comments/{first_id}")


def test_comment_is_found_beyond_the_first_page_of_other_comments(tmp_path: Path, gh: FakeGitHub) -> None:
    for i in range(130):
        gh.add_comment(PR, f"review comment {i}")
    # someone quoting our marker mid-text must not have their comment taken over
    gh.add_comment(PR, f"as the bot said: {MARKER} ...")
    env = action_env(tmp_path, gh)
    publish(env, plan_of(env_plan("staging")), 2)
    ours = gh.comments[PR][-1]
    assert ours["body"].startswith(MARKER) and ours["user"]["login"] == "github-actions[bot]"
    for i in range(120):
        gh.add_comment(PR, f"later comment {i}")  # ours is now on page 2 of 3
    gh.requests.clear()

    publish(env, plan_of(env_plan("staging", add=9)), 2)

    assert len(gh.comments[PR]) == 130 + 1 + 1 + 120
    assert [r.method for r in gh.writes()] == ["PATCH"]
    assert "9 to add" in ours["body"]
    pages = [r.query.get("page", "1") for r in gh.requests if r.method == "GET"]
    assert pages == ["1", "2"]  # followed Link rel="next", stopped once found
    assert all(r.query.get("per_page") == "100" for r in gh.requests if r.method == "GET")


def test_one_comment_per_manifest(tmp_path: Path, gh: FakeGitHub) -> None:
    publish(action_env(tmp_path, gh), plan_of(env_plan("staging")), 2)
    publish(action_env(tmp_path, gh, VECTOROPS_MANIFEST="other/vectorops.yaml"), plan_of(env_plan("prod")), 2)
    publish(action_env(tmp_path, gh), plan_of(env_plan("staging", add=5)), 2)

    bodies = gh.bodies(PR)
    assert len(bodies) == 2
    assert bodies[0].startswith(MARKER) and "5 to add" in bodies[0]
    assert bodies[1].startswith("<!-- vectorops:plan manifest=other/vectorops.yaml -->")


def test_a_very_long_plan_is_cut_within_the_comment_limit(tmp_path: Path, gh: FakeGitHub) -> None:
    envs = [env_plan(f"env{i:02d}", add=1000 + i, id_len=300, samples=10) for i in range(20)]
    plan = plan_of(*envs)
    env = action_env(tmp_path, gh)

    rc, _ = publish(env, plan, 2)

    assert rc == 0  # the fake answers 422 to anything over 65,536 characters
    [body] = gh.bodies(PR)
    assert len(body) <= BODY_LIMIT
    assert "**Plan:**" in body
    for e in envs:  # the table keeps every environment
        assert f"| `{e['name']}` |" in body
    assert body.rstrip().endswith("_Details cut to fit the size limit: the full plan, with every sample id, is in this run's job summary._")
    assert 0 < body.count("<details>") == body.count("</details>") < len(envs)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert len(summary) > BODY_LIMIT  # the summary holds what the comment had to drop
    assert summary.count("<details>") == len(envs)


def test_the_summary_is_capped_at_one_mebibyte(tmp_path: Path, gh: FakeGitHub) -> None:
    envs = [env_plan(f"env{i:03d}", id_len=3000, samples=10) for i in range(60)]
    for e in envs:  # multi-byte ids: the cap is in bytes, not characters
        e["samples"] = {k: [s.replace("x", "é") for s in v] for k, v in e["samples"].items()}
    env = action_env(tmp_path, gh, VECTOROPS_COMMENT="false")

    rc, _ = publish(env, plan_of(*envs), 2)

    assert rc == 0
    data = Path(env["GITHUB_STEP_SUMMARY"]).read_bytes()
    assert len(data) <= 1024 * 1024
    text = data.decode("utf-8")  # not cut inside a character
    assert "**Plan:**" in text and text.count("| `env") == 60  # summary and table kept
    assert 0 < text.count("<details>") == text.count("</details>") < 60  # whole details dropped
    assert "cut to fit the size limit: the full plan is in the file named by the `plan-json` output" in text


# -- summary and outputs -------------------------------------------------------------------------


def test_summary_and_outputs_are_written(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh)
    plan = plan_of(env_plan("staging"), env_plan("prod", add=0, update=0, current=True))

    publish(env, plan, 2)

    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("### vectorops plan — vectorops.yaml")
    assert "| `staging` |" in summary and "| `prod` |" in summary
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert out["has-changes"] == "true"
    assert out["exitcode"] == "2"
    assert json.loads(Path(out["plan-json"]).read_text()) == plan
    assert Path(out["plan-json"]).parent == Path(env["RUNNER_TEMP"])


def test_no_changes_reports_false_and_exit_zero(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh)
    same = env_plan("staging", add=0, update=0)
    same["desired"] = same["current"]

    rc, _ = publish(env, plan_of(same), 0)

    assert rc == 0
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (out["has-changes"], out["exitcode"]) == ("false", "0")
    assert "**No changes.**" in gh.bodies(PR)[0]


def _drifted_plan() -> dict[str, Any]:
    drifted = env_plan("prod", add=0, update=0)
    drifted["desired"] = drifted["current"]
    drifted["drift"].update(missing=4)
    plan = plan_of(drifted)
    plan["has_changes"] = False
    return plan


def test_drift_found_fails_the_step_and_says_where(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule")

    rc, log = publish(env, _drifted_plan(), 2)

    assert rc == 1  # a scheduled drift check exists to tell someone: the step (and job) fails
    assert "::error title=vectorops found drift::drift found in prod:" in log
    assert "fail-on-drift: false" in log
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (out["has-changes"], out["exitcode"]) == ("true", "2")
    assert out["plan-json"].endswith("vectorops-drift.json")
    assert "Drift found in `prod`" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert gh.requests == []  # not a pull request: no comment


def test_plan_with_drift_only_reports_has_changes(tmp_path: Path, gh: FakeGitHub) -> None:
    """`plan --detailed-exitcode` exits 2 on drift alone (SPEC §3); the outputs say so too."""
    env = action_env(tmp_path, gh)
    drifted = env_plan("prod", add=0, update=0)
    drifted["desired"] = drifted["current"]
    drifted["drift"].update(unexpected=2)
    plan = {**plan_of(drifted), "has_changes": False, "has_drift": True}

    rc, _ = publish(env, plan, 2)

    assert rc == 0
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (out["has-changes"], out["exitcode"]) == ("true", "2")
    assert "Drift found in `prod`" in gh.bodies(PR)[0]


def test_fail_on_drift_false_only_reports_it(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule",
                     VECTOROPS_FAIL_ON_DRIFT="false")

    rc, log = publish(env, _drifted_plan(), 2)

    assert rc == 0
    assert "::error" not in log
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (out["has-changes"], out["exitcode"]) == ("true", "2")


def test_no_drift_passes_and_fail_on_drift_is_checked(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule")
    clean = env_plan("prod", add=0, update=0)
    rc, log = publish(env, plan_of(clean), 0)
    assert rc == 0 and "::error" not in log
    with pytest.raises(action.ActionError, match="input `fail-on-drift` is 'sometimes'; use true or false"):
        action.Config.from_env(action_env(tmp_path, gh, VECTOROPS_FAIL_ON_DRIFT="sometimes"))


def test_plan_with_drift_does_not_fail_the_step(tmp_path: Path, gh: FakeGitHub) -> None:
    """fail-on-drift is about `drift`; a plan showing drift (and its repair) is the plan's job."""
    rc, _ = publish(action_env(tmp_path, gh), _drifted_plan(), 2)
    assert rc == 0


def test_failed_apply_fails_the_step_and_says_so(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh, VECTOROPS_COMMAND="apply", GITHUB_EVENT_NAME="push")
    rc, log = publish(env, plan_of(env_plan("staging")), 1, applied=False, error="canaries: 2 of 10 passed")
    assert rc == 1
    assert "::error title=vectorops apply failed::" in log
    assert ":x: **Apply failed**" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert read_outputs(Path(env["GITHUB_OUTPUT"]))["exitcode"] == "1"


def test_a_failed_plan_replaces_the_stale_comment(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh)
    publish(env, plan_of(env_plan("staging")), 2)

    rc, _ = publish(env, None, 1, error="vectorops.yaml:4:3: unknown key 'pathh'\n  did you mean 'path'?")

    assert rc == 1
    [body] = gh.bodies(PR)
    assert "failed" in body and "unknown key 'pathh'" in body and "**Plan:**" not in body
    out = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (out["has-changes"], out["exitcode"], out["plan-json"]) == ("false", "1", "")


def test_outside_pull_requests_or_with_comment_off_no_api_call(tmp_path: Path, gh: FakeGitHub) -> None:
    publish(action_env(tmp_path, gh, GITHUB_EVENT_NAME="push"), plan_of(env_plan("staging")), 2)
    publish(action_env(tmp_path, gh, VECTOROPS_COMMENT="false"), plan_of(env_plan("staging")), 2)
    assert gh.requests == []
    assert Path(tmp_path / "summary.md").read_text().count("### vectorops plan") == 2


def test_pull_request_target_comments_too(tmp_path: Path, gh: FakeGitHub) -> None:
    publish(action_env(tmp_path, gh, GITHUB_EVENT_NAME="pull_request_target"), plan_of(env_plan("staging")), 2)
    assert len(gh.bodies(PR)) == 1


# -- permissions and secrets ---------------------------------------------------------------------


def test_read_only_token_fails_with_the_permission_to_add(tmp_path: Path, gh: FakeGitHub) -> None:
    gh.read_only = True
    env = action_env(tmp_path, gh)

    rc, log = publish(env, plan_of(env_plan("staging")), 2)

    assert rc == 1
    assert "permissions: pull-requests: write" in log and "fork" in log
    assert "Resource not accessible by integration" in log
    assert gh.token not in without_masks(log)
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text()  # the summary is still there to read


def parse_workflow_command(line: str) -> tuple[str, dict[str, str], str]:
    """(command, properties, message) as the runner parses `::command k=v,k=v::message`, strictly:
    a property value may hold no raw ':' or ',' (GitHub's docs: escape them as %3A and %2C)."""
    m = re.fullmatch(r"::([\w-]+)(?: ([^:]*))?::(.*)", line)
    assert m, f"not a workflow command the runner can parse: {line!r}"
    unescape = lambda t: t.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")  # noqa: E731
    props = {}
    for pair in (m.group(2) or "").split(","):
        if pair:
            key, _, value = pair.partition("=")
            props[key] = unescape(value)
    return m.group(1), props, unescape(m.group(3))


def test_a_title_with_a_colon_is_escaped_in_the_workflow_command(tmp_path: Path, gh: FakeGitHub) -> None:
    gh.read_only = True  # the PR comment fails: its error's title is "vectorops: PR comment failed"

    rc, log = publish(action_env(tmp_path, gh), plan_of(env_plan("staging")), 2)

    assert rc == 1
    errors = [parse_workflow_command(line) for line in log.splitlines() if line.startswith("::error")]
    assert [(c, p) for c, p, _ in errors] == [("error", {"title": "vectorops: PR comment failed"})]
    assert "permissions: pull-requests: write" in errors[0][2]  # the message keeps its colons as they are


def test_bad_token_says_so_without_printing_it(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh, GITHUB_TOKEN="ghs_wrongTOKENwrongTOKEN123")
    rc, log = publish(env, plan_of(env_plan("staging")), 2)
    assert rc == 1
    assert "rejected the token (401" in log
    assert "ghs_wrongTOKENwrongTOKEN123" not in without_masks(log)


def test_secrets_are_masked_first_and_never_appear_anywhere(tmp_path: Path, gh: FakeGitHub) -> None:
    env = action_env(tmp_path, gh)
    # a secret that leaked into plan text (here a blocked sentence) is scrubbed before publishing
    leaky = env_plan("prod", blocked=f"destination refused key {API_KEY}")

    rc, log = publish(env, plan_of(env_plan("staging"), leaky), 2)

    assert rc == 0
    assert set(log.splitlines()[:2]) == {f"::add-mask::{API_KEY}", f"::add-mask::{gh.token}"}  # first
    assert gh.token not in without_masks(log) and API_KEY not in without_masks(log)
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    written += gh.bodies(PR)
    assert written and not any(gh.token in w or API_KEY in w for w in written)
    assert "destination refused key \\*\\*\\*" in gh.bodies(PR)[0]
    # the token went only where it belongs: the Authorization header
    assert all(r.authorization == f"Bearer {gh.token}" for r in gh.requests)


def test_bad_inputs_fail_with_the_input_named(tmp_path: Path, gh: FakeGitHub) -> None:
    out = io.StringIO()
    rc = action.main(action_env(tmp_path, gh, VECTOROPS_COMMAND="destroy"), out)
    assert rc == 1
    assert "::error title=vectorops::input `command` is 'destroy'" in out.getvalue()
    with pytest.raises(action.ActionError, match="input `args`"):
        action.Config.from_env(action_env(tmp_path, gh, VECTOROPS_ARGS="--refresh 'full"))


def test_config_splits_environments_and_args(tmp_path: Path, gh: FakeGitHub) -> None:
    cfg = action.Config.from_env(action_env(
        tmp_path, gh, VECTOROPS_ENVIRONMENTS=" staging  prod ", VECTOROPS_ARGS="--refresh full --allow-deletes"))
    assert cfg.environments == ["staging", "prod"]
    assert action.cli_argv(cfg, ["plan", *cfg.environments, *cfg.args])[1:] == [
        "-m", "reconciler", "-m", "vectorops.yaml", "plan", "staging", "prod", "--refresh", "full", "--allow-deletes"]


# -- end to end: the real CLI on a real git + DVC repo -------------------------------------------

GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _sh(cwd: Path, *argv: str) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ID, "DVC_NO_ANALYTICS": "1"})


def _dataset_repo(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    _sh(repo, "git", "init", "-q", "-b", "main")
    _sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    ids = [f"doc-{i}" for i in range(5)]
    vectors = [[float(i), 1.0, 0.0, 0.5] for i in range(5)]
    table = pa.table({"id": ids, "vector": pa.array(vectors, pa.list_(pa.float32())), "title": [f"t{i}" for i in range(5)]})
    pq.write_table(table, repo / "data" / "docs.parquet")
    _sh(repo, sys.executable, "-m", "dvc", "add", "-q", "data/docs.parquet")
    (repo / "vectorops.yaml").write_text(
        "version: 1\n"
        "datasets:\n"
        "  docs:\n"
        "    path: data/docs.parquet\n"
        "    embedding: {model: test/model, dimension: 4}\n"
        "environments:\n"
        "  staging:\n"
        "    dataset: docs\n"
        "    version: docs-v1\n"
        "    destination: {type: lancedb, uri: .vectorops/lancedb, table: docs_staging}\n"
    )
    (repo / ".gitignore").write_text(".vectorops/\n")
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-q", "-m", "docs v1")
    _sh(repo, "git", "tag", "docs-v1")
    return repo


def test_end_to_end_plan_comment_then_apply(tmp_path: Path, gh: FakeGitHub) -> None:
    repo = _dataset_repo(tmp_path)

    def run(**over: str) -> subprocess.CompletedProcess[str]:
        root = str(Path(action.__file__).resolve().parents[1])  # works installed or from a checkout
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **GIT_ID, **action_env(tmp_path, gh, **over), "PYTHONPATH": pythonpath}
        return subprocess.run([sys.executable, "-m", "reconciler.github"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)

    planned = run()
    assert planned.returncode == 0, planned.stdout + planned.stderr
    out = read_outputs(tmp_path / "output.txt")
    assert (out["has-changes"], out["exitcode"]) == ("true", "2")
    assert json.loads(Path(out["plan-json"]).read_text())["environments"][0]["changes"]["add"] == 5
    [body] = gh.bodies(PR)
    assert body.startswith(MARKER) and "5 to add" in body
    assert (tmp_path / "temp" / "vectorops.plan").is_file()

    applied = run(VECTOROPS_COMMAND="apply", GITHUB_EVENT_NAME="push")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "**Applied**" in (tmp_path / "summary.md").read_text()

    again = run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert read_outputs(tmp_path / "output.txt")["has-changes"] == "false"
    [body] = gh.bodies(PR)
    assert "**No changes.**" in body
    for p in (planned, applied, again):
        assert gh.token not in without_masks(p.stdout) and gh.token not in p.stderr


def test_the_hash_cache_is_pruned_to_cache_max_size_after_the_command_but_never_what_it_used(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """actions/cache saves the hash cache after the job; it only grows by itself, and a repository's
    caches share 10 GB. A version no run used for two hours goes; the one this run read stays."""
    from reconciler.engine.cache_pruning import record_version_use, release_held_versions

    repo = _dataset_repo(tmp_path)
    cache = tmp_path / "hash-cache"
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(cache))
    old = cache / "shards" / "0ld-sig.arrow"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 3_000_000)
    record_version_use("0ld-sig", "docs@v0", ["shards/0ld-sig"])
    release_held_versions()  # the run that used it ended two hours ago
    two_hours_ago = time.time() - 7200
    for path in (old, cache / "used" / "0ld-sig.json"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    root = str(Path(action.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **GIT_ID, **action_env(tmp_path, gh, VECTOROPS_CACHE_MAX_SIZE="1MB"), "PYTHONPATH": pythonpath}
    done = subprocess.run([sys.executable, "-m", "reconciler.github"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cache prune --max-size 1MB --keep-recent" in done.stdout and "docs@v0" in done.stdout
    assert not old.exists() and not (cache / "used" / "0ld-sig.json").exists()
    [used] = (cache / "used").glob("*.json")  # the version this run planned, and its hash table
    assert json.loads(used.read_text())["label"].startswith("docs@") and list((cache / "index").glob("*.arrow"))
    assert read_outputs(tmp_path / "output.txt")["exitcode"] == "2"

    without = subprocess.run(
        [sys.executable, "-m", "reconciler.github"], cwd=repo, env={**env, "VECTOROPS_CACHE_MAX_SIZE": ""},
        capture_output=True, text=True, timeout=300,
    )
    assert without.returncode == 0 and "cache prune" not in without.stdout  # cache off (or the input empty): never pruned


TWO_ENVS = (
    "version: 1\n"
    "datasets:\n"
    "  docs:\n"
    "    path: data/docs.parquet\n"
    "    embedding: {model: test/model, dimension: 4}\n"
    "environments:\n"
    "  staging:\n"
    "    dataset: docs\n"
    "    version: STAGING\n"
    "    destination: {type: lancedb, uri: .vectorops/lancedb, table: docs_staging}\n"
    "  prod:\n"
    "    dataset: docs\n"
    "    version: PROD\n"
    "    requires: [staging]\n"
    "    destination: {type: lancedb, uri: .vectorops/lancedb, table: docs_prod}\n"
)


def test_apply_job_of_an_environment_with_nothing_to_do_stays_green(tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 1: a merge that re-pins only staging must not turn the prod job red (`requires`
    gates moving forward; prod, with nothing to do, is not moving)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fixtures.cli import run_vectorops

    repo = _dataset_repo(tmp_path)
    manifest = repo / "vectorops.yaml"

    def pin(staging: str, prod: str) -> None:
        manifest.write_text(TWO_ENVS.replace("STAGING", staging).replace("PROD", prod))
        _sh(repo, "git", "commit", "-q", "-am", f"pin staging {staging}, prod {prod}")

    def cli(*args: str) -> None:
        result = run_vectorops("-m", str(manifest), *args)
        assert result.code == 0, result.output

    pin("docs-v1", "docs-v1")
    cli("apply", "staging", "--auto-approve")
    cli("apply", "prod", "--auto-approve")
    table = pa.table({"id": [f"doc-{i}" for i in range(6)], "vector": pa.array([[float(i), 0.0, 1.0, 0.5] for i in range(6)], pa.list_(pa.float32()))})
    pq.write_table(table, repo / "data" / "docs.parquet")
    _sh(repo, sys.executable, "-m", "dvc", "add", "-q", "data/docs.parquet")
    _sh(repo, "git", "commit", "-q", "-am", "docs v2")
    _sh(repo, "git", "tag", "docs-v2")
    pin("docs-v2", "docs-v1")  # the merge: staging moves on, prod stays
    cli("apply", "staging", "--auto-approve")  # the staging job

    monkeypatch.chdir(repo)
    out = io.StringIO()
    env = {**os.environ, **GIT_ID, **action_env(tmp_path, gh, VECTOROPS_COMMAND="apply", VECTOROPS_ENVIRONMENTS="prod", GITHUB_EVENT_NAME="push")}
    rc = action.main(env, out)  # the prod job, running the real CLI
    assert rc == 0, out.getvalue()
    outputs = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (outputs["exitcode"], outputs["has-changes"]) == ("0", "false")
    plan = json.loads(Path(outputs["plan-json"]).read_text())
    assert plan["environments"][0]["blocked"] is None
    assert "blocked" not in out.getvalue()


def test_end_to_end_drift_fails_the_step_unless_told_not_to(tmp_path: Path, gh: FakeGitHub) -> None:
    import lancedb

    repo = _dataset_repo(tmp_path)
    root = str(Path(action.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    base = {**os.environ, **GIT_ID, "PYTHONPATH": pythonpath, "VECTOROPS_CACHE_DIR": str(tmp_path / "hashes")}
    applied = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--auto-approve"], cwd=repo, env=base,
                             capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def drift(**over: str) -> subprocess.CompletedProcess[str]:
        env = {**base, **action_env(tmp_path, gh, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule", **over)}
        return subprocess.run([sys.executable, "-m", "reconciler.github"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)

    clean = drift()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    lancedb.connect(str(repo / ".vectorops" / "lancedb")).open_table("docs_staging").delete("id = 'doc-3'")

    found = drift()
    assert found.returncode == 1, found.stdout + found.stderr
    assert "::error title=vectorops found drift::drift found in staging" in found.stdout
    assert read_outputs(tmp_path / "output.txt")["exitcode"] == "2"
    reported = drift(VECTOROPS_FAIL_ON_DRIFT="false")
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert read_outputs(tmp_path / "output.txt")["has-changes"] == "true"


# -- the subprocess flow, against a stand-in that follows the CLI's contract ---------------------
# Until the CLI lands this checks our side of the contract (argv, files, exit codes, log wrapping);
# the end-to-end test above checks it against the real CLI.

STAND_IN = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STAND_IN_LOG"], "a") as f:
    f.write(json.dumps({"argv": args, "token_seen": "GITHUB_TOKEN" in os.environ}) + "\n")
cmd = args[2]
if cmd in ("plan", "drift"):
    if "-o" in args:
        open(args[args.index("-o") + 1], "w").write("saved plan")
    print("reading destination", file=sys.stderr)
    print(json.dumps(json.loads(os.environ["STAND_IN_PLAN"])))
    sys.exit(int(os.environ.get("STAND_IN_RC", "2")))
if cmd == "show":
    print("Plan: 3 to add")
if cmd == "apply":
    print("::set-output name=has-changes::pwned")
    sys.exit(int(os.environ.get("STAND_IN_APPLY_RC", "0")))
'''


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "stand_in_cli.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(action, "cli_argv", lambda cfg, args: [sys.executable, str(script), "-m", cfg.manifest, *args])
    return tmp_path / "calls.jsonl"


def run_main(tmp_path: Path, gh: FakeGitHub, log: Path, **over: str) -> tuple[int, str, list[dict[str, Any]]]:
    env = {**action_env(tmp_path, gh, **over), "STAND_IN_LOG": str(log),
           "STAND_IN_PLAN": json.dumps(plan_of(env_plan("staging")))}
    env.update(over)
    out = io.StringIO()
    rc = action.main(env, out)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rc, out.getvalue(), calls


def test_plan_runs_the_cli_with_the_contracted_arguments(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, log, calls = run_main(tmp_path, gh, stand_in, VECTOROPS_ENVIRONMENTS="staging",
                              VECTOROPS_ARGS="--refresh full")
    plan_file = str(tmp_path / "temp" / "vectorops.plan")
    assert rc == 0, log
    assert [c["argv"] for c in calls] == [
        ["-m", "vectorops.yaml", "plan", "staging", "--json", "-o", plan_file, "--detailed-exitcode", "--refresh", "full"],
        ["-m", "vectorops.yaml", "show", plan_file],
    ]
    assert not any(c["token_seen"] for c in calls)  # the CLI never gets the GitHub token
    assert "reading destination" in log and "Plan: 3 to add" in log
    assert json.loads((tmp_path / "temp" / "vectorops-plan.json").read_text()) == plan_of(env_plan("staging"))
    assert len(gh.bodies(PR)) == 1


def test_apply_applies_the_saved_plan_with_cli_output_fenced(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, log, calls = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="apply", GITHUB_EVENT_NAME="push",
                              VECTOROPS_ARGS="--allow-deletes")
    plan_file = str(tmp_path / "temp" / "vectorops.plan")
    assert rc == 0, log
    assert [c["argv"][2:] for c in calls] == [
        ["plan", "--json", "-o", plan_file, "--detailed-exitcode", "--allow-deletes"],
        ["apply", plan_file],  # exactly the saved plan; the approval is recorded in it
    ]
    # the CLI's output cannot issue workflow commands: it is inside ::stop-commands::
    fence = r"::stop-commands::(\w+)\n(.*?)::\1::"
    assert any("::set-output name=has-changes::pwned" in body for _, body in re.findall(fence, log, re.DOTALL))
    assert "pwned" not in re.sub(fence, "", log, flags=re.DOTALL)
    assert "**Applied**" in Path(tmp_path / "summary.md").read_text()


def test_apply_failure_is_the_step_failure(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, _, calls = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="apply", GITHUB_EVENT_NAME="push",
                            STAND_IN_APPLY_RC="1")
    assert rc == 1 and len(calls) == 2
    assert read_outputs(tmp_path / "output.txt")["exitcode"] == "1"


def test_a_plan_error_stops_before_apply(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, _, calls = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="apply", STAND_IN_RC="1")
    assert rc == 1
    assert [c["argv"][2] for c in calls] == ["plan"]
    assert "failed" in gh.bodies(PR)[0]


def test_drift_runs_drift_json_and_fails_the_step_on_drift(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, log, calls = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="drift", VECTOROPS_ENVIRONMENTS="prod",
                              GITHUB_EVENT_NAME="schedule")
    assert rc == 1
    assert [c["argv"][2:] for c in calls] == [["drift", "prod", "--json"]]
    assert read_outputs(tmp_path / "output.txt")["exitcode"] == "2"
    assert "::error title=vectorops found drift::" in log


def test_drift_with_fail_on_drift_off_passes(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, log, _ = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule",
                          VECTOROPS_FAIL_ON_DRIFT="false")
    assert rc == 0 and "::error" not in log
    assert read_outputs(tmp_path / "output.txt")["has-changes"] == "true"


def test_drift_that_finds_nothing_passes(tmp_path: Path, gh: FakeGitHub, stand_in: Path) -> None:
    rc, log, _ = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND="drift", GITHUB_EVENT_NAME="schedule",
                          STAND_IN_RC="0")
    assert rc == 0 and "::error" not in log


# -- a LanceDB table on the runner's own disk ----------------------------------------------------

LANCEDB_MANIFEST = """\
version: 1
datasets:
  docs: {path: data/docs.parquet, embedding: {model: m, dimension: 4}}
environments:
  local: {dataset: docs, version: v1, destination: {type: lancedb, uri: .vectorops/lancedb, table: t}}
  default_uri: {dataset: docs, version: v1, destination: {type: lancedb, table: t2}}
  outside: {dataset: docs, version: v1, destination: {type: lancedb, uri: /srv/lancedb, table: t3}}
  cloud: {dataset: docs, version: v1, destination: {type: lancedb, uri: "s3://bucket/lancedb", table: t}}
  pine: {dataset: docs, version: v1, destination: {type: pinecone, index: docs}}
"""


def _warned(log: str) -> list[str]:
    return re.findall(r"^::warning title=vectorops LanceDB table on the runner disk::environment '(\w+)'", log, re.MULTILINE)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_local_lancedb_uri_on_a_hosted_runner_is_warned_about(
    tmp_path: Path, gh: FakeGitHub, stand_in: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the action refuses a manifest outside the checkout
    manifest = tmp_path / "vectorops.yaml"
    manifest.write_text(LANCEDB_MANIFEST)
    rc, log, _ = run_main(tmp_path, gh, stand_in, VECTOROPS_COMMAND=command, VECTOROPS_MANIFEST=str(manifest),
                          GITHUB_EVENT_NAME="push", RUNNER_ENVIRONMENT="github-hosted")
    assert rc == 0, log
    assert _warned(log) == ["local", "default_uri", "outside"]  # s3:// and Pinecone outlive the runner
    assert "vanish after this job" in log and "s3://" in log
    # the warning comes before the CLI runs, outside the ::stop-commands:: fence, so the runner shows it
    assert log.index("::warning") < log.index("::stop-commands::")


def test_a_self_hosted_runner_is_warned_only_about_paths_inside_the_workspace(
    tmp_path: Path, gh: FakeGitHub, stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the action refuses a manifest outside the checkout
    manifest = tmp_path / "vectorops.yaml"
    manifest.write_text(LANCEDB_MANIFEST)
    rc, log, _ = run_main(tmp_path, gh, stand_in, VECTOROPS_MANIFEST=str(manifest), GITHUB_EVENT_NAME="push",
                          RUNNER_ENVIRONMENT="self-hosted", GITHUB_WORKSPACE=str(tmp_path))
    assert rc == 0, log
    assert _warned(log) == ["local", "default_uri"]  # /srv/lancedb survives the job there
    rc, log, _ = run_main(tmp_path, gh, stand_in, VECTOROPS_MANIFEST=str(manifest), GITHUB_EVENT_NAME="push",
                          RUNNER_ENVIRONMENT="github-hosted", VECTOROPS_ENVIRONMENTS="cloud pine")
    assert _warned(log) == []  # only the selected environments are considered


def test_the_variable_a_manifest_names_for_its_key_is_masked_whatever_its_name(tmp_path: Path) -> None:
    from reconciler.github import Config, mask_secrets

    manifest = tmp_path / "vectorops.yaml"
    manifest.write_text(
        "version: 1\nenvironments:\n  prod:\n    destination: {type: pinecone, index: x, api_key_env: MY_VECTOR_STORE_KEY}\n"
    )
    env = {
        "VECTOROPS_MANIFEST": str(manifest),
        "MY_VECTOR_STORE_KEY": "pcsk_canary_value_42",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_TOKEN": "ghs_token_value",
    }
    out = io.StringIO()
    mask_secrets(Config.from_env(env), out)
    assert "::add-mask::pcsk_canary_value_42" in out.getvalue().splitlines()
