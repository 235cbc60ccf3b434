"""Training windows: which rows a retrain learns from, and which rows judge it.

The rows are the latest version of the policy's dataset plus, with ``include_logged``, the
model's logged predictions that have received a label (their features, the label under the
policy's label column, and their time under its timestamp column). The window keeps

- :class:`~loopml.loop.FixedWindow`: the rows within ``days`` of the newest row. Measured
  from the data, not the wall clock, so a replay of history (or a controller that ran late)
  gets the same window as a live system would have;
- :class:`~loopml.loop.GrowingWindow`: every row;
- :class:`~loopml.loop.RepresentativeSample`: ``n`` rows drawn with a fixed seed, in the
  proportions of the ``stratify`` column when given.

The newest ``holdout`` share of the window (by time) is set aside: the candidate is trained
on the rest and both the candidate and the champion are evaluated on it, so the gate compares
them on the same unseen, most recent data. Both parts are registered as dataset versions
(``<policy>-window`` and ``<policy>-holdout``), which gives the model version its lineage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BuiltWindow", "build_window", "logged_rows", "select_rows"]

logger = logging.getLogger("loopml.loop")

#: Fewest rows a window needs; fewer cannot train and evaluate anything.
MIN_ROWS = 10


@dataclass(frozen=True)
class BuiltWindow:
    """A window, registered: the training part, the holdout, and the evidence."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    train_uri: str
    holdout_uri: str
    evidence: dict[str, Any]


def _times(values: pd.Series, column: str) -> pd.Series:
    """A column as UTC datetimes; numbers are epoch seconds."""
    import pandas as pd

    try:
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return pd.to_datetime(values, unit="s", utc=True)
        if pd.api.types.is_datetime64_any_dtype(values):
            return pd.to_datetime(values, utc=True)
        return pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"timestamp column {column!r} does not hold times: {exc}", field="timestamp"
        ) from exc


def _like(values: pd.Series, model: pd.Series, column: str) -> pd.Series:
    """Logged times in the dataset's own type, so that the window stores as one column."""
    import pandas as pd

    result: pd.Series
    if pd.api.types.is_datetime64_any_dtype(model):
        times = _times(values, column)
        result = times.dt.tz_convert(getattr(model.dt, "tz", None))
    elif pd.api.types.is_numeric_dtype(model):
        result = _times(values, column).astype("int64") // 10**9
    else:
        result = values.astype(str)
    return result


def logged_rows(
    model: str, columns: list[str], timestamp: str, label: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The model's logged predictions that have a label, shaped like the dataset's rows.

    A logged row keeps its own value of the timestamp column when the model takes it as an
    input (the server logs the signature's columns), else the time it was served.

    Returns
    -------
    (pandas.DataFrame, dict)
        The rows (possibly none) and what was found, for the evidence.
    """
    import pandas as pd

    from loopml.monitoring.predictions import RESERVED_COLUMNS, predictions

    frame = predictions(model, with_labels=True)
    info: dict[str, Any] = {"logged": int(len(frame))}
    if frame.empty:
        return pd.DataFrame(columns=columns), {**info, "labelled": 0}
    frame = frame[frame["label"].notna()]
    info["labelled"] = int(len(frame))
    served_at = frame["timestamp"]
    renamed = {f"input.{c}": c for c in (timestamp, label) if f"input.{c}" in frame.columns}
    # The log's own columns go; its timestamp and label may stand in for the policy's.
    log_columns = [c for c in RESERVED_COLUMNS if c not in ("timestamp", "label")]
    frame = frame.drop(columns=[c for c in log_columns if c in frame.columns])
    if timestamp != "timestamp":
        frame = frame.drop(columns=["timestamp"])
    if label != "label":
        frame = frame.drop(columns=[label], errors="ignore").rename(columns={"label": label})
    frame = frame.rename(columns=renamed)
    if timestamp not in frame.columns or frame[timestamp].isna().all():
        frame[timestamp] = served_at
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        info["skipped_reason"] = f"logged requests lack column(s) {', '.join(missing)}"
        return pd.DataFrame(columns=columns), {**info, "used": 0}
    info["used"] = int(len(frame))
    return frame[columns].reset_index(drop=True), info


def select_rows(frame: pd.DataFrame, window: dict[str, Any], time_column: str) -> pd.DataFrame:
    """Apply a stored window definition to rows that have a UTC ``time_column``."""
    import numpy as np
    import pandas as pd

    if frame.empty:
        return frame
    if window["type"] == "fixed":
        newest = frame[time_column].max()
        frame = frame[frame[time_column] >= newest - pd.Timedelta(days=float(window["days"]))]
    elif window["type"] == "sample" and len(frame) > int(window["n"]):
        n, seed, column = int(window["n"]), int(window["seed"]), window.get("stratify")
        if column:
            if column not in frame.columns:
                raise InvalidInput(
                    f"window.stratify: the data has no column {column!r}", field="window.stratify"
                )
            groups = frame.groupby(frame[column].astype(str), sort=True, dropna=False).indices
            sizes = {key: len(rows) for key, rows in groups.items()}
            # Largest-remainder allocation keeps the class shares and sums to exactly n.
            exact = {key: n * size / len(frame) for key, size in sizes.items()}
            quota = {key: int(value) for key, value in exact.items()}
            rest = sorted(exact, key=lambda key: (quota[key] - exact[key], key))
            for key in rest[: n - sum(quota.values())]:
                quota[key] += 1
            rng = np.random.default_rng(seed)
            chosen = np.concatenate(
                [
                    rng.choice(np.asarray(rows), size=min(quota[key], len(rows)), replace=False)
                    for key, rows in groups.items()
                ]
            )
            frame = frame.iloc[np.sort(chosen)]
        else:
            frame = frame.sample(n=n, random_state=seed).sort_index()
    return frame


def build_window(definition: dict[str, Any], *, register: bool = True) -> BuiltWindow:
    """Assemble, cut, split and register the window of a stored policy definition.

    Parameters
    ----------
    definition : dict
        A stored policy definition (see :func:`loopml.loop.policy.policy_to_dict`).
    register : bool
        Register the training part and the holdout as dataset versions.

    Raises
    ------
    InvalidInput
        When the columns are missing or the window has fewer than :data:`MIN_ROWS` rows.
    NotFound
        When the dataset does not exist.
    """
    import pandas as pd

    from loopml import datasets

    name, timestamp, label = definition["data"], definition["timestamp"], definition["label"]
    source = datasets.get_service().resolve(name)
    base = datasets.get_service().read(name, source.version)
    assert isinstance(base, pd.DataFrame)
    for column in (timestamp, label):
        if column not in base.columns:
            raise InvalidInput(f"dataset {source.uri} has no column {column!r}", field=column)
    columns = list(base.columns)
    evidence: dict[str, Any] = {"dataset": source.uri, "dataset_rows": int(len(base))}
    frames = [base.assign(_loop_source="dataset")]
    if definition.get("include_logged"):
        logged, info = logged_rows(definition["model"], columns, timestamp, label)
        evidence["logged_predictions"] = info
        if not logged.empty:
            logged[timestamp] = _like(logged[timestamp], base[timestamp], timestamp)
            frames.append(logged.assign(_loop_source="logged"))
    frame = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    frame = frame.assign(_loop_time=_times(frame[timestamp], timestamp))
    frame = frame[frame[label].notna() & frame["_loop_time"].notna()]
    frame = select_rows(frame, definition["window"], "_loop_time")
    frame = frame.sort_values("_loop_time", kind="stable").reset_index(drop=True)
    if len(frame) < MIN_ROWS:
        raise InvalidInput(
            f"the window has {len(frame)} labelled row(s); at least {MIN_ROWS} are needed",
            field="window",
        )
    holdout_rows = max(1, round(len(frame) * float(definition.get("holdout", 0.2))))
    holdout_rows = min(holdout_rows, len(frame) - 1)
    sources = frame["_loop_source"].value_counts().to_dict()
    start, end = frame["_loop_time"].iloc[0], frame["_loop_time"].iloc[-1]
    train = frame.iloc[: len(frame) - holdout_rows][columns].reset_index(drop=True)
    holdout = frame.iloc[len(frame) - holdout_rows :][columns].reset_index(drop=True)
    evidence.update(
        {
            "window": definition["window"],
            "rows": int(len(frame)),
            "train_rows": int(len(train)),
            "holdout_rows": int(len(holdout)),
            "from_dataset": int(sources.get("dataset", 0)),
            "from_logged": int(sources.get("logged", 0)),
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
    )
    train_uri = holdout_uri = ""
    if register:
        policy = definition["name"]
        tags = {"loopml.loop.policy": policy, "loopml.loop.source": source.uri}
        service = datasets.get_service()
        train_uri = service.register(f"{policy}-window", train, tags=tags, profile=False).uri
        holdout_uri = service.register(f"{policy}-holdout", holdout, tags=tags, profile=False).uri
        evidence.update({"window_dataset": train_uri, "holdout_dataset": holdout_uri})
    return BuiltWindow(train, holdout, train_uri, holdout_uri, evidence)
