"""Deployments over real HTTP: A/B with sticky keys, canary rollback and promotion, shadows."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from serving_models import Flaky, Opposite

import loopml as lm
from conftest import register_iris, serve_app
from loopml.models.storage import LoadedModel
from loopml.serving import create_serving_app
from loopml.serving.deployment import parse_deployment
from loopml.serving.traffic import PredictionRecord
from loopml.store.base import DeploymentEvent


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def iris() -> tuple[dict[int, LoadedModel], pd.DataFrame]:
    """Three versions of iris in this test's registry (champion -> 1) and their models."""
    X = register_iris()
    for _ in range(2):
        lm.registry.register(lm.registry.resolve("iris/1").source, "iris")
    base = lm.models.load("iris/1")
    fitted = base.model
    models = {}
    for version, inner in ((1, fitted), (2, Flaky(fitted, 6.0)), (3, Opposite(fitted))):
        model = copy.copy(base)
        model.model = inner
        model.registered = ("iris", version)
        models[version] = model
    return models, X


def _loader(models: dict[int, LoadedModel]) -> Callable[[str], LoadedModel]:
    def load(spec: str) -> LoadedModel:
        return models[lm.registry.resolve(spec).version]

    return load


def _records(X: pd.DataFrame, index: int) -> dict[str, Any]:
    return {"inputs": [X.iloc[index].to_dict()]}


def test_ab_split_is_sticky_and_names_the_variant(
    iris: tuple[dict[int, LoadedModel], pd.DataFrame],
) -> None:
    models, X = iris
    config = parse_deployment(
        {
            "name": "iris-ab",
            "model": "iris",
            "sticky_key": "X-User-Id",
            "variants": [
                {"name": "blue", "model": "champion", "weight": 1},
                {"name": "green", "model": 3, "weight": 1},
            ],
        }
    )
    app = create_serving_app(config, loader=_loader(models), max_wait_ms=1)
    with serve_app(app) as client:
        seen: dict[str, str] = {}
        for _ in range(3):
            for user in range(30):
                response = client.post(
                    "/predict", json=_records(X, user), headers={"X-User-Id": f"u{user}"}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert response.headers["x-loopml-variant"] == body["variant"]
                assert body["version"] == (1 if body["variant"] == "blue" else 3)
                assert seen.setdefault(f"u{user}", body["variant"]) == body["variant"]
        assert set(seen.values()) == {"blue", "green"}
        metadata = client.get("/metadata").json()
        assert metadata["deployment"] == "iris-ab" and metadata["sticky_key"] == "X-User-Id"
        assert {v["name"]: v["share"] for v in metadata["variants"]} == {"blue": 0.5, "green": 0.5}
        text = client.get("/metrics").text
        assert 'loopml_serving_variant_requests_total{outcome="ok",variant="blue"}' in text
        share = 'loopml_serving_variant_share{name="iris",role="primary",variant="green"'
        assert f'{share},version="3"}} 0.5' in text


def test_alias_move_canary_is_rolled_back_on_errors(
    iris: tuple[dict[int, LoadedModel], pd.DataFrame],
) -> None:
    models, X = iris
    config = parse_deployment(
        {
            "name": "iris-api",
            "model": "iris",
            "on_alias_move": "canary",
            "variants": [{"name": "main", "model": "champion"}],
            "canary": {
                "share": 0.5,
                "duration": "1h",
                "min_requests": 20,
                "max_error_rate": 0.05,
                "check_interval": "50ms",
            },
        }
    )
    app = create_serving_app(
        config, loader=_loader(models), reload_interval=0.05, max_wait_ms=1, revision=4
    )
    with serve_app(app) as client:
        lm.registry.set_alias("iris", "champion", 2, reason="try v2")
        _until(lambda: client.get("/metadata").json()["canary"] is not None)
        statuses: dict[str, list[int]] = {"main": [], "canary": []}

        def rolled_back() -> bool:
            last = client.get("/metadata").json()["last_canary"]
            return last is not None and last["outcome"] == "rolled_back"

        index = 0
        while not rolled_back():
            response = client.post("/predict", json=_records(X, 50 + index % 100))
            statuses[response.headers["x-loopml-variant"]].append(response.status_code)
            index += 1
            assert index < 2000, "the canary was never rolled back"
        assert set(statuses["main"]) == {200}
        assert 500 in statuses["canary"]
        assert lm.registry.resolve("iris@champion").version == 1
        reason = lm.registry.get_service().audit("iris")[-1].reason
        assert reason.startswith("canary rollback: error rate ")
        assert reason.endswith(f"> 0.05 over {reason.split('over ')[1]}")
        for i in range(20):
            body = client.post("/predict", json=_records(X, i)).json()
            assert (body["variant"], body["version"]) == ("main", 1)

    from loopml.config import load_settings
    from loopml.store.registry import open_deployment_store

    events = open_deployment_store(load_settings()).list_deployment_events("iris-api")
    kinds = [(e.kind, e.variant, e.from_version, e.to_version, e.revision) for e in events]
    assert kinds == [
        ("canary_started", "canary", 1, 2, 4),
        ("rolled_back", "canary", 2, 1, 4),
    ]
    assert events[-1].evidence["error_rate"] > 0.05
    assert events[-1].evidence["requests"] >= 20
    assert events[-1].evidence["reason"] == reason


def test_configured_canary_is_promoted_when_healthy(
    iris: tuple[dict[int, LoadedModel], pd.DataFrame],
) -> None:
    models, X = iris
    models[2].model = models[1].model  # version 2 behaves
    events: list[DeploymentEvent] = []
    config = parse_deployment(
        {
            "name": "iris-api",
            "model": "iris",
            "variants": [
                {"name": "main", "model": "champion"},
                {"name": "next", "model": 2, "role": "canary"},
            ],
            "canary": {
                "share": 0.5,
                "duration": "0.3s",
                "min_requests": 10,
                "check_interval": "50ms",
            },
        }
    )
    app = create_serving_app(
        config, loader=_loader(models), event_sink=events.append, max_wait_ms=1
    )
    with serve_app(app) as client:
        index = 0
        while not any(e.kind == "promoted" for e in events):
            response = client.post("/predict", json=_records(X, index % 150))
            assert response.status_code == 200, response.text
            index += 1
            assert index < 2000, "the canary was never promoted"
        assert lm.registry.resolve("iris@champion").version == 2
        assert lm.registry.get_service().audit("iris")[-1].reason.startswith("canary promoted")
        for i in range(10):
            body = client.post("/predict", json=_records(X, i)).json()
            assert (body["variant"], body["version"]) == ("main", 2)
        metadata = client.get("/metadata").json()
        assert [(v["name"], v["version"], v["share"]) for v in metadata["variants"]] == [
            ("main", 2, 1.0)
        ]
    assert [e.kind for e in events] == ["canary_started", "promoted"]
    assert (events[-1].from_version, events[-1].to_version) == (1, 2)


def test_shadows_never_change_the_response_and_may_fail(
    iris: tuple[dict[int, LoadedModel], pd.DataFrame],
) -> None:
    models, X = iris
    records: list[PredictionRecord] = []
    config = parse_deployment(
        {
            "name": "iris-shadow",
            "model": "iris",
            "variants": [
                {"name": "main", "model": "champion"},
                {"name": "opposite", "model": 3, "role": "shadow"},
                {"name": "flaky", "model": 2, "role": "shadow"},
            ],
        }
    )
    plain = create_serving_app("iris@champion", loader=_loader(models), max_wait_ms=1)
    shadowed = create_serving_app(
        config, loader=_loader(models), on_prediction=records.append, max_wait_ms=1
    )
    rows = [0, 60, 120, 140]  # sepal lengths 5.1, 5.0, 7.2, 6.7: the flaky shadow fails on two
    with serve_app(plain) as client:
        expected = [client.post("/predict", json=_records(X, i)).json() for i in rows]
    with serve_app(shadowed) as client:
        answers = [client.post("/predict", json=_records(X, i)).json() for i in rows]
        _until(lambda: sum(r.role == "shadow" for r in records) == 2 * len(rows))
        text = client.get("/metrics").text
        metadata = client.get("/metadata").json()
    for got, want in zip(answers, expected, strict=True):
        assert got["predictions"] == want["predictions"]
        assert got["probabilities"] == want["probabilities"]
        assert (got["variant"], got["version"]) == ("main", 1)
    shadows = [r for r in records if r.role == "shadow"]
    opposite = [r for r in shadows if r.variant == "opposite"]
    assert all(r.predictions == [2] and r.version == 3 for r in opposite)
    assert {r.request_id for r in opposite} == {a["request_id"] for a in answers}
    flaky = [r for r in shadows if r.variant == "flaky"]
    assert sorted(r.error is None for r in flaky) == [False, False, True, True]
    assert all("flaky model" in (r.error or "") for r in flaky if r.predictions is None)
    served = [r for r in records if r.role == "primary"]
    assert len(served) == len(rows) and all(r.inputs.shape == (1, 4) for r in served)
    assert 'loopml_serving_shadow_predictions_total{outcome="error",variant="flaky"} 2.0' in text
    assert 'loopml_serving_shadow_predictions_total{outcome="ok",variant="opposite"} 4.0' in text
    assert {v["name"]: v["share"] for v in metadata["variants"]} == {
        "main": 1.0,
        "opposite": 0.0,
        "flaky": 0.0,
    }


def test_a_failing_prediction_hook_does_not_fail_requests(
    iris: tuple[dict[int, LoadedModel], pd.DataFrame],
) -> None:
    models, X = iris

    def broken(record: PredictionRecord) -> None:
        raise RuntimeError("log is down")

    app = create_serving_app("iris@champion", loader=_loader(models), on_prediction=broken)
    with serve_app(app) as client:
        for i in range(3):
            response = client.post("/predict", json=_records(X, i))
            assert response.status_code == 200
            assert response.json()["variant"] == "primary"
            assert response.headers["x-loopml-variant"] == "primary"
