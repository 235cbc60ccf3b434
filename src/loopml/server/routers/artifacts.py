"""``/api/v1/runs/{run_id}/artifacts``: streamed upload, listing and streamed download.

Uploads never sit in memory: a worker thread pulls the request body from the event loop
chunk by chunk and feeds it to the blob store, which hashes and writes it as it comes. The
path and the run are checked before the first byte is read. Downloads stream the blob back
with a guessed content type, as an attachment, under a sandboxing CSP.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anyio.from_thread
from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from loopml.entities.tracking import ArtifactEntry
from loopml.errors import InvalidInput
from loopml.server.deps import Tracking
from loopml.server.schemas import ArtifactIndexIn, ArtifactList, ArtifactOut, ErrorOut
from loopml.store.artifacts.paths import normalize_artifact_path, validate_sha256

router = APIRouter(prefix="/api/v1/runs", tags=["artifacts"])

#: Requests the body-size middleware treats as uploads, as ``"<METHOD> <path>"``.
UPLOAD_PATTERN = re.compile(r"^PUT /api/v1/runs/[^/]+/artifacts/")


class _ReceiveReader(io.RawIOBase):
    """A blocking, readable file over an ASGI ``receive`` callable.

    Meant for a worker thread started by AnyIO: each refill runs ``receive`` on the event
    loop, so at most one ASGI message is held in memory at a time.
    """

    def __init__(self, receive: Receive) -> None:
        super().__init__()
        self._receive = receive
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next_message(self) -> Message:
        return await self._receive()

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            message = anyio.from_thread.run(self._next_message)
            if message["type"] == "http.disconnect":
                raise InvalidInput("the client disconnected during the upload", field="body")
            self._pending = memoryview(message.get("body", b""))
            self._done = not message.get("more_body", False)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _BlobResponse(StreamingResponse):
    """Streams a store's chunk iterator and always closes it, even when the client leaves.

    Starlette stops iterating on a disconnect without closing the iterator, and a generator
    that never started cannot run its cleanup at all; the blob's file handle would then
    stay open until garbage collection. So the response starts the iterator when built (in
    the route's worker thread, reading the first chunk) and closes it once the exchange is
    over, whichever way it ends.
    """

    def __init__(self, chunks: Iterator[bytes], **kwargs: Any) -> None:
        self._source = chunks
        first = next(chunks, None)
        super().__init__(itertools.chain([] if first is None else [first], chunks), **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._source, "close", None)
            if callable(close):
                close()


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c not in '"\\' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@router.put(
    "/{run_id}/artifacts/{path:path}",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactOut,
    responses={413: {"model": ErrorOut, "description": "The file is over the upload limit."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_artifact(
    run_id: str, path: str, request: Request, tracking: Tracking
) -> dict[str, Any]:
    """Store the raw request body as ``path`` of the run (replacing an earlier file)."""
    reader = io.BufferedReader(_ReceiveReader(request.receive))
    entry = await run_in_threadpool(tracking.log_artifact_stream, run_id, path, reader)
    return entry.to_dict()


@router.get("/{run_id}/artifacts", response_model=ArtifactList)
def list_artifacts(run_id: str, tracking: Tracking, path: str = "") -> dict[str, Any]:
    """List the run's files under the ``path`` prefix (all of them by default)."""
    return {"artifacts": [e.to_dict() for e in tracking.list_artifacts(run_id, path)]}


@router.get(
    "/{run_id}/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."}
    },
)
def download_artifact(run_id: str, path: str, tracking: Tracking) -> StreamingResponse:
    """Stream one file of the run."""
    clean = normalize_artifact_path(path)
    # Opens the blob now, so a missing file is a 404 rather than a broken stream.
    chunks = tracking.read_artifact(run_id, clean)
    media_type = mimetypes.guess_type(clean)[0] or "application/octet-stream"
    headers = {
        "Content-Disposition": content_disposition(clean.rsplit("/", 1)[-1]),
        # Should a browser render the file anyway, it gets no script and no origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return _BlobResponse(chunks, media_type=media_type, headers=headers)


@router.get("/{run_id}/artifact-index/{path:path}", response_model=ArtifactOut)
def get_artifact_entry(run_id: str, path: str, tracking: Tracking) -> dict[str, Any]:
    """Return the index entry (path, sha256, size) of one file."""
    return tracking.get_artifact_entry(run_id, path).to_dict()


@router.put("/{run_id}/artifact-index/{path:path}", status_code=status.HTTP_204_NO_CONTENT)
def put_artifact_entry(run_id: str, path: str, body: ArtifactIndexIn, tracking: Tracking) -> None:
    """Point ``path`` of the run at a blob by its sha256 (no bytes are sent)."""
    entry = ArtifactEntry(path=path, sha256=validate_sha256(body.sha256), size=body.size)
    tracking.link_artifact(run_id, entry)
