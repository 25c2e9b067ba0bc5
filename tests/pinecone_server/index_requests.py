"""Create-index requests read as Pinecone's control plane reads them, in both API shapes.

The control plane deserializes a body into a typed request first and validates it second, and
the two fail differently (``db_control_*.oas.yaml``, ``POST /indexes``): JSON of the wrong shape,
a required field missing or a field of the wrong type, is 422 ``UNPROCESSABLE_ENTITY`` ("Failed
to deserialize the JSON body into the target type: missing field `metric`"); a well-typed value
Pinecone refuses is 400 ``INVALID_ARGUMENT``. So this module checks types before values.

What it models beyond that: a Starter project, whose pod quota is 0 (a pod or BYOC deployment is
refused 403 ``FORBIDDEN``, never created as serverless), the serverless clouds and regions
(anything else is 404 ``NOT_FOUND``), and dense indexes only (sparse and multi-field schemas are
refused 400, a limit of this server that it states rather than hides).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from tests.pinecone_server import store
from tests.pinecone_server.store import ApiFailure, control_error, json_type, unprocessable

INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")
#: Pinecone's serverless regions (docs.pinecone.io, "Cloud regions")
SERVERLESS_REGIONS = {
    "aws": ("us-east-1", "us-west-2", "eu-west-1"),
    "gcp": ("us-central1", "europe-west4"),
    "azure": ("eastus2",),
}
DELETION_PROTECTION = ("enabled", "disabled")


@dataclass(frozen=True)
class IndexRequest:
    """A serverless dense index, as a valid create request describes it."""

    name: str
    dimension: int
    metric: str
    cloud: str
    region: str
    deletion_protection: str
    tags: dict[str, str] | None


def schema_shape(api_version: str) -> bool:
    """True when the API version speaks ``schema``/``deployment`` (2026-01.alpha, 2026-07 on)
    rather than ``dimension``/``metric``/``spec`` (2025-10 and before)."""
    return api_version >= "2026-07" or api_version.startswith("2026-01")


def read_create_request(body: dict[str, Any], api_version: str) -> IndexRequest:
    """The index a ``POST /indexes`` body asks for, or the ``ApiFailure`` Pinecone answers."""
    return _read_schema_shape(body) if schema_shape(api_version) else _read_classic(body)


# -- the two shapes ----------------------------------------------------------------------------


def _read_classic(body: dict[str, Any]) -> IndexRequest:
    """``{"name", "dimension", "metric", "spec": {"serverless"|"pod"|"byoc": {...}}, ...}``."""
    name = _typed(body, "name", str, required=True)
    spec = _typed(body, "spec", dict, required=True)
    kinds = [k for k in ("serverless", "pod", "byoc") if k in spec]
    if len(kinds) != 1 or len(spec) != 1:
        raise unprocessable("spec: expected exactly one of `serverless`, `pod` or `byoc`")
    kind = kinds[0]
    detail = _typed(spec, kind, dict, required=True, where="spec.")
    location = _deployment(kind, detail, f"spec.{kind}.")
    dimension = _typed(body, "dimension", int, required=False)
    metric = _typed(body, "metric", str, required=False) or "cosine"
    vector_type = _typed(body, "vector_type", str, required=False) or "dense"
    protection = _typed(body, "deletion_protection", str, required=False) or "disabled"
    tags = _tags(body)
    _check_name(name)
    if vector_type != "dense":
        raise control_error(400, "INVALID_ARGUMENT", "This local server supports dense vector indexes only")
    return _valid(name, dimension, metric, location, protection, tags)


def _read_schema_shape(body: dict[str, Any]) -> IndexRequest:
    """``{"name"?, "schema": {"fields": {...}}, "deployment"?: {"deployment_type", ...}, ...}``."""
    schema = _typed(body, "schema", dict, required=True)
    fields = _typed(schema, "fields", dict, required=True, where="schema.")
    for field_name, field in fields.items():
        if not isinstance(field, dict):
            raise unprocessable(f"schema.fields.{field_name}: invalid type: {json_type(field)}, expected an object")
        _typed(field, "type", str, required=True, where=f"schema.fields.{field_name}.")
    name = _typed(body, "name", str, required=False) or f"index-{secrets.token_hex(4)}"
    deployment = _typed(body, "deployment", dict, required=False)
    if deployment is None:
        deployment = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
    kind = _typed(deployment, "deployment_type", str, required=True, where="deployment.")
    kind = {"managed": "serverless"}.get(kind, kind)
    if kind not in ("serverless", "pod", "byoc"):
        raise unprocessable(
            f"deployment.deployment_type: unknown variant `{kind}`, expected one of `managed`, `pod`, `byoc`"
        )
    location = _deployment(kind, deployment, "deployment.")
    dense = fields.get("_values")
    if len(fields) != 1 or not isinstance(dense, dict) or dense.get("type") != "dense_vector":
        raise control_error(400, "INVALID_ARGUMENT", "This local server supports dense vector indexes only")
    dimension = _typed(dense, "dimension", int, required=False, where="schema.fields._values.")
    metric = _typed(dense, "metric", str, required=False, where="schema.fields._values.") or "cosine"
    protection = _typed(body, "deletion_protection", str, required=False) or "disabled"
    tags = _tags(body)
    _check_name(name)
    return _valid(name, dimension, metric, location, protection, tags)


# -- deserialization (422) ---------------------------------------------------------------------


def _typed(obj: dict[str, Any], key: str, kind: type, *, required: bool, where: str = "") -> Any:
    """``obj[key]`` if it has the type the request struct declares; absent or null is None."""
    value = obj.get(key)
    if value is None:
        if required:
            raise unprocessable(f"{where}missing field `{key}`")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", int: "an integer", dict: "an object"}[kind]
        raise unprocessable(f"{where}{key}: invalid type: {json_type(value)}, expected {expected}")
    return value


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = _typed(body, "tags", dict, required=False)
    if tags is not None:
        for key, value in tags.items():
            if not isinstance(value, str):
                raise unprocessable(f"tags.{key}: invalid type: {json_type(value)}, expected a string")
    return tags


def _deployment(kind: str, detail: dict[str, Any], where: str) -> tuple[str, str, str]:
    """(kind, cloud or environment, region) after the fields each kind requires are checked."""
    if kind == "serverless":
        cloud = _typed(detail, "cloud", str, required=True, where=where)
        region = _typed(detail, "region", str, required=True, where=where)
        return kind, cloud, region
    environment = _typed(detail, "environment", str, required=True, where=where)
    if kind == "pod":
        _typed(detail, "pod_type", str, required=True, where=where)
    return kind, environment, ""


# -- validation (400 / 403 / 404) ----------------------------------------------------------------


def _check_name(name: str) -> None:
    if not INDEX_NAME.match(name):
        raise control_error(
            400, "INVALID_ARGUMENT",
            "Name must consist of lower case alphanumeric characters or '-', start and end with an "
            "alphanumeric character, and be 1-45 characters long",
        )


def _valid(
    name: str, dimension: int | None, metric: str, location: tuple[str, str, str], protection: str,
    tags: dict[str, str] | None,
) -> IndexRequest:
    if dimension is None or not 1 <= dimension <= store.MAX_DIMENSION:
        raise control_error(
            400, "INVALID_ARGUMENT", f"Dimension must be an integer between 1 and {store.MAX_DIMENSION}"
        )
    if metric not in store.METRICS:
        raise control_error(400, "INVALID_ARGUMENT", f"Metric must be one of {', '.join(store.METRICS)}")
    if protection not in DELETION_PROTECTION:
        raise control_error(400, "INVALID_ARGUMENT", "Deletion protection must be 'enabled' or 'disabled'")
    kind, cloud, region = location
    if kind != "serverless":
        raise _no_pod_quota(kind)
    if region not in SERVERLESS_REGIONS.get(cloud, ()):
        raise control_error(404, "NOT_FOUND", f"Resource cloud: {cloud} region: {region} not found.")
    return IndexRequest(name, dimension, metric, cloud, region, protection, tags)


def _no_pod_quota(kind: str) -> ApiFailure:
    what = "pod-based indexes" if kind == "pod" else "BYOC indexes"
    return control_error(
        403, "FORBIDDEN",
        f"Request failed. You've reached the max {what} allowed in this project (0). "
        f"To add more {what}, upgrade your plan.",
    )
