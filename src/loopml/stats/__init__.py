"""Statistics shared by data validation and monitoring: two-sample tests and drift.

Examples
--------
>>> import numpy as np
>>> from loopml.stats import column_drift
>>> rng = np.random.default_rng(0)
>>> result = column_drift(rng.normal(size=800), rng.normal(0.5, size=800), column="x")
>>> result.method, result.drifted
('ks', True)
"""

from loopml.stats.drift import (
    ColumnDrift,
    DatasetDrift,
    choose_method,
    column_drift,
    dataset_drift,
)
from loopml.stats.tests import (
    DEFAULT_THRESHOLDS,
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

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "ColumnDrift",
    "DatasetDrift",
    "TestResult",
    "chi_square_test",
    "choose_method",
    "column_drift",
    "dataset_drift",
    "jensen_shannon",
    "ks_test",
    "psi",
    "wasserstein",
    "wasserstein_distance",
    "z_test_proportions",
]
