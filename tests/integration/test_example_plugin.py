"""A destination from another package: install examples/plugin-jsondir, use `type: jsondir` (SPEC §7).

The example is a separate distribution with its own pyproject.toml and entry point. It is
installed here with pip into a folder of its own (``--target``, no dependencies: vectorops is
already there) and the CLI runs in a fresh process with that folder on its path, as it would
after ``pip install``. Nothing in ``reconciler/`` names it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.manifests import environment, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo
from reconciler.providers import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin-jsondir"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed by pip into a folder of its own (built from a copy: builds leave files)."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, work / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    fast = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("wheel") and importlib.util.find_spec("setuptools") else []
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *fast, "--target", str(site), str(source)],
        capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return site


def vectorops(manifest: Path, *args: str, site: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site) if site else "", str(ROOT)) if p)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "-m", str(manifest), "--no-color", *args],
        capture_output=True, text=True, env=env, cwd=manifest.parent, timeout=300, check=False,
    )


def test_an_installed_plugin_type_is_planned_applied_and_tracked_through_the_cli(
    plugin_site: Path, dataset_repo: DatasetRepo, known_versions: KnownVersions, tmp_path: Path
) -> None:
    destination = {"type": "jsondir", "path": "indexes", "name": "docs_demo"}
    manifest = write_manifest(tmp_path / "vectorops.yaml", {"demo": environment("v1", destination)}, repo=dataset_repo.root)

    missing = vectorops(manifest, "validate", site=None)
    assert missing.returncode == 1 and "No installed package provides destination type 'jsondir'" in missing.stderr

    applied = vectorops(manifest, "apply", "--auto-approve", site=plugin_site)
    assert applied.returncode == 0, applied.stderr
    stored = json.loads((tmp_path / "indexes" / "docs_demo" / "records.json").read_text())
    assert set(stored) == {r["id"] for r in known_versions.v1}

    replanned = vectorops(manifest, "plan", "--detailed-exitcode", site=plugin_site)
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr  # nothing left to do
    status = json.loads(vectorops(manifest, "status", "--json", site=plugin_site).stdout)["environments"][0]
    assert (status["status"], status["destination"], status["deployed"]["version"]) == ("Synced", "jsondir:indexes#docs_demo", "v1")


def test_the_plugin_needs_nothing_from_inside_vectorops() -> None:
    """The type exists only in the example package: no module of vectorops mentions it."""
    assert "jsondir" not in registry.BUILTIN and "jsondir" not in registry.KNOWN_PACKAGES
    mentions = [p for p in (ROOT / "reconciler").rglob("*") if p.is_file() and p.suffix in (".py", ".json") and "jsondir" in p.read_text()]
    assert mentions == []
    assert "vectorops.destinations" in (EXAMPLE / "pyproject.toml").read_text()
