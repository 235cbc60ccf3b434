"""The monitoring use cases: save monitors, run them, read their status and history.

:class:`MonitorService` ties the prediction log (any callable with the signature of
:func:`loopml.monitoring.predictions.predictions`), the model registry (served versions,
their lineage and evaluation), the dataset store (the reference) and the monitor store
(specs, runs, reference sketches, alerts) together. Every dependency can be injected, so
tests feed windows as DataFrames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.config import load_settings
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.monitoring.alerts import Notifier, process_alerts
from loopml.monitoring.checks import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Rule,
    distribution,
    drift_from_sketch,
    latency_percentiles,
    quality_metrics,
)
from loopml.monitoring.metrics import METRICS, MonitorMetrics
from loopml.monitoring.monitors import Monitor, MonitorResult, Source
from loopml.monitoring.predictions import RESERVED_COLUMNS
from loopml.monitoring.reference import (
    SAMPLE_SEED,
    ColumnSketch,
    ReferenceSketch,
    build_sketch,
    sketch_column,
    sketch_key,
)
from loopml.store.base import MonitorRecord, MonitorStore

if TYPE_CHECKING:
    from loopml.data.datasets import DatasetService
    from loopml.entities.data import DatasetVersion
    from loopml.entities.registry import ModelVersion
    from loopml.registry.service import RegistryService

__all__ = ["PREDICTION_SAMPLE", "MonitorService", "get_service"]

logger = logging.getLogger("loopml.monitoring")

#: Reference rows the model predicts once to get the reference predictions.
PREDICTION_SAMPLE = 20_000


#: Features named like a column of the prediction log are logged under this prefix.
INPUT_PREFIX = "input."


def _default_source(model: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
    from loopml.monitoring.predictions import predictions

    return predictions(model, *args, with_errors=True, **kwargs)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def window_column(feature: str) -> str:
    """The prediction log column holding ``feature``."""
    return INPUT_PREFIX + feature if feature in RESERVED_COLUMNS else feature


class MonitorService:
    """Monitors over a :class:`~loopml.store.base.MonitorStore`.

    Parameters
    ----------
    store : MonitorStore
        Monitor specs, runs, reference sketches and alert state.
    source : callable, optional
        The prediction log reader; :func:`loopml.monitoring.predictions.predictions` by
        default.
    registry : RegistryService, optional
        Model versions, lineage and evaluations; the current settings' by default.
    datasets : DatasetService, optional
        The reference datasets; the current settings' by default.
    notifier : Notifier, optional
        How alerts are announced.
    metrics : MonitorMetrics, optional
        The gauges runs update; the process-wide :data:`~loopml.monitoring.metrics.METRICS`.
    clock : callable, optional
        Returns the current UTC time (tests move it).
    """

    def __init__(
        self,
        store: MonitorStore,
        *,
        source: Source | None = None,
        registry: RegistryService | None = None,
        datasets: DatasetService | None = None,
        notifier: Notifier | None = None,
        metrics: MonitorMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self._registry = registry
        self._datasets = datasets
        self.notifier = notifier if notifier is not None else Notifier()
        self.metrics = metrics if metrics is not None else METRICS
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # -- collaborators ----------------------------------------------------------------------
    @property
    def registry(self) -> RegistryService:
        """The model registry."""
        if self._registry is not None:
            return self._registry
        from loopml.registry import get_service as registry_service

        # Not kept: the fluent registry follows the current settings and tracking service.
        return registry_service()

    @property
    def datasets(self) -> DatasetService:
        """The dataset service."""
        if self._datasets is None:
            from loopml.data.datasets import DatasetService
            from loopml.store.registry import open_data_stores

            stores = open_data_stores(load_settings())
            self._datasets = DatasetService(stores.datasets, stores.blobs)
        return self._datasets

    # -- monitors ---------------------------------------------------------------------------
    def save(self, monitor: Monitor) -> Monitor:
        """Store ``monitor``, checking first that it has a reference to compare with."""
        if not isinstance(monitor, Monitor):
            raise InvalidInput("save() takes a Monitor", field="monitor")
        if monitor.reference is None:
            self._lineage_reference(monitor.model, self._model_version(monitor.model, None))
        else:
            self.datasets.resolve(monitor.reference)
        self.store.save_monitor(monitor.name, monitor.model, monitor.to_dict())
        return monitor

    def _record(self, name: str) -> MonitorRecord:
        try:
            return self.store.get_monitor(name)
        except NotFound:
            of_model = self.store.list_monitors(model=name)
            if len(of_model) == 1:
                return of_model[0]
            if of_model:
                names = ", ".join(r.name for r in of_model)
                raise InvalidInput(
                    f"model {name!r} has several monitors ({names}); name one", field="monitor"
                ) from None
        raise NotFound(
            f"no monitor named {name!r}; create one with "
            f"lm.monitoring.save(Monitor({name!r})) or 'loopml monitor create {name}'",
            field="monitor",
        )

    def get(self, name: str) -> Monitor:
        """A saved monitor, by its name or its model's."""
        return Monitor.from_dict(self._record(name).spec)

    def list_monitors(self, model: str | None = None) -> list[Monitor]:
        """Every saved monitor, or those of one model."""
        return [Monitor.from_dict(r.spec) for r in self.store.list_monitors(model=model)]

    def delete(self, name: str) -> None:
        """Delete a monitor, its runs and alerts, and its exported series."""
        record = self._record(name)
        self.store.delete_monitor(record.name)
        self.metrics.forget(record.name, record.model)

    def _monitor(self, monitor: Monitor | str) -> Monitor:
        if isinstance(monitor, Monitor):
            return monitor
        if isinstance(monitor, str):
            return self.get(monitor)
        raise InvalidInput("run() takes a Monitor or a monitor name", field="monitor")

    # -- registry and references ------------------------------------------------------------
    def _model_version(self, model: str, version: int | None) -> ModelVersion | None:
        """The version (or the champion, else the latest one); None when not registered."""
        specs = (
            [f"{model}/{version}"]
            if version is not None
            else [f"{model}@champion", f"{model}@latest"]
        )
        for spec in specs:
            try:
                return self.registry.resolve(spec)
            except LoopmlError:
                continue
        return None

    @staticmethod
    def _lineage_reference(model: str, version: ModelVersion | None) -> str:
        if version is not None and version.datasets:
            return str(version.datasets[0])
        which = (
            f"version {version.version} of model {model!r} records no training dataset"
            if version is not None
            else f"model {model!r} is not registered, so no training dataset is known"
        )
        raise InvalidInput(
            f"monitor of {model!r} has no reference to compare with: {which}. Set one with "
            f"Monitor({model!r}, reference='<dataset>@v<N>') or "
            f"'loopml monitor create {model} --reference <dataset>@v<N>'",
            field="reference",
        )

    def _reference_sketch(self, version: DatasetVersion, columns: list[str]) -> ReferenceSketch:
        key = sketch_key(version.uri, version.digest, columns)
        stored = self.store.get_reference_sketch(key)
        if stored is not None:
            return ReferenceSketch.from_dict(stored)
        known = {c.name for c in version.columns}
        present = [c for c in columns if c in known]
        frame = (
            self.datasets.read(version.name, version.version, columns=present)
            if present
            else pd.DataFrame()
        )
        assert isinstance(frame, pd.DataFrame)
        sketch = build_sketch(frame, columns, reference=version.uri)
        self.store.put_reference_sketch(key, version.uri, columns, sketch.to_dict())
        return sketch

    def _prediction_sketch(
        self,
        dataset: DatasetVersion,
        features: list[str],
        target: str | None,
        version: ModelVersion | None,
    ) -> ColumnSketch | None:
        """The model version's predictions on the reference, sketched once and stored."""
        if version is None:
            return None
        key = sketch_key(
            dataset.uri, dataset.digest, features, f"predictions:{version.name}/{version.version}"
        )
        stored = self.store.get_reference_sketch(key)
        if stored is None:
            stored = self._predict_reference(dataset, target, version).to_dict()
            # A failure is stored too, so that a model that cannot be loaded is not retried.
            self.store.put_reference_sketch(key, dataset.uri, ["prediction"], stored)
        sketch = ReferenceSketch.from_dict(stored)
        return sketch.columns.get("prediction")

    def _predict_reference(
        self, dataset: DatasetVersion, target: str | None, version: ModelVersion
    ) -> ReferenceSketch:
        try:
            model = self.registry.load(f"{version.name}/{version.version}")
            frame = self.datasets.read(dataset.name, dataset.version)
            assert isinstance(frame, pd.DataFrame)
            if len(frame) > PREDICTION_SAMPLE:
                frame = frame.sample(n=PREDICTION_SAMPLE, random_state=SAMPLE_SEED)
            if target and target in frame.columns:
                frame = frame.drop(columns=[target])
            predicted = np.asarray(model.predict(frame))
            if predicted.ndim != 1:
                raise InvalidInput("the model returns more than one value per row")
            column = sketch_column(pd.Series(predicted), "prediction")
        except Exception as exc:  # noqa: BLE001 - prediction drift is optional; say why
            reason = exc.message if isinstance(exc, LoopmlError) else f"{type(exc).__name__}: {exc}"
            logger.warning(
                "monitor of %s: no reference predictions of version %s: %s",
                version.name,
                version.version,
                reason,
            )
            return ReferenceSketch(dataset.uri, 0, {}, {"prediction": reason})
        return ReferenceSketch(dataset.uri, len(frame), {"prediction": column})

    # -- running ----------------------------------------------------------------------------
    def run(self, monitor: Monitor | str, *, source: Source | None = None) -> MonitorResult:
        """Check the monitor's window now; store and return the result.

        Raises
        ------
        InvalidInput
            When the monitor has no reference (the message says how to set one) or the
            source does not return a DataFrame.
        NotFound
            When a named monitor or the reference dataset does not exist.
        """
        spec = self._monitor(monitor)
        read = source or self.source or _default_source
        now = self.clock()
        since, until, limit = spec.window.bounds(now)
        frame = read(spec.model, since, until, with_labels=True, limit=limit)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput("the prediction source must return a DataFrame", field="source")
        error_rate = None
        if "error" in frame.columns:
            # Failed requests count in the error rate; every other check reads answers only.
            failed = frame["error"].notna()
            error_rate = float(failed.mean()) if len(frame) else None
            frame = frame[~failed].drop(columns=["error"])
        served = None
        if not frame.empty and "version" in frame.columns:
            latest = pd.to_numeric(frame["version"], errors="coerce").dropna()
            served = int(latest.iloc[-1]) if not latest.empty else None
        version = self._model_version(spec.model, served)
        reference = spec.reference or self._lineage_reference(spec.model, version)
        result = MonitorResult(
            monitor=spec.name,
            model=spec.model,
            time=int(now.timestamp() * 1000),
            verdict="no_data",
            version=served if served is not None else (version.version if version else None),
            window={**spec.window.to_dict(), "since": _iso(since), "until": _iso(until)},
            reference=reference,
            rows=len(frame),
            error_rate=error_rate,
        )
        if frame.empty:
            result.checks = [
                r.evaluate({}).to_dict() | {"message": "no predictions in the window"}
                for r in spec.rules or self._default_rules(spec, None)
            ]
        else:
            self._check(spec, frame, version, reference, result)
            transitions = process_alerts(
                self.store,
                monitor=spec.name,
                model=spec.model,
                version=result.version,
                verdicts=result.checks,
                time_ms=result.time,
                webhooks=spec.webhooks,
                notifier=self.notifier,
            )
            result.alerts = [t.to_dict() for t in transitions]
        result.id = self.store.add_monitor_run(
            spec.name, spec.model, result.version, result.time, result.verdict, result.to_dict()
        )
        firing = self.store.list_alerts(monitor=spec.name, state="firing")
        self.metrics.update(result.to_dict(), firing)
        return result

    @staticmethod
    def _default_rules(spec: Monitor, task: str | None) -> list[Rule]:
        rules = [Rule("drift_share", ">=", spec.drift_share)]
        if task == "classification":
            rules.append(Rule("f1", "drop", 0.05))
        return rules

    @staticmethod
    def _task(spec: Monitor, version: ModelVersion | None, frame: pd.DataFrame) -> str:
        evaluation = (version.evaluation if version else None) or {}
        task = spec.task or evaluation.get("task")
        if task in ("classification", "regression"):
            return str(task)
        predictions = frame["prediction"] if "prediction" in frame else pd.Series(dtype=object)
        if pd.api.types.is_float_dtype(predictions.dtype):
            values = predictions.dropna().to_numpy(dtype=np.float64)
            if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
                return "regression"
        return "classification"

    def _features(
        self,
        spec: Monitor,
        version: ModelVersion | None,
        dataset: DatasetVersion,
        target: str | None,
    ) -> list[str]:
        if spec.features:
            return list(spec.features)
        inputs = ((version.signature if version else None) or {}).get("inputs") or []
        names = [str(c["name"]) for c in inputs if isinstance(c, dict) and c.get("name")]
        if names:
            return names
        return [c.name for c in dataset.columns if c.name != target]

    def _check(
        self,
        spec: Monitor,
        frame: pd.DataFrame,
        version: ModelVersion | None,
        reference: str,
        result: MonitorResult,
    ) -> None:
        evaluation = (version.evaluation if version else None) or {}
        target = spec.target or evaluation.get("target") or None
        dataset = self.datasets.resolve(reference)
        features = self._features(spec, version, dataset, target)
        columns = list(dict.fromkeys([*features, *([target] if target else [])]))
        sketch = self._reference_sketch(dataset, columns)
        result.reference = dataset.uri
        task = self._task(spec, version, frame)
        result.task = task
        for feature in features:
            column = window_column(feature)
            if feature not in sketch.columns:
                result.skipped[feature] = sketch.skipped.get(feature, "not in the reference")
                continue
            if column not in frame.columns:
                result.missing.append(feature)
                continue
            try:
                drift = drift_from_sketch(
                    sketch.columns[feature],
                    frame[column],
                    method=spec.drift_methods.get(feature),
                    thresholds=spec.drift_thresholds,
                )
            except InvalidInput as exc:
                result.skipped[feature] = exc.message
                continue
            item = drift.to_dict()
            item["score"] = drift.score
            item["distribution"] = distribution(sketch.columns[feature], frame[column])
            result.features[feature] = item
        tested = len(result.features)
        result.drift_share = len(result.drifted_features) / tested if tested else 0.0
        result.dataset_drift = tested > 0 and result.drift_share >= spec.drift_share
        labelled = frame[frame["label"].notna()] if "label" in frame.columns else frame.iloc[:0]
        result.labelled_rows = len(labelled)
        target_sketch = sketch.columns.get(target) if target else None
        predicted = self._prediction_sketch(dataset, features, target, version)
        result.prediction_drift = self._column_drift(
            predicted or target_sketch,
            frame.get("prediction"),
            spec,
            "model" if predicted else "target",
        )
        result.target_drift = self._column_drift(
            target_sketch, labelled.get("label"), spec, "target"
        )
        if "prediction" in frame.columns and not labelled.empty:
            result.quality = quality_metrics(
                task,
                labelled["prediction"],
                labelled["label"],
                probability=labelled["probability"] if "probability" in labelled else None,
                metrics=spec.metrics
                or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS),
                positive_label=spec.positive_label
                if spec.positive_label is not None
                else evaluation.get("positive_label"),
            )
        result.latency = latency_percentiles(frame)
        result.values = self._values(result)
        baselines = self._baselines(version)
        verdicts = [
            r.evaluate(result.values, baselines)
            for r in spec.rules or self._default_rules(spec, task)
        ]
        result.checks = [v.to_dict() for v in verdicts]
        result.verdict = "alert" if any(v.verdict == "alert" for v in verdicts) else "ok"

    @staticmethod
    def _column_drift(
        sketch: ColumnSketch | None, values: Any, spec: Monitor, against: str
    ) -> dict[str, Any] | None:
        if sketch is None or not isinstance(values, pd.Series) or values.dropna().empty:
            return None
        try:
            drift = drift_from_sketch(sketch, values, thresholds=spec.drift_thresholds)
        except InvalidInput as exc:
            return {"skipped": exc.message, "reference": against}
        return {**drift.to_dict(), "score": drift.score, "reference": against}

    @staticmethod
    def _values(result: MonitorResult) -> dict[str, float]:
        values: dict[str, float] = {
            "rows": float(result.rows),
            "labelled_rows": float(result.labelled_rows),
            "drift_share": result.drift_share,
            "dataset_drift": float(result.dataset_drift),
            "drifted_features": float(len(result.drifted_features)),
        }
        for name, item in result.features.items():
            values[f"feature_drift.{name}"] = float(bool(item["drifted"]))
            values[f"drift_score.{name}"] = float(item["score"])
        for key in ("prediction_drift", "target_drift"):
            item = getattr(result, key)
            if item and "drifted" in item:
                values[key] = float(bool(item["drifted"]))
                values[f"{key}_score"] = float(item["score"])
        values.update({k: float(v) for k, v in result.quality.items()})
        values.update({f"latency_{k}_ms": float(v) for k, v in result.latency.items()})
        if result.error_rate is not None:
            values["error_rate"] = result.error_rate
        return values

    @staticmethod
    def _baselines(version: ModelVersion | None) -> dict[str, float]:
        if version is None:
            return {}
        baselines: dict[str, float] = {}
        for key, value in version.metrics.items():
            baselines.setdefault(key.removeprefix("eval_"), float(value))
        evaluated = ((version.evaluation or {}).get("metrics")) or {}
        baselines.update(
            {str(k): float(v) for k, v in evaluated.items() if isinstance(v, int | float)}
        )
        return baselines

    # -- reading ----------------------------------------------------------------------------
    def _names(self, model: str) -> tuple[str, str]:
        """``(monitor, model)`` for a monitor or model name, saved or only run."""
        try:
            record = self._record(model)
            return record.name, record.model
        except NotFound:
            runs = self.store.list_monitor_runs(model, 1)
            if runs:
                return runs[0].monitor, runs[0].model
            raise

    def status(self, model: str) -> dict[str, Any]:
        """The latest run and the firing alerts of a model's (or named) monitor."""
        monitor, name = self._names(model)
        runs = self.store.list_monitor_runs(monitor, 1)
        last = {**runs[0].result, "id": runs[0].id} if runs else None
        return {
            "monitor": monitor,
            "model": name,
            "verdict": last["verdict"] if last else "never_run",
            "time": last["time"] if last else None,
            "last_run": last,
            "firing": [a.to_dict() for a in self.store.list_alerts(monitor, "firing")],
        }

    def overview(self) -> list[dict[str, Any]]:
        """One row per monitor, saved or only run: its model, latest verdict and firing alerts.

        Returns
        -------
        list of dict
            ``{"monitor", "model", "version", "verdict", "time", "firing"}`` by monitor
            name; ``verdict`` is ``never_run`` and ``time`` None for a monitor not run yet,
            ``firing`` the number of firing alerts.
        """
        rows: dict[str, dict[str, Any]] = {
            record.name: {
                "monitor": record.name,
                "model": record.model,
                "version": None,
                "verdict": "never_run",
                "time": None,
            }
            for record in self.store.list_monitors()
        }
        for run in self.store.latest_monitor_runs():
            rows[run.monitor] = {
                "monitor": run.monitor,
                "model": run.model,
                "version": run.version,
                "verdict": run.verdict,
                "time": run.time,
            }
        firing: dict[str, int] = {}
        for alert in self.store.list_alerts(state="firing", limit=10_000):
            firing[alert.monitor] = firing.get(alert.monitor, 0) + 1
        return [{**rows[name], "firing": firing.get(name, 0)} for name in sorted(rows)]

    def resolve_alerts(self, model: str, reason: str, *, time_ms: int | None = None) -> int:
        """Resolve every firing alert of the monitors of ``model``; return how many.

        An incident belongs to the version that was serving when it opened: when another
        version takes over (a promotion), its alerts are closed, so a check that still
        fails on the new version opens a new incident and is announced again.
        """
        when = time_ms if time_ms is not None else int(self.clock().timestamp() * 1000)
        resolved = 0
        for monitor in self.list_monitors(model):
            for alert in self.store.list_alerts(monitor.name, "firing", limit=1000):
                self.store.resolve_alert(alert.id, when)
                logger.warning(
                    "alert %s of monitor %s resolved: %s", alert.check, monitor.name, reason
                )
                resolved += 1
        return resolved

    def history(self, model: str, n: int = 20) -> list[MonitorResult]:
        """The last ``n`` runs, newest first."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput(f"n must be a positive integer, not {n!r}", field="n")
        monitor, _ = self._names(model)
        return [
            MonitorResult.from_dict({**r.result, "id": r.id})
            for r in self.store.list_monitor_runs(monitor, n)
        ]

    def render_report(self, model: str, n: int = 50) -> str:
        """The HTML report of a model's monitor (its last ``n`` runs)."""
        from loopml.monitoring.html_report import render_report

        status = self.status(model)
        return render_report(status, self.history(model, n))

    def write_report(self, model: str, path: str | Path) -> Path:
        """Write the HTML report to ``path`` atomically and return the path."""
        from loopml.monitoring.html_report import write_html

        return write_html(self.render_report(model), path)


_lock = threading.Lock()
_cache: dict[tuple[str, str], MonitorService] = {}


def get_service() -> MonitorService:
    """The monitor service of the current settings."""
    from loopml.store.registry import open_monitor_store

    settings = load_settings()
    key = (settings.resolved_store_uri, settings.resolved_artifact_uri)
    with _lock:
        service = _cache.get(key)
        if service is None:
            service = MonitorService(open_monitor_store(settings))
            _cache.clear()
            _cache[key] = service
        return service
