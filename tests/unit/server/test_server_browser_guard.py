"""Host allowlist and Origin check on a live server (DNS rebinding, CSRF)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from conftest import LiveServer

API = "/api/v1"


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        yield http


def _name() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


def _error(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_unknown_host_is_refused(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/health", headers={"Host": "evil.example:80"})
    _error(response, 400, "host")
    response = httpx.post(
        f"{live_server.url}{API}/experiments",
        json={"name": _name()},
        headers={"Host": "rebind.attacker.test"},
    )
    _error(response, 400, "host")
    ok = httpx.get(f"{live_server.url}/health", headers={"Host": f"localhost:{live_server.port}"})
    assert ok.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://127.0.0.1.evil.io"])
def test_foreign_origin_cannot_write(client: httpx.Client, origin: str) -> None:
    name = _name()
    response = client.post(f"{API}/experiments", json={"name": name}, headers={"Origin": origin})
    _error(response, 403, "origin")
    assert client.get(f"{API}/experiments/by-name", params={"name": name}).status_code == 404
    # Reads carry no side effects; the browser's same-origin policy hides their answers.
    assert client.get(f"{API}/experiments", headers={"Origin": origin}).status_code == 200


def test_local_origin_may_write(client: httpx.Client, live_server: LiveServer) -> None:
    for origin in (live_server.url, "http://localhost:3000"):
        response = client.post(
            f"{API}/experiments", json={"name": _name()}, headers={"Origin": origin}
        )
        assert response.status_code == 201, response.text
