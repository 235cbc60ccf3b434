"""A real Prometheus scrapes a live loopml server and sees a monitor's drift metrics."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from conftest import LiveServer, free_port, service_missing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "monitoring"))

DEADLINE_SECONDS = 30


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        service_missing("the prometheus binary is not installed (scripts/check_services.sh)")
    assert binary is not None
    return binary


@pytest.fixture
def server(isolated_home: Path) -> Iterator[LiveServer]:
    live = LiveServer(isolated_home).start()
    yield live
    live.stop()


def _start_prometheus(
    binary: str, target: str, workdir: Path, log: IO[bytes]
) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: loopml-server\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    return process, f"http://127.0.0.1:{port}"


def _query(client: httpx.Client, url: str, expression: str) -> list[dict[str, Any]]:
    try:
        response = client.get(f"{url}/api/v1/query", params={"query": expression})
    except httpx.TransportError:
        return []  # not listening yet
    if response.status_code != 200:
        return []
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def test_prometheus_scrapes_the_drift_metrics(
    prometheus_binary: str, server: LiveServer, tmp_path: Path
) -> None:
    from monitor_helpers import MODEL, FakeSource, features_frame, register_model, window

    from loopml.monitoring import service as monitoring
    from loopml.monitoring.alerts import Notifier
    from loopml.monitoring.monitors import Monitor

    register_model()
    service = monitoring.get_service()
    service.notifier = Notifier(fire_event=lambda kind, payload: None)
    result = service.run(
        Monitor(MODEL, features=["tenure", "charges"]),
        source=FakeSource([window(features_frame(300, 1, shift=1.5))]),
    )
    assert result.drifted_features == ["charges"]

    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    log = (workdir / "prometheus.log").open("wb")
    process, url = _start_prometheus(prometheus_binary, f"127.0.0.1:{server.port}", workdir, log)
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        drifted: list[dict[str, Any]] = []
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline and not drifted:
                assert process.poll() is None, (workdir / "prometheus.log").read_text()
                drifted = _query(
                    client, url, f'loopml_monitor_feature_drifted{{model="{MODEL}"}} == 1'
                )
                if not drifted:
                    time.sleep(0.5)
            assert drifted, "Prometheus never returned the drift metric"
            assert [s["metric"]["feature"] for s in drifted] == ["charges"]
            share = _query(client, url, f'loopml_monitor_drift_share{{model="{MODEL}"}}')
            assert float(share[0]["value"][1]) == 0.5
            up = _query(client, url, 'up{job="loopml-server"}')
            assert float(up[0]["value"][1]) == 1.0
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
