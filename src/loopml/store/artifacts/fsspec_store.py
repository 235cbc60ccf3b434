"""Content-addressed blobs behind any fsspec URL (S3 and S3-compatible stores first).

The layout matches :mod:`loopml.store.artifacts.local`: ``<prefix>/blobs/<sha[:2]>/<sha[2:]>``.

A write first spools the stream to a private local temp file (in memory up to 64 MiB)
while hashing it, so identical content is never uploaded twice and the bytes cannot
change between hashing and upload. New content is then uploaded to ``<prefix>/tmp/<uuid>``
and copied server-side to its blob key: object stores make each object appear whole or not
at all, so readers never see a partial blob, even though fsspec file objects may commit
what they hold when an upload is interrupted. A writer killed mid-upload can leave an
object under ``tmp/``; an object-store lifecycle rule on that prefix cleans those up.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from fsspec.core import url_to_fs

from loopml.errors import InvalidInput, NotFound, StoreUnavailable
from loopml.store.artifacts.local import CHUNK_SIZE, copy_and_hash
from loopml.store.artifacts.paths import blob_relpath

logger = logging.getLogger(__name__)

SPOOL_MAX_BYTES = 64 * 1024 * 1024
"""Bytes of a write kept in memory before spooling to a local temp file."""

S3_ENDPOINT_ENV_VARS = ("LOOPML_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""Environment variables naming an S3-compatible endpoint, first match wins."""

_S3_PROTOCOLS = frozenset({"s3", "s3a"})


def _optional_error_types() -> tuple[type[BaseException], ...]:
    """Return botocore's base errors when installed: s3fs lets some through untranslated."""
    try:
        module = importlib.import_module("botocore.exceptions")
    except ImportError:
        return ()
    return (module.BotoCoreError, module.ClientError)


_BACKEND_ERRORS: tuple[type[BaseException], ...] = (OSError, *_optional_error_types())


def s3_storage_options(
    storage_options: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Add an S3 endpoint taken from the environment to s3fs storage options.

    An endpoint given explicitly (``endpoint_url`` or ``client_kwargs["endpoint_url"]``)
    wins; otherwise the first of ``LOOPML_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3`` and
    ``AWS_ENDPOINT_URL`` that is set is used, so a local S3-compatible server (MinIO, moto)
    can be configured without code.

    Parameters
    ----------
    storage_options : Mapping
        Options for :class:`s3fs.S3FileSystem`; not modified.
    environ : Mapping, optional
        The environment to read; ``os.environ`` by default.

    Returns
    -------
    dict
        A copy of the options, with ``client_kwargs["endpoint_url"]`` set when found.
    """
    env = os.environ if environ is None else environ
    options = dict(storage_options)
    client_kwargs = dict(options.get("client_kwargs") or {})
    if options.get("endpoint_url") or client_kwargs.get("endpoint_url"):
        return options
    endpoint = next((env[name] for name in S3_ENDPOINT_ENV_VARS if env.get(name)), None)
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
        options["client_kwargs"] = client_kwargs
    return options


class FsspecBlobStore:
    """A :class:`~loopml.store.base.BlobStore` under an fsspec URL such as ``s3://bucket/prefix``.

    Parameters
    ----------
    uri : str
        The store's URL; blobs live under it.
    **storage_options
        Passed to the fsspec filesystem (credentials, ``client_kwargs``...). For S3 the
        endpoint may also come from the environment, see :func:`s3_storage_options`.

    Attributes
    ----------
    uri : str
        The URL given, without a trailing slash.
    fs : fsspec.AbstractFileSystem
        The filesystem serving the URL.
    root : str
        The URL's path as the filesystem names it (``bucket/prefix`` for S3).

    Raises
    ------
    InvalidInput
        When fsspec does not know the protocol or its package is not installed.
    """

    def __init__(self, uri: str, **storage_options: Any) -> None:
        stripped = uri.rstrip("/")
        # "memory://" must not lose its slashes: only a path has a trailing slash to drop.
        self.uri = uri if stripped.endswith(":") else stripped
        protocol = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if protocol in _S3_PROTOCOLS:
            storage_options = s3_storage_options(storage_options)
        try:
            fs, root = url_to_fs(uri, **storage_options)
        except ImportError as exc:
            hint = " (pip install 'loopml[s3]')" if protocol in _S3_PROTOCOLS else ""
            raise InvalidInput(f"{uri}: {exc}{hint}", field="uri") from exc
        except ValueError as exc:
            raise InvalidInput(f"{uri} is not a usable storage URL: {exc}", field="uri") from exc
        self.fs: Any = fs
        self.root = str(root).rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.uri!r})"

    def put_file(self, local_path: str) -> tuple[str, int]:
        """Store a local file's bytes atomically.

        Parameters
        ----------
        local_path : str
            The caller's own file.

        Returns
        -------
        tuple of (str, int)
            The blob's sha256 and size in bytes.

        Raises
        ------
        NotFound
            When ``local_path`` does not exist.
        StoreUnavailable
            When the backend cannot be reached or refuses the write.
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
        """Store a stream's bytes atomically; identical content is uploaded once.

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
            When the backend cannot be reached or refuses the write.
        """
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool:
            sha256, size = copy_and_hash(stream, spool)
            final = self._key(blob_relpath(sha256))
            with self._backend_errors("store a blob"):
                if self._stored_size(final) == size:
                    return sha256, size
                staging = self._key(f"tmp/{uuid.uuid4().hex}")
                try:
                    spool.seek(0)
                    with self.fs.open(staging, "wb") as out:
                        shutil.copyfileobj(spool, out, CHUNK_SIZE)
                    self.fs.copy(staging, final)
                finally:
                    self._remove_quietly(staging)
        return sha256, size

    def exists(self, sha256: str) -> bool:
        """Return whether the blob is stored.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        StoreUnavailable
            When the backend cannot be reached.
        """
        key = self._key(blob_relpath(sha256))
        with self._backend_errors("look up a blob"):
            return bool(self.fs.exists(key))

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading.

        Parameters
        ----------
        sha256 : str
            The blob's digest.

        Returns
        -------
        BinaryIO
            A binary file object reading from the backend; the caller closes it.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        NotFound
            When no such blob is stored.
        StoreUnavailable
            When the backend cannot be reached.
        """
        key = self._key(blob_relpath(sha256))
        with self._backend_errors("open a blob"):
            try:
                return cast(BinaryIO, self.fs.open(key, "rb"))
            except FileNotFoundError as exc:
                raise NotFound(f"blob {sha256} not found", field="sha256") from exc

    def delete(self, sha256: str) -> None:
        """Remove a blob; a missing blob is ignored.

        Raises
        ------
        InvalidInput
            When ``sha256`` is not 64 lowercase hex characters.
        StoreUnavailable
            When the backend cannot be reached.
        """
        key = self._key(blob_relpath(sha256))
        with self._backend_errors("delete a blob"):
            try:
                self.fs.rm_file(key)
            except FileNotFoundError:
                pass

    def _stored_size(self, key: str) -> int | None:
        """Return the size of a stored object, or None when there is none.

        A blob of the wrong size (a corrupted upload) is then overwritten, not trusted.
        """
        try:
            info = self.fs.info(key)
        except FileNotFoundError:
            return None
        size = info.get("size")
        return int(size) if size is not None else None

    def _key(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.root else relative

    @contextmanager
    def _backend_errors(self, action: str) -> Iterator[None]:
        """Report the backend's own errors (a missing bucket included) as StoreUnavailable."""
        try:
            yield
        except _BACKEND_ERRORS as exc:
            raise StoreUnavailable(
                f"the artifact store {self.uri} failed to {action}: {type(exc).__name__}: {exc}"
            ) from exc

    def _remove_quietly(self, key: str) -> None:
        # Runs while another error may be propagating; it must not replace that error.
        try:
            self.fs.rm_file(key)
        except _BACKEND_ERRORS as exc:
            logger.debug("could not remove staging object %s: %s", key, exc)
