"""Continuous-training policies: what keeps a registered model fresh, and how.

A :class:`Policy` names the model it keeps fresh, the pipeline that trains a candidate, the
dataset the training window is cut from, its triggers, its window, the gate a candidate must
pass against the champion and the rollout that puts it into service. Policies are plain
data: :func:`loopml.loop.apply` validates one and stores it (the pipeline by import path),
and the controller (:class:`loopml.loop.Controller`) acts on it.

Examples
--------
>>> from loopml.loop.policy import Cron, Drift, FixedWindow, Policy, policy_to_dict
>>> policy = Policy(
...     name="bikes", model="bikeshare", pipeline="flows.bikes:train", data="bikes",
...     triggers=[Cron("0 3 * * *"), Drift(share=0.3)], window=FixedWindow(days=30),
... )
>>> policy_to_dict(policy)["triggers"]
[{'type': 'cron', 'cron': '0 3 * * *'}, {'type': 'drift', 'share': 0.3, 'monitor': None}]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInput

__all__ = [
    "Canary",
    "Cron",
    "Degradation",
    "Direct",
    "Drift",
    "FixedWindow",
    "GrowingWindow",
    "Manual",
    "NewData",
    "Policy",
    "RepresentativeSample",
    "Rollout",
    "Trigger",
    "Window",
    "parse_seconds",
    "pipeline_reference",
    "policy_from_dict",
    "policy_to_dict",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_ALIAS = re.compile(r"[a-z][a-z0-9_\-]{0,62}")
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_seconds(value: Any, field: str) -> float:
    """Turn ``"6h"``, ``"30m"``, ``"1d"`` or a number of seconds into seconds.

    Raises
    ------
    InvalidInput
        Naming ``field`` when ``value`` is neither.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise InvalidInput(f"{field} must be a non-negative duration", field=field)
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(
            f"{field} {value!r} is not a duration: use seconds or a number with ms, s, m, h "
            "or d (such as '6h')",
            field=field,
        )
    return float(match.group("value")) * _UNITS[match.group("unit") or "s"]


# -- triggers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Cron:
    """Retrain on a cron schedule (UTC), e.g. ``Cron("0 3 * * *")`` at 03:00 every day."""

    cron: str
    type: str = field(default="cron", init=False)


@dataclass(frozen=True)
class NewData:
    """Retrain when a new version of a registered dataset appears.

    Parameters
    ----------
    dataset : str, optional
        The dataset to watch; the policy's ``data`` by default.
    """

    dataset: str | None = None
    type: str = field(default="new_data", init=False)


@dataclass(frozen=True)
class Drift:
    """Retrain when a monitor of the model raises a ``drift`` alert.

    Parameters
    ----------
    share : float
        For ``drift_share`` alerts, the smallest share of drifted features that counts
        (alerts on other drift checks always count: their monitor rule already decided).
    monitor : str, optional
        Only alerts of this monitor count; every monitor of the model by default.
    """

    share: float = 0.3
    monitor: str | None = None
    type: str = field(default="drift", init=False)


@dataclass(frozen=True)
class Degradation:
    """Retrain when a monitor of the model raises a ``degradation`` alert on ``metric``.

    Parameters
    ----------
    metric : str
        The quality check, such as ``"accuracy"`` or ``"f1"``.
    drop : float
        When the alert carries a baseline, the smallest loss (baseline minus value) that
        counts; alerts without a baseline always count.
    monitor : str, optional
        Only alerts of this monitor count.
    """

    metric: str
    drop: float = 0.0
    monitor: str | None = None
    type: str = field(default="degradation", init=False)


@dataclass(frozen=True)
class Manual:
    """Retrain when asked: ``loopml loop trigger NAME`` or :func:`loopml.loop.trigger`."""

    type: str = field(default="manual", init=False)


Trigger = Cron | NewData | Drift | Degradation | Manual


# -- windows ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedWindow:
    """The rows whose timestamp lies within ``days`` of the newest row (not of the wall clock).

    Measuring from the newest row keeps a replay of history and a late-running controller
    honest: the window is the last ``days`` of data, whatever today's date is.
    """

    days: float
    type: str = field(default="fixed", init=False)


@dataclass(frozen=True)
class GrowingWindow:
    """Every row ever seen: the dataset's latest version plus all labelled predictions."""

    type: str = field(default="growing", init=False)


@dataclass(frozen=True)
class RepresentativeSample:
    """A reproducible sample of ``n`` rows of everything, stratified on a column if given.

    Parameters
    ----------
    n : int
        Rows to keep (all of them when there are fewer).
    stratify : str, optional
        A column whose class proportions the sample keeps (e.g. the label).
    seed : int
        Seed of the sampling, so that the same data gives the same window.
    """

    n: int
    stratify: str | None = None
    seed: int = 0
    type: str = field(default="sample", init=False)


Window = FixedWindow | GrowingWindow | RepresentativeSample


# -- rollouts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Direct:
    """Move the policy's alias to the candidate as soon as it passes the gate."""

    type: str = field(default="direct", init=False)


@dataclass(frozen=True)
class Canary:
    """Serve the candidate to ``share`` of the traffic first; the model server decides.

    The loop stores a serving deployment whose canary variant serves the candidate; the
    model server's canary controller promotes it (moves the alias) once it answered
    ``min_requests`` requests and ran ``duration``, or rolls it back when its error rate,
    latency or quality fails the rule. A canary still undecided after ``max_duration`` is
    rolled back by the loop, so a model server that is down never leaves a rollout open.

    Parameters
    ----------
    share : float
        Fraction of the traffic the canary gets, in (0, 1).
    min_requests : int
        Requests the canary must answer before a verdict.
    max_duration : str or float
        How long the loop waits for the server's verdict (``"1h"`` or seconds).
    max_error_rate : float
        Failed predictions over requests above which the canary is rolled back.
    duration : str or float
        How long the canary runs at least before it can be promoted.
    max_p99_latency_ms, min_quality : float, optional
        Further parts of the server's rollback rule.
    deployment : str, optional
        The deployment to use; the policy's model name by default.
    check_interval : str or float
        Seconds between two evaluations of the rule in the server.
    """

    share: float = 0.1
    min_requests: int = 100
    max_duration: str | float = "1h"
    max_error_rate: float = 0.05
    duration: str | float = 0.0
    max_p99_latency_ms: float | None = None
    min_quality: float | None = None
    deployment: str | None = None
    check_interval: str | float = 5.0
    type: str = field(default="canary", init=False)


Rollout = Direct | Canary


# -- the policy ---------------------------------------------------------------------------
@dataclass
class Policy:
    """A continuous-training policy (see the module docstring).

    Parameters
    ----------
    name : str
        Unique policy name.
    model : str
        The registered model it keeps fresh.
    pipeline : Pipeline, callable or str
        An ``@lm.pipeline`` (or plain function) importable by ``module:function``, or that
        reference itself. It is called with ``dataset="name@vN"`` (the window) and returns
        the URI of the model it logged, or a dict with ``model_uri``.
    data : str
        The registered dataset the window is cut from.
    timestamp, label : str
        Its time and label columns.
    include_logged : bool
        Also add logged predictions that have labels to the window. Their time is the
        request's timestamp column when the model takes it as an input, else the time they
        were served; a replay of history registers its periods as dataset versions instead.
    triggers : list
        What starts a retrain: :class:`Cron`, :class:`NewData`, :class:`Drift`,
        :class:`Degradation`, :class:`Manual`.
    window : FixedWindow, GrowingWindow or RepresentativeSample
        Which rows train the candidate.
    gate : Gate, optional
        The gate a candidate must pass against the current champion; none lets any
        candidate through.
    rollout : Direct or Canary
        How a passing candidate goes into service.
    alias : str
        The alias the policy moves (``champion``).
    cooldown : str or float
        Least time between two retrains (``"6h"``); triggers in between are skipped.
    max_retrains_per_day : int
        Most retrains in any 24 hours.
    pipeline_params : dict, optional
        Further keyword arguments of every pipeline call.
    holdout : float
        Share of the window's newest rows kept out of training: the candidate and the
        champion are both evaluated on them, and the gate compares the two evaluations.
    """

    name: str
    model: str
    pipeline: Any
    data: str
    timestamp: str = "timestamp"
    label: str = "label"
    include_logged: bool = True
    triggers: Sequence[Trigger] = field(default_factory=lambda: [Manual()])
    window: Window = field(default_factory=GrowingWindow)
    gate: Any = None
    rollout: Rollout = field(default_factory=Direct)
    alias: str = "champion"
    cooldown: str | float = "6h"
    max_retrains_per_day: int = 4
    pipeline_params: dict[str, Any] = field(default_factory=dict)
    holdout: float = 0.2

    @property
    def cooldown_seconds(self) -> float:
        """The cooldown in seconds."""
        return parse_seconds(self.cooldown, "cooldown")


def pipeline_reference(pipeline: Any) -> str:
    """The ``module:function`` import path of a pipeline (or the string given).

    Raises
    ------
    InvalidInput
        When the object cannot be imported by name (a lambda or a nested function).
    """
    if isinstance(pipeline, str):
        target, sep, attr = pipeline.rpartition(":")
        if not sep or not target.strip() or not attr.strip():
            raise InvalidInput(
                f"pipeline {pipeline!r} must look like 'package.module:function'",
                field="pipeline",
            )
        return pipeline
    fn = getattr(pipeline, "fn", pipeline)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(pipeline) or not module or not qualname or "<" in qualname:
        raise InvalidInput(
            "the pipeline must be a module-level function or @lm.pipeline (importable as "
            f"'module:function'), not {pipeline!r}",
            field="pipeline",
        )
    if module == "__main__":
        raise InvalidInput(
            "the pipeline is defined in __main__, which the controller cannot import: move it "
            "to a module or give its reference as 'module:function'",
            field="pipeline",
        )
    return f"{module}:{qualname}"


def _name(value: Any, field: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(
            f"{field} {value!r} must be 1-100 letters, digits, '_', '.' or '-'", field=field
        )
    return value


def _number(value: Any, field: str, low: float, high: float, *, integer: bool = False) -> Any:
    wrong = not isinstance(value, int) if integer else not isinstance(value, int | float)
    if isinstance(value, bool) or wrong:
        raise InvalidInput(f"{field} must be a number in [{low}, {high}]", field=field)
    number = float(value)
    if not low <= number <= high:
        raise InvalidInput(f"{field} must be a number in [{low}, {high}]", field=field)
    return int(number) if integer else number


def _trigger_dict(trigger: Any, index: int) -> dict[str, Any]:
    where = f"triggers.{index}"
    if isinstance(trigger, Cron):
        from loopml.pipelines.triggers import validate_cron

        try:
            return {"type": "cron", "cron": validate_cron(trigger.cron)}
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}", field=where) from None
    if isinstance(trigger, NewData):
        if trigger.dataset is not None:
            _name(trigger.dataset, f"{where}.dataset")
        return {"type": "new_data", "dataset": trigger.dataset}
    if isinstance(trigger, Drift):
        if trigger.monitor is not None:
            _name(trigger.monitor, f"{where}.monitor")
        return {
            "type": "drift",
            "share": _number(trigger.share, f"{where}.share", 0.0, 1.0),
            "monitor": trigger.monitor,
        }
    if isinstance(trigger, Degradation):
        if trigger.monitor is not None:
            _name(trigger.monitor, f"{where}.monitor")
        return {
            "type": "degradation",
            "metric": _name(trigger.metric, f"{where}.metric"),
            "drop": _number(trigger.drop, f"{where}.drop", 0.0, math.inf),
            "monitor": trigger.monitor,
        }
    if isinstance(trigger, Manual):
        return {"type": "manual"}
    raise InvalidInput(
        f"{where} must be Cron, NewData, Drift, Degradation or Manual, not {trigger!r}",
        field=where,
    )


def _window_dict(window: Any) -> dict[str, Any]:
    if isinstance(window, FixedWindow):
        days = _number(window.days, "window.days", 0.0, 36_500.0)
        if days <= 0:
            raise InvalidInput("window.days must be positive", field="window.days")
        return {"type": "fixed", "days": days}
    if isinstance(window, GrowingWindow):
        return {"type": "growing"}
    if isinstance(window, RepresentativeSample):
        if window.stratify is not None and not isinstance(window.stratify, str):
            raise InvalidInput("window.stratify must be a column name", field="window.stratify")
        return {
            "type": "sample",
            "n": _number(window.n, "window.n", 1, 100_000_000, integer=True),
            "stratify": window.stratify,
            "seed": _number(window.seed, "window.seed", 0, 2**32 - 1, integer=True),
        }
    raise InvalidInput(
        f"window must be FixedWindow, GrowingWindow or RepresentativeSample, not {window!r}",
        field="window",
    )


def _rollout_dict(rollout: Any) -> dict[str, Any]:
    if isinstance(rollout, Direct):
        return {"type": "direct"}
    if isinstance(rollout, Canary):
        share = _number(rollout.share, "rollout.share", 0.0, 1.0)
        if not 0 < share < 1:
            raise InvalidInput("rollout.share must be between 0 and 1", field="rollout.share")
        if rollout.deployment is not None:
            _name(rollout.deployment, "rollout.deployment")
        return {
            "type": "canary",
            "share": share,
            "min_requests": _number(
                rollout.min_requests, "rollout.min_requests", 1, 10**9, integer=True
            ),
            "max_duration": parse_seconds(rollout.max_duration, "rollout.max_duration"),
            "max_error_rate": _number(rollout.max_error_rate, "rollout.max_error_rate", 0, 1),
            "duration": parse_seconds(rollout.duration, "rollout.duration"),
            "max_p99_latency_ms": None
            if rollout.max_p99_latency_ms is None
            else _number(rollout.max_p99_latency_ms, "rollout.max_p99_latency_ms", 0, math.inf),
            "min_quality": None
            if rollout.min_quality is None
            else _number(rollout.min_quality, "rollout.min_quality", -math.inf, math.inf),
            "deployment": rollout.deployment,
            "check_interval": parse_seconds(rollout.check_interval, "rollout.check_interval"),
        }
    raise InvalidInput(f"rollout must be Direct or Canary, not {rollout!r}", field="rollout")


def _gate_dict(gate: Any) -> dict[str, Any] | None:
    if gate is None:
        return None
    params = getattr(gate, "get_params", None)
    if not callable(params):
        raise InvalidInput(f"gate must be an lm.Gate, not {gate!r}", field="gate")
    result: dict[str, Any] = dict(params())
    return result


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """Validate a policy and return its stored, JSON-able definition.

    Raises
    ------
    InvalidInput
        Naming the first field at fault (``triggers.1.share``, ``cooldown``...).
    """
    if not isinstance(policy, Policy):
        raise InvalidInput(f"expected an lm.loop.Policy, not {policy!r}", field="policy")
    for column in ("timestamp", "label"):
        value = getattr(policy, column)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{column} must be a column name", field=column)
    triggers = list(policy.triggers) if isinstance(policy.triggers, Sequence) else None
    if not triggers:
        raise InvalidInput("a policy needs at least one trigger", field="triggers")
    if not isinstance(policy.pipeline_params, Mapping):
        raise InvalidInput("pipeline_params must be a dict", field="pipeline_params")
    if "dataset" in policy.pipeline_params:
        raise InvalidInput(
            "pipeline_params must not set 'dataset': the loop passes the window",
            field="pipeline_params",
        )
    return {
        "name": _name(policy.name, "name"),
        "model": _name(policy.model, "model"),
        "pipeline": pipeline_reference(policy.pipeline),
        "data": _name(policy.data, "data"),
        "timestamp": policy.timestamp,
        "label": policy.label,
        "include_logged": bool(policy.include_logged),
        "triggers": [_trigger_dict(t, i) for i, t in enumerate(triggers)],
        "window": _window_dict(policy.window),
        "gate": _gate_dict(policy.gate),
        "rollout": _rollout_dict(policy.rollout),
        "alias": _name(policy.alias, "alias", _ALIAS),
        "cooldown": policy.cooldown_seconds,
        "max_retrains_per_day": _number(
            policy.max_retrains_per_day, "max_retrains_per_day", 1, 10_000, integer=True
        ),
        "pipeline_params": _json_params(policy.pipeline_params),
        "holdout": _holdout(policy.holdout),
    }


def _holdout(value: Any) -> float:
    share = _number(value, "holdout", 0.0, 1.0)
    if not 0.0 < share <= 0.5:
        raise InvalidInput("holdout must be in (0, 0.5]", field="holdout")
    return float(share)


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    import json

    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"pipeline_params must be JSON-able: {exc}", field="pipeline_params"
        ) from exc
    return result


_TRIGGERS: dict[str, Callable[..., Any]] = {
    "cron": Cron,
    "new_data": NewData,
    "drift": Drift,
    "degradation": Degradation,
    "manual": Manual,
}
_WINDOWS: dict[str, Callable[..., Any]] = {
    "fixed": FixedWindow,
    "growing": GrowingWindow,
    "sample": RepresentativeSample,
}
_ROLLOUTS: dict[str, Callable[..., Any]] = {"direct": Direct, "canary": Canary}


def _build(kinds: Mapping[str, Callable[..., Any]], data: Mapping[str, Any]) -> Any:
    values = {k: v for k, v in data.items() if k != "type"}
    return kinds[str(data["type"])](**values)


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Rebuild a :class:`Policy` from :func:`policy_to_dict` output (pipeline as a reference)."""
    gate = None
    if data.get("gate") is not None:
        from loopml.training import Gate

        gate = Gate(**data["gate"])
    return Policy(
        name=data["name"],
        model=data["model"],
        pipeline=data["pipeline"],
        data=data["data"],
        timestamp=data["timestamp"],
        label=data["label"],
        include_logged=data["include_logged"],
        triggers=[_build(_TRIGGERS, t) for t in data["triggers"]],
        window=_build(_WINDOWS, data["window"]),
        gate=gate,
        rollout=_build(_ROLLOUTS, data["rollout"]),
        alias=data["alias"],
        cooldown=data["cooldown"],
        max_retrains_per_day=data["max_retrains_per_day"],
        pipeline_params=dict(data.get("pipeline_params") or {}),
        holdout=float(data.get("holdout", 0.2)),
    )
