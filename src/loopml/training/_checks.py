"""The gate's individual checks; each returns the reasons it found, passed or not.

Private to :mod:`loopml.training`: :class:`~loopml.training.Gate` composes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInput
from loopml.training._scoring import HIGHER_IS_BETTER, LOWER_IS_BETTER, higher_is_better
from loopml.training.evaluation import EvaluationResult
from loopml.training.infra import InfraCheckResult

_PRIMARY = {"classification": "f1", "regression": "rmse"}
_EPS = 1e-12


@dataclass(frozen=True)
class GateReason:
    """One check of a gate: its kind, verdict, a readable sentence and the numbers."""

    check: str
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _reason(check: str, ok: bool, message: str, details: dict[str, Any]) -> GateReason:
    return GateReason(check, ok, message, details)


def skip(check: str, message: str, details: dict[str, Any] | None = None) -> GateReason:
    """A check that did not apply: it passes, and its details say ``skipped``."""
    return GateReason(check, True, message, {**(details or {}), "skipped": True})


def _value(result: EvaluationResult, metric: str, who: str, slice: str | None = None) -> float:
    try:
        return result.metric(metric, slice)
    except InvalidInput as exc:
        raise InvalidInput(f"{who}: {exc.message}", field=exc.field) from exc


def threshold(candidate: EvaluationResult, metric: str, bound: float) -> GateReason:
    value = _value(candidate, metric, "candidate")
    higher = higher_is_better(metric)
    ok = value >= bound - _EPS if higher else value <= bound + _EPS
    op = ">=" if higher else "<="
    return _reason(
        "threshold",
        ok,
        f"threshold {metric} {op} {bound:g}: {value:.4g}",
        {"metric": metric, "value": value, "threshold": bound, "higher_is_better": higher},
    )


def improvement(
    candidate: EvaluationResult, champion: EvaluationResult, metric: str, required: float
) -> GateReason:
    new = _value(candidate, metric, "candidate")
    old = _value(champion, metric, "champion")
    gain = new - old if higher_is_better(metric) else old - new
    ok = gain >= required - _EPS
    verdict = f">= {required:g}" if ok else f"< required {required:g}"
    return _reason(
        "improvement",
        ok,
        f"improvement {metric} over champion: {gain:+.4g} {verdict} ({old:.4g} -> {new:.4g})",
        {"metric": metric, "candidate": new, "champion": old, "gain": gain},
    )


def baseline(candidate: EvaluationResult, named: list[str]) -> list[GateReason]:
    base = candidate.baseline_metrics
    if not base:
        raise InvalidInput(
            "the candidate's evaluation has no baseline metrics: evaluate it with "
            "baseline='auto' (or a baseline model), or use Gate(beat_baseline=False)",
            field="baseline_metrics",
        )
    metrics = list(dict.fromkeys(m for m in named if m in base))
    if not metrics:
        known = HIGHER_IS_BETTER | LOWER_IS_BETTER
        primary = _PRIMARY[candidate.task]
        metrics = [primary] if primary in base else sorted(m for m in base if m in known)[:1]
    reasons = []
    for metric in metrics:
        new, old = _value(candidate, metric, "candidate"), base[metric]
        ok = new > old if higher_is_better(metric) else new < old
        verdict = "beats" if ok else "does not beat"
        message = f"baseline {metric}: {new:.4g} {verdict} the baseline's {old:.4g}"
        details = {"metric": metric, "candidate": new, "baseline": old}
        reasons.append(_reason("baseline", ok, message, details))
    return reasons


def slices(
    candidate: EvaluationResult, champion: EvaluationResult, tolerance: dict[str, float]
) -> list[GateReason]:
    reasons = []
    for name in [*candidate.slices, *(s for s in champion.slices if s not in candidate.slices)]:
        new, old = candidate.slices.get(name), champion.slices.get(name)
        if new is None or old is None:
            side = "candidate" if new is None else "champion"
            message = f"slice {name}: not evaluated on the {side}, skipped"
            reasons.append(skip("slice", message, {"slice": name}))
            continue
        if new["small"] or old["small"]:
            message = f"slice {name}: skipped, n={new['n']} is below the minimum slice size"
            reasons.append(skip("slice", message, {"slice": name, "n": new["n"]}))
            continue
        for metric, allowed in tolerance.items():
            reasons.append(_slice_reason(name, metric, allowed, new["metrics"], old["metrics"]))
    return reasons


def latency(
    candidate: EvaluationResult, budget: float, infra: InfraCheckResult | None
) -> list[GateReason]:
    p50 = candidate.single_row_p50_ms
    if p50 is None:
        if infra is None:
            raise InvalidInput(
                "latency_budget_ms needs a latency: evaluate with latency_rows > 0 or "
                "pass an infrastructure check",
                field="single_row_p50_ms",
            )
        return []
    ok = p50 <= budget
    op = "<=" if ok else ">"
    return [
        _reason(
            "latency",
            ok,
            f"latency single-row p50 {p50:.3g} ms {op} budget {budget:g} ms",
            {"single_row_p50_ms": p50, "budget_ms": budget},
        )
    ]


def infra_reason(
    infra: InfraCheckResult | None, budget: float | None, required: bool
) -> GateReason:
    if infra is None:
        if required:
            message = (
                "infra check required but not run: pass infra= (the registry runs it for "
                "stored versions) or use Gate(require_infra_check=False)"
            )
            return _reason("infra", False, message, {})
        return skip("infra", "infra check not required: skipped")
    details = infra.to_dict()
    if not infra.loaded:
        return _reason("infra", False, f"infra: the model did not load: {infra.error}", details)
    if not infra.ok:
        message = f"infra: predicting on the input example failed: {infra.error}"
        return _reason("infra", False, message, details)
    latency = infra.latency_ms
    if budget is not None and latency is not None and latency > budget:
        message = f"infra: predict took {latency:.3g} ms > budget {budget:g} ms"
        return _reason("infra", False, message, details)
    took = "" if latency is None else f" in {latency:.3g} ms"
    message = f"infra: loaded in a fresh process and predicted{took}"
    return _reason("infra", True, message, details)


def _slice_reason(
    name: str, metric: str, allowed: float, new: dict[str, float], old: dict[str, float]
) -> GateReason:
    if metric not in new or metric not in old:
        message = f"slice {name} {metric}: not measured on both models, skipped"
        return skip("slice", message, {"slice": name, "metric": metric})
    drop = old[metric] - new[metric] if higher_is_better(metric) else new[metric] - old[metric]
    ok = drop <= allowed + _EPS
    details = {
        "slice": name,
        "metric": metric,
        "candidate": new[metric],
        "champion": old[metric],
        "drop": drop,
        "tolerance": allowed,
    }
    if ok:
        message = f"slice {name} {metric} change {-drop:+.4g} within tolerance {allowed:g}"
    else:
        message = f"slice {name} {metric} dropped {drop:.4g} > tolerance {allowed:g}"
    return _reason("slice", ok, message, details)
