"""Transaction helpers shared by the SQL stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from loopml.errors import StoreUnavailable
from loopml.store.sql.engine import StoreEngines, open_engine


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return int(time.time() * 1000)


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
