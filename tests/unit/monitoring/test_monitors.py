"""Monitors end to end on the embedded store, with prediction windows fed as DataFrames."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import (
    FEATURES,
    MODEL,
    NOW,
    FakeSource,
    clock,
    features_frame,
    register_model,
    window,
)

import loopml as lm
from loopml.config import load_settings
from loopml.errors import InvalidInput, NotFound
from loopml.monitoring import service as service_module
from loopml.monitoring.alerts import Notifier
from loopml.monitoring.metrics import MonitorMetrics
from loopml.monitoring.monitors import LastN, Monitor, MonitorResult, TimeWindow, load_monitor
from loopml.monitoring.service import MonitorService
from loopml.store.sql.monitors import SqlMonitorStore


def _service(store_uri: str | None = None, **options: Any) -> MonitorService:
    store = SqlMonitorStore(store_uri or load_settings().resolved_store_uri)
    options.setdefault("notifier", Notifier(fire_event=lambda kind, payload: None))
    options.setdefault("metrics", MonitorMetrics())
    return MonitorService(store, clock=clock(), **options)


def test_drift_on_a_shifted_feature_with_the_lineage_reference() -> None:
    register_model()
    service = _service()
    monitor = Monitor(MODEL, features=FEATURES)
    shifted = service.run(monitor, source=FakeSource([window(features_frame(400, 5, shift=1.0))]))
    assert shifted.reference == "churn@v1"  # the training data in the served version's lineage
    assert shifted.version == 1 and shifted.rows == 400 and shifted.task == "classification"
    assert shifted.drifted_features == ["charges"]
    assert shifted.features["tenure"]["method"] == "ks"
    assert shifted.features["plan"]["method"] == "chisquare"
    assert shifted.drift_share == pytest.approx(1 / 3) and shifted.dataset_drift
    assert shifted.verdict == "alert"
    assert shifted.values["feature_drift.charges"] == 1.0
    assert shifted.prediction_drift is not None and shifted.prediction_drift["reference"] == "model"
    assert shifted.prediction_drift["drifted"]  # more churn predicted than on the training data
    assert shifted.latency == {"p50": 12.0, "p95": 12.0, "p99": 12.0}

    same = service.run(monitor, source=FakeSource([window(features_frame(400, 6))]))
    assert same.drifted_features == [] and same.verdict == "ok"
    assert not same.prediction_drift["drifted"]  # type: ignore[index]
    assert [r.time for r in service.history(MODEL, 5)] == [same.time, shifted.time]


def test_reference_sketches_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    register_model()
    builds: list[str] = []
    real = service_module.build_sketch

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(kwargs["reference"])
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "build_sketch", counting)
    reads: list[str] = []
    first = _service()
    real_read = first.datasets.read

    def counting_read(name: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(name)
        return real_read(name, *args, **kwargs)

    monkeypatch.setattr(first.datasets, "read", counting_read)
    monitor = Monitor(MODEL, reference="churn@v1")
    source = FakeSource([window(features_frame(300, 1))])
    first.run(monitor, source=source)
    first.run(monitor, source=source)
    assert builds == ["churn@v1"]
    assert len(reads) == 2  # the features once, the rows the model predicts once
    # A new service (another process) loads the stored sketches instead of reading the data.
    second = _service()
    monkeypatch.setattr(second, "_datasets", first.datasets)
    second.run(monitor, source=source)
    assert builds == ["churn@v1"] and len(reads) == 2
    # Another feature set is another sketch.
    first.run(Monitor(MODEL, reference="churn@v1", features=["plan"]), source=source)
    assert builds == ["churn@v1", "churn@v1"]


def test_an_empty_window_gives_no_data() -> None:
    register_model()
    service = _service()
    empty = window(features_frame(3, 0)).iloc[:0]
    result = service.run(Monitor(MODEL), source=FakeSource([empty]))
    assert result.verdict == "no_data" and result.rows == 0
    assert {c["verdict"] for c in result.checks} == {"skipped"}
    assert service.status(MODEL)["verdict"] == "no_data"


def test_a_missing_column_is_reported_and_the_others_still_checked() -> None:
    register_model()
    traffic = window(features_frame(300, 2, shift=1.0)).drop(columns=["tenure"])
    result = _service().run(Monitor(MODEL, features=FEATURES), source=FakeSource([traffic]))
    assert result.missing == ["tenure"]
    assert set(result.features) == {"charges", "plan"}
    assert result.drift_share == 0.5


def test_a_feature_named_like_a_log_column_is_read_from_its_input_column() -> None:
    data = pd.DataFrame({"label": np.random.default_rng(0).normal(size=300), "x": 1.0})
    lm.datasets.register("odd", data)
    traffic = window(features_frame(300, 2)).assign(**{"input.label": data["label"] + 3})
    result = _service().run(
        Monitor(MODEL, reference="odd@v1", features=["label"], task="regression"),
        source=FakeSource([traffic]),
    )
    assert result.drifted_features == ["label"]


def test_a_model_without_reference_is_refused_with_a_hint() -> None:
    register_model(lineage=False)
    with pytest.raises(InvalidInput, match=r"reference='<dataset>@v<N>'") as caught:
        _service().run(Monitor(MODEL), source=FakeSource([window(features_frame(10, 0))]))
    assert caught.value.field == "reference"
    assert "records no training dataset" in caught.value.message
    with pytest.raises(InvalidInput, match="not registered"):
        lm.monitoring.save(Monitor("unknown-model"))
    with pytest.raises(NotFound):
        lm.monitoring.save(Monitor(MODEL, reference="nope@v1"))


def test_quality_with_delayed_labels() -> None:
    register_model()
    service = _service()
    traffic = features_frame(400, 3)
    truth = (traffic["charges"] > 75).astype(int).to_numpy()
    wrong = 1 - truth
    unlabelled = window(traffic, predictions=wrong)
    partly = unlabelled.copy()
    partly.loc[:99, "label"] = truth[:100]  # labels arrive for the oldest 100 rows only
    source = FakeSource([unlabelled, partly])
    monitor = Monitor(MODEL, features=["tenure"])

    before = service.run(monitor, source=source)
    assert before.labelled_rows == 0 and before.quality == {}
    f1 = next(c for c in before.checks if c["check"] == "f1")
    assert f1["verdict"] == "skipped" and f1["baseline"] == 0.9

    after = service.run(monitor, source=source)
    assert after.labelled_rows == 100
    assert after.quality["accuracy"] == 0.0 and after.quality["f1"] == 0.0
    f1 = next(c for c in after.checks if c["check"] == "f1")
    assert f1["verdict"] == "alert" and "dropped by 0.9" in f1["message"]
    assert after.target_drift is not None and after.verdict == "alert"


def test_windows_are_passed_to_the_source() -> None:
    register_model()
    source = FakeSource([window(features_frame(50, 0))])
    service = _service()
    service.run(Monitor(MODEL, window=TimeWindow("6h")), source=source)
    service.run(Monitor(MODEL, window=LastN(20)), source=source)
    day, last = source.calls
    assert day["since"] == NOW - timedelta(hours=6) and day["until"] == NOW
    assert day["limit"] is None and day["with_labels"] is True
    assert last["limit"] == 20 and last["since"] is None


def test_save_get_list_delete_and_yaml(tmp_path: Path) -> None:
    register_model()
    monitor = Monitor(
        MODEL,
        window=TimeWindow("1d"),
        rules=["drift_share > 0.3", {"check": "f1", "op": "drop", "threshold": 0.05}],
        webhooks=["http://127.0.0.1:9/hook"],
        drift_thresholds={"ks": 0.01},
    )
    lm.monitoring.save(monitor)
    assert lm.monitoring.get(MODEL) == monitor
    assert lm.monitoring.list_monitors() == [monitor]
    assert [r.name for r in monitor.rules or []] == ["drift_share > 0.3", "f1 drop 0.05"]
    spec = tmp_path / "monitor.yaml"
    spec.write_text(
        "model: churn-model\nname: nightly\nwindow: {last: 1000}\nrules: ['f1 drop 0.1']\n",
        encoding="utf-8",
    )
    loaded = load_monitor(spec)
    assert loaded.name == "nightly" and loaded.window == LastN(1000)
    lm.monitoring.save(loaded)
    lm.monitoring.delete(MODEL)
    assert lm.monitoring.get(MODEL) == loaded  # a model name finds its only monitor
    lm.monitoring.save(Monitor(MODEL, name="weekly"))
    with pytest.raises(InvalidInput, match="several monitors"):
        lm.monitoring.get(MODEL)
    lm.monitoring.delete("nightly")
    with pytest.raises(NotFound, match="loopml monitor create"):
        lm.monitoring.get("nightly")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"window": "yesterday"}, "window"),
        ({"window": {"last": 0}}, "window"),
        ({"webhooks": ["ftp://x"]}, "webhooks"),
        ({"rules": ["f1 sinks 0.1"]}, "rules"),
        ({"drift_thresholds": {"magic": 0.1}}, "drift_thresholds"),
        ({"drift_share": 2}, "drift_share"),
        ({"metrics": ["bleu"]}, "metrics"),
        ({"task": "ranking"}, "task"),
    ],
)
def test_bad_monitor_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Monitor(MODEL, **options)
    assert caught.value.field == field


def test_results_round_trip_and_status() -> None:
    register_model()
    lm.monitoring.save(Monitor(MODEL))
    service = _service()
    assert service.status(MODEL)["verdict"] == "never_run"
    result = service.run(MODEL, source=FakeSource([window(features_frame(200, 9, shift=2))]))
    again = MonitorResult.from_dict(result.to_dict())
    assert again == result and again.verdicts[0].verdict == "alert"
    status = service.status(MODEL)
    assert status["verdict"] == "alert" and status["last_run"]["id"] == result.id
    assert [a["check"] for a in status["firing"]] == ["drift_share >= 0.3"]


def test_through_the_real_prediction_log() -> None:
    from loopml.monitoring.predictions import PredictionLogger, PredictionRecord

    register_model()
    traffic = features_frame(300, 4, shift=1.5)[["tenure", "charges"]]
    with PredictionLogger(flush_seconds=0.1) as logger:
        for start in range(0, len(traffic), 50):
            chunk = traffic.iloc[start : start + 50].reset_index(drop=True)
            logger.log(
                PredictionRecord(
                    request_id=f"req-{start}",
                    model=MODEL,
                    version=1,
                    inputs=chunk,
                    predictions=(chunk["charges"] > 75).astype(int).tolist(),
                    latency_ms=5.0 + start / 50,
                )
            )
        # A failed request of 100 rows: in the error rate, in no other check.
        logger.log(
            PredictionRecord(
                request_id="req-failed",
                model=MODEL,
                version=1,
                inputs=traffic.iloc[:100],
                predictions=[],
                latency_ms=900.0,
                error="RuntimeError: model blew up",
            )
        )
        assert logger.flush(timeout=20)
    lm.monitoring.log_labels(
        pd.DataFrame({"request_id": ["req-0"] * 3, "row": [0, 1, 2], "label": [1, 1, 1]})
    )
    result = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=lambda kind, payload: None),
        metrics=MonitorMetrics(),
    ).run(Monitor(MODEL))
    assert result.rows == 300 and result.labelled_rows == 3
    assert result.drifted_features == ["charges"] and result.verdict == "alert"
    assert result.latency["p50"] == pytest.approx(7.5)
    assert result.error_rate == pytest.approx(100 / 400)
    assert result.values["error_rate"] == pytest.approx(0.25)


@pytest.mark.postgres
def test_monitor_store_on_postgres(pg_uri: str) -> None:
    store = SqlMonitorStore(pg_uri)
    store.save_monitor("pg-monitor", "pg-model", {"model": "pg-model"})
    store.save_monitor("pg-monitor", "pg-model", {"model": "pg-model", "drift_share": 0.5})
    assert store.get_monitor("pg-monitor").spec["drift_share"] == 0.5
    first = store.add_monitor_run("pg-monitor", "pg-model", 1, 1000, "ok", {"verdict": "ok"})
    second = store.add_monitor_run("pg-monitor", "pg-model", 1, 2000, "alert", {"x": float("nan")})
    assert [r.id for r in store.list_monitor_runs("pg-monitor")] == [second, first]
    assert [r.id for r in store.latest_monitor_runs() if r.monitor == "pg-monitor"] == [second]
    alert, opened = store.fire_alert("pg-monitor", "pg-model", "f1 drop 0.05", 0.5, "m", 1000)
    again, reopened = store.fire_alert("pg-monitor", "pg-model", "f1 drop 0.05", 0.4, "m", 2000)
    assert opened and not reopened and again.id == alert.id and again.value == 0.4
    assert store.resolve_alert(alert.id, 3000).state == "resolved"
    store.put_reference_sketch("k" * 64, "d@v1", ["x"], {"columns": []})
    store.put_reference_sketch("k" * 64, "d@v1", ["x"], {"columns": [1]})
    assert store.get_reference_sketch("k" * 64) == {"columns": []}
    store.delete_monitor("pg-monitor")
    assert store.list_monitor_runs("pg-monitor") == [] and store.list_alerts("pg-monitor") == []
