"""The refresh step of a plan against the local Pinecone server at a real round-trip time (issue 19).

N records are put straight into the server's store (pushing them through HTTP would measure the
test server), every request then waits ``--latency-ms`` before it is answered, and the refresh is
run the way `plan` runs it, through the real SDK:

* ``ids``: every id listed (``Destination.all_ids`` with the expected ids as the split hint), at
  several ``LIST_IN_FLIGHT`` values, paced (``VECTOROPS_PINECONE_LIST_RATE``, default 180/s) and
  unpaced, with the list requests sent;
* ``sample``: ``sampling.check_sample`` of ``--sample-size`` expected ids, with the fetches sent.

    nice -n 10 python bench/pinecone_refresh.py --records 1000000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY, KEY_ENV = "bench-key", "VECTOROPS_BENCH_PINECONE_KEY"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--sample-size", type=int, default=10_000)
    p.add_argument("--in-flight", default="8", help="comma-separated LIST_IN_FLIGHT values to measure")
    p.add_argument("--unpaced", action="store_true", help="also measure with the list pacer off")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)

    from reconciler.engine import sampling
    from reconciler.engine.diff import INDEX_SCHEMA, VersionIndex
    from reconciler.engine.hashing import hash_batch
    from reconciler.providers import pinecone as pc
    from reconciler.providers.listing_resume import Pacer
    from reconciler.records import RecordBatch
    from tests.pinecone_server import Faults, PineconeServer
    from tests.pinecone_server.fixtures import reset_sdk_host_state

    n, dim = args.records, 4
    res: dict[str, Any] = {"records": n, "latency_ms": args.latency_ms, "load_average_start": os.getloadavg()}
    reset_sdk_host_state()
    with PineconeServer(api_key=KEY) as srv, mock.patch.dict(os.environ, {"PINECONE_CONTROLLER_HOST": srv.url, KEY_ENV: KEY}):
        space = srv.create_index("bench", dim, "cosine").ns("__default__")
        ids = [f"doc-{i:09d}" for i in range(n)]
        vectors = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
        t0 = time.perf_counter()
        for i, rid in enumerate(ids):
            space.records[rid] = (vectors[i], {})
        res["load_s"] = time.perf_counter() - t0
        vh, mh = hash_batch(RecordBatch(ids=pa.array(ids), vectors=vectors, metadata=pa.table({"_": pa.nulls(n)}).drop(["_"])))
        expected = VersionIndex(pa.table({"id": pa.array(ids), "vh": vh, "mh": mh}, schema=INDEX_SCHEMA))
        dest = pc.PineconeDestination(index="bench", host=None, api_key_env=KEY_ENV)
        dest.describe()  # the host is resolved before the clock starts
        srv.faults = Faults(latency=args.latency_ms / 1000)

        srv.reset_counts()
        t0 = time.perf_counter()
        check = sampling.check_sample(dest, expected, args.sample_size, seed=1)
        res["sample"] = {"s": time.perf_counter() - t0, "sampled": check.sampled, "drifted": check.drifted,
                         "upper_bound": check.upper_bound, "requests": srv.request_counts}

        hint = expected.ids.combine_chunks()
        runs = []
        for paced in (True, False) if args.unpaced else (True,):
            for k in (int(x) for x in args.in_flight.split(",")):
                with mock.patch.object(pc, "LIST_IN_FLIGHT", k), mock.patch.object(pc, "_LIST_PACER", pc._LIST_PACER if paced else Pacer(0)):
                    srv.reset_counts()
                    t0 = time.perf_counter()
                    got = dest.all_ids(hint)
                    seconds = time.perf_counter() - t0
                if len(got) != n:
                    raise SystemExit(f"bench: listed {len(got)} of {n} ids")
                lists = srv.request_counts.get("list", 0)
                runs.append({"in_flight": k, "paced": paced, "s": seconds, "list_requests": lists, "requests_per_s": lists / seconds})
                print(json.dumps(runs[-1]), flush=True)
        res["ids"] = runs
        dest.close()
    res["load_average_end"] = os.getloadavg()
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)


if __name__ == "__main__":
    main()
