"""Dialect-specific ``INSERT ... ON CONFLICT`` for SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

WhereFunction = Callable[[Any, Any], Any]


@functools.lru_cache(maxsize=64)
def _statement(
    dialect_name: str,
    model: Any,
    keys: tuple[str, ...],
    update: tuple[str, ...],
    where: WhereFunction | None,
) -> Any:
    # Built once per shape: constructing and compiling the statement costs more than running
    # it, and single-metric logging runs it thousands of times.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(model)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={col: stmt.excluded[col] for col in update},
        where=None if where is None else where(model.__table__.c, stmt.excluded),
    )


def upsert(
    conn: Connection,
    model: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: WhereFunction | None = None,
) -> None:
    """Insert rows, updating ``update`` columns when ``keys`` already exist.

    Parameters
    ----------
    where : callable, optional
        A module-level function ``where(table_columns, excluded)`` returning the condition
        under which an existing row is overwritten; without it every conflict overwrites.
    """
    if rows:
        stmt = _statement(conn.dialect.name, model, tuple(keys), tuple(update), where)
        conn.execute(stmt, list(rows))
