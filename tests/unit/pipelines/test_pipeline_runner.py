"""The pipeline engine: DAG, caching and its reasons, retries, timeouts, metadata, errors."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopml as lm
from loopml.entities.pipelines import PipelineStatus, StepStatus
from loopml.errors import InvalidInput
from loopml.pipelines.dsl import Graph, Node, StepOutput
from loopml.pipelines.runner import load_pipeline

# -- steps used by several tests -------------------------------------------------------------
_attempts: dict[str, int] = {}
_barrier = threading.Barrier(2, timeout=10)


def scale(values: pd.Series, factor: float) -> pd.Series:
    return values * factor


@lm.step
def make_frame(rows: int) -> pd.DataFrame:
    print(f"making {rows} rows")
    return pd.DataFrame({"x": range(rows)})


@lm.step
def double(frame: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    lm.log_metric("rows", len(frame))
    return frame.assign(y=scale(frame.x, factor))


@lm.step
def total(frame: pd.DataFrame) -> float:
    return float(frame.y.sum())


@lm.step(outputs=("head", "tail"))
def halves(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    middle = len(frame) // 2
    return frame.iloc[:middle], frame.iloc[middle:]


@lm.step
def count_rows(frame: pd.DataFrame) -> int:
    return len(frame)


@lm.pipeline
def doubling(rows: int = 5, factor: float = 2.0) -> Any:
    return total(double(make_frame(rows), factor))


@lm.pipeline
def halving(rows: int = 6) -> Any:
    head, tail = halves(make_frame(rows))
    return {"head": count_rows(head), "tail": count_rows(tail)}


@lm.step
def meet(name: str) -> str:
    _barrier.wait()
    return name


@lm.pipeline
def side_by_side() -> Any:
    return meet("left"), meet("right")


@lm.step(retries=2, retry_backoff=0.01)
def flaky(key: str) -> str:
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] == 1:
        raise ConnectionError("first attempt fails")
    return key


@lm.step(retries=1, retry_backoff=0.01)
def broken(rows: int) -> int:
    raise ValueError(f"cannot handle {rows} rows")


@lm.step(timeout=0.3)
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@lm.step
def opaque() -> object:
    return object()


@lm.step(materializer="pickle")
def pickled() -> Any:
    return {1, 2, 3}


@lm.pipeline
def flaky_pipeline(key: str = "a") -> Any:
    return flaky(key)


@lm.pipeline
def broken_pipeline(rows: int = 3) -> Any:
    return count_rows(make_frame(broken(rows)))


@lm.pipeline
def slow_pipeline() -> Any:
    return slow(3.0)


@lm.pipeline
def opaque_pipeline() -> Any:
    return opaque()


@lm.pipeline
def pickled_pipeline() -> Any:
    return pickled()


# -- tests ---------------------------------------------------------------------------------------
def _statuses(result: Any) -> dict[str, str]:
    return {name: s.status.value for name, s in result.steps.items()}


def test_runs_the_dag_and_returns_outputs() -> None:
    result = doubling(rows=5)
    assert result.succeeded
    assert result.output() == 20.0
    assert result.step_output("make_frame")["x"].tolist() == [0, 1, 2, 3, 4]
    assert _statuses(result) == {
        "make_frame": "COMPLETED",
        "double": "COMPLETED",
        "total": "COMPLETED",
    }
    assert result.steps["double"].upstream == ("make_frame",)


def test_multiple_outputs_and_returned_dict() -> None:
    result = halving(rows=7)
    assert (result.output("head"), result.output("tail")) == (3, 4)


def test_cache_hits_and_the_reason_for_each_miss() -> None:
    first = doubling(rows=5)
    assert all("no earlier execution" in s.cache_reason for s in first.steps.values())
    again = doubling(rows=5)
    assert _statuses(again) == dict.fromkeys(_statuses(first), "CACHED")
    assert "cache hit" in again.steps["total"].cache_reason
    assert again.output() == 20.0

    changed_input = doubling(rows=6)
    reasons = {n: s.cache_reason for n, s in changed_input.steps.items()}
    assert reasons["make_frame"] == "cache miss: parameter rows changed"
    assert reasons["double"] == "cache miss: input frame changed"

    changed_param = doubling(rows=6, factor=3.0)
    assert changed_param.steps["make_frame"].status is StepStatus.CACHED
    assert changed_param.steps["double"].cache_reason == "cache miss: parameter factor changed"

    uncached = doubling.run({"rows": 6, "factor": 3.0}, cache=False)
    assert {s.cache_reason for s in uncached.steps.values()} == {
        "cache miss: cache disabled for this run"
    }


def test_code_changes_invalidate_the_cache(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import loopml as lm

        def helper(x):
            return x + {delta}

        @lm.step
        def produce(n: int) -> int:
            return helper(n)

        @lm.step
        def consume(value: int) -> int:
            return value * 10

        @lm.pipeline
        def versioned(n: int = 1):
            return consume(produce(n))
    """)
    module = tmp_path / "versioned_pipeline.py"
    module.write_text(source.format(delta=1))
    first = load_pipeline(f"{module}:versioned").run({"n": 1})
    assert first.output() == 20
    assert load_pipeline(f"{module}:versioned").run({"n": 1}).steps["produce"].status is (
        StepStatus.CACHED
    )
    module.write_text(source.format(delta=100) + "\n# helper changed\n")
    changed = load_pipeline(f"{module}:versioned").run({"n": 1})
    assert changed.steps["produce"].cache_reason == "cache miss: code changed"
    assert changed.steps["consume"].cache_reason == "cache miss: input value changed"
    assert changed.output() == 1010
    assert changed.run.pipeline_version != first.run.pipeline_version


def test_missing_outputs_are_a_miss(isolated_home: Path) -> None:
    doubling(rows=4)
    for blob in (isolated_home / "artifacts" / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    again = doubling(rows=4)
    assert again.steps["make_frame"].cache_reason == (
        "cache miss: outputs of the earlier identical execution are gone"
    )
    assert again.succeeded


def test_independent_steps_run_concurrently() -> None:
    # Each step waits for the other at a barrier: run one after the other, they would time out.
    result = side_by_side()
    assert result.succeeded, result.steps
    assert (result.output("output_0"), result.output("output_1")) == ("left", "right")


def test_retries_with_backoff() -> None:
    result = flaky_pipeline(key="retry-test")
    assert result.succeeded
    assert result.steps["flaky"].attempts == 2


def test_failure_is_recorded_and_downstream_skipped() -> None:
    result = broken_pipeline(rows=3)
    assert result.run.status is PipelineStatus.FAILED
    failed = result.steps["broken"]
    assert failed.status is StepStatus.FAILED
    assert failed.attempts == 2
    assert failed.error == "ValueError: cannot handle 3 rows"
    assert "Traceback" in (failed.traceback or "") and "broken" in (failed.traceback or "")
    assert result.steps["make_frame"].status is StepStatus.SKIPPED
    assert result.steps["count_rows"].status is StepStatus.SKIPPED
    assert "broken" in (result.run.error or "")
    with pytest.raises(lm.LoopmlError, match="cannot handle 3 rows"):
        result.raise_if_failed()
    assert lm.get_run(failed.run_id or "").status is lm.RunStatus.FAILED


def test_timeout_fails_the_step() -> None:
    started = time.monotonic()
    result = slow_pipeline()
    assert time.monotonic() - started < 2.5
    assert result.steps["slow"].status is StepStatus.FAILED
    assert "took longer than 0.3 s" in (result.steps["slow"].error or "")


def test_unserialisable_output_is_a_clear_error() -> None:
    result = opaque_pipeline()
    assert result.steps["opaque"].status is StepStatus.FAILED
    assert "no materializer stores" in (result.steps["opaque"].error or "")
    assert pickled_pipeline().output() == {1, 2, 3}


def test_metadata_is_complete(isolated_home: Path) -> None:
    result = doubling(rows=3)
    run = result.run
    assert run.pipeline_name == "doubling" and len(run.pipeline_version) == 64
    assert run.params == {"rows": 3, "factor": 2.0}
    assert run.executor == "inprocess" and run.host and run.trigger == "manual"
    assert run.end_time is not None and run.duration_ms is not None
    step = result.steps["double"]
    assert len(step.step_version) == 64 and len(step.cache_key) == 64
    assert step.start_time and step.end_time and step.duration_ms is not None
    assert step.executor == "inprocess" and step.host
    assert step.params == {"factor": 2.0}
    assert set(step.inputs) == {"frame"}
    assert step.inputs["frame"] == result.steps["make_frame"].outputs[0].sha256
    assert step.outputs[0].materializer == "parquet"
    tracked = lm.get_run(step.run_id or "")
    assert tracked.parent_run_id == run.run_id
    assert tracked.metrics == {"rows": 3.0}
    parent = lm.get_run(run.run_id or "")
    assert parent.params == {"rows": "3", "factor": "2.0"}
    assert parent.status is lm.RunStatus.FINISHED
    from loopml.store.artifacts import open_blob_store

    logs_sha = result.steps["make_frame"].logs_sha256
    assert logs_sha is not None
    with open_blob_store(str(isolated_home / "artifacts")).open(logs_sha) as logs:
        assert logs.read() == b"making 3 rows\n"


def test_bad_input() -> None:
    with pytest.raises(InvalidInput, match="outside a pipeline"):
        make_frame(3)
    assert make_frame.fn(2)["x"].tolist() == [0, 1]
    with pytest.raises(InvalidInput) as caught:
        doubling(rows="many")
    assert caught.value.field == "rows"
    with pytest.raises(InvalidInput, match="no parameter"):
        doubling(colour="red")
    graph = Graph()
    graph.nodes["a"] = Node("a", make_frame, {"x": StepOutput("b", "output")}, {})
    graph.nodes["b"] = Node("b", make_frame, {"x": StepOutput("a", "output")}, {})
    with pytest.raises(InvalidInput, match="cycle"):
        graph.order()
    with pytest.raises(InvalidInput, match="not a valid"):
        lm.step(name="bad name!")(lambda: 1)

    @lm.pipeline
    def branching() -> Any:
        if make_frame(2):
            return None
        return None

    with pytest.raises(InvalidInput, match="only known when the pipeline runs"):
        branching()
