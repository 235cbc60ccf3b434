"""The validation gate: decide whether a candidate model may replace the champion.

A :class:`Gate` checks a candidate's :class:`~loopml.training.EvaluationResult` against
absolute thresholds, a minimum improvement over the champion's evaluation, the naive baseline
evaluated next to it, per-slice non-regression tolerances, a latency budget and an
infrastructure check (the stored model loads in a fresh process and predicts). The result
lists every check with its verdict; ``passed`` is true only when all of them passed.

Examples
--------
>>> from loopml.training import EvaluationResult, Gate
>>> candidate = EvaluationResult(
...     task="classification", metrics={"f1": 0.86}, baseline_metrics={"f1": 0.0}
... )
>>> gate = Gate(thresholds={"f1": 0.8}, min_improvement={"f1": 0.01}, require_infra_check=False)
>>> result = gate.check(candidate)
>>> result.passed
True
>>> print(result.summary())
PASSED: 4 of 4 checks passed
  ✓ threshold f1 >= 0.8: 0.86
  - no champion: improvement check skipped
  ✓ baseline f1: 0.86 beats the baseline's 0
  - infra check not required: skipped
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.errors import InvalidInput
from loopml.training import _checks
from loopml.training._checks import GateReason
from loopml.training._scoring import HIGHER_IS_BETTER, LOWER_IS_BETTER, higher_is_better
from loopml.training.evaluation import EvaluationResult
from loopml.training.infra import InfraCheckResult, infra_check_in_subprocess

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "Gate",
    "GateInputs",
    "GateReason",
    "GateResult",
    "InfraCheckResult",
    "higher_is_better",
    "infra_check_in_subprocess",
    "register_gate_resolver",
]

_MARK = {True: "✓", False: "✗"}


@dataclass(frozen=True)
class GateResult:
    """A gate's decision: ``passed`` and every check behind it, passed or not."""

    passed: bool
    reasons: list[GateReason]
    gate: dict[str, Any] = field(default_factory=dict)
    checked_at: int = 0

    @property
    def failures(self) -> list[GateReason]:
        """The checks that failed."""
        return [reason for reason in self.reasons if not reason.passed]

    def summary(self) -> str:
        """A verdict line, then one line per check."""
        count = sum(reason.passed for reason in self.reasons)
        head = f"{'PASSED' if self.passed else 'FAILED'}: {count} of {len(self.reasons)} checks"
        lines = [f"{head} passed"]
        for r in self.reasons:
            lines.append(f"  {'-' if r.details.get('skipped') else _MARK[r.passed]} {r.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what is stored with the model version)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Rebuild a decision from :meth:`to_dict` output."""
        if not isinstance(data.get("passed"), bool) or not isinstance(data.get("reasons"), list):
            raise InvalidInput("not a gate result: it needs passed and reasons", field="gate")
        try:
            reasons = [
                GateReason(str(r["check"]), bool(r["passed"]), str(r["message"]), r["details"])
                for r in data["reasons"]
            ]
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"not a gate result: bad reason ({exc})", field="gate") from exc
        gate = dict(data.get("gate") or {})
        return cls(data["passed"], reasons, gate, int(data.get("checked_at") or 0))


@dataclass(frozen=True)
class GateInputs:
    """What a registered resolver supplies for a candidate that is not an evaluation."""

    candidate: EvaluationResult
    champion: EvaluationResult | None = None
    infra: InfraCheckResult | None = None
    record: Callable[[GateResult], None] | None = None


GateResolver = Callable[[Any, "Gate"], GateInputs]
_resolvers: list[tuple[type, GateResolver]] = []


def register_gate_resolver(candidate_type: type, resolver: GateResolver) -> None:
    """Let :meth:`Gate.check` accept ``candidate_type`` instances (e.g. model versions).

    ``resolver(candidate, gate)`` returns the candidate's stored evaluation, the current
    champion's (None for the first model), the infrastructure check (run when
    ``gate.require_infra_check``) and a ``record`` callback that stores the decision.
    """
    _resolvers.append((candidate_type, resolver))


def _check_mapping(value: Any, name: str, non_negative: bool = False) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name} must map metric names to numbers", field=name)
    checked: dict[str, float] = {}
    for metric, number in value.items():
        higher_is_better(metric)
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise InvalidInput(f"{name}[{metric!r}] must be a number", field=metric)
        if not math.isfinite(number):
            raise InvalidInput(f"{name}[{metric!r}] must be finite", field=metric)
        if non_negative and number < 0:
            raise InvalidInput(f"{name}[{metric!r}] must be >= 0", field=metric)
        checked[metric] = float(number)
    return checked


class Gate:
    """A validation gate in scikit-learn style: parameters in, :meth:`check` decides.

    Parameters
    ----------
    thresholds : dict, optional
        Absolute bounds, e.g. ``{"f1": 0.8, "rmse": 5.0}``: at least the value for metrics
        where higher is better, at most it for the others (log loss, errors, latencies).
    min_improvement : dict, optional
        Required gain over the champion, in the metric's units (negative values tolerate a
        small loss). Skipped, and said so, when there is no champion.
    beat_baseline : bool, default True
        The candidate must be strictly better than its evaluation's naive baseline on every
        metric named in the other checks, or on ``f1`` / ``rmse`` when none is named.
    slice_tolerance : dict, optional
        Largest allowed loss per slice against the champion, e.g. ``{"f1": 0.05}``. Slices
        flagged small in either evaluation are skipped, and said so.
    latency_budget_ms : float, optional
        Bound on the single-row p50 latency of the evaluation and on the infrastructure
        check's predict latency.
    require_infra_check : bool, default True
        Fail unless an infrastructure check ran and succeeded.

    Attributes
    ----------
    result_ : GateResult
        The last decision of :meth:`check`.
    """

    def __init__(
        self,
        *,
        thresholds: dict[str, float] | None = None,
        min_improvement: dict[str, float] | None = None,
        beat_baseline: bool = True,
        slice_tolerance: dict[str, float] | None = None,
        latency_budget_ms: float | None = None,
        require_infra_check: bool = True,
    ) -> None:
        self.thresholds = thresholds
        self.min_improvement = min_improvement
        self.beat_baseline = beat_baseline
        self.slice_tolerance = slice_tolerance
        self.latency_budget_ms = latency_budget_ms
        self.require_infra_check = require_infra_check

    _PARAMS = (
        "thresholds",
        "min_improvement",
        "beat_baseline",
        "slice_tolerance",
        "latency_budget_ms",
        "require_infra_check",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (copies of the dicts)."""
        params = {name: getattr(self, name) for name in self._PARAMS}
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in params.items()}

    def set_params(self, **params: Any) -> Gate:
        """Change parameters; return ``self``."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise InvalidInput(f"Gate has no parameter {name!r}", field=name)
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = Gate().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"Gate({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def check(
        self,
        candidate: Any,
        champion: EvaluationResult | None = None,
        infra: InfraCheckResult | None = None,
    ) -> GateResult:
        """Run every check on ``candidate`` and return the decision with all its reasons.

        Parameters
        ----------
        candidate : EvaluationResult, or an object a resolver was registered for
            The evaluation of the model under review.
        champion : EvaluationResult, optional
            The current champion's evaluation on comparable data; None for the first model.
        infra : InfraCheckResult, optional
            The infrastructure check of the stored candidate.

        Raises
        ------
        InvalidInput
            When a metric a check names is missing from the candidate or the champion
            (``field`` is the metric), when ``beat_baseline`` is set and the candidate has
            no baseline metrics, or when the tasks of candidate and champion differ.
        """
        record = None
        if not isinstance(candidate, EvaluationResult):
            inputs = self._resolve(candidate)
            candidate, record = inputs.candidate, inputs.record
            champion = champion if champion is not None else inputs.champion
            infra = infra if infra is not None else inputs.infra
        if champion is not None and not isinstance(champion, EvaluationResult):
            raise InvalidInput("champion must be an EvaluationResult", field="champion")
        if champion is not None and champion.task != candidate.task:
            raise InvalidInput(
                f"the candidate is a {candidate.task} model, the champion a {champion.task} one",
                field="champion",
            )
        thresholds = _check_mapping(self.thresholds, "thresholds")
        improvement = _check_mapping(self.min_improvement, "min_improvement")
        tolerance = _check_mapping(self.slice_tolerance, "slice_tolerance", non_negative=True)
        budget = self.latency_budget_ms
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not budget > 0
        ):
            raise InvalidInput(
                "latency_budget_ms must be a positive number", field="latency_budget_ms"
            )
        reasons = [_checks.threshold(candidate, m, bound) for m, bound in thresholds.items()]
        if champion is None:
            skipped = "improvement and slice checks" if tolerance else "improvement check"
            reasons.append(_checks.skip("champion", f"no champion: {skipped} skipped"))
        else:
            reasons += [
                _checks.improvement(candidate, champion, m, d) for m, d in improvement.items()
            ]
        if self.beat_baseline:
            named = [*thresholds, *improvement, *tolerance]
            reasons += _checks.baseline(candidate, named)
        if champion is not None and tolerance:
            reasons += _checks.slices(candidate, champion, tolerance)
        if budget is not None:
            reasons += _checks.latency(candidate, float(budget), infra)
        reasons.append(
            _checks.infra_reason(
                infra, None if budget is None else float(budget), self.require_infra_check
            )
        )
        result = GateResult(
            passed=all(reason.passed for reason in reasons),
            reasons=reasons,
            gate=self.get_params(),
            checked_at=int(time.time() * 1000),
        )
        self.result_ = result
        if record is not None:
            record(result)
        return result

    def _resolve(self, candidate: Any) -> GateInputs:
        for candidate_type, resolver in reversed(_resolvers):
            if isinstance(candidate, candidate_type):
                return resolver(candidate, self)
        raise InvalidInput(
            f"Gate.check takes an EvaluationResult, got {type(candidate).__name__}; evaluate "
            "the model first (lm.evaluate) or pass a registered model version",
            field="candidate",
        )
