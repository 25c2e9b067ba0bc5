"""The destination contract suite (``reconciler.testing.DestinationContract``) on every destination.

Each class opens one real destination, fresh per test: the in-memory reference, real LanceDB in a
temp folder, and the real Pinecone SDK against the local Pinecone server. A new destination adds
one class here (or in its own package's tests, as examples/vectorops-memory-demo does).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest

from reconciler.providers.lancedb import LanceDBSettings
from reconciler.providers.memory import MemoryDestination, MemorySettings
from reconciler.providers.settings import DestinationContext
from reconciler.testing import DestinationContract, Opener


def _context(tmp_path: Path) -> DestinationContext:
    return DestinationContext(environment="contract", folder=tmp_path)


class TestMemory(DestinationContract):
    @pytest.fixture
    def open_destination(self, tmp_path: Path) -> Opener:
        settings = MemorySettings(type="memory", name=f"contract-{uuid.uuid4().hex}")
        yield lambda: settings.open(_context(tmp_path))
        MemoryDestination.forget(settings.name)


class TestLanceDB(DestinationContract):
    @pytest.fixture
    def open_destination(self, tmp_path: Path) -> Opener:
        settings = LanceDBSettings(type="lancedb", uri="db", table="docs")
        return lambda: settings.open(_context(tmp_path))


class TestPinecone(DestinationContract):
    @pytest.fixture
    def open_destination(self, tmp_path: Path, pinecone_server: object) -> Opener:
        pytest.importorskip("pinecone")
        from reconciler.providers.pinecone import PineconeSettings

        settings = PineconeSettings(type="pinecone", index="contract", namespace="docs")
        return lambda: settings.open(_context(tmp_path))


def _example_plugin_contract() -> type[DestinationContract]:
    """examples/plugin-jsondir's own contract test class, run here too so the template never rots."""
    example = Path(__file__).resolve().parents[2] / "examples" / "plugin-jsondir"
    if str(example) not in sys.path:
        sys.path.append(str(example))
    spec = importlib.util.spec_from_file_location("jsondir_contract", example / "tests" / "test_contract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TestJsonDir  # type: ignore[no-any-return]


TestExamplePluginJsonDir = _example_plugin_contract()


class TestPgvector(DestinationContract):
    """A real PostgreSQL + pgvector (tests/fixtures/postgres.py), a schema of its own per test."""

    @pytest.fixture
    def open_destination(self, tmp_path: Path, pg_env: str, pg_schema: str) -> Opener:
        pytest.importorskip("psycopg")
        from fixtures.postgres import DSN_ENV
        from reconciler.providers.pgvector import PgvectorSettings

        settings = PgvectorSettings.model_validate({"type": "pgvector", "dsn_env": DSN_ENV, "schema": pg_schema, "table": "docs"})
        return lambda: settings.open(_context(tmp_path))


class TestPgvectorHalfvec(DestinationContract):
    """The same server with ``vector_type: halfvec``: float16 components, declared as
    ``capabilities.vector_precision``, so the checks compare vectors rounded to float16."""

    @pytest.fixture
    def open_destination(self, tmp_path: Path, pg_env: str, pg_schema: str) -> Opener:
        pytest.importorskip("psycopg")
        from fixtures.postgres import DSN_ENV
        from reconciler.providers.pgvector import PgvectorSettings

        settings = PgvectorSettings.model_validate(
            {"type": "pgvector", "dsn_env": DSN_ENV, "schema": pg_schema, "table": "docs", "vector_type": "halfvec"}
        )
        return lambda: settings.open(_context(tmp_path))


class TestQdrant(DestinationContract):
    """qdrant-client's embedded local mode in a folder of its own per test."""

    @pytest.fixture
    def open_destination(self, tmp_path: Path, qdrant_folder: Path) -> Opener:
        pytest.importorskip("qdrant_client")
        from reconciler.providers.qdrant import QdrantSettings

        settings = QdrantSettings.model_validate({"type": "qdrant", "path": str(qdrant_folder), "collection": "docs"})
        return lambda: settings.open(_context(tmp_path))
