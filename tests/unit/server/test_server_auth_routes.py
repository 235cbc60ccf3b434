"""Auth on a live server: one walk over the whole route table, roles, token admin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from conftest import LiveServer
from loopml.errors import PermissionDenied, Unauthenticated
from loopml.store.rest import RestTrackingStore

API = "/api/v1"


def _name(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _error(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.get("field") == field, body
    assert body["message"]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("auth-home"), auth=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secrets_by_role(auth_server: LiveServer) -> dict[str, str]:
    service = auth_server.app.state.auth
    return {
        role: service.create_token(f"{role}-token", role) for role in ("reader", "writer", "admin")
    }


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_every_route_needs_a_token_and_the_right_role(
    auth_server: LiveServer, secrets_by_role: dict[str, str]
) -> None:
    routes = list(_api_routes(auth_server.app.routes))
    assert len(routes) >= 30
    public = {"/health"}
    checked = 0
    with httpx.Client(base_url=auth_server.url, timeout=10) as http:
        for route in routes:
            if route.path in public:
                continue
            path = route.path.replace("{path:path}", "x.txt").replace("{key:path}", "k")
            for placeholder in ("{run_id}", "{experiment_id}", "{name}"):
                path = path.replace(placeholder, "0" * 32)
            for method in sorted(route.methods):
                anonymous = http.request(method, path)
                assert anonymous.status_code == 401, (method, route.path, anonymous.text)
                assert anonymous.json()["error"] == "unauthenticated"
                assert anonymous.headers["www-authenticate"] == "Bearer"
                bad = http.request(method, path, headers={"Authorization": "Bearer wrong"})
                assert bad.status_code == 401, (method, route.path)
                reader = http.request(
                    method, path, headers={"Authorization": f"Bearer {secrets_by_role['reader']}"}
                )
                if method != "GET" or route.path.startswith(f"{API}/tokens"):
                    assert reader.status_code == 403, (method, route.path, reader.text)
                else:
                    assert reader.status_code not in (401, 403), (method, route.path)
                if route.path.startswith(f"{API}/tokens"):
                    writer = http.request(
                        method,
                        path,
                        headers={"Authorization": f"Bearer {secrets_by_role['writer']}"},
                    )
                    assert writer.status_code == 403, (method, route.path)
                checked += 1
    assert checked >= 30
    assert httpx.get(f"{auth_server.url}/health").status_code == 200
    assert httpx.get(f"{auth_server.url}/openapi.json").status_code == 200
    assert httpx.get(f"{auth_server.url}/docs").status_code == 200


def test_roles_in_practice(auth_server: LiveServer, secrets_by_role: dict[str, str]) -> None:
    with RestTrackingStore(auth_server.url, token=secrets_by_role["writer"]) as writer:
        experiment_id = writer.create_experiment(_name())
        run = writer.create_run(experiment_id, "r", "u", 1, {})
    with RestTrackingStore(auth_server.url, token=secrets_by_role["reader"]) as reader:
        assert reader.get_run(run.run_id).run_id == run.run_id
        with pytest.raises(PermissionDenied):
            reader.log_batch(run.run_id, params={"a": "1"})
    with RestTrackingStore(auth_server.url) as anonymous, pytest.raises(Unauthenticated):
        anonymous.list_experiments()


def test_admin_manages_tokens(auth_server: LiveServer, secrets_by_role: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {secrets_by_role['admin']}"}
    with httpx.Client(base_url=auth_server.url, headers=admin, timeout=10) as http:
        created = http.post(f"{API}/tokens", json={"name": "ci-bot", "role": "writer"})
        assert created.status_code == 201, created.text
        secret = created.json()["token"]
        listed = http.get(f"{API}/tokens").json()["tokens"]
        assert {"name": "ci-bot", "role": "writer"}.items() <= next(
            t for t in listed if t["name"] == "ci-bot"
        ).items()
        assert all(set(t) == {"name", "role", "created_time"} for t in listed)
        _error(http.post(f"{API}/tokens", json={"name": "x", "role": "root"}), 422, "role")
        _error(http.post(f"{API}/tokens", json={"name": "ci-bot", "role": "reader"}), 409, "name")
        mine = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{auth_server.url}{API}/experiments", headers=mine).status_code == 200
        assert http.delete(f"{API}/tokens/ci-bot").status_code == 204
        assert httpx.get(f"{auth_server.url}{API}/experiments", headers=mine).status_code == 401
        _error(http.delete(f"{API}/tokens/ci-bot"), 404, "name")
