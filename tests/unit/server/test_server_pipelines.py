"""``/api/v1/pipelines`` on a live server: pipelines, run pages, the step tree, step logs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import loopml as lm
from conftest import LiveServer
from loopml.pipelines import Pipeline, PipelineResult, StepOutput

API = "/api/v1/pipelines"


@lm.step
def produce(n: int) -> list[int]:
    print(f"producing {n}")
    return list(range(n))


@lm.step
def consume(values: list[int], fail: bool) -> int:
    if fail:
        raise ValueError("consume refused")
    return sum(values)


def _flow() -> Pipeline:
    # A name of its own: the session server's home is shared with other tests.
    def flow(n: int = 3, fail: bool = False) -> StepOutput:
        result: StepOutput = consume(produce(n), fail)
        return result

    return lm.pipeline(name=f"rest_{uuid.uuid4().hex[:8]}")(flow)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        yield http


@pytest.fixture
def run_in_server(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run pipelines into the stores the live server reads."""
    # The stores themselves, not only the server's home: the session server may have been
    # created while another test's LOOPML_STORE_URI was still in the environment.
    service = live_server.app.state.pipelines
    monkeypatch.setenv("LOOPML_HOME", str(live_server.home))
    monkeypatch.setenv("LOOPML_STORE_URI", service.store.uri)
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", service.blobs.uri)

    def run(pipeline: Pipeline, **params: Any) -> PipelineResult:
        return pipeline.run(params)

    return run


def _error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.get("field") == field, body
    assert body["message"]
    return body


def test_pipelines_and_run_pages(client: httpx.Client, run_in_server: Any) -> None:
    flow = _flow()
    ids = [run_in_server(flow, n=n).run.id for n in (1, 2, 3)]
    listed = client.get(API)
    assert listed.status_code == 200, listed.text
    summary = next(p for p in listed.json()["pipelines"] if p["pipeline_name"] == flow.name)
    assert summary["runs"] == 3 and summary["last_run_id"] == ids[-1]
    assert summary["last_status"] == "COMPLETED"

    page = client.get(f"{API}/runs", params={"pipeline": flow.name, "max_results": 2}).json()
    assert [r["id"] for r in page["runs"]] == [ids[2], ids[1]]
    assert page["next_offset"] == 2
    last = client.get(
        f"{API}/runs", params={"pipeline": flow.name, "max_results": 2, "offset": 2}
    ).json()
    assert [r["id"] for r in last["runs"]] == [ids[0]]
    assert last["next_offset"] is None
    run = last["runs"][0]
    assert run["params"] == {"n": 1, "fail": False}
    assert run["duration_ms"] >= 0 and run["trigger"] == "manual" and run["run_id"]
    empty = client.get(f"{API}/runs", params={"pipeline": "no-such-pipeline"}).json()
    assert empty == {"runs": [], "next_offset": None}
    everything = client.get(f"{API}/runs", params={"max_results": 1000}).json()["runs"]
    assert set(ids) <= {r["id"] for r in everything}


def test_run_tree_and_logs(client: httpx.Client, run_in_server: Any) -> None:
    flow = _flow()
    first = run_in_server(flow, n=4).run.id
    cached = run_in_server(flow, n=4).run.id
    tree = client.get(f"{API}/runs/{first[:8]}")
    assert tree.status_code == 200, tree.text
    body = tree.json()
    assert body["run"]["id"] == first and body["run"]["status"] == "COMPLETED"
    assert [s["step_name"] for s in body["steps"]] == ["produce", "consume"]
    consume_step = body["steps"][1]
    assert consume_step["upstream"] == ["produce"]
    assert consume_step["cache_hit"] is False
    assert consume_step["cache_reason"].startswith("cache miss:")
    assert consume_step["duration_ms"] >= 0
    assert body["summary"] == {"steps": 2, "cache_hits": 0, "by_status": {"COMPLETED": 2}}

    again = client.get(f"{API}/runs/{cached}").json()
    assert again["summary"]["cache_hits"] == 2
    assert all(s["cache_hit"] and s["status"] == "CACHED" for s in again["steps"])

    logs = client.get(f"{API}/runs/{cached}/steps/produce/logs")
    assert logs.status_code == 200
    assert logs.headers["content-type"].startswith("text/plain")
    assert logs.text == "producing 4\n"
    quiet = client.get(f"{API}/runs/{first}/steps/consume/logs")
    assert quiet.status_code == 200 and quiet.text == ""


def test_failed_run_over_rest(client: httpx.Client, run_in_server: Any) -> None:
    failed = run_in_server(_flow(), fail=True).run.id
    body = client.get(f"{API}/runs/{failed}").json()
    assert body["run"]["status"] == "FAILED"
    step = next(s for s in body["steps"] if s["step_name"] == "consume")
    assert step["status"] == "FAILED" and step["error"] == "ValueError: consume refused"
    assert "Traceback" in step["traceback"]
    logs = client.get(f"{API}/runs/{failed}/steps/consume/logs").text
    assert "ValueError: consume refused" in logs


def test_errors_are_json(client: httpx.Client, run_in_server: Any) -> None:
    run_id = run_in_server(_flow()).run.id
    _error(client.get(f"{API}/runs/{'0' * 32}"), 404, "run_id")
    _error(client.get(f"{API}/runs/{run_id[:4]}"), 404, "run_id")
    _error(client.get(f"{API}/runs/not-an-id"), 404, "run_id")
    _error(client.get(f"{API}/runs/{'0' * 32}/steps/produce/logs"), 404, "run_id")
    missing = _error(client.get(f"{API}/runs/{run_id}/steps/nope/logs"), 404, "step")
    assert "produce" in missing["message"]
    _error(client.get(f"{API}/runs", params={"max_results": 0}), 422, "max_results")
    _error(client.get(f"{API}/runs", params={"max_results": 5000}), 422, "max_results")
    _error(client.get(f"{API}/runs", params={"offset": -1}), 422, "offset")
    _error(client.post(f"{API}/runs"), 405, None)


def test_openapi_documents_the_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        API,
        f"{API}/runs",
        f"{API}/runs/{{run_id}}",
        f"{API}/runs/{{run_id}}/steps/{{step}}/logs",
    ):
        assert set(paths[path]) == {"get"}, path
