"""Monitors: what to watch about a served model, and the result of each run.

A :class:`Monitor` names a registered model, the reference its traffic is compared with
(by default the training dataset version of the served model version), the window of
logged predictions to check (:class:`LastN` or :class:`TimeWindow`) and the alerting
:class:`~loopml.monitoring.checks.Rule` objects. :func:`save` stores it; :func:`run` checks
the window and returns a :class:`MonitorResult` (also stored, with its time);
:func:`status`, :func:`history` and :func:`report` read the stored runs back.

Examples
--------
>>> import loopml as lm  # doctest: +SKIP
>>> from loopml.monitoring import Monitor, Rule, TimeWindow  # doctest: +SKIP
>>> lm.monitoring.save(Monitor("churn", window=TimeWindow("1d"),
...     rules=[Rule("drift_share", ">", 0.3), Rule("f1", "drop", 0.05)],
...     webhooks=["https://hooks.example.com/ml"]))  # doctest: +SKIP
>>> result = lm.monitoring.run("churn")  # doctest: +SKIP
>>> result.verdict, result.drift_share  # doctest: +SKIP
('alert', 0.5)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.monitoring.checks import QUALITY_METRICS, CheckVerdict, Rule
from loopml.registry.service import check_model_name
from loopml.stats import DEFAULT_THRESHOLDS, METHODS

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitoring.service import MonitorService

__all__ = [
    "LastN",
    "Monitor",
    "MonitorResult",
    "Source",
    "TimeWindow",
    "delete",
    "get",
    "history",
    "list_monitors",
    "load_monitor",
    "read_monitor_file",
    "report",
    "run",
    "save",
    "status",
]

#: A function with the signature of :func:`loopml.monitoring.predictions.predictions`.
Source = Callable[..., "pd.DataFrame"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TASKS = ("classification", "regression")
VERDICTS = ("ok", "alert", "no_data")


@dataclass(frozen=True)
class LastN:
    """The most recent ``n`` predicted rows."""

    n: int = 5000

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InvalidInput(f"LastN needs a positive row count, not {self.n!r}", field="window")

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None, int | None]:
        """``(since, until, limit)`` to read."""
        return None, None, self.n

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {"last": self.n}

    def describe(self) -> str:
        """How tables show the window."""
        return f"last {self.n} rows"


@dataclass(frozen=True)
class TimeWindow:
    """The predictions of the last ``duration`` (``"30m"``, ``"12h"``, ``"1d"``, ``"2w"``)."""

    duration: str = "1d"

    def __post_init__(self) -> None:
        self.seconds  # noqa: B018 - validates the duration

    @property
    def seconds(self) -> float:
        """The duration in seconds."""
        match = _DURATION.match(str(self.duration))
        if match is None or float(match.group(1)) <= 0:
            raise InvalidInput(
                f"window duration {self.duration!r} must look like '30m', '12h', '1d' or '2w'",
                field="window",
            )
        return float(match.group(1)) * _UNITS[match.group(2)]

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None, int | None]:
        """``(since, until, limit)`` to read."""
        return now - timedelta(seconds=self.seconds), now, None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {"time": self.duration}

    def describe(self) -> str:
        """How tables show the window."""
        return f"last {self.duration}"


Window = LastN | TimeWindow


def parse_window(value: Any) -> Window:
    """A window from a window object, ``{"last": N}``, ``{"time": "1d"}``, ``"1d"`` or N."""
    if isinstance(value, LastN | TimeWindow):
        return value
    if isinstance(value, Mapping):
        if "last" in value:
            return LastN(value["last"])
        if "time" in value:
            return TimeWindow(str(value["time"]))
    if isinstance(value, int) and not isinstance(value, bool):
        return LastN(value)
    if isinstance(value, str):
        return LastN(int(value)) if value.strip().isdigit() else TimeWindow(value)
    raise InvalidInput(
        f"window {value!r} must be LastN(n), TimeWindow('1d'), {{'last': n}} or {{'time': '1d'}}",
        field="window",
    )


def _http_url(url: Any) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise InvalidInput(f"webhook {url!r} must be an http(s) URL", field="webhooks")
    return url


@dataclass(frozen=True)
class Monitor:
    """What to check about a served model, and when to alert.

    Parameters
    ----------
    model : str
        The registered model name, as the prediction log records it.
    name : str, optional
        The monitor's name (default: the model name).
    reference : str, optional
        A dataset version (``"churn@v3"``) to compare with; by default the training
        dataset version in the lineage of the served model version.
    window : LastN or TimeWindow
        Which logged predictions a run checks (default the last 5,000 rows).
    features : list of str, optional
        Features to test; by default the model signature's inputs, else every reference
        column but the target.
    drift_thresholds : dict, optional
        A threshold per test (``{"ks": 0.01, "wasserstein": 0.2}``); the defaults are
        those of :mod:`loopml.stats`.
    drift_methods : dict, optional
        A test per feature, overriding the choice by type and size.
    drift_share : float
        The dataset drifts when at least this share of tested features drifts.
    metrics : list of str, optional
        Quality metrics; by default accuracy, F1 and ROC AUC for classification, RMSE and
        MAE for regression.
    rules : list of Rule, optional
        Alerting rules (strings such as ``"f1 drop 0.05"`` are parsed); by default
        ``drift_share >= drift_share`` and, for classification, ``f1 drop 0.05``.
    webhooks : list of str
        URLs that receive a JSON ``POST`` when an alert fires or resolves.
    task : {"classification", "regression"}, optional
        By default the model version's evaluation says, else the predictions' type.
    target : str, optional
        The reference's label column (for target drift and prediction reference);
        by default the evaluation's target.
    positive_label : optional
        The positive class of a binary task, for F1 and ROC AUC.
    """

    model: str
    _: KW_ONLY
    name: str = ""
    reference: str | None = None
    window: Window = field(default_factory=LastN)
    features: list[str] | None = None
    drift_thresholds: dict[str, float] = field(default_factory=dict)
    drift_methods: dict[str, str] = field(default_factory=dict)
    drift_share: float = 0.3
    metrics: list[str] | None = None
    rules: list[Rule] | None = None
    webhooks: list[str] = field(default_factory=list)
    task: str | None = None
    target: str | None = None
    positive_label: Any = None

    def __post_init__(self) -> None:
        def put(attribute: str, value: Any) -> None:
            object.__setattr__(self, attribute, value)

        put("model", check_model_name(self.model))
        put("name", check_model_name(self.name) if self.name else self.model)
        if self.reference is not None and (
            not isinstance(self.reference, str) or not self.reference.strip()
        ):
            raise InvalidInput(
                "reference must be a dataset version such as 'churn@v3'", field="reference"
            )
        put("window", parse_window(self.window))
        if self.features is not None:
            if isinstance(self.features, str) or not all(
                isinstance(f, str) and f for f in self.features
            ):
                raise InvalidInput("features must be a list of column names", field="features")
            put("features", list(dict.fromkeys(self.features)))
        thresholds = {}
        for method, value in dict(self.drift_thresholds or {}).items():
            if method not in DEFAULT_THRESHOLDS:
                raise InvalidInput(
                    f"drift_thresholds names unknown test {method!r}; expected some of "
                    f"{', '.join(sorted(DEFAULT_THRESHOLDS))}",
                    field="drift_thresholds",
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInput(
                    f"the {method} threshold must be a non-negative number",
                    field="drift_thresholds",
                )
            thresholds[method] = float(value)
        put("drift_thresholds", thresholds)
        methods = {str(k): str(v) for k, v in dict(self.drift_methods or {}).items()}
        unknown = sorted(set(methods.values()) - set(METHODS))
        if unknown:
            raise InvalidInput(f"unknown drift methods {unknown}", field="drift_methods")
        put("drift_methods", methods)
        share = self.drift_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise InvalidInput(
                f"drift_share must be within [0, 1], not {share!r}", field="drift_share"
            )
        put("drift_share", float(share))
        if self.metrics is not None:
            bad = sorted(set(self.metrics) - QUALITY_METRICS)
            if bad or isinstance(self.metrics, str):
                raise InvalidInput(
                    f"unknown quality metrics {bad or self.metrics}; expected some of "
                    f"{sorted(QUALITY_METRICS)}",
                    field="metrics",
                )
            put("metrics", list(self.metrics))
        if self.rules is not None:
            put("rules", [r if isinstance(r, Rule) else Rule.from_dict(r) for r in self.rules])
        put("webhooks", [_http_url(url) for url in self.webhooks or []])
        if self.task is not None and self.task not in _TASKS:
            raise InvalidInput(f"task must be one of {_TASKS}, not {self.task!r}", field="task")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what the store keeps, and the YAML form)."""
        return {
            "name": self.name,
            "model": self.model,
            "reference": self.reference,
            "window": self.window.to_dict(),
            "features": self.features,
            "drift_thresholds": dict(self.drift_thresholds),
            "drift_methods": dict(self.drift_methods),
            "drift_share": self.drift_share,
            "metrics": self.metrics,
            "rules": None if self.rules is None else [r.to_dict() for r in self.rules],
            "webhooks": list(self.webhooks),
            "task": self.task,
            "target": self.target,
            "positive_label": self.positive_label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Monitor:
        """Build from :meth:`to_dict` output (or a YAML document of the same keys)."""
        if not isinstance(data, Mapping) or not data.get("model"):
            raise InvalidInput("a monitor needs at least 'model'", field="model")
        known = set(cls.__dataclass_fields__) - {"_"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown monitor keys {unknown}", field=unknown[0])
        values = {k: v for k, v in data.items() if v is not None}
        model = values.pop("model")
        return cls(model, **values)


def read_monitor_file(path: str | Path) -> dict[str, Any]:
    """The mapping a monitor YAML file holds (the keys of :meth:`Monitor.to_dict`).

    Raises
    ------
    InvalidInput
        When the file is not a YAML mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}", field="file") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a YAML mapping", field="file")
    return data


def load_monitor(path: str | Path) -> Monitor:
    """Read a monitor from a YAML file (the keys of :meth:`Monitor.to_dict`).

    Raises
    ------
    InvalidInput
        When the file is not a YAML mapping of known keys, or names no model.
    """
    return Monitor.from_dict(read_monitor_file(path))


@dataclass
class MonitorResult:
    """The outcome of one monitor run.

    Attributes
    ----------
    monitor, model : str
        Which monitor ran, on which model.
    version : int or None
        The served model version (of the window's latest prediction).
    time : int
        When the run happened, epoch ms.
    verdict : {"ok", "alert", "no_data"}
        ``alert`` when a rule fired, ``no_data`` when the window was empty.
    window : dict
        The window's definition and bounds.
    reference : str
        The reference dataset version (``name@vN``).
    rows, labelled_rows : int
        Rows in the window, and those with a label.
    features : dict
        Per feature: the :class:`~loopml.stats.ColumnDrift` fields plus ``distribution``
        (reference and current shares per bin or category).
    missing : list of str
        Features absent from the window.
    skipped : dict
        Features that could not be tested, and why.
    drift_share : float
        Share of tested features that drifted.
    dataset_drift : bool
        ``drift_share >= Monitor.drift_share``.
    prediction_drift, target_drift : dict or None
        Drift of the predictions and of the labels (labelled part).
    quality : dict
        Quality metrics on the labelled rows.
    latency : dict
        ``p50``, ``p95``, ``p99`` request latency in ms.
    error_rate : float or None
        Share of failed requests, when the log records failures.
    values : dict
        Every check value by name (what :class:`~loopml.monitoring.checks.Rule` reads).
    checks : list of dict
        One :class:`~loopml.monitoring.checks.CheckVerdict` per rule.
    alerts : list of dict
        Alerts this run opened or resolved.
    """

    monitor: str
    model: str
    time: int
    verdict: str
    version: int | None = None
    window: dict[str, Any] = field(default_factory=dict)
    reference: str = ""
    rows: int = 0
    labelled_rows: int = 0
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    drift_share: float = 0.0
    dataset_drift: bool = False
    prediction_drift: dict[str, Any] | None = None
    target_drift: dict[str, Any] | None = None
    quality: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    task: str | None = None
    id: int | None = None

    @property
    def drifted_features(self) -> list[str]:
        """The features that drifted."""
        return [name for name, item in self.features.items() if item.get("drifted")]

    @property
    def verdicts(self) -> list[CheckVerdict]:
        """The rule verdicts as objects."""
        return [CheckVerdict.from_dict(c) for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what the store keeps)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorResult:
        """Build from :meth:`to_dict` output."""
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise InvalidInput(f"not a monitor result: {exc}", field="result") from exc


# -- the fluent API ---------------------------------------------------------------------
def _service() -> MonitorService:
    from loopml.monitoring.service import get_service

    return get_service()


def save(monitor: Monitor) -> Monitor:
    """Store a monitor (replacing one of the same name).

    Raises
    ------
    InvalidInput
        When no reference is given and the model's latest version has no training dataset
        in its lineage (the message says how to set one).
    """
    return _service().save(monitor)


def get(name: str) -> Monitor:
    """A saved monitor by name (or the only monitor of a model)."""
    return _service().get(name)


def list_monitors(model: str | None = None) -> list[Monitor]:
    """Every saved monitor, or those of one model."""
    return _service().list_monitors(model)


def delete(name: str) -> None:
    """Delete a monitor with its stored runs and alerts."""
    _service().delete(name)


def run(monitor: Monitor | str, *, source: Source | None = None) -> MonitorResult:
    """Check a monitor's window now; the result is stored and returned.

    Parameters
    ----------
    monitor : Monitor or str
        A monitor, or the name of a saved one (a model name finds its only monitor).
    source : callable, optional
        Where predictions come from, with the signature of
        :func:`loopml.monitoring.predictions.predictions` (the default).
    """
    return _service().run(monitor, source=source)


def status(model: str) -> dict[str, Any]:
    """The latest run's summary and the firing alerts of a model's monitor."""
    return _service().status(model)


def resolve_alerts(model: str, reason: str) -> int:
    """Resolve the firing alerts of a model's monitors (its served version changed)."""
    return _service().resolve_alerts(model, reason)


def history(model: str, n: int = 20) -> list[MonitorResult]:
    """The last ``n`` runs of a model's monitor, newest first."""
    return _service().history(model, n)


def report(model: str, path: str | Path) -> Path:
    """Write a self-contained HTML report of a model's monitor and return its path."""
    return _service().write_report(model, path)
