"""Transaction helpers shared by the SQL stores."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from loopml.errors import StoreUnavailable
from loopml.store.sql.engine import StoreEngines, open_engine

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return int(time.time() * 1000)


def from_row(cls: type[Record], row: Any, **values: Any) -> Record:
    """Build the record ``cls`` (a dataclass) from a result row, field by field.

    Parameters
    ----------
    cls : type
        The dataclass to build.
    row : sqlalchemy.Row
        A result row; its column names are matched against the field names.
    **values
        Fields computed by the caller (a renamed column, an enum), used as given.

    Returns
    -------
    Record
        Each field from ``values``, else the column of its name, else the JSON text of the
        column ``<field>_json`` decoded.

    Raises
    ------
    KeyError
        A field that is in neither ``values`` nor the row: a renamed column must fail loudly
        rather than fall back to the field's default.
    """
    columns = row._mapping
    known = {item.name for item in fields(cls) if item.init}
    if unknown := set(values) - known:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    arguments: dict[str, Any] = {}
    for name in known:
        if name in values:
            arguments[name] = values[name]
        elif name in columns:
            arguments[name] = columns[name]
        elif f"{name}_json" in columns:
            arguments[name] = json.loads(columns[f"{name}_json"])
        else:
            raise KeyError(f"{cls.__name__}.{name}: the row has no column {name!r}")
    return cls(**arguments)


class SqlStoreBase:
    """Opens (and migrates) the database once and hands out read and write transactions."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engines: StoreEngines = open_engine(uri)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engines.write.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"metadata store error: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engines.read.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"metadata store error: {exc.orig}") from exc
