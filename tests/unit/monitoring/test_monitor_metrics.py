"""Prometheus gauges of monitor runs, the server's /metrics and the shipped dashboards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from monitor_helpers import MODEL, FakeSource, clock, features_frame, register_model, window
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import serve_app
from loopml.config import Settings, load_settings
from loopml.monitoring.alerts import Notifier
from loopml.monitoring.metrics import METRIC_NAMES, MonitorMetrics
from loopml.monitoring.monitors import Monitor
from loopml.monitoring.service import MonitorService
from loopml.store.sql.monitors import SqlMonitorStore

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _service(metrics: MonitorMetrics) -> MonitorService:
    return MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=lambda kind, payload: None),
        metrics=metrics,
        clock=clock(),
    )


def test_each_run_updates_the_gauges() -> None:
    register_model()
    metrics = MonitorMetrics()
    service = _service(metrics)
    monitor = Monitor(MODEL, features=["tenure", "charges"])
    drifted = window(features_frame(300, 1, shift=1.5), labels=[1] * 300)
    service.run(monitor, source=FakeSource([drifted]))
    samples = _samples(metrics.registry)
    base = {("monitor", MODEL), ("model", MODEL)}
    assert samples[("loopml_monitor_drift_share", frozenset(base))] == 0.5
    assert samples[("loopml_monitor_predictions", frozenset(base))] == 300
    charges = frozenset(base | {("feature", "charges")})
    assert samples[("loopml_monitor_feature_drifted", charges)] == 1.0
    score = frozenset(base | {("feature", "charges"), ("method", "ks")})
    assert samples[("loopml_monitor_feature_drift_score", score)] < 0.05
    assert ("loopml_monitor_quality", frozenset(base | {("metric", "accuracy")})) in samples
    assert samples[("loopml_monitor_latency_ms", frozenset(base | {("quantile", "99")}))] == 12.0
    firing = frozenset(base | {("check", "drift_share >= 0.3")})
    assert samples[("loopml_monitor_alert_firing", firing)] == 1.0

    calm = service.run(
        Monitor(MODEL, features=["tenure"]), source=FakeSource([window(features_frame(300, 2))])
    )
    samples = _samples(metrics.registry)
    assert calm.verdict == "ok"
    assert samples[("loopml_monitor_alert_firing", firing)] == 0.0
    assert ("loopml_monitor_feature_drifted", charges) not in samples  # no longer reported
    assert ("loopml_monitor_quality", frozenset(base | {("metric", "accuracy")})) not in samples


def test_refresh_reads_runs_of_other_processes_and_forgets_deleted_monitors() -> None:
    register_model()
    import loopml as lm

    lm.monitoring.save(Monitor(MODEL))
    _service(MonitorMetrics()).run(MODEL, source=FakeSource([window(features_frame(200, 1))]))
    exported = MonitorMetrics()  # another process: it did not see the run
    assert _samples(exported.registry) == {}
    store = SqlMonitorStore(load_settings().resolved_store_uri)
    exported.refresh(store)
    names = {name for name, _ in _samples(exported.registry)}
    assert {"loopml_monitor_drift_share", "loopml_monitor_last_run_timestamp_seconds"} <= names
    lm.monitoring.delete(MODEL)
    exported.refresh(store)
    assert _samples(exported.registry) == {}


def test_the_server_exposes_metrics_with_process_collectors(tmp_path: Path) -> None:
    from loopml.server.app import create_app

    register_model()
    _service(MonitorMetrics()).run(
        Monitor(MODEL), source=FakeSource([window(features_frame(200, 1, shift=2))])
    )
    app = create_app(Settings(home=load_settings().home))
    with serve_app(app) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(response.text)}
        assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= names
        assert {"loopml_monitor_drift_share", "loopml_monitor_feature_drift_score"} <= names
        status = client.get(f"/api/v1/monitors/{MODEL}/status")
        assert status.status_code == 200 and status.json()["verdict"] == "alert"
        history = client.get(f"/api/v1/monitors/{MODEL}/history", params={"n": 5}).json()
        assert len(history["runs"]) == 1 and history["runs"][0]["drift_share"] == 0.5
        report = client.get(f"/api/v1/monitors/{MODEL}/report")
        assert report.status_code == 200 and "text/html" in report.headers["content-type"]
        assert 'id="drift-history"' in report.text
        missing = client.get("/api/v1/monitors/nobody/status")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        bad = client.get(f"/api/v1/monitors/{MODEL}/history", params={"n": 0})
        assert bad.status_code in (400, 422)


def _exported_series() -> set[str]:
    """Every series name loopml exports: monitoring, serving and prediction-log metrics."""
    from loopml.monitoring.predictions import PredictionLogger
    from loopml.serving.metrics import ServingMetrics

    registries = [MonitorMetrics().registry, ServingMetrics().registry]
    logger = PredictionLogger(registry=CollectorRegistry())
    registries.append(logger.registry)
    logger.close()
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_every_dashboard_expression_uses_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exported = _exported_series()
    assert set(METRIC_NAMES) <= exported
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 10
    variable = dashboard["templating"]["list"][0]["definition"]
    for expression in [*expressions, variable]:
        used = set(re.findall(r"\bloopml_[a-z_]+", expression))
        assert used, expression
        assert used <= exported, (expression, used - exported)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in (
        "drift share",
        "per-feature drift",
        "quality",
        "latency",
        "prediction rate",
        "queue",
    ):
        assert topic in titles, topic
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_prometheus_example_config_is_valid_yaml() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["loopml-server"]["metrics_path"] == "/metrics"
    assert jobs["loopml-server"]["static_configs"][0]["targets"] == ["127.0.0.1:5000"]
    assert "loopml-serving" in jobs
