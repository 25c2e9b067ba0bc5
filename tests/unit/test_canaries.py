"""Canary files (SPEC §5): what a user gets for a good file, a broken one, and a result to read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from reconciler.engine.validation import check_canaries, load_canaries
from reconciler.errors import CanaryError
from reconciler.render.human import render_validation

IDS = pa.array([f"doc-{i}" for i in range(20)], pa.string())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canaries.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str):  # -> CanaryFile
    return load_canaries(write(tmp_path, text), "canaries/docs.yaml")


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(CanaryError) as info:
        load(tmp_path, text)
    return str(info.value)


def check_error(tmp_path: Path, text: str, dimension: int = 3, ids: pa.Array = IDS) -> str:
    canaries = load(tmp_path, text)
    with pytest.raises(CanaryError) as info:
        check_canaries(canaries, dimension=dimension, version_ids=ids, version_label="dataset 'docs' at v2")
    return str(info.value)


def test_a_good_file_loads_with_defaults(tmp_path: Path) -> None:
    canaries = load(
        tmp_path,
        "queries:\n"
        "  - name: refund policy\n    vector_of: doc-17\n    expect: [doc-17, doc-4]\n"
        "  - name: explicit\n    vector: [0.5, 1, -2.25]\n    expect: [doc-3]\n",
    )
    assert canaries.top_k == 10
    assert [q.name for q in canaries.queries] == ["refund policy", "explicit"]
    assert canaries.queries[0].vector_of == "doc-17" and canaries.queries[0].vector is None
    assert canaries.queries[1].vector == [0.5, 1.0, -2.25]
    check_canaries(canaries, dimension=3, version_ids=IDS)  # nothing to complain about


def test_unknown_key_is_named_with_its_position(tmp_path: Path) -> None:
    message = load_error(tmp_path, "top_k: 5\nqueries:\n  - name: a\n    vector_of: doc-1\n    expect: [doc-1]\n    expected: [doc-2]\n")
    assert "canaries/docs.yaml:6:5: unknown key in queries.0" in message
    assert "expected" not in message  # the file's own text is never echoed (issue 15 item 2)
    assert "Remove it or check its spelling" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, "topk: 5\nqueries:\n  - {name: a, vector_of: doc-1, expect: [doc-1]}\n")
    assert "canaries/docs.yaml:1:1: unknown key in the top level" in message and "topk" not in message


@pytest.mark.parametrize(
    "query",
    [
        "name: both\n    vector_of: doc-1\n    vector: [1, 2, 3]\n    expect: [doc-1]",
        "name: neither\n    expect: [doc-1]",
    ],
)
def test_exactly_one_vector_source(tmp_path: Path, query: str) -> None:
    message = load_error(tmp_path, f"queries:\n  - {query}\n")
    assert "canaries/docs.yaml:2:5" in message
    assert "exactly one of 'vector_of' or 'vector'" in message


def test_expect_must_not_be_empty(tmp_path: Path) -> None:
    message = load_error(tmp_path, "queries:\n  - name: a\n    vector_of: doc-1\n    expect: []\n")
    assert "canaries/docs.yaml:4:13" in message and "queries.0.expect" in message
    assert "at least one" in message


def test_numeric_ids_must_be_quoted(tmp_path: Path) -> None:
    message = load_error(tmp_path, "queries:\n  - name: a\n    vector_of: doc-1\n    expect: [doc-1, 17]\n")
    assert "canaries/docs.yaml:4:21" in message and "valid string" in message and "quote" in message
    assert "got" not in message and "17" not in message.split("quote")[0]  # the value is not echoed


def test_missing_keys_are_named(tmp_path: Path) -> None:
    assert "missing required key 'queries' in the top level" in load_error(tmp_path, "top_k: 3\n")
    message = load_error(tmp_path, "queries:\n  - vector_of: doc-1\n")
    assert "missing required key 'name' in queries.0" in message
    assert "missing required key 'expect' in queries.0" in message


def test_top_k_must_be_positive(tmp_path: Path) -> None:
    message = load_error(tmp_path, "top_k: 0\nqueries:\n  - {name: a, vector_of: doc-1, expect: [doc-1]}\n")
    assert "canaries/docs.yaml:1:8" in message and "top_k" in message


def test_empty_broken_and_absent_files(tmp_path: Path) -> None:
    assert "canaries/docs.yaml:1:1: the canary file is empty" in load_error(tmp_path, "# nothing yet\n")
    broken = load_error(tmp_path, "queries:\n  - name: [a\n")
    assert "canaries/docs.yaml:" in broken and "invalid YAML" in broken
    with pytest.raises(CanaryError, match="no such canary file"):
        load_canaries(tmp_path / "absent.yaml", "canaries/absent.yaml")
    assert "must be a mapping" in load_error(tmp_path, "- name: a\n")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "queries:\n  - name: a\n    name: b\n    vector_of: doc-1\n    expect: [doc-1]\n")
    assert "canaries/docs.yaml:3:5: duplicate key" in message and "'name'" not in message


def test_unknown_ids_are_named_with_query_and_position(tmp_path: Path) -> None:
    message = check_error(
        tmp_path,
        "queries:\n"
        "  - name: first\n    vector_of: doc-404\n    expect: [doc-1]\n"
        "  - name: second\n    vector: [1, 2, 3]\n    expect: [doc-2, doc-77, doc-78]\n",
    )
    assert "canaries/docs.yaml:3:16: query 'first': vector_of id 'doc-404' is not in dataset 'docs' at v2" in message
    assert "canaries/docs.yaml:7:21: query 'second': expected id(s) not in dataset 'docs' at v2: 'doc-77', 'doc-78'" in message
    assert "doc-1'" not in message and "doc-2'" not in message


def test_ids_are_checked_against_a_chunked_array(tmp_path: Path) -> None:
    chunked = pa.chunked_array([IDS[:10], IDS[10:]])
    canaries = load(tmp_path, "queries:\n  - {name: a, vector_of: doc-15, expect: [doc-2]}\n")
    check_canaries(canaries, dimension=3, version_ids=chunked)


def test_wrong_dimension_and_nan_are_refused(tmp_path: Path) -> None:
    message = check_error(
        tmp_path,
        "queries:\n"
        "  - name: short\n    vector: [1, 2]\n    expect: [doc-1]\n"
        "  - name: nan\n    vector: [1, .nan, .inf]\n    expect: [doc-1]\n",
    )
    assert "canaries/docs.yaml:3:13: query 'short': vector has 2 values, the dataset's dimension is 3" in message
    assert "canaries/docs.yaml:6:17: query 'nan': vector holds NaN or infinity at position(s) 1, 2" in message


def test_duplicate_names_and_unreachable_expectations(tmp_path: Path) -> None:
    message = check_error(
        tmp_path,
        "top_k: 1\nqueries:\n"
        "  - {name: same, vector_of: doc-1, expect: [doc-1]}\n"
        "  - {name: same, vector_of: doc-2, expect: [doc-2, doc-3]}\n",
    )
    assert "canaries/docs.yaml:4:12: duplicate query name 'same' (also at canaries/docs.yaml:3:12)" in message
    assert "expects 2 ids but only top_k=1 are returned" in message


def test_render_lists_each_failure() -> None:
    result = {
        "passed": 1,
        "total": 2,
        "pass_rate": 0.5,
        "min_pass_rate": 0.95,
        "top_k": 3,
        "ok": False,
        "failures": [
            {"name": "refund [policy]", "expected": ["doc-1", "doc-2"], "returned": ["doc-1", "doc-9", "doc-8"], "missing": ["doc-2"]}
        ],
    }
    text = render_validation(result)
    assert "FAILED" in text and "1/2 canary queries passed (50%, minimum 95%)" in text
    assert "refund \\[policy]" in text  # user text is escaped, so rich does not eat it as markup
    assert "expected: doc-1, doc-2" in text and "missing:  doc-2" in text and "returned: doc-1, doc-9, doc-8" in text
    ok = render_validation({**result, "passed": 2, "pass_rate": 1.0, "ok": True, "failures": []})
    assert "passed: 2/2" in ok and "FAILED" not in ok and "✗" not in ok
