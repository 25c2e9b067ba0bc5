"""Shared pytest fixture: a running local Pinecone server with the SDK's environment pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pinecone_server.server import PineconeServer

API_KEY = "pc-local-SECRET-9f8e7d6c5b4a"


def reset_sdk_host_state() -> None:
    """Forget the SDK's per-host retry budget and bulk gate (internal API, hence guarded)."""
    try:
        from pinecone._internal.bulk.registry import get_registry
        from pinecone._internal.http_client import get_budget_registry

        get_budget_registry()._reset()
        get_registry()._reset()
    except (ImportError, AttributeError):  # another SDK version: nothing process-global to reset
        pass


@pytest.fixture
def pinecone_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PineconeServer]:
    """A fresh server per test; PINECONE_CONTROLLER_HOST and PINECONE_API_KEY point the SDK at it.

    The SDK keeps process-global retry budgets and concurrency gates keyed by bare host name
    (every local server is "127.0.0.1"), so they are reset here: one test's injected faults must
    not silently switch off the SDK's retries in the next test. A request the server failed to
    handle (answered 500, a server bug) fails the test at teardown, whatever the client made of it.
    """
    reset_sdk_host_state()
    srv = PineconeServer(api_key=API_KEY).start()
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", srv.url)
    monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
    try:
        yield srv
    finally:
        srv.stop()
    srv.raise_unexpected_errors()
