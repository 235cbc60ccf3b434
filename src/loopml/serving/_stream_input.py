"""Redis stream URLs, and the decoding of stream messages into typed model inputs.

A message carries its input as one field per feature, each a text converted with the type
the model's signature gives it, or as one ``data`` field holding a JSON record. A message
that does not fit is not an exception of the scorer: it carries its error, and the scorer
sends it to the dead-letter stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from loopml.errors import InvalidInput

SCHEMES = ("redis", "rediss")
#: The message field holding a whole JSON record, instead of one field per feature.
DATA_FIELD = "data"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class StreamUrl:
    """A parsed ``redis://host:port/db?stream=name`` URL.

    Attributes
    ----------
    connection : str
        The URL without the ``stream`` parameter, as redis-py takes it.
    stream : str
        The stream key.
    host : str
        The Redis host.
    port : int
        The Redis port.
    db : int
        The database number.
    """

    connection: str
    stream: str
    host: str
    port: int
    db: int

    @property
    def display(self) -> str:
        """The URL with its password hidden, for messages."""
        parts = urlsplit(self.connection)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
        return urlunsplit((parts.scheme, netloc, parts.path, f"stream={self.stream}", ""))


def parse_stream_url(url: str, *, field: str = "source") -> StreamUrl:
    """Parse and check a stream URL such as ``redis://127.0.0.1:6379/0?stream=requests``.

    Parameters
    ----------
    url : str
        ``redis://`` or ``rediss://`` (TLS), with an optional ``user:password@``, a host, an
        optional port (6379), the database number as the path and ``?stream=<key>``.
    field : str, default "source"
        The argument the URL was given as, named in errors.

    Returns
    -------
    StreamUrl
        The connection URL and the stream key.

    Raises
    ------
    InvalidInput
        Naming the part at fault: the scheme, host, port, database or stream.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInput(
            f"the {field} URL must start with redis:// or rediss://, got scheme "
            f"{scheme or '(none)'!r}",
            field=field,
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise InvalidInput(f"the {field} URL has an invalid port", field=field) from None
    if not parts.hostname:
        raise InvalidInput(f"the {field} URL names no host", field=field)
    db = parts.path.strip("/")
    example = f"{scheme}://{parts.hostname}:{port}/0?stream=requests"
    if not db:
        raise InvalidInput(
            f"the {field} URL names no database: give it as the path, as in {example}",
            field=field,
        )
    if not db.isdigit():
        raise InvalidInput(f"the {field} URL database must be a number, got {db!r}", field=field)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"stream"})
    if unknown:
        raise InvalidInput(
            f"the {field} URL has unknown parameter(s) {', '.join(unknown)}; only stream= is read",
            field=field,
        )
    streams = query.get("stream", [])
    if len(streams) != 1 or not streams[0].strip():
        raise InvalidInput(
            f"the {field} URL names no stream: add ?stream=<name>, as in {example}", field=field
        )
    connection = urlunsplit((scheme, parts.netloc, f"/{int(db)}", "", ""))
    return StreamUrl(connection, streams[0], parts.hostname, port, int(db))


@dataclass
class Message:
    """One source entry: its id, its fields as text, or why it cannot be scored."""

    id: str
    fields: dict[str, str]
    error: InvalidInput | None = None
    record: dict[str, Any] | None = None


def decode(entry_id: bytes | str, raw: Mapping[bytes, bytes] | None) -> Message:
    """Decode a raw entry; a deleted or non-UTF-8 entry carries its error instead."""
    ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    if not raw:
        error = InvalidInput("the message was deleted from the stream before it was scored")
        return Message(ident, {}, error)
    fields: dict[str, str] = {}
    for key, value in raw.items():
        try:
            fields[key.decode()] = value.decode()
        except UnicodeDecodeError:
            name = key.decode(errors="replace")
            fields[name] = value.decode(errors="replace")
            error = InvalidInput(f"field {name!r} is not UTF-8 text", field=name)
            return Message(ident, fields, error)
    return Message(ident, fields)


class Inputs:
    """Turns message fields into typed records that fit the model's signature."""

    def __init__(self, signature: dict[str, Any] | None) -> None:
        self.columns: list[dict[str, str]] = list((signature or {}).get("inputs") or [])
        self.names = [c["name"] for c in self.columns]

    def record(self, fields: dict[str, str]) -> dict[str, Any]:
        """The typed record of one message.

        Raises
        ------
        InvalidInput
            Naming the field that is missing or holds a value of the wrong type.
        """
        if DATA_FIELD in fields and DATA_FIELD not in self.names:
            try:
                data = json.loads(fields[DATA_FIELD])
            except ValueError as exc:
                raise InvalidInput(
                    f"field {DATA_FIELD!r} is not valid JSON: {exc}", field=DATA_FIELD
                ) from None
            if not isinstance(data, dict):
                raise InvalidInput(
                    f"field {DATA_FIELD!r} must hold a JSON object (one record), "
                    f"got {type(data).__name__}",
                    field=DATA_FIELD,
                )
            if not self.columns:
                return data
            return {c["name"]: self._json_value(data, c["name"], c["type"]) for c in self.columns}
        if not self.columns:
            return {name: _guess(value) for name, value in fields.items()}
        missing = [name for name in self.names if name not in fields]
        if missing:
            raise InvalidInput(
                f"the message is missing field(s) {', '.join(missing)} (or a JSON "
                f"{DATA_FIELD!r} field)",
                field=missing[0],
            )
        return {
            c["name"]: _from_text(fields[c["name"]], c["name"], c["type"]) for c in self.columns
        }

    @staticmethod
    def _json_value(data: dict[str, Any], name: str, kind: str) -> Any:
        if name not in data:
            raise InvalidInput(f"the JSON record has no field {name!r}", field=name)
        value = data[name]
        if isinstance(value, str):
            return _from_text(value, name, kind)
        wrong = InvalidInput(
            f"field {name!r} must hold a {kind} value, got {json.dumps(value)}", field=name
        )
        if value is None or isinstance(value, list | dict):
            raise wrong
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            raise wrong
        if isinstance(value, bool) or kind not in ("integer", "double"):
            raise wrong
        if isinstance(value, float) and not math.isfinite(value):
            raise wrong
        if kind == "integer":
            if float(value) != int(value):
                raise wrong
            return int(value)
        return float(value)


def _from_text(text: str, name: str, kind: str) -> Any:
    """Convert a field's text to a signature type, or raise naming the field."""
    value = text.strip()
    try:
        if kind == "string":
            return text
        if kind == "boolean":
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError
        if kind in ("integer", "double"):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            if kind == "double":
                return number
            if number != int(number):
                raise ValueError
            return int(value) if value.lstrip("+-").isdigit() else int(number)
        if kind == "datetime":
            import pandas as pd

            stamp = pd.Timestamp(value)
            if pd.isna(stamp):
                raise ValueError
            return stamp
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(
            f"field {name!r} must hold a {kind} value, got {text[:40]!r}", field=name
        ) from None
    raise InvalidInput(f"unknown signature type {kind!r}", field=name)


def _guess(text: str) -> Any:
    """Without a signature: numbers and booleans written as JSON, other text as is."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float) else text
