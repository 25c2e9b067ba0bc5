"""Datasets on cloud DVC remotes: a real S3 remote on a local S3-compatible server, and the message a
user gets when DVC's plugin for the remote's storage is not installed.

The S3 server is moto in server mode on 127.0.0.1 (a real HTTP server speaking S3's REST API),
started by the fixture below; DVC reaches it through its ordinary `endpointurl` remote setting,
with dvc-s3 (installed by the test extra) doing the requests, exactly as against AWS.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import run_vectorops
from fixtures.manifests import environment, lancedb_destination, write_manifest
from fixtures.records import make_records
from fixtures.repo import DatasetRepo, _dvc, run_git

BUCKET = "vectorops-datasets"
SECRET = "s3SECRETvalue/for+the+tests"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto in server mode) on 127.0.0.1, one per test module."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines in test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment only (as the README's workflows pass them), never from ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("VECTOROPS_CACHE_DIR", str(tmp_path / "hash-cache"))  # a fresh machine


def bucket_keys(endpoint: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def use_remote(repo: DatasetRepo, remote: dict[str, Any]) -> None:
    """Make ``remote`` the repo's default DVC remote and commit the config, as `dvc remote add -d` would."""
    with _dvc(repo.root) as dvc, dvc.config.edit() as cfg:
        cfg["remote"]["storage"] = remote
    run_git(repo.root, "commit", "-q", "-am", f"DVC remote: {remote['url']}")


def test_s3_remote_push_then_plan_and_apply_from_a_fresh_clone(
    tmp_path: Path, s3_endpoint: str, aws_credentials: None
) -> None:
    import boto3
    import lancedb

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    repo = DatasetRepo.create(tmp_path / "repo")
    use_remote(repo, {"url": f"s3://{BUCKET}/dvcstore", "endpointurl": s3_endpoint})
    v1 = repo.commit_version(make_records(30, 16, seed=1), tag="v1")  # dvc add, dvc push, commit, tag

    digest = v1.digest
    assert f"dvcstore/files/md5/{digest[:2]}/{digest[2:]}" in bucket_keys(s3_endpoint)  # pushed to S3
    assert list(repo.remote.iterdir()) == []  # and nowhere else

    clone = repo.clone(tmp_path / "clone")  # git only: no DVC cache, so every byte comes from S3
    assert not (clone / ".dvc" / "cache").exists()
    manifest = write_manifest(clone / "vectorops.yaml", {"staging": environment("v1", lancedb_destination())})

    plan = run_vectorops("-m", str(manifest), "plan", "--detailed-exitcode")
    assert plan.code == 2, plan.output
    assert "30 to add" in plan.output

    applied = run_vectorops("-m", str(manifest), "apply", "--auto-approve")
    assert applied.code == 0, applied.output
    assert lancedb.connect(str(clone / "db")).open_table("docs").count_rows() == 30

    again = run_vectorops("-m", str(manifest), "plan", "--detailed-exitcode")
    assert again.code == 0, again.output
    for result in (plan, applied, again):
        assert SECRET not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "plugin", "extra"),
    [("s3://bucket/store", "dvc_s3", "s3"), ("gs://bucket/store", "dvc_gs", "gs"), ("azure://container/store", "dvc_azure", "azure")],
)
def test_a_cloud_remote_without_its_plugin_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_credentials: None, url: str, plugin: str, extra: str
) -> None:
    repo = DatasetRepo.create(tmp_path / "repo")
    use_remote(repo, {"url": url})
    repo.commit_version(make_records(5, 16, seed=2), tag="v1", push=False)
    clone = repo.clone(tmp_path / "clone")
    manifest = write_manifest(clone / "vectorops.yaml", {"staging": environment("v1", lancedb_destination())})
    monkeypatch.setitem(sys.modules, plugin, None)  # as if DVC's plugin were not installed: import fails

    for argv in (["plan"], ["apply", "--auto-approve"]):
        result = run_vectorops("-m", str(manifest), *argv)

        assert result.code == 1, result.output
        assert f"DVC remote 'storage' ({url})" in result.output
        assert f"support for {extra} remotes is not installed" in result.output
        assert f"pip install 'vectorops[{extra}]'" in result.output
        assert f"extras: {extra}" in result.output  # the GitHub Action's input
        assert "requires 'dvc-" not in result.output and "vectorops bug" not in result.output
        assert "Traceback" not in result.output
    assert not (clone / "db").exists() or not any((clone / "db").glob("*.lance"))  # nothing written
