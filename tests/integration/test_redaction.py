"""A server that echoes the API key cut, repeated or in part never gets a piece of it printed (issue 15 item 3).

A local HTTP server stands in for Pinecone's data plane (``host:`` set, so the SDK talks only to
it) and answers every request with an error whose body echoes the key: many copies (one of them
straddles the 500-character cut of the message), or a 24-character prefix. Both a permanent error
(400) and one retried until the retry loop gives up (503) are driven through the CLI; the output
must not hold any 8-character piece of the key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("pinecone")

from fixtures.cli import run_vectorops  # noqa: E402
from fixtures.manifests import environment, pinecone_destination, write_manifest  # noqa: E402
from fixtures.repo import DatasetRepo  # noqa: E402

KEY = "pcsk_4f9Zq1Lw8XyTb2Rm7NcVh3Gs6Kd0Pj5Ea9Uo1Ix"  # 44 characters, like a real key
KEY_ENV = "MY_VECTOR_STORE_KEY"  # not a secret-looking name: redaction must not rely on it


class _EchoServer:
    def __init__(self, status: int, body: str) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                data = owner.body.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.status, self.body = status, body
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _pieces(secret: str, n: int = 8) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


def _assert_no_piece(text: str) -> None:
    leaked = [p for p in _pieces(KEY) if p in text]
    assert not leaked, f"pieces of the key leaked: {leaked}\n{text}"
    assert "pcsk_" not in text, text


BODIES = {
    # copies of the key end to end: whatever the headers before it, one copy straddles the cut
    "repeated across the cut": "invalid api key " + " ".join([KEY] * 30),
    "key glued to itself": "key=" + KEY * 12,
    "24-character prefix": f"unknown key prefix {KEY[:24]}... (check your project)",
}


@pytest.fixture
def manifest(tmp_path: Path, dataset_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    yield tmp_path / "project" / "vectorops.yaml"


def _pin(manifest: Path, repo: Path, host: str) -> None:
    dest = pinecone_destination("docs-prod", KEY_ENV, host=host)
    write_manifest(manifest, {"prod": environment("v1", dest)}, repo=repo, metric=None)


@pytest.mark.parametrize("shape", list(BODIES))
def test_a_permanent_error_echoing_the_key_shows_no_piece_of_it(manifest: Path, dataset_repo: DatasetRepo, shape: str) -> None:
    with _EchoServer(400, BODIES[shape]) as server:
        _pin(manifest, dataset_repo.root, server.url)
        result = run_vectorops("-m", str(manifest), "-v", "plan")
    assert result.code == 1, result.output
    assert "vectorops bug" not in result.output and "400" in result.output, result.output
    _assert_no_piece(result.output)


@pytest.mark.parametrize("shape", ["repeated across the cut", "24-character prefix"])
def test_an_error_retried_until_the_loop_gives_up_shows_no_piece_of_the_key(
    manifest: Path, dataset_repo: DatasetRepo, monkeypatch: pytest.MonkeyPatch, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    from reconciler.providers import pinecone as pc

    original = pc.PineconeDestination.__init__

    def short_retries(self: pc.PineconeDestination, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        self.retry_timeout = 0.5  # the default retries for 60 s

    monkeypatch.setattr(pc.PineconeDestination, "__init__", short_retries)
    caplog.set_level("DEBUG")
    with _EchoServer(503, BODIES[shape]) as server:
        _pin(manifest, dataset_repo.root, server.url)
        result = run_vectorops("-m", str(manifest), "-v", "plan")
    assert result.code == 1, result.output
    assert "attempts" in result.output, result.output  # the message from after the retry loop
    _assert_no_piece(result.output)
    _assert_no_piece(caplog.text)  # the retries' debug lines too
