"""Shared fixtures: real git + DVC dataset repos, a local Pinecone server, an isolated cache."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed set of examples so a submission's result is reproducible;
# locally they explore new examples on every run (and report a reproducible blob on failure).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

from fixtures.postgres import pg_env, pg_schema, postgres_dsn  # noqa: F401
from fixtures.pytest_fixtures import (  # noqa: F401
    dataset_clone,
    dataset_repo,
    dataset_repo_copy,
    known_versions,
    make_dataset_repo,
    qdrant_folder,
)
from tests.pinecone_server.fixtures import pinecone_server  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own hash cache and no analytics; the machine's config never leaks in."""
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path_factory.mktemp("vectorops-cache")))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("VECTOROPS_ACTOR", "tester@ci")
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
