"""Every failure leaves a destination as a ``DestinationError`` with a message the user can act on.

Before the contract, LanceDB translated nothing: a damaged table surfaced as "unexpected
RuntimeError ... This is a vectorops bug". Pinecone translated everything into the base class,
so nobody could tell a bad key from a throttled service without reading the text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cli import run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.repo import DatasetRepo
from reconciler.errors import (
    DestinationAuthError,
    DestinationMismatchError,
    DestinationUnavailableError,
)

pytest.importorskip("pinecone")

from reconciler.providers.pinecone import PineconeDestination  # noqa: E402
from tests.pinecone_server.server import Faults, PineconeServer  # noqa: E402


def _apply_v1(folder: Path, repo: DatasetRepo, uri: str = "db") -> Path:
    manifest = write_manifest(folder / "vectorops.yaml", {"staging": environment("v1", lancedb_destination("docs", uri=uri))}, repo=repo.root)
    return manifest


def test_a_damaged_lancedb_table_is_a_destination_error_not_a_bug(tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    manifest = _apply_v1(tmp_path, dataset_repo)
    applied = run_vectorops("-m", str(manifest), "apply", "--auto-approve")
    assert applied.code == 0, applied.output
    for data_file in (tmp_path / "db" / "docs.lance" / "data").iterdir():
        data_file.write_bytes(b"not a lance file")  # what a failing disk or a bad copy leaves
    result = run_vectorops("-m", str(manifest), "plan")
    assert result.code == 1
    assert "Error: lancedb:db#docs: listing ids failed: RuntimeError: lance error" in result.stderr, result.stderr
    assert "check its folder (free space, permissions, intact files)" in result.stderr
    assert "vectorops bug" not in result.stderr and "Traceback" not in result.output


def test_a_lancedb_folder_that_cannot_be_created_is_a_storage_error(tmp_path: Path, dataset_repo: DatasetRepo) -> None:
    (tmp_path / "taken").write_text("a file where the database folder should be")
    manifest = _apply_v1(tmp_path, dataset_repo, uri="taken")
    result = run_vectorops("-m", str(manifest), "apply", "--auto-approve")
    assert result.code == 1
    assert "Error: environment 'staging': opening lancedb:taken#docs failed: FileExistsError" in result.stderr, result.stderr
    assert "Check the destination's settings in the manifest" in result.stderr and "vectorops bug" not in result.stderr


def _pinecone(**kw: object) -> PineconeDestination:
    return PineconeDestination(index="docs", host=None, **kw)  # type: ignore[arg-type]


def test_pinecone_failures_say_which_kind_they_are(pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = _pinecone(retry_timeout=0.3)
    dest.ensure(8, "cosine")
    with pytest.raises(DestinationMismatchError, match="dimension 8"):
        dest.ensure(16, "cosine")
    pinecone_server.faults = Faults(rate_429=1.0, operations=frozenset({"describe_index_stats"}))
    with pytest.raises(DestinationUnavailableError, match="try again shortly"):
        dest.describe()
    pinecone_server.faults = Faults()
    monkeypatch.setenv("OTHER_KEY", "WRONG-KEY-SECRET-123")
    with pytest.raises(DestinationAuthError) as unauthorized:
        _pinecone(api_key_env="OTHER_KEY").describe()
    assert "OTHER_KEY" in str(unauthorized.value) and "WRONG-KEY-SECRET-123" not in str(unauthorized.value)
