"""Engines for the metadata store, with migrations applied on first use.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail at once with
"database is locked" when another process writes, whereas an immediate one waits its turn.
Reads use a second engine with ordinary deferred transactions so they never queue behind
writers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from loopml.errors import InvalidInput, StoreUnavailable

#: The Alembic revision this code expects; a test checks it is the migrations' head.
SCHEMA_REVISION = "0010"
_SQLITE_BUSY_TIMEOUT_MS = 60_000
_PG_MIGRATION_LOCK_KEY = 0x6C6F6F706D6C  # "loopml"


@dataclass(frozen=True)
class StoreEngines:
    """The write and read engines of one database (the same engine except on SQLite)."""

    write: Engine
    read: Engine
    uri: str

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.write.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()


_cache: dict[str, StoreEngines] = {}
_cache_lock = threading.Lock()


def open_engine(uri: str) -> StoreEngines:
    """Return the (cached) engines for a store URI, migrating the schema if needed.

    Parameters
    ----------
    uri : str
        ``sqlite:///path/to/file.db`` or ``postgresql+psycopg://user@host:port/db``.

    Raises
    ------
    InvalidInput
        When the URI is not a SQLite or PostgreSQL URL.
    StoreUnavailable
        When the database cannot be reached.
    """
    with _cache_lock:
        engines = _cache.get(uri)
        if engines is None:
            engines = _create(uri)
            _migrate(engines)
            _cache[uri] = engines
        return engines


def dispose_all() -> None:
    """Dispose every cached engine (used by tests and after ``fork``)."""
    with _cache_lock:
        for engines in _cache.values():
            engines.dispose()
        _cache.clear()


def _create(uri: str) -> StoreEngines:
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidInput(f"store URI {uri!r} is not a database URL", field="store_uri") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise InvalidInput("the SQLite store needs a file path", field="store_uri")
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        write = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
        read = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(write, immediate=True)
        _configure_sqlite(read, immediate=False)
        return StoreEngines(write=write, read=read, uri=uri)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        return StoreEngines(write=engine, read=engine, uri=uri)
    raise InvalidInput(
        f"unsupported store URI scheme {url.drivername!r}: use sqlite:/// or postgresql+psycopg://",
        field="store_uri",
    )


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _current_revision(engines: StoreEngines) -> str | None:
    try:
        with engines.read.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if _is_missing_table(exc):
            return None
        raise StoreUnavailable(f"cannot reach the metadata store: {exc.orig}") from exc


def _is_missing_table(exc: Exception) -> bool:
    message = str(exc).lower()
    return "no such table" in message or "does not exist" in message


def _migrate(engines: StoreEngines) -> None:
    """Upgrade the schema to :data:`SCHEMA_REVISION`, safely when processes race to do it."""
    if _current_revision(engines) == SCHEMA_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engines.write.begin() as conn:
        # SQLite's BEGIN IMMEDIATE already serialises this transaction; PostgreSQL needs a lock.
        if engines.dialect == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
