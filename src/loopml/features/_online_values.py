"""How online stores encode rows: entity keys, JSON values and event times.

Both backends share these rules, so that a key or a value written by one reads the same in
the other: join key values become ``name=value`` pieces joined by ``&`` (``1001`` and
``1001.0`` are one key), feature values JSON text, event times epoch microseconds (UTC).
"""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(column: pd.Series[Any], name: str) -> list[int]:
    """The event times of a column (timestamps or ISO 8601 text) as epoch microseconds, UTC."""
    import pandas as pd
    from pandas.api import types

    if types.is_datetime64_any_dtype(column.dtype):
        stamps = column
    elif types.is_object_dtype(column.dtype) or types.is_string_dtype(column.dtype):
        try:
            stamps = pd.to_datetime(column, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"the timestamp column {name!r} holds values that are not timestamps",
                field=name,
            ) from exc
    else:
        raise InvalidInput(
            f"the timestamp column {name!r} must hold timestamps, not {column.dtype}",
            field=name,
        )
    if stamps.isna().any():
        raise InvalidInput(f"the timestamp column {name!r} has missing values", field=name)
    if getattr(stamps.dt, "tz", None) is None:
        # Naive event times are read as UTC, the convention of the offline store.
        stamps = stamps.dt.tz_localize("UTC")
    micros = (stamps - pd.Timestamp(EPOCH)) // pd.Timedelta(microseconds=1)
    return [int(v) for v in micros.tolist()]


def _plain(value: Any, name: str) -> Any:
    """A JSON-ready Python value of a frame cell; missing values become ``None``."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, np.datetime64):
        return _plain(pd.Timestamp(value), name)
    if isinstance(value, np.ndarray):
        return [_plain(v, name) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item(), name)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v, name) for v in value]
    raise InvalidInput(
        f"column {name!r} holds a {type(value).__name__}, which the online store cannot keep",
        field=name,
    )


def _encode(value: Any, name: str) -> str:
    return json.dumps(_plain(value, name), separators=(",", ":"))


def _key_value(value: Any, name: str) -> str:
    """The canonical text of one join key value: ``1001`` and ``1001.0`` are one key."""
    plain = _plain(value, name)
    if plain is None:
        raise InvalidInput(f"the join key {name!r} has missing values", field=name)
    if isinstance(plain, float) and plain.is_integer():
        plain = int(plain)
    return json.dumps(plain, separators=(",", ":"))


def entity_key(key: dict[str, Any]) -> str:
    """The stored key of one entity: its ``name=value`` pieces, sorted by name."""
    if not isinstance(key, dict) or not key:
        raise InvalidInput(f"an entity key is a dict of join key values, got {key!r}", field="keys")
    names = sorted(key) if len(key) > 1 else list(key)
    return "&".join(
        # An int's JSON text is its digits, which quoting leaves alone: the common case of
        # a lookup skips both (bool is an int subclass, but its JSON text is not digits).
        f"{_quoted_name(name)}={value}"
        if type(value := key[name]) is int
        else _key_piece(name, _key_value(value, name))
        for name in names
    )


@functools.lru_cache(maxsize=1024)
def _quoted_name(name: str) -> str:
    return quote_plus(name)


def _key_piece(name: str, text: str) -> str:
    # Query-string quoting keeps the key readable in Redis and unambiguous.
    return f"{_quoted_name(name)}={quote_plus(text)}"


def key_column(column: pd.Series[Any], name: str) -> list[str]:
    """The ``name=value`` piece of every row's entity key (fast path for integer keys)."""
    import numpy as np

    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
        prefix = f"{quote_plus(name)}="
        return [prefix + str(v) for v in column.tolist()]
    return [_key_piece(name, _key_value(v, name)) for v in column.tolist()]


def encode_column(column: pd.Series[Any], name: str) -> list[str]:
    """The JSON text of every cell; plain numpy columns skip the per-value type dispatch."""
    import numpy as np

    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""
    if kind in ("i", "u"):
        return [str(v) for v in column.tolist()]
    if kind == "b":
        return ["true" if v else "false" for v in column.tolist()]
    if kind == "f":
        # json.dumps writes finite floats with float.__repr__; NaN is a missing value.
        return [
            repr(v) if math.isfinite(v) else "null" if math.isnan(v) else json.dumps(v)
            for v in column.tolist()
        ]
    return [_encode(v, name) for v in column.tolist()]


def json_object(names: list[str], encoded: list[str]) -> str:
    """A JSON object from names and values that are JSON text already."""
    pairs = (f"{json.dumps(n)}:{v}" for n, v in zip(names, encoded, strict=True))
    return "{" + ",".join(pairs) + "}"
