"""LocalBlobStore: layout, atomic writes, crash safety and confinement of the blob folder."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.errors import InvalidInput, NotFound, StoreUnavailable
from loopml.store.artifacts import (
    FsspecBlobStore,
    LocalBlobStore,
    open_blob_store,
)
from loopml.store.artifacts.local import CHUNK_SIZE

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and signals")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


@pytest.fixture()
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store")


def test_blobs_are_sharded_by_digest(store: LocalBlobStore) -> None:
    data = b"hello loopml"
    sha, size = store.put_stream(io.BytesIO(data))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    blob = store.root / "blobs" / sha[:2] / sha[2:]
    assert blob.read_bytes() == data
    assert files_under(store.root) == [blob]


def test_identical_content_is_stored_once(store: LocalBlobStore) -> None:
    first = store.put_stream(io.BytesIO(b"same"))
    blob = store.root / "blobs" / first[0][:2] / first[0][2:]
    mtime = blob.stat().st_mtime_ns
    assert store.put_stream(io.BytesIO(b"same")) == first
    assert blob.stat().st_mtime_ns == mtime
    assert files_under(store.root) == [blob]


def test_multi_chunk_stream(store: LocalBlobStore) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    sha, size = store.put_stream(io.BytesIO(data))
    assert size == len(data)
    with store.open(sha) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == sha


@POSIX_ONLY
def test_staging_folder_is_private(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "tmp").mkdir(parents=True, mode=0o777)
    os.chmod(root / "tmp", 0o777)
    LocalBlobStore(root)
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o700


def test_uri_is_a_file_url(store: LocalBlobStore) -> None:
    assert store.uri.startswith("file://")
    assert store.root.is_absolute()
    assert "LocalBlobStore(" in repr(store)


class FailingStream(io.RawIOBase):
    """Yields a few chunks, then fails as a dropped upload would."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left == 0:
            raise ConnectionResetError("client went away")
        self.left -= 1
        return b"x" * CHUNK_SIZE


def test_a_failed_write_leaves_nothing_behind(store: LocalBlobStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put_stream(FailingStream(3))  # type: ignore[arg-type]
    assert files_under(store.root) == []


def test_text_streams_are_refused(store: LocalBlobStore) -> None:
    with pytest.raises(InvalidInput, match="binary"):
        store.put_stream(io.StringIO("text"))  # type: ignore[arg-type]
    assert files_under(store.root) == []


def test_put_file_errors(store: LocalBlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.put_file(str(tmp_path / "missing.bin"))
    with pytest.raises(InvalidInput):
        store.put_file(str(tmp_path))


@POSIX_ONLY
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_unwritable_store_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalBlobStore(root)
    os.chmod(root / "tmp", 0o500)
    try:
        with pytest.raises(StoreUnavailable):
            store.put_stream(io.BytesIO(b"data"))
    finally:
        os.chmod(root / "tmp", 0o700)


def test_a_full_disk_is_unavailable_and_leaves_nothing(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("loopml.store.artifacts.local.os.fsync", no_space)
    with pytest.raises(StoreUnavailable, match="No space left"):
        store.put_stream(io.BytesIO(b"data"))
    monkeypatch.undo()
    assert files_under(store.root) == []


def test_uncreatable_store_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreUnavailable):
        LocalBlobStore(blocker / "store")


def test_purge_stale_tmp(store: LocalBlobStore) -> None:
    stale = store.root / "tmp" / "put-1-dead.part"
    stale.write_bytes(b"partial")
    assert store.purge_stale_tmp() == 0
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    assert store.purge_stale_tmp() == 1
    assert not stale.exists()


# Symlinks planted inside the store must not let a blob read or write leave the root.


@pytest.fixture()
def outside(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "outside"
    folder.mkdir()
    try:
        (tmp_path / "probe").symlink_to(folder, target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")
    (tmp_path / "probe").unlink()
    yield folder


def test_symlinked_shard_folder_is_refused(store: LocalBlobStore, outside: Path) -> None:
    data = b"payload"
    sha = hashlib.sha256(data).hexdigest()
    (store.root / "blobs" / sha[:2]).symlink_to(outside, target_is_directory=True)
    (outside / sha[2:]).write_bytes(b"not yours")
    with pytest.raises(InvalidInput, match="leaves its root"):
        store.put_stream(io.BytesIO(data))
    with pytest.raises(InvalidInput):
        store.open(sha)
    with pytest.raises(InvalidInput):
        store.exists(sha)
    with pytest.raises(InvalidInput):
        store.delete(sha)
    assert (outside / sha[2:]).read_bytes() == b"not yours"
    assert list((store.root / "tmp").iterdir()) == []


def test_symlinked_blob_file_is_refused(store: LocalBlobStore, outside: Path) -> None:
    secret = outside / "secret"
    secret.write_bytes(b"s3cret")
    sha = "cd" * 32
    (store.root / "blobs" / "cd").mkdir()
    (store.root / "blobs" / "cd" / sha[2:]).symlink_to(secret)
    with pytest.raises(InvalidInput):
        store.open(sha)


def test_symlinked_blobs_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "blobs").symlink_to(outside, target_is_directory=True)
    store = LocalBlobStore(root)
    with pytest.raises(InvalidInput):
        store.put_stream(io.BytesIO(b"data"))
    assert files_under(outside) == []


# A writer killed mid-write must never leave a visible partial blob.

CRASH_SCRIPT = textwrap.dedent(
    """
    import io
    import sys
    import time

    from loopml.store.artifacts.local import LocalBlobStore

    class Endless(io.RawIOBase):
        def readable(self):
            return True

        def read(self, size=-1):
            time.sleep(0.01)
            return b"x" * (1024 * 1024)

    LocalBlobStore(sys.argv[1]).put_stream(Endless())
    """
)


@POSIX_ONLY
def test_sigkill_during_put_stream_leaves_no_partial_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(root)])
    try:
        deadline = time.monotonic() + 60
        while True:
            staged = list((root / "tmp").glob("*.part")) if (root / "tmp").is_dir() else []
            if staged and staged[0].stat().st_size >= 4 * 1024 * 1024:
                break
            assert proc.poll() is None, "the writer exited before it was killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert files_under(root / "blobs") == []

    store = LocalBlobStore(root)
    sha, _ = store.put_stream(io.BytesIO(b"after the crash"))
    assert store.exists(sha)
    assert files_under(root / "blobs") == [root / "blobs" / sha[:2] / sha[2:]]
    assert store.purge_stale_tmp(older_than=0) == 1
    assert list((root / "tmp").iterdir()) == []


# open_blob_store picks the backend from the URI.


def test_open_blob_store_plain_path(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "plain"))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "plain"


def test_open_blob_store_file_url(tmp_path: Path) -> None:
    target = tmp_path / "with space"
    store = open_blob_store(target.as_uri())
    assert isinstance(store, LocalBlobStore)
    assert store.root == target
    assert isinstance(open_blob_store("file://localhost" + target.as_posix()), LocalBlobStore)


@pytest.mark.parametrize(
    "uri", ["", "   ", "file://evil.example.com/x", "file:///tmp/x#frag", "nosuchproto://x"]
)
def test_open_blob_store_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidInput) as info:
        open_blob_store(uri)
    assert info.value.field == "uri"


def test_open_blob_store_remote_urls_use_fsspec() -> None:
    store = open_blob_store("memory://loopml-open-test/prefix/")
    assert isinstance(store, FsspecBlobStore)
    assert store.uri == "memory://loopml-open-test/prefix"
    assert open_blob_store("memory://").uri == "memory://"
