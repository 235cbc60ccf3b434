"""Content-addressed blobs in a local folder, written atomically.

Layout under the root::

    blobs/<sha[:2]>/<sha[2:]>   one file per distinct content, never modified
    tmp/                        private (0700) staging area for writes in progress

A write streams into a temp file under ``tmp/`` while hashing it, fsyncs it, renames it to
its final name (an atomic step on POSIX and Windows) and fsyncs the folder. A process
killed mid-write therefore leaves at most a stray file in ``tmp/``, never a partial blob.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from loopml.errors import InvalidInput, NotFound, StoreUnavailable
from loopml.store.artifacts.paths import blob_relpath, confine

CHUNK_SIZE = 1024 * 1024
"""Bytes read and hashed at a time."""


def copy_and_hash(source: IO[bytes], destination: IO[bytes]) -> tuple[str, int]:
    """Copy a binary stream to another while computing its sha256.

    Parameters
    ----------
    source : IO[bytes]
        Read until exhausted, in chunks of :data:`CHUNK_SIZE`.
    destination : IO[bytes]
        Receives every byte read.

    Returns
    -------
    tuple of (str, int)
        The hex sha256 and the number of bytes copied.

    Raises
    ------
    InvalidInput
        When the source yields text instead of bytes.
    StoreUnavailable
        When writing to ``destination`` fails with an ``OSError`` (disk full, network).
    """
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = source.read(CHUNK_SIZE)
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise InvalidInput("the stream must be opened in binary mode", field="stream")
        digest.update(chunk)
        try:
            destination.write(chunk)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the blob: {exc}") from exc
        size += len(chunk)
    return digest.hexdigest(), size


class LocalBlobStore:
    """A :class:`~loopml.store.base.BlobStore` in a local folder.

    Parameters
    ----------
    root : str or Path
        The store's folder; created (with ``blobs/`` and ``tmp/``) if missing.

    Attributes
    ----------
    root : Path
        The absolute store folder.
    uri : str
        ``file://`` URL of ``root``.

    Raises
    ------
    StoreUnavailable
        When the folders cannot be created.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = self.root.as_uri()
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(mode=0o700, exist_ok=True)
            # mkdir's mode is ignored for an existing folder; staged bytes stay private.
            os.chmod(self._tmp, 0o700)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the blob store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def put_file(self, local_path: str) -> tuple[str, int]:
        """Store a local file's bytes atomically.

        Parameters
        ----------
        local_path : str
            The caller's own file; it is read, not confined.

        Returns
        -------
        tuple of (str, int)
            The blob's sha256 and size in bytes.

        Raises
        ------
        NotFound
            When ``local_path`` does not exist.
        """
        try:
            stream = open(local_path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {local_path}", field="local_path") from exc
        except IsADirectoryError as exc:
            raise InvalidInput(f"{local_path} is a folder", field="local_path") from exc
        with stream:
            return self.put_stream(stream)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream's bytes atomically; identical content is stored once.

        Parameters
        ----------
        stream : BinaryIO
            Read until exhausted; not closed.

        Returns
        -------
        tuple of (str, int)
            The blob's sha256 and size in bytes.

        Raises
        ------
        InvalidInput
            When the stream yields text.
        StoreUnavailable
            When the disk refuses the write (full, read-only, permissions).
        """
        tmp_path = self._new_tmp_path()
        try:
            with self._disk_errors():
                staged = open(tmp_path, "xb")
            with staged:
                sha256, size = copy_and_hash(stream, staged)
                with self._disk_errors():
                    staged.flush()
                    os.fsync(staged.fileno())
            with self._disk_errors():
                self._publish(tmp_path, sha256, size)
            return sha256, size
        finally:
            tmp_path.unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        """Return whether the blob is stored.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        """
        return self._blob_path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading.

        Parameters
        ----------
        sha256 : str
            The blob's digest.

        Returns
        -------
        BinaryIO
            A binary file object; the caller closes it.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        NotFound
            When no such blob is stored.
        """
        path = self._blob_path(sha256)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFound(f"blob {sha256} not found", field="sha256") from exc

    def delete(self, sha256: str) -> None:
        """Remove a blob; a missing blob is ignored.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        """
        self._blob_path(sha256).unlink(missing_ok=True)

    def local_path(self, sha256: str) -> Path:
        """Return the file holding a blob, for readers that want a path (DuckDB, pyarrow).

        Raises
        ------
        NotFound
            When the blob is not stored.
        """
        path = self._blob_path(sha256)
        if not path.is_file():
            raise NotFound(f"blob {sha256} is not in the artifact store", field="sha256")
        return path

    def purge_stale_tmp(self, older_than: float = 86400.0) -> int:
        """Remove staged files left behind by writers that died, and return how many.

        Only files older than ``older_than`` seconds are removed, so writes still in
        progress in other processes are left alone.

        Parameters
        ----------
        older_than : float, default 86400.0
            Minimum age, in seconds, of a staged file to remove.

        Returns
        -------
        int
            The number of files removed.
        """
        cutoff = time.time() - older_than
        removed = 0
        for entry in os.scandir(self._tmp):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _publish(self, tmp_path: Path, sha256: str, size: int) -> None:
        """Rename a fully written, fsynced temp file to its blob name, unless already there.

        An existing blob of the wrong size (truncated by a failing disk, say) is replaced
        rather than trusted.
        """
        final = self._blob_path(sha256)
        shard_is_new = not final.parent.is_dir()
        final.parent.mkdir(parents=True, exist_ok=True)
        # mkdir follows symlinks: check the shard folder again now that it exists.
        final = self._blob_path(sha256)
        if final.is_file() and final.stat().st_size == size:
            return
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)
        if shard_is_new:
            _fsync_dir(self._blobs)

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StoreUnavailable(f"cannot write to the blob store at {self.root}: {exc}") from exc

    def _blob_path(self, sha256: str) -> Path:
        return confine(self.root, blob_relpath(sha256), field="sha256")

    def _new_tmp_path(self) -> Path:
        return self._tmp / f"put-{os.getpid()}-{os.urandom(8).hex()}.part"


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are journaled instead.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
