"""The destination contract suite (``reconciler.testing.DestinationContract``) on every destination.

Each class opens one real destination, fresh per test: the in-memory reference, real LanceDB in a
temp folder, and the real Pinecone SDK against the local Pinecone server. A new destination adds
one class here (or in its own package's tests, as examples/vectorops-memory-demo does).
"""

from __future__ import annotations

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
