"""Batch scoring: chunked, streamed, versioned, and exactly once across a restart."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import loopml as lm
from conftest import register_iris
from loopml.cli.batch_score import batch_score as batch_score_command
from loopml.cli.main import LoopmlGroup
from loopml.errors import InvalidInput
from loopml.models.storage import LoadedModel
from loopml.monitoring.predictions import is_sampled
from loopml.serving import _batch_log, batch
from loopml.serving.batch import batch_score

CHUNK = 40  # the 150 iris rows make 4 chunks, the last one short


@pytest.fixture
def iris(tmp_path: Path) -> pd.DataFrame:
    """Register ``iris`` version 1 as ``iris@champion``; write the features as Parquet/CSV."""
    features = register_iris()
    frame: pd.DataFrame = features.assign(row_id=np.arange(len(features)))
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    frame.to_csv(tmp_path / "in.csv", index=False)
    return frame


def _read(output: Path) -> pd.DataFrame:
    return pd.read_parquet(output).sort_values("row_id").reset_index(drop=True)


def _mark_completed(output: Path, chunks: list[int]) -> dict[str, Any]:
    """Rewrite the job manifest as if only ``chunks`` had completed; return it."""
    path = output / "_manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text())
    manifest["completed_chunks"] = chunks
    path.write_text(json.dumps(manifest))
    return manifest


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
    _mark_completed(output, [0])  # crashed after renaming parts 1-3 into place
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


@pytest.fixture
def threaded_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thread workers keep the test fast; the tasks are the same with process workers.
    options = {**batch.DASK_CLUSTER_OPTIONS, "processes": False, "dashboard_address": None}
    monkeypatch.setattr(batch, "DASK_CLUSTER_OPTIONS", options)


def test_dask_executor_resumes_a_local_job(
    iris: pd.DataFrame, tmp_path: Path, threaded_dask: None
) -> None:
    output = tmp_path / "out"
    source = tmp_path / "in.parquet"
    iris.to_parquet(source, index=False, row_group_size=25)  # chunks straddle row groups
    batch_score("iris@champion", str(source), str(output), chunk_rows=CHUNK, progress=False)
    (output / "part-00001.parquet").unlink()
    (output / "part-00003.parquet").unlink()
    _mark_completed(output, [0, 2])
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
    assert json.loads((output / "_manifest.json").read_text())["completed_chunks"] == [0, 1, 2, 3]
    with pytest.raises(InvalidInput, match="Parquet and CSV"):
        batch_score(
            "iris@champion", str(tmp_path / "in.json"), str(tmp_path / "o"), executor="dask"
        )


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

    def with_dask() -> batch.BatchScoreResult:
        return batch_score(
            "iris@champion",
            str(source),
            str(dask_out),
            chunk_rows=CHUNK,
            executor="dask",
            blocksize=1500,
            progress=False,
        )

    batch_score("iris@champion", str(source), str(local), chunk_rows=CHUNK, progress=False)
    result = with_dask()
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
    parts[1].unlink()
    assert _mark_completed(dask_out, [0])["layout"] == "csv-blocks:1500"
    again = with_dask()
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


# -- the prediction log -----------------------------------------------------------------------


def _logged() -> pd.DataFrame:
    frame: pd.DataFrame = lm.monitoring.predictions("iris", with_probabilities=True)
    return frame.sort_values("row_id").reset_index(drop=True)


def _job_id(output: Path) -> str:
    return str(json.loads((output / "_manifest.json").read_text())["job_id"])


def _assert_logged_like_the_output(
    logged: pd.DataFrame, output: Path, *, sample: bool = False
) -> None:
    """Every row of the output logged once (or, for a sample, some of them), as written."""
    scored = _read(output)
    if sample:
        scored = scored[scored["row_id"].isin(logged["row_id"])].reset_index(drop=True)
    assert list(logged["row_id"]) == list(scored["row_id"])
    assert set(logged["variant"]) == {"batch"}
    assert set(logged["version"]) == {1}
    assert set(logged["model"]) == {"iris"}
    features = [c for c in scored.columns if c.endswith("(cm)")]
    pd.testing.assert_frame_equal(logged[features], scored[features], check_dtype=False)
    np.testing.assert_array_equal(logged["prediction"].astype(int), scored["prediction"])
    assert not logged.duplicated(["request_id", "row"]).any()


def test_logged_predictions_match_the_output_file(iris: pd.DataFrame, tmp_path: Path) -> None:
    output = tmp_path / "out"
    source = str(tmp_path / "in.parquet")
    result = batch_score(
        "iris@champion",
        source,
        str(output),
        chunk_rows=CHUNK,
        proba=True,
        progress=False,
        log_predictions=True,
        log_sample_rate=1.0,
    )
    assert result.rows_logged == 150 and result.to_dict()["rows_logged"] == 150
    logged = _logged()
    _assert_logged_like_the_output(logged, output)
    job = _job_id(output)
    # Chunks of 40 rows are one logged request each, its rows numbered from 0.
    assert sorted(set(logged["request_id"])) == [f"batch:{job}:{i}:0" for i in range(4)]
    assert list(logged["row"]) == [i % CHUNK for i in range(150)]
    scored = _read(output)
    probabilities = np.vstack(logged["probabilities"].to_numpy())
    np.testing.assert_allclose(probabilities, scored[["proba_0", "proba_1", "proba_2"]])
    np.testing.assert_allclose(logged["probability"], probabilities.max(axis=1))

    # Logging is off unless asked for.
    again = batch_score("iris@champion", source, str(tmp_path / "o2"), progress=False)
    assert again.rows_logged == 0 and len(_logged()) == 150


def test_resume_logs_no_row_twice(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    source = str(tmp_path / "in.parquet")
    options: dict[str, Any] = {
        "chunk_rows": CHUNK,
        "progress": False,
        "log_predictions": True,
        "log_sample_rate": 1.0,
    }
    original_predict = LoadedModel.predict
    calls = {"n": 0}

    def crashing_predict(self: LoadedModel, data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker died")
        return original_predict(self, data)

    monkeypatch.setattr(LoadedModel, "predict", crashing_predict)
    with pytest.raises(RuntimeError, match="worker died"):
        batch_score("iris@champion", source, str(output), **options)
    # The chunks written before the crash were logged (the log is closed on error too).
    assert list(_logged()["row_id"]) == list(range(2 * CHUNK))
    monkeypatch.setattr(LoadedModel, "predict", original_predict)
    resumed = batch_score("iris@champion", source, str(output), **options)
    assert (resumed.chunks_written, resumed.rows_logged) == (2, 150 - 2 * CHUNK)
    _assert_logged_like_the_output(_logged(), output)
    done = batch_score("iris@champion", source, str(output), **options)
    assert (done.chunks_skipped, done.rows_logged) == (4, 0)
    assert len(_logged()) == 150


def test_sampling_keeps_whole_requests_at_about_the_rate(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batch_log, "LOG_REQUEST_ROWS", 5)
    many = pd.concat([iris] * 10).assign(row_id=np.arange(1500))
    many.to_parquet(tmp_path / "many.parquet", index=False)
    output = tmp_path / "out"
    result = batch_score(
        "iris@champion",
        str(tmp_path / "many.parquet"),
        str(output),
        chunk_rows=500,
        progress=False,
        log_predictions=True,
        log_sample_rate=0.2,
    )
    logged = _logged()
    job = _job_id(output)
    candidates = [f"batch:{job}:{c}:{o}" for c in range(3) for o in range(0, 500, 5)]
    expected = {r for r in candidates if is_sampled(r, 0.2)}
    assert set(logged["request_id"]) == expected
    assert 30 <= len(expected) <= 90  # 300 requests at 0.2: 60 expected
    assert result.rows_logged == len(logged) == 5 * len(expected)
    rows = logged.groupby("request_id")["row"].apply(sorted)
    assert all(r == [0, 1, 2, 3, 4] for r in rows)
    _assert_logged_like_the_output(logged, output, sample=True)


def test_dask_logs_from_this_process_after_each_partition(
    iris: pd.DataFrame, tmp_path: Path, threaded_dask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original_add = _batch_log.ChunkLog.add

    def add(self: _batch_log.ChunkLog, found: list[_batch_log.Sample]) -> None:
        threads.append(threading.current_thread().name)
        original_add(self, found)

    monkeypatch.setattr(_batch_log.ChunkLog, "add", add)
    output = tmp_path / "out"
    result = batch_score(
        "iris@champion",
        str(tmp_path / "in.csv"),
        str(output),
        chunk_rows=CHUNK,
        executor="dask",
        blocksize=1500,
        progress=False,
        log_predictions=True,
        log_sample_rate=1.0,
    )
    assert result.rows_logged == 150
    assert threads == [threading.main_thread().name] * result.chunks_written
    _assert_logged_like_the_output(_logged(), output)


def test_cli_logs_a_sample_by_default(iris: pd.DataFrame, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _cli()
    source = str(tmp_path / "in.parquet")
    args = ["batch-score", "iris@champion", source]
    result = runner.invoke(app, [*args, str(tmp_path / "a"), "--no-log-predictions"])
    assert result.exit_code == 0, result.output
    assert "rows logged" in result.stdout and "off" in result.stdout
    assert lm.monitoring.predictions("iris").empty
    result = runner.invoke(app, [*args, str(tmp_path / "b"), "--log-sample-rate", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_logged"] == 150
    _assert_logged_like_the_output(_logged(), tmp_path / "b")
    result = runner.invoke(app, [*args, str(tmp_path / "c"), "--log-sample-rate", "2"])
    assert result.exit_code == 2
    with pytest.raises(InvalidInput, match="log_sample_rate"):
        batch_score("iris@champion", source, str(tmp_path / "d"), log_sample_rate=-0.1)
