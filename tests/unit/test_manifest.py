"""Loading `vectorops.yaml`: every error names file:line:column exactly and says how to fix it.

A manifest is edited by hand and reviewed in a PR; the place of a mistake matters as much as the
mistake. Each test writes a small manifest to a temp folder and asserts the exact position.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifest
from reconciler.providers.lancedb import LanceDBSettings

GOOD = """\
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
      type: lancedb
      table: docs_staging
"""
PROD = """\
  prod:
    dataset: docs
    version: v1
    destination:
      type: lancedb
      table: docs_prod
"""


def write(folder: Path, text: str, name: str = "vectorops.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error(folder: Path, text: str) -> str:
    """Load ``text`` from ``folder`` (cwd set there, so the shown path is 'vectorops.yaml')."""
    write(folder, text)
    old = Path.cwd()
    os.chdir(folder)
    try:
        with pytest.raises(ManifestError) as info:
            load_manifest("vectorops.yaml")
    finally:
        os.chdir(old)
    assert info.value.exit_code == 1
    return str(info.value)


def test_good_manifest_loads_with_defaults(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, GOOD))
    env = m.model.environments["staging"]
    assert m.model.datasets["docs"].embedding.metric == "cosine"
    assert env.policy.prune is True and env.policy.max_delete_fraction == 0.10
    assert m.where("environments", "staging", "version") == f"{m.positions.file}:11:14"


# -- YAML itself -----------------------------------------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    msg = error(tmp_path, "version: 1\ndatasets:\n  docs: [a, b\nenvironments: {}\n")
    assert msg.startswith("vectorops.yaml:4:13: invalid YAML: expected ',' or ']'")
    assert "Fix the YAML syntax at that position." in msg


def test_tab_indentation(tmp_path: Path) -> None:
    msg = error(tmp_path, "version: 1\n\tdatasets: {}\n")
    assert msg.startswith("vectorops.yaml:2:1: invalid YAML: found character '\\t'")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    msg = error(tmp_path, text)
    assert msg.startswith("vectorops.yaml:1:1: the manifest is empty")
    assert "version: 1, datasets:, environments:" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"], ids=["list", "string", "number"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    msg = error(tmp_path, text)
    assert msg == "vectorops.yaml:1:1: the manifest must be a mapping with keys version, datasets, environments"


def test_duplicate_key(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    version: v1\n", "    version: v1\n    version: v2\n"))
    assert msg.startswith("vectorops.yaml:12:5: duplicate key 'version'")
    assert "remove or merge the repeated one" in msg


@pytest.mark.parametrize("key", ["~", "[a, b]"], ids=["null", "list"])
def test_key_that_is_not_a_name(tmp_path: Path, key: str) -> None:
    msg = error(tmp_path, f"version: 1\n? {key}\n: 1\n")
    assert msg.startswith("vectorops.yaml:2:3: a mapping key must be a plain name")


# -- the schema ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "where", "key", "owner"),
    [
        (lambda t: t + "extra: 1\n", "15:1", "extra", "the top level"),
        (lambda t: t.replace("    path:", "    pth: x\n    path:"), "4:5", "pth", "datasets.docs"),
        (lambda t: t.replace("      dimension: 16\n", "      dimension: 16\n      dims: 3\n"), "8:7", "dims", "datasets.docs.embedding"),
        (lambda t: t.replace("    version: v1\n", "    version: v1\n    verison: v2\n"), "12:5", "verison", "environments.staging"),
        (lambda t: t + "      tabel: x\n", "15:7", "tabel", "environments.staging.destination"),
        (lambda t: t + "    policy:\n      prun: false\n", "16:7", "prun", "environments.staging.policy"),
        (lambda t: t + "    validation:\n      canary: c.yaml\n", "16:7", "canary", "environments.staging.validation"),
    ],
    ids=["top", "dataset", "embedding", "environment", "destination", "policy", "validation"],
)
def test_unknown_key_at_each_level(tmp_path: Path, edit, where: str, key: str, owner: str) -> None:  # type: ignore[no-untyped-def]
    msg = error(tmp_path, edit(GOOD))
    assert f"vectorops.yaml:{where}: unknown key '{key}' in {owner}. Remove it or check its spelling" in msg


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("version: 1\n", ""), "vectorops.yaml:1:1: missing required key 'version' in the top level. Add it."),
        (lambda t: t.replace("    path: data/docs.parquet\n", ""), "vectorops.yaml:4:5: missing required key 'path' in datasets.docs. Add it."),
        (lambda t: t.replace("      dimension: 16\n", ""), "vectorops.yaml:6:7: missing required key 'dimension' in datasets.docs.embedding. Add it."),
        (lambda t: t.replace("      table: docs_staging\n", ""), "vectorops.yaml:13:7: missing required key 'table' in environments.staging.destination. Add it."),
        (lambda t: t.replace("      type: lancedb\n", ""), "vectorops.yaml:13:7: missing required key 'type' in environments.staging.destination. Add type: lancedb or type: pinecone or type: qdrant or type: pgvector."),
    ],
    ids=["version", "path", "dimension", "table", "destination-type"],
)
def test_missing_required_key(tmp_path: Path, edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert expected in error(tmp_path, edit(GOOD))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("dimension: 16", "dimension: lots", "vectorops.yaml:7:18: datasets.docs.embedding.dimension: Input should be a valid integer (got 'lots'). Give a whole number."),
        ("dimension: 16", "dimension: true", "vectorops.yaml:7:18: datasets.docs.embedding.dimension: Input should be a valid integer (got True)."),
        ("dimension: 16", 'dimension: "16"', "vectorops.yaml:7:18: datasets.docs.embedding.dimension: Input should be a valid integer (got '16')."),
        ("dimension: 16", "dimension: 0", "vectorops.yaml:7:18: datasets.docs.embedding.dimension: Input should be greater than 0 (got 0). Give a value in the allowed range."),
        ("version: v1", "version: 2024", 'vectorops.yaml:11:14: environments.staging.version: Input should be a valid string (got 2024). Write it as text; quote values'),
        ("version: 1\n", "version: 2\n", "vectorops.yaml:1:10: version: Input should be 1 (got 2). Use one of the values listed."),
        ("datasets:\n  docs:", "datasets: []\nx:\n  docs:", "vectorops.yaml:2:11: datasets: Input should be a valid dictionary. Write it as a mapping"),
        ("type: lancedb", "type: milvus", "vectorops.yaml:13:7: environments.staging.destination: Input tag 'milvus' found using 'type'"),
    ],
    ids=["int-from-text", "int-from-bool", "int-from-quoted", "range", "rev-read-as-number", "format-version", "list-for-mapping", "destination-type"],
)
def test_wrong_type(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in error(tmp_path, GOOD.replace(old, new, 1))


def test_bad_metric(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("      dimension: 16\n", "      dimension: 16\n      metric: l2\n"))
    assert "vectorops.yaml:8:15: datasets.docs.embedding.metric: Input should be 'cosine', 'dotproduct' or 'euclidean' (got 'l2'). Use one of the values listed." in msg


def test_bad_dataset_name(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("  docs:", "  Docs:"))
    assert "vectorops.yaml:3:3: invalid name 'Docs' in datasets. Names use lowercase letters, digits, '-' and '_'" in msg


@pytest.mark.parametrize(("name", "shown"), [("Staging env", "'Staging env'"), ("_x", "'_x'"), ("123", "123")])
def test_bad_environment_name(tmp_path: Path, name: str, shown: str) -> None:
    msg = error(tmp_path, GOOD.replace("  staging:", f"  {name}:"))
    assert f"vectorops.yaml:9:3: invalid name {shown} in environments. Names use lowercase letters" in msg


def test_bad_name_in_a_reference(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    version: v1\n", "    version: v1\n    requires: [Prod]\n"))
    assert "vectorops.yaml:12:16: environments.staging.requires.0: String should match pattern" in msg
    assert "Names use lowercase letters" in msg


def test_api_key_env_that_is_not_a_variable_name_is_not_echoed(tmp_path: Path) -> None:
    key = "pcsk_2ab-SECRET-value"
    text = GOOD.replace("      type: lancedb\n      table: docs_staging\n", f"      type: pinecone\n      index: docs\n      api_key_env: {key}\n")
    msg = error(tmp_path, text)
    assert "vectorops.yaml:15:20: environments.staging.destination.api_key_env: is not an environment variable name." in msg
    assert "Give the NAME of the environment variable that holds the key" in msg
    assert "e.g. PINECONE_API_KEY" in msg  # the hint of the type at hand, not of another type's field of that name
    assert "SECRET" not in msg


def test_bad_pinecone_index_name(tmp_path: Path) -> None:
    text = GOOD.replace("      type: lancedb\n      table: docs_staging\n", "      type: pinecone\n      index: Docs_Prod\n")
    msg = error(tmp_path, text)
    assert "vectorops.yaml:14:14: environments.staging.destination.index: String should match pattern" in msg
    assert "Pinecone index names use lowercase letters, digits and '-'" in msg


# -- meaning ---------------------------------------------------------------------------------------


def test_unknown_dataset_referenced(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    dataset: docs", "    dataset: dcos"))
    assert "vectorops.yaml:10:14: environment 'staging' uses unknown dataset 'dcos'. Datasets defined: docs." in msg


def test_requires_unknown_environment(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    version: v1\n", "    version: v1\n    requires: [prod]\n"))
    assert "vectorops.yaml:12:16: environment 'staging' requires unknown environment 'prod'. Environments defined: staging." in msg


def test_requires_itself(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    version: v1\n", "    version: v1\n    requires: [staging]\n"))
    assert msg == (
        "invalid manifest:\n  vectorops.yaml:12:16: environment 'staging' cannot require itself. Remove 'staging' from its requires."
    )


def test_requires_cycle(tmp_path: Path) -> None:
    text = GOOD.replace("    version: v1\n", "    version: v1\n    requires: [prod]\n") + PROD.replace("    version: v1\n", "    version: v1\n    requires: [staging]\n")
    msg = error(tmp_path, text)
    assert "vectorops.yaml:19:16: requires forms a cycle: staging -> prod -> staging. Remove one of these requirements" in msg
    assert msg.count("cycle") == 1


def test_requires_an_environment_of_another_dataset(tmp_path: Path) -> None:
    text = GOOD.replace("environments:", "  other:\n    path: data/other.parquet\n    embedding: {model: m, dimension: 16}\nenvironments:")
    text = text.replace("    version: v1\n", "    version: v1\n    requires: [prod]\n", 1) + PROD.replace("dataset: docs", "dataset: other")
    msg = error(tmp_path, text)
    assert "vectorops.yaml:15:16: environment 'staging' requires 'prod', which deploys another dataset ('other')" in msg


def test_canary_file_missing(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD + "    validation:\n      canaries: canaries/docs.yaml\n")
    assert f"vectorops.yaml:16:17: canary file canaries/docs.yaml not found (looked for {tmp_path.resolve() / 'canaries/docs.yaml'})" in msg
    assert "relative to the manifest's folder" in msg


def test_canary_file_is_found_relative_to_the_manifest_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "canaries.yaml").write_text("queries: []\n")
    path = write(tmp_path / "conf", GOOD + "    validation:\n      canaries: canaries.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_manifest(path).model.environments["staging"].validation is not None


@pytest.mark.parametrize("bad", ["../x.parquet", "data/../../x.parquet", "/etc/x.parquet"], ids=["dotdot", "nested-dotdot", "absolute"])
def test_dataset_path_escaping_the_repo(tmp_path: Path, bad: str) -> None:
    msg = error(tmp_path, GOOD.replace("path: data/docs.parquet", f"path: {bad}"))
    assert f"vectorops.yaml:4:11: datasets.docs.path '{bad}' leaves the dataset's repo." in msg
    assert "relative to the repo root" in msg


def test_dataset_path_with_a_harmless_dotdot_is_fine(tmp_path: Path) -> None:
    load_manifest(write(tmp_path, GOOD.replace("path: data/docs.parquet", "path: data/../data/docs.parquet")))


def test_dataset_repo_folder_missing(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    path:", "    repo: ../nowhere\n    path:"))
    assert f"vectorops.yaml:4:11: datasets.docs.repo: no such folder {(tmp_path / '../nowhere').resolve()}." in msg


def test_metadata_fields_must_not_name_the_id(tmp_path: Path) -> None:
    msg = error(tmp_path, GOOD.replace("    path:", "    metadata_fields: [title, id]\n    path:"))
    assert "vectorops.yaml:4:22: metadata_fields must not include the id or vector field. Remove 'id' from the list." in msg


@pytest.mark.parametrize(
    ("second", "line_col"),
    [
        ("      type: lancedb\n      uri: ./.vectorops/../.vectorops/lancedb\n      table: docs_staging\n", "19:7"),
        ("      type: lancedb\n      uri: {root}/.vectorops/lancedb\n      table: docs_staging\n", "19:7"),
    ],
    ids=["relative-spelled-differently", "absolute"],
)
def test_two_environments_on_one_destination(tmp_path: Path, second: str, line_col: str) -> None:
    prod = PROD.replace("      type: lancedb\n      table: docs_prod\n", second.format(root=tmp_path.resolve()))
    msg = error(tmp_path, GOOD + prod)
    assert f"vectorops.yaml:{line_col}: environments 'staging' and 'prod' point at the same destination" in msg
    assert "give each environment its own table/index/namespace" in msg


def test_two_pinecone_environments_on_one_namespace(tmp_path: Path) -> None:
    pc = "      type: pinecone\n      index: docs\n      namespace: {ns}\n"
    text = GOOD.replace("      type: lancedb\n      table: docs_staging\n", pc.format(ns='""'))
    text += PROD.replace("      type: lancedb\n      table: docs_prod\n", pc.format(ns="__default__"))
    msg = error(tmp_path, text)
    assert "vectorops.yaml:20:7: environments 'staging' and 'prod' point at the same destination" in msg
    load_manifest(write(tmp_path, text.replace("namespace: __default__", "namespace: prod")))


def test_relative_lancedb_uri_is_resolved_against_the_manifest_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "deploy", GOOD.replace("      table: docs_staging\n", "      uri: ../indexes/lance\n      table: docs_staging\n"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    m = load_manifest(os.path.relpath(path))
    dest = m.model.environments["staging"].destination
    assert isinstance(dest, LanceDBSettings)
    assert m.resolve_local(dest.uri) == (tmp_path / "indexes" / "lance").resolve()
    default = load_manifest(write(tmp_path / "deploy", GOOD))
    assert default.resolve_local(default.model.environments["staging"].destination.uri) == (tmp_path / "deploy" / ".vectorops" / "lancedb").resolve()  # type: ignore[union-attr]


def test_dataset_repo_is_resolved_against_the_manifest_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data-repo").mkdir()
    (tmp_path / "deploy").mkdir()
    path = write(tmp_path / "deploy", GOOD.replace("    path:", "    repo: ../data-repo\n    path:"))
    monkeypatch.chdir(tmp_path)
    assert load_manifest(path).dataset_repo("docs") == str((tmp_path / "data-repo").resolve())


# -- several problems at once ----------------------------------------------------------------------


def test_schema_problems_are_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("  docs:", "  Docs:").replace("dimension: 16", "dimension: -1") + "bogus: 1\n"
    lines = error(tmp_path, text).splitlines()
    assert lines[0] == "invalid manifest:"
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == ["vectorops.yaml:3:3", "vectorops.yaml:7:18", "vectorops.yaml:15:1"]


def test_meaning_problems_are_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("path: data/docs.parquet", "path: ../docs.parquet").replace("    dataset: docs", "    dataset: dcos")
    text += "    requires: [staging, qa]\n    validation:\n      canaries: missing.yaml\n"
    lines = error(tmp_path, text).splitlines()
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [
        "vectorops.yaml:4:11",  # path leaves the repo
        "vectorops.yaml:10:14",  # unknown dataset
        "vectorops.yaml:15:16",  # requires itself
        "vectorops.yaml:15:25",  # requires unknown 'qa'
        "vectorops.yaml:17:17",  # canary file missing
    ]


# -- the file itself -------------------------------------------------------------------------------


def test_missing_manifest_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "nope.yaml")
    assert f"{tmp_path / 'nope.yaml'}: no such manifest" in str(info.value) and "-m/--manifest PATH" in str(info.value)


def test_folder_instead_of_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is a folder, not a manifest file"):
        load_manifest(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "vectorops.yaml"
    path.write_bytes(b"version: 1\ndatasets: \xff\n")
    with pytest.raises(ManifestError, match=r"not UTF-8 text \(invalid start byte at byte 21\)"):
        load_manifest(path)


def test_python_object_tag_is_refused_with_its_position(tmp_path) -> None:
    from reconciler.errors import ManifestError
    from reconciler.manifest import load_manifest

    path = tmp_path / "vectorops.yaml"
    path.write_text("!!python/object version: 1\n")
    with pytest.raises(ManifestError, match=r"vectorops.yaml:1:1: invalid YAML: could not determine a constructor"):
        load_manifest(path)


def test_sync_defaults_to_manual_and_takes_auto_and_self_heal(tmp_path: Path) -> None:
    plain = load_manifest(write(tmp_path, GOOD)).model.environments["staging"].sync
    assert (plain.auto, plain.self_heal) == (False, False)
    text = GOOD + "    sync: {auto: true, self_heal: true}\n"
    sync = load_manifest(write(tmp_path, text)).model.environments["staging"].sync
    assert (sync.auto, sync.self_heal) == (True, True)


def test_self_heal_without_auto_is_refused_at_its_line(tmp_path: Path) -> None:
    text = error(tmp_path, GOOD + "    sync:\n      self_heal: true\n")
    assert "vectorops.yaml:16:18: environment 'staging' sets sync.self_heal without sync.auto" in text
    assert "sync: {auto: true, self_heal: true}" in text


def test_unknown_sync_key_is_refused(tmp_path: Path) -> None:
    text = error(tmp_path, GOOD + "    sync: {auto: true, selfHeal: true}\n")
    assert "vectorops.yaml:15:24: unknown key 'selfHeal' in environments.staging.sync" in text
