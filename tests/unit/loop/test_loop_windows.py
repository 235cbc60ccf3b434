"""Training windows: fixed, growing and sampled, with logged predictions that have labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import loop_flows
import pandas as pd
import pytest

import loopml as lm
from loopml.errors import InvalidInput
from loopml.loop.windows import build_window, select_rows
from loopml.monitoring.predictions import PredictionLogger, PredictionRecord

bikes = loop_flows.bikes


def definition(window: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "name": "bikes",
        "model": "bikeshare",
        "data": "bikes",
        "timestamp": "ts",
        "label": "label",
        "include_logged": False,
        "window": window,
        "holdout": 0.2,
        **changes,
    }


def test_a_fixed_window_is_measured_from_the_newest_row(bikes: dict[str, Any]) -> None:
    built = build_window(definition({"type": "fixed", "days": 1.0}), register=False)
    # 120 hourly rows: the newest 24 hours plus the row exactly one day older.
    assert built.evidence["rows"] == 25
    assert built.evidence["start"] == "2011-01-04T23:00:00+00:00"
    assert built.evidence["end"] == "2011-01-05T23:00:00+00:00"
    assert len(built.train) == 20 and len(built.holdout) == 5
    # The holdout is the newest rows; training never sees them.
    assert built.train["ts"].max() < built.holdout["ts"].min()
    assert built.train_uri == ""


def test_growing_window_registers_both_parts(bikes: dict[str, Any]) -> None:
    built = build_window(definition({"type": "growing"}))
    assert built.evidence["rows"] == 120 and built.train_uri == "bikes-window@v1"
    assert built.holdout_uri == "bikes-holdout@v1"
    stored = lm.datasets.get("bikes-window")
    assert len(stored) == 96 and list(stored.columns) == ["ts", "x1", "x2", "label"]
    assert lm.datasets.resolve("bikes-window").tags["loopml.loop.source"] == "bikes@v1"
    # The same data gives the same dataset version.
    assert build_window(definition({"type": "growing"})).train_uri == "bikes-window@v1"


def test_a_representative_sample_keeps_class_shares_and_is_reproducible() -> None:
    frame = pd.DataFrame(
        {
            "t": pd.date_range("2020-01-01", periods=1000, freq="min", tz="UTC"),
            "label": ["a"] * 700 + ["b"] * 250 + ["c"] * 50,
        }
    )
    window = {"type": "sample", "n": 100, "stratify": "label", "seed": 3}
    first = select_rows(frame, window, "t")
    assert len(first) == 100
    assert first["label"].value_counts().to_dict() == {"a": 70, "b": 25, "c": 5}
    assert first.index.equals(select_rows(frame, window, "t").index)
    other = select_rows(frame, {**window, "seed": 4}, "t")
    assert not first.index.equals(other.index)
    plain = select_rows(frame, {"type": "sample", "n": 10, "stratify": None, "seed": 0}, "t")
    assert len(plain) == 10
    with pytest.raises(InvalidInput, match="no column 'kind'"):
        select_rows(frame, {**window, "stratify": "kind"}, "t")


def _log(rows: list[dict[str, Any]], ids: list[str]) -> None:
    with PredictionLogger(flush_seconds=0.1) as log:
        for request_id, row in zip(ids, rows, strict=True):
            log.log(
                PredictionRecord(
                    request_id=request_id,
                    model="bikeshare",
                    version=1,
                    inputs=[row],
                    predictions=[1],
                    timestamp=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )


def test_logged_predictions_with_labels_join_the_window(bikes: dict[str, Any]) -> None:
    later = pd.Timestamp("2011-01-06T05:00:00Z")
    rows = [{"ts": later.isoformat(), "x1": 0.5, "x2": 0.5} for _ in range(4)]
    _log(rows, ["r0", "r1", "r2", "r3"])
    lm.monitoring.log_labels([{"request_id": f"r{i}", "label": 1} for i in range(3)])

    built = build_window(definition({"type": "fixed", "days": 1.0}, include_logged=True))
    logged = built.evidence["logged_predictions"]
    assert logged == {"logged": 4, "labelled": 3, "used": 3}
    # The logged rows carry their own time, six hours after the dataset's newest row.
    assert built.evidence["from_logged"] == 3 and built.evidence["rows"] == 3 + 19
    assert built.evidence["end"] == "2011-01-06T05:00:00+00:00"
    assert (built.holdout["ts"] == later).sum() == 3
    assert pd.api.types.is_datetime64_any_dtype(built.holdout["ts"])


def test_logged_requests_without_the_columns_are_left_out(bikes: dict[str, Any]) -> None:
    _log([{"x1": 1.0}], ["only-x1"])
    lm.monitoring.log_labels([{"request_id": "only-x1", "label": 0}])
    built = build_window(definition({"type": "growing"}, include_logged=True), register=False)
    assert built.evidence["from_logged"] == 0
    assert "lack column(s) x2" in built.evidence["logged_predictions"]["skipped_reason"]


def test_a_window_needs_enough_rows_and_a_time_column(bikes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="at least 10"):
        build_window(definition({"type": "fixed", "days": 0.1}), register=False)
    with pytest.raises(InvalidInput, match="no column 'when'"):
        build_window(definition({"type": "growing"}, timestamp="when"), register=False)
    lm.datasets.register("bikes", loop_flows.make_data(20).assign(ts="not a time"))
    with pytest.raises(InvalidInput, match="does not hold times"):
        build_window(definition({"type": "growing"}), register=False)
