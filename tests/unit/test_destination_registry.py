"""Destination types come from one registry: built-ins plus what installed packages register.

A plug-in here is a real installed distribution as far as ``importlib.metadata`` can tell: a
``*.dist-info`` folder with an ``entry_points.txt`` on ``sys.path``, registering types in the
group ``vectorops.destinations`` (tests/contract and the example package install real ones).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import json_schema, load_manifest
from reconciler.providers import destination_address, open_destination, registry
from reconciler.providers.memory import MemoryDestination

MANIFEST = """\
version: 1
datasets:
  docs:
    path: data/docs.parquet
    embedding:
      model: m
      dimension: 16
environments:
  staging:
    dataset: docs
    version: v1
    destination:
      type: {type}
      {rest}
"""


def install_fake_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """What pip leaves behind for a package with entry points, minus the code (which lives elsewhere)."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    lines = [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("[vectorops.destinations]\n" + "\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    install_fake_distribution(
        site,
        "vectorops-test-plugins",
        {
            "memory": "reconciler.providers.memory:MemorySettings",
            "broken": "vectorops_no_such_module:Settings",
            "wrongname": "reconciler.providers.memory:MemorySettings",
            "lancedb": "vectorops_no_such_module:Shadow",  # never loaded: built-ins win
        },
    )
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    yield site
    registry.clear_cache()
    MemoryDestination.forget()


def load(folder: Path, type_: str, rest: str) -> object:
    (folder / "vectorops.yaml").write_text(MANIFEST.format(type=type_, rest=rest), encoding="utf-8")
    old = Path.cwd()
    os.chdir(folder)
    try:
        return load_manifest("vectorops.yaml")
    finally:
        os.chdir(old)


def error(folder: Path, type_: str, rest: str = "table: x") -> str:
    with pytest.raises(ManifestError) as info:
        load(folder, type_, rest)
    return str(info.value)


def test_a_type_an_installed_package_registers_is_usable_from_a_manifest(tmp_path: Path, plugins: Path) -> None:
    manifest = load(tmp_path, "memory", "name: docs-staging")
    assert destination_address(manifest, "staging") == "memory:docs-staging"  # type: ignore[arg-type]
    dest = open_destination(manifest, "staging")  # type: ignore[arg-type]
    assert isinstance(dest, MemoryDestination) and dest.address == "memory:docs-staging"


def test_a_plugin_types_settings_are_validated_with_positions(tmp_path: Path, plugins: Path) -> None:
    msg = error(tmp_path, "memory", "nmae: docs")
    assert "vectorops.yaml:14:7: unknown key 'nmae' in environments.staging.destination" in msg
    assert "vectorops.yaml:13:7: missing required key 'name' in environments.staging.destination" in msg


def test_unknown_type_names_the_package_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.providers import registry

    # every first-party type is built in today; one that ships in an extra of its own is named so
    monkeypatch.setitem(registry.KNOWN_PACKAGES, "weaviate", "vectorops[weaviate]")
    msg = error(tmp_path, "weaviate", "table: docs")
    assert "vectorops.yaml:13:7: environments.staging.destination: Input tag 'weaviate'" in msg
    assert "pip install 'vectorops[weaviate]'" in msg


def test_unknown_type_suggests_the_closest_installed_type(tmp_path: Path) -> None:
    msg = error(tmp_path, "pincone", "index: docs")
    assert "No installed package provides destination type 'pincone'. Did you mean 'pinecone'?" in msg
    assert "Installed types: lancedb, pgvector, pinecone, qdrant" in msg
    assert "entry-point group vectorops.destinations" in msg


def test_installed_plugin_types_are_listed_as_available(tmp_path: Path, plugins: Path) -> None:
    msg = error(tmp_path, "milvus")
    assert "Installed types: broken, lancedb, memory, pgvector, pinecone, qdrant, wrongname" in msg


def test_a_broken_plugin_is_a_manifest_error_naming_its_package(tmp_path: Path, plugins: Path) -> None:
    msg = error(tmp_path, "broken", "name: x")
    assert "vectorops.yaml:13:13: destination type 'broken' from package 'vectorops-test-plugins'" in msg
    assert "cannot be loaded (ModuleNotFoundError" in msg and "Reinstall or upgrade that package" in msg
    msg = error(tmp_path, "wrongname", "name: x")
    assert "its settings declare type 'memory', not 'wrongname'" in msg


def test_built_in_types_win_over_a_plugin_of_the_same_name(tmp_path: Path, plugins: Path) -> None:
    manifest = load(tmp_path, "lancedb", "table: docs")
    assert destination_address(manifest, "staging") == "lancedb:.vectorops/lancedb#docs"  # type: ignore[arg-type]


def test_the_json_schema_holds_the_built_in_types_whatever_is_installed(plugins: Path) -> None:
    text = json.dumps(json_schema())
    assert '"lancedb"' in text and '"pinecone"' in text and '"qdrant"' in text
    assert "MemorySettings" not in text


def test_secret_fields_of_every_type_are_never_echoed(tmp_path: Path) -> None:
    msg = error(tmp_path, "pinecone", "index: docs\n      api_key_env: pcsk_live_SECRET")
    assert "api_key_env: is not an environment variable name" in msg and "SECRET" not in msg
