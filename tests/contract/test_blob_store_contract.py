"""One behavioural suite for every BlobStore backend: local folder, fsspec memory, S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import create_bucket
from loopml.errors import InvalidInput, NotFound
from loopml.store.artifacts import FsspecBlobStore, LocalBlobStore
from loopml.store.base import BlobStore

BUCKET = "loopml-contract"


@pytest.fixture(scope="module")
def s3_endpoint(s3_server: str) -> str:
    """The session's moto S3 server, with this module's bucket."""
    create_bucket(s3_server, BUCKET)
    return s3_server


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    prefix = uuid.uuid4().hex
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blob-root")
    elif request.param == "memory":
        store = FsspecBlobStore(f"memory://loopml-contract/{prefix}")
        yield store
        if store.fs.exists(store.root):
            store.fs.rm(store.root, recursive=True)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield FsspecBlobStore(f"s3://{BUCKET}/{prefix}", **s3_options(endpoint))


def stored_objects(store: BlobStore) -> list[str]:
    """Every file or object the store holds, relative to its root (staging included)."""
    if isinstance(store, LocalBlobStore):
        return sorted(
            p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()
        )
    assert isinstance(store, FsspecBlobStore)
    store.fs.invalidate_cache()
    if not store.fs.exists(store.root):
        return []
    return sorted(str(key)[len(store.root) + 1 :] for key in store.fs.find(store.root))


def overwrite_object(store: BlobStore, relative: str, data: bytes) -> None:
    """Write bytes under the store's root behind its back, as a corrupting disk would."""
    if isinstance(store, LocalBlobStore):
        path = store.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        assert isinstance(store, FsspecBlobStore)
        store.fs.pipe_file(f"{store.root}/{relative}", data)


def blob_key(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"blobs/{sha[:2]}/{sha[2:]}"


def test_implements_the_protocol(blob_store: BlobStore) -> None:
    assert isinstance(blob_store, BlobStore)
    assert isinstance(blob_store.uri, str) and blob_store.uri


def test_put_stream_round_trip(blob_store: BlobStore) -> None:
    data = b"weights \x00\xff and bytes"
    sha, size = blob_store.put_stream(io.BytesIO(data))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert blob_store.exists(sha)
    with blob_store.open(sha) as blob:
        assert blob.read() == data
    assert stored_objects(blob_store) == [blob_key(data)]


def test_put_file_round_trip(blob_store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(4096)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    sha, size = blob_store.put_file(str(source))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with blob_store.open(sha) as blob:
        assert blob.read() == data


def test_multi_chunk_stream(blob_store: BlobStore) -> None:
    data = os.urandom(2 * 1024 * 1024 + 777)
    sha, size = blob_store.put_stream(io.BytesIO(data))
    assert size == len(data)
    with blob_store.open(sha) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == sha


def test_empty_blob(blob_store: BlobStore) -> None:
    sha, size = blob_store.put_stream(io.BytesIO(b""))
    assert (sha, size) == (hashlib.sha256(b"").hexdigest(), 0)
    with blob_store.open(sha) as blob:
        assert blob.read() == b""


def test_identical_content_is_stored_once(blob_store: BlobStore, tmp_path: Path) -> None:
    data = b"same bytes"
    source = tmp_path / "same.txt"
    source.write_bytes(data)
    first = blob_store.put_stream(io.BytesIO(data))
    assert blob_store.put_stream(io.BytesIO(data)) == first
    assert blob_store.put_file(str(source)) == first
    assert stored_objects(blob_store) == [blob_key(data)]


def test_a_truncated_blob_is_replaced_not_trusted(blob_store: BlobStore) -> None:
    data = b"the full content of a blob"
    overwrite_object(blob_store, blob_key(data), data[:5])
    sha, _ = blob_store.put_stream(io.BytesIO(data))
    with blob_store.open(sha) as blob:
        assert blob.read() == data


def test_distinct_content_gives_distinct_blobs(blob_store: BlobStore) -> None:
    shas = {blob_store.put_stream(io.BytesIO(f"v{i}".encode()))[0] for i in range(5)}
    assert len(shas) == 5
    assert all(blob_store.exists(sha) for sha in shas)
    assert len(stored_objects(blob_store)) == 5


def test_missing_blob(blob_store: BlobStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not blob_store.exists(sha)
    with pytest.raises(NotFound) as info:
        blob_store.open(sha)
    assert sha in info.value.message
    blob_store.delete(sha)


def test_delete(blob_store: BlobStore) -> None:
    keep, _ = blob_store.put_stream(io.BytesIO(b"keep"))
    drop, _ = blob_store.put_stream(io.BytesIO(b"drop"))
    blob_store.delete(drop)
    assert not blob_store.exists(drop)
    assert blob_store.exists(keep)
    with pytest.raises(NotFound):
        blob_store.open(drop)
    blob_store.delete(drop)
    assert blob_store.put_stream(io.BytesIO(b"drop"))[0] == drop
    assert blob_store.exists(drop)


@pytest.mark.parametrize(
    "sha",
    [
        "",
        "abc",
        "A" * 64,
        "0" * 63,
        "0" * 65,
        "../" + "0" * 61,
        "0" * 2 + "/../../" + "0" * 55,
        "0" * 63 + "\x00",
        "%2e%2e" + "0" * 58,
    ],
)
def test_invalid_sha256_is_refused(blob_store: BlobStore, sha: str) -> None:
    for operation in (blob_store.exists, blob_store.open, blob_store.delete):
        with pytest.raises(InvalidInput) as info:
            operation(sha)
        assert info.value.field == "sha256"


class BrokenStream(io.RawIOBase):
    """Yields one chunk, then fails as a dropped client upload would."""

    def __init__(self) -> None:
        self.served = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.served:
            raise ConnectionResetError("client went away")
        self.served = True
        return b"partial" * 1000


def test_a_failed_stream_stores_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(ConnectionResetError):
        blob_store.put_stream(BrokenStream())  # type: ignore[arg-type]
    assert stored_objects(blob_store) == []


def test_text_streams_are_refused(blob_store: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="binary"):
        blob_store.put_stream(io.StringIO("text"))  # type: ignore[arg-type]
    assert stored_objects(blob_store) == []


def test_put_file_of_a_missing_file(blob_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        blob_store.put_file(str(tmp_path / "missing.bin"))
