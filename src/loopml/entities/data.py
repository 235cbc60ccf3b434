"""Dataset entities: named datasets, their immutable versions, lineage and validation records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnInfo:
    """A column's name and Arrow type as text (``int64``, ``string``, ``timestamp[us]``...)."""

    name: str
    type: str


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable snapshot of a dataset, identified by the hash of its canonical content.

    Attributes
    ----------
    digest : str
        sha256 of the canonical data (column names, types and values); the same content
        always gives the same digest, whatever file format it came from.
    blob_sha256 : str
        The content-addressed blob holding the Parquet file.
    """

    name: str
    version: int
    digest: str
    blob_sha256: str
    num_rows: int
    num_columns: int
    size_bytes: int
    columns: tuple[ColumnInfo, ...]
    created_time: int
    source: str = ""
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``name@vN``, the form ``get`` and SQL queries accept."""
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["columns"] = [asdict(c) for c in self.columns]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetVersion:
        """Build from the dict :meth:`to_dict` returns."""
        values = dict(data)
        values["columns"] = tuple(ColumnInfo(**c) for c in data["columns"])
        values["tags"] = dict(data.get("tags") or {})
        return cls(**values)


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its versions share the name and, optionally, an attached schema."""

    name: str
    description: str
    created_time: int
    last_update_time: int
    latest_version: int | None
    has_schema: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class LineageEdge:
    """``source`` was used by or produced ``target`` (e.g. dataset version → run)."""

    source_kind: str
    source_id: str
    target_kind: str
    target_id: str
    role: str
    created_time: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class ValidationRecord:
    """A stored validation result of one dataset version."""

    id: int
    name: str
    version: int
    passed: bool
    created_time: int
    result: dict[str, Any]
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)
