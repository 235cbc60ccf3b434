"""Dialect-specific ``INSERT ... ON CONFLICT`` for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection
from sqlalchemy.dialects import postgresql, sqlite


def upsert(
    conn: Connection,
    model: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: Any = None,
) -> None:
    """Insert rows, updating ``update`` columns when ``keys`` already exist.

    Parameters
    ----------
    where : callable, optional
        ``where(table, excluded)`` returning the condition under which an existing row is
        overwritten; without it every conflict overwrites.
    """
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model)
    condition: ColumnElement[bool] | None = (
        None if where is None else where(model.__table__.c, stmt.excluded)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={col: stmt.excluded[col] for col in update},
        where=condition,
    )
    conn.execute(stmt, list(rows))
