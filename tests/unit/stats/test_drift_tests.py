"""The two-sample tests and distances: detection, no false alarm, edge cases, scipy parity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from loopml.errors import InvalidInput
from loopml.stats import (
    METHODS,
    TestResult,
    chi_square_test,
    jensen_shannon,
    ks_test,
    psi,
    wasserstein,
    wasserstein_distance,
    z_test_proportions,
)

NUMERIC_METHODS = ["ks", "psi", "jensenshannon", "wasserstein"]
CATEGORIES = np.array(["red", "green", "blue", "amber"])


def normal(seed: int, size: int, mean: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, size)


def colours(seed: int, size: int, shares: list[float]) -> np.ndarray:
    return np.random.default_rng(seed).choice(CATEGORIES, size=size, p=shares)


# -- numeric: shift detected, resample not --------------------------------------------


@pytest.mark.parametrize("method", NUMERIC_METHODS)
@pytest.mark.parametrize("size", [800, 20_000])
def test_numeric_shift_of_half_a_std_is_detected(method: str, size: int) -> None:
    result = METHODS[method](normal(1, size), normal(2, size, mean=0.5))
    assert isinstance(result, TestResult)
    assert result.method == method
    assert result.drifted, result


@pytest.mark.parametrize("method", NUMERIC_METHODS)
@pytest.mark.parametrize("size", [800, 20_000])
def test_numeric_resample_of_same_distribution_is_not_flagged(method: str, size: int) -> None:
    result = METHODS[method](normal(1, size), normal(2, size))
    assert not result.drifted, result


# -- categorical: new dominant category detected, resample not --------------------------

UNIFORM = [0.25, 0.25, 0.25, 0.25]


@pytest.mark.parametrize("method", ["chisquare", "psi", "jensenshannon"])
def test_new_dominant_category_is_detected(method: str) -> None:
    reference = colours(1, 900, [0.4, 0.3, 0.3, 0.0])
    current = colours(2, 900, [0.1, 0.1, 0.1, 0.7])  # "amber" never seen before
    result = METHODS[method](reference, current)
    assert result.drifted, result


@pytest.mark.parametrize("method", ["chisquare", "psi", "jensenshannon"])
def test_categorical_resample_is_not_flagged(method: str) -> None:
    result = METHODS[method](colours(1, 900, UNIFORM), colours(2, 900, UNIFORM))
    assert not result.drifted, result


def test_z_test_detects_a_shift_in_a_binary_column() -> None:
    rng = np.random.default_rng(3)
    reference = rng.random(900) < 0.3
    assert z_test_proportions(reference, rng.random(900) < 0.6).drifted
    assert not z_test_proportions(reference, rng.random(900) < 0.3).drifted


def test_z_test_matches_the_textbook_statistic() -> None:
    reference = ["a"] * 30 + ["b"] * 70
    current = ["a"] * 45 + ["b"] * 55
    result = z_test_proportions(reference, current)
    pooled = 75 / 200
    z = (0.30 - 0.45) / np.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert result.statistic == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))


def test_z_test_rejects_more_than_two_categories() -> None:
    with pytest.raises(InvalidInput, match="two categories"):
        z_test_proportions(["a", "b"], ["a", "c"])


def test_single_category_is_never_drift() -> None:
    assert z_test_proportions(["x"] * 10, ["x"] * 5).p_value == 1.0
    assert chi_square_test(["x"] * 10, ["x"] * 5).p_value == 1.0


def test_new_category_in_chi_square_gives_a_finite_statistic() -> None:
    result = chi_square_test(["a", "b"] * 50, ["a", "b"] * 45 + ["c"] * 10)
    assert np.isfinite(result.statistic)
    assert result.drifted


def test_chi_square_matches_scipy_on_shared_categories() -> None:
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    current = ["a"] * 40 + ["b"] * 40 + ["c"] * 20
    expected = sps.chisquare([40, 40, 20], [50, 30, 20])
    result = chi_square_test(reference, current)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


# -- parity with scipy ---------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(50, 50), (300, 1200), (20_000, 15_000)])
def test_ks_equals_scipy(n: int, m: int) -> None:
    reference, current = normal(4, n), normal(5, m, mean=0.1)
    expected = sps.ks_2samp(reference, current)
    result = ks_test(reference, current)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.drifted == (expected.pvalue < 0.05)


@pytest.mark.parametrize(
    ("n", "m"), [(1, 1), (1, 7), (3, 7), (10, 10), (333, 1000), (1000, 2500), (997, 1009)]
)
def test_wasserstein_distance_equals_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 7 + m)
    u = rng.normal(size=n)
    v = rng.integers(-2, 3, size=m).astype(float)  # ties on one side
    assert wasserstein_distance(u, v) == pytest.approx(sps.wasserstein_distance(u, v))
    assert wasserstein_distance(v, v[::-1]) == pytest.approx(0.0)


def test_wasserstein_is_normed_by_the_reference_std() -> None:
    reference, current = normal(6, 4000) * 3.0, normal(7, 3000, mean=1.0) * 3.0
    result = wasserstein(reference, current)
    expected = sps.wasserstein_distance(reference, current) / np.std(reference)
    assert result.statistic == pytest.approx(expected)
    assert result.p_value is None
    assert result.threshold == 0.1


def test_jensen_shannon_matches_scipy_on_categories() -> None:
    reference = ["a"] * 60 + ["b"] * 40
    current = ["a"] * 20 + ["b"] * 50 + ["c"] * 30
    expected = distance.jensenshannon([0.6, 0.4, 0.0], [0.2, 0.5, 0.3])
    assert jensen_shannon(reference, current).statistic == pytest.approx(expected)


def test_psi_uses_ten_reference_quantile_bins() -> None:
    reference = np.arange(1000, dtype=float)
    current = np.arange(1000, dtype=float) + 1000.0  # everything lands in the top bin
    ref_shares = np.full(10, 0.1)
    cur_shares = np.r_[np.full(9, 1e-4), 1.0]
    expected = float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))
    assert psi(reference, current).statistic == pytest.approx(expected)
    assert psi(reference, reference).statistic == pytest.approx(0.0)


# -- nulls, empties, constants, thresholds --------------------------------------------


@pytest.mark.parametrize("method", NUMERIC_METHODS)
def test_nans_and_infinities_are_dropped(method: str) -> None:
    reference, current = normal(8, 900), normal(9, 900)
    dirty_ref = np.r_[reference, [np.nan] * 50, [np.inf, -np.inf]]
    dirty_cur = pd.Series(np.r_[current, [np.nan] * 80])
    assert METHODS[method](dirty_ref, dirty_cur) == METHODS[method](reference, current)


@pytest.mark.parametrize("method", ["chisquare", "z", "psi", "jensenshannon"])
def test_categorical_nulls_are_dropped(method: str) -> None:
    reference = ["a", "b", None, "a", float("nan")] * 40
    current = pd.Series(["a", "b", "b", None] * 40)
    clean = METHODS[method](["a", "b", "a"] * 40, ["a", "b", "b"] * 40)
    assert METHODS[method](reference, current) == clean


@pytest.mark.parametrize("method", sorted(METHODS))
def test_empty_input_raises_a_clear_error(method: str) -> None:
    numeric = method in ("ks", "wasserstein", "psi", "jensenshannon")
    values = normal(1, 20) if numeric else np.array(["a", "b"] * 10)
    empty = np.array([np.nan, np.nan]) if numeric else np.array([None, None], dtype=object)
    with pytest.raises(InvalidInput, match="current has no non-null values"):
        METHODS[method](values, empty)
    with pytest.raises(InvalidInput, match="reference has no non-null values"):
        METHODS[method]([], values)


@pytest.mark.parametrize("method", NUMERIC_METHODS)
def test_constant_columns_do_not_divide_by_zero(method: str) -> None:
    same = METHODS[method](np.full(500, 3.0), np.full(400, 3.0))
    assert not same.drifted
    assert np.isfinite(same.statistic)
    moved = METHODS[method](np.full(500, 3.0), np.full(400, 4.0))
    assert moved.drifted
    assert np.isfinite(moved.statistic)


def test_wasserstein_on_a_constant_reference_uses_the_std_floor() -> None:
    result = wasserstein(np.zeros(100), np.full(100, 0.01))
    assert result.statistic == pytest.approx(0.01 / 0.001)


@pytest.mark.parametrize(
    ("test", "kwargs"),
    [(ks_test, {}), (psi, {}), (wasserstein, {}), (jensen_shannon, {}), (psi, {"bins": 4})],
)
def test_threshold_is_applied(test: Callable[..., TestResult], kwargs: dict[str, int]) -> None:
    reference, current = normal(10, 900), normal(11, 900, mean=0.3)
    default = test(reference, current, **kwargs)
    strict = test(reference, current, threshold=default.score / 2 + 1e-12, **kwargs)
    lenient = test(reference, current, threshold=default.score * 2 + 1e-12, **kwargs)
    if default.p_value is None:
        assert strict.drifted and not lenient.drifted
    else:
        assert lenient.drifted and not strict.drifted


def test_bad_threshold_and_bins_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        ks_test([1.0, 2.0], [1.0, 2.0], threshold=-1)
    with pytest.raises(InvalidInput, match="bins"):
        psi([1.0, 2.0], [1.0, 2.0], bins=1)


def test_non_numeric_values_for_a_numeric_test_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="not numeric"):
        ks_test(["a", "b"], ["c", "d"])


def test_test_result_is_frozen_and_scores() -> None:
    result = ks_test(normal(1, 100), normal(2, 100))
    with pytest.raises(AttributeError):
        result.drifted = True  # type: ignore[misc]
    assert result.score == result.p_value
