"""Batch scoring: chunked, streamed, versioned, and exactly once across a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.batch_score import batch_score as batch_score_command
from loopml.cli.main import LoopmlGroup
from loopml.errors import InvalidInput
from loopml.models.storage import LoadedModel
from loopml.serving import batch
from loopml.serving.batch import batch_score

CHUNK = 40  # the 150 iris rows make 4 chunks, the last one short


@pytest.fixture
def iris(tmp_path: Path) -> pd.DataFrame:
    """Register ``iris`` version 1 as ``iris@champion``; write the features as Parquet/CSV."""
    features, target = load_iris(return_X_y=True, as_frame=True)
    with lm.start_run():
        info = lm.log_model(
            LogisticRegression(max_iter=300).fit(features, target),
            "model",
            input_example=features.head(),
        )
    lm.registry.register(info.uri, "iris")
    lm.registry.set_alias("iris", "champion", 1, reason="first")
    frame: pd.DataFrame = features.assign(row_id=np.arange(len(features)))
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    frame.to_csv(tmp_path / "in.csv", index=False)
    return frame


def _read(output: Path) -> pd.DataFrame:
    return pd.read_parquet(output).sort_values("row_id").reset_index(drop=True)


def _expected(frame: pd.DataFrame) -> np.ndarray:
    features = frame.drop(columns="row_id")
    return np.asarray(lm.models.load("iris@champion").predict(features))


@pytest.mark.parametrize("name", ["in.parquet", "in.csv"])
def test_chunks_predict_like_the_whole_frame(iris: pd.DataFrame, tmp_path: Path, name: str) -> None:
    output = tmp_path / "out"
    result = batch_score(
        "iris@champion", str(tmp_path / name), str(output), chunk_rows=CHUNK, progress=False
    )
    assert (result.rows, result.chunks_written, result.chunks_skipped) == (150, 4, 0)
    assert (result.model, result.version) == ("iris", 1)
    parts = sorted(p.name for p in output.glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]
    scored = _read(output)
    assert list(scored["row_id"]) == list(range(150))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), _expected(iris))
    assert set(scored["model_name"]) == {"iris"}
    assert set(scored["model_version"]) == {1}
    assert set(iris.columns) < set(scored.columns)
    manifest = json.loads((output / "_manifest.json").read_text())
    assert manifest["completed_chunks"] == [0, 1, 2, 3]
    assert (manifest["model"], manifest["version"], manifest["chunk_rows"]) == ("iris", 1, CHUNK)
    assert manifest["spec"] == "iris@champion"
    assert not list(output.glob(".*.tmp"))


def test_id_column_and_probabilities(iris: pd.DataFrame, tmp_path: Path) -> None:
    output = tmp_path / "out"
    batch_score(
        "iris@champion",
        str(tmp_path / "in.parquet"),
        str(output),
        chunk_rows=CHUNK,
        id_column="row_id",
        proba=True,
        progress=False,
    )
    scored = _read(output)
    assert list(scored.columns) == [
        "row_id",
        "prediction",
        "proba_0",
        "proba_1",
        "proba_2",
        "model_name",
        "model_version",
    ]
    totals = scored[["proba_0", "proba_1", "proba_2"]].sum(axis=1)
    np.testing.assert_allclose(totals, 1.0)


def test_resume_after_a_crash_scores_each_row_exactly_once(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    source = str(tmp_path / "in.parquet")
    original_predict = LoadedModel.predict
    calls = {"n": 0}

    def crashing_predict(self: LoadedModel, data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker died")
        return original_predict(self, data)

    writes: list[int] = []
    original_write = batch._write_part

    def counting_write(fs: Any, root: str, index: int, table: Any) -> None:
        writes.append(index)
        original_write(fs, root, index, table)

    monkeypatch.setattr(batch, "_write_part", counting_write)
    monkeypatch.setattr(LoadedModel, "predict", crashing_predict)
    with pytest.raises(RuntimeError, match="worker died"):
        batch_score("iris@champion", source, str(output), chunk_rows=CHUNK, progress=False)
    assert writes == [0, 1]
    before = {p.name: p.stat().st_mtime_ns for p in output.glob("part-*.parquet")}
    assert sorted(before) == ["part-00000.parquet", "part-00001.parquet"]

    monkeypatch.setattr(LoadedModel, "predict", original_predict)
    result = batch_score("iris@champion", source, str(output), chunk_rows=CHUNK, progress=False)
    assert writes == [0, 1, 2, 3]
    assert (result.rows, result.chunks_written, result.chunks_skipped) == (70, 2, 2)
    for name, mtime in before.items():
        assert (output / name).stat().st_mtime_ns == mtime
    scored = _read(output)
    assert list(scored["row_id"]) == list(range(150))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), _expected(iris))

    again = batch_score("iris@champion", source, str(output), chunk_rows=CHUNK, progress=False)
    assert (again.rows, again.chunks_written, again.chunks_skipped) == (0, 0, 4)
    assert writes == [0, 1, 2, 3]


def test_a_part_written_before_the_manifest_update_is_not_rewritten(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    source = str(tmp_path / "in.parquet")
    batch_score("iris@champion", source, str(output), chunk_rows=CHUNK, progress=False)
    manifest_path = output / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["completed_chunks"] = [0]  # crashed after renaming parts 1-3 into place
    manifest_path.write_text(json.dumps(manifest))
    result = batch_score("iris@champion", source, str(output), chunk_rows=CHUNK, progress=False)
    assert (result.chunks_written, result.chunks_skipped) == (0, 4)
    assert len(pd.read_parquet(output)) == 150


def test_refuses_to_resume_with_another_version_input_or_chunk_size(
    iris: pd.DataFrame, tmp_path: Path
) -> None:
    output = str(tmp_path / "out")
    source = str(tmp_path / "in.parquet")
    batch_score("iris@champion", source, output, chunk_rows=CHUNK, progress=False)
    with pytest.raises(InvalidInput, match="chunk_rows"):
        batch_score("iris@champion", source, output, chunk_rows=50, progress=False)
    with pytest.raises(InvalidInput, match="input"):
        batch_score("iris@champion", str(tmp_path / "in.csv"), output, chunk_rows=CHUNK)
    version = lm.registry.resolve("iris@champion")
    lm.registry.register(version.source, "iris")
    lm.registry.set_alias("iris", "champion", 2, reason="retrained")
    with pytest.raises(InvalidInput, match="version 1"):
        batch_score("iris@champion", source, output, chunk_rows=CHUNK, progress=False)


def test_missing_column_names_it(iris: pd.DataFrame, tmp_path: Path) -> None:
    source = tmp_path / "partial.parquet"
    iris.drop(columns="petal width (cm)").to_parquet(source, index=False)
    with pytest.raises(InvalidInput, match="petal width") as caught:
        batch_score("iris@champion", str(source), str(tmp_path / "out"), progress=False)
    assert caught.value.field == "petal width (cm)"
    assert not (tmp_path / "out").exists()


def test_bad_arguments(iris: pd.DataFrame, tmp_path: Path) -> None:
    source = str(tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match="chunk_rows"):
        batch_score("iris@champion", source, str(tmp_path / "o"), chunk_rows=0)
    with pytest.raises(InvalidInput, match="executor"):
        batch_score("iris@champion", source, str(tmp_path / "o"), executor="spark")
    with pytest.raises(InvalidInput, match="id_column"):
        batch_score("iris@champion", source, str(tmp_path / "o"), id_column="nope")


def _cli() -> typer.Typer:
    app = typer.Typer(cls=LoopmlGroup)
    app.command("batch-score")(batch_score_command)

    @app.callback()
    def root() -> None:
        """Test root."""

    return app


def test_cli_happy_path_and_exit_2(iris: pd.DataFrame, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _cli()
    source = str(tmp_path / "in.csv")
    output = str(tmp_path / "out")
    args = ["batch-score", "iris@champion", source, output, "--chunk-rows", "100"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chunks_written"] == 2
    result = runner.invoke(app, [*args, "--id-column", "row_id"])
    assert result.exit_code == 2
    assert "id_column" in result.stderr
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "scored 0 rows with iris/1" in result.stdout
    for bad, message in [
        (["batch-score", "nosuch@champion", source, output], "nosuch"),
        (["batch-score", "iris@champion", str(tmp_path / "missing.csv"), output], "missing"),
    ]:
        result = runner.invoke(app, bad)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert "Traceback" not in result.output


def test_dask_executor_resumes_a_local_job(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thread workers keep the test fast; the tasks are the same with process workers.
    options = {**batch.DASK_CLUSTER_OPTIONS, "processes": False, "dashboard_address": None}
    monkeypatch.setattr(batch, "DASK_CLUSTER_OPTIONS", options)
    output = tmp_path / "out"
    source = tmp_path / "in.parquet"
    iris.to_parquet(source, index=False, row_group_size=25)  # chunks straddle row groups
    batch_score("iris@champion", str(source), str(output), chunk_rows=CHUNK, progress=False)
    (output / "part-00001.parquet").unlink()
    (output / "part-00003.parquet").unlink()
    manifest_path = output / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["completed_chunks"] = [0, 2]
    manifest_path.write_text(json.dumps(manifest))
    result = batch_score(
        "iris@champion",
        str(source),
        str(output),
        chunk_rows=CHUNK,
        executor="dask",
        progress=False,
    )
    assert (result.rows, result.chunks_written, result.chunks_skipped) == (70, 2, 2)
    scored = _read(output)
    assert list(scored["row_id"]) == list(range(150))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), _expected(iris))
    assert json.loads(manifest_path.read_text())["completed_chunks"] == [0, 1, 2, 3]
    with pytest.raises(InvalidInput, match="Parquet and CSV"):
        batch_score(
            "iris@champion", str(tmp_path / "in.json"), str(tmp_path / "o"), executor="dask"
        )


@pytest.fixture
def threaded_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thread workers keep the test fast; the tasks are the same with process workers.
    options = {**batch.DASK_CLUSTER_OPTIONS, "processes": False, "dashboard_address": None}
    monkeypatch.setattr(batch, "DASK_CLUSTER_OPTIONS", options)


def test_dask_scores_csv_like_the_local_executor(
    iris: pd.DataFrame, tmp_path: Path, threaded_dask: None
) -> None:
    source = tmp_path / "mixed.csv"
    frame = iris.assign(
        note=["", "a", "b, quoted", "NA"] * 37 + ["z", ""],  # text: "" and "NA" stay text
        weight=[1.5, np.nan, 2.0] * 50,  # a gap in a number column is null
        day=pd.date_range("2024-01-01", periods=150, freq="D").strftime("%Y-%m-%d"),
    )
    frame.to_csv(source, index=False)
    local, dask_out = tmp_path / "local", tmp_path / "dask"
    batch_score("iris@champion", str(source), str(local), chunk_rows=CHUNK, progress=False)
    result = batch_score(
        "iris@champion",
        str(source),
        str(dask_out),
        chunk_rows=CHUNK,
        executor="dask",
        blocksize=1500,
        progress=False,
    )
    parts = sorted(dask_out.glob("part-*.parquet"))
    assert len(parts) == result.chunks_written > 2
    assert (result.rows, result.chunks_skipped) == (150, 0)
    expected = _read(local)
    pd.testing.assert_frame_equal(_read(dask_out), expected)
    assert pq.read_schema(parts[0]) == pq.read_schema(local / "part-00000.parquet")
    assert list(expected["note"][:4]) == ["", "a", "b, quoted", "NA"]
    assert expected["weight"].isna().sum() == 50
    np.testing.assert_array_equal(expected["prediction"].to_numpy(), _expected(iris))

    # Resume: only the missing partitions are scored again, into the same output.
    manifest_path = dask_out / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["layout"] == "csv-blocks:1500"
    parts[1].unlink()
    manifest["completed_chunks"] = [0]
    manifest_path.write_text(json.dumps(manifest))
    again = batch_score(
        "iris@champion",
        str(source),
        str(dask_out),
        chunk_rows=CHUNK,
        executor="dask",
        blocksize=1500,
        progress=False,
    )
    assert (again.chunks_written, again.chunks_skipped) == (1, len(parts) - 1)
    pd.testing.assert_frame_equal(_read(dask_out), expected)

    # A job cut into rows is never resumed in byte blocks, nor the other way round.
    with pytest.raises(InvalidInput, match="chunks of rows"):
        batch_score("iris@champion", str(source), str(local), chunk_rows=CHUNK, executor="dask")
    with pytest.raises(InvalidInput, match="CSV blocks of 1500 bytes"):
        batch_score("iris@champion", str(source), str(dask_out), chunk_rows=CHUNK)


def test_dask_csv_sizes_blocks_from_chunk_rows_and_names_bad_values(
    iris: pd.DataFrame, tmp_path: Path, threaded_dask: None
) -> None:
    many = pd.concat([iris] * 10).assign(row_id=np.arange(1500))
    many.to_csv(tmp_path / "many.csv", index=False)
    output = tmp_path / "out"
    result = batch_score(
        "iris@champion",
        str(tmp_path / "many.csv"),
        str(output),
        chunk_rows=200,
        executor="dask",
        id_column="row_id",
        progress=False,
    )
    layout = json.loads((output / "_manifest.json").read_text())["layout"]
    assert int(layout.removeprefix("csv-blocks:")) >= batch.MIN_BLOCKSIZE
    sizes = [pq.read_metadata(p).num_rows for p in sorted(output.glob("part-*.parquet"))]
    assert result.rows == sum(sizes) == 1500
    assert len(sizes) == result.chunks_written > 3
    assert all(100 <= size <= 400 for size in sizes), sizes  # about chunk_rows lines each
    scored = _read(output)
    assert list(scored.columns) == ["row_id", "prediction", "model_name", "model_version"]
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), _expected(many))

    broken = tmp_path / "broken.csv"
    text = (tmp_path / "in.csv").read_text().splitlines()
    text[-1] = "5.9,3.0,5.1,wide,149"
    broken.write_text("\n".join(text) + "\n")
    # Whichever partition fails first: the one holding "wide" cannot be parsed as the
    # signature's double; the other parses but, as on the local executor, the column Arrow
    # read as text is refused by the signature.
    with pytest.raises(InvalidInput, match=r"partition 1 could not be read .*'wide'|must hold"):
        batch_score(
            "iris@champion",
            str(broken),
            str(tmp_path / "o2"),
            executor="dask",
            blocksize=1000,
            progress=False,
        )
    with pytest.raises(InvalidInput, match="blocksize"):
        batch_score("iris@champion", str(tmp_path / "in.csv"), str(tmp_path / "o3"), blocksize=10)
