"""Canary validation against real destinations: LanceDB on disk and Pinecone through its SDK.

The destination holds the ``known_versions`` v2 records; canary vectors are read from the real
DVC dataset at v2. Expected results are computed by brute force with numpy, so a passing test
shows the destination really retrieved what the dataset says it should.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import KnownVersions
from fixtures.repo import DatasetRepo
from reconciler.dataset import read_batches, resolve_version
from reconciler.engine.validation import CanaryFile, check_canaries, load_canaries, resolve_query_vectors, run_canaries
from reconciler.errors import CanaryError
from reconciler.manifest import LoadedManifest, load_manifest
from reconciler.providers.base import Destination
from reconciler.providers.lancedb import LanceDBDestination
from reconciler.records import RecordBatch
from reconciler.render.human import render_validation

TOP_K = 5


def _batch(records: list[dict]) -> RecordBatch:
    meta = [{k: v for k, v in r.items() if k not in ("id", "vector")} for r in records]
    return RecordBatch.from_rows([r["id"] for r in records], [r["vector"] for r in records], meta, len(records[0]["vector"]))


def _nearest(records: list[dict], vector: np.ndarray, k: int) -> list[str]:
    """Brute-force cosine top-k: what any correct index must return."""
    matrix = np.asarray([r["vector"] for r in records], dtype=np.float64)
    q = np.asarray(vector, dtype=np.float64)
    scores = matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    return [records[i]["id"] for i in np.argsort(-scores)[:k]]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, dataset_repo: DatasetRepo) -> LoadedManifest:
    folder = tmp_path_factory.mktemp("validation")
    staging = environment("v2", lancedb_destination("docs"))
    path = write_manifest(folder / "vectorops.yaml", {"staging": staging}, repo=dataset_repo.root, metric=None)
    return load_manifest(path)


@pytest.fixture(scope="module")
def lance(tmp_path_factory: pytest.TempPathFactory, known_versions: KnownVersions) -> LanceDBDestination:
    dest = LanceDBDestination(uri=str(tmp_path_factory.mktemp("lance") / "db"), table="docs")
    dest.ensure(known_versions.dim, "cosine")
    dest.upsert(_batch(known_versions.v2))
    return dest


def _canaries(tmp_path: Path, known_versions: KnownVersions) -> tuple[CanaryFile, dict[str, list[str]]]:
    """Two passing queries and one failing one; returns the file and the brute-force truth."""
    by_id = {r["id"]: r for r in known_versions.v2}
    ids = sorted(known_versions.unchanged)
    anchor, explicit_src = ids[0], ids[1]
    explicit = np.asarray(by_id[explicit_src]["vector"], dtype=np.float32) * 2.0  # same direction, new vector
    truth = {
        "self": _nearest(known_versions.v2, np.asarray(by_id[anchor]["vector"]), TOP_K),
        "explicit": _nearest(known_versions.v2, explicit, TOP_K),
    }
    far = _nearest(known_versions.v2, -np.asarray(by_id[anchor]["vector"]), 1)[0]  # the opposite direction
    assert far not in truth["self"]
    vector_text = "[" + ", ".join(repr(float(x)) for x in explicit) + "]"
    path = tmp_path / "canaries.yaml"
    path.write_text(
        f"""top_k: {TOP_K}
queries:
  - name: self
    vector_of: {anchor}
    expect: [{anchor}, {truth['self'][1]}]
  - name: explicit
    vector: {vector_text}
    expect: [{explicit_src}]
  - name: far away
    vector_of: {anchor}
    expect: [{anchor}, {far}]
""",
        encoding="utf-8",
    )
    truth["far away"] = truth["self"]
    truth["_far"] = [far]
    return load_canaries(path, "canaries.yaml"), truth


def _run_and_check(dest: Destination, canaries: CanaryFile, truth: dict[str, list[str]], manifest: LoadedManifest) -> None:
    vectors = resolve_query_vectors(canaries, manifest, "docs", "v2")
    result = run_canaries(canaries, vectors, dest, min_pass_rate=0.5)
    assert (result["passed"], result["total"], result["ok"]) == (2, 3, True)
    assert result["pass_rate"] == pytest.approx(2 / 3) and result["min_pass_rate"] == 0.5
    (failure,) = result["failures"]
    assert failure["name"] == "far away"
    assert failure["missing"] == truth["_far"]
    assert failure["returned"] == truth["self"]  # exactly the nearest neighbours, in order
    assert failure["expected"][1] == truth["_far"][0]
    strict = run_canaries(canaries, vectors, dest, min_pass_rate=0.95)
    assert strict["ok"] is False and strict["passed"] == 2
    text = render_validation(strict)
    assert "FAILED" in text and "2/3" in text and "far away" in text and truth["_far"][0] in text


def test_vectors_come_from_the_dataset_version(tmp_path: Path, known_versions: KnownVersions, manifest: LoadedManifest) -> None:
    canaries, _ = _canaries(tmp_path, known_versions)
    vectors = resolve_query_vectors(canaries, manifest, "docs", "v2")
    by_id = {r["id"]: r for r in known_versions.v2}
    anchor = canaries.queries[0].vector_of
    assert vectors[0].dtype == np.float32
    assert vectors[0].tobytes() == np.asarray(by_id[anchor]["vector"], dtype=np.float32).tobytes()
    assert vectors[1].tobytes() == np.asarray(canaries.queries[1].vector, dtype=np.float32).tobytes()
    # an id whose vector changed between versions is read at the version asked for
    changed = min(known_versions.updated_vector)
    path = tmp_path / "changed.yaml"
    path.write_text(f"queries:\n  - {{name: c, vector_of: {changed}, expect: [{changed}]}}\n")
    one = load_canaries(path, "changed.yaml")
    src = manifest.dataset_source("docs")
    (at_v1,) = resolve_query_vectors(one, manifest, "docs", resolve_version(src, "v1"))
    (at_v2,) = resolve_query_vectors(one, manifest, "docs", "v2")
    v1 = {r["id"]: r for r in known_versions.v1}
    assert at_v1.tobytes() == np.asarray(v1[changed]["vector"], dtype=np.float32).tobytes()
    assert at_v2.tobytes() == np.asarray(by_id[changed]["vector"], dtype=np.float32).tobytes()


def test_unknown_vector_of_id_is_refused_when_resolving(tmp_path: Path, known_versions: KnownVersions, manifest: LoadedManifest) -> None:
    deleted = min(known_versions.deleted)  # in v1, gone in v2
    path = tmp_path / "c.yaml"
    path.write_text(f"queries:\n  - {{name: gone, vector_of: {deleted}, expect: [{deleted}]}}\n")
    with pytest.raises(CanaryError, match=f"'{deleted}'"):
        resolve_query_vectors(load_canaries(path, "c.yaml"), manifest, "docs", "v2")


def test_check_against_the_version_ids(tmp_path: Path, known_versions: KnownVersions, manifest: LoadedManifest) -> None:
    src = manifest.dataset_source("docs")
    v1 = resolve_version(src, "v1")
    ids_v1 = pa.concat_arrays([b.ids for b in read_batches(src, v1, ids_only=True)])
    added = min(known_versions.added)  # only in v2
    path = tmp_path / "c.yaml"
    path.write_text(f"queries:\n  - {{name: new doc, vector_of: {added}, expect: [{added}]}}\n")
    canaries = load_canaries(path, "c.yaml")
    with pytest.raises(CanaryError) as info:
        check_canaries(canaries, dimension=16, version_ids=ids_v1, version_label="dataset 'docs' at v1")
    assert f"c.yaml:2:32: query 'new doc': vector_of id '{added}' is not in dataset 'docs' at v1" in str(info.value)
    ids_v2 = pa.concat_arrays([b.ids for b in read_batches(src, resolve_version(src, "v2"), ids_only=True)])
    check_canaries(canaries, dimension=16, version_ids=ids_v2)


def test_passing_and_failing_canaries_on_lancedb(
    tmp_path: Path, known_versions: KnownVersions, manifest: LoadedManifest, lance: LanceDBDestination
) -> None:
    canaries, truth = _canaries(tmp_path, known_versions)
    _run_and_check(lance, canaries, truth, manifest)


def test_passing_and_failing_canaries_on_pinecone(
    tmp_path: Path, known_versions: KnownVersions, manifest: LoadedManifest, pinecone_server: object
) -> None:
    pytest.importorskip("pinecone")
    from reconciler.providers.pinecone import PineconeDestination

    dest = PineconeDestination(index="docs", host=None, retry_timeout=20.0, consistency_timeout=10.0)
    try:
        dest.ensure(known_versions.dim, "cosine")
        dest.upsert(_batch(known_versions.v2))
        dest.after_apply()
        canaries, truth = _canaries(tmp_path, known_versions)
        _run_and_check(dest, canaries, truth, manifest)
    finally:
        dest.close()
