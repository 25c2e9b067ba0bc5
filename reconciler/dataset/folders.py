"""Hive-style folders (``lang=en/``) in a sharded dataset, as metadata fields of the records below them.

Spark's ``partitionBy``, pandas and pyarrow's ``partition_cols``, Polars and DuckDB write a
partitioned dataset as folders named ``key=value`` and leave the key out of the files; every one of
those readers gives each record the field back from the folder name. vectorops reads such a
directory the same way, so a field the pipeline partitioned by reaches the index instead of being
dropped without a word:

* a folder level ``key=value`` below the dataset's ``path`` gives every record in the files under
  it the metadata field ``key``; other folder names are only folders;
* names and values are percent-decoded, as Hive and pyarrow write them (``city=S%C3%A3o%20Paulo``),
  and ``__HIVE_DEFAULT_PARTITION__`` (Spark's folder for a null key) is null;
* a field is an integer (int64) when every value it has in the version is one written plainly
  (``2024``, ``-3``; not ``007``, which keeps its zeros as a string), else a string: one type a
  field across the version, decided from the folder names alone, never from a file;
* a key that is also a column of a file below it, the id or vector field, or named twice on one
  path is refused: which of two values a record holds must never be a guess.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from urllib.parse import unquote

from reconciler.dataset.model import FolderField
from reconciler.errors import DatasetError
from reconciler.redact import printable

NULL_FOLDER = "__HIVE_DEFAULT_PARTITION__"
_PLAIN_INT = re.compile(r"-?(0|[1-9][0-9]{0,18})")


def folder_fields(where: str, root: str, files: Sequence[str]) -> dict[str, tuple[FolderField, ...]]:
    """Each file's folder fields (empty for a file with no ``key=value`` folder above it).

    ``root``: the dataset's tracked directory (the files' paths start with it); ``where``: the
    version, for messages."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    for file in files:
        relative = posixpath.relpath(file, root) if root else file
        pairs: list[tuple[str, str | None]] = []
        for folder in relative.split("/")[:-1]:
            key, equals, value = folder.partition("=")
            if not equals or not key:
                continue
            name, written = unquote(key), unquote(value)
            if any(name == seen for seen, _ in pairs):
                raise DatasetError(
                    f"{where}: {printable(file)} lies below two folders named for the field '{printable(name)}', so its records would hold "
                    "two values of it",
                    hint="Partition by each field once (one `key=value` folder level per key), then `dvc add` the directory and commit again.",
                )
            pairs.append((name, None if written == NULL_FOLDER else written))
        if pairs:
            found[file] = pairs
    integers: dict[str, bool] = {}
    for pairs in found.values():
        for name, text in pairs:
            plain = text is None or (_PLAIN_INT.fullmatch(text) is not None and -(2**63) <= int(text) < 2**63)
            integers[name] = integers.get(name, True) and plain
    valued = {name for pairs in found.values() for name, text in pairs if text is not None}
    typed = {name: "int64" if integers[name] and name in valued else "string" for name in integers}
    return {
        file: tuple(
            FolderField(name, None if text is None else int(text) if typed[name] == "int64" else text, typed[name])
            for name, text in pairs
        )
        for file, pairs in found.items()
    }
