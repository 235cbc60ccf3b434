"""Body size limits and the last-resort 500, on apps built with small limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from conftest import serve_app
from loopml.config import Settings
from loopml.server.app import create_app

JSON_LIMIT = 2_048
UPLOAD_LIMIT = 256 * 1024


def _boom() -> None:
    raise RuntimeError("database password is hunter2")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    app: FastAPI = create_app(
        Settings(home=tmp_path_factory.mktemp("limits-home")),
        max_body_bytes=JSON_LIMIT,
        max_upload_bytes=UPLOAD_LIMIT,
    )
    app.add_api_route("/boom", _boom, methods=["GET"])
    with serve_app(app) as client:
        yield client


@pytest.fixture(scope="module")
def run_id(small_server: httpx.Client) -> str:
    experiment = small_server.post("/api/v1/experiments", json={"name": "limits"}).json()
    run = small_server.post("/api/v1/runs", json={"experiment_id": experiment["experiment_id"]})
    return str(run.json()["run_id"])


def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert body["field"] == "body"


def test_json_body_over_the_limit_declared(small_server: httpx.Client, run_id: str) -> None:
    tags = {f"k{i}": "v" * 50 for i in range(60)}
    response = small_server.post(f"/api/v1/runs/{run_id}/log-batch", json={"tags": tags})
    _assert_413(response)
    assert small_server.get(f"/api/v1/runs/{run_id}").json()["tags"] == {}


def test_json_body_over_the_limit_chunked(small_server: httpx.Client, run_id: str) -> None:
    response = small_server.post(
        f"/api/v1/runs/{run_id}/log-batch",
        content=_chunks(JSON_LIMIT * 3),
        headers={"Content-Type": "application/json"},
    )
    _assert_413(response)


def test_json_body_under_the_limit_passes(small_server: httpx.Client, run_id: str) -> None:
    response = small_server.post(f"/api/v1/runs/{run_id}/log-batch", json={"tags": {"a": "b"}})
    assert response.status_code == 204, response.text


def test_upload_over_the_limit_declared(small_server: httpx.Client, run_id: str) -> None:
    response = small_server.put(
        f"/api/v1/runs/{run_id}/artifacts/big.bin", content=b"x" * (UPLOAD_LIMIT + 1)
    )
    _assert_413(response)
    assert small_server.get(f"/api/v1/runs/{run_id}/artifacts").json() == {"artifacts": []}


def test_upload_over_the_limit_chunked(small_server: httpx.Client, run_id: str) -> None:
    response = small_server.put(
        f"/api/v1/runs/{run_id}/artifacts/big.bin", content=_chunks(UPLOAD_LIMIT * 2, 64 * 1024)
    )
    _assert_413(response)
    assert small_server.get(f"/api/v1/runs/{run_id}/artifacts").json() == {"artifacts": []}


def test_upload_limit_is_separate_from_the_json_limit(
    small_server: httpx.Client, run_id: str
) -> None:
    payload = b"y" * (JSON_LIMIT * 10)
    response = small_server.put(
        f"/api/v1/runs/{run_id}/artifacts/ok.bin", content=_chunks(len(payload), 4096)
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(payload)


def test_unexpected_errors_are_a_generic_json_500(small_server: httpx.Client) -> None:
    response = small_server.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "hunter2" not in response.text and "Traceback" not in response.text
