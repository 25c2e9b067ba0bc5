"""The agent's webhook (VECTOROPS_WEBHOOK_URL): a JSON event on apply, drift and failure, signed
with VECTOROPS_WEBHOOK_SECRET, received by a real local HTTP server; no secret in any body."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fixtures.agent import AgentProcess, GitOpsRepo
from fixtures.repo import DatasetRepo

SECRET = "whsec-0123456789abcdef"
API_KEY = "pcsk-do-not-leak-4f9a2b7c1e"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vectorops"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.requests]

    def wait_for(self, kind: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if e["event"] == kind]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no {kind} event; received {self.events()}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_apply_drift_and_failure_events_are_posted_signed_and_without_secrets(tmp_path: Path, dataset_repo_copy: DatasetRepo, receiver: Receiver) -> None:
    gitops = GitOpsRepo(dataset_repo_copy, tmp_path)
    gitops.push_pins({"staging": "v1"}, {"staging": {"auto": True}})
    agent = AgentProcess(gitops, env={"VECTOROPS_WEBHOOK_URL": receiver.url, "VECTOROPS_WEBHOOK_SECRET": SECRET, "VECTOROPS_TEST_API_KEY": API_KEY})
    try:
        applied = receiver.wait_for("apply")
        assert (applied["schema"], applied["environment"], applied["result"]) == ("vectorops.agent.event/v1", "staging", "applied")
        assert applied["to"]["version"] == "v1" and applied["changes"] == {"add": 1000, "update": 0, "delete": 0}
        assert applied["source"]["repo"].endswith("remote.git#main")

        gitops.table("staging").delete("id = 'doc-3'")
        drift = receiver.wait_for("drift")
        assert drift["environment"] == "staging" and drift["drift_records"] == 1 and "self_heal is off" in drift["message"]

        gitops.push_manifest(gitops.manifest.read_text().replace("dataset: docs", "dataset: docz"), "a wrong dataset name")
        failure = receiver.wait_for("failure")
        assert failure["action"] == "load" and failure["result"] == "invalid" and "docz" in failure["message"]
        time.sleep(2)  # later cycles: the same drift and the same bad commit are not posted again
        kinds = [e["event"] for e in receiver.events()]
        assert kinds.count("drift") == 1 and kinds.count("failure") == 1, kinds
        assert agent.stop() == 0
    finally:
        agent.kill()

    for headers, body in receiver.requests:
        assert headers["content-type"] == "application/json"
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-vectorops-signature"], expected)
        text = body.decode()
        assert SECRET not in text and API_KEY not in text and "vector" not in json.loads(text)
