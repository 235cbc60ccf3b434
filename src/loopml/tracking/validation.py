"""Validation at the boundary: names, keys and values are checked before any store sees them."""

from __future__ import annotations

import numbers
import re
import time
from typing import Any

from loopml.entities.tracking import Metric
from loopml.errors import InvalidInput

MAX_NAME_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_BATCH_METRICS = 100_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Keys are also used as column names in search results and as path segments in the UI.
_KEY = re.compile(r"^[\w\-. /:]+$")


def check_name(value: Any, field: str) -> str:
    """Check an experiment or run name: non-empty, at most 250 chars, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not value.strip():
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"{field} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}",
            field=field,
        )
    if _CONTROL.search(value):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return value


def check_key(value: Any, field: str) -> str:
    """Check a metric, param or tag key."""
    key = check_name(value, field)
    if not _KEY.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise InvalidInput(
            f"{field} {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'",
            field=field,
        )
    return key


def _check_text(value: Any, field: str, limit: int) -> str:
    if isinstance(value, bool | int | float):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field} must be a string or number, got {type(value).__name__}", field=field
        )
    if len(value) > limit:
        raise InvalidInput(
            f"{field} is {len(value)} characters long; the limit is {limit}", field=field
        )
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters", field=field)
    return value


def check_params(params: dict[str, Any]) -> dict[str, str]:
    """Check params and turn their values into strings (as MLflow does)."""
    if not isinstance(params, dict):
        raise InvalidInput("params must be a mapping of key to value", field="params")
    return {
        check_key(k, "params"): _check_text(v, f"params.{k}", MAX_PARAM_VALUE_LENGTH)
        if v is not None
        else "None"
        for k, v in params.items()
    }


def check_tags(tags: dict[str, Any]) -> dict[str, str]:
    """Check tags and turn their values into strings."""
    if not isinstance(tags, dict):
        raise InvalidInput("tags must be a mapping of key to value", field="tags")
    return {
        check_key(k, "tags"): _check_text(v, f"tags.{k}", MAX_TAG_VALUE_LENGTH)
        for k, v in tags.items()
    }


def check_metric_value(value: Any, field: str) -> float:
    """Check a metric value is a real number (NaN and infinities are allowed, as in MLflow)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # Numpy scalars register as numbers.Real; strings, None and containers do not.
        raise InvalidInput(
            f"{field} must be a number, got {type(value).__name__} {value!r:.40}", field=field
        )
    return float(value)


def _check_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInput(f"{field} must be an integer, got {value!r:.40}", field=field)
    integer = int(value)
    if not -(2**63) <= integer < 2**63:
        raise InvalidInput(f"{field} {integer} does not fit in 64 bits", field=field)
    return integer


def make_metric(key: Any, value: Any, step: Any = None, timestamp: Any = None) -> Metric:
    """Build a validated :class:`Metric`; the timestamp defaults to now (milliseconds)."""
    key = check_key(key, "metrics")
    return Metric(
        key=key,
        value=check_metric_value(value, f"metrics.{key}"),
        timestamp=int(time.time() * 1000)
        if timestamp is None
        else _check_int(timestamp, f"metrics.{key}.timestamp"),
        step=0 if step is None else _check_int(step, f"metrics.{key}.step"),
    )


def check_metrics(metrics: Any) -> list[Metric]:
    """Check a sequence of :class:`Metric` (or dicts with the same fields)."""
    if isinstance(metrics, str | bytes | dict) or not hasattr(metrics, "__iter__"):
        raise InvalidInput("metrics must be a list of metrics", field="metrics")
    checked: list[Metric] = []
    valid_keys: set[str] = set()
    for item in metrics:
        if len(checked) >= MAX_BATCH_METRICS:
            raise InvalidInput(f"at most {MAX_BATCH_METRICS} metrics per batch", field="metrics")
        if isinstance(item, Metric):
            # Fast path for the common case (batches of thousands): plain floats and ints
            # in range need no conversion, and each key is checked once per batch.
            if (
                item.key in valid_keys
                and type(item.value) is float
                and type(item.step) is int
                and type(item.timestamp) is int
                and -(2**63) <= item.step < 2**63
                and -(2**63) <= item.timestamp < 2**63
            ):
                checked.append(item)
                continue
            metric = make_metric(item.key, item.value, item.step, item.timestamp)
        elif isinstance(item, dict):
            if "key" not in item or "value" not in item:
                raise InvalidInput("each metric needs a key and a value", field="metrics")
            metric = make_metric(
                item["key"],
                _number_from_json(item["value"]),
                item.get("step"),
                item.get("timestamp"),
            )
        else:
            raise InvalidInput(
                f"metrics must hold Metric objects, got {type(item).__name__}", field="metrics"
            )
        valid_keys.add(metric.key)
        checked.append(metric)
    return checked


def _number_from_json(value: Any) -> Any:
    """JSON cannot carry NaN or infinities; they travel as the strings float() reads."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return value
