"""Transaction helpers shared by the SQL stores."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from loopml.errors import Conflict, StoreUnavailable
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

    def _put_next_version(
        self,
        table: Any,
        match: dict[str, Any],
        definition_json: str,
        created_time: int,
        *,
        what: str,
        attempts: int = 5,
    ) -> tuple[Any | None, int]:
        """Insert ``definition_json`` as the next version of ``match`` unless it equals the latest.

        ``table`` is a mapped class with ``version``, ``definition_json`` and
        ``created_time`` columns besides those ``match`` names.

        Returns
        -------
        (row or None, int)
            The latest row when it already held this definition (nothing stored), else
            None; and the version number that holds the definition.

        Raises
        ------
        Conflict
            When concurrent writers keep taking the next version number.
        """
        for _ in range(attempts):
            try:
                with self._write() as conn:
                    query = select(table)
                    for column, value in match.items():
                        query = query.where(getattr(table, column) == value)
                    latest = conn.execute(query.order_by(table.version.desc()).limit(1)).first()
                    if latest is not None and latest.definition_json == definition_json:
                        return latest, int(latest.version)
                    number = 1 if latest is None else latest.version + 1
                    conn.execute(
                        insert(table).values(
                            **match,
                            version=number,
                            definition_json=definition_json,
                            created_time=created_time,
                        )
                    )
                return None, number
            except IntegrityError:
                continue  # another writer took this version number: look again
        raise Conflict(f"could not store {what}: concurrent writers", field="name")
