"""The tracking server over real HTTP: bad input, traversal, streaming, auth, Host/Origin."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer

API = "/api/v1"


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        yield http


def _name(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _experiment(client: httpx.Client) -> str:
    response = client.post(f"{API}/experiments", json={"name": _name()})
    assert response.status_code == 201, response.text
    return str(response.json()["experiment_id"])


@pytest.fixture
def run_id(client: httpx.Client) -> str:
    response = client.post(f"{API}/runs", json={"experiment_id": _experiment(client)})
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


def _error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body.get("field") == field, body
    assert body["message"]
    return body


def _raw(server: LiveServer, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
    """Send the request target byte for byte (httpx would normalise ``..`` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


# -- basics --------------------------------------------------------------------------------
def test_health_docs_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert f"{API}/runs/{{run_id}}/log-batch" in spec["paths"]
    assert f"{API}/runs/{{run_id}}/artifacts/{{path}}" in spec["paths"]


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    _error(client.get(f"{API}/nothing-here"), 404, None)


# -- bad input: 4xx naming the field, store unchanged --------------------------------------
@pytest.mark.parametrize("name", ["", "   ", "x" * 251, "tab\there", "nul\x00", "bell\x07"])
def test_invalid_experiment_names(client: httpx.Client, name: str) -> None:
    before = client.get(f"{API}/experiments", params={"include_deleted": True}).json()
    _error(client.post(f"{API}/experiments", json={"name": name}), 400, "name")
    assert client.get(f"{API}/experiments", params={"include_deleted": True}).json() == before


@pytest.mark.parametrize("name", ["   ", "x" * 251, "line\nbreak", "nul\x00"])
def test_invalid_run_names(client: httpx.Client, run_id: str, name: str) -> None:
    _error(client.patch(f"{API}/runs/{run_id}", json={"run_name": name}), 400, "run_name")
    experiment_id = client.get(f"{API}/runs/{run_id}").json()["experiment_id"]
    response = client.post(f"{API}/runs", json={"experiment_id": experiment_id, "run_name": name})
    _error(response, 400, "run_name")
    search = client.get(f"{API}/runs/search", params={"experiment_ids": [experiment_id]}).json()
    assert [r["run_id"] for r in search["runs"]] == [run_id]
    assert search["runs"][0]["run_name"] != name


@pytest.mark.parametrize("tags", [{"a": [1]}, {"a": {"b": "c"}}, {"a": None}])
def test_tag_values_must_be_text(client: httpx.Client, tags: dict[str, Any]) -> None:
    _error(client.post(f"{API}/experiments", json={"name": _name(), "tags": tags}), 422, "tags.a")


def test_duplicate_experiment_name_is_409(client: httpx.Client) -> None:
    name = _name()
    assert client.post(f"{API}/experiments", json={"name": name}).status_code == 201
    _error(client.post(f"{API}/experiments", json={"name": name}), 409, "name")


def test_param_logged_twice_with_another_value_is_409(client: httpx.Client, run_id: str) -> None:
    url = f"{API}/runs/{run_id}/log-batch"
    assert client.post(url, json={"params": {"lr": "0.1"}}).status_code == 204
    assert client.post(url, json={"params": {"lr": "0.1"}}).status_code == 204
    batch = {
        "params": {"lr": "0.2"},
        "tags": {"t": "1"},
        "metrics": [{"key": "m", "value": 1, "step": 0, "timestamp": 1}],
    }
    _error(client.post(url, json=batch), 409, "params.lr")
    run = client.get(f"{API}/runs/{run_id}").json()
    assert (run["params"], run["tags"], run["metrics"]) == ({"lr": "0.1"}, {}, {})


@pytest.mark.parametrize("value", ["abc", True, None, [1], {"x": 1}])
def test_metric_value_must_be_a_number(client: httpx.Client, run_id: str, value: Any) -> None:
    batch = {"metrics": [{"key": "acc", "value": value}]}
    body = _error(client.post(f"{API}/runs/{run_id}/log-batch", json=batch), 422, "metrics.0.value")
    assert body["error"] == "invalid_input"
    assert body["message"].startswith("body.metrics.0.value: ")
    assert client.get(f"{API}/runs/{run_id}").json()["metrics"] == {}


def test_special_floats_travel_as_strings(client: httpx.Client, run_id: str) -> None:
    metrics = [{"key": k, "value": k, "step": 0, "timestamp": 1} for k in ("nan", "inf", "-inf")]
    assert (
        client.post(f"{API}/runs/{run_id}/log-batch", json={"metrics": metrics}).status_code == 204
    )
    assert client.get(f"{API}/runs/{run_id}").json()["metrics"] == {
        "nan": "nan",
        "inf": "inf",
        "-inf": "-inf",
    }


@pytest.mark.parametrize("key", ["", "a" * 251, "bad\x01key", "../up"])
def test_invalid_metric_keys(client: httpx.Client, run_id: str, key: str) -> None:
    batch = {"metrics": [{"key": key, "value": 1.0}]}
    _error(client.post(f"{API}/runs/{run_id}/log-batch", json=batch), 400, "metrics")


def test_unknown_run_is_404(client: httpx.Client) -> None:
    missing = uuid.uuid4().hex
    _error(client.get(f"{API}/runs/{missing}"), 404, "run_id")
    _error(
        client.post(f"{API}/runs/{missing}/log-batch", json={"params": {"a": "1"}}), 404, "run_id"
    )
    _error(client.get(f"{API}/runs/{missing}/artifacts"), 404, "run_id")
    _error(client.put(f"{API}/runs/{missing}/artifacts/a.txt", content=b"x"), 404, "run_id")
    _error(client.get(f"{API}/runs/not-an-id!"), 404, "run_id")


def test_deleted_experiment_refuses_new_runs(client: httpx.Client) -> None:
    experiment_id = _experiment(client)
    assert client.delete(f"{API}/experiments/{experiment_id}").status_code == 204
    _error(client.post(f"{API}/runs", json={"experiment_id": experiment_id}), 400, "experiment_id")
    search = client.get(
        f"{API}/runs/search", params={"experiment_ids": [experiment_id], "include_deleted": True}
    )
    assert search.json()["runs"] == []
    assert client.post(f"{API}/experiments/{experiment_id}/restore").status_code == 204
    assert client.post(f"{API}/runs", json={"experiment_id": experiment_id}).status_code == 201


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.acc >",
        "metrics.acc > 'x'",
        "foo.bar = 1",
        "params.a = 'x' or params.b = 'y'",
        "status = ",
    ],
)
def test_malformed_filter_is_400(client: httpx.Client, bad: str) -> None:
    response = client.get(f"{API}/runs/search", params={"filter_string": bad})
    _error(response, 400, "filter_string")


def test_search_paging_with_tokens(client: httpx.Client) -> None:
    experiment_id = _experiment(client)
    created = [
        client.post(
            f"{API}/runs", json={"experiment_id": experiment_id, "start_time": 1_000 + i}
        ).json()["run_id"]
        for i in range(5)
    ]
    seen: list[str] = []
    params: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": 2}
    while True:
        page = client.get(f"{API}/runs/search", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        if page["next_page_token"] is None:
            break
        params["page_token"] = page["next_page_token"]
    assert seen == list(reversed(created))
    _error(client.get(f"{API}/runs/search", params={"page_token": "forged"}), 400, "page_token")
    _error(client.get(f"{API}/runs/search", params={"max_results": 0}), 400, "max_results")
    _error(client.get(f"{API}/runs/search", params={"max_results": "many"}), 422, "max_results")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2", 400),
        (b"\xff\xfe", 400),
        (b"", 422),
        (b"[1, 2]", 422),
        (b"null", 422),
    ],
)
def test_body_that_is_not_json(client: httpx.Client, run_id: str, body: bytes, status: int) -> None:
    response = client.post(
        f"{API}/runs/{run_id}/log-batch", content=body, headers={"Content-Type": "application/json"}
    )
    _error(response, status, "body")


def test_body_without_json_content_type(client: httpx.Client, run_id: str) -> None:
    response = client.post(
        f"{API}/runs/{run_id}/log-batch",
        content=b'{"tags": {"a": "b"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert "Content-Type: application/json" in _error(response, 422, "body")["message"]
    assert client.get(f"{API}/runs/{run_id}").json()["tags"] == {}


def test_unknown_fields_are_named(client: httpx.Client, run_id: str) -> None:
    response = client.post(f"{API}/runs/{run_id}/log-batch", json={"metric": []})
    _error(response, 422, "metric")


def test_status_route_reports_whether_it_changed(client: httpx.Client, run_id: str) -> None:
    url = f"{API}/runs/{run_id}/status"
    assert client.post(url, json={"status": "FINISHED", "end_time": 5}).json() == {"changed": True}
    again = client.post(url, json={"status": "KILLED", "end_time": 6, "only_if_running": True})
    assert again.json() == {"changed": False}
    _error(client.post(url, json={"status": "DONE"}), 422, "status")
    ended = client.post(f"{API}/runs/{run_id}/end", json={"status": "FAILED", "end_time": 9})
    assert (ended.json()["status"], ended.json()["end_time"]) == ("FAILED", 9)


def test_gc_kills_silent_runs(client: httpx.Client) -> None:
    experiment_id = _experiment(client)
    run = client.post(
        f"{API}/runs", json={"experiment_id": experiment_id, "start_time": 1, "host": "elsewhere"}
    ).json()
    killed = client.post(f"{API}/runs/gc", json={"timeout": 60}).json()["killed"]
    assert run["run_id"] in killed
    assert client.get(f"{API}/runs/{run['run_id']}").json()["status"] == "KILLED"
    _error(client.post(f"{API}/runs/gc", json={"timeout": -1}), 422, "timeout")


# -- path traversal ------------------------------------------------------------------------
TRAVERSALS = [
    "../../etc/passwd",
    "a/../../x",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/x",
    "%252e%252e/x",
    "%25252e%25252e%25252fx",
    "..\\..\\x",
    "..%5c..%5cx",
    # A raw "#" is not here: it starts the fragment, which the HTTP parser (httptools)
    # drops before routing, so "a#b" can only ever reach the store as "a".
    "a%23b",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "a%00b",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "C:%5Cwin.ini",
    "....//x",
    "%EF%BC%8E%EF%BC%8E/x",
]


@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_on_upload_and_download(
    live_server: LiveServer, run_id: str, attack: str
) -> None:
    for method in ("PUT", "GET"):
        target = f"{API}/runs/{run_id}/artifacts/{attack}"
        status, body = _raw(live_server, method, target, b"pwned" if method == "PUT" else b"")
        assert status == 400, (method, attack, body)
        assert body["field"] == "path"
    status, listing = _raw(live_server, "GET", f"{API}/runs/{run_id}/artifacts")
    assert (status, listing) == (200, {"artifacts": []})


@pytest.mark.parametrize(
    "attack", ["..%2Fx", "%2e%2e%2Fx", "%252e%252e%252fx", "%2Fetc", "a%5Cb", "a%23b", "a%00b"]
)
def test_traversal_on_list(live_server: LiveServer, run_id: str, attack: str) -> None:
    status, body = _raw(live_server, "GET", f"{API}/runs/{run_id}/artifacts?path={attack}")
    assert status == 400 and body["field"] == "path", body


def test_traversal_with_httpx_raw_path(client: httpx.Client, run_id: str) -> None:
    url = client.base_url.copy_with(
        raw_path=f"{API}/runs/{run_id}/artifacts/%2e%2e%2f%2e%2e%2fx".encode()
    )
    _error(client.put(url, content=b"pwned"), 400, "path")
    _error(client.get(url), 400, "path")


# -- artifacts -----------------------------------------------------------------------------
def test_streamed_round_trip_of_5_mb(client: httpx.Client, run_id: str) -> None:
    payload = os.urandom(5 * 1024 * 1024 + 17)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 1024 * 1024):
            yield payload[start : start + 1024 * 1024]

    url = f"{API}/runs/{run_id}/artifacts/model/weights r%C3%A9v.bin"
    created = client.put(url, content=chunks())
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry == {
        "path": "model/weights rév.bin",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    received = bytearray()
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''weights%20r%C3%A9v.bin" in response.headers["content-disposition"]
        for chunk in response.iter_bytes():
            received += chunk
    assert bytes(received) == payload
    listing = client.get(f"{API}/runs/{run_id}/artifacts", params={"path": "model"}).json()
    assert listing == {"artifacts": [entry]}
    index = client.get(f"{API}/runs/{run_id}/artifact-index/model/weights r%C3%A9v.bin")
    assert index.json() == entry


def test_downloads_guess_types_but_never_render(client: httpx.Client, run_id: str) -> None:
    client.put(f"{API}/runs/{run_id}/artifacts/report.html", content=b"<script>x</script>")
    response = client.get(f"{API}/runs/{run_id}/artifacts/report.html")
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["content-security-policy"]
    _error(client.get(f"{API}/runs/{run_id}/artifacts/missing.txt"), 404, "path")


# -- the SDK against the server ------------------------------------------------------------
def test_sdk_logs_through_the_server(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopml as lm

    monkeypatch.setenv("LOOPML_TRACKING_URI", live_server.url)
    name = _name("sdk")
    lm.set_experiment(name)
    with lm.start_run(run_name="remote") as run:
        lm.log_param("C", 1.0)
        lm.log_metric("acc", 0.5, step=1)
        lm.log_metric("acc", 0.75, step=2)
        lm.log_metric("loss", float("nan"))
        lm.set_tag("stage", "dev")
        (tmp_path / "notes.txt").write_text("hello")
        lm.log_artifact(tmp_path / "notes.txt", "docs")
    fetched = lm.get_run(run.run_id)
    assert fetched.status is lm.RunStatus.FINISHED
    assert fetched.params == {"C": "1.0"} and fetched.metrics["acc"] == 0.75
    assert fetched.tags["stage"] == "dev"
    frame = lm.search_runs(experiment_names=[name], filter_string="metrics.acc > 0.7")
    assert list(frame["run_id"]) == [run.run_id]
    # The data is on the server, not in the client's LOOPML_HOME.
    remote = httpx.get(f"{live_server.url}{API}/experiments/by-name", params={"name": name})
    assert remote.json()["name"] == name
    artifacts = httpx.get(f"{live_server.url}{API}/runs/{run.run_id}/artifacts").json()
    assert [a["path"] for a in artifacts["artifacts"]] == ["docs/notes.txt"]


def test_token_routes_are_closed_without_auth(client: httpx.Client) -> None:
    _error(client.get(f"{API}/tokens"), 403, None)
    _error(client.post(f"{API}/tokens", json={"name": "x", "role": "admin"}), 403, None)
