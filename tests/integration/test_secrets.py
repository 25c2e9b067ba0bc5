"""Secrets never leave the environment variable that holds them (SPEC §1, §6; issue 8 item 5).

The whole flow runs on Pinecone (the real SDK over HTTP to the local server) with a recognisable
key in the variable the manifest names, with `-v`, through a wrong key (401), injected faults and a
dead server; then every artefact a user or CI could see is scanned for the key: stdout/stderr, the
saved plan, the exported file, every state/lock/history document, the hash cache and Python
`logging` output at DEBUG. The variable's name deliberately does not look secret (no API_KEY or
TOKEN in it), so redaction cannot rely on guessing from names.
The GitHub Action is run as CI runs it, with a recognisable token that may appear only inside
`::add-mask::` lines.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("pinecone")

from click.testing import CliRunner  # noqa: E402

from fixtures.manifests import environment, pinecone_destination, write_manifest  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402
from reconciler.cli import main  # noqa: E402
from reconciler.engine.state import StateStore  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.providers import open_destination  # noqa: E402
from tests.pinecone_server import PineconeServer  # noqa: E402
from tests.pinecone_server.fixtures import reset_sdk_host_state  # noqa: E402

SECRET = "pcsk_SECRET_canary_1234567890"
WRONG = "pcsk_WRONG_canary_0987654321"
KEY_ENV = "MY_VECTOR_STORE_KEY"  # named in the manifest; deliberately not *_API_KEY
INDEX = "docs-prod"
TOKEN = "ghs_SECRETtoken_canary_ABCDEF123456"


@dataclass
class Flow:
    folder: Path
    manifest: Path
    server: PineconeServer
    outputs: list[str] = field(default_factory=list)

    def pin(self, version: str, repo: Path) -> None:
        write_manifest(self.manifest, {"prod": environment(version, pinecone_destination(INDEX, KEY_ENV))}, repo=repo, metric=None)

    def run(self, *args: str, code: int | tuple[int, ...] = 0) -> str:
        runner = CliRunner()
        with runner.isolation(env={"NO_COLOR": "1"}) as (stdout, stderr, _):
            try:
                main(["-m", str(self.manifest), "-v", *args])
                got = 0
            except SystemExit as exc:
                got = exc.code if isinstance(exc.code, int) else 1
            text = stdout.getvalue().decode() + stderr.getvalue().decode()
        self.outputs.append(f"$ vectorops {' '.join(args)}\n{text}")
        codes = code if isinstance(code, tuple) else (code,)
        assert got in codes, f"vectorops {' '.join(args)} exited {got}\n{text}"
        assert "vectorops bug" not in text, text
        return text


@pytest.fixture
def flow(tmp_path: Path, dataset_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    reset_sdk_host_state()
    server = PineconeServer(api_key=SECRET).start()
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", server.url)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    monkeypatch.setenv(KEY_ENV, SECRET)
    folder = tmp_path / "project"
    folder.mkdir()
    f = Flow(folder, folder / "vectorops.yaml", server)
    f.pin("v1", dataset_repo.root)
    try:
        yield f
    finally:
        server.stop()


def _files_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p, p.read_bytes()


def test_the_whole_flow_leaks_the_key_nowhere(
    flow: Flow, dataset_repo: DatasetRepo, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    planfile = tmp_path / "prod.plan"
    export = tmp_path / "export.parquet"

    flow.run("validate")
    flow.run("plan", "-o", str(planfile))
    flow.run("show", str(planfile))
    flow.run("show", str(planfile), "--json")
    flow.run("apply", str(planfile))
    flow.run("status")
    flow.run("status", "--json")
    flow.run("history", "prod")
    flow.run("drift", "prod", "--refresh", "full")
    flow.run("export", "prod", "--out", str(export))
    flow.run("import", "prod", "--version", "v1", "--auto-approve")

    flow.pin("v2", dataset_repo.root)
    flow.server.fail_next("503", count=2)  # transient faults: retried, converges
    flow.server.fail_next("lost", count=1)
    flow.run("apply", "--auto-approve", "--allow-deletes")
    flow.run("rollback", "prod", "--auto-approve")
    flow.run("plan", "--json", code=(0, 2))

    # the wrong key: the server says 401, and vectorops says so without echoing either key
    monkeypatch.setenv(KEY_ENV, WRONG)
    denied = flow.run("plan", code=1)
    assert "401" in denied and "API key" in denied, denied
    monkeypatch.setenv(KEY_ENV, SECRET)

    # a missing key: named, never guessed from elsewhere
    monkeypatch.delenv(KEY_ENV)
    missing = flow.run("plan", code=1)
    assert KEY_ENV in missing, missing
    monkeypatch.setenv(KEY_ENV, SECRET)

    # artefacts that stay behind: state, lock and history documents in the destination
    dest = open_destination(load_manifest(str(flow.manifest)), "prod")
    store = StateStore(dest)
    documents = json.dumps(
        {
            "state": store.load().model_dump(mode="json"),
            "history": [e.to_doc() for e in store.history()],
            "lock": dest.read_doc("lock"),
            "all": dest.list_docs(""),
        }
    )
    assert "plan" in documents and "import" in documents  # the scan reads real documents
    # everything the server stores, the reserved namespace included
    stored = repr(flow.server.index(INDEX).namespaces.get("__vectorops__").__dict__)

    # a persistent failure with the server gone: the message names the host, never the key
    from reconciler.providers import pinecone as pc

    original = pc.PineconeDestination.__init__

    def short_retries(self: pc.PineconeDestination, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.retry_timeout = 1.0  # the default keeps retrying a dead host for 60 s

    monkeypatch.setattr(pc.PineconeDestination, "__init__", short_retries)
    flow.server.stop()
    flow.run("plan", code=1)

    artefacts: dict[str, bytes] = {
        "outputs": "\n".join(flow.outputs).encode(),
        "logging": caplog.text.encode(),
        "log messages": "\n".join(str(r.__dict__) for r in caplog.records).encode(),
        "plan file": planfile.read_bytes(),
        "export": export.read_bytes(),
        "state documents": documents.encode(),
        "server store": stored.encode(),
    }
    for p, data in _files_bytes(Path(os.environ["VECTOROPS_CACHE_DIR"])):
        artefacts[f"cache {p.name}"] = data
    for p, data in _files_bytes(flow.folder):
        artefacts[f"project {p.name}"] = data
    assert any(k.startswith("cache ") for k in artefacts), "the hash cache was used, so the scan covers it"
    for name, data in artefacts.items():
        for secret in (SECRET, WRONG):
            assert secret.encode() not in data, f"{secret} leaked into {name}"
    assert b"pcsk_" not in artefacts["outputs"], "no fragment of a key either"


# -- the GitHub Action path --------------------------------------------------------------------


def test_github_action_masks_the_token_and_never_prints_it(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from github_fake import FakeGitHub
    from reconciler import github as action
    from tests.integration.test_github_action import GIT_ID, _dataset_repo, action_env

    repo = _dataset_repo(tmp_path)
    with FakeGitHub(token=TOKEN) as gh:
        root = str(Path(action.__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **GIT_ID, **action_env(tmp_path, gh), "PYTHONPATH": pythonpath}
        env["GITHUB_TOKEN"] = TOKEN
        env["PINECONE_API_KEY"] = SECRET
        proc = subprocess.run([sys.executable, "-m", "reconciler.github"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        bodies = gh.bodies(42)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert bodies, "the action ran for real and commented"
    masks = [line for line in proc.stdout.splitlines() if line.startswith("::add-mask::")]
    assert f"::add-mask::{TOKEN}" in masks and f"::add-mask::{SECRET}" in masks
    for secret in (TOKEN, SECRET):
        rest = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::"))
        assert secret not in rest and secret not in proc.stderr
        assert all(secret not in b for b in bodies)
        for p, data in _files_bytes(tmp_path):
            assert secret.encode() not in data, f"{secret} written to {p}"


def test_a_rejected_key_is_named_by_its_variable(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, WRONG)
    denied = flow.run("plan", code=1)
    assert KEY_ENV in denied and WRONG not in denied, denied
