"""The same pipeline on the in-process, process and Dask executors; kills, retries, timeouts."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pipeline_steps_for_executors as steps
import psutil
import pytest

import loopml as lm
from loopml.config import load_settings
from loopml.entities.pipelines import PipelineStatus, StepStatus
from loopml.pipelines.executors_process import (
    ProcessExecutor,
    importable_by_reference,
    step_payload,
)
from loopml.pipelines.runner import PipelineResult
from loopml.pipelines.worker import StepTask

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _children() -> set[int]:
    """Live descendants, without multiprocessing's long-lived helper processes."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if "resource_tracker" not in command and "forkserver" not in command:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _fingerprint(result: PipelineResult) -> dict[str, Any]:
    """Every step's status, output digests and loaded output values, plus the step metric."""
    assert result.succeeded, result.run.error
    service = lm.get_service()
    found: dict[str, Any] = {}
    for name, execution in result.steps.items():
        found[name] = {
            "status": execution.status,
            "sha256": {ref.name: ref.sha256 for ref in execution.outputs},
        }
        value = result.step_output(name)
        found[name]["value"] = value.to_dict("list") if hasattr(value, "to_dict") else value
    scale_run = result.steps["scale"].run_id
    assert scale_run is not None
    found["metric"] = [m.value for m in service.get_metric_history(scale_run, "scaled_max")]
    return found


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """One real LocalCluster (2 worker processes, 1 thread each) for the module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    )
    yield cluster.scheduler_address
    cluster.close()


# -- identical results everywhere --------------------------------------------------------------
def _executor(kind: str, request: pytest.FixtureRequest) -> Any:
    """``process``, ``forkserver`` (a process executor), ``dask-local`` or ``dask-address``."""
    if kind == "forkserver":
        return ProcessExecutor(start_method="forkserver")
    if kind == "dask-address":
        from loopml.pipelines.executors_dask import DaskExecutor

        return DaskExecutor(request.getfixturevalue("dask_address"))
    return kind.partition("-")[0]


forkserver = pytest.param("forkserver", marks=posix_only)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["process", forkserver, "dask-local", "dask-address"])
def test_same_pipeline_gives_identical_outputs(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _fingerprint(steps.executor_parity.run(cache=False, executor="inprocess"))
    if kind == "dask-address":  # also exercises the scheduler address from the environment
        monkeypatch.setenv("LOOPML_DASK_SCHEDULER", request.getfixturevalue("dask_address"))
        chosen: Any = "dask"
    else:
        monkeypatch.delenv("LOOPML_DASK_SCHEDULER", raising=False)
        chosen = _executor(kind, request)
    before = _children()
    result = steps.executor_parity.run(cache=False, executor=chosen)
    assert result.run.executor == ("process" if kind == "forkserver" else kind.partition("-")[0])
    assert all(s.status is StepStatus.COMPLETED for s in result.steps.values())
    assert _fingerprint(result) == reference
    assert result.output() == reference["join"]["value"]
    assert reference["metric"] and len(reference["metric"]) == 1
    if kind != "dask-address":  # the executor's processes (or LocalCluster) are gone
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in _children() - before):
            assert time.monotonic() < deadline, "worker processes outlived the run"
            time.sleep(0.1)


def test_module_steps_go_by_reference_local_ones_by_value() -> None:
    assert importable_by_reference(steps.make_frame)
    assert step_payload(steps.make_frame) is None

    @lm.step
    def local(n: int) -> int:
        return n

    assert not importable_by_reference(local)
    payload = step_payload(local)
    assert payload is not None
    assert payload.startswith(b"\x80")


@pytest.mark.parametrize(
    "kind", ["process", forkserver, pytest.param("dask-address", marks=pytest.mark.slow)]
)
def test_steps_defined_in_a_function_travel_by_value(
    kind: str, request: pytest.FixtureRequest
) -> None:
    offset = 3

    @lm.step
    def shifted(n: int) -> list[int]:
        return [i + offset for i in range(n)]

    @lm.pipeline
    def local_pipeline(n: int = 4) -> object:
        return shifted(n)

    result = local_pipeline.run({"n": 4}, executor=_executor(kind, request))
    assert result.succeeded, result.run.error
    assert result.output() == [3, 4, 5, 6]


# -- process executor: timeouts, kills, retries -------------------------------------------------
def test_timed_out_step_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleepy.pid"
    before = _children()
    started = time.monotonic()
    result = steps.sleepy_pipeline.run({"pid_file": str(pid_file)}, executor="process")
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert result.run.status is PipelineStatus.FAILED
    assert result.steps["sleepy"].status is StepStatus.FAILED
    assert "TimeoutError" in (result.steps["sleepy"].error or "")
    assert result.steps["after"].status is StepStatus.SKIPPED
    # Every process the run started is gone (reaped), whether or not the step got to write
    # its pid before the deadline (interpreter start-up alone can take a second).
    assert all(_gone(pid) for pid in _children() - before)
    if pid_file.exists():
        assert _gone(int(pid_file.read_text()))


@posix_only
def test_cancel_escalates_to_sigkill(tmp_path: Path) -> None:
    pid_file = tmp_path / "stubborn.pid"
    settings = load_settings()
    task = StepTask(
        node="stubborn",
        step_reference=steps.stubborn.reference,
        inputs={},
        params={"pid_file": str(pid_file)},
        outputs=("output",),
        materializer=None,
        store_uri=settings.resolved_store_uri,
        artifact_uri=settings.resolved_artifact_uri,
        tracking_run_id=None,
    )
    executor = ProcessExecutor(kill_grace=0.5)
    executor.start(1)
    try:
        future = executor.submit(task, steps.stubborn)
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the step never started"
            assert not future.done(), future.result()
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        time.sleep(0.2)  # let the step install its SIGTERM handler
        cancelled = time.monotonic()
        executor.cancel(future)
        with pytest.raises(CancelledError):
            future.result(timeout=1)
        while not _gone(pid):
            assert time.monotonic() - cancelled < 10, "the stubborn step survived"
            time.sleep(0.05)
        # SIGTERM was ignored, so it took the SIGKILL after the grace period.
        assert time.monotonic() - cancelled >= 0.4
    finally:
        executor.shutdown()


def test_retries_with_backoff_on_the_process_executor(tmp_path: Path) -> None:
    counter = tmp_path / "attempts.txt"
    result = steps.flaky_pipeline.run({"counter": str(counter)}, executor="process")
    assert result.run.status is PipelineStatus.COMPLETED, result.run.error
    execution = result.steps["flaky"]
    assert execution.status is StepStatus.COMPLETED
    assert execution.attempts == 2
    assert result.output() == 2
    first, second = (float(line) for line in counter.read_text().splitlines())
    assert second - first >= 0.5  # retry_backoff


@posix_only
def test_sigkilled_step_fails_and_downstream_is_skipped() -> None:
    result = steps.killed_pipeline.run(executor="process")
    assert result.run.status is PipelineStatus.FAILED
    killed = result.steps["killed"]
    assert killed.status is StepStatus.FAILED
    assert "StepProcessDied" in (killed.error or "")
    assert signal.SIGKILL.name in (killed.error or "")
    assert result.steps["after"].status is StepStatus.SKIPPED


# -- dask specifics -----------------------------------------------------------------------------
@pytest.mark.slow
def test_dask_fails_fast_without_workers_offering_resources(dask_address: str) -> None:
    from loopml.pipelines.executors_dask import DaskExecutor

    started = time.monotonic()
    result = steps.gpu_pipeline.run(executor=DaskExecutor(dask_address))
    assert time.monotonic() - started < 30
    assert result.run.status is PipelineStatus.FAILED
    assert "resources" in (result.steps["needs_gpu"].error or "")
