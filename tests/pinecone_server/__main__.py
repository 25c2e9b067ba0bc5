"""Run the local Pinecone server by hand: ``python -m tests.pinecone_server --port N --api-key K``."""

from __future__ import annotations

import argparse
import time

from tests.pinecone_server.server import Faults, PineconeServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5080, help="control-plane port (indexes get ephemeral ports)")
    parser.add_argument("--api-key", default="local-test-key")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    parser.add_argument("--visibility-delay", type=float, default=0.0)
    args = parser.parse_args()
    srv = PineconeServer(
        api_key=args.api_key,
        faults=Faults(rate_429=args.rate_429, rate_5xx=args.rate_5xx, visibility_delay=args.visibility_delay),
    )
    srv.start(port=args.port)
    print(f"Pinecone-compatible server on {srv.url} (PINECONE_CONTROLLER_HOST={srv.url}); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
