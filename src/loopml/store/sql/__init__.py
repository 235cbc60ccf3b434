"""SQLAlchemy 2 backend for SQLite and PostgreSQL."""

from loopml.store.sql.engine import open_engine
from loopml.store.sql.tracking import SqlTrackingStore

__all__ = ["SqlTrackingStore", "open_engine"]
