"""A destination whose client library is not installed: one message naming the extra, exit 1.

Each destination's client ships in its own extra (`vectorops[pinecone]`, `[qdrant]`, `[pgvector]`),
so a user who installs plain `vectorops` and writes `type: qdrant` must be told what to install,
not shown an ImportError. The CLI runs in a real subprocess in which the client package cannot be
imported: ``sys.modules[name] = None`` is Python's documented way to make ``import name`` raise
ImportError, exactly what an interpreter without the package does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.manifests import (  # noqa: E402
    environment,
    pgvector_destination,
    pinecone_destination,
    qdrant_destination,
    write_manifest,
)
from fixtures.repo import DatasetRepo  # noqa: E402

_RUN_WITHOUT = (
    "import sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "from reconciler.cli import main\n"
    "main(sys.argv[2:])\n"
)

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # type: (modules that are absent, destination, extra the message must name)
    "qdrant": ("qdrant_client", qdrant_destination("docs", path="qdrant"), "vectorops[qdrant]"),
    "pgvector": ("psycopg,pgvector", pgvector_destination("docs", dsn_env="DOCS_PG_DSN"), "vectorops[pgvector]"),
    "pinecone": ("pinecone", pinecone_destination("docs", api_key_env="DOCS_PINECONE_KEY"), "vectorops[pinecone]"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_destination_without_its_client_names_the_extra(kind: str, command: str, tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    missing, destination, extra = CASES[kind]
    manifest = write_manifest(tmp_path / "vectorops.yaml", {"prod": environment("v1", destination)}, repo=dataset_repo.root)
    env = {**os.environ, "DOCS_PG_DSN": "postgresql://u:pw-not-shown@127.0.0.1:9/db", "DOCS_PINECONE_KEY": "pc-key-not-shown"}
    args = ["-m", str(manifest), "--no-color", command] + (["--auto-approve"] if command == "apply" else [])
    done = subprocess.run([sys.executable, "-c", _RUN_WITHOUT, missing, *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert extra in out, out
    assert "Traceback" not in out and "vectorops bug" not in out, out
    assert "pw-not-shown" not in out and "pc-key-not-shown" not in out
    assert not (tmp_path / "qdrant").exists(), "nothing is written when the client is missing"


def test_the_agent_without_prometheus_client_names_the_agent_extra(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _RUN_WITHOUT, "prometheus_client", "reconcile", "--once"], capture_output=True,
                          text=True, env=dict(os.environ), cwd=tmp_path, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "pip install 'vectorops[agent]'" in out and "Traceback" not in out, out
