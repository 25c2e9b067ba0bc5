"""The committed JSON Schema: in sync with the models, and true to the example manifests.

Editors validate `vectorops.yaml` against schemas/vectorops.schema.json as the user types, so a
schema that drifts from the models either nags about valid manifests or waves bad ones through.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from reconciler.manifest import json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "vectorops.schema.json"
REGENERATE = "python -m reconciler.manifest --schema > schemas/vectorops.schema.json"
EXAMPLES = sorted(ROOT.glob("examples/**/vectorops*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLES[0].read_text(encoding="utf-8"))


def test_committed_schema_matches_the_models() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    assert committed == schema_text(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with reconciler/manifest.py; regenerate it with:\n    {REGENERATE}"
    )


def test_schema_declares_draft_2020_12_and_is_pretty_printed() -> None:
    text = schema_text()
    assert json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_there_is_an_example_manifest() -> None:
    assert EXAMPLES, "expected at least one examples/**/vectorops*.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_manifests_validate(validator: Draft202012Validator, path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert errors(validator, doc) == []


@pytest.mark.parametrize(
    "where",
    [(), ("datasets", "docs"), ("datasets", "docs", "embedding"), ("environments", "staging"), ("environments", "staging", "destination")],
    ids=lambda w: "/".join(w) or "top",
)
def test_unknown_key_fails_the_schema(validator: Draft202012Validator, where: tuple[str, ...]) -> None:
    doc = example()
    node = doc
    for key in where:
        node = node[key]
    node["colour"] = "blue"
    found = errors(validator, doc)
    assert found and any("colour" in e for e in found), found


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["datasets"].update({"Docs": d["datasets"]["docs"]}), "Docs"),
        (lambda d: d["environments"].update({"bad env": d["environments"]["staging"]}), "bad env"),
        (lambda d: d["datasets"]["docs"]["embedding"].update(metric="l2"), "l2"),
        (lambda d: d["datasets"]["docs"]["embedding"].update(dimension="384"), "384"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["environments"]["staging"]["destination"].update(type="milvus"), "destination"),
        (lambda d: d["environments"]["prod"]["policy"].update(max_delete_fraction=1.5)
         if "policy" in d["environments"]["prod"] else d["environments"]["prod"].update(policy={"max_delete_fraction": 1.5}), "1.5"),
        (lambda d: d["environments"].update(
            pc={"dataset": "docs", "version": "v1", "destination": {"type": "pinecone", "index": "docs", "api_key_env": "pcsk-123"}}
        ), "api_key_env"),
        (lambda d: d.pop("environments"), "environments"),
    ],
    ids=["dataset-name", "env-name", "metric", "dimension-type", "format-version", "destination-type", "fraction", "api-key-env", "missing"],
)
def test_schema_rejects_what_the_loader_rejects(validator: Draft202012Validator, change: Any, fragment: str) -> None:
    doc = copy.deepcopy(example())
    change(doc)
    found = errors(validator, doc)
    assert found and any(fragment in e for e in found), found
