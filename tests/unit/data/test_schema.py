"""Schema inference, editing and YAML/JSON round-trips, with readable errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.schema import ColumnSchema, Schema, infer_schema, logical_type
from loopml.errors import InvalidInput, NotFound


def reference(size: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 8_000, size)
    income[rng.random(size) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "age": rng.integers(18, 91, size),
            "income": income,
            "plan": rng.choice(["free", "pro", "team"], size),
            "region": pd.Categorical(rng.choice(["eu", "us"], size)),
            "member": rng.random(size) < 0.4,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, size), "D"),
            "email": [f"user{i}@example.com" for i in range(size)],
        }
    )


# -- inference -------------------------------------------------------------------------


def test_types_ranges_nullability_and_domains_are_inferred() -> None:
    frame = reference()
    schema = infer_schema(frame)
    assert schema.column_names == list(frame.columns)
    assert {c.name: c.dtype for c in schema.columns} == {
        "age": "int",
        "income": "float",
        "plan": "string",
        "region": "category",
        "member": "bool",
        "signup": "datetime",
        "email": "string",
    }
    age = schema.column("age")
    assert (age.min, age.max, age.nullable, age.null_fraction) == (
        int(frame.age.min()),
        int(frame.age.max()),
        False,
        0.0,
    )
    assert type(age.min) is int
    income = schema.column("income")
    assert income.nullable
    assert income.null_fraction == pytest.approx(frame.income.isna().mean(), abs=1e-6)
    assert income.null_fraction >= frame.income.isna().mean()
    assert income.min == pytest.approx(frame.income.min())
    assert schema.column("plan").categories == ["free", "pro", "team"]
    assert schema.column("region").categories == ["eu", "us"]
    assert schema.column("member").categories == [False, True]
    assert schema.column("email").categories is None  # high cardinality: no domain
    signup = schema.column("signup")
    assert signup.min == frame.signup.min().isoformat()
    assert signup.max == frame.signup.max().isoformat()
    assert all(c.required for c in schema.columns)


def test_domain_needs_few_values_and_repetition() -> None:
    assert infer_schema(pd.DataFrame({"p": ["a", "b", "c"]})).column("p").categories is None
    assert infer_schema(pd.DataFrame({"p": ["a", "b", "a"]})).column("p").categories is None
    assert infer_schema(pd.DataFrame({"p": ["a", "b"] * 2})).column("p").categories == ["a", "b"]
    codes = pd.DataFrame({"code": [f"c{i % 60:02d}" for i in range(600)]})
    assert infer_schema(codes, max_categories=50).column("code").categories is None
    assert len(infer_schema(codes, max_categories=60).column("code").categories or []) == 60


def test_required_flag_and_timezones() -> None:
    frame = pd.DataFrame({"at": pd.date_range("2024-03-01 12:00", periods=3, tz="Europe/Paris")})
    column = infer_schema(frame, required=False).column("at")
    assert not column.required
    assert column.min == "2024-03-01T11:00:00"  # stored in UTC


def test_arrow_tables_are_accepted() -> None:
    table = pa.table(
        {
            "n": pa.array([1, 2, None], pa.int64()),
            "day": pa.array([1, 2, 3], pa.date32()),
            "tag": pa.array(["x", "y", "x"]).dictionary_encode(),
        }
    )
    schema = infer_schema(table)
    assert [c.dtype for c in schema.columns] == ["float", "datetime", "category"]
    assert schema.column("day").max == "1970-01-04T00:00:00"


def test_all_null_and_empty_columns() -> None:
    schema = infer_schema(pd.DataFrame({"x": [None, None], "y": np.array([np.nan, np.nan])}))
    assert schema.column("x").dtype == "string"
    assert schema.column("x").null_fraction == 1.0
    assert schema.column("y").min is None
    assert infer_schema(pd.DataFrame({"z": pd.Series([], dtype="int64")})).column("z").min is None


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (pd.Series([1, "two", 3]), "column 'bad': mixed value types \\(int, str\\)"),
        (pd.Series([[1, 2], [3]]), "column 'bad': nested values"),
        (pd.Series([{"a": 1}, None]), "column 'bad': nested values"),
        (pd.Series(pd.to_timedelta([1, 2], unit="s")), "column 'bad': dtype timedelta64"),
        (pd.Series([1 + 2j, 3j]), "column 'bad': dtype complex128"),
    ],
)
def test_unsupported_columns_are_named(values: pd.Series, match: str) -> None:
    frame = pd.DataFrame({"ok": range(len(values)), "bad": values})
    with pytest.raises(InvalidInput, match=match) as info:
        infer_schema(frame)
    assert info.value.field == "bad"


def test_nested_arrow_columns_are_named() -> None:
    table = pa.table({"ok": [1, 2], "tags": [[1], [2, 3]], "meta": [{"a": 1}, {"a": 2}]})
    with pytest.raises(InvalidInput, match="column 'tags': nested type list"):
        infer_schema(table)
    with pytest.raises(InvalidInput, match="column 'meta': nested type struct"):
        infer_schema(table.select(["ok", "meta"]))


def test_bad_input_types_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="data must be a pandas DataFrame or a pyarrow Table"):
        infer_schema([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="duplicate column names"):
        infer_schema(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_logical_type_of_object_columns() -> None:
    assert logical_type(pd.Series([1, 2], dtype=object)) == "int"
    assert logical_type(pd.Series([1.5, 2], dtype=object)) == "float"
    assert logical_type(pd.Series([True, None], dtype=object)) == "bool"
    assert logical_type(pd.Series(["a", None], dtype="string")) == "string"


# -- editing and lookup ----------------------------------------------------------------


def test_schema_is_editable_and_looked_up_by_name() -> None:
    schema = infer_schema(reference())
    schema.column("age").max = 120
    schema.column("plan").categories = ["free", "pro", "team", "enterprise"]
    schema.max_null_fraction = 0.2
    assert schema.to_dict()["columns"][0]["max"] == 120
    with pytest.raises(NotFound, match="no column 'nope'"):
        schema.column("nope")


def test_unknown_logical_type_is_rejected_on_construction() -> None:
    with pytest.raises(InvalidInput, match="unknown type 'integer'"):
        ColumnSchema("age", "integer")


# -- round trips -----------------------------------------------------------------------


def test_yaml_and_json_round_trips() -> None:
    schema = infer_schema(reference())
    schema.column("plan").categories = ["yes", "no", "null", "1.0", "2024-01-01"]  # YAML traps
    schema.column("age").max_null_fraction = 0.3
    schema.max_null_fraction = 0.25
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.from_json(schema.to_json()) == schema
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema


def test_yaml_is_readable() -> None:
    text = Schema([ColumnSchema("age", "int", nullable=False, min=0, max=120)]).to_yaml()
    assert text == (
        "version: 1\n"
        "columns:\n"
        "- name: age\n"
        "  dtype: int\n"
        "  nullable: false\n"
        "  required: true\n"
        "  min: 0\n"
        "  max: 120\n"
        "  null_fraction: 0.0\n"
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load(tmp_path: Path, suffix: str) -> None:
    schema = infer_schema(reference())
    path = schema.save(tmp_path / "nested" / f"schema{suffix}")
    assert path.exists()
    assert list(path.parent.iterdir()) == [path]  # no temporary left behind
    if suffix == ".json":
        json.loads(path.read_text())
    assert Schema.load(path) == schema


def test_hand_written_yaml_with_unquoted_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "schema.yml"
    path.write_text(
        "columns:\n"
        "  - name: signup\n"
        "    dtype: datetime\n"
        "    min: 2024-01-01 00:00:00\n"
        "    max: 2024-12-31\n"
    )
    column = Schema.load(path).column("signup")
    assert (column.min, column.max) == ("2024-01-01T00:00:00", "2024-12-31")
    assert column.nullable and column.required


# -- errors ----------------------------------------------------------------------------


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("columns:\n  - name: age\n    dtype: [int\n")
    with pytest.raises(InvalidInput, match=f"{path}: invalid YAML") as info:
        Schema.load(path)
    assert "line" in info.value.message


def test_invalid_json_names_the_source() -> None:
    with pytest.raises(InvalidInput, match="in.json: invalid JSON"):
        Schema.from_json("{", source="in.json")


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        Schema.load(tmp_path / "nope.yaml")


BASE = {"name": "age", "dtype": "int"}


@pytest.mark.parametrize(
    ("document", "field", "match"),
    [
        ("", "schema", "expected a mapping, got NoneType"),
        ("- 1\n- 2\n", "schema", "expected a mapping, got list"),
        ({"columns": {"age": "int"}}, "columns", "must be a list"),
        ({"columns": [], "colums": []}, "schema", "unknown field\\(s\\) colums"),
        ({"version": 2, "columns": []}, "version", "unsupported schema version 2"),
        ({"columns": ["age"]}, "columns[0]", "expected a mapping, got str"),
        ({"columns": [{"dtype": "int"}]}, "columns[0].name", "is required"),
        ({"columns": [{**BASE, "dtype": "integer"}]}, "columns[0].dtype", "unknown type"),
        ({"columns": [{**BASE, "maximum": 3}]}, "columns[0]", "unknown field\\(s\\) maximum"),
        ({"columns": [{**BASE, "nullable": "no"}]}, "columns[0].nullable", "true or false"),
        ({"columns": [{**BASE, "min": "low"}]}, "columns[0].min", "must be a number"),
        ({"columns": [{**BASE, "max": True}]}, "columns[0].max", "must be a number"),
        ({"columns": [{**BASE, "min": 5, "max": 1}]}, "columns[0].min", "greater than max"),
        ({"columns": [{**BASE, "null_fraction": 2}]}, "columns[0].null_fraction", "between 0"),
        ({"columns": [{**BASE, "categories": "a"}]}, "columns[0].categories", "must be a list"),
        ({"columns": [{**BASE, "categories": [[1]]}]}, "columns[0].categories", "strings"),
        (
            {"columns": [{"name": "s", "dtype": "string", "min": 1}]},
            "columns[0].min",
            "has no range",
        ),
        (
            {"columns": [{"name": "t", "dtype": "datetime", "min": "yesterday"}]},
            "columns[0].min",
            "not an ISO 8601 timestamp",
        ),
        ({"columns": [BASE, BASE]}, "columns[1].name", "duplicate column 'age'"),
        ({"columns": [], "max_null_fraction": -0.1}, "max_null_fraction", "between 0"),
    ],
)
def test_wrong_structure_names_the_file_and_field(
    tmp_path: Path, document: Any, field: str, match: str
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(InvalidInput, match=match) as info:
        Schema.load(path)
    assert info.value.field == field
    assert info.value.message.startswith(f"{path}: {field}: ")


def test_datetime_bounds_with_offsets_are_ordered_in_utc() -> None:
    column = {"name": "t", "dtype": "datetime", "min": "2024-01-01T08:00:00+09:00"}
    assert Schema.from_dict({"columns": [{**column, "max": "2024-01-01T00:00:00"}]})
    with pytest.raises(InvalidInput, match="greater than max"):
        Schema.from_dict({"columns": [{**column, "max": "2023-12-31T22:00:00"}]})


def test_non_string_column_labels_become_strings() -> None:
    schema = infer_schema(pd.DataFrame({0: [1, 2], "b": [0.5, 1.5]}))
    assert schema.column_names == ["0", "b"]
