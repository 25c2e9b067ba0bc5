"""Memory of an id listing held until it is checked (issue 19): Pinecone's listing of a namespace.

A plan at `ids` lists every id of the namespace, 100 a page, and (when the listing ran under several
prefixes at once) checks their total against the namespace's count before anything is handed on.
Until then the ids are held. This measures holding N listed ids the two ways vectorops has done it,
each in a fresh process (peak RSS over the process's start, ids ``doc-000000042``):

* ``python-list``: every page appended to a list of Python strings, then one Arrow array (before);
* ``chunks``: ``listing_resume.ListingPart`` — pages gathered into Arrow arrays of 65,536 ids,
  handed on as those chunks (``PineconeDestination.id_batches``), never joined (now).

And what saving a checkpoint of a listing cut off there adds: every id in the JSON document (before)
or the ids in Arrow IPC beside it (``ListingCheckpoint``, now).

    python bench/listing_memory.py --ids 10000000
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hold(way: str, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    import pyarrow as pa

    from reconciler.providers.listing_resume import ListingPart

    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    held: list[str] = []
    part = ListingPart("")
    for first in range(0, n, 100):
        page = [f"doc-{i:09d}" for i in range(first, min(n, first + 100))]
        if way == "python-list":
            held.extend(page)
        else:
            part.add(page)
    if way.startswith("checkpoint"):  # a listing cut off here: what saving its checkpoint adds
        import json
        import os
        import tempfile
        import time

        from reconciler.providers.listing_resume import ListingCheckpoint

        folder = tempfile.mkdtemp(prefix="vectorops-listing-")
        os.environ["VECTOROPS_CACHE_DIR"] = folder
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        began = time.perf_counter()
        if way == "checkpoint-json":  # the earlier format: every id in the JSON document
            Path(folder, "c.json").write_text(json.dumps({"parts": {"": {"ids": part.ids().to_pylist()}}}))
        else:
            ListingCheckpoint("bench", [""]).save({"": part})
        took = time.perf_counter() - began
        size = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, took, size)
        return
    listed = pa.array(held, pa.string()) if way == "python-list" else pa.chunked_array(part.take_chunks(), pa.string())
    assert len(listed) == n
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--hold", choices=("python-list", "chunks", "checkpoint-json", "checkpoint-arrow"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        hold(args.hold, args.ids)
        return
    print(f"holding {args.ids:,} listed ids (peak RSS over the process's start, MB; bytes an id)")
    for way in ("python-list", "chunks"):
        out = subprocess.run([sys.executable, __file__, "--ids", str(args.ids), "--hold", way], capture_output=True, text=True, check=True)
        mb = float(out.stdout.strip())
        print(f"  {way:12s} {mb:8.0f} MB  {mb * 2**20 / args.ids:6.1f} B/id  (projected to 100M ids: {mb * 1e8 / args.ids / 1024:.1f} GB)")
    print(f"a listing of {args.ids:,} ids cut off: saving its checkpoint (peak RSS it adds, time, file size)")
    for way in ("checkpoint-json", "checkpoint-arrow"):
        out = subprocess.run([sys.executable, __file__, "--ids", str(args.ids), "--hold", way], capture_output=True, text=True, check=True)
        mb, took, size = (float(x) for x in out.stdout.split())
        print(f"  {way:16s} +{mb:7.0f} MB  {took:6.2f} s  {size / 2**20:7.0f} MB on disk")


if __name__ == "__main__":
    main()
