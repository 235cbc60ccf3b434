"""Prometheus gauges of monitor runs: drift, quality, latency, prediction counts, alerts.

Every run updates the process-wide :data:`METRICS`; the tracking server's ``/metrics``
first reloads the latest stored run of every monitor (:meth:`MonitorMetrics.refresh`), so
runs made by other processes (``loopml monitor run`` from cron, a scheduler step) are
exported too. Series of features or checks that a newer run no longer reports are removed.

Exported names (all gauges, labelled by ``monitor`` and ``model``):

====================================================  ==================================
``loopml_monitor_drift_share``                        share of tested features drifted
``loopml_monitor_dataset_drift``                      1 when the dataset drifted
``loopml_monitor_feature_drift_score{feature,method}``  p-value or distance of a feature
``loopml_monitor_feature_drifted{feature}``           1 when the feature drifted
``loopml_monitor_prediction_drift_score``             the prediction column's score
``loopml_monitor_quality{metric}``                    quality on the labelled rows
``loopml_monitor_latency_ms{quantile}``               request latency percentiles
``loopml_monitor_predictions``                        rows in the window
``loopml_monitor_labelled_predictions``               labelled rows in the window
``loopml_monitor_alert_firing{check}``                1 while an alert fires
``loopml_monitor_last_run_timestamp_seconds``         when the monitor last ran
====================================================  ==================================
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from loopml.store.base import AlertRecord, MonitorStore

__all__ = ["METRICS", "METRIC_NAMES", "MonitorMetrics"]

_BASE = ("monitor", "model")


class MonitorMetrics:
    """The monitoring gauges, in their own :class:`~prometheus_client.CollectorRegistry`.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where to register; a new registry by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        self._names: list[str] = []

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            self._names.append(name)
            return Gauge(name, doc, [*_BASE, *labels], registry=self.registry)

        self.drift_share = gauge(
            "loopml_monitor_drift_share", "Share of the tested features that drifted."
        )
        self.dataset_drift = gauge(
            "loopml_monitor_dataset_drift",
            "1 when the share of drifted features crossed the limit.",
        )
        self.feature_drift_score = gauge(
            "loopml_monitor_feature_drift_score",
            "Drift score of a feature: the test's p-value, or the distance.",
            "feature",
            "method",
        )
        self.feature_drifted = gauge(
            "loopml_monitor_feature_drifted", "1 when the feature drifted.", "feature"
        )
        self.prediction_drift_score = gauge(
            "loopml_monitor_prediction_drift_score",
            "Drift score of the predictions against the reference predictions.",
        )
        self.quality = gauge(
            "loopml_monitor_quality", "Quality metric on the labelled predictions.", "metric"
        )
        self.latency = gauge(
            "loopml_monitor_latency_ms", "Request latency percentile in the window.", "quantile"
        )
        self.predictions = gauge("loopml_monitor_predictions", "Predicted rows in the window.")
        self.labelled = gauge(
            "loopml_monitor_labelled_predictions", "Predicted rows of the window with a label."
        )
        self.alert_firing = gauge(
            "loopml_monitor_alert_firing", "1 while the rule's alert is firing.", "check"
        )
        self.last_run = gauge(
            "loopml_monitor_last_run_timestamp_seconds", "When the monitor last ran (epoch s)."
        )
        self._gauges = (
            self.drift_share,
            self.dataset_drift,
            self.feature_drift_score,
            self.feature_drifted,
            self.prediction_drift_score,
            self.quality,
            self.latency,
            self.predictions,
            self.labelled,
            self.alert_firing,
            self.last_run,
        )
        self._series: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}

    @property
    def names(self) -> list[str]:
        """The exported metric names."""
        return list(self._names)

    def update(self, result: Mapping[str, Any], firing: Iterable[AlertRecord | str] = ()) -> None:
        """Set the gauges of one monitor from a run result (``MonitorResult.to_dict()``).

        Parameters
        ----------
        result : mapping
            The run result.
        firing : iterable
            The monitor's firing alerts (records, or rule names).
        """
        base = (str(result.get("monitor", "")), str(result.get("model", "")))
        series: set[tuple[Gauge, tuple[str, ...]]] = set()

        def put(gauge: Gauge, value: Any, *labels: str) -> None:
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not math.isfinite(float(value)):
                return
            key = (*base, *labels)
            gauge.labels(*key).set(float(value))
            series.add((gauge, key))

        put(self.last_run, float(result.get("time", 0)) / 1000.0)
        put(self.predictions, result.get("rows", 0))
        put(self.labelled, result.get("labelled_rows", 0))
        if result.get("verdict") != "no_data":
            put(self.drift_share, result.get("drift_share"))
            put(self.dataset_drift, result.get("dataset_drift"))
            for name, item in dict(result.get("features") or {}).items():
                score = item["p_value"] if item.get("p_value") is not None else item["statistic"]
                put(self.feature_drift_score, score, name, str(item.get("method", "")))
                put(self.feature_drifted, item.get("drifted"), name)
            prediction = result.get("prediction_drift") or {}
            if prediction.get("method"):
                score = prediction.get("p_value")
                put(
                    self.prediction_drift_score, prediction["statistic"] if score is None else score
                )
            for metric, value in dict(result.get("quality") or {}).items():
                put(self.quality, value, metric)
            for quantile, value in dict(result.get("latency") or {}).items():
                put(self.latency, value, quantile.lstrip("p"))
        names = {a.check if isinstance(a, AlertRecord) else str(a) for a in firing}
        for check in result.get("checks") or []:
            put(self.alert_firing, 1.0 if check["name"] in names else 0.0, str(check["name"]))
        with self._lock:
            stale = self._series.get(base, set()) - series
            for gauge, key in stale:
                try:
                    gauge.remove(*key)
                except KeyError:
                    pass
            self._series[base] = series

    def refresh(self, store: MonitorStore) -> None:
        """Reload the latest stored run of every monitor (runs of any process)."""
        runs = store.latest_monitor_runs()
        firing: dict[str, list[AlertRecord]] = {}
        for alert in store.list_alerts(state="firing", limit=10_000):
            firing.setdefault(alert.monitor, []).append(alert)
        current = set()
        for run in runs:
            self.update(run.result, firing.get(run.monitor, []))
            current.add((str(run.result.get("monitor", "")), str(run.result.get("model", ""))))
        with self._lock:
            gone = [base for base in self._series if base not in current]
        for base in gone:
            self.forget(*base)

    def forget(self, monitor: str, model: str) -> None:
        """Remove every series of one monitor (after it is deleted)."""
        with self._lock:
            for gauge, key in self._series.pop((monitor, model), set()):
                try:
                    gauge.remove(*key)
                except KeyError:
                    pass


#: The gauges every run in this process updates.
METRICS = MonitorMetrics()
#: The metric names loopml exports for monitoring (dashboards may use any of them).
METRIC_NAMES = tuple(METRICS.names)
