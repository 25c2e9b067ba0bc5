"""A local fake of the GitHub REST API's issue-comment endpoints, for the Action's tests.

It behaves like api.github.com where the action depends on it: `per_page` (default 30, max 100)
and `page` with `Link` headers (rel="next"/"last"), 401 for a bad token, 403 for a read-only
token on writes (what a fork PR's GITHUB_TOKEN gets), 404 for unknown repos or comments, and 422
for bodies over 65,536 characters. It records every request so tests can check what was sent.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 65_536
BOT_LOGIN = "github-actions[bot]"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


@dataclass
class FakeGitHub:
    """Start with `start()` (or use as a context manager); `url` is the GITHUB_API_URL to use."""

    token: str = "ghs_fakeTOKEN0123456789abcdefXYZ"
    repository: str = "acme/embeddings"
    read_only: bool = False
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _next_id: int = 1000
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test helpers ------------------------------------------------------------------------------

    def add_comment(self, issue: int, body: str, login: str = "someone") -> dict[str, Any]:
        """Seed a comment, as if a person (or another bot) had written it."""
        with self._lock:
            return self._create(issue, body, login)

    def bodies(self, issue: int) -> list[str]:
        return [c["body"] for c in self.comments.get(issue, [])]

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PATCH")]

    # -- the API -----------------------------------------------------------------------------------

    def _create(self, issue: int, body: str, login: str) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        comment = {
            "id": cid,
            "body": body,
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{cid}",
            "html_url": f"https://github.com/{self.repository}/pull/{issue}#issuecomment-{cid}",
        }
        self.comments.setdefault(issue, []).append(comment)
        return comment

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._send(h, 400, {"message": "Problems parsing JSON"})
        auth = h.headers.get("Authorization")
        with self._lock:
            self.requests.append(Request(method, parts.path, query, auth, body))
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return self._send(h, 401, {"message": "Bad credentials"})
            prefix = f"/repos/{self.repository}/issues/"
            if not parts.path.startswith(prefix):
                return self._send(h, 404, {"message": "Not Found"})
            rest = parts.path[len(prefix) :]
            if m := re.fullmatch(r"(\d+)/comments", rest):
                issue = int(m.group(1))
                if method == "GET":
                    return self._list(h, parts.path, issue, query)
                if method == "POST":
                    if err := self._check_write(body):
                        return self._send(h, *err)
                    return self._send(h, 201, self._create(issue, body["body"], BOT_LOGIN))
            if m := re.fullmatch(r"comments/(\d+)", rest):
                found = [c for cs in self.comments.values() for c in cs if c["id"] == int(m.group(1))]
                if not found:
                    return self._send(h, 404, {"message": "Not Found"})
                if method == "GET":
                    return self._send(h, 200, found[0])
                if method == "PATCH":
                    if err := self._check_write(body):
                        return self._send(h, *err)
                    found[0]["body"] = body["body"]
                    return self._send(h, 200, found[0])
            return self._send(h, 404, {"message": "Not Found"})

    def _check_write(self, body: Any) -> tuple[int, dict[str, Any]] | None:
        if self.read_only:
            return 403, {"message": "Resource not accessible by integration"}
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return 422, {"message": "Invalid request.", "errors": [{"message": "body is missing"}]}
        if len(body["body"]) > BODY_LIMIT:
            return 422, {
                "message": "Validation Failed",
                "errors": [{"resource": "IssueComment", "code": "custom", "field": "body",
                            "message": f"body is too long (maximum is {BODY_LIMIT} characters)"}],
            }
        return None

    def _list(self, h: BaseHTTPRequestHandler, path: str, issue: int, query: dict[str, str]) -> None:
        per_page = max(1, min(100, int(query.get("per_page", 30))))
        page = max(1, int(query.get("page", 1)))
        items = self.comments.get(issue, [])
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{self.url}{path}?per_page={per_page}&page=1>; rel="first"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page - 1}>; rel="prev"')
        chunk = items[(page - 1) * per_page : page * per_page]
        self._send(h, 200, chunk, {"Link": ", ".join(links)} if links else {})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
