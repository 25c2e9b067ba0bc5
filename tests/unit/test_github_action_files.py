"""action.yml and the example workflows: valid for GitHub, safe from script injection, per SPEC §8.

Validation is offline: check-jsonschema ships SchemaStore's "github-action" and "github-workflows"
schemas. A run step without `shell:` only shows up there as a confusing oneOf failure, and
`${{ inputs.x }}` pasted into `run:` text is valid but injectable, so both have their own checks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
CHECK = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def all_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return list(doc["runs"].get("steps") or [])
    return [s for job in (doc.get("jobs") or {}).values() for s in job.get("steps") or []]


def shell_problems(doc: dict[str, Any]) -> list[str]:
    return [f"step {s.get('name') or s['run'][:40]!r} has no shell" for s in all_steps(doc) if "run" in s and not s.get("shell")]


def injection_problems(doc: dict[str, Any]) -> list[str]:
    """`${{ ... }}` inside run text is expanded before bash sees it; inputs must come through env."""
    return [f"step {s.get('name')!r} expands an expression in run: {m}" for s in all_steps(doc) if "run" in s
            for m in re.findall(r"\$\{\{[^}]*\}\}", str(s["run"]))]


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK, "check-jsonschema is not installed (it is in the test extra)"
    return subprocess.run([CHECK, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True)


# -- schema validation ---------------------------------------------------------------------------


def test_action_yml_is_valid_for_the_github_action_schema() -> None:
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_workflows_are_valid_for_the_github_workflow_schema() -> None:
    assert {p.name for p in WORKFLOWS} >= {"plan.yml", "apply.yml", "drift.yml"}
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_action(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text(ACTION.read_text().replace("  using: composite", "  usin: composite"))
    assert check_jsonschema("vendor.github-actions", broken).returncode != 0


# -- shells and injection ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ACTION, *WORKFLOWS], ids=lambda p: p.name)
def test_every_run_step_names_its_shell(path: Path) -> None:
    assert shell_problems(load(path)) == []


@pytest.mark.parametrize("path", [ACTION, *WORKFLOWS], ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_run_text(path: Path) -> None:
    assert "${{ inputs." not in "".join(str(s.get("run", "")) for s in all_steps(load(path)))
    assert injection_problems(load(path)) == []


def test_the_checks_catch_a_missing_shell_and_an_inlined_input() -> None:
    doc = load(ACTION)
    step = next(s for s in doc["runs"]["steps"] if "run" in s)
    del step["shell"]
    step["run"] = 'vectorops plan "${{ inputs.environments }}"'
    assert shell_problems(doc) and injection_problems(doc)


# -- the action's contract (SPEC §8) -------------------------------------------------------------


def test_action_inputs_and_outputs_match_the_spec() -> None:
    doc = load(ACTION)
    inputs = doc["inputs"]
    assert set(inputs) == {"command", "manifest", "environments", "args", "comment", "github-token", "python-version"}
    assert inputs["command"]["default"] == "plan"
    assert inputs["manifest"]["default"] == "vectorops.yaml"
    assert inputs["environments"]["default"] == ""
    assert str(inputs["comment"]["default"]) == "true"
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    assert set(doc["outputs"]) == {"has-changes", "exitcode", "plan-json"}
    for name, out in doc["outputs"].items():
        assert out["value"] == "${{ steps.run.outputs.%s }}" % name


def test_action_is_composite_installs_itself_and_runs_the_package() -> None:
    doc = load(ACTION)
    assert doc["runs"]["using"] == "composite"
    steps = doc["runs"]["steps"]
    assert any(str(s.get("uses", "")).startswith("actions/setup-python@v5") for s in steps)
    install = "\n".join(str(s.get("run", "")) for s in steps)
    assert "$GITHUB_ACTION_PATH" in install or "${GITHUB_ACTION_PATH}" in install
    assert "[pinecone]" in install
    run = next(s for s in steps if s.get("id") == "run")
    assert run["run"].strip() == "python -m reconciler.github"
    # every input reaches the logic through env, under the name reconciler/github.py reads
    env = run["env"]
    assert env["VECTOROPS_COMMAND"] == "${{ inputs.command }}"
    assert env["VECTOROPS_MANIFEST"] == "${{ inputs.manifest }}"
    assert env["VECTOROPS_ENVIRONMENTS"] == "${{ inputs.environments }}"
    assert env["VECTOROPS_ARGS"] == "${{ inputs.args }}"
    assert env["VECTOROPS_COMMENT"] == "${{ inputs.comment }}"
    assert env["GITHUB_TOKEN"] == "${{ inputs.github-token }}"


def test_action_depends_on_nothing_outside_its_checkout() -> None:
    text = ACTION.read_text()
    assert "uses: ./" not in text and "github.workspace" not in text
    for s in load(ACTION)["runs"]["steps"]:
        assert "working-directory" not in s


def test_pinecone_extra_is_detected_from_the_manifest(tmp_path: Path) -> None:
    """Run the install step's own shell text with pip replaced by echo, on three manifests."""
    step = next(s for s in load(ACTION)["runs"]["steps"] if "Install" in str(s.get("name")))
    script = step["run"].replace("python -m pip install", "echo")
    cases = {"pinecone": "environments:\n  p:\n    destination: {type: pinecone, index: x}\n",
             "quoted": 'destination:\n  type: "pinecone"\n',
             "lancedb": "# type: pinecone is commented out\ndestination:\n  type: lancedb\n"}
    for name, manifest in cases.items():
        (tmp_path / f"{name}.yaml").write_text(manifest)
        env = {"PATH": "/usr/bin:/bin", "GITHUB_ACTION_PATH": "/action", "VECTOROPS_MANIFEST": str(tmp_path / f"{name}.yaml")}
        out = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                             env=env, capture_output=True, text=True, check=True).stdout
        assert out.strip().endswith("/action[pinecone]" if name != "lancedb" else "/action"), (name, out)


# -- the example workflows -----------------------------------------------------------------------


def workflow(name: str) -> dict[str, Any]:
    return load(ROOT / "examples" / "workflows" / name)


def uses_of_the_action(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in all_steps(doc) if str(s.get("uses", "")).startswith("OWNER/vectorops@")]


def test_plan_workflow_runs_on_pull_requests_with_history_and_comment_permission() -> None:
    doc = workflow("plan.yml")
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on and "vectorops.yaml" in on["pull_request"]["paths"]
    assert doc["permissions"]["pull-requests"] == "write"
    checkout = next(s for s in all_steps(doc) if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    [step] = uses_of_the_action(doc)
    assert step["uses"] == "OWNER/vectorops@v1" and step["with"]["command"] == "plan"


def test_apply_workflow_goes_staging_then_prod_serialised_with_rollback() -> None:
    doc = workflow("apply.yml")
    on = doc.get("on", doc.get(True))
    assert on["push"]["branches"] == ["main"]
    assert doc["concurrency"]["group"] and doc["concurrency"]["cancel-in-progress"] is False
    assert doc["jobs"]["prod"]["needs"] == "staging"
    for job, env in (("staging", "staging"), ("prod", "prod")):
        steps = doc["jobs"][job]["steps"]
        apply = next(s for s in steps if str(s.get("uses", "")).startswith("OWNER/vectorops@"))
        assert (apply["with"]["command"], apply["with"]["environments"]) == ("apply", env)
        rollback = next(s for s in steps if "vectorops rollback" in str(s.get("run", "")))
        assert rollback["if"].startswith("failure()") and rollback["env"]["TARGET_ENV"] == env
    assert "PINECONE_API_KEY" in doc["env"] and "secrets." in doc["env"]["PINECONE_API_KEY"]


def test_drift_workflow_is_scheduled_and_runs_drift() -> None:
    doc = workflow("drift.yml")
    on = doc.get("on", doc.get(True))
    assert on["schedule"][0]["cron"].split()[1] == "*"  # hourly
    [step] = uses_of_the_action(doc)
    assert step["with"]["command"] == "drift"


@pytest.mark.parametrize("name", ["plan.yml", "apply.yml", "drift.yml"])
def test_secrets_come_from_github_secrets(name: str) -> None:
    text = (ROOT / "examples" / "workflows" / name).read_text()
    for var in ("PINECONE_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert re.search(rf"{var}: \$\{{\{{ secrets\.{var} \}}\}}", text), var
