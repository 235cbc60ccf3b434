from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.data import profile as profile_module
from loopml.data.profile import ColumnProfile, DatasetProfile, Histogram, profile_table
from loopml.errors import InvalidInput, NotFound

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2_000
    floats = rng.normal(10.0, 3.0, n)
    floats[::17] = np.nan
    return pd.DataFrame(
        {
            "x": floats,
            "n": rng.integers(-50, 100_000, n),
            "small": rng.integers(0, 4, n),
            "city": rng.choice(["paris", "lyon", "nice", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "name": [f"user-{i}" for i in range(n)],
            "flag": rng.random(n) < 0.25,
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
        }
    )


def test_numeric_stats_match_numpy_and_pandas(frame: pd.DataFrame) -> None:
    profile = profile_table(frame)
    column = profile.column("x")
    values = frame["x"].dropna().to_numpy()
    assert (profile.num_rows, profile.num_columns) == (len(frame), frame.shape[1])
    assert column.logical_type == "float"
    assert column.count == len(frame)
    assert column.missing == int(frame["x"].isna().sum())
    assert column.distinct == len(np.unique(values))
    assert column.mean == pytest.approx(values.mean(), rel=1e-12)
    assert column.std == pytest.approx(frame["x"].std(), rel=1e-12)
    assert (column.min, column.max) == (values.min(), values.max())
    assert [q for q, _ in column.quantiles] == list(LEVELS)
    expected = np.quantile(values, LEVELS)
    assert [v for _, v in column.quantiles] == pytest.approx(list(expected), rel=1e-12)
    assert column.quantile(0.5) == pytest.approx(frame["x"].median(), rel=1e-12)
    counts, edges = np.histogram(values, bins=20)
    assert column.histogram is not None
    assert list(column.histogram.counts) == counts.tolist()
    assert list(column.histogram.edges) == pytest.approx(edges.tolist(), rel=1e-12)
    assert column.top_values == ()
    assert not column.approximate and not profile.approximate


def test_int_columns(frame: pd.DataFrame) -> None:
    profile = profile_table(frame)
    wide, small = profile.column("n"), profile.column("small")
    assert wide.logical_type == small.logical_type == "int"
    assert (wide.min, wide.max) == (int(frame["n"].min()), int(frame["n"].max()))
    assert isinstance(wide.min, int) and not isinstance(wide.min, bool)
    assert wide.quantile(0.25) == pytest.approx(frame["n"].quantile(0.25))
    assert wide.top_values == ()  # too many distinct values to be worth listing
    expected = frame["small"].value_counts()
    assert small.top_values == tuple((int(v), int(n)) for v, n in expected.items())
    assert small.histogram is not None
    assert small.histogram.edges == (-0.5, 0.5, 1.5, 2.5, 3.5)  # one bin per integer
    assert list(small.histogram.counts) == [int(expected[v]) for v in range(4)]


def test_missing_values_nan_none_and_infinity() -> None:
    data = pd.DataFrame(
        {
            "f": [1.0, np.nan, None, np.inf, -np.inf, 3.0],
            "s": ["a", None, "b", None, "a", "a"],
            "empty": [np.nan] * 6,
        }
    )
    profile = profile_table(data)
    floats = profile.column("f")
    assert (floats.count, floats.missing, floats.infinite, floats.distinct) == (6, 2, 2, 4)
    assert (floats.min, floats.max, floats.mean) == (1.0, 3.0, 2.0)
    strings = profile.column("s")
    assert (strings.missing, strings.distinct) == (2, 2)
    assert strings.top_values == (("a", 3), ("b", 1))
    empty = profile.column("empty")
    assert (empty.missing, empty.distinct, empty.mean, empty.histogram) == (6, 0, None, None)
    assert profile.missing_cells == 2 + 2 + 6
    assert profile.column("f").missing_rate == pytest.approx(2 / 6)


def test_datetime_columns(frame: pd.DataFrame) -> None:
    when = frame["when"]
    aware = pd.DataFrame({"utc": when.dt.tz_localize("UTC"), "when": when})
    aware.loc[3, "when"] = pd.NaT
    profile = profile_table(aware)
    column = profile.column("when")
    present = aware["when"].dropna()
    assert column.logical_type == "datetime"
    assert column.missing == 1
    assert column.min == present.min().isoformat()
    assert column.max == present.max().isoformat()
    assert abs(pd.Timestamp(column.mean) - present.mean()) <= pd.Timedelta("1us")
    assert column.std == pytest.approx(present.std().total_seconds(), rel=1e-9)
    median = pd.Timestamp(column.quantile(0.5))
    assert abs(median - present.quantile(0.5)) <= pd.Timedelta("1us")
    assert column.histogram is not None
    assert sum(column.histogram.counts) == len(present)
    assert column.histogram.edges[0] == column.min and column.histogram.edges[-1] == column.max
    utc = profile.column("utc")
    assert isinstance(utc.min, str) and utc.min.endswith("Z")
    assert pd.Timestamp(utc.min) == when.min().tz_localize("UTC")


def test_dates_and_constant_datetime() -> None:
    days = pa.array([19_723, 19_724, None, 19_730], pa.date32())
    same = pa.array([0, 0, 0, 0], pa.timestamp("s"))
    profile = profile_table(pa.table({"day": days, "same": same}))
    day = profile.column("day")
    assert (day.logical_type, day.min, day.max) == (
        "datetime",
        "2024-01-01T00:00:00",
        "2024-01-08T00:00:00",
    )
    constant = profile.column("same")
    assert constant.histogram == Histogram(("1970-01-01T00:00:00",) * 2, (4,))
    assert constant.std == 0.0


def test_datetime_sentinels_at_the_limits_of_int64() -> None:
    stamps = pd.Series([pd.Timestamp.min, pd.Timestamp("2024-01-01"), pd.Timestamp.max])
    column = profile_table(pd.DataFrame({"t": stamps})).column("t")
    assert column.min == pd.Timestamp.min.isoformat()
    assert column.max == pd.Timestamp.max.isoformat()
    assert column.histogram is not None and sum(column.histogram.counts) == 3


def test_categorical_top_k() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d"] + [None]
    data = pd.DataFrame({"cat": pd.Categorical(values), "text": values})
    profile = profile_table(data, top_k=2)
    category = profile.column("cat")
    assert category.logical_type == "category"
    assert category.arrow_type.startswith("dictionary")
    assert (category.distinct, category.missing) == (4, 1)
    assert category.top_values == (("a", 5), ("b", 5))  # ties broken by value
    text = profile.column("text")
    assert text.logical_type == "category"  # few distinct values, each repeated
    assert text.top_values == category.top_values
    unique = profile_table(pd.DataFrame({"id": [f"id-{i}" for i in range(50)]})).column("id")
    assert (unique.logical_type, unique.distinct) == ("string", 50)
    assert unique.top_values[0] == ("id-0", 1)


def test_bool_column(frame: pd.DataFrame) -> None:
    column = profile_table(frame).column("flag")
    trues = int(frame["flag"].sum())
    assert column.logical_type == "bool"
    assert column.mean == pytest.approx(trues / len(frame))
    assert column.top_values == ((False, len(frame) - trues), (True, trues))
    assert column.distinct == 2 and column.histogram is None


def test_other_arrow_types() -> None:
    from decimal import Decimal

    table = pa.table(
        {
            "blob": pa.array([b"\x00\xff", b"ab", b"ab", None], pa.binary()),
            "price": pa.array([Decimal("1.50"), Decimal("2.25"), None, Decimal("3.00")]),
            "half": pa.array([1.0, 2.0, 3.0, None], pa.float16()),
            "big": pa.array([2**63, 1, 1, 5], pa.uint64()),
            "nothing": pa.array([None] * 4, pa.null()),
            "large": pa.array(["x", "y", "x", "x"], pa.large_string()),
        }
    )
    profile = profile_table(table)
    assert profile.column("blob").top_values[0] == ("ab", 2)
    assert profile.column("price").logical_type == "float"
    assert profile.column("price").mean == pytest.approx(2.25)
    assert profile.column("half").max == 3.0
    assert profile.column("big").max == 2**63
    assert profile.column("nothing").missing == 4
    assert profile.column("large").top_values == (("x", 3), ("y", 1))


def test_batches_give_the_same_profile_as_one_table(frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    whole = profile_table(table)
    batched = profile_table(iter(table.to_batches(max_chunksize=333)))
    for one, many in zip(whole.columns, batched.columns, strict=True):
        assert (one.count, one.missing, one.distinct) == (many.count, many.missing, many.distinct)
        assert (one.min, one.max, one.top_values) == (many.min, many.max, many.top_values)
        if isinstance(one.mean, float):
            assert many.mean == pytest.approx(one.mean, rel=1e-12)
            assert many.std == pytest.approx(one.std, rel=1e-12)
        assert one.histogram == many.histogram
        assert one.quantiles == many.quantiles or one.logical_type == "datetime"


def test_parquet_file_profiled_batch_by_batch(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    streamed = profile_table(pq.ParquetFile(path).iter_batches(batch_size=250))
    direct = profile_table(frame)
    assert [c.distinct for c in streamed.columns] == [c.distinct for c in direct.columns]
    assert streamed.column("city").top_values == direct.column("city").top_values


def test_large_columns_are_estimated_within_bounds() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([np.full(5_000, 2.0), rng.exponential(2.0, 45_000), [250.0]])
    batches = [pa.record_batch({"v": values[i : i + 4_096]}) for i in range(0, values.size, 4_096)]
    column = profile_table(batches, sample_size=2_000).column("v")
    assert column.approximate
    assert (column.count, column.min, column.max) == (values.size, values.min(), values.max())
    assert column.mean == pytest.approx(values.mean(), rel=1e-12)
    assert column.distinct == len(np.unique(values))
    for q, estimate in column.quantiles:
        rank = float(np.mean(values <= float(estimate)))  # type: ignore[arg-type]
        assert abs(rank - q) < 0.05
    assert column.histogram is not None
    exact, _ = np.histogram(values, bins=np.asarray(column.histogram.edges, dtype=float))
    assert sum(column.histogram.counts) == values.size
    assert np.abs(np.asarray(column.histogram.counts) - exact).max() <= 0.01 * values.size


def test_distinct_and_top_values_beyond_the_exact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "DISTINCT_EXACT_LIMIT", 1_000)
    monkeypatch.setattr(profile_module, "HEAVY_HITTERS", 100)
    n = 60_000
    words = np.array([f"w{i}" for i in range(n)], dtype=object)
    words[::10] = "common"
    table = pa.table({"f": np.arange(n) / 7.0, "i": np.arange(n) % 40_000, "s": words})
    profile = profile_table(iter(table.to_batches(max_chunksize=5_000)))
    assert profile.column("f").distinct == pytest.approx(n, rel=0.04)
    assert profile.column("i").distinct == pytest.approx(40_000, rel=0.04)
    strings = profile.column("s")
    assert strings.distinct == pytest.approx(n - n // 10 + 1, rel=0.04)
    assert strings.top_values[0] == ("common", n // 10)
    assert strings.approximate and profile.column("i").approximate


def test_round_trip_through_json(frame: pd.DataFrame) -> None:
    profile = profile_table(frame)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    again = DatasetProfile.from_dict(json.loads(text))
    assert again == profile
    assert json.loads(text)["missing_cells"] == profile.missing_cells


def test_to_dict_turns_nan_into_none() -> None:
    column = ColumnProfile("c", "float", "double", 3, 0, 3, mean=float("nan"), std=float("inf"))
    data = column.to_dict()
    assert data["mean"] is None and data["std"] is None
    json.dumps(data, allow_nan=False)


def test_lookups() -> None:
    profile = profile_table(pa.table({"a": [1, 2, 3]}))
    with pytest.raises(NotFound):
        profile.column("b")
    with pytest.raises(NotFound):
        profile.column("a").quantile(0.42)


@pytest.mark.parametrize(
    "empty",
    [
        pa.table({"a": pa.array([], pa.int64())}),
        pd.DataFrame({"a": pd.Series([], dtype="float64")}),
        pd.DataFrame(),
        iter([]),
    ],
    ids=["arrow", "pandas", "no-columns", "no-batches"],
)
def test_empty_input_is_invalid(empty: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        profile_table(empty)  # type: ignore[arg-type]
    assert caught.value.field == "data"


@pytest.mark.parametrize(
    "nested",
    [pa.array([[1, 2], [3]]), pa.array([{"a": 1}, {"a": 2}])],
    ids=["list", "struct"],
)
def test_nested_column_is_invalid_and_named(nested: pa.Array) -> None:
    table = pa.table({"ok": [1, 2], "deep": nested})
    with pytest.raises(InvalidInput) as caught:
        profile_table(table)
    assert caught.value.field == "deep"
    assert "'deep'" in caught.value.message


def test_bad_inputs_and_options() -> None:
    first = pa.record_batch({"a": [1, 2]})
    with pytest.raises(InvalidInput, match="every item must be a record batch"):
        profile_table([first, pa.record_batch({"a": ["x"]})])
    with pytest.raises(InvalidInput):
        profile_table("data.csv")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught:
        profile_table(pd.DataFrame({"mixed": [1, "a"]}))
    assert caught.value.field == "mixed"
    for options, field in (
        ({"bins": 0}, "bins"),
        ({"top_k": -1}, "top_k"),
        ({"quantiles": (0.5, 1.5)}, "quantiles"),
        ({"sample_size": 0}, "sample_size"),
    ):
        with pytest.raises(InvalidInput) as caught:
            profile_table(first, **options)  # type: ignore[arg-type]
        assert caught.value.field == field


@pytest.mark.parametrize(
    "chunks",
    [
        [[5.0, 5.0], [5.0, 5.0 + 1e-9], [1e9, -1e9]],
        [[1e308, -1e308], [0.0, 1.0, 2.0], [-1e308]],
        [[1e-300, 2e-300], [3e-300, 0.0], [4e-300]],
    ],
    ids=["narrow-then-wide", "extreme-magnitudes", "tiny"],
)
def test_histogram_estimate_survives_any_range(chunks: list[list[float]]) -> None:
    batches = [pa.record_batch({"v": pa.array(c, pa.float64())}) for c in chunks]
    column = profile_table(batches, sample_size=1, bins=4).column("v")
    values = np.concatenate(chunks)
    assert column.histogram is not None
    assert sum(column.histogram.counts) == values.size
    # Below each edge, the estimate may only misplace values of the fine bin the edge cuts
    # (fine bins are at most 1/2,048 of the range wide).
    edges = np.asarray(column.histogram.edges, dtype=float)
    below = np.cumsum(column.histogram.counts)[:-1]
    width = values.max() / 1_000 - values.min() / 1_000
    for edge, estimate in zip(edges[1:-1], below, strict=True):
        near = int(np.count_nonzero(np.abs(values - edge) <= width))
        assert abs(estimate - np.count_nonzero(values < edge)) <= near
    assert (column.min, column.max) == (values.min(), values.max())
