"""The prediction log: a writer that never blocks, segments that read back, sampling."""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

import loopml as lm
from conftest import create_bucket
from loopml.config import Settings, load_settings
from loopml.errors import InvalidInput
from loopml.monitoring._segments import MAX_ERROR_CHARS
from loopml.monitoring.predictions import (
    PredictionLogger,
    PredictionRecord,
    is_sampled,
    make_prediction_hook,
    open_stores,
    predictions,
)
from loopml.store.registry import PredictionLogStores

# The module, not the reader function the package exports under the same name.
log_module = importlib.import_module("loopml.monitoring.predictions")

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _model() -> str:
    # The PostgreSQL database is shared by the session: every test logs its own model.
    return f"churn-{uuid.uuid4().hex[:8]}"


def _record(
    model: str, request_id: str, seconds: float, rows: int = 2, **extra: Any
) -> PredictionRecord:
    inputs = pd.DataFrame(
        {"tenure": [float(i + seconds) for i in range(rows)], "plan": ["a"] * rows}
    )
    fields: dict[str, Any] = {
        "request_id": request_id,
        "model": model,
        "version": 1,
        "inputs": inputs,
        "predictions": [i % 2 for i in range(rows)],
        "probabilities": [[0.8, 0.2] if i % 2 == 0 else [0.4, 0.6] for i in range(rows)],
        "latency_ms": 4.5,
        "timestamp": T0 + timedelta(seconds=seconds),
    }
    fields.update(extra)
    return PredictionRecord(**fields)


class GatedBlobs:
    """A blob store whose writes wait for a gate, or fail while ``failures`` lasts."""

    def __init__(self, inner: Any, gate: threading.Event | None = None, failures: int = 0) -> None:
        self.inner = inner
        self.gate = gate
        self.failures = failures
        self.entered = threading.Event()

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(20)
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        result: tuple[str, int] = self.inner.put_stream(stream)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _stores(settings: Settings, blobs: GatedBlobs) -> PredictionLogStores:
    real = open_stores(settings)
    blobs.inner = real.blobs
    return PredictionLogStores(log=real.log, blobs=blobs)  # type: ignore[arg-type]


# -- never blocking ------------------------------------------------------------------------
def test_log_never_blocks_and_counts_drops_when_the_writer_stalls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings()
    gate = threading.Event()
    blobs = GatedBlobs(None, gate=gate)
    registry = CollectorRegistry()
    model = _model()
    log = PredictionLogger(
        max_queue=5,
        flush_rows=1,
        settings=settings,
        registry=registry,
        stores=_stores(settings, blobs),
        warn_every=60,
    )
    try:
        assert log.log(_record(model, "first", 0))
        assert blobs.entered.wait(10), "the writer never started writing"
        caplog.set_level(logging.WARNING, logger=log_module.__name__)
        accepted, slowest = [], 0.0
        for index in range(200):
            started = time.perf_counter()
            if log.log(_record(model, f"r{index}", index + 1)):
                accepted.append(f"r{index}")
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.1
        assert len(accepted) == 5
        assert log.dropped == 195
        assert log.queued == 5
        assert registry.get_sample_value("loopml_prediction_log_queue_depth") == 5
        assert (
            registry.get_sample_value(
                "loopml_prediction_log_dropped_requests_total", {"reason": "queue_full"}
            )
            == 195
        )
        warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        gate.set()
        assert log.close(timeout=30)
    frame = predictions(model, with_labels=False, settings=settings)
    assert sorted(set(frame["request_id"])) == sorted(["first", *accepted])
    assert log.written == 12
    assert registry.get_sample_value("loopml_prediction_log_rows_written_total") == 12


# -- round trip ----------------------------------------------------------------------------
def test_records_round_trip_with_types_and_time_filters(settings: Settings) -> None:
    model = _model()
    with PredictionLogger(flush_seconds=60, settings=settings) as log:
        log.log(_record(model, "a", 0))
        log.log(_record(model, "b", 10, rows=1, probabilities=None, variant="canary"))
        log.log(
            _record(
                model,
                "c",
                20,
                rows=1,
                version=2,
                inputs=[{"tenure": 3.5, "plan": "b", "model": "x"}],
                predictions=["yes"],
                probabilities=None,
            )
        )
    frame = predictions(model, settings=settings)
    assert list(frame.columns) == [
        "request_id",
        "row",
        "timestamp",
        "model",
        "version",
        "variant",
        "latency_ms",
        "prediction",
        "probability",
        "label",
        "tenure",
        "plan",
        "input.model",
    ]
    assert frame["request_id"].tolist() == ["a", "a", "b", "c"]
    assert frame["row"].tolist() == [0, 1, 0, 0]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[2] == pd.Timestamp(T0 + timedelta(seconds=10))
    assert frame["version"].dtype == "int64" and frame["version"].tolist() == [1, 1, 1, 2]
    assert frame["model"].unique().tolist() == [model]
    assert frame["variant"].tolist() == ["", "", "canary", ""]
    assert frame["latency_ms"].dtype == "float64"
    assert frame["probability"].iloc[:2].tolist() == [0.8, 0.6]
    assert frame["probability"].iloc[2:].isna().all()
    assert frame["tenure"].tolist() == [0.0, 1.0, 10.0, 3.5]
    assert frame["input.model"].tolist()[-1] == "x"
    assert frame["label"].isna().all()
    # Segments of different versions mix prediction types; each keeps its values.
    assert frame["prediction"].tolist() == [0, 1, 0, "yes"]

    window = predictions(
        model, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20), settings=settings
    )
    assert window["request_id"].tolist() == ["b"]  # since is inclusive, until exclusive
    assert predictions(model, version=2, settings=settings)["request_id"].tolist() == ["c"]
    assert predictions(model, limit=2, settings=settings)["request_id"].tolist() == ["b", "c"]
    assert predictions(model, since=T0 + timedelta(days=1), settings=settings).empty
    with_probabilities = predictions(model, with_probabilities=True, settings=settings)
    assert with_probabilities["probabilities"].iloc[0].tolist() == [0.8, 0.2]


def test_only_segments_overlapping_the_window_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    with PredictionLogger(flush_seconds=60) as log:
        for hour in range(3):
            log.log(_record(model, f"h{hour}", hour * 3600))
            assert log.flush()
    read: list[int] = []
    original = log_module._read_segment

    def counting(stores: PredictionLogStores, segment: Any) -> Any:
        read.append(segment.min_time)
        return original(stores, segment)

    monkeypatch.setattr(log_module, "_read_segment", counting)
    frame = predictions(model, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert frame["request_id"].unique().tolist() == ["h1"]
    assert len(read) == 1
    read.clear()
    assert predictions(model, limit=1)["request_id"].tolist() == ["h2"]
    assert len(read) == 1


def test_a_new_column_or_type_between_segments_still_reads() -> None:
    model = _model()
    with PredictionLogger(flush_seconds=60) as log:
        log.log(_record(model, "old", 0, rows=1, inputs=[{"tenure": 1.0, "zone": 3}]))
        assert log.flush()
        log.log(_record(model, "new", 5, rows=1, inputs=[{"tenure": 2.0, "zone": "n", "age": 40}]))
    frame = predictions(model, with_labels=False)
    assert frame["request_id"].tolist() == ["old", "new"]
    assert frame["tenure"].tolist() == [1.0, 2.0]
    assert frame["zone"].tolist() == [3, "n"]
    assert pd.isna(frame["age"].iloc[0]) and frame["age"].iloc[1] == 40


def test_failed_requests_are_kept_apart_from_the_predictions() -> None:
    model = _model()
    with PredictionLogger(flush_seconds=60) as log:
        log.log(_record(model, "before", 0, rows=1))
        # A segment written before this one has no error column at all.
        assert log.flush()
        log.log(_record(model, "ok", 5, rows=2))
        failed = _record(model, "boom", 6, rows=2, predictions=[], probabilities=None)
        log.log(replace(failed, error="ValueError: " + "x" * 2000))
        log.log(replace(_record(model, "empty", 7), inputs=[], predictions=[], error="Timeout"))
    answers = predictions(model, with_labels=False)
    assert answers["request_id"].tolist() == ["before", "ok", "ok"]
    assert "error" not in answers.columns
    everything = predictions(model, with_labels=False, with_errors=True)
    assert everything["request_id"].tolist() == ["before", "ok", "ok", "boom", "boom", "empty"]
    errors = everything["error"].tolist()
    assert errors[:3] == [None, None, None]
    # The request's rows are kept for debugging; the message is bounded.
    assert everything["tenure"].tolist()[3:5] == [6.0, 7.0]
    assert errors[3] == errors[4] and errors[3].startswith("ValueError: xxx")
    assert len(errors[3]) == MAX_ERROR_CHARS
    assert errors[5] == "Timeout" and pd.isna(everything["prediction"].iloc[5])
    columns = list(everything.columns)
    assert columns.index("error") == columns.index("latency_ms") + 1


# -- sampling ------------------------------------------------------------------------------
def test_sampling_is_by_request_reproducible_and_close_to_the_rate() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    chosen = [i for i in ids if is_sampled(i, 0.3)]
    assert 0.28 < len(chosen) / len(ids) < 0.32
    assert chosen == [i for i in ids if is_sampled(i, 0.3)]
    assert all(is_sampled(i, 1.0) for i in ids[:100])
    assert not any(is_sampled(i, 0.0) for i in ids[:100])

    model = _model()
    with PredictionLogger(sample_rate=0.5, flush_seconds=60) as log:
        for index in range(200):
            log.log(_record(model, f"s{index}", index, rows=3))
    frame = predictions(model, with_labels=False)
    expected = {f"s{i}" for i in range(200) if is_sampled(f"s{i}", 0.5)}
    assert set(frame["request_id"]) == expected
    assert 70 < len(expected) < 130
    assert (frame.groupby("request_id")["row"].count() == 3).all()  # whole requests


# -- flushing and failures -----------------------------------------------------------------
def test_close_writes_everything_queued() -> None:
    model = _model()
    log = PredictionLogger(flush_rows=1_000_000, flush_seconds=3600)
    for index in range(300):
        assert log.log(_record(model, f"c{index}", index))
    assert log.close(timeout=30)
    assert len(predictions(model, with_labels=False)) == 600
    assert log.written == 600
    assert not log.log(_record(model, "late", 999))
    assert log.dropped == 1
    assert log.close()  # idempotent


def test_flush_seconds_writes_without_being_asked() -> None:
    model = _model()
    with PredictionLogger(flush_seconds=0.1) as log:
        log.log(_record(model, "timed", 0))
        deadline = time.monotonic() + 10
        while log.written == 0:
            assert time.monotonic() < deadline, "nothing was written"
            time.sleep(0.02)
    assert len(predictions(model)) == 2


def test_a_failing_blob_write_or_bad_record_does_not_kill_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings()
    blobs = GatedBlobs(None, failures=1)
    model = _model()
    with PredictionLogger(
        flush_seconds=60, settings=settings, stores=_stores(settings, blobs)
    ) as log:
        log.log(_record(model, "lost", 0))
        assert log.flush()
        assert log.dropped == 1
        assert any("could not write" in r.getMessage() for r in caplog.records)
        log.log(_record(model, "kept", 1))
        log.log(_record(model, "bad", 2, predictions=[1]))  # two input rows, one prediction
        log.log(_record(model, "", 3))
        log.log(_record("", "no-model", 4))
        assert log.flush()
        assert log.dropped == 4
    frame = predictions(model, settings=settings)
    assert frame["request_id"].unique().tolist() == ["kept"]


# -- integration helpers -------------------------------------------------------------------
def test_prediction_hook_logs_and_never_raises() -> None:
    model = _model()
    registry = CollectorRegistry()
    with PredictionLogger(flush_seconds=60, registry=registry) as log:
        hook = make_prediction_hook(log, variant="blue")
        assert hook(
            request_id="h1",
            model=model,
            version=3,
            inputs=[{"tenure": 1.0}],
            predictions=[1],
            probabilities=[[0.1, 0.9]],
            latency_ms=2.0,
        )
        # A malformed call is not the server's problem: it is queued, then dropped.
        assert hook(
            request_id="h2", model=model, version=3, inputs=[{}], predictions=[1], timestamp="x"
        )
        assert log.flush()
        assert log.dropped == 1
        assert registry.get_sample_value("loopml_prediction_log_rows_written_total") == 1
        assert len(log.collectors()) == 3
    frame = lm.monitoring.predictions(model)
    assert frame[["request_id", "version", "variant", "probability"]].values.tolist() == [
        ["h1", 3, "blue", 0.9]
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"max_queue": 0}, "max_queue"),
        ({"flush_rows": True}, "flush_rows"),
        ({"flush_seconds": 0}, "flush_seconds"),
    ],
)
def test_logger_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PredictionLogger(**kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "m", "since": "yesterday"}, "since"),
        ({"model": "m", "until": 5}, "until"),
        ({"model": "m", "limit": -1}, "limit"),
        ({"model": "m", "version": -2}, "version"),
    ],
)
def test_query_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        predictions(**kwargs)
    assert caught.value.field == field


def test_an_unknown_model_has_an_empty_log_with_the_agreed_columns() -> None:
    frame = predictions("nobody", since="2026-01-01T00:00:00Z")
    assert frame.empty
    assert list(frame.columns)[:10] == list(log_module.RESERVED_COLUMNS)
    assert str(frame["timestamp"].dt.tz) == "UTC"


@pytest.mark.s3
def test_segments_on_s3_round_trip(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_bucket(s3_server, "loopml-monitoring")
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", "s3://loopml-monitoring/log")
    monkeypatch.setenv("LOOPML_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    model = _model()
    with PredictionLogger(flush_seconds=60) as log:
        log.log(_record(model, "s3-a", 0))
    frame = predictions(model)
    assert frame["request_id"].tolist() == ["s3-a", "s3-a"]
    assert frame["tenure"].tolist() == [0.0, 1.0]
