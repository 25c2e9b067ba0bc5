"""vectorops' own documents (state, lock, history) as a destination stores them: JSON text.

Every provider keeps its documents as JSON text beside the records (a LanceDB side table, a
PostgreSQL table, a Qdrant collection, Pinecone chunks). Reading one back is the same everywhere,
and so is what a user is told when the text was edited by hand into something unreadable: one
message naming the destination and the document, and the repair (`vectorops import`). The engine
then decides what an unreadable document means (a lock of unknown holder, a skipped history entry,
or state that must be rebuilt).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.errors import StateError

REPAIR_HINT = "Run `vectorops import ENV --version REV` to re-adopt the destination and rewrite its state."


def parse_document(text: object, address: str, key: str, *, where: str = "") -> dict[str, Any]:
    """The stored document ``key`` as the JSON object it must be, or a ``StateError`` saying why not.

    ``where``: where the document lives inside the destination, when that helps find it (e.g.
    `` in '__vectorops__'``, Pinecone's namespace).
    """
    name = f"{address}: vectorops state record '{key}'{where}"
    if not isinstance(text, (str, bytes, bytearray)):
        raise StateError(f"{name} is malformed (no JSON text)", hint=REPAIR_HINT)
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise StateError(f"{name} is not valid JSON ({reason})", hint=REPAIR_HINT) from None
    if not isinstance(doc, dict):
        raise StateError(f"{name} is malformed (not a JSON object)", hint=REPAIR_HINT)
    return doc


__all__ = ["REPAIR_HINT", "parse_document"]
