"""Artifact blob stores: content addressing, atomic writes and path confinement.

:func:`open_blob_store` turns an artifact URI into a :class:`~loopml.store.base.BlobStore`;
:func:`normalize_artifact_path` and :func:`confine` are what every user-given artifact path
goes through before it names anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from loopml.errors import InvalidInput
from loopml.store.artifacts.fsspec_store import FsspecBlobStore, s3_storage_options
from loopml.store.artifacts.local import LocalBlobStore
from loopml.store.artifacts.paths import (
    blob_relpath,
    confine,
    normalize_artifact_path,
    safe_extract_destination,
    validate_sha256,
)
from loopml.store.base import BlobStore

__all__ = [
    "FsspecBlobStore",
    "LocalBlobStore",
    "blob_relpath",
    "confine",
    "normalize_artifact_path",
    "open_blob_store",
    "s3_storage_options",
    "safe_extract_destination",
    "validate_sha256",
]

_LOCAL_SCHEMES = frozenset({"file", "local"})


def open_blob_store(uri: str, **storage_options: Any) -> BlobStore:
    """Return the blob store an artifact URI names.

    Parameters
    ----------
    uri : str
        A folder (``/srv/loopml/artifacts`` or ``~/artifacts``), a
        ``file://`` URL, or any fsspec URL (``s3://bucket/prefix``...).
    **storage_options
        Passed to the fsspec filesystem of a remote URL (credentials, ``client_kwargs``);
        for S3 the endpoint may also come from ``LOOPML_S3_ENDPOINT_URL`` or
        ``AWS_ENDPOINT_URL``.

    Returns
    -------
    BlobStore
        A :class:`LocalBlobStore` for a folder or ``file://`` URL, else a
        :class:`FsspecBlobStore`.

    Raises
    ------
    InvalidInput
        When the URI is empty, a ``file://`` URL names another host or carries a query or
        fragment, or fsspec cannot serve the URL.
    StoreUnavailable
        When a local store folder cannot be created.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput("the artifact store URI is empty", field="uri")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"{uri} names a remote host; use a local path", field="uri")
        if parts.query or parts.fragment:
            raise InvalidInput(f"{uri} must not carry a query or fragment", field="uri")
        return LocalBlobStore(url2pathname(parts.path))
    # A one-letter "scheme" is a Windows drive, and "name:thing" without "//" is a folder.
    if len(scheme) > 1 and "://" in uri:
        return FsspecBlobStore(uri, **storage_options)
    return LocalBlobStore(Path(uri))
