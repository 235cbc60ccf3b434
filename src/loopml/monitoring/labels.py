"""Ground truth: labels that arrive after the prediction, joined to it on (request_id, row).

A label names the request it belongs to (the ``request_id`` the server answered with) and
the row within it (0 for a one-row request). Labels are kept even when their request is
not in the log yet, or never will be: such an orphan simply joins nothing until its request
is written, and :func:`label_stats` counts them. A label sent again for the same row
replaces the old one.

The labels of one model must all be of one kind (numbers, strings or booleans), so that
accuracy or error metrics compare like with like.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.config import Settings
from loopml.errors import InvalidInput
from loopml.monitoring.predictions import open_stores
from loopml.store.base import LabelRecord

if TYPE_CHECKING:
    import pandas as pd

#: Most labels one feedback request may carry.
MAX_FEEDBACK_ITEMS = 10_000
MAX_REQUEST_ID = 250
MAX_LABEL_TEXT = 1_000
_ITEM_KEYS = frozenset({"request_id", "label", "labels", "row"})


def label_kind(value: Any, where: str = "") -> tuple[Any, str]:
    """Check that a label is a scalar and return it as a plain Python value with its kind.

    Parameters
    ----------
    value : Any
        A bool, number or string (NumPy scalars too).
    where : str, optional
        Where the value came from, for the error message (``"items[3]"``).

    Returns
    -------
    tuple of (value, str)
        The value and ``"bool"``, ``"number"`` or ``"string"``.

    Raises
    ------
    InvalidInput
        Naming ``label`` when the value is missing, not finite, too long or not a scalar.
    """
    prefix = f"{where}: " if where else ""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, int):
        return value, "number"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{prefix}label must be a finite number, not {value}", field="label")
        return value, "number"
    if isinstance(value, str):
        if len(value) > MAX_LABEL_TEXT:
            raise InvalidInput(
                f"{prefix}label is longer than {MAX_LABEL_TEXT} characters", field="label"
            )
        return value, "string"
    shown = "missing" if value is None else f"a {type(value).__name__}"
    raise InvalidInput(
        f"{prefix}label must be a number, a string or a boolean, not {shown}", field="label"
    )


def _request_id(value: Any, where: str = "") -> str:
    prefix = f"{where}: " if where else ""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{prefix}request_id must be a non-empty string", field="request_id")
    if len(value) > MAX_REQUEST_ID:
        raise InvalidInput(
            f"{prefix}request_id is longer than {MAX_REQUEST_ID} characters", field="request_id"
        )
    return value


def _row(value: Any, where: str = "") -> int:
    prefix = f"{where}: " if where else ""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        # A frame mixing labels with and without a row fills the gaps with NaN.
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{prefix}row must be a non-negative integer", field="row")
    return value


def _item_rows(item: Any, where: str) -> list[dict[str, Any]]:
    prefix = f"{where}: " if where else ""
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{prefix}a feedback item must be a JSON object", field="items")
    unknown = sorted(set(item) - _ITEM_KEYS)
    if unknown:
        raise InvalidInput(
            f"{prefix}unknown field {unknown[0]!r}; use request_id with label (and row) or labels",
            field=str(unknown[0]),
        )
    request_id = _request_id(item.get("request_id"), where)
    if ("label" in item) == ("labels" in item):
        raise InvalidInput(
            f"{prefix}give either label (one row) or labels (one per row)", field="label"
        )
    if "label" in item:
        row = _row(item.get("row", 0), where)
        value, _ = label_kind(item["label"], where)
        return [{"request_id": request_id, "row": row, "label": value}]
    if "row" in item:
        raise InvalidInput(f"{prefix}labels already number the rows from 0", field="row")
    labels = item["labels"]
    if not isinstance(labels, list) or not labels:
        raise InvalidInput(f"{prefix}labels must be a non-empty list", field="labels")
    rows = []
    for index, label in enumerate(labels):
        value, _ = label_kind(label, f"{where}labels[{index}]" if where else f"labels[{index}]")
        rows.append({"request_id": request_id, "row": index, "label": value})
    return rows


def feedback_payload_to_frame(payload: Any) -> pd.DataFrame:
    """Validate a feedback body and turn it into the frame :func:`log_labels` takes.

    Accepted bodies: ``{"request_id": ..., "label": ...}`` (optionally with ``"row"``),
    ``{"request_id": ..., "labels": [...]}`` (one label per row) or ``{"items": [...]}``
    holding either form.

    Returns
    -------
    pandas.DataFrame
        Columns ``request_id``, ``row`` and ``label``.

    Raises
    ------
    InvalidInput
        Naming the field at fault (``request_id``, ``label``, ``labels``, ``row``,
        ``items``).
    """
    import pandas as pd

    if not isinstance(payload, Mapping):
        raise InvalidInput("the feedback body must be a JSON object", field="body")
    if "items" in payload:
        extra = sorted(set(payload) - {"items"})
        if extra:
            raise InvalidInput(
                f"give either items or a single request's label, not {extra[0]!r} too",
                field=str(extra[0]),
            )
        items = payload["items"]
        if not isinstance(items, list) or not items:
            raise InvalidInput("items must be a non-empty list", field="items")
        rows = []
        for index, item in enumerate(items):
            rows.extend(_item_rows(item, f"items[{index}]"))
    else:
        rows = _item_rows(payload, "")
    if len(rows) > MAX_FEEDBACK_ITEMS:
        raise InvalidInput(
            f"at most {MAX_FEEDBACK_ITEMS} labels per request, got {len(rows)}", field="items"
        )
    frame = pd.DataFrame(rows, columns=["request_id", "row", "label"])
    frame["row"] = frame["row"].astype("int64")
    return frame


def _label_records(frame: pd.DataFrame) -> tuple[list[LabelRecord], dict[str, set[str]]]:
    """The validated labels (the last one per row wins) and the kinds sent per request."""
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"labels need a {missing[0]!r} column", field=missing[0])
    has_row = "row" in frame.columns
    records: dict[tuple[str, int], LabelRecord] = {}
    kinds: dict[str, set[str]] = {}
    ids = frame["request_id"].tolist()
    values = frame["label"].tolist()
    positions = frame["row"].tolist() if has_row else [0] * len(ids)
    for index, (raw_id, raw_label, raw_row) in enumerate(zip(ids, values, positions, strict=True)):
        where = f"row {index}"
        request_id = _request_id(raw_id, where)
        row = _row(raw_row, where)
        value, kind = label_kind(raw_label, where)
        records[(request_id, row)] = LabelRecord(
            request_id=request_id, row=row, label_json=json.dumps(value), kind=kind
        )
        kinds.setdefault(request_id, set()).add(kind)
    return list(records.values()), kinds


def _check_kinds(
    kinds_by_request: dict[str, set[str]],
    models_by_request: dict[str, list[str]],
    stored: dict[str, str],
) -> None:
    """Refuse labels whose kind differs from the other labels of the same model."""
    by_model: dict[str, set[str]] = {}
    orphan_kinds: set[str] = set()
    for request_id, kinds in kinds_by_request.items():
        models = models_by_request.get(request_id)
        if not models:
            orphan_kinds |= kinds
        for model in models or ():
            by_model.setdefault(model, set()).update(kinds)
    for model, kinds in sorted(by_model.items()):
        every = kinds | ({stored[model]} if model in stored else set())
        if len(every) > 1:
            had = f" (its labels so far are {stored[model]}s)" if model in stored else ""
            raise InvalidInput(
                f"labels of model {model!r} must all be of one type, got "
                f"{' and '.join(sorted(every))}{had}",
                field="label",
            )
    if len(orphan_kinds) > 1:
        raise InvalidInput(
            f"labels sent together must be of one type, got {' and '.join(sorted(orphan_kinds))}",
            field="label",
        )


def log_labels(
    labels: pd.DataFrame | list[dict[str, Any]], *, settings: Settings | None = None
) -> int:
    """Store ground-truth labels for logged predictions.

    Parameters
    ----------
    labels : DataFrame or list of dict
        Columns ``request_id`` (str), ``label`` (a number, string or boolean) and optionally
        ``row`` (the row within the request, 0 by default). A label for a row that already
        has one replaces it; labels for unknown requests are kept as orphans.
    settings : Settings, optional
        The stores to write to; the current settings by default.

    Returns
    -------
    int
        The number of labels stored.

    Raises
    ------
    InvalidInput
        Naming ``request_id``, ``row`` or ``label`` when a value is malformed, or ``label``
        when its type differs from the model's other labels.

    Examples
    --------
    >>> import loopml as lm
    >>> lm.monitoring.log_labels([{"request_id": "r1", "label": 1}])  # doctest: +SKIP
    1
    """
    import pandas as pd

    frame = labels if isinstance(labels, pd.DataFrame) else pd.DataFrame(list(labels))
    if frame.empty:
        return 0
    records, kinds = _label_records(frame)
    stores = open_stores(settings)
    models_by_request = stores.log.request_models(list(kinds))
    models = sorted({m for found in models_by_request.values() for m in found})
    _check_kinds(kinds, models_by_request, stores.log.label_kinds(models))
    stores.log.upsert_labels(records)
    return len(records)


def label_stats(model: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """How much ground truth a model's logged predictions have.

    Returns
    -------
    dict
        ``model``; ``requests`` and ``rows`` logged; ``labelled`` rows; ``coverage``
        (labelled / rows); ``orphans``: labels of any model whose request and row are not
        in the log (yet).
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("model must be a non-empty string", field="model")
    counts = open_stores(settings).log.label_stats(model)
    rows = counts["rows"]
    return {
        "model": model,
        **counts,
        "coverage": counts["labelled"] / rows if rows else 0.0,
    }
