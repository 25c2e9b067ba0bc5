"""`promote`: one value changes in the manifest; comments, order, quoting and layout stay as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.errors import ManifestError, UsageError
from reconciler.promote import promote

MANIFEST = """\
# yaml-language-server: $schema=./schemas/vectorops.schema.json
version: 1   # format

datasets:
  docs:
    path: data/docs.parquet
    embedding: {model: sentence-transformers/all-MiniLM-L6-v2, dimension: 384}

environments:
  # staging gets every new version first
  staging:
    dataset: docs
    version: docs-v2        # bumped by CI
    destination:
      type: lancedb
      table: docs_staging
  prod:
    dataset: docs
    version: "docs-v1"      # promoted from staging
    requires:
        - staging           # odd indentation, kept as is
    destination: {type: pinecone, index: docs-prod}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "vectorops.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def test_rewrites_only_the_version_and_returns_the_diff(manifest: Path) -> None:
    diff = promote(manifest, "staging", "prod", "docs-v2")
    after = manifest.read_text(encoding="utf-8")
    assert after == MANIFEST.replace('version: "docs-v1"', 'version: "docs-v2"')
    assert diff.startswith("--- a/vectorops.yaml\n+++ b/vectorops.yaml\n@@ ")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changed == ['-    version: "docs-v1"      # promoted from staging', '+    version: "docs-v2"      # promoted from staging']
    assert yaml.safe_load(after)["environments"]["prod"]["version"] == "docs-v2"


def test_plain_values_stay_plain_and_odd_revs_get_quoted(tmp_path: Path) -> None:
    path = tmp_path / "vectorops.yaml"
    path.write_text(MANIFEST.replace('"docs-v1"', "docs-v1"), encoding="utf-8")
    promote(path, "staging", "prod", "a1b2c3d")
    assert "    version: a1b2c3d      # promoted from staging\n" in path.read_text()
    for rev in ("1.0", "2024", "yes", "null", "v1 #x", "@tag"):
        promote(path, "staging", "prod", rev)
        assert yaml.safe_load(path.read_text())["environments"]["prod"]["version"] == rev


def test_single_quotes_and_crlf_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "vectorops.yaml"
    original = MANIFEST.replace('"docs-v1"', "'docs-v1'").replace("\n", "\r\n")
    path.write_bytes(original.encode())
    promote(path, "staging", "prod", "it's-v3")
    assert path.read_bytes().decode() == original.replace("'docs-v1'", "'it''s-v3'")


def test_same_version_changes_nothing(manifest: Path) -> None:
    before = manifest.stat().st_mtime_ns
    assert promote(manifest, "staging", "prod", "docs-v1") == ""
    assert manifest.read_text() == MANIFEST and manifest.stat().st_mtime_ns == before


def test_unknown_environment_is_refused_with_position(manifest: Path) -> None:
    with pytest.raises(ManifestError) as info:
        promote(manifest, "staging", "production", "docs-v2")
    assert "environment 'production' is not defined" in str(info.value)
    assert "vectorops.yaml:11:3" in str(info.value) and "staging, prod" in str(info.value)
    assert manifest.read_text() == MANIFEST


def test_missing_version_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectorops.yaml"
    path.write_text(MANIFEST.replace('    version: "docs-v1"      # promoted from staging\n', ""), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"vectorops.yaml:18:5: environment 'prod' has no 'version' key"):
        promote(path, "staging", "prod", "docs-v2")


def test_different_datasets_and_same_env_are_refused(manifest: Path) -> None:
    manifest.write_text(MANIFEST.replace("    dataset: docs\n    version: \"", "    dataset: other\n    version: \""))
    with pytest.raises(ManifestError, match="same dataset"):
        promote(manifest, "staging", "prod", "docs-v2")
    with pytest.raises(UsageError):
        promote(manifest, "prod", "prod", "docs-v2")


def test_absent_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest"):
        promote(tmp_path / "nope.yaml", "staging", "prod", "v2")
