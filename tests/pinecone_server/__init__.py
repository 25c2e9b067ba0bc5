"""A faithful local Pinecone server for tests: the real SDK talks to it over HTTP on 127.0.0.1."""

from tests.pinecone_server.server import FAULT_KINDS, Faults, PineconeServer

__all__ = ["FAULT_KINDS", "Faults", "PineconeServer"]
