"""Batch validation: each anomaly kind on a crafted batch, none on a clean one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.schema import Schema, infer_schema
from loopml.data.validation import (
    Anomaly,
    AnomalyKind,
    DataValidationError,
    ValidationResult,
    validate,
)
from loopml.errors import InvalidInput

PLANS = ["free", "pro", "team"]


def batch(size: int, seed: int, plan_shares: list[float] | None = None) -> pd.DataFrame:
    """Rows from one fixed distribution; ``seed`` picks the sample."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 8_000, size)
    income[rng.random(size) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": rng.integers(18, 91, size),
            "income": income,
            "plan": rng.choice(PLANS, size, p=plan_shares),
            "member": rng.random(size) < 0.4,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 366, size), "D"),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return batch(5000, seed=1)


@pytest.fixture(scope="module")
def schema(reference: pd.DataFrame) -> Schema:
    return infer_schema(reference)


def kinds(result: ValidationResult) -> list[tuple[str | None, str, str]]:
    return [(a.column, a.kind.value, a.severity) for a in result.anomalies]


# -- clean batches -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_clean_batch_from_the_same_distribution_passes(
    reference: pd.DataFrame, schema: Schema, seed: int
) -> None:
    clean = batch(500, seed)
    result = validate(clean, schema, reference, range_tolerance=0.1)
    assert result.anomalies == ()
    assert result.passed
    assert result.drift is not None
    assert result.drift.number_of_columns == 4  # datetime columns are not drift-tested
    assert result.drift.drifted_columns == []
    assert result.raise_if_failed() is result


def test_continuous_columns_step_past_exact_reference_ranges(reference: pd.DataFrame) -> None:
    # The reference extremes of a continuous column are a sample statistic: a fresh
    # sample crosses them now and then, which is what range_tolerance absorbs.
    schema = infer_schema(reference)
    crossings = [
        validate(batch(2000, seed), schema, range_tolerance=0.0).anomalies for seed in range(10, 20)
    ]
    assert any(any(a.column == "income" for a in found) for found in crossings)
    assert all(a.kind is AnomalyKind.OUT_OF_RANGE for found in crossings for a in found)
    tolerant = [validate(batch(2000, seed), schema, range_tolerance=0.1) for seed in range(10, 20)]
    assert not [a for result in tolerant for a in result.anomalies]


def test_schema_is_inferred_from_the_reference_when_omitted(reference: pd.DataFrame) -> None:
    result = validate(batch(500, 2).assign(age=150), reference=reference)
    assert ("age", "out_of_range", "error") in kinds(result)


def test_a_schema_or_a_reference_is_needed() -> None:
    with pytest.raises(InvalidInput, match="needs a schema or a reference"):
        validate(batch(10, 1))


# -- structure -------------------------------------------------------------------------


def test_missing_required_column_is_an_error(schema: Schema) -> None:
    result = validate(batch(500, 2).drop(columns=["plan"]), schema)
    assert kinds(result) == [("plan", "missing_column", "error")]
    assert not result.passed


def test_missing_optional_column_is_fine(schema: Schema) -> None:
    edited = Schema.from_dict(schema.to_dict())
    edited.column("plan").required = False
    assert validate(batch(500, 2).drop(columns=["plan"]), edited).anomalies == ()


def test_extra_column_is_a_warning(schema: Schema) -> None:
    result = validate(batch(500, 2).assign(score=1.0), schema)
    assert kinds(result) == [("score", "extra_column", "warning")]
    assert result.passed


def test_type_change_is_an_error(schema: Schema) -> None:
    data = batch(500, 2)
    data["age"] = data["age"].astype(str)
    data["member"] = data["member"].astype(float) + 0.5
    result = validate(data, schema)
    assert kinds(result) == [("age", "type_change", "error"), ("member", "type_change", "error")]
    assert result.anomalies[0].message == "expected int, found string (dtype object)"
    assert result.anomalies[0].details == {"expected": "int", "found": "string", "dtype": "object"}


def test_mixed_object_column_is_a_type_change(schema: Schema) -> None:
    data = batch(500, 2)
    data["plan"] = data["plan"].astype(object)
    data.loc[0, "plan"] = 7
    result = validate(data, schema)
    assert kinds(result) == [("plan", "type_change", "error")]
    assert "mixed value types (int, str)" in result.anomalies[0].message


def test_compatible_representations_are_not_type_changes(schema: Schema) -> None:
    data = batch(500, 2)
    data["age"] = data["age"].astype(float)  # ints stored as floats, as nulls force
    data["plan"] = data["plan"].astype("category")
    edited = Schema.from_dict(schema.to_dict())
    edited.column("age").nullable = True
    data.loc[3, "age"] = np.nan
    assert validate(data, edited).anomalies == ()


def test_empty_batch_is_an_error_and_skips_value_checks(
    reference: pd.DataFrame, schema: Schema
) -> None:
    result = validate(batch(500, 2).iloc[:0], schema, reference)
    assert kinds(result) == [(None, "empty_batch", "error")]
    assert result.drift is None
    assert result.row_count == 0


# -- values ----------------------------------------------------------------------------


def test_null_rate_above_reference_plus_tolerance_is_an_error(schema: Schema) -> None:
    data = batch(1000, 2)
    data.loc[data.index[:300], "income"] = np.nan
    result = validate(data, schema)
    assert [(a.column, a.kind.value) for a in result.anomalies] == [("income", "null_rate")]
    anomaly = result.anomalies[0]
    assert anomaly.details["share"] == pytest.approx(data.income.isna().mean())
    assert "exceeds" in anomaly.message and "tolerance 5.00%" in anomaly.message
    assert validate(data, schema, null_rate_tolerance=0.3).passed


def test_nulls_in_a_non_nullable_column_are_an_error(schema: Schema) -> None:
    data = batch(500, 2)
    data["age"] = data["age"].astype("Int64")
    data.loc[0, "age"] = pd.NA
    result = validate(data, schema)
    assert kinds(result) == [("age", "null_rate", "error")]
    assert result.anomalies[0].message == "1 null (0.20%) in a non-nullable column"


def test_explicit_null_limits_win(schema: Schema) -> None:
    data = batch(1000, 2)
    data.loc[data.index[:150], "income"] = np.nan  # about 20% nulls
    edited = Schema.from_dict(schema.to_dict())
    edited.max_null_fraction = 0.5
    assert validate(data, edited).passed
    edited.column("income").max_null_fraction = 0.1
    assert kinds(validate(data, edited)) == [("income", "null_rate", "error")]


def test_out_of_range_values_are_an_error(schema: Schema) -> None:
    data = batch(500, 2)
    data.loc[[0, 1], "age"] = [5, 130]
    data.loc[2, "signup"] = pd.Timestamp("2030-01-01")
    result = validate(data, schema)
    assert kinds(result) == [("age", "out_of_range", "error"), ("signup", "out_of_range", "error")]
    age = result.anomalies[0]
    assert age.details == {
        "count": 2,
        "share": 2 / 500,
        "below": 1,
        "above": 1,
        "expected_min": 18,
        "expected_max": 90,
        "outside_min": 5,
        "outside_max": 130,
    }
    assert age.message == "2 values (0.40%) outside [18, 90]: 5 to 130"
    assert result.anomalies[1].details["outside_max"] == "2030-01-01T00:00:00"


def test_edited_ranges_are_used(schema: Schema) -> None:
    data = batch(500, 2)
    data.loc[0, "age"] = 110
    edited = Schema.from_dict(schema.to_dict())
    edited.column("age").max = 120
    assert validate(data, edited).passed
    edited.column("age").min = None
    edited.column("age").max = 100
    assert kinds(validate(data, edited)) == [("age", "out_of_range", "error")]


def test_timezone_aware_batches_compare_in_utc(schema: Schema) -> None:
    data = batch(500, 2)
    data["signup"] = data["signup"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    assert validate(data, schema).passed


def test_rare_unseen_category_is_a_warning_frequent_one_an_error(schema: Schema) -> None:
    rare = batch(500, 2)
    rare.loc[0, "plan"] = "gold"
    result = validate(rare, schema)
    assert kinds(result) == [("plan", "unseen_category", "warning")]
    assert result.passed
    assert result.anomalies[0].details == {"count": 1, "share": 0.002, "examples": ["gold"]}
    frequent = batch(500, 2)
    frequent.loc[frequent.index[:50], "plan"] = "gold"
    assert kinds(validate(frequent, schema)) == [("plan", "unseen_category", "error")]


# -- drift -----------------------------------------------------------------------------


def test_one_drifted_column_is_a_warning(reference: pd.DataFrame, schema: Schema) -> None:
    shifted = batch(500, 2, plan_shares=[0.7, 0.15, 0.15])
    result = validate(shifted, schema, reference)
    assert kinds(result) == [("plan", "drift", "warning")]
    assert result.passed
    assert result.drift is not None and result.drift.drifted_columns == ["plan"]
    assert result.anomalies[0].details["method"] == "jensenshannon"


def test_dataset_drift_is_an_error(reference: pd.DataFrame, schema: Schema) -> None:
    rng = np.random.default_rng(9)
    shifted = batch(500, 2, plan_shares=[0.7, 0.15, 0.15])
    shifted["member"] = rng.random(500) < 0.8
    result = validate(shifted, schema, reference)
    assert kinds(result) == [
        ("plan", "drift", "warning"),
        ("member", "drift", "warning"),
        (None, "drift", "error"),
    ]
    assert result.anomalies[-1].message == ("2 of 4 columns drifted (50% >= 50%): plan, member")
    assert validate(shifted, schema, reference, drift_share=0.75).passed


def test_drift_methods_are_passed_on(reference: pd.DataFrame, schema: Schema) -> None:
    result = validate(batch(500, 2), schema, reference, drift_methods={"income": "psi"})
    assert result.drift is not None
    assert result.drift.columns["income"].method == "psi"
    with pytest.raises(InvalidInput, match="drift_methods name columns not in the schema"):
        validate(batch(500, 2), schema, reference, drift_methods={"nope": "ks"})


def test_type_changed_columns_are_left_out_of_drift(
    reference: pd.DataFrame, schema: Schema
) -> None:
    data = batch(500, 2)
    data["age"] = data["age"].astype(str)
    result = validate(data, schema, reference)
    assert result.drift is not None and "age" not in result.drift.columns


# -- reporting -------------------------------------------------------------------------


def failing(schema: Schema) -> ValidationResult:
    data = batch(500, 2).drop(columns=["plan"]).assign(score=1)
    data.loc[0, "age"] = 130
    return validate(data, schema)


def test_raise_if_failed_gives_a_readable_report(schema: Schema) -> None:
    result = failing(schema)
    with pytest.raises(DataValidationError) as info:
        result.raise_if_failed()
    assert isinstance(info.value, InvalidInput)
    assert info.value.result is result
    assert str(info.value).splitlines() == [
        "Data validation FAILED: 2 errors, 1 warning in 500 rows",
        "  ERROR   missing_column  plan: required column is missing",
        "  ERROR   out_of_range    age: 1 value (0.20%) outside [18, 90]: 130",
        "  WARNING extra_column    score: column is not in the schema",
    ]


def test_summary_is_one_line(reference: pd.DataFrame, schema: Schema) -> None:
    assert failing(schema).summary() == "FAILED: 2 errors, 1 warning in 500 rows"
    clean = validate(batch(500, 2), schema, reference, range_tolerance=0.1)
    assert clean.summary() == "passed: 0 errors, 0 warnings in 500 rows; 0 of 4 columns drifted"


def test_result_round_trips_through_json(reference: pd.DataFrame, schema: Schema) -> None:
    shifted = batch(500, 2, plan_shares=[0.7, 0.15, 0.15])
    shifted.loc[0, "plan"] = "gold"
    result = validate(shifted, schema, reference)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["passed"] is True
    assert data["anomalies"][0]["kind"] == "unseen_category"
    assert ValidationResult.from_dict(data) == result


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(InvalidInput):
        ValidationResult.from_dict({"anomalies": None})
    with pytest.raises(InvalidInput):
        Anomaly.from_dict({"column": "x", "kind": "nope", "severity": "error", "message": ""})
    with pytest.raises(InvalidInput):
        Anomaly.from_dict({"column": "x", "kind": "drift", "severity": "fatal", "message": ""})


def test_options_are_checked(schema: Schema) -> None:
    with pytest.raises(InvalidInput, match="null_rate_tolerance"):
        validate(batch(10, 2), schema, null_rate_tolerance=2.0)


def test_arrow_batches_are_accepted(schema: Schema) -> None:
    assert validate(pa.Table.from_pandas(batch(500, 2)), schema).passed


def test_non_string_column_labels_are_matched() -> None:
    data = pd.DataFrame({0: [1, 2, 3]})
    numbered = infer_schema(data)
    assert validate(data, numbered).passed
