"""The tracking SDK with its artifacts on S3 (a local S3-compatible server)."""

from __future__ import annotations

import pytest

import loopml as lm
from conftest import create_bucket

pytestmark = pytest.mark.s3


def test_run_artifacts_on_s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_bucket(s3_server, "loopml-tracking")
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", "s3://loopml-tracking/team-a")
    monkeypatch.setenv("LOOPML_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with lm.start_run() as run:
        lm.log_dict({"layers": 3}, "config.json")
        lm.log_text("same bytes", "a.txt")
        lm.log_text("same bytes", "b.txt")
    service = lm.get_service()
    assert b"".join(service.read_artifact(run.run_id, "config.json")) == b'{\n  "layers": 3\n}'
    entries = service.list_artifacts(run.run_id)
    assert [e.path for e in entries] == ["a.txt", "b.txt", "config.json"]
    assert entries[0].sha256 == entries[1].sha256  # content-addressed: stored once

    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="loopml-tracking")["Contents"]]
    assert sorted(k.split("/")[1] for k in keys) == ["blobs", "blobs"]
