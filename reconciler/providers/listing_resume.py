"""Resuming an id listing that failed halfway, and pacing list requests under the rate limit.

Listing a big Pinecone namespace is thousands of pages, each needing the previous page's token.
When retries run out halfway (an outage longer than the retry budget, a laptop losing its
network), the ids listed so far and each part's next page token are saved in the local cache;
the next listing of the same namespace, split the same way, continues from those tokens instead
of starting over. A checkpoint is trusted for ``MAX_AGE_S`` only (records may be written
meanwhile), is removed once a listing completes, and the caller still checks the total against
the namespace's own count, so a stale checkpoint costs a re-listing, never a wrong plan.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import xxhash

from reconciler import caches

MAX_AGE_S = 15 * 60
FORMAT = 2  # 2: the ids in Arrow IPC beside the JSON
#: listed ids kept as one Arrow array per this many (``ListingPart``)
CHUNK_IDS = 65_536


@dataclass
class ListingPart:
    """One prefix's listing: the ids so far, the token of the next page, whether it reached the end.

    The ids are kept as Arrow string arrays of ``CHUNK_IDS`` each (the pages of 100 in between):
    ~20 bytes an id rather than ~100 as Python strings in a list, the difference between ~2 GB and
    ~10 GB for a 100M-record namespace."""

    prefix: str
    chunks: list[pa.Array] = field(default_factory=list)
    token: str | None = None
    done: bool = False
    count: int = 0
    _pending: list[str] = field(default_factory=list)

    def add(self, ids: list[str]) -> None:
        self._pending.extend(ids)
        self.count += len(ids)
        if len(self._pending) >= CHUNK_IDS:
            self._flush()

    def restart(self) -> None:
        self.chunks, self._pending, self.token, self.count = [], [], None, 0

    def ids(self) -> pa.Array:
        self._flush()
        return pa.concat_arrays(self.chunks) if self.chunks else pa.array([], pa.string())

    def kept_chunks(self) -> list[pa.Array]:
        """The ids as kept so far (the part keeps them)."""
        self._flush()
        return list(self.chunks)

    def take_chunks(self) -> list[pa.Array]:
        """The ids as kept (no copy into one array), handed over: the part holds none after."""
        self._flush()
        chunks, self.chunks = self.chunks, []
        return chunks

    def _flush(self) -> None:
        if self._pending:
            self.chunks.append(pa.array(self._pending, pa.string()))
            self._pending = []


class ListingCheckpoint:
    """Where one namespace's interrupted listing is kept: page tokens and counts as JSON, the ids
    listed so far as Arrow IPC beside it (written chunk by chunk: a listing cut off at 50M ids is
    saved without turning them into 50M Python strings first). No secrets."""

    def __init__(self, scope: str, prefixes: list[str]) -> None:
        key = xxhash.xxh3_64_hexdigest(json.dumps([FORMAT, scope, prefixes]).encode())
        self.path: Path = caches.cache_dir() / "listing" / f"{key}.json"
        self.ids_path: Path = self.path.with_suffix(".arrow")
        self.prefixes = prefixes

    def load(self) -> tuple[dict[str, ListingPart], bool]:
        """The parts to list (resumed where a checkpoint says so) and whether it resumed."""
        fresh = {p: ListingPart(p) for p in self.prefixes}
        try:
            doc = json.loads(self.path.read_text())
            if time.time() - float(doc["saved_at"]) > MAX_AGE_S or doc.get("format") != FORMAT:
                return fresh, False
            with pa.memory_map(str(self.ids_path)) as source:
                ids = pa.ipc.open_file(source).read_all().column("id")
            counts = [int(doc["parts"][p]["count"]) for p in self.prefixes]
            if sum(counts) != len(ids):
                return fresh, False  # torn: listed again
            parts, offset = {}, 0
            for p, count in zip(self.prefixes, counts, strict=True):
                saved = doc["parts"][p]
                part = ListingPart(p, token=saved["token"], done=bool(saved["done"]))
                part.chunks, part.count = list(ids.slice(offset, count).chunks), count
                offset += count
                parts[p] = part
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
            return fresh, False
        return parts, any(part.count or part.done for part in parts.values())

    def save(self, parts: dict[str, ListingPart]) -> None:
        doc = {
            "format": FORMAT,
            "saved_at": time.time(),
            "parts": {p: {"count": part.count, "token": part.token, "done": part.done} for p, part in parts.items()},
        }
        schema = pa.schema([("id", pa.string())])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp_ids = self.ids_path.with_name(f".{self.ids_path.name}.{os.getpid()}.tmp")
            with pa.OSFile(str(tmp_ids), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                for p in self.prefixes:
                    for chunk in parts[p].kept_chunks():
                        writer.write_batch(pa.record_batch([chunk], schema=schema))
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp_ids, self.ids_path)
            os.replace(tmp, self.path)
        except (OSError, pa.ArrowException):
            pass  # an optimisation: a listing that cannot be saved is simply listed again

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.ids_path.unlink(missing_ok=True)


class Pacer:
    """At most ``rate`` requests a second across threads: each caller waits for its own slot."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
