"""``/api/v1/models`` on live servers: register, read, aliases, archive, tags, audit, cards,
and the champion approval rule on a server with auth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import LiveServer
from loopml.models.storage import log_model
from loopml.tracking.service import TrackingService
from loopml.tracking.system import current_user

API = "/api/v1/models"


def _model_name() -> str:
    # The session server's stores are shared with other tests: one name per test.
    return f"churn-{uuid.uuid4().hex[:10]}"


def _frame() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"tenure": rng.integers(0, 72, 120), "charges": rng.normal(70, 20, 120)})
    return frame, (frame.charges > 70).astype(int)


def _logged_model(server: LiveServer, **metrics: float) -> str:
    """Log a fitted model into a run of the server's own stores; return its runs:/ URI."""
    tracking: TrackingService = server.app.state.tracking
    experiment = tracking.get_or_create_experiment("registry-rest")
    run = tracking.create_run(experiment.experiment_id)
    if metrics:
        tracking.log_batch(run.run_id, metrics=[{"key": k, "value": v} for k, v in metrics.items()])
    frame, target = _frame()
    model = LogisticRegression().fit(frame, target)
    info = log_model(tracking, run.run_id, model, "model", input_example=frame.head())
    tracking.end_run(run.run_id)
    return info.uri


def _error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.get("field") == field, body
    assert body["message"]
    return body


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        yield http


def test_register_and_read(client: httpx.Client, live_server: LiveServer) -> None:
    name = _model_name()
    uri = _logged_model(live_server, f1=0.91, worst=float("inf"))
    created = client.post(
        f"{API}/{name}/versions", json={"model_uri": uri, "description": "baseline"}
    )
    assert created.status_code == 201, created.text
    version = created.json()
    assert version["name"] == name and version["version"] == 1
    assert version["source"] == uri and version["status"] == "READY"
    assert version["flavor"] == "sklearn" and version["description"] == "baseline"
    assert version["metrics"] == {"f1": 0.91, "worst": "inf"}
    assert [c["name"] for c in version["signature"]["inputs"]] == ["tenure", "charges"]
    assert version["user"] == current_user()
    second = client.post(f"{API}/{name}/versions", json={"model_uri": uri, "tags": {"n": 2}})
    assert second.status_code == 201 and second.json()["tags"] == {"n": "2"}

    listed = client.get(API).json()["models"]
    assert next(m for m in listed if m["name"] == name)["latest_version"] == 2
    model = client.get(f"{API}/{name}").json()
    assert model["latest_version"] == 2 and model["latest"]["version"] == 2
    assert model["aliases"] == {}
    versions = client.get(f"{API}/{name}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get(f"{API}/{name}/versions/1").json()["description"] == "baseline"
    assert client.get(f"{API}/{name}/aliases/latest").json()["version"] == 2


def test_aliases_archive_tags_and_audit(client: httpx.Client, live_server: LiveServer) -> None:
    name = _model_name()
    uri = _logged_model(live_server)
    for _ in range(2):
        assert client.post(f"{API}/{name}/versions", json={"model_uri": uri}).status_code == 201

    challenger = client.put(f"{API}/{name}/aliases/challenger", json={"version": 2})
    assert challenger.status_code == 200, challenger.text
    assert challenger.json()["previous"] is None and challenger.json()["version"] == 2
    _error(client.put(f"{API}/{name}/aliases/champion", json={"version": 1}), 400, "reason")
    first = client.put(f"{API}/{name}/aliases/champion", json={"version": 1, "reason": "first"})
    assert first.json()["previous"] is None
    assert client.get(f"{API}/{name}/aliases/champion").json()["version"] == 1
    _error(client.post(f"{API}/{name}/versions/1/archive"), 400, "version")
    promoted = client.put(
        f"{API}/{name}/aliases/champion", json={"version": 2, "reason": "beats v1 on f1"}
    )
    assert promoted.json() == {"name": name, "alias": "champion", "version": 2, "previous": 1}
    assert client.get(f"{API}/{name}").json()["aliases"] == {"champion": 2, "challenger": 2}
    removed = client.delete(f"{API}/{name}/aliases/challenger", params={"reason": "promoted"})
    assert removed.json() == {"name": name, "alias": "challenger", "version": None, "previous": 2}
    _error(client.get(f"{API}/{name}/aliases/challenger"), 404, "alias")

    archived = client.post(f"{API}/{name}/versions/1/archive", json={"reason": "superseded"})
    assert archived.status_code == 200 and archived.json()["status"] == "ARCHIVED"
    _error(
        client.put(f"{API}/{name}/aliases/shadow", json={"version": 1}),
        400,
        "version",
    )
    restored = client.post(f"{API}/{name}/versions/1/restore")
    assert restored.status_code == 200 and restored.json()["status"] == "READY"

    tagged = client.post(f"{API}/{name}/tags", json={"key": "team", "value": "risk"})
    assert tagged.status_code == 204
    tagged = client.post(f"{API}/{name}/tags", json={"key": "checked", "value": True, "version": 2})
    assert tagged.status_code == 204
    assert client.get(f"{API}/{name}").json()["tags"] == {"team": "risk"}
    assert client.get(f"{API}/{name}/versions/2").json()["tags"] == {"checked": "True"}

    entries = client.get(f"{API}/{name}/audit").json()["entries"]
    assert {e["user"] for e in entries} == {current_user()}
    moves = [
        (e["from_value"], e["to_value"], e["reason"])
        for e in entries
        if e["action"] == "set_alias:champion"
    ]
    assert moves == [(None, "1", "first"), ("1", "2", "beats v1 on f1")]
    actions = [e["action"] for e in entries]
    assert actions[:2] == ["create_model", "create_version"]
    assert {"delete_alias:challenger", "set_status", "set_tag"} <= set(actions)
    statuses = [(e["to_value"], e["reason"]) for e in entries if e["action"] == "set_status"]
    assert statuses == [("ARCHIVED", "superseded"), ("READY", "")]


def test_model_card(client: httpx.Client, live_server: LiveServer) -> None:
    name = _model_name()
    uri = _logged_model(live_server, accuracy=0.875)
    client.post(f"{API}/{name}/versions", json={"model_uri": uri, "description": "first cut"})
    live_server.app.state.registry.record(
        name,
        1,
        "gate",
        {"passed": True, "reasons": [{"passed": True, "message": "f1 >= 0.8"}]},
    )
    markdown = client.get(f"{API}/{name}/versions/1/card")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Model card: {name} v1")
    assert "| accuracy | 0.875 |" in markdown.text
    assert "## Validation gate: passed" in markdown.text
    page = client.get(f"{API}/{name}/versions/1/card", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert f"<h1>Model card: {name} v1</h1>" in page.text
    assert client.get(f"{API}/{name}/versions/1").json()["gate"]["passed"] is True
    _error(client.get(f"{API}/{name}/versions/1/card", params={"format": "pdf"}), 422, "format")


def test_model_card_can_show_only_a_kept_importance(
    client: httpx.Client, live_server: LiveServer
) -> None:
    name = _model_name()
    uri = _logged_model(live_server, accuracy=0.9)
    client.post(f"{API}/{name}/versions", json={"model_uri": uri})
    card = f"{API}/{name}/versions/1/card"
    stored = client.get(card, params={"importance": "stored"})
    assert stored.status_code == 200
    assert "not computed yet" in stored.text and "mean abs SHAP" not in stored.text
    computed = client.get(card, params={"importance": "compute"})
    assert "| feature | mean abs SHAP |" in computed.text
    # Kept with the run: the stored card now shows it too.
    again = client.get(card, params={"importance": "stored", "format": "html"})
    assert "mean abs SHAP" in again.text
    _error(client.get(card, params={"importance": "later"}), 422, "importance")


def test_errors_are_json(client: httpx.Client, live_server: LiveServer) -> None:
    name = _model_name()
    missing_run = f"runs:/{'0' * 32}/model"
    _error(client.get(f"{API}/{name}"), 404, "name")
    _error(client.get(f"{API}/{name}/versions/1"), 404, "name")
    _error(client.post(f"{API}/{name}/versions", json={"model_uri": "s3://x"}), 400, "model_uri")
    _error(client.post(f"{API}/{name}/versions", json={"model_uri": missing_run}), 404, "run_id")
    _error(client.post(f"{API}/{name}/versions", json={}), 422, "model_uri")
    _error(
        client.post(f"{API}/{name}/versions", json={"model_uri": missing_run, "stage": "x"}),
        422,
        "stage",
    )
    _error(client.post(f"{API}/bad%20name/versions", json={"model_uri": missing_run}), 400, "name")
    uri = _logged_model(live_server)
    client.post(f"{API}/{name}/versions", json={"model_uri": uri})
    _error(client.get(f"{API}/{name}/versions/7"), 404, "version")
    _error(client.get(f"{API}/{name}/versions/0"), 400, "version")
    _error(client.get(f"{API}/{name}/versions/one"), 422, "version")
    _error(client.put(f"{API}/{name}/aliases/champion", json={"version": 0}), 422, "version")
    _error(client.put(f"{API}/{name}/aliases/Bad", json={"version": 1}), 400, "alias")
    _error(client.put(f"{API}/{name}/aliases/latest", json={"version": 1}), 400, "alias")
    _error(client.get(f"{API}/{name}/aliases/nobody"), 404, "alias")
    _error(client.delete(f"{API}/{name}/aliases/nobody"), 404, "alias")


def test_openapi_documents_the_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        API: {"get"},
        f"{API}/{{name}}": {"get"},
        f"{API}/{{name}}/versions": {"get", "post"},
        f"{API}/{{name}}/versions/{{version}}": {"get"},
        f"{API}/{{name}}/aliases/{{alias}}": {"get", "put", "delete"},
        f"{API}/{{name}}/versions/{{version}}/archive": {"post"},
        f"{API}/{{name}}/versions/{{version}}/restore": {"post"},
        f"{API}/{{name}}/tags": {"post"},
        f"{API}/{{name}}/audit": {"get"},
        f"{API}/{{name}}/versions/{{version}}/card": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path


# -- with auth ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("models-auth-home"), auth=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def headers(auth_server: LiveServer) -> dict[str, dict[str, str]]:
    service = auth_server.app.state.auth
    return {
        role: {"Authorization": f"Bearer {service.create_token(f'{role}-bot', role)}"}
        for role in ("reader", "writer", "admin")
    }


def test_champion_needs_admin_with_auth(
    auth_server: LiveServer, headers: dict[str, dict[str, str]]
) -> None:
    name = _model_name()
    uri = _logged_model(auth_server)
    with httpx.Client(base_url=auth_server.url, timeout=30) as http:
        assert http.get(API).status_code == 401
        _error(http.post(f"{API}/{name}/versions", json={"model_uri": uri}), 401, None)
        _error(
            http.post(f"{API}/{name}/versions", json={"model_uri": uri}, headers=headers["reader"]),
            403,
            None,
        )
        created = http.post(
            f"{API}/{name}/versions", json={"model_uri": uri}, headers=headers["writer"]
        )
        assert created.status_code == 201, created.text
        assert created.json()["user"] == "writer-bot"
        assert http.get(f"{API}/{name}", headers=headers["reader"]).status_code == 200

        challenger = http.put(
            f"{API}/{name}/aliases/challenger", json={"version": 1}, headers=headers["writer"]
        )
        assert challenger.status_code == 200, challenger.text
        body = {"version": 1, "reason": "ready for production"}
        denied = _error(
            http.put(f"{API}/{name}/aliases/champion", json=body, headers=headers["writer"]),
            403,
            "alias",
        )
        assert "admin" in denied["message"] and "writer-bot" in denied["message"]
        _error(
            http.put(f"{API}/{name}/aliases/champion", json=body, headers=headers["reader"]),
            403,
            None,
        )
        # The role check comes first, the reason is still required of admins.
        _error(
            http.put(
                f"{API}/{name}/aliases/champion", json={"version": 1}, headers=headers["admin"]
            ),
            400,
            "reason",
        )
        approved = http.put(f"{API}/{name}/aliases/champion", json=body, headers=headers["admin"])
        assert approved.status_code == 200, approved.text
        _error(
            http.delete(f"{API}/{name}/aliases/champion", headers=headers["writer"]), 403, "alias"
        )
        entries = http.get(f"{API}/{name}/audit", headers=headers["reader"]).json()["entries"]

    by_action = {e["action"]: e for e in entries}
    assert by_action["create_version"]["user"] == "writer-bot"
    assert by_action["set_alias:challenger"]["user"] == "writer-bot"
    champion = by_action["set_alias:champion"]
    assert (champion["user"], champion["reason"], champion["to_value"]) == (
        "admin-bot",
        "ready for production",
        "1",
    )
    assert [e["action"] for e in entries].count("set_alias:champion") == 1
