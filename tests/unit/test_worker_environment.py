"""The hashing workers' environment (``executors.local.WORKER_ENV``): set for the processes the local
executor starts, never over what the user set, and this process's environment left as it was."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from reconciler.engine.executors import local


def _environment_of_a_child() -> dict[str, str]:
    return {key: os.environ.get(key, "") for key in local.WORKER_ENV}


def test_workers_get_the_settings_and_this_process_keeps_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in local.WORKER_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the user's own value wins
    with local._worker_environment(), multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process sees the environment at its start
        seen = pool.apply(_environment_of_a_child)
    assert seen == {"MIMALLOC_PURGE_DELAY": "-1", "OPENBLAS_NUM_THREADS": "3"}
    assert "MIMALLOC_PURGE_DELAY" not in os.environ and os.environ["OPENBLAS_NUM_THREADS"] == "3"
