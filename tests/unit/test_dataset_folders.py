"""Hive-style folders (``key=value``) in a sharded dataset become metadata fields (``dataset.folders``)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from reconciler.dataset import decode
from reconciler.dataset.folders import folder_fields
from reconciler.dataset.model import FolderField
from reconciler.errors import DatasetError

ROOT = "data/docs"


def fields(*files: str) -> dict[str, tuple[FolderField, ...]]:
    return folder_fields("dataset 'docs' at v1", ROOT, [f"{ROOT}/{f}" for f in files])


def test_each_key_value_folder_above_a_file_is_a_field_and_other_folders_are_only_folders() -> None:
    found = fields("lang=en/year=2024/part-0.parquet", "lang=fr/raw/year=2023/part-0.parquet", "loose/part-9.parquet", "part-8.parquet")
    assert found == {
        f"{ROOT}/lang=en/year=2024/part-0.parquet": (FolderField("lang", "en", "string"), FolderField("year", 2024, "int64")),
        f"{ROOT}/lang=fr/raw/year=2023/part-0.parquet": (FolderField("lang", "fr", "string"), FolderField("year", 2023, "int64")),
    }


def test_folders_above_the_dataset_s_own_path_are_not_fields() -> None:
    found = folder_fields("v1", "data/region=eu/docs", ["data/region=eu/docs/part-0.parquet", "data/region=eu/docs/kind=a/part-1.parquet"])
    assert found == {"data/region=eu/docs/kind=a/part-1.parquet": (FolderField("kind", "a", "string"),)}


def test_a_field_is_an_integer_only_when_every_value_in_the_version_is_one_written_plainly() -> None:
    ints = fields("n=-3/a.parquet", "n=0/b.parquet", "n=12/c.parquet")
    assert [f[0] for f in ints.values()] == [FolderField("n", -3, "int64"), FolderField("n", 0, "int64"), FolderField("n", 12, "int64")]
    # one value that is not a plain integer makes the field a string in every file, so it has one type
    mixed = fields("n=1/a.parquet", "n=x/b.parquet")
    assert [f[0] for f in mixed.values()] == [FolderField("n", "1", "string"), FolderField("n", "x", "string")]
    # leading zeros, a sign or spaces are kept as written: zip codes stay "007"
    for text in ("007", "+5", " 5", "1e3", "99999999999999999999"):
        assert fields(f"zip={text}/a.parquet")[f"{ROOT}/zip={text}/a.parquet"] == (FolderField("zip", text, "string"),)


def test_names_and_values_are_percent_decoded_and_the_null_folder_is_null() -> None:
    found = fields("city=S%C3%A3o%20Paulo/a.parquet", "city=__HIVE_DEFAULT_PARTITION__/b.parquet", "n=__HIVE_DEFAULT_PARTITION__/c.parquet",
                   "n=4/d.parquet", "only=__HIVE_DEFAULT_PARTITION__/e.parquet")
    assert found[f"{ROOT}/city=S%C3%A3o%20Paulo/a.parquet"] == (FolderField("city", "São Paulo", "string"),)
    assert found[f"{ROOT}/city=__HIVE_DEFAULT_PARTITION__/b.parquet"] == (FolderField("city", None, "string"),)
    assert found[f"{ROOT}/n=__HIVE_DEFAULT_PARTITION__/c.parquet"] == (FolderField("n", None, "int64"),)
    # a field that is null everywhere has no value to be an integer: a string
    assert found[f"{ROOT}/only=__HIVE_DEFAULT_PARTITION__/e.parquet"] == (FolderField("only", None, "string"),)


def test_a_field_named_twice_on_one_path_is_refused() -> None:
    with pytest.raises(DatasetError, match=r"data/docs/lang=en/lang=fr/a.parquet lies below two folders named for the field 'lang'"):
        fields("lang=en/lang=fr/a.parquet")


LANG = (FolderField("lang", "en", "string"), FolderField("year", 2024, "int64"))


def test_records_get_their_folder_fields_after_the_file_s_own_and_only_those_metadata_fields_names() -> None:
    layout = decode.layout_for("f", "id", "vector", None, 2, ["id", "vector", "title"], LANG)
    assert layout.columns == ["id", "vector", "title"]  # what is read from the file
    data = pa.table({"id": ["a", "b"], "vector": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2)), "title": ["x", "y"]})
    batch = decode.to_records(data, layout, str)
    assert batch.metadata.to_pylist() == [{"title": "x", "lang": "en", "year": 2024}, {"title": "y", "lang": "en", "year": 2024}]
    assert batch.metadata.schema.field("year").type == pa.int64()

    chosen = decode.layout_for("f", "id", "vector", ["year"], 2, ["id", "vector", "title"], LANG)
    assert chosen.columns == ["id", "vector"] and decode.to_records(data, chosen, str).metadata.to_pylist() == [{"year": 2024}] * 2
    null = decode.layout_for("f", "id", "vector", None, 2, ["id", "vector"], (FolderField("lang", None, "string"),))
    assert decode.to_records(data.select(["id", "vector"]), null, str).metadata.to_pylist() == [{"lang": None}] * 2
    with pytest.raises(DatasetError, match=r"missing column\(s\) 'topic'.*folders above it give 'lang', 'year'"):
        decode.layout_for("f", "id", "vector", ["topic"], 2, ["id", "vector"], LANG)


@pytest.mark.parametrize(("available", "folder", "message"), [
    (["id", "vector", "lang"], LANG, "'lang' is both a column of this file and the name of a folder above it"),
    (["id", "vector"], (FolderField("id", "x", "string"),), "named 'id=…', which would set the id field 'id'"),
    (["id", "vector"], (FolderField("vector", "x", "string"),), "named 'vector=…', which would set the vector field 'vector'"),
])
def test_a_folder_field_that_would_give_a_record_a_second_value_is_refused(available: list[str], folder: tuple[FolderField, ...],
                                                                           message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        decode.layout_for("dataset 'docs' at v1, file data/docs/lang=en/a.parquet", "id", "vector", None, 2, available, folder)


# -- which files of a tracked directory are data (``storage.data_file_names``) ------------------------


def test_files_below_or_named_like_hidden_folders_are_not_data_but_the_dataset_s_own_path_may_be() -> None:
    from reconciler.dataset.storage import data_file_names

    root = "_data/.docs"  # only what lies below the dataset's path counts
    files = [f"{root}/{name}" for name in ("b.parquet", "lang=en/a.parquet", "_temporary/0/a.parquet", ".ipynb_checkpoints/a.parquet",
                                            "_a.parquet", ".a.parquet", "x.jsonl", "_tmp/x.jsonl", "README.md")]
    found = data_file_names(files, (".parquet",), (".jsonl",), root=root)
    assert found.data == [f"{root}/b.parquet", f"{root}/lang=en/a.parquet"]
    assert found.foreign == [f"{root}/x.jsonl"] and found.table_format is None


@pytest.mark.parametrize(("name", "table_format"), [
    ("_delta_log/00000000000000000000.json", "Delta Lake"),
    (".hoodie/hoodie.properties", "Apache Hudi"),
    ("metadata/v1.metadata.json", "Apache Iceberg"),
    ("metadata/notes.json", None),
    ("lang=en/_delta_log", None),
])
def test_table_formats_that_keep_files_of_deleted_rows_are_recognised(name: str, table_format: str | None) -> None:
    from reconciler.dataset.storage import data_file_names

    assert data_file_names([f"{ROOT}/part-0.parquet", f"{ROOT}/{name}"], (".parquet",), root=ROOT).table_format == table_format
