"""Drift against reference sketches, quality metrics, latency and rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.monitoring.checks import (
    Rule,
    choose_from_sketch,
    distribution,
    drift_from_sketch,
    latency_percentiles,
    quality_metrics,
)
from loopml.monitoring.reference import (
    SAMPLE_SIZE,
    ReferenceSketch,
    build_sketch,
    sketch_column,
)
from loopml.stats import choose_method, column_drift


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check(reference: pd.Series, current: pd.Series, **options: object) -> object:
    return drift_from_sketch(sketch_column(reference, "x"), current, **options)  # type: ignore[arg-type]


CASES = {
    # name: (reference, resample of the same distribution, shifted sample, expected method)
    "numeric small": (
        pd.Series(_rng(1).normal(size=800)),
        pd.Series(_rng(2).normal(size=600)),
        pd.Series(_rng(3).normal(0.6, size=600)),
        "ks",
    ),
    "numeric large": (
        pd.Series(_rng(1).normal(10, 2, size=30_000)),
        pd.Series(_rng(2).normal(10, 2, size=5_000)),
        pd.Series(_rng(3).normal(11, 2, size=5_000)),
        "wasserstein",
    ),
    "categorical small": (
        pd.Series(_rng(1).choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2])),
        pd.Series(_rng(2).choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2])),
        pd.Series(_rng(3).choice(["a", "b", "c"], 600, p=[0.2, 0.3, 0.5])),
        "chisquare",
    ),
    "binary small": (
        pd.Series(_rng(1).choice([True, False], 500, p=[0.3, 0.7])),
        pd.Series(_rng(2).choice([True, False], 500, p=[0.3, 0.7])),
        pd.Series(_rng(3).choice([True, False], 500, p=[0.6, 0.4])),
        "z",
    ),
    "categorical large": (
        pd.Series(_rng(1).choice(["basic", "plus", "pro"], 20_000, p=[0.6, 0.3, 0.1])),
        pd.Series(_rng(2).choice(["basic", "plus", "pro"], 5_000, p=[0.6, 0.3, 0.1])),
        pd.Series(_rng(3).choice(["basic", "plus", "pro"], 5_000, p=[0.2, 0.3, 0.5])),
        "jensenshannon",
    ),
    "numeric few values large": (
        pd.Series(_rng(1).integers(0, 4, 20_000)),
        pd.Series(_rng(2).integers(0, 4, 5_000)),
        pd.Series(_rng(3).choice([0, 1, 2, 3], 5_000, p=[0.1, 0.1, 0.1, 0.7])),
        "jensenshannon",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shift_is_detected_and_a_resample_is_not(case: str) -> None:
    reference, resample, shifted, method = CASES[case]
    sketch = sketch_column(reference, "x")
    same = drift_from_sketch(sketch, resample)
    moved = drift_from_sketch(sketch, shifted)
    assert same.method == moved.method == method
    assert not same.drifted, same
    assert moved.drifted, moved
    assert moved.reference_size == reference.notna().sum()
    assert moved.current_size == len(shifted)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sketch_verdicts_match_the_stats_on_raw_data(case: str) -> None:
    reference, resample, shifted, _ = CASES[case]
    for current in (resample, shifted):
        raw = column_drift(reference, current, column="x")
        sketched = _check(reference, current)
        assert sketched.method == raw.method  # type: ignore[attr-defined]
        assert sketched.drifted == raw.drifted  # type: ignore[attr-defined]
        if raw.method == "wasserstein":
            # The reference side is a fixed-seed sample of SAMPLE_SIZE values.
            assert sketched.statistic == pytest.approx(raw.statistic, abs=0.03)  # type: ignore[attr-defined]
        else:
            assert sketched.statistic == pytest.approx(raw.statistic)  # type: ignore[attr-defined]
            assert sketched.p_value == pytest.approx(raw.p_value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", sorted(CASES))
def test_choice_from_a_sketch_agrees_with_choose_method(case: str) -> None:
    reference, resample, _, _ = CASES[case]
    sketch = sketch_column(reference, "x")
    values = set(sketch.value_counts()) if sketch.values or sketch.kind == "categorical" else set()
    distinct = len(values | set(resample.tolist())) if values else 6
    assert choose_from_sketch(sketch, distinct) == choose_method(reference, resample)


def test_sketch_is_bounded_and_reproducible() -> None:
    values = pd.Series(_rng(5).normal(size=50_000))
    first, second = sketch_column(values, "x"), sketch_column(values, "x")
    assert len(first.sample) == SAMPLE_SIZE and first.sample == second.sample
    assert first.values is None and sum(first.counts) == 50_000 and len(first.edges) == 21
    small = sketch_column(pd.Series([1.0, 2.0, None, np.inf]), "y")
    assert small.count == 2 and small.missing == 2 and small.values == [[1.0, 1], [2.0, 1]]


def test_reference_sketch_round_trips_through_json() -> None:
    frame = pd.DataFrame(
        {"x": _rng(0).normal(size=300), "plan": _rng(1).choice(["a", "b"], 300), "d": None}
    )
    sketch = build_sketch(frame, ["x", "plan", "d", "absent"], reference="churn@v1")
    assert set(sketch.columns) == {"x", "plan"}
    assert set(sketch.skipped) == {"d", "absent"}
    again = ReferenceSketch.from_dict(sketch.to_dict())
    assert again == sketch


def test_categories_beyond_the_kept_ones_are_lumped(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.monitoring import reference

    monkeypatch.setattr(reference, "MAX_CATEGORIES", 3)
    ref = pd.Series([f"c{i % 6}" for i in range(600)])
    sketch = reference.sketch_column(ref, "city")
    assert len(sketch.categories) == 3 and sketch.other == 300
    assert not drift_from_sketch(sketch, ref.sample(300, random_state=1)).drifted
    assert drift_from_sketch(sketch, pd.Series(["new"] * 300)).drifted


def test_unusable_windows_raise_invalid_input() -> None:
    sketch = sketch_column(pd.Series(_rng(0).normal(size=100)), "x")
    with pytest.raises(InvalidInput, match="not numeric"):
        drift_from_sketch(sketch, pd.Series(["a", "b"]))
    with pytest.raises(InvalidInput, match="no non-null"):
        drift_from_sketch(sketch, pd.Series([None, np.nan], dtype=float))
    with pytest.raises(InvalidInput, match="unknown drift method"):
        drift_from_sketch(sketch, pd.Series([1.0]), method="magic")
    category = sketch_column(pd.Series(["a", "b"] * 50), "plan")
    with pytest.raises(InvalidInput, match="categorical"):
        drift_from_sketch(category, pd.Series(["a"]), method="ks")


def test_thresholds_and_methods_can_be_overridden() -> None:
    reference, _, shifted, _ = CASES["numeric small"]
    strict = _check(reference, shifted, thresholds={"ks": 1e-30})
    assert strict.method == "ks" and strict.threshold == 1e-30 and not strict.drifted  # type: ignore[attr-defined]
    psi = _check(reference, shifted, method="psi")
    assert psi.method == "psi" and psi.drifted  # type: ignore[attr-defined]


def test_distribution_shares() -> None:
    sketch = sketch_column(pd.Series(np.arange(100, dtype=float)), "x")
    shares = distribution(sketch, pd.Series([-5.0, 50.0, 500.0]))
    assert shares["kind"] == "numeric" and len(shares["edges"]) == len(shares["current"]) + 1
    assert shares["current"][0] == pytest.approx(1 / 3) and shares["current"][-1] == pytest.approx(
        1 / 3
    )
    cats = distribution(sketch_column(pd.Series(["a", "a", "b"]), "c"), pd.Series(["b", "z"]))
    assert cats["categories"] == ["a", "b", "z"] and cats["current"] == [0.0, 0.5, 0.5]


def test_classification_quality() -> None:
    predictions = pd.Series([1, 1, 0, 0, 1, 0])
    labels = pd.Series(["1", "0", "0", "0", "1", "1"])  # labels arrive as text: still compared
    probability = pd.Series([0.9, 0.6, 0.8, 0.7, 0.95, 0.55])
    metrics = quality_metrics("classification", predictions, labels, probability=probability)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert 0.5 < metrics["roc_auc"] <= 1.0
    multi = quality_metrics(
        "classification", pd.Series(["a", "b", "c"]), pd.Series(["a", "b", "b"])
    )
    assert set(multi) == {"accuracy", "f1"}  # no ROC AUC without binary probabilities
    assert (
        quality_metrics("classification", pd.Series([], dtype=int), pd.Series([], dtype=int)) == {}
    )


def test_regression_quality() -> None:
    metrics = quality_metrics(
        "regression",
        pd.Series([1.0, 2.0, 4.0]),
        pd.Series([1.0, 3.0, 2.0]),
        metrics=["rmse", "mae", "r2"],
    )
    assert metrics["mae"] == pytest.approx(1.0)
    assert metrics["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert "r2" in metrics
    with pytest.raises(InvalidInput, match="unknown quality metrics"):
        quality_metrics("regression", pd.Series([1.0]), pd.Series([1.0]), metrics=["bleu"])


def test_latency_is_per_request() -> None:
    frame = pd.DataFrame(
        {"request_id": ["a", "a", "a", "b", "c"], "latency_ms": [100.0, 100.0, 100.0, 10.0, 20.0]}
    )
    latency = latency_percentiles(frame)
    assert latency["p50"] == pytest.approx(20.0)
    assert set(latency) == {"p50", "p95", "p99"}
    assert latency_percentiles(frame.iloc[:0]) == {}


def test_rules() -> None:
    assert Rule.parse("drift_share > 0.3") == Rule("drift_share", ">", 0.3)
    assert Rule("drift_share", ">", 0.3).name == "drift_share > 0.3"
    assert Rule("drift_share", ">", 0.3).evaluate({"drift_share": 0.3}).verdict == "ok"
    drop = Rule("f1", "drop", 0.05)
    firing = drop.evaluate({"f1": 0.7}, {"f1": 0.9})
    assert firing.verdict == "alert" and firing.baseline == 0.9 and "dropped" in firing.message
    assert drop.evaluate({}, {"f1": 0.9}).verdict == "skipped"
    no_baseline = drop.evaluate({"f1": 0.7})
    assert no_baseline.verdict == "skipped" and "baseline" in no_baseline.message
    assert Rule("rmse", "rise", 1.0, baseline=2.0).evaluate({"rmse": 3.5}).verdict == "alert"
    assert Rule.from_dict(Rule("f1", "drop", 0.05).to_dict()) == drop
    for bad in ("f1 falls 0.1", "f1 drop", "f1 drop x"):
        with pytest.raises(InvalidInput):
            Rule.parse(bad)
    with pytest.raises(InvalidInput, match="finite"):
        Rule("f1", ">", math.nan)
