"""Ground truth: validation, the join with the log, late labels, orphans and the REST route."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import loopml as lm
from conftest import LiveServer
from loopml.config import Settings
from loopml.errors import InvalidInput
from loopml.monitoring.labels import feedback_payload_to_frame, label_stats, log_labels
from loopml.monitoring.predictions import PredictionLogger, PredictionRecord, predictions

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _unique(prefix: str) -> str:
    # The PostgreSQL database is shared by the session: ids must not collide across tests.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _log(settings: Settings, model: str, request_ids: list[str], rows: int = 2) -> None:
    with PredictionLogger(flush_seconds=60, settings=settings) as log:
        for index, request_id in enumerate(request_ids):
            log.log(
                PredictionRecord(
                    request_id=request_id,
                    model=model,
                    version=1,
                    inputs=[{"x": float(index)}] * rows,
                    predictions=[1] * rows,
                    timestamp=T0 + timedelta(seconds=index),
                )
            )


# -- the feedback body ---------------------------------------------------------------------
def test_feedback_bodies_become_label_frames() -> None:
    one = feedback_payload_to_frame({"request_id": "a", "label": 1})
    assert one.to_dict("records") == [{"request_id": "a", "row": 0, "label": 1}]
    per_row = feedback_payload_to_frame({"request_id": "b", "labels": ["no", "yes"]})
    assert per_row[["row", "label"]].values.tolist() == [[0, "no"], [1, "yes"]]
    items = feedback_payload_to_frame(
        {
            "items": [
                {"request_id": "c", "label": True, "row": 2},
                {"request_id": "d", "labels": [0.5]},
            ]
        }
    )
    assert items.values.tolist() == [["c", 2, True], ["d", 0, 0.5]]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([1, 2], "body"),
        ({"label": 1}, "request_id"),
        ({"request_id": "", "label": 1}, "request_id"),
        ({"request_id": "a"}, "label"),
        ({"request_id": "a", "label": 1, "labels": [1]}, "label"),
        ({"request_id": "a", "label": [1]}, "label"),
        ({"request_id": "a", "label": None}, "label"),
        ({"request_id": "a", "label": float("nan")}, "label"),
        ({"request_id": "a", "labels": []}, "labels"),
        ({"request_id": "a", "labels": [1, {"x": 1}]}, "label"),
        ({"request_id": "a", "labels": [1], "row": 1}, "row"),
        ({"request_id": "a", "label": 1, "row": -1}, "row"),
        ({"request_id": "a", "label": 1, "colour": "red"}, "colour"),
        ({"items": []}, "items"),
        ({"items": [{"request_id": "a", "label": 1}, "oops"]}, "items"),
        ({"items": [{"request_id": "a", "label": 1}], "request_id": "b"}, "request_id"),
    ],
)
def test_malformed_feedback_names_the_field(payload: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        feedback_payload_to_frame(payload)
    assert caught.value.field == field


# -- labels and the log --------------------------------------------------------------------
def test_labels_join_the_log_and_the_latest_label_wins(settings: Settings) -> None:
    model = _unique("churn")
    first, second = _unique("r"), _unique("r")
    _log(settings, model, [first, second])
    stored = log_labels(
        pd.DataFrame({"request_id": [first, first, second], "row": [0, 1, 0], "label": [1, 0, 0]}),
        settings=settings,
    )
    assert stored == 3
    # A correction for the same row replaces the earlier label.
    log_labels([{"request_id": second, "label": 1}], settings=settings)
    frame = predictions(model, settings=settings)
    labels = dict(
        zip(zip(frame["request_id"], frame["row"], strict=True), frame["label"], strict=True)
    )
    assert labels[(first, 0)] == 1 and labels[(first, 1)] == 0 and labels[(second, 0)] == 1
    assert pd.isna(labels[(second, 1)])
    stats = label_stats(model, settings=settings)
    assert {k: stats[k] for k in ("requests", "rows", "labelled")} == {
        "requests": 2,
        "rows": 4,
        "labelled": 3,
    }
    assert stats["coverage"] == 0.75
    assert predictions(model, with_labels=False, settings=settings).columns.tolist()[9] == "x"


def test_labels_before_or_without_their_request_are_orphans(settings: Settings) -> None:
    model = _unique("fraud")
    early, unknown = _unique("early"), _unique("unknown")
    before = label_stats(model, settings=settings)["orphans"]
    log_labels(
        [{"request_id": early, "label": "fraud"}, {"request_id": unknown, "label": "ok"}],
        settings=settings,
    )
    assert label_stats(model, settings=settings)["orphans"] == before + 2
    assert label_stats(model, settings=settings)["labelled"] == 0
    # The request is written after its label arrived: the join now finds it.
    _log(settings, model, [early], rows=1)
    stats = label_stats(model, settings=settings)
    assert stats["orphans"] == before + 1
    assert stats["labelled"] == 1
    assert predictions(model, settings=settings)["label"].tolist() == ["fraud"]


def test_a_request_answered_by_two_versions_gets_its_label_on_both(settings: Settings) -> None:
    model, request_id = _unique("shadow"), _unique("r")
    with PredictionLogger(flush_seconds=60, settings=settings) as log:
        for version in (1, 2):
            log.log(
                PredictionRecord(
                    request_id=request_id,
                    model=model,
                    version=version,
                    inputs=[{"x": 1.0}],
                    predictions=[version],
                    timestamp=T0,
                )
            )
    log_labels([{"request_id": request_id, "label": 2}], settings=settings)
    frame = predictions(model, settings=settings)
    assert frame[["version", "prediction", "label"]].values.tolist() == [[1, 1, 2], [2, 2, 2]]
    assert predictions(model, version=1, settings=settings)["label"].tolist() == [2]
    assert label_stats(model, settings=settings)["labelled"] == 2


def test_a_label_of_the_wrong_type_is_refused(settings: Settings) -> None:
    model = _unique("price")
    first, second = _unique("r"), _unique("r")
    _log(settings, model, [first, second], rows=1)
    log_labels([{"request_id": first, "label": 12.5}], settings=settings)
    with pytest.raises(InvalidInput) as caught:
        log_labels([{"request_id": second, "label": "expensive"}], settings=settings)
    assert caught.value.field == "label"
    assert model in caught.value.message
    with pytest.raises(InvalidInput) as mixed:
        log_labels(
            [{"request_id": _unique("o"), "label": 1}, {"request_id": _unique("o"), "label": "a"}],
            settings=settings,
        )
    assert mixed.value.field == "label"
    assert label_stats(model, settings=settings)["labelled"] == 1
    # Integers and floats are both numbers.
    assert log_labels([{"request_id": second, "label": 3}], settings=settings) == 1


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (pd.DataFrame({"label": [1]}), "request_id"),
        (pd.DataFrame({"request_id": ["a"]}), "label"),
        (pd.DataFrame({"request_id": [7], "label": [1]}), "request_id"),
        (pd.DataFrame({"request_id": ["a"], "label": [1], "row": [1.5]}), "row"),
        (pd.DataFrame({"request_id": ["a"], "label": [[1, 2]]}), "label"),
    ],
)
def test_log_labels_checks_its_frame(frame: pd.DataFrame, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        log_labels(frame)
    assert caught.value.field == field


def test_the_sdk_exports_the_monitoring_functions() -> None:
    assert lm.monitoring.log_labels([]) == 0
    assert lm.monitoring.label_stats("nobody")["rows"] == 0
    assert lm.monitoring.predictions("nobody").empty


# -- REST ----------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "server-home").start()
    yield live
    live.stop()


def test_feedback_and_predictions_over_http(server: LiveServer) -> None:
    settings: Settings = server.app.state.settings
    _log(settings, "churn", ["a", "b"])
    with httpx.Client(base_url=server.url, timeout=10) as http:
        one = http.post("/api/v1/feedback", json={"request_id": "a", "labels": [1, 0]})
        assert one.status_code == 200, one.text
        assert one.json() == {"accepted": 2}
        many = http.post(
            "/api/v1/feedback",
            json={"items": [{"request_id": "b", "label": 1}, {"request_id": "zz", "label": 0}]},
        )
        assert many.json() == {"accepted": 2}
        bad = http.post("/api/v1/feedback", json={"request_id": "a", "label": {"x": 1}})
        assert bad.status_code == 400
        assert bad.json()["field"] == "label"
        wrong_type = http.post("/api/v1/feedback", json={"request_id": "a", "label": "yes"})
        assert wrong_type.status_code == 400 and wrong_type.json()["field"] == "label"
        not_json = http.post(
            "/api/v1/feedback", content=b"[1", headers={"content-type": "application/json"}
        )
        assert 400 <= not_json.status_code < 500

        listed = http.get("/api/v1/predictions", params={"model": "churn", "limit": 3})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["count"] == 3
        records = body["records"]
        assert [(r["request_id"], r["row"], r["label"]) for r in records] == [
            ("a", 1, 0),
            ("b", 0, 1),
            ("b", 1, None),
        ]
        assert records[0]["timestamp"].startswith("2026-03-01T12:00:00")
        assert records[0]["x"] == 0.0 and records[0]["version"] == 1
        window = http.get(
            "/api/v1/predictions",
            params={"model": "churn", "since": "2026-03-01T12:00:01Z"},
        ).json()
        assert {r["request_id"] for r in window["records"]} == {"b"}
        bad_since = http.get("/api/v1/predictions", params={"model": "churn", "since": "later"})
        assert bad_since.status_code == 400 and bad_since.json()["field"] == "since"
        assert http.get("/api/v1/predictions").status_code == 422
    assert label_stats("churn", settings=settings)["orphans"] == 1


def test_feedback_needs_a_writer_token(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "auth-home", auth=True).start()
    try:
        tokens = {
            role: live.app.state.auth.create_token(role, role) for role in ("reader", "writer")
        }
        body = {"request_id": "a", "label": 1}
        with httpx.Client(base_url=live.url, timeout=10) as http:
            assert http.post("/api/v1/feedback", json=body).status_code == 401
            reader = {"Authorization": f"Bearer {tokens['reader']}"}
            assert http.post("/api/v1/feedback", json=body, headers=reader).status_code == 403
            listed = http.get("/api/v1/predictions", params={"model": "m"}, headers=reader)
            assert listed.status_code == 200 and listed.json()["count"] == 0
            writer = {"Authorization": f"Bearer {tokens['writer']}"}
            accepted = http.post("/api/v1/feedback", json=body, headers=writer)
            assert accepted.status_code == 200, accepted.text
    finally:
        live.stop()
