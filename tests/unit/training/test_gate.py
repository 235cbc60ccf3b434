"""lm.training.Gate on crafted evaluations, and the infrastructure check in a subprocess."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from loopml.errors import InvalidInput
from loopml.training import (
    EvaluationResult,
    Gate,
    GateResult,
    InfraCheckResult,
    SliceResult,
    infra_check_in_subprocess,
)
from loopml.training import gate as gate_module
from loopml.training.gate import GateInputs, register_gate_resolver

INFRA_OK = InfraCheckResult(loaded=True, predict_ok=True, latency_ms=2.0)


def evaluation(
    f1: float = 0.86,
    *,
    accuracy: float = 0.9,
    eu_f1: float = 0.85,
    baseline_f1: float = 0.0,
    p50: float | None = 1.5,
    small_us: bool = False,
) -> EvaluationResult:
    return EvaluationResult(
        task="classification",
        metrics={"accuracy": accuracy, "f1": f1, "roc_auc": 0.93, "log_loss": 0.3},
        slices={
            "region=EU": SliceResult(n=120, metrics={"f1": eu_f1, "accuracy": 0.9}, small=False),
            "region=US": SliceResult(n=12, metrics={"f1": 0.5, "accuracy": 0.6}, small=small_us),
        },
        baseline_metrics={"accuracy": 0.6, "f1": baseline_f1, "roc_auc": 0.5, "log_loss": 0.67},
        single_row_p50_ms=p50,
        latency_ms_per_row=0.01,
    )


def by_check(result: GateResult, check: str) -> list[Any]:
    return [reason for reason in result.reasons if reason.check == check]


def test_a_good_candidate_passes_every_check() -> None:
    gate = Gate(
        thresholds={"f1": 0.8, "log_loss": 0.5},
        min_improvement={"f1": 0.02},
        slice_tolerance={"f1": 0.05},
        latency_budget_ms=10.0,
    )
    result = gate.check(evaluation(0.86), champion=evaluation(0.82, eu_f1=0.84), infra=INFRA_OK)
    assert result.passed, result.summary()
    assert result.failures == []
    checks = [reason.check for reason in result.reasons]
    assert checks.count("threshold") == 2
    assert {"improvement", "baseline", "slice", "latency", "infra"} <= set(checks)
    assert by_check(result, "threshold")[0].message == "threshold f1 >= 0.8: 0.86"
    assert by_check(result, "threshold")[1].message == "threshold log_loss <= 0.5: 0.3"
    assert gate.result_ is result
    assert result.gate["thresholds"] == {"f1": 0.8, "log_loss": 0.5}
    assert result.summary().startswith("PASSED")


def test_fails_a_threshold_and_says_which() -> None:
    result = Gate(thresholds={"f1": 0.9}, require_infra_check=False).check(evaluation(0.86))
    assert not result.passed
    (failure,) = result.failures
    assert failure.check == "threshold"
    assert failure.message == "threshold f1 >= 0.9: 0.86"
    assert failure.details["value"] == 0.86
    assert result.summary().splitlines() == [
        "FAILED: 3 of 4 checks passed",
        "  ✗ threshold f1 >= 0.9: 0.86",
        "  - no champion: improvement check skipped",
        "  ✓ baseline f1: 0.86 beats the baseline's 0",
        "  - infra check not required: skipped",
    ]


def test_fails_improvement_over_the_champion() -> None:
    gate = Gate(min_improvement={"f1": 0.02}, require_infra_check=False)
    result = gate.check(evaluation(0.86), champion=evaluation(0.85))
    (failure,) = result.failures
    assert failure.check == "improvement"
    assert "+0.01 < required 0.02" in failure.message
    assert failure.details["gain"] == pytest.approx(0.01)


def test_lower_is_better_metrics_improve_downwards() -> None:
    gate = Gate(min_improvement={"log_loss": 0.05}, require_infra_check=False)
    better = evaluation()
    worse = EvaluationResult.from_dict({**better.to_dict(), "metrics": {"log_loss": 0.4}})
    assert gate.check(better, champion=worse).passed
    assert not gate.check(worse, champion=better).passed


def test_first_model_without_champion_passes_with_the_reason() -> None:
    gate = Gate(thresholds={"f1": 0.8}, min_improvement={"f1": 0.02}, slice_tolerance={"f1": 0.05})
    result = gate.check(evaluation(), infra=INFRA_OK)
    assert result.passed
    (reason,) = by_check(result, "champion")
    assert reason.message.startswith("no champion")
    assert reason.details["skipped"] is True
    assert by_check(result, "improvement") == [] and by_check(result, "slice") == []


def test_fails_when_not_better_than_the_baseline() -> None:
    weak = evaluation(0.3, baseline_f1=0.3)
    result = Gate(require_infra_check=False).check(weak)
    (failure,) = result.failures
    assert failure.check == "baseline"
    assert "does not beat the baseline's 0.3" in failure.message
    assert Gate(beat_baseline=False, require_infra_check=False).check(weak).passed


def test_baseline_compared_on_the_metrics_the_gate_names() -> None:
    candidate = evaluation(0.1, accuracy=0.9)  # f1 below its baseline, accuracy above
    result = Gate(thresholds={"accuracy": 0.8}, require_infra_check=False).check(
        EvaluationResult.from_dict(
            {**candidate.to_dict(), "baseline_metrics": {"f1": 0.2, "accuracy": 0.6}}
        )
    )
    assert [r.details["metric"] for r in by_check(result, "baseline")] == ["accuracy"]
    assert result.passed


def test_fails_a_slice_regression_within_an_overall_improvement() -> None:
    gate = Gate(
        min_improvement={"f1": 0.01}, slice_tolerance={"f1": 0.05}, require_infra_check=False
    )
    champion = evaluation(0.82, eu_f1=0.88)
    candidate = evaluation(0.86, eu_f1=0.81)
    result = gate.check(candidate, champion=champion)
    assert not result.passed
    assert [r.check for r in result.failures] == ["slice"]
    (failure,) = result.failures
    assert failure.message == "slice region=EU f1 dropped 0.07 > tolerance 0.05"
    assert failure.details["drop"] == pytest.approx(0.07)
    assert by_check(result, "improvement")[0].passed
    slack = Gate(slice_tolerance={"f1": 0.08}, require_infra_check=False)
    assert slack.check(candidate, champion=champion).passed


def test_small_and_unmatched_slices_are_skipped_and_listed() -> None:
    gate = Gate(slice_tolerance={"f1": 0.01}, require_infra_check=False)
    champion = evaluation(small_us=True)
    candidate = EvaluationResult.from_dict(
        {
            **evaluation().to_dict(),
            "slices": {
                **evaluation().to_dict()["slices"],
                "age>60": {"n": 40, "metrics": {"f1": 0.1}, "small": False},
            },
        }
    )
    result = gate.check(candidate, champion=champion)
    assert result.passed
    messages = [r.message for r in by_check(result, "slice")]
    assert any("region=US: skipped, n=12" in m for m in messages)
    assert any("age>60: not evaluated on the champion" in m for m in messages)


def test_fails_latency() -> None:
    gate = Gate(latency_budget_ms=1.0)
    result = gate.check(evaluation(p50=1.5), infra=INFRA_OK)
    failures = result.failures
    assert [f.check for f in failures] == ["latency", "infra"]
    assert failures[0].message == "latency single-row p50 1.5 ms > budget 1 ms"
    assert "predict took 2 ms > budget 1 ms" in failures[1].message
    assert Gate(latency_budget_ms=5.0).check(evaluation(p50=1.5), infra=INFRA_OK).passed


def test_missing_metric_is_invalid_input_naming_it() -> None:
    with pytest.raises(InvalidInput) as error:
        Gate(thresholds={"rmse": 5.0}).check(evaluation())
    assert error.value.field == "rmse"
    assert "candidate" in error.value.message
    bare = EvaluationResult(task="classification", metrics={"f1": 0.9})
    with pytest.raises(InvalidInput) as champion_lacks:
        Gate(min_improvement={"roc_auc": 0.0}).check(evaluation(), champion=bare)
    assert champion_lacks.value.field == "roc_auc"
    assert "champion" in champion_lacks.value.message


def test_a_model_without_metrics_is_a_clear_error() -> None:
    empty = EvaluationResult(task="classification", metrics={})
    with pytest.raises(InvalidInput) as no_baseline:
        Gate().check(empty)
    assert no_baseline.value.field == "baseline_metrics"
    with pytest.raises(InvalidInput) as no_f1:
        Gate(thresholds={"f1": 0.5}, beat_baseline=False).check(empty)
    assert no_f1.value.field == "f1"
    with pytest.raises(InvalidInput, match="EvaluationResult"):
        Gate().check(object())
    with pytest.raises(InvalidInput, match="latency"):
        Gate(latency_budget_ms=5.0, beat_baseline=False).check(evaluation(p50=None))


def test_bad_gate_parameters() -> None:
    with pytest.raises(InvalidInput) as unknown:
        Gate(thresholds={"fun": 1.0}).check(evaluation())
    assert unknown.value.field == "fun"
    with pytest.raises(InvalidInput):
        Gate(slice_tolerance={"f1": -0.1}).check(evaluation())
    with pytest.raises(InvalidInput):
        Gate(latency_budget_ms=0).check(evaluation())
    regression = EvaluationResult(task="regression", metrics={"rmse": 1.0})
    with pytest.raises(InvalidInput) as mixed:
        Gate().check(evaluation(), champion=regression)
    assert mixed.value.field == "champion"


@pytest.mark.parametrize(
    ("infra", "needle"),
    [
        (None, "infra check required but not run"),
        (InfraCheckResult(loaded=False, predict_ok=False, error="NotFound: v3"), "did not load"),
        (InfraCheckResult(loaded=True, predict_ok=False, error="KeyError: 'x'"), "failed"),
    ],
)
def test_infra_failure_fails(infra: InfraCheckResult | None, needle: str) -> None:
    result = Gate().check(evaluation(), infra=infra)
    (failure,) = result.failures
    assert failure.check == "infra" and needle in failure.message


def test_gate_is_sklearn_style() -> None:
    gate = Gate(thresholds={"f1": 0.8})
    assert not hasattr(gate, "result_")
    assert gate.get_params()["thresholds"] == {"f1": 0.8}
    assert repr(gate) == "Gate(thresholds={'f1': 0.8})"
    assert gate.set_params(require_infra_check=False) is gate
    assert Gate(**gate.get_params()).check(evaluation()).passed


def test_result_round_trips_through_json() -> None:
    result = Gate(thresholds={"f1": 0.9}).check(evaluation(), infra=INFRA_OK)
    again = GateResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.summary() == result.summary()


def test_registered_resolver_supplies_champion_infra_and_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "_resolvers", [])

    class Version:
        pass

    stored: list[GateResult] = []

    def resolve(candidate: Any, gate: Gate) -> GateInputs:
        assert isinstance(candidate, Version) and gate.require_infra_check
        return GateInputs(evaluation(0.86), evaluation(0.8), INFRA_OK, stored.append)

    register_gate_resolver(Version, resolve)
    result = Gate(min_improvement={"f1": 0.05}).check(Version())
    assert result.passed and stored == [result]
    assert by_check(result, "improvement")[0].details["champion"] == 0.8


def test_infra_check_in_subprocess_reads_the_report() -> None:
    code = (
        "import json, time\n"
        "start = time.perf_counter()\n"
        "print('loading...')\n"
        "result = sum(range(10))\n"
        "print(json.dumps({'loaded': True, 'predict_ok': result == 45,"
        " 'latency_ms': (time.perf_counter() - start) * 1000}))\n"
    )
    result = infra_check_in_subprocess(code, timeout_s=60)
    assert result.ok, result
    assert result.latency_ms is not None and result.latency_ms >= 0


def test_infra_check_in_subprocess_failures() -> None:
    crash = infra_check_in_subprocess("raise RuntimeError('no model file')", timeout_s=60)
    assert not crash.loaded and "no model file" in (crash.error or "")
    slow = infra_check_in_subprocess("import time; time.sleep(30)", timeout_s=0.5)
    assert not slow.ok and "timed out" in (slow.error or "")
    partial = infra_check_in_subprocess(
        "import json, sys; print(json.dumps({'loaded': True, 'predict_ok': True})); sys.exit(3)",
        timeout_s=60,
    )
    assert partial.loaded and not partial.ok and "exit code 3" in (partial.error or "")
    bad = infra_check_in_subprocess(
        'print(\'{"loaded": true, "predict_ok": true, "latency_ms": "fast"}\')', timeout_s=60
    )
    assert not bad.ok and "malformed" in (bad.error or "")
    with pytest.raises(InvalidInput):
        infra_check_in_subprocess("  ", timeout_s=1)


def test_infra_check_runs_this_interpreter() -> None:
    code = (
        "import json, sys; "
        "print(json.dumps({'loaded': True, 'predict_ok': True, 'error': sys.executable}))"
    )
    assert infra_check_in_subprocess(code, timeout_s=60).error == sys.executable
