"""A listing's resume checkpoint (``listing_resume.ListingCheckpoint``): the ids listed so far and each
part's next page token, kept in the local cache; anything torn or of another format is listed again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.providers.listing_resume import ListingCheckpoint, ListingPart


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path))
    return tmp_path


def _parts() -> dict[str, ListingPart]:
    a, b = ListingPart("a"), ListingPart("b")
    for k in range(0, 300, 100):
        a.add([f"a{i}" for i in range(k, k + 100)])
    a.token = "tok-a"
    b.add(["b1", "b2"])
    b.done = True
    return {"a": a, "b": b}


def test_a_saved_listing_resumes_with_every_id_and_token() -> None:
    checkpoint = ListingCheckpoint("ns", ["a", "b"])
    checkpoint.save(_parts())
    parts, resumed = ListingCheckpoint("ns", ["a", "b"]).load()
    assert resumed
    assert parts["a"].ids().to_pylist() == [f"a{i}" for i in range(300)] and parts["a"].token == "tok-a" and not parts["a"].done
    assert parts["b"].ids().to_pylist() == ["b1", "b2"] and parts["b"].done and parts["b"].count == 2
    parts["a"].add(["a300"])  # listing goes on from there
    assert parts["a"].count == 301 and parts["a"].ids().to_pylist()[-1] == "a300"
    checkpoint.clear()
    assert ListingCheckpoint("ns", ["a", "b"]).load()[1] is False
    assert not checkpoint.path.exists() and not checkpoint.ids_path.exists()


def test_a_torn_or_older_checkpoint_is_listed_again() -> None:
    checkpoint = ListingCheckpoint("ns", ["a", "b"])
    checkpoint.save(_parts())
    checkpoint.ids_path.unlink()  # the ids are gone: the counts cannot be trusted
    parts, resumed = checkpoint.load()
    assert not resumed and parts["a"].count == 0 and parts["a"].token is None

    checkpoint.save(_parts())
    doc = json.loads(checkpoint.path.read_text())
    doc["parts"]["a"]["count"] = 999  # counts that do not match the ids
    checkpoint.path.write_text(json.dumps(doc))
    assert checkpoint.load()[1] is False

    doc["format"] = 1  # a checkpoint of an earlier vectorops (ids in the JSON)
    doc["parts"]["a"] = {"ids": ["a0"], "token": "t", "done": False}
    checkpoint.path.write_text(json.dumps(doc))
    assert checkpoint.load()[1] is False
