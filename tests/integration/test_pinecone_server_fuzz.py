"""Pinecone's own OpenAPI specs, fuzzed against the local Pinecone server (schemathesis).

The stand-in is only worth testing against if it answers as Pinecone does, including to requests
nobody meant to send. Schemathesis generates requests from the specs in ``tests/pinecone_server/
openapi/`` (copied unchanged from pinecone-io/pinecone-api), well-formed and malformed alike,
for every endpoint the server serves, and checks each answer: a response at all (a dropped
connection fails the test), no 5xx, a status code the spec lists for that operation, the content
type it lists, and a body that validates against the spec's schema for that status. Any handler
exception the server caught and answered 500 also fails the test (``raise_unexpected_errors``).

Bounded to stay a unit of CI, not a soak: Hypothesis runs derandomized (a fixed seed, so a failure
replays exactly), with a small example budget per operation and no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("pinecone")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.hypothesis import examples  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.pinecone_server import PineconeServer, store  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "pinecone_server" / "openapi"
API_KEY = "fuzz-key"
EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

#: operations the server serves (vectorops uses all but configure/delete index and namespaces)
CONTROL_OPERATIONS = ("list_indexes", "create_index", "describe_index", "configure_index", "delete_index")
DATA_OPERATIONS = (
    "upsertVectors", "fetchVectors", "deleteVectors", "updateVector", "listVectors", "queryVectors",
    "describeIndexStats", "listNamespacesOperation", "describeNamespace", "deleteNamespace",
)
VECTOR = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]  # the spec's example vector: dimension 8
#: the calls vectorops (through the SDK) makes, in the shape it sends them: each must succeed
#: and its response must match the spec (fuzzed requests rarely get past validation)
WELL_FORMED: dict[str, list[dict[str, Any]]] = {
    "list_indexes": [{}],
    "describe_index": [{"path_parameters": {"index_name": "test-index"}}],
    "configure_index": [{"path_parameters": {"index_name": "test-index"},
                         "body": {"deletion_protection": "enabled", "tags": {"team": "search"}}}],
    "delete_index": [{"path_parameters": {"index_name": "test-index"}}],
    "upsertVectors": [{"body": {"vectors": [{"id": "new-1", "values": VECTOR, "metadata": {"genre": "drama"}}],
                                "namespace": "example-namespace"}}],
    "fetchVectors": [{"query": {"ids": ["example-vector-1", "id-0", "absent"], "namespace": "example-namespace"}}],
    "deleteVectors": [{"body": {"ids": ["absent"], "namespace": "example-namespace"}}],
    "updateVector": [{"body": {"id": "example-vector-1", "setMetadata": {"year": 2020},
                               "namespace": "example-namespace"}}],
    "listVectors": [{"query": {"namespace": "example-namespace", "limit": 2}}, {"query": {"namespace": ""}}],
    "queryVectors": [{"body": {"topK": 2, "vector": VECTOR, "includeValues": True, "includeMetadata": True,
                               "namespace": "example-namespace",
                               "filter": {"genre": {"$in": ["comedy", "documentary"]}}}},
                     {"body": {"topK": 1, "id": "id-0"}}],
    "describeIndexStats": [{"body": {}}],
    "listNamespacesOperation": [{"query": {"limit": 1}}, {"query": {"prefix": "example-"}}],
    "describeNamespace": [{"path_parameters": {"namespace": "example-namespace"}}],
    "deleteNamespace": [{"path_parameters": {"namespace": "scratch"}}],
}
CREATE_BODIES = {
    "2025-10": {"name": "docs", "dimension": 8, "metric": "cosine",
                "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}},
    "2026-01.alpha": {"name": "docs",
                      "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 8, "metric": "cosine"}}},
                      "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}},
}
PLANES = {
    # spec file: (API version sent, operations fuzzed)
    "db_control_2025-10.oas.yaml": ("2025-10", CONTROL_OPERATIONS),
    "db_control_2026-01-alpha.oas.yaml": ("2026-01.alpha", CONTROL_OPERATIONS),
    "db_data_2025-10.oas.yaml": ("2025-10", DATA_OPERATIONS),
}


@cache
def _spec(filename: str) -> dict[str, Any]:
    """The spec as published, with two corrections for what the data plane really sends.

    * Namespace record counts are int64, which proto3's JSON mapping (the data plane is
      gRPC-transcoded) writes as a decimal string, as Pinecone sends them and the SDK reads them;
      the 2025-10 spec's ``integer`` says otherwise (reference ``pinecone-api.md`` §2.2).
    * A data-plane 401 comes from the auth layer as a plain-text ``Unauthorized`` body, as the
      2026-07 spec documents (reference §2.1); 2025-10 lumps it into its JSON ``4XX``.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: 3 specs, 320 KB
    spec = yaml.load((SPECS / filename).read_text(), Loader=loader)  # noqa: S506 - a safe loader
    described = spec["components"]["schemas"].get("NamespaceDescription")
    if described is not None:
        described["properties"]["record_count"] = {"type": "string", "pattern": "^[0-9]+$"}
        for path in spec["paths"].values():
            for operation in path.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["responses"]["401"] = {
                        "description": "Unauthorized (auth layer, plain text).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
    return spec


def _operations() -> Iterator[Any]:
    for filename, (version, wanted) in PLANES.items():
        schema = schemathesis.openapi.from_dict(_spec(filename))
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.definition.raw.get("operationId") in wanted:
                yield pytest.param(filename, version, operation, id=f"{filename.split('.')[0]}-{operation.label}")


@pytest.fixture(scope="module")
def data_host() -> Iterator[tuple[PineconeServer, str]]:
    """A server with one index shaped like the spec's examples (dimension 8), holding the ids
    and namespace they name, so example requests reach the success paths, not only refusals.

    Control-plane operations each get a fresh server instead, so a generated ``DELETE
    /indexes/{name}`` can never take this index away.
    """
    srv = PineconeServer(api_key=API_KEY).start()
    state = srv.create_index("fuzz", 8, "cosine")
    seeded = {"example-vector-1": {"genre": "documentary", "year": 2019}, "id-0": {"genre": "comedy"}, "id-1": {}}
    for namespace in ("example-namespace", store.DEFAULT_NAMESPACE, "scratch"):

        def put(records: dict[str, Any]) -> None:
            for n, (vid, metadata) in enumerate(seeded.items()):
                records[vid] = (np.arange(1, 9, dtype=np.float32) * (n + 1), metadata)

        state.commit(namespace, put)
    try:
        yield srv, state.host
    finally:
        srv.stop()


@pytest.mark.parametrize(("filename", "version", "operation"), list(_operations()))
def test_server_answers_as_the_spec_says(
    filename: str, version: str, operation: Any, data_host: tuple[PineconeServer, str]
) -> None:
    control = "control" in filename
    if control:  # a fresh control plane per operation, with the index the spec's examples name
        srv = PineconeServer(api_key=API_KEY).start()
        srv.create_index("test-index", 8, "cosine")
    else:
        srv = data_host[0]
    base_url = srv.url if control else data_host[1]
    fixed = {"X-Pinecone-Api-Version": version}

    def send(case: Any) -> Any:
        case.headers = {**(case.headers or {}), "Api-Key": API_KEY}  # fuzz the request, not the key
        return case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    operation_id = operation.definition.raw["operationId"]
    well_formed = WELL_FORMED.get(operation_id, [{"body": CREATE_BODIES[version]}])

    @given(case=st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, headers=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=fixed),
    ))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), print_blob=True,
    )
    def fuzz(case: Any) -> None:
        send(case)

    try:
        for request in well_formed:
            response = send(operation.Case(headers=dict(fixed), **request))
            assert response.status_code < 300, f"{operation.label} {request}: {response.status_code} {response.text}"
        for strategy in operation.get_strategies_from_examples(headers=fixed):  # then the spec's own examples
            send(examples.generate_one(strategy))
        fuzz()
    finally:
        if control:
            srv.stop()
    srv.raise_unexpected_errors()
