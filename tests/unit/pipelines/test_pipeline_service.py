"""PipelineService: listing, id prefixes, topological step order, logs and the run tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import loopml as lm
from loopml.entities.pipelines import PipelineRun, PipelineStatus, StepExecution, StepStatus
from loopml.errors import InvalidInput, NotFound
from loopml.pipelines import service as service_module
from loopml.pipelines.service import PipelineService, get_pipeline_service, topological


@lm.step
def source(n: int) -> list[int]:
    print(f"making {n} values")
    return list(range(n))


@lm.step
def doubled(values: list[int]) -> list[int]:
    return [2 * v for v in values]


@lm.step
def squared(values: list[int]) -> list[int]:
    return [v * v for v in values]


@lm.step
def combined(a: list[int], b: list[int], fail: bool) -> int:
    if fail:
        raise RuntimeError("combined was asked to fail\nsecond line")
    return sum(a) + sum(b)


@lm.pipeline(name="svc_diamond")
def diamond(n: int = 4, fail: bool = False) -> lm.pipelines.StepOutput:
    values = source(n)
    total: lm.pipelines.StepOutput = combined(doubled(values), squared(values), fail)
    return total


@pytest.fixture
def service() -> PipelineService:
    return get_pipeline_service()


def _run(record_id: str, name: str = "handmade", start: int = 1_000) -> PipelineRun:
    return PipelineRun(
        id=record_id,
        pipeline_name=name,
        pipeline_version="v",
        status=PipelineStatus.COMPLETED,
        start_time=start,
        end_time=start + 5,
        executor="inprocess",
        host="h",
        params={},
    )


def _step(run_id: str, name: str, upstream: tuple[str, ...], start: int) -> StepExecution:
    return StepExecution(
        id=f"{name}-{run_id[:6]}",
        pipeline_run_id=run_id,
        step_name=name,
        step_version="v",
        cache_key="k",
        status=StepStatus.COMPLETED,
        start_time=start,
        end_time=start + 1,
        upstream=upstream,
    )


def test_lists_pipelines_and_runs(service: PipelineService) -> None:
    assert service.list_pipelines() == []
    assert service.list_runs() == []
    first = diamond(n=3)
    second = diamond(n=3)
    (summary,) = service.list_pipelines()
    assert summary["pipeline_name"] == "svc_diamond"
    assert summary["runs"] == 2
    assert summary["last_run_id"] in {first.run.id, second.run.id}
    runs = service.list_runs("svc_diamond")
    assert {r.id for r in runs} == {first.run.id, second.run.id}
    assert len(service.list_runs(limit=1)) == 1
    assert len(service.list_runs(limit=1, offset=1)) == 1
    assert service.list_runs(offset=2) == []
    assert service.list_runs("no_such_pipeline") == []
    with pytest.raises(InvalidInput) as limit:
        service.list_runs(limit=0)
    assert limit.value.field == "limit"
    with pytest.raises(InvalidInput) as offset:
        service.list_runs(offset=-1)
    assert offset.value.field == "offset"


def test_get_run_by_id_and_prefix(service: PipelineService) -> None:
    run = diamond().run
    assert service.get_run(run.id) == run
    assert service.get_run(run.id[:8]) == run
    assert service.get_run(f" {run.id[:12].upper()} ") == run
    with pytest.raises(NotFound, match="at least 8 characters"):
        service.get_run(run.id[:7])
    for bad in ("", "not-an-id", "../../etc", "f" * 32, "f" * 10, "x" * 300):
        with pytest.raises(NotFound) as error:
            service.get_run(bad)
        assert error.value.field == "run_id"


def test_ambiguous_prefix_and_paged_scan(
    service: PipelineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "_SCAN_PAGE", 2)
    ids = [f"abcdef12{i}{'0' * 23}" for i in range(5)]
    for index, record_id in enumerate(ids):
        service.store.create_pipeline_run(_run(record_id, start=1_000 + index))
    with pytest.raises(InvalidInput, match="matches more than one run") as error:
        service.get_run("abcdef12")
    assert error.value.field == "run_id"
    # The oldest run is on the last page of the scan.
    assert service.get_run(ids[0][:9]).id == ids[0]
    assert service.get_run(ids[4][:9]).id == ids[4]
    with pytest.raises(NotFound):
        service.get_run("abcdef13")


def test_steps_are_topological_whatever_the_start_order(service: PipelineService) -> None:
    run_id = "1" * 32
    service.store.create_pipeline_run(_run(run_id))
    # Recorded start times contradict the graph: the store returns them in start order.
    for name, upstream, start in (
        ("report", ("train", "features"), 10),
        ("train", ("features", "load"), 20),
        ("features", ("load",), 30),
        ("load", (), 40),
        ("audit", (), 50),
    ):
        service.store.save_step_execution(_step(run_id, name, upstream, start))
    names = [s.step_name for s in service.steps(run_id[:8])]
    assert names == ["load", "features", "train", "report", "audit"]


def test_topological_keeps_unknown_upstream_and_cycles() -> None:
    a = _step("r" * 32, "a", ("gone",), 1)
    b = _step("r" * 32, "b", ("c",), 2)
    c = _step("r" * 32, "c", ("b",), 3)
    assert [s.step_name for s in topological([c, b, a])] == ["a", "c", "b"]
    assert topological([]) == []


def test_diamond_steps_logs_and_tree(service: PipelineService) -> None:
    result = diamond(n=5)
    steps = service.steps(result.run.id)
    assert [s.step_name for s in steps][0] == "source"
    assert [s.step_name for s in steps][-1] == "combined"
    assert service.step_logs(result.run.id, "source") == "making 5 values\n"
    assert service.step_logs(result.run.id, "doubled") == ""
    with pytest.raises(NotFound, match=r"no step 'nope' \(steps: source, ") as missing:
        service.step_logs(result.run.id, "nope")
    assert missing.value.field == "step"

    tree = service.tree(result.run.id[:10])
    json.dumps(tree)  # JSON-able as it is
    assert tree["run"]["id"] == result.run.id
    assert tree["run"]["status"] == "COMPLETED"
    assert tree["summary"] == {"steps": 4, "cache_hits": 0, "by_status": {"COMPLETED": 4}}
    by_name = {s["step_name"]: s for s in tree["steps"]}
    assert by_name["combined"]["upstream"] == ["doubled", "squared"]
    assert by_name["source"]["has_logs"] is True
    assert by_name["doubled"]["has_logs"] is False
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in tree["steps"])
    assert all(s["cache_reason"].startswith("cache miss:") for s in tree["steps"])


def test_cached_run_reuses_logs_and_counts_hits(service: PipelineService) -> None:
    diamond(n=6)
    cached = diamond(n=6)
    tree = service.tree(cached.run.id)
    assert tree["summary"]["cache_hits"] == 4
    assert tree["summary"]["by_status"] == {"CACHED": 4}
    assert all(s["cache_hit"] and s["cache_reason"].startswith("cache hit:") for s in tree["steps"])
    # A cache hit shows what the reused execution printed.
    assert service.step_logs(cached.run.id, "source") == "making 6 values\n"


def test_failed_run_tree_and_traceback_logs(service: PipelineService) -> None:
    result = diamond(fail=True)
    tree = service.tree(result.run.id)
    assert tree["run"]["status"] == "FAILED"
    failed = next(s for s in tree["steps"] if s["step_name"] == "combined")
    assert failed["status"] == "FAILED"
    assert failed["error"].startswith("RuntimeError: combined was asked to fail")
    assert tree["summary"]["by_status"] == {"COMPLETED": 3, "FAILED": 1}
    logs = service.step_logs(result.run.id, "combined")
    assert "Traceback" in logs and "RuntimeError" in logs


def test_missing_logs_blob_is_not_found(service: PipelineService) -> None:
    result = diamond(n=7)
    sha = next(s.logs_sha256 for s in service.steps(result.run.id) if s.step_name == "source")
    assert sha is not None
    service.blobs.delete(sha)
    with pytest.raises(NotFound):
        service.step_logs(result.run.id, "source")


def test_get_pipeline_service_follows_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_pipeline_service()
    assert get_pipeline_service() is first
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "elsewhere"))
    other = get_pipeline_service()
    assert other is not first
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(InvalidInput) as error:
        get_pipeline_service()
    assert error.value.field == "tracking_uri"
