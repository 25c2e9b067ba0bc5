"""Keep secrets and forged lines out of every message: the one place text is made safe to show.

``redact`` masks secrets: the values of secret-looking environment variables, every value
registered with ``register_secret`` (the Pinecone key from the variable the manifest names, the
GitHub token), and credentials in URLs. Servers echo keys in error bodies, cut, repeated or in
part, so not only exact copies are masked: every run of 8 or more characters taken from a secret
is. Callers redact *before* cutting a text to length, or a cut copy would slip through.

``printable`` escapes control characters in a value that is about to be shown (a dataset id, a
server's error text), so a CR/LF, an ANSI escape or a ``::`` GitHub workflow command inside data
can neither forge a line in a CI log nor recolour a terminal.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata

_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|ACCESS_KEY|CREDENTIALS)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
MIN_EXACT = 6  # shorter values would shred ordinary text (and the runner masks them anyway)
MIN_PIECE = 8  # any run of this many characters of a secret is masked
MASK = "***"

_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in everything ``redact`` sees from now on, whatever variable it came from."""
    if value and len(value.strip()) >= MIN_EXACT:
        with _registered_lock:
            _registered.add(value)


def secret_values(extra: list[str] | None = None) -> list[str]:
    """Every known secret, longest first."""
    values = set(_guessed())
    with _registered_lock:
        values |= _registered
    values |= {v for v in extra or [] if v and len(v) >= MIN_EXACT}
    return sorted(values, key=len, reverse=True)


def _guessed() -> list[str]:
    """Values of variables whose names say they are secret (…_TOKEN, …_API_KEY, …)."""
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_EXACT]


def redact(text: str, extra: list[str] | None = None) -> str:
    """``text`` with every secret, and every 8+ character piece of one, replaced by ``***``.

    A variable guessed secret by its name alone whose value is a path on this machine
    (``GOOGLE_APPLICATION_CREDENTIALS=/path/key.json``) is masked only where it appears whole:
    pieces of a path would shred every message that names a nearby file.
    """
    if not text:
        return text
    spans: list[tuple[int, int]] = []
    with _registered_lock:
        known = set(_registered) | {v for v in extra or [] if v and len(v) >= MIN_EXACT}
    for secret in sorted(known | set(_guessed()), key=len, reverse=True):
        whole_only = secret not in known and os.sep in secret and os.path.exists(secret)
        spans.extend(_occurrences(text, secret, whole_only))
    if spans:
        text = _mask(text, spans)
    return _URL_CREDENTIALS.sub(MASK + "@", text)


def _occurrences(text: str, secret: str, whole_only: bool = False) -> list[tuple[int, int]]:
    """Spans of ``text`` made of pieces of ``secret`` at least ``MIN_PIECE`` long (or all of it)."""
    pieces = [secret] if len(secret) < MIN_PIECE or whole_only else {secret[i:i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1)}
    spans = []
    for piece in pieces:
        start = text.find(piece)
        while start != -1:
            spans.append((start, start + len(piece)))
            start = text.find(piece, start + 1)
    return spans


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    out: list[str] = []
    pos = 0
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:  # overlapping or touching pieces are one masked run
            end = max(end, e)
            continue
        out.append(text[pos:start] + MASK)
        pos, start, end = end, s, e
    out.append(text[pos:start] + MASK)
    out.append(text[end:])
    return "".join(out)


# -- control characters ----------------------------------------------------------------------

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
_WORKFLOW_COMMAND = re.compile(r"^(\s*):(?=:)")


def is_control(ch: str) -> bool:
    """C0, DEL and C1 controls, and the Unicode line and paragraph separators."""
    return unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029"


def has_control(value: str, allow: str = "") -> bool:
    return any(is_control(ch) and ch not in allow for ch in value)


def printable(value: object) -> str:
    """``value`` as text that stays on one line and cannot start a GitHub workflow command.

    Control characters become visible escapes (``\\n``, ``\\e``, ``\\x07``, ``\\u2028``); a
    leading ``::`` becomes ``:\\:``, as the runner reads a line that starts with ``::`` (after
    blanks) as a command.
    """
    text = str(value)
    if any(is_control(ch) for ch in text):
        text = "".join(_escape(ch) if is_control(ch) else ch for ch in text)
    if "::" in text:
        text = _WORKFLOW_COMMAND.sub(r"\1:\\", text)
    return text


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable_lines(text: str) -> str:
    """A whole message: its own line breaks kept, every other control character escaped."""
    if not any(is_control(ch) and ch not in "\n\t" for ch in text):
        return text
    return "".join(_escape(ch) if is_control(ch) and ch not in "\n\t" else ch for ch in text)
