"""A Pinecone 404 names what was not found and what to check (issue 15 item 9).

Two places answer 404 in practice: the control plane when `create_index` goes to the wrong place
(a controller host or project that does not hold the index), and the data plane when the
manifest's `host:` points at something that is not (or no longer) the index. Both used to escape
as "unexpected _Missing ... vectorops bug". Real SDK, local Pinecone server, real CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pinecone")

from fixtures.cli import Result, run_vectorops  # noqa: E402
from fixtures.manifests import environment, pinecone_destination, write_manifest  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from tests.pinecone_server import PineconeServer  # noqa: E402

INDEX = "docs-404"


def run(manifest: Path, *args: str) -> Result:
    return run_vectorops("-m", str(manifest), "--no-color", *args)


def assert_clear(result: Result) -> str:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output and "vectorops bug" not in result.output and "_Missing" not in result.output, result.output
    return result.stderr


def test_create_index_answered_404_names_the_index_and_the_control_plane(
    tmp_path: Path, dataset_repo: DatasetRepo, pinecone_server: PineconeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a controller host that is not Pinecone's control plane: every control-plane call answers 404
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", pinecone_server.url + "/not-the-control-plane")
    manifest = write_manifest(tmp_path / "vectorops.yaml", {"prod": environment("v1", pinecone_destination(INDEX))}, repo=dataset_repo.root)
    err = assert_clear(run(manifest, "apply", "--auto-approve"))
    assert f"'{INDEX}'" in err and "404" in err and "not found" in err.lower(), err
    assert "PINECONE_CONTROLLER_HOST" in err and "project" in err, err
    assert INDEX not in [name for name in pinecone_server._indexes], "nothing was created"  # noqa: SLF001


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"], ["status"]])
def test_data_plane_host_answering_404_names_the_host(
    command: list[str], tmp_path: Path, dataset_repo: DatasetRepo, pinecone_server: PineconeServer
) -> None:
    host = pinecone_server.url  # answers, but it is the control plane: no index is served there
    manifest = write_manifest(
        tmp_path / "vectorops.yaml", {"prod": environment("v1", pinecone_destination(INDEX, host=host))}, repo=dataset_repo.root
    )
    err = assert_clear(run(manifest, *command))
    assert host.removeprefix("http://").removeprefix("https://") in err and "404" in err, err
    assert "host:" in err and INDEX in err, err  # what to check: the manifest's host, or drop it to look the index up
