"""Two-sample statistical tests and distances for drift detection.

Each function compares a ``reference`` sample with a ``current`` one and returns a
:class:`TestResult`. Nulls (NaN, None, NaT) are dropped first, and infinities too for the
numeric tests; a sample left empty raises :class:`~loopml.errors.InvalidInput`.

Defaults follow Evidently, so verdicts match its reports:

=================  =============  ===========================  =========
name               column kind    drift when                   threshold
=================  =============  ===========================  =========
``ks``             numeric        p-value < threshold          0.05
``chisquare``      categorical    p-value < threshold          0.05
``z``              categorical    p-value < threshold          0.05
``psi``            both           statistic >= threshold       0.1
``jensenshannon``  both           statistic >= threshold       0.1
``wasserstein``    numeric        statistic >= threshold       0.1
=================  =============  ===========================  =========

Examples
--------
>>> import numpy as np
>>> from loopml.stats import ks_test, wasserstein
>>> rng = np.random.default_rng(0)
>>> reference, current = rng.normal(size=500), rng.normal(0.5, size=500)
>>> ks_test(reference, current).drifted
True
>>> round(wasserstein(reference, reference).statistic, 6)
0.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.spatial import distance

from loopml.errors import InvalidInput
from loopml.stats._arrays import (
    LOW_CARDINALITY,
    FloatArray,
    IntArray,
    Kind,
    Values,
    as_series,
    category_counts,
    check_kind,
    distinct_upto,
    fill_empty,
    infer_kind,
    numeric_values,
    quantile_counts,
    require_values,
    sturges_counts,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "TestResult",
    "chi_square_test",
    "compare_counts",
    "jensen_shannon",
    "ks_test",
    "psi",
    "wasserstein",
    "wasserstein_distance",
    "z_test_proportions",
]

#: Default threshold of each method (a p-value for tests, a distance for the others).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "psi": 0.1,
    "jensenshannon": 0.1,
    "wasserstein": 0.1,
}
_WASSERSTEIN_MIN_NORM = 0.001


@dataclass(frozen=True)
class TestResult:
    """The outcome of one two-sample comparison.

    Attributes
    ----------
    method : str
        The method name (``ks``, ``chisquare``, ``z``, ``psi``, ``jensenshannon``,
        ``wasserstein``).
    statistic : float
        The test statistic or the distance.
    p_value : float or None
        The p-value of a statistical test; None for distances.
    threshold : float
        The p-value below which (tests), or the distance from which (distances), the
        samples are said to differ.
    drifted : bool
        Whether the samples differ according to ``threshold``.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool

    @property
    def score(self) -> float:
        """The number compared with the threshold: the p-value if any, else the statistic."""
        return self.statistic if self.p_value is None else self.p_value


def _p_value_result(method: str, statistic: float, p_value: float, threshold: float) -> TestResult:
    p = min(max(float(p_value), 0.0), 1.0)
    return TestResult(method, float(statistic), p, threshold, p < threshold)


def _distance_result(method: str, statistic: float, threshold: float) -> TestResult:
    value = float(statistic)
    return TestResult(method, value, None, threshold, value >= threshold)


def _threshold(method: str, threshold: float | None) -> float:
    if threshold is None:
        return DEFAULT_THRESHOLDS[method]
    value = float(threshold)
    if not np.isfinite(value) or value < 0:
        raise InvalidInput(
            f"threshold must be a non-negative number, not {threshold!r}", field="threshold"
        )
    return value


def _numeric_pair(reference: Values, current: Values) -> tuple[FloatArray, FloatArray]:
    ref = numeric_values(reference, side="reference")
    cur = numeric_values(current, side="current")
    require_values(ref.size, column="", side="reference")
    require_values(cur.size, column="", side="current")
    return ref, cur


def _counts(reference: Values, current: Values) -> tuple[list[Any], IntArray, IntArray]:
    keys, ref_counts, cur_counts = category_counts(as_series(reference), as_series(current))
    require_values(int(ref_counts.sum()), column="", side="reference")
    require_values(int(cur_counts.sum()), column="", side="current")
    return keys, ref_counts, cur_counts


def compare_counts(
    method: str,
    keys: list[Any],
    reference_counts: IntArray,
    current_counts: IntArray,
    threshold: float | None = None,
) -> TestResult:
    """Run a categorical method on aligned category counts (both sums must be positive).

    Parameters
    ----------
    method : {"chisquare", "z", "psi", "jensenshannon"}
        The method to run.
    keys : list
        The categories, aligned with the counts.
    reference_counts, current_counts : numpy.ndarray
        How often each category occurs in each sample.
    threshold : float, optional
        The method's default threshold when omitted.
    """
    limit = _threshold(method, threshold)
    if method == "chisquare":
        return _chi_square(reference_counts, current_counts, limit)
    if method == "z":
        return _z_test(keys, reference_counts, current_counts, limit)
    ref = reference_counts / reference_counts.sum()
    cur = current_counts / current_counts.sum()
    if method == "psi":
        return _psi(ref, cur, limit)
    if method == "jensenshannon":
        return _jensen_shannon(ref, cur, limit)
    raise InvalidInput(f"{method} does not compare category counts", field="method")


def ks_test(reference: Values, current: Values, *, threshold: float | None = None) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, two-sided).

    Parameters
    ----------
    reference, current : array-like
        Numeric samples; NaN and infinities are dropped.
    threshold : float, optional
        Drift when the p-value is below it (default 0.05).
    """
    limit = _threshold("ks", threshold)
    ref, cur = _numeric_pair(reference, current)
    result = sps.ks_2samp(ref, cur)
    return _p_value_result("ks", result.statistic, result.pvalue, limit)


def chi_square_test(
    reference: Values, current: Values, *, threshold: float | None = None
) -> TestResult:
    """Chi-square goodness of fit of the current counts to the reference proportions.

    Categories are the union of both samples. A category absent from the reference gets
    a tiny expected share (see :func:`loopml.stats._arrays.fill_empty`) instead of zero, so
    a new category counts as strong evidence of drift rather than dividing by zero.

    Parameters
    ----------
    reference, current : array-like
        Categorical samples (any hashable values); nulls are dropped.
    threshold : float, optional
        Drift when the p-value is below it (default 0.05).
    """
    limit = _threshold("chisquare", threshold)
    return compare_counts("chisquare", *_counts(reference, current), limit)


def _chi_square(ref_counts: IntArray, cur_counts: IntArray, limit: float) -> TestResult:
    if ref_counts.size < 2:
        return _p_value_result("chisquare", 0.0, 1.0, limit)
    expected_shares = fill_empty(ref_counts / ref_counts.sum())
    expected = expected_shares / expected_shares.sum() * cur_counts.sum()
    result = sps.chisquare(cur_counts.astype(np.float64), expected)
    return _p_value_result("chisquare", result.statistic, result.pvalue, limit)


def z_test_proportions(
    reference: Values, current: Values, *, threshold: float | None = None
) -> TestResult:
    """Two-proportion z-test for a binary categorical column.

    The statistic compares the share of the first category (in sorted order) in the two
    samples with the pooled standard error. One category in total gives ``z = 0, p = 1``.

    Parameters
    ----------
    reference, current : array-like
        Samples with at most two distinct values together; nulls are dropped.
    threshold : float, optional
        Drift when the p-value is below it (default 0.05).

    Raises
    ------
    InvalidInput
        When the samples hold more than two categories together.
    """
    limit = _threshold("z", threshold)
    return compare_counts("z", *_counts(reference, current), limit)


def _z_test(
    keys: list[Any], ref_counts: IntArray, cur_counts: IntArray, limit: float
) -> TestResult:
    if len(keys) > 2:
        raise InvalidInput(
            f"the z-test compares two categories, these samples have {len(keys)}", field="method"
        )
    if len(keys) < 2:
        return _p_value_result("z", 0.0, 1.0, limit)
    first = _first_in_order(keys)
    n_ref, n_cur = float(ref_counts.sum()), float(cur_counts.sum())
    p_ref, p_cur = ref_counts[first] / n_ref, cur_counts[first] / n_cur
    pooled = (ref_counts[first] + cur_counts[first]) / (n_ref + n_cur)
    spread = float(np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur)))
    if spread == 0.0:
        return _p_value_result("z", 0.0, 1.0, limit)
    z = float((p_ref - p_cur) / spread)
    return _p_value_result("z", z, 2.0 * float(sps.norm.sf(abs(z))), limit)


def _first_in_order(keys: list[Any]) -> int:
    try:
        ordered = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:
        ordered = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    return ordered[0]


def _shares(
    reference: Values, current: Values, kind: str | None, binning: str, bins: int
) -> tuple[FloatArray, FloatArray]:
    """Turn both samples into aligned distributions (shares of bins or categories)."""
    resolved: Kind = infer_kind(reference) if kind is None else check_kind(kind)
    if resolved == "categorical":
        _, ref_counts, cur_counts = _counts(reference, current)
        return ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    ref, cur = _numeric_pair(reference, current)
    return _numeric_shares(ref, cur, binning, bins)


def _numeric_shares(
    ref: FloatArray, cur: FloatArray, binning: str, bins: int = 10
) -> tuple[FloatArray, FloatArray]:
    """Bin two clean numeric samples and return the share of each bin.

    ``binning`` is ``"quantile"`` (``bins`` bins cut at the reference quantiles) or
    ``"sturges"`` (equal-width bins over the joint range). A reference with at most 20
    distinct values is binned by value instead.
    """
    if distinct_upto(LOW_CARDINALITY, ref) > LOW_CARDINALITY:
        if binning == "quantile":
            ref_counts, cur_counts = quantile_counts(ref, cur, bins)
        else:
            ref_counts, cur_counts = sturges_counts(ref, cur)
    else:
        _, ref_counts, cur_counts = category_counts(pd.Series(ref), pd.Series(cur))
    return ref_counts / ref.size, cur_counts / cur.size


def psi(
    reference: Values,
    current: Values,
    *,
    kind: str | None = None,
    threshold: float | None = None,
    bins: int = 10,
) -> TestResult:
    """Population stability index, ``sum((ref - cur) * ln(ref / cur))`` over bins.

    Numeric samples are cut at the reference quantiles into ``bins`` bins (the outer bins
    are open, so values beyond the reference range still count); numeric samples with at
    most 20 distinct reference values, and categorical ones, use one bin per value. Empty
    bins get a small epsilon share.

    Parameters
    ----------
    reference, current : array-like
        The two samples; nulls are dropped.
    kind : {"numeric", "categorical"}, optional
        How to bin; inferred from the reference dtype when omitted.
    threshold : float, optional
        Drift when the index is at least this (default 0.1).
    bins : int
        Number of quantile bins for numeric samples.
    """
    limit = _threshold("psi", threshold)
    if bins < 2:
        raise InvalidInput(f"bins must be at least 2, not {bins}", field="bins")
    return _psi(*_shares(reference, current, kind, "quantile", bins), limit)


def _psi(ref: FloatArray, cur: FloatArray, limit: float) -> TestResult:
    ref, cur = fill_empty(ref), fill_empty(cur)
    return _distance_result("psi", float(np.sum((ref - cur) * np.log(ref / cur))), limit)


def jensen_shannon(
    reference: Values,
    current: Values,
    *,
    kind: str | None = None,
    threshold: float | None = None,
) -> TestResult:
    """Jensen-Shannon distance (natural log) between the two distributions.

    Numeric samples are histogrammed on shared equal-width bins over their joint range
    (Sturges' rule, as Evidently does); numeric samples with at most 20 distinct reference
    values, and categorical ones, use one bin per value.

    Parameters
    ----------
    reference, current : array-like
        The two samples; nulls are dropped.
    kind : {"numeric", "categorical"}, optional
        How to bin; inferred from the reference dtype when omitted.
    threshold : float, optional
        Drift when the distance is at least this (default 0.1).
    """
    limit = _threshold("jensenshannon", threshold)
    return _jensen_shannon(*_shares(reference, current, kind, "sturges", 0), limit)


def _jensen_shannon(ref: FloatArray, cur: FloatArray, limit: float) -> TestResult:
    value = float(distance.jensenshannon(ref, cur))
    return _distance_result("jensenshannon", max(value, 0.0), limit)


def wasserstein(
    reference: Values, current: Values, *, threshold: float | None = None
) -> TestResult:
    """First Wasserstein distance divided by the reference standard deviation.

    This is Evidently's "Wasserstein distance (normed)": the standard deviation is floored
    at 0.001 so constant reference columns do not divide by zero. The distance equals
    ``scipy.stats.wasserstein_distance`` but is computed from the two sorted samples in
    linear time after sorting, several times faster on large samples.

    Parameters
    ----------
    reference, current : array-like
        Numeric samples; NaN and infinities are dropped.
    threshold : float, optional
        Drift when the normed distance is at least this (default 0.1).
    """
    limit = _threshold("wasserstein", threshold)
    ref, cur = _numeric_pair(reference, current)
    norm = max(float(np.std(ref)), _WASSERSTEIN_MIN_NORM)
    return _distance_result("wasserstein", wasserstein_distance(ref, cur) / norm, limit)


def wasserstein_distance(u: FloatArray, v: FloatArray) -> float:
    """Unweighted first Wasserstein distance between two non-empty samples.

    The distance is the integral over ``q`` in (0, 1] of ``|Qu(q) - Qv(q)|`` where ``Qu`` and
    ``Qv`` are the empirical quantile functions. Both are step functions whose steps sit at
    ``i / n`` and ``j / m``; the merged order of these steps is known arithmetically, so
    the integral needs two sorts and no search.
    """
    su, sv = np.sort(u), np.sort(v)
    n, m = su.size, sv.size
    if n == m:
        return float(np.mean(np.abs(su - sv)))
    i = np.arange(1, n + 1, dtype=np.int64)
    j = np.arange(1, m + 1, dtype=np.int64)
    # Position of each step in the merged order; on ties the v step comes first.
    pos_u = (i - 1) + (i * m) // n
    pos_v = (j - 1) + (-(-(j * n) // m)) - 1
    from_u = np.zeros(n + m, dtype=bool)
    from_u[pos_u] = True
    steps = np.empty(n + m, dtype=np.float64)
    steps[pos_u] = i / n
    steps[pos_v] = j / m
    u_before = np.cumsum(from_u) - from_u
    v_before = np.arange(n + m) - u_before
    widths = np.diff(steps, prepend=0.0)
    gaps = np.abs(su[np.minimum(u_before, n - 1)] - sv[np.minimum(v_before, m - 1)])
    return float(np.dot(widths, gaps))


#: The test functions by method name.
METHODS: dict[str, Callable[..., TestResult]] = {
    "ks": ks_test,
    "chisquare": chi_square_test,
    "z": z_test_proportions,
    "psi": psi,
    "jensenshannon": jensen_shannon,
    "wasserstein": wasserstein,
}
