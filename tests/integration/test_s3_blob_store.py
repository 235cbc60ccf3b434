"""FsspecBlobStore against an S3-compatible server (moto): what only S3 can show.

The behaviour every blob store shares is checked once, for every backend, in
``tests/contract/test_blob_store_contract.py``.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import uuid
from typing import Any

import pytest

from conftest import create_bucket
from loopml.errors import NotFound, StoreUnavailable
from loopml.store.artifacts import FsspecBlobStore, open_blob_store, s3_storage_options
from loopml.store.artifacts import fsspec_store as fsspec_store_module

pytestmark = pytest.mark.s3

BUCKET = "loopml-integration"
CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint(s3_server: str) -> str:
    """The session's moto S3 server, with this module's bucket."""
    create_bucket(s3_server, BUCKET)
    return s3_server


def options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        **CREDENTIALS,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        **extra,
    }


@pytest.fixture()
def store(s3_endpoint: str) -> FsspecBlobStore:
    return FsspecBlobStore(f"s3://{BUCKET}/{uuid.uuid4().hex}", **options(s3_endpoint))


def keys(store: FsspecBlobStore) -> list[str]:
    store.fs.invalidate_cache()
    if not store.fs.exists(store.root):
        return []
    return sorted(str(k)[len(store.root) + 1 :] for k in store.fs.find(store.root))


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_open_blob_store_with_an_s3_url(s3_endpoint: str) -> None:
    store = open_blob_store(f"s3://{BUCKET}/via-open/", **options(s3_endpoint))
    assert isinstance(store, FsspecBlobStore)
    assert store.uri == f"s3://{BUCKET}/via-open"
    assert store.root == f"{BUCKET}/via-open"
    sha, _ = store.put_stream(io.BytesIO(b"through open_blob_store"))
    assert store.fs.exists(f"{BUCKET}/via-open/blobs/{sha[:2]}/{sha[2:]}")


def test_endpoint_from_loopml_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_S3_ENDPOINT_URL", s3_endpoint)
    store = open_blob_store(
        f"s3://{BUCKET}/from-env", **CREDENTIALS, client_kwargs={"region_name": "us-east-1"}
    )
    sha, _ = store.put_stream(io.BytesIO(b"endpoint from the environment"))
    assert store.exists(sha)


def test_s3_storage_options_precedence() -> None:
    explicit = {"client_kwargs": {"endpoint_url": "http://explicit"}}
    env = {"LOOPML_S3_ENDPOINT_URL": "http://loopml", "AWS_ENDPOINT_URL": "http://aws"}
    assert s3_storage_options(explicit, env) == explicit
    assert s3_storage_options({"endpoint_url": "http://top"}, env) == {"endpoint_url": "http://top"}
    given: dict[str, Any] = {"key": "k", "client_kwargs": {"region_name": "eu-west-1"}}
    merged = s3_storage_options(given, env)
    assert merged["client_kwargs"] == {"region_name": "eu-west-1", "endpoint_url": "http://loopml"}
    assert given == {"key": "k", "client_kwargs": {"region_name": "eu-west-1"}}
    assert s3_storage_options({}, {"AWS_ENDPOINT_URL": "http://aws"}) == {
        "client_kwargs": {"endpoint_url": "http://aws"}
    }
    assert s3_storage_options({}, {"AWS_ENDPOINT_URL_S3": "http://s3", "AWS_ENDPOINT_URL": "x"})[
        "client_kwargs"
    ] == {"endpoint_url": "http://s3"}
    assert s3_storage_options({}, {}) == {}


def test_staging_objects_are_removed(store: FsspecBlobStore) -> None:
    sha, _ = store.put_stream(io.BytesIO(b"staged then published"))
    assert keys(store) == [f"blobs/{sha[:2]}/{sha[2:]}"]


def test_large_writes_spool_to_disk(
    store: FsspecBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec_store_module, "SPOOL_MAX_BYTES", 1024)
    data = os.urandom(3 * 1024 * 1024)
    sha, size = store.put_stream(io.BytesIO(data))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with store.open(sha) as blob:
        assert blob.read() == data


def test_an_interrupted_publish_leaves_no_blob(
    store: FsspecBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_copy(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("connection reset during copy")

    monkeypatch.setattr(store.fs, "copy", broken_copy)
    with pytest.raises(StoreUnavailable, match="connection reset"):
        store.put_stream(io.BytesIO(b"never published"))
    monkeypatch.undo()
    assert keys(store) == []


def test_an_unreachable_endpoint_is_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    store = FsspecBlobStore(
        f"s3://{BUCKET}/nowhere",
        **options(endpoint, config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}}),
    )
    sha = hashlib.sha256(b"x").hexdigest()
    for call in (
        lambda: store.put_stream(io.BytesIO(b"x")),
        lambda: store.exists(sha),
        lambda: store.open(sha),
        lambda: store.delete(sha),
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert store.uri in info.value.message
        assert info.value.status_code == 503


def test_a_missing_bucket(s3_endpoint: str) -> None:
    store = FsspecBlobStore("s3://no-such-bucket/prefix", **options(s3_endpoint))
    with pytest.raises(StoreUnavailable, match="bucket"):
        store.put_stream(io.BytesIO(b"x"))
    with pytest.raises(NotFound):
        store.open(hashlib.sha256(b"x").hexdigest())
