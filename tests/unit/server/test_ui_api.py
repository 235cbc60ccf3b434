"""The read routes the web UI uses: run keys and lineage, datasets, deployments, monitors, stats.

One server over one seeded store for the module: an experiment with runs, a dataset with two
versions and a validation, a model registered from a run that read the dataset, a deployment
with a canary, monitors with an alert, and a prediction log with known latencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import module_home, serve_app
from loopml.models import PythonModel

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
#: Latencies of the logged requests, per (variant, version): 6 blue v1 and 2 green v2.
BLUE_LATENCIES = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
GREEN_LATENCIES = [100.0, 300.0]
FAILED_GREEN = 2


@dataclass(frozen=True)
class Seeded:
    """What the fixture stored, for the tests to compare with."""

    client: httpx.Client
    experiment_id: str
    empty_experiment_id: str
    model_run_id: str
    plain_run_id: str
    digests: dict[int, str]


class ChargesThreshold(PythonModel):
    """Churn when the charges pass a threshold (a model that is quick to log)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, data: Any) -> Any:
        """1 above the threshold."""
        return (data["charges"] > self.threshold).astype(int)


def _churn(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"tenure": rng.integers(0, 72, rows).astype(float)})
    frame["charges"] = rng.normal(70 + seed * 10, 20, rows)
    frame["churned"] = (frame["charges"] > 75).astype(int)
    return frame


def _seed_tracking() -> tuple[str, str, str, str, dict[int, str]]:
    import loopml as lm

    digests = {
        1: lm.datasets.register("churn", _churn(200, 0)).digest,
        2: lm.datasets.register("churn", _churn(150, 1)).digest,
    }
    lm.datasets.validate("churn@v2", reference="churn@v1")
    experiment_id = lm.set_experiment("ui")
    empty_experiment_id = lm.set_experiment("empty")
    lm.set_experiment("ui")
    with lm.start_run(run_name="plain", tags={"team": "a"}) as plain:
        lm.log_params({"lr": 0.1, "depth": 3})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            lm.log_metric("loss", loss, step=step)
    with lm.start_run(run_name="trained") as trained:
        data = lm.datasets.get("churn", 1)
        lm.log_param("lr", 0.01)
        lm.log_metric("acc", 0.8)
        threshold = float(data.loc[data["churned"] == 1, "charges"].min())
        uri = lm.log_model(ChargesThreshold(threshold), "model").uri
    with lm.start_run(run_name="deleted") as deleted:
        lm.log_metric("ghost_metric", 1.0)
        lm.log_param("ghost_param", "x")
    lm.registry.register(uri, "churn-model")
    lm.registry.set_alias("churn-model", "champion", 1, reason="first")
    lm.registry.register(uri, "churn-model")
    lm.delete_run(deleted.run_id)
    return experiment_id, empty_experiment_id, trained.run_id, plain.run_id, digests


def _seed_deployment_and_monitors() -> None:
    from loopml.config import load_settings
    from loopml.serving.deployment import parse_deployment
    from loopml.store.base import DeploymentEvent
    from loopml.store.registry import open_deployment_store, open_monitor_store

    settings = load_settings()
    config = parse_deployment(
        {
            "name": "churn-api",
            "model": "churn-model",
            "canary": {"share": 0.2},
            "variants": [
                {"name": "blue", "model": "champion", "weight": 3},
                {"name": "green", "model": 2, "weight": 1},
                {"name": "next", "model": 2, "role": "canary"},
            ],
        }
    )
    deployments = open_deployment_store(settings)
    deployments.apply_deployment("churn-api", config.to_dict(), "ana")
    revision = deployments.apply_deployment("churn-api", config.to_dict(), "bo").revision
    deployments.add_deployment_event(
        DeploymentEvent(
            deployment="churn-api",
            revision=revision,
            kind="canary_started",
            variant="next",
            to_version=2,
            evidence={"reason": "new version"},
        )
    )
    monitors = open_monitor_store(settings)
    monitors.save_monitor("idle", "other-model", {"model": "other-model"})
    time_ms = int(T0.timestamp() * 1000)
    monitors.add_monitor_run("churn-model", "churn-model", 1, time_ms, "ok", {"verdict": "ok"})
    monitors.add_monitor_run(
        "churn-model", "churn-model", 1, time_ms + 60_000, "alert", {"verdict": "alert"}
    )
    monitors.fire_alert("churn-model", "churn-model", "drift.charges", 0.4, "drifted", time_ms)


def _seed_prediction_log() -> None:
    from loopml.config import load_settings
    from loopml.monitoring.predictions import PredictionLogger, PredictionRecord

    requests = [("blue", 1, latency) for latency in BLUE_LATENCIES] + [
        ("green", 2, latency) for latency in GREEN_LATENCIES
    ]
    with PredictionLogger(flush_seconds=60, settings=load_settings()) as log:
        for index, (variant, version, latency) in enumerate(requests):
            log.log(
                PredictionRecord(
                    request_id=f"r{index}",
                    model="churn-model",
                    version=version,
                    # Two rows per request: the stats count requests, not rows.
                    inputs=[{"tenure": 1.0}, {"tenure": 2.0}],
                    predictions=[0, 1],
                    latency_ms=latency,
                    variant=variant,
                    # Requests 0-3 in the first minute, 4-7 in the third.
                    timestamp=T0 + timedelta(seconds=10 * index + (80 if index >= 4 else 0)),
                )
            )
        for index in range(FAILED_GREEN):
            # Failed requests are logged with their error and no prediction.
            log.log(
                PredictionRecord(
                    request_id=f"failed{index}",
                    model="churn-model",
                    version=2,
                    inputs=[{"tenure": 3.0}],
                    predictions=[],
                    latency_ms=5000.0,
                    variant="green",
                    timestamp=T0 + timedelta(seconds=130 + index),
                    error="Overloaded: the batch queue is full",
                )
            )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    from loopml.config import load_settings
    from loopml.server.app import create_app

    with module_home(tmp_path_factory, "ui-api"):
        experiment_id, empty_id, model_run_id, plain_run_id, digests = _seed_tracking()
        _seed_deployment_and_monitors()
        _seed_prediction_log()
        app = create_app(load_settings())
    with serve_app(app) as client:
        yield Seeded(client, experiment_id, empty_id, model_run_id, plain_run_id, digests)


def _error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["message"]
    if field is not None:
        assert body["field"] == field, body
    return body


# -- experiments and runs ------------------------------------------------------------------
def test_experiment_keys_are_distinct_sorted_and_skip_deleted_runs(seeded: Seeded) -> None:
    response = seeded.client.get(f"/api/v1/experiments/{seeded.experiment_id}/keys")
    assert response.status_code == 200, response.text
    keys = response.json()
    assert keys["metrics"] == ["acc", "loss"]
    assert keys["params"] == ["depth", "lr"]
    assert "team" in keys["tags"] and keys["tags"] == sorted(keys["tags"])
    assert any(tag.startswith("loopml.") for tag in keys["tags"])
    empty = seeded.client.get(f"/api/v1/experiments/{seeded.empty_experiment_id}/keys").json()
    assert empty == {"metrics": [], "params": [], "tags": []}


@pytest.mark.parametrize("experiment_id", ["999999", "abc", "99999999999999999999999", "-1"])
def test_experiment_keys_of_an_unknown_experiment_are_404(
    seeded: Seeded, experiment_id: str
) -> None:
    response = seeded.client.get(f"/api/v1/experiments/{experiment_id}/keys")
    _error(response, 404, "experiment_id")


def test_run_lineage_lists_datasets_read_and_written_and_models(seeded: Seeded) -> None:
    response = seeded.client.get(f"/api/v1/runs/{seeded.model_run_id}/lineage")
    assert response.status_code == 200, response.text
    lineage = response.json()
    assert lineage["datasets"] == [
        {"name": "churn", "version": 1, "digest": seeded.digests[1], "context": "input"}
    ]
    assert lineage["models"] == [
        {"name": "churn-model", "version": 1},
        {"name": "churn-model", "version": 2},
    ]
    plain = seeded.client.get(f"/api/v1/runs/{seeded.plain_run_id}/lineage").json()
    assert plain == {"datasets": [], "models": []}


@pytest.mark.parametrize("run_id", ["0" * 32, "not-a-run", "x" * 65])
def test_run_lineage_of_an_unknown_run_is_404(seeded: Seeded, run_id: str) -> None:
    _error(seeded.client.get(f"/api/v1/runs/{run_id}/lineage"), 404, "run_id")


def test_run_search_of_the_run_table(seeded: Seeded) -> None:
    response = seeded.client.get(
        "/api/v1/runs/search",
        params={
            "experiment_ids": seeded.experiment_id,
            "max_results": 1,
            "order_by": "params.lr DESC",
            "filter_string": "params.lr != ''",
        },
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert [r["params"]["lr"] for r in page["runs"]] == ["0.1"]
    following = seeded.client.get(
        "/api/v1/runs/search",
        params={
            "experiment_ids": seeded.experiment_id,
            "max_results": 1,
            "order_by": "params.lr DESC",
            "page_token": page["next_page_token"],
        },
    ).json()
    assert [r["params"]["lr"] for r in following["runs"]] == ["0.01"]


# -- datasets ------------------------------------------------------------------------------
def test_datasets_and_their_versions(seeded: Seeded) -> None:
    listed = seeded.client.get("/api/v1/datasets").json()["datasets"]
    assert [(d["name"], d["latest_version"]) for d in listed] == [("churn", 2)]
    assert listed[0]["updated"] == listed[0]["last_update_time"] > 0
    versions = seeded.client.get("/api/v1/datasets/churn/versions").json()["versions"]
    assert [(v["version"], v["num_rows"], v["uri"]) for v in versions] == [
        (1, 200, "churn@v1"),
        (2, 150, "churn@v2"),
    ]
    for spec in ("2", "v2", "latest", seeded.digests[2][:12]):
        version = seeded.client.get(f"/api/v1/datasets/churn/versions/{spec}").json()
        assert (version["version"], version["digest"]) == (2, seeded.digests[2])
    assert [c["name"] for c in version["columns"]] == ["tenure", "charges", "churned"]
    assert {"source", "created_time", "num_columns", "schema"} <= set(version)


def test_dataset_profile_has_stats_and_histograms(seeded: Seeded) -> None:
    response = seeded.client.get("/api/v1/datasets/churn/versions/1/profile")
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["uri"] == "churn@v1" and profile["num_rows"] == 200
    charges = next(c for c in profile["columns"] if c["name"] == "charges")
    histogram = charges["histogram"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert sum(histogram["counts"]) == 200


def test_dataset_validations(seeded: Seeded) -> None:
    validated = seeded.client.get("/api/v1/datasets/churn/versions/2/validations").json()
    assert validated["uri"] == "churn@v2"
    (record,) = validated["validations"]
    assert record["version"] == 2 and record["reference"] == "churn@v1"
    assert isinstance(record["passed"], bool) and isinstance(record["result"], dict)
    never = seeded.client.get("/api/v1/datasets/churn/versions/1/validations").json()
    assert never["validations"] == []


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/datasets/nope/versions", 404, "name"),
        ("/api/v1/datasets/nope/versions/1", 404, "name"),
        ("/api/v1/datasets/churn/versions/9", 404, "version"),
        ("/api/v1/datasets/churn/versions/9/profile", 404, "version"),
        ("/api/v1/datasets/churn/versions/9/validations", 404, "version"),
        ("/api/v1/datasets/churn/versions/ffffff", 404, "version"),
        ("/api/v1/datasets/churn/versions/not-a-version", 400, "version"),
        ("/api/v1/datasets/bad%20name/versions", 400, "name"),
    ],
)
def test_dataset_errors(seeded: Seeded, path: str, status: int, field: str) -> None:
    _error(seeded.client.get(path), status, field)


# -- deployments ---------------------------------------------------------------------------
def test_deployments_list_and_detail(seeded: Seeded) -> None:
    listed = seeded.client.get("/api/v1/deployments").json()["deployments"]
    assert [(d["name"], d["revision"], d["model"], d["variants"]) for d in listed] == [
        ("churn-api", 2, "churn-model", 3)
    ]
    detail = seeded.client.get("/api/v1/deployments/churn-api").json()
    assert (detail["revision"], detail["user"], detail["model"]) == (2, "bo", "churn-model")
    assert [r["user"] for r in detail["revisions"]] == ["ana", "bo"]
    variants = {v["name"]: v for v in detail["variants"]}
    assert variants["blue"]["version"] == 1 and variants["blue"]["model"] == "churn-model@champion"
    assert variants["next"]["role"] == "canary" and variants["next"]["version"] == 2
    # The canary takes its 20 %; the primaries share the rest 3:1.
    assert detail["shares"] == pytest.approx({"blue": 0.6, "green": 0.2, "next": 0.2})
    assert variants["green"]["share"] == pytest.approx(0.2)
    assert detail["canary"]["state"] == "running"
    assert detail["canary"]["variant"] == "next" and detail["canary"]["reason"] == "new version"
    assert [e["kind"] for e in detail["events"]] == ["applied", "applied", "canary_started"]
    last = seeded.client.get("/api/v1/deployments/churn-api", params={"events": 1}).json()
    assert [e["kind"] for e in last["events"]] == ["canary_started"]


def test_deployment_errors(seeded: Seeded) -> None:
    _error(seeded.client.get("/api/v1/deployments/nope"), 404, "name")
    response = seeded.client.get("/api/v1/deployments/churn-api", params={"events": 0})
    _error(response, 422, "events")


# -- monitors and serving statistics -------------------------------------------------------
def test_monitors_list_latest_verdicts_and_firing_alerts(seeded: Seeded) -> None:
    response = seeded.client.get("/api/v1/monitors")
    assert response.status_code == 200, response.text
    monitors = {m["monitor"]: m for m in response.json()["monitors"]}
    assert monitors["churn-model"]["verdict"] == "alert"
    assert monitors["churn-model"]["time"] == int(T0.timestamp() * 1000) + 60_000
    assert (monitors["churn-model"]["version"], monitors["churn-model"]["firing"]) == (1, 1)
    assert monitors["idle"] == {
        "monitor": "idle",
        "model": "other-model",
        "version": None,
        "verdict": "never_run",
        "time": None,
        "firing": 0,
    }


def _stats(seeded: Seeded, **params: Any) -> dict[str, Any]:
    response = seeded.client.get("/api/v1/monitoring/churn-model/serving-stats", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_serving_stats_per_variant_and_bucket(seeded: Seeded) -> None:
    since, until = T0.isoformat(), (T0 + timedelta(minutes=4)).isoformat()
    stats = _stats(seeded, since=since, until=until, bucket=60)
    assert stats["bucket_seconds"] == 60
    overall = stats["overall"]
    everything = BLUE_LATENCIES + GREEN_LATENCIES
    assert overall["requests"] == 10
    assert overall["errors"] == FAILED_GREEN
    assert overall["request_rate"] == pytest.approx(10 / 240)
    # Percentiles describe answered requests: the failures' 5 s never count.
    assert overall["latency_ms"]["p50"] == pytest.approx(float(np.percentile(everything, 50)))
    assert overall["latency_ms"]["p99"] == pytest.approx(float(np.percentile(everything, 99)))
    assert overall["error_rate"] == pytest.approx(0.2)
    blue, green = stats["variants"]
    assert (blue["variant"], blue["version"], blue["requests"]) == ("blue", 1, 6)
    assert blue["share"] == pytest.approx(0.6)
    assert blue["error_rate"] == 0.0
    assert blue["latency_ms"]["p95"] == pytest.approx(float(np.percentile(BLUE_LATENCIES, 95)))
    assert (green["variant"], green["version"], green["requests"]) == ("green", 2, 4)
    assert green["error_rate"] == pytest.approx(0.5)
    assert green["latency_ms"]["p50"] == pytest.approx(200.0)
    assert [b["requests"] for b in stats["buckets"]] == [4, 0, 6, 0]
    assert [b["errors"] for b in stats["buckets"]] == [0, 0, 2, 0]
    assert stats["buckets"][0]["start"] == T0.isoformat()
    assert stats["buckets"][1]["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    assert stats["buckets"][2]["variants"] == [
        {"variant": "blue", "version": 1, "requests": 2},
        {"variant": "green", "version": 2, "requests": 4},
    ]


def test_serving_stats_window_version_and_defaults(seeded: Seeded) -> None:
    only_green = _stats(
        seeded, since=T0.isoformat(), until=(T0 + timedelta(hours=1)).isoformat(), version=2
    )
    assert only_green["overall"]["requests"] == 2 + FAILED_GREEN
    first_minute = _stats(
        seeded, since=T0.isoformat(), until=(T0 + timedelta(minutes=1)).isoformat()
    )
    assert first_minute["overall"]["requests"] == 4
    # The default bucket: whole seconds, about 48 buckets per window.
    assert first_minute["bucket_seconds"] == 2 and len(first_minute["buckets"]) == 30
    assert sum(b["requests"] for b in first_minute["buckets"]) == 4
    # By default the last day before now: the 2026-03 requests are outside it.
    recent = _stats(seeded)
    assert recent["overall"]["requests"] == 0 and recent["variants"] == []
    unknown = seeded.client.get("/api/v1/monitoring/nobody/serving-stats").json()
    assert unknown["overall"]["requests"] == 0


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"since": "yesterday"}, 400, "since"),
        ({"until": "2026-13-45"}, 400, "until"),
        ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, 400, "since"),
        ({"bucket": 0}, 422, "bucket"),
        ({"bucket": "fast"}, 422, "bucket"),
        ({"bucket": 0.001}, 400, "bucket"),
        ({"version": -1}, 422, "version"),
        ({"since": "0001-01-01T00:00:00+14:00"}, 400, "since"),
        ({"until": "0001-01-01T01:00:00"}, 400, "until"),
        ({"since": "2026-01-01", "until": "9999-12-31T23:59:59-14:00"}, 400, "until"),
    ],
)
def test_serving_stats_bad_parameters(
    seeded: Seeded, params: dict[str, Any], status: int, field: str
) -> None:
    response = seeded.client.get("/api/v1/monitoring/churn-model/serving-stats", params=params)
    _error(response, status, field)


# -- robustness ----------------------------------------------------------------------------
NASTY = [
    "%00",
    "..%2F..",
    "%E2%80%AE",
    "9" * 40,
    "a" * 300,
    "-1",
    "1e309",
    "%20",
    "nan",
    "inf",
    "1e-300",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T23:59:59-14:00",
]


@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/experiments/{}/keys",
        "/api/v1/runs/{}/lineage",
        "/api/v1/datasets/{}/versions",
        "/api/v1/datasets/churn/versions/{}",
        "/api/v1/datasets/{}/versions/{}/profile",
        "/api/v1/datasets/churn/versions/{}/validations",
        "/api/v1/deployments/{}",
        "/api/v1/monitoring/{}/serving-stats",
        "/api/v1/monitoring/churn-model/serving-stats?since={}",
        "/api/v1/monitoring/churn-model/serving-stats?until={}",
        "/api/v1/monitoring/churn-model/serving-stats?bucket={}",
        "/api/v1/monitoring/churn-model/serving-stats?version={}",
        "/api/v1/deployments/churn-api?events={}",
    ],
)
def test_odd_input_is_a_client_error_never_a_500(seeded: Seeded, template: str) -> None:
    for value in NASTY:
        response = seeded.client.get(template.replace("{}", value))
        assert response.status_code < 500, (template, value, response.text)
        assert response.headers["content-type"].startswith("application/json")


def test_the_routes_are_in_the_openapi_document(seeded: Seeded) -> None:
    paths = seeded.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/experiments/{experiment_id}/keys",
        "/api/v1/runs/{run_id}/lineage",
        "/api/v1/datasets",
        "/api/v1/datasets/{name}/versions",
        "/api/v1/datasets/{name}/versions/{version}",
        "/api/v1/datasets/{name}/versions/{version}/profile",
        "/api/v1/datasets/{name}/versions/{version}/validations",
        "/api/v1/deployments",
        "/api/v1/deployments/{name}",
        "/api/v1/monitors",
        "/api/v1/monitoring/{model}/serving-stats",
    ):
        assert "get" in paths[path], path


def test_the_rest_store_reads_experiment_keys(seeded: Seeded) -> None:
    from loopml.errors import NotFound
    from loopml.store.rest import RestTrackingStore

    store = RestTrackingStore(str(seeded.client.base_url))
    keys = store.experiment_keys(seeded.experiment_id)
    assert keys == seeded.client.get(f"/api/v1/experiments/{seeded.experiment_id}/keys").json()
    with pytest.raises(NotFound):
        store.experiment_keys("424242")


def test_the_routes_need_a_token_on_a_server_with_auth() -> None:
    from loopml.auth import AuthService
    from loopml.config import load_settings
    from loopml.server.app import create_app

    app = create_app(load_settings(), auth=True)
    service: AuthService = app.state.auth
    reader = service.create_token("ui", "reader")
    with serve_app(app) as client:
        for path in ("/api/v1/datasets", "/api/v1/deployments", "/api/v1/monitors"):
            _error(client.get(path), 401, None)
            response = client.get(path, headers={"Authorization": f"Bearer {reader}"})
            assert response.status_code == 200, response.text
