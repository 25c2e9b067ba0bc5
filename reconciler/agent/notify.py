"""Webhook notifications: a JSON event POSTed on every apply, failure and drift found.

Off unless ``VECTOROPS_WEBHOOK_URL`` is set (a Slack/Teams bridge, an alert manager, a chat-ops
bot). The body is documented in the README ("Running the agent"); it is built from the event's
JSON, which holds versions, counts and redacted messages only, and redacted once more here. With
``VECTOROPS_WEBHOOK_SECRET`` set, each request carries ``X-Vectorops-Signature: sha256=<hex>``,
the HMAC-SHA256 of the body, so the receiver can tell the agent from anyone else (the secret
itself is never sent). Posting happens on a background thread with a short timeout: a slow or
dead receiver delays no cycle, and its failures are logged, never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

from reconciler import __version__
from reconciler.agent.events import Event, Reporter
from reconciler.redact import redact

URL_VARIABLE = "VECTOROPS_WEBHOOK_URL"
SECRET_VARIABLE = "VECTOROPS_WEBHOOK_SECRET"
TIMEOUT_S = 5.0
SCHEMA = "vectorops.agent.event/v1"

#: which events are sent, and as what
_KINDS = {
    ("apply", "applied"): "apply",
    ("apply", "failed"): "failure",
    ("apply", "blocked"): "failure",
    ("apply", "validation_failed"): "failure",
    ("plan", "failed"): "failure",
    ("fetch", "failed"): "failure",
    ("load", "invalid"): "failure",
    ("plan", "drifted"): "drift",
}


def webhook_body(event: Event, kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """The JSON a receiver gets (documented in the README)."""
    doc = event.to_json()
    body = {
        "schema": SCHEMA,
        "event": kind,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "environment": doc.pop("environment"),
        "action": doc.pop("action"),
        "result": doc.pop("result"),
        "message": doc.pop("message", None),
        "cycle": doc.pop("cycle"),
        "source": source,
        "agent": {"vectorops_version": __version__},
        **doc,
    }
    return json.loads(redact(json.dumps(body)))


class Webhook:
    """A listener that queues matching events and posts them from its own thread."""

    def __init__(self, url: str, secret: str | None, source: dict[str, Any], reporter: Reporter | None = None) -> None:
        self.url = url
        self._secret = secret.encode() if secret else None
        self.source = source
        self.reporter = reporter  # where delivery failures are logged
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="vectorops-webhook", daemon=True)
        self._thread.start()

    @staticmethod
    def from_environment(source: dict[str, Any], reporter: Reporter | None = None) -> Webhook | None:
        url = os.environ.get(URL_VARIABLE)
        return Webhook(url, os.environ.get(SECRET_VARIABLE), source, reporter) if url else None

    def __call__(self, event: Event) -> None:
        if event.action == "webhook" or event.level == "debug":
            return  # never notify about notifying, nor repeat a state already sent
        kind = _KINDS.get((event.action, event.result))
        if kind is None:
            return
        with contextlib.suppress(queue.Full):  # the receiver is down for long: drop rather than grow without bound
            self._queue.put_nowait(webhook_body(event, kind, dict(self.source)))

    def close(self, timeout: float = TIMEOUT_S) -> None:
        """Send what is queued (bounded by ``timeout``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            self._post(body)

    def _post(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"vectorops/{__version__}"}
        if self._secret is not None:
            headers["X-Vectorops-Signature"] = "sha256=" + hmac.new(self._secret, data, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if self.reporter is not None:
                self.reporter.emit(
                    Event(cycle=body.get("cycle", 0), action="webhook", result="failed", environment=body.get("environment"),
                          level="warning", message=redact(f"could not deliver the {body['event']} event to the webhook: {exc}"))
                )
