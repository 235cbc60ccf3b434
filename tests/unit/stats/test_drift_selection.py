"""Test selection (Evidently's default rule), column and dataset drift, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput
from loopml.stats import (
    ColumnDrift,
    DatasetDrift,
    choose_method,
    column_drift,
    dataset_drift,
    ks_test,
    wasserstein,
)

RNG_SEED = 42


def rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(RNG_SEED + offset)


# -- choose_method ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "kind", "expected"),
    [
        (rng().normal(size=1000), None, "ks"),
        (rng().normal(size=1001), None, "wasserstein"),
        (rng().integers(0, 100, size=500), None, "ks"),
        (rng().integers(0, 5, size=500), None, "chisquare"),  # 5 values: categorical rule
        (rng().integers(0, 2, size=500), None, "z"),
        (rng().integers(0, 4, size=5000).astype(float), None, "jensenshannon"),
        (rng().choice(["a", "b", "c"], size=1000), None, "chisquare"),
        (rng().choice(["a", "b"], size=1000), None, "z"),
        (rng().choice(["a", "b", "c"], size=1001), None, "jensenshannon"),
        (rng().random(2000) < 0.5, None, "jensenshannon"),
        (rng().random(200) < 0.5, None, "z"),
        (pd.Series(rng().choice(["x", "y", "z"], 50), dtype="category"), None, "chisquare"),
        (rng().integers(0, 100, size=500), "categorical", "chisquare"),
    ],
)
def test_choose_method_follows_the_documented_rule(
    reference: np.ndarray, kind: str | None, expected: str
) -> None:
    assert choose_method(reference, reference, kind) == expected


def test_distinct_values_count_over_both_samples() -> None:
    reference = np.array([0.0, 1.0] * 200)
    assert choose_method(reference, reference) == "z"
    assert choose_method(reference, np.array([0.0, 1.0, 2.0] * 10)) == "chisquare"
    assert choose_method(reference, np.arange(10.0)) == "ks"  # now 10 distinct values


def test_reference_size_counts_non_null_values_only() -> None:
    reference = np.r_[rng().normal(size=900), [np.nan] * 500]
    assert choose_method(reference, reference) == "ks"


def test_choose_method_rejects_unknown_kinds_and_dtypes() -> None:
    with pytest.raises(InvalidInput, match="unknown kind"):
        choose_method([1.0], [1.0], "text")
    dates = pd.Series(pd.date_range("2024-01-01", periods=3))
    with pytest.raises(InvalidInput, match="neither numeric nor categorical"):
        choose_method(dates, dates)


# -- column_drift ----------------------------------------------------------------------


def test_column_drift_reports_the_chosen_test_and_sizes() -> None:
    reference = pd.Series(np.r_[rng(1).normal(size=800), [np.nan] * 10])
    current = pd.Series(rng(2).normal(0.5, size=700))
    result = column_drift(reference, current, column="age")
    direct = ks_test(reference, current)
    assert result == ColumnDrift(
        column="age",
        kind="numeric",
        method="ks",
        statistic=direct.statistic,
        p_value=direct.p_value,
        threshold=0.05,
        drifted=True,
        reference_size=800,
        current_size=700,
    )


def test_column_drift_accepts_a_method_and_threshold() -> None:
    reference, current = rng(1).normal(size=300), rng(2).normal(0.2, size=300)
    result = column_drift(reference, current, method="wasserstein", threshold=0.5)
    assert result.method == "wasserstein"
    assert result.threshold == 0.5
    assert result.statistic == wasserstein(reference, current).statistic
    assert not result.drifted


def test_numeric_methods_refuse_categorical_columns() -> None:
    with pytest.raises(InvalidInput, match="ks compares numeric samples") as info:
        column_drift(["a", "b"], ["a", "b"], column="colour", method="ks")
    assert info.value.field == "method"


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown drift method 'kolmogorov'"):
        column_drift([1.0, 2.0], [1.0, 2.0], method="kolmogorov")


def test_categorical_tests_run_on_low_cardinality_numbers() -> None:
    reference = rng(1).integers(0, 3, 5000)
    current = rng(2).choice([0, 1, 2], 5000, p=[0.6, 0.2, 0.2])
    result = column_drift(reference, current, column="grade")
    assert (result.kind, result.method, result.drifted) == ("numeric", "jensenshannon", True)
    assert column_drift(reference, current, method="chisquare").drifted


def test_column_errors_name_the_column() -> None:
    with pytest.raises(InvalidInput, match="column 'income': current has no non-null") as info:
        column_drift([1.0, 2.0], [np.nan], column="income")
    assert info.value.field == "income"


# -- dataset_drift ---------------------------------------------------------------------


def frame(seed: int, size: int, shift: float = 0.0, new_colour: bool = False) -> pd.DataFrame:
    gen = rng(seed)
    shares = [0.1, 0.1, 0.1, 0.7] if new_colour else [0.4, 0.3, 0.3, 0.0]
    return pd.DataFrame(
        {
            "income": gen.normal(50 + 10 * shift, 10, size),
            "age": gen.integers(18, 90, size),
            "colour": gen.choice(["red", "green", "blue", "amber"], size, p=shares),
            "member": gen.random(size) < 0.3,
            "kids": gen.integers(0, 3, size),
            "signup": pd.date_range("2024-01-01", periods=size, freq="min"),
        }
    )


@pytest.mark.parametrize("size", [600, 5000])
def test_dataset_drift_flags_only_changed_columns(size: int) -> None:
    reference = frame(1, size)
    clean = dataset_drift(reference, frame(2, size))
    assert clean.drifted_columns == []
    assert not clean.dataset_drifted
    assert clean.skipped == {
        "signup": "column 'signup': dtype datetime64[ns] is neither numeric nor categorical"
    }
    changed = dataset_drift(reference, frame(3, size, shift=0.5, new_colour=True))
    assert changed.drifted_columns == ["income", "colour"]
    assert changed.share_drifted == pytest.approx(2 / 5)
    assert not changed.dataset_drifted
    assert dataset_drift(reference, frame(3, size, 0.5, True), drift_share=0.4).dataset_drifted


def test_dataset_drift_uses_the_documented_methods() -> None:
    small = dataset_drift(frame(1, 600), frame(2, 600))
    large = dataset_drift(frame(1, 5000), frame(2, 5000))
    assert {k: v.method for k, v in small.columns.items()} == {
        "income": "ks",
        "age": "ks",
        "colour": "chisquare",
        "member": "z",
        "kids": "chisquare",
    }
    assert {v.method for v in large.columns.values()} == {"wasserstein", "jensenshannon"}
    assert large.columns["kids"].method == "jensenshannon"


def test_dataset_drift_columns_methods_and_thresholds() -> None:
    reference, current = frame(1, 600), frame(3, 600, shift=0.5)
    result = dataset_drift(
        reference,
        current,
        ["income", "colour"],
        methods={"income": "psi"},
        thresholds={"colour": 0.5},
    )
    assert list(result.columns) == ["income", "colour"]
    assert result.columns["income"].method == "psi"
    assert result.columns["colour"].threshold == 0.5
    assert result.dataset_drifted  # 1 of 2 >= 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": ["nope"]}, "columns missing"),
        ({"methods": {"nope": "ks"}}, "methods name columns that are not tested"),
        ({"methods": {"colour": "wasserstein"}}, "wasserstein compares numeric samples"),
        ({"methods": {"income": "bogus"}}, "unknown drift method"),
        ({"drift_share": 1.5}, "drift_share"),
    ],
)
def test_dataset_drift_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        dataset_drift(frame(1, 100), frame(2, 100), **kwargs)  # type: ignore[arg-type]


def test_dataset_drift_rejects_non_frames() -> None:
    with pytest.raises(InvalidInput, match="reference must be a pandas DataFrame"):
        dataset_drift([1, 2], frame(1, 10))  # type: ignore[arg-type]


def test_columns_without_values_are_skipped_not_fatal() -> None:
    reference = pd.DataFrame({"x": rng().normal(size=100), "y": [np.nan] * 100})
    current = pd.DataFrame({"x": rng(1).normal(size=100), "y": [np.nan] * 100, "z": 1})
    result = dataset_drift(reference, current)
    assert list(result.columns) == ["x"]
    assert result.skipped == {"y": "column 'y': reference has no non-null values to compare"}


def test_no_testable_column_means_no_drift() -> None:
    empty = DatasetDrift(columns={})
    assert (empty.share_drifted, empty.dataset_drifted) == (0.0, False)


def test_results_round_trip_through_json() -> None:
    result = dataset_drift(frame(1, 600), frame(3, 600, shift=0.5, new_colour=True))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["number_of_drifted_columns"] == 2
    assert data["share_drifted"] == pytest.approx(0.4)
    restored = DatasetDrift.from_dict(data)
    assert restored == result
    column = result.columns["income"]
    assert ColumnDrift.from_dict(column.to_dict()) == column


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(InvalidInput):
        DatasetDrift.from_dict({"columns": "nope"})
    with pytest.raises(InvalidInput):
        ColumnDrift.from_dict({"column": "x"})


def test_large_samples_use_distances() -> None:
    size = 200_000
    gen = rng(7)
    reference = pd.DataFrame({"x": gen.normal(size=size), "c": gen.choice(["a", "b", "c"], size)})
    current = pd.DataFrame({"x": gen.normal(0.05, size=size), "c": gen.choice(["a", "b"], size)})
    result = dataset_drift(reference, current)
    assert result.columns["x"].method == "wasserstein"
    assert result.drifted_columns == ["c"]
