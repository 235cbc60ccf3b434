"""Run artifacts on top of a blob store and the run store's path index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from loopml.entities.tracking import ArtifactEntry
from loopml.store.artifacts.paths import normalize_artifact_path
from loopml.store.base import BlobStore, RunStore

CHUNK_SIZE = 1024 * 1024


class IndexedArtifactStore:
    """Stores each file once, by sha256, and records ``(run, path) -> sha256`` in the run store.

    The blob is written (atomically) before the index row, so a crash in between leaves at
    most an unreferenced blob and never an index entry pointing at missing or partial bytes.
    """

    def __init__(self, blobs: BlobStore, index: RunStore) -> None:
        self.blobs = blobs
        self.index = index

    def log_artifact(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactEntry:
        """Store the stream's bytes as ``path`` of the run."""
        clean = normalize_artifact_path(path)
        self.index.get_run(run_id)
        sha256, size = self.blobs.put_stream(stream)
        entry = ArtifactEntry(path=clean, sha256=sha256, size=size)
        self.index.add_artifact(run_id, entry)
        return entry

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """Return the run's files under ``prefix``."""
        clean = normalize_artifact_path(prefix, allow_empty=True)
        return self.index.list_artifacts(run_id, clean)

    def open_artifact(self, run_id: str, path: str) -> Iterator[bytes]:
        """Yield the bytes of one file in chunks."""
        entry = self.index.get_artifact(run_id, normalize_artifact_path(path))
        # Open now so a missing blob raises here, not mid-stream.
        return BlobChunks(self.blobs.open(entry.sha256))


class BlobChunks(Iterator[bytes]):
    """Chunks of an open blob; the file closes when exhausted or on :meth:`close`.

    A generator would not do: closing one that never started skips its cleanup, and a
    client that abandons a download before the first chunk would leak the file handle.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def __next__(self) -> bytes:
        chunk = self._handle.read(CHUNK_SIZE) if not self._handle.closed else b""
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        """Release the file handle (idempotent)."""
        self._handle.close()

    def __del__(self) -> None:
        self.close()
