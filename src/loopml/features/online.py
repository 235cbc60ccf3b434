"""Online stores: the latest feature values per entity, for lookups in the serving path.

A store keeps, for each feature view and entity key, one row: the feature values and the
event timestamp they were observed at. Writes are upserts ruled by that timestamp, so a row
older than the stored one never overwrites it. Between two rows with the same timestamp the
one whose encoded values sort higher wins, which makes a write idempotent and the result of
several writes independent of their order: materialization can be re-run or resumed from any
chunk and leaves the same state.

Values are stored as JSON and come back with their types: ``int``, ``float``, ``str``,
``bool``, ``None`` (``NaN``, ``NA`` and ``NaT`` become ``None``) and lists of them.
Timestamps and dates come back as ISO 8601 strings (``"2024-05-01T12:00:00+00:00"``;
timezone-aware values keep their offset converted to UTC, naive values stay naive).

Two backends exist. :class:`SqliteOnlineStore` (the default) keeps one key-value table in a
file under ``LOOPML_HOME``. :class:`RedisOnlineStore` keeps a hash per entity,
``loopml:fv:<view>:<key>``, holding one field per feature plus the event timestamp; a Lua
script applies the timestamp rule inside Redis, so concurrent writers cannot race.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from loopml.errors import InvalidInput, StoreUnavailable
from loopml.features._online_values import (
    EPOCH,
    encode_column,
    entity_key,
    epoch_micros,
    json_object,
    key_column,
)
from loopml.store.redis_errors import redis_errors

if TYPE_CHECKING:
    import pandas as pd

#: File name of the default SQLite online store under ``LOOPML_HOME``.
DEFAULT_SQLITE_FILE = "online_store.db"
#: Prefix of every Redis key the online store writes.
REDIS_PREFIX = "loopml:fv"
#: Hash fields holding the event timestamp (epoch microseconds) and the tie-break rank.
TS_FIELD = "__loopml_ts__"
RANK_FIELD = "__loopml_rank__"
_VIEW_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: Entities per Lua call and per SQLite ``IN`` list: bounded argument lists.
_BATCH = 500

# Applies the rows of a batch: a row replaces the stored one only when it is newer, or as
# new with a higher rank. ARGV = [feature count, names..., then per key ts, rank, values...].
_UPSERT_LUA = """
local nf = tonumber(ARGV[1])
local written = 0
for i = 1, #KEYS do
  local base = 1 + nf + (i - 1) * (nf + 2)
  local ts = ARGV[base + 1]
  local rank = ARGV[base + 2]
  local cur = redis.call('HMGET', KEYS[i], '__loopml_ts__', '__loopml_rank__')
  local cts = tonumber(cur[1])
  local nts = tonumber(ts)
  if cts == nil or nts > cts or (nts == cts and (not cur[2] or rank > cur[2])) then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], '__loopml_ts__', ts, '__loopml_rank__', rank)
    local args = {}
    for f = 1, nf do
      args[#args + 1] = ARGV[1 + f]
      args[#args + 1] = ARGV[base + 2 + f]
      if #args >= 1000 then
        redis.call('HSET', KEYS[i], unpack(args))
        args = {}
      end
    end
    if #args > 0 then
      redis.call('HSET', KEYS[i], unpack(args))
    end
    written = written + 1
  end
end
return written
"""

# Reads the given fields of every key: one reply per key, nil for a missing field.
_READ_LUA = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV))
end
return out
"""


@runtime_checkable
class OnlineStore(Protocol):
    """What materialization writes to and online lookups read from."""

    def write(
        self,
        view: str,
        rows: pd.DataFrame,
        join_keys: list[str],
        features: list[str],
        timestamp_field: str,
    ) -> int:
        """Upsert the latest values per entity key; return the entities whose row changed."""
        ...

    def read(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[dict[str, Any] | None]:
        """Return the stored features of each key, ``None`` for a key never written."""
        ...

    def read_timestamped(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[tuple[dict[str, Any], datetime] | None]:
        """Like :meth:`read`, each row with its event timestamp (aware, UTC)."""
        ...

    def delete_view(self, view: str) -> None:
        """Remove every row of ``view``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _Prepared:
    """The rows of one write call, reduced to the winning row per entity key."""

    __slots__ = ("keys", "ranks", "timestamps", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.timestamps: list[int] = []
        self.ranks: list[str] = []
        self.values: list[list[str]] = []


class _OnlineStoreBase:
    """What both online stores share: reads without timestamps and closing on exit."""

    def read_timestamped(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[tuple[dict[str, Any], datetime] | None]:
        raise NotImplementedError

    def read(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[dict[str, Any] | None]:
        """Return the stored features of each key, in order; ``None`` for a missing key.

        An empty ``features`` list returns every stored feature; a requested feature the row
        does not hold comes back as ``None``.
        """
        return [
            None if row is None else row[0] for row in self.read_timestamped(view, keys, features)
        ]

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteOnlineStore(_OnlineStoreBase):
    """An online store in one SQLite file (WAL), safe to share between threads.

    Parameters
    ----------
    path : str or Path
        The database file; created with its folder when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS online_features (view TEXT NOT NULL, "
                "entity TEXT NOT NULL, ts INTEGER NOT NULL, rank TEXT NOT NULL, "
                "value TEXT NOT NULL, PRIMARY KEY (view, entity)) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the online store {self.path}: {exc}") from exc
        # One connection serves every thread of a model server; sqlite3 needs them serialized.
        self._lock = threading.Lock()

    def write(
        self,
        view: str,
        rows: pd.DataFrame,
        join_keys: list[str],
        features: list[str],
        timestamp_field: str,
    ) -> int:
        """Upsert the latest values per entity key in one transaction.

        Returns
        -------
        int
            Entities whose stored row changed (0 when the same rows are written again).
        """
        prepared = _prepare(view, rows, join_keys, features, timestamp_field)
        params = [
            (view, key, ts, rank, json_object(features, values))
            for key, ts, rank, values in zip(
                prepared.keys, prepared.timestamps, prepared.ranks, prepared.values, strict=True
            )
        ]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO online_features (view, entity, ts, rank, value) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (view, entity) DO UPDATE SET "
                "ts = excluded.ts, rank = excluded.rank, value = excluded.value "
                "WHERE excluded.ts > online_features.ts OR (excluded.ts = online_features.ts "
                "AND excluded.rank > online_features.rank)",
                params,
            )
            return db.total_changes - before

    def read_timestamped(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[tuple[dict[str, Any], datetime] | None]:
        """Like :meth:`read`, each row with its event timestamp (aware, UTC)."""
        _check_view(view)
        encoded = [entity_key(key) for key in keys]
        found: dict[str, tuple[int, str]] = {}
        unique = list(dict.fromkeys(encoded))
        with self._lock:
            for start in range(0, len(unique), _BATCH):
                batch = unique[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                try:
                    cursor = self._db.execute(
                        "SELECT entity, ts, value FROM online_features "
                        f"WHERE view = ? AND entity IN ({marks})",
                        [view, *batch],
                    )
                    found.update((entity, (ts, value)) for entity, ts, value in cursor)
                except sqlite3.Error as exc:
                    raise StoreUnavailable(
                        f"cannot read the online store {self.path}: {exc}"
                    ) from exc
        return [
            (_select(json.loads(found[k][1]), features), _from_micros(found[k][0]))
            if k in found
            else None
            for k in encoded
        ]

    def delete_view(self, view: str) -> None:
        """Remove every row of ``view``."""
        _check_view(view)
        with self._transaction() as db:
            db.execute("DELETE FROM online_features WHERE view = ?", (view,))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot write the online store {self.path}: {exc}") from exc


class RedisOnlineStore(_OnlineStoreBase):
    """An online store in Redis: a hash ``loopml:fv:<view>:<key>`` per entity.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (or ``rediss://``). The server is pinged on creation.
    timeout : float
        Seconds to wait for a connection or a reply before failing.

    Raises
    ------
    StoreUnavailable
        When the server cannot be reached; the message names the URL (without password).
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise InvalidInput(f"not a Redis URL: {url!r}", field="online_store")
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        self.display = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise InvalidInput(
                f"the Redis database in {self.display} must be a number", field="online_store"
            )
        # A down server must fail the call at once: no retries, bounded socket waits.
        self._client: Any = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._script: Any = self._client.register_script(_UPSERT_LUA)
        self._read_script: Any = self._client.register_script(_READ_LUA)
        with redis_errors(self.display):
            self._client.ping()

    def write(
        self,
        view: str,
        rows: pd.DataFrame,
        join_keys: list[str],
        features: list[str],
        timestamp_field: str,
    ) -> int:
        """Upsert the latest values per entity key, in one pipelined round trip.

        Returns
        -------
        int
            Entities whose stored row changed (0 when the same rows are written again).
        """
        reserved = [name for name in features if name in (TS_FIELD, RANK_FIELD)]
        if reserved:
            raise InvalidInput(f"feature name {reserved[0]!r} is reserved", field="features")
        prepared = _prepare(view, rows, join_keys, features, timestamp_field)
        if not prepared.keys:
            return 0
        with redis_errors(self.display):
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(prepared.keys), _BATCH):
                stop = start + _BATCH
                args: list[Any] = [len(features), *features]
                for ts, rank, values in zip(
                    prepared.timestamps[start:stop],
                    prepared.ranks[start:stop],
                    prepared.values[start:stop],
                    strict=True,
                ):
                    args.extend((ts, rank, *values))
                keys = [_redis_key(view, key) for key in prepared.keys[start:stop]]
                self._script(keys=keys, args=args, client=pipe)
            return sum(int(n) for n in pipe.execute())

    def read_timestamped(
        self, view: str, keys: list[dict[str, Any]], features: list[str]
    ) -> list[tuple[dict[str, Any], datetime] | None]:
        """Like :meth:`read`, each row with its event timestamp (aware, UTC)."""
        return self.read_timestamped_views([(view, keys, features)])[0]

    def read_timestamped_views(
        self, reads: Sequence[tuple[str, list[dict[str, Any]], list[str]]]
    ) -> list[list[tuple[dict[str, Any], datetime] | None]]:
        """:meth:`read_timestamped` of several views at once, in one round trip.

        Parameters
        ----------
        reads : sequence of tuple
            Per view: its name, the join key values per entity and the features to read.

        Returns
        -------
        list
            Per view, in order, what :meth:`read_timestamped` returns.
        """
        pipe = self._client.pipeline(transaction=False)
        parts: list[tuple[list[str], int]] = []
        for view, keys, features in reads:
            _check_view(view)
            redis_keys = [_redis_key(view, entity_key(key)) for key in keys]
            if features:
                # One script call per batch of keys rather than one HMGET each: redis-py's
                # cost per command, not the server's, dominates a lookup of many entities.
                calls = 0
                for start in range(0, len(redis_keys), _BATCH):
                    batch = redis_keys[start : start + _BATCH]
                    pipe.evalsha(self._read_script.sha, len(batch), *batch, TS_FIELD, *features)
                    calls += 1
            else:
                for key in redis_keys:
                    pipe.hgetall(key)
                calls = len(redis_keys)
            parts.append((features, calls))
        with redis_errors(self.display):
            replies = self._execute_reads(pipe)
        results: list[list[tuple[dict[str, Any], datetime] | None]] = []
        at = 0
        for features, calls in parts:
            got = replies[at : at + calls]
            at += calls
            rows = [row for part in got for row in part] if features else got
            results.append(_parse_rows(rows, features))
        return results

    def _execute_reads(self, pipe: Any) -> list[Any]:
        """Run a pipeline of reads; load the read script first if the server lost it.

        The script is called by its hash and loaded only when the server does not know it,
        so that a lookup costs no extra round trip (redis-py's pipelined scripts check for
        them on every call).
        """
        import redis

        commands = list(pipe.command_stack)
        try:
            return list(pipe.execute())
        except redis.exceptions.NoScriptError:
            self._client.script_load(_READ_LUA)
            retry = self._client.pipeline(transaction=False)
            retry.command_stack = commands
            return list(retry.execute())

    def delete_view(self, view: str) -> None:
        """Remove every hash of ``view`` (SCAN, then UNLINK in batches)."""
        _check_view(view)
        with redis_errors(self.display):
            batch: list[str] = []
            for key in self._client.scan_iter(match=f"{REDIS_PREFIX}:{view}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def open_online_store(uri: str | None = None) -> OnlineStore:
    """Open the online store a URI names.

    Parameters
    ----------
    uri : str, optional
        ``None`` or ``sqlite://`` for ``online_store.db`` under ``LOOPML_HOME``;
        ``sqlite:///relative/path.db`` (under ``LOOPML_HOME``) or ``sqlite:////abs/path.db``;
        ``redis://host:port/db`` or ``rediss://...`` for Redis.

    Raises
    ------
    InvalidInput
        When the scheme is not one of these.
    StoreUnavailable
        When the store cannot be opened or reached.
    """
    from loopml.config import load_settings

    if uri is None or uri in ("sqlite://", "sqlite:///"):
        return SqliteOnlineStore(load_settings().home / DEFAULT_SQLITE_FILE)
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        path = Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
        if path is None or not str(path):
            raise InvalidInput(
                f"a SQLite online store URI is sqlite:///<path>, got {uri!r}",
                field="online_store",
            )
        return SqliteOnlineStore(path if path.is_absolute() else load_settings().home / path)
    if scheme in ("redis", "rediss"):
        return RedisOnlineStore(uri)
    raise InvalidInput(
        f"unknown online store {uri!r}: use sqlite:///<path> or redis://host:port/db",
        field="online_store",
    )


def materialize_frame(
    store: OnlineStore,
    view: str,
    frame: pd.DataFrame | Iterable[pd.DataFrame],
    join_keys: list[str],
    features: list[str],
    timestamp_field: str,
    chunk_rows: int = 50_000,
    progress: bool = True,
) -> int:
    """Write feature rows to an online store in chunks, each its own write call.

    Each chunk is committed on its own, so an interrupted run leaves whole chunks; because
    writes are ruled by event timestamps, running it again converges to the same state.

    Parameters
    ----------
    store : OnlineStore
        Where to write.
    view : str
        The feature view name.
    frame : pandas.DataFrame or iterable of DataFrames
        The rows, or a stream of row batches (each cut further into ``chunk_rows``).
    join_keys, features : list of str
        The entity key columns and the feature columns to store.
    timestamp_field : str
        The event timestamp column deciding which row of an entity is the latest.
    chunk_rows : int
        Rows per write call.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    int
        Entities whose stored row changed, summed over the chunks.
    """
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}", field="chunk_rows")
    import pandas as pd

    batches: Iterable[pd.DataFrame] = [frame] if isinstance(frame, pd.DataFrame) else frame
    total = len(frame) if isinstance(frame, pd.DataFrame) else None
    written = 0
    with _progress(progress, view, total) as advance:
        for batch in batches:
            for start in range(0, len(batch), chunk_rows):
                chunk = batch.iloc[start : start + chunk_rows]
                written += store.write(view, chunk, join_keys, features, timestamp_field)
                advance(len(chunk))
    return written


class _progress:  # noqa: N801 - used like a function
    """A context manager yielding a callable that advances a progress bar by some rows."""

    def __init__(self, enabled: bool, view: str, total: int | None) -> None:
        self.enabled = enabled
        self.view = view
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda rows: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(f"materializing {self.view}", total=self.total)
        return lambda rows: self._bar.advance(task, rows)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _check_view(view: str) -> None:
    if not _VIEW_NAME.match(view or ""):
        raise InvalidInput(
            f"feature view name {view!r} may only hold letters, digits, '_', '.' and '-'",
            field="view",
        )


def _prepare(
    view: str,
    rows: pd.DataFrame,
    join_keys: list[str],
    features: list[str],
    timestamp_field: str,
) -> _Prepared:
    """Validate ``rows``, encode them, and keep the winning row of each entity key."""
    _check_view(view)
    if not join_keys:
        raise InvalidInput("at least one join key is needed", field="join_keys")
    missing = [c for c in (*join_keys, *features, timestamp_field) if c not in rows.columns]
    if missing:
        raise InvalidInput(f"the rows have no column {missing[0]!r}", field=missing[0])
    timestamps = epoch_micros(rows[timestamp_field], timestamp_field)
    key_columns = [key_column(rows[name], name) for name in sorted(join_keys)]
    entities = (
        key_columns[0]
        if len(key_columns) == 1
        else ["&".join(p) for p in zip(*key_columns, strict=True)]
    )
    value_columns = [encode_column(rows[name], name) for name in features]
    best: dict[str, tuple[int, str, list[str]]] = {}
    for i, (key, ts) in enumerate(zip(entities, timestamps, strict=True)):
        values = [column[i] for column in value_columns]
        rank = hashlib.blake2b(
            "\x1f".join(values).encode("utf-8"), digest_size=8, person=b"loopml-fv"
        ).hexdigest()
        current = best.get(key)
        if current is None or (ts, rank) > (current[0], current[1]):
            best[key] = (ts, rank, values)
    prepared = _Prepared()
    for key, (ts, rank, values) in best.items():
        prepared.keys.append(key)
        prepared.timestamps.append(ts)
        prepared.ranks.append(rank)
        prepared.values.append(values)
    return prepared


def _redis_key(view: str, entity: str) -> str:
    return f"{REDIS_PREFIX}:{view}:{entity}"


def _from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _parse_rows(
    replies: list[Any], features: list[str]
) -> list[tuple[dict[str, Any], datetime] | None]:
    """Redis replies (HMGET of the timestamp and ``features``, else HGETALL) as rows."""
    results: list[tuple[dict[str, Any], datetime] | None] = []
    for reply in replies:
        if features:
            if reply[0] is None:
                results.append(None)
                continue
            # The stored values are JSON texts already: decode a row in one call.
            decoded = json.loads(
                "[" + ",".join("null" if raw is None else raw for raw in reply[1:]) + "]"
            )
            results.append((dict(zip(features, decoded, strict=True)), _from_micros(int(reply[0]))))
        elif not reply:
            results.append(None)
        else:
            values = {
                name: json.loads(raw)
                for name, raw in reply.items()
                if name not in (TS_FIELD, RANK_FIELD)
            }
            results.append((values, _from_micros(int(reply[TS_FIELD]))))
    return results


def _select(stored: dict[str, Any], features: Sequence[str]) -> dict[str, Any]:
    if not features:
        return stored
    return {name: stored.get(name) for name in features}


__all__ = [
    "OnlineStore",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "materialize_frame",
    "open_online_store",
]
