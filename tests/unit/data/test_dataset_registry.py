from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml as lm
import loopml.datasets as ds
from loopml.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer": np.arange(1_000),
            "tenure": rng.integers(0, 72, 1_000),
            "charges": rng.normal(70, 20, 1_000).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], 1_000),
            "churned": rng.random(1_000) < 0.2,
            "signup": pd.date_range("2024-01-01", periods=1_000, freq="h"),
        }
    )


def test_same_content_is_one_version(frame: pd.DataFrame, isolated_home: Path) -> None:
    first = ds.register("churn", frame)
    again = ds.register("churn", frame.copy())
    assert (first.version, again.version) == (1, 1)
    assert again.digest == first.digest
    assert first.num_rows == 1_000 and first.num_columns == 6
    assert len(ds.versions("churn")) == 1
    blobs = [p for p in (isolated_home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_a_changed_row_is_a_new_version(frame: pd.DataFrame) -> None:
    first = ds.register("churn", frame)
    changed = frame.copy()
    changed.loc[10, "charges"] += 0.01
    second = ds.register("churn", changed)
    assert second.version == 2
    assert second.digest != first.digest
    assert ds.get("churn").loc[10, "charges"] == changed.loc[10, "charges"]
    assert ds.get("churn", 1).loc[10, "charges"] == frame.loc[10, "charges"]


def test_digest_ignores_the_source_format_and_batching(frame: pd.DataFrame, tmp_path: Path) -> None:
    csv_frame = frame.drop(columns=["signup"])
    reference = ds.register("fmt", csv_frame)
    csv_frame.to_csv(tmp_path / "data.csv", index=False)
    pq.write_table(pa.Table.from_pandas(csv_frame), tmp_path / "data.parquet", row_group_size=97)
    assert ds.register("fmt", str(tmp_path / "data.parquet")).digest == reference.digest
    assert ds.register("fmt", tmp_path / "data.csv").digest == reference.digest
    table = pa.Table.from_pandas(csv_frame, preserve_index=False)
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=33))
    assert ds.register("fmt", rechunked).digest == reference.digest
    assert len(ds.versions("fmt")) == 1


def test_nulls_do_not_depend_on_hidden_bytes() -> None:
    with_nulls = pa.table({"x": pa.array([1, None, 3], pa.int64()), "s": ["a", None, "c"]})
    # Same logical content, different bytes under the null slot.
    other = pa.table(
        {
            "x": pa.array([1, 99, 3], pa.int64())
            .to_pandas()
            .astype("Int64")
            .where([True, False, True])
            .array.__arrow_array__(),
            "s": pa.array(["a", "zzz", "c"]).filter(pa.array([True, True, True])),
        }
    )
    other = other.set_column(1, "s", pa.array(["a", None, "c"]))
    assert ds.register("nulls", with_nulls).digest == ds.register("nulls", other).digest


def test_version_resolution(frame: pd.DataFrame) -> None:
    first = ds.register("churn", frame)
    second = ds.register("churn", frame.head(500))
    assert ds.resolve("churn").version == 2
    assert ds.resolve("churn", "latest").version == 2
    assert ds.resolve("churn", 1) == first
    assert ds.resolve("churn", "v1") == first
    assert ds.resolve("churn@v2") == second
    assert ds.resolve("churn", second.digest[:10]) == second
    assert ds.get("churn@v2").shape == (500, 6)
    assert isinstance(ds.get("churn", as_arrow=True), pa.Table)
    assert list(ds.get("churn", columns=["plan"]).columns) == ["plan"]
    with pytest.raises(NotFound):
        ds.resolve("churn", 9)
    with pytest.raises(NotFound):
        ds.resolve("nope")
    with pytest.raises(InvalidInput):
        ds.resolve("churn", "sideways")
    with pytest.raises(InvalidInput):
        ds.get("churn", columns=["missing"])


def test_reading_inside_a_run_records_lineage(frame: pd.DataFrame) -> None:
    version = ds.register("churn", frame)
    with lm.start_run() as run:
        ds.get("churn")
        derived = ds.register("churn-features", frame.assign(ratio=frame.charges / 2))
    service = ds.get_service()
    assert service.run_inputs(run.run_id) == [version.uri]
    assert service.runs_using("churn") == [run.run_id]
    assert derived.run_id == run.run_id
    lineage = ds.describe("churn-features")["lineage"]
    assert {(e["source_id"], e["role"]) for e in lineage} == {(run.run_id, "output")}


def test_tags_describe_and_list(frame: pd.DataFrame) -> None:
    ds.register("churn", frame, description="monthly churn", tags={"source": "crm"})
    ds.tag("churn", "reviewed", "yes")
    description = ds.describe("churn")
    assert description["version"]["tags"] == {"source": "crm", "reviewed": "yes"}
    assert description["dataset"]["description"] == "monthly churn"
    assert [d.name for d in ds.list()] == ["churn"]


def test_delete_refused_while_a_model_version_uses_it(
    frame: pd.DataFrame, isolated_home: Path
) -> None:
    version = ds.register("churn", frame)
    service = ds.get_service()
    service.store.add_lineage(
        "dataset_version", version.uri, "model_version", "churn-model/1", "training_data"
    )
    with pytest.raises(Conflict) as caught:
        ds.delete("churn", 1)
    assert "churn-model/1" in caught.value.message
    assert ds.resolve("churn") == version
    ds.delete("churn", 1, force=True)
    with pytest.raises(NotFound):
        ds.resolve("churn")
    blobs = [p for p in (isolated_home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert blobs == []


def test_delete_keeps_blobs_still_in_use(frame: pd.DataFrame) -> None:
    ds.register("a", frame)
    shared = ds.register("b", frame)
    ds.delete("a", all_versions=True)
    assert ds.get("b").shape == (1_000, 6)
    assert shared.version == 1


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "a\\b", "x" * 251, "-lead", "a..b", "a b"])
def test_bad_names(frame: pd.DataFrame, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ds.register(name, frame)
    assert caught.value.field == "name"
    assert ds.list() == []


def test_bad_inputs_register_nothing(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    cases: list[tuple[object, str]] = [
        (str(corrupt), "corrupt.parquet"),
        (ragged, "ragged.csv"),
        (str(tmp_path / "missing.parquet"), "missing.parquet"),
        (pd.DataFrame({"nested": [[1, 2], [3]]}), "nested"),
        (pd.DataFrame({"mixed": [1, "two", 3.0]}), "mixed"),
        (pd.DataFrame(), "no columns"),
        (pd.DataFrame({"a": pd.Series([], dtype=float)}), "no rows"),
        (tmp_path / "notes.txt", "notes.txt"),
        (42, "int"),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    for data, fragment in cases:
        with pytest.raises(InvalidInput) as caught:
            ds.register("bad", data)
        assert fragment in caught.value.message, caught.value.message
    assert ds.list() == []
