"""RestTrackingStore details a generic store suite does not reach: streaming, URL encoding."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import httpx
import pytest

from conftest import LiveServer
from loopml.entities.tracking import Metric
from loopml.errors import NotFound
from loopml.store.rest import RestTrackingStore

API = "/api/v1"


@pytest.fixture
def run_id(live_server: LiveServer) -> Iterator[str]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        experiment = http.post(f"{API}/experiments", json={"name": f"rest-{os.urandom(5).hex()}"})
        run = http.post(f"{API}/runs", json={"experiment_id": experiment.json()["experiment_id"]})
        yield str(run.json()["run_id"])


def test_rest_store_streams_artifacts(live_server: LiveServer, run_id: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with RestTrackingStore(live_server.url) as store:
        entry = store.log_artifact(run_id, "data/blob.bin", io.BytesIO(payload))
        assert entry.size == len(payload)
        chunks = store.open_artifact(run_id, "data/blob.bin")
        assert b"".join(chunks) == payload
        with pytest.raises(NotFound):
            store.open_artifact(run_id, "data/none.bin")
        assert store.get_artifact(run_id, "data/blob.bin") == entry


def test_rest_store_keeps_odd_keys_and_ids_intact(live_server: LiveServer, run_id: str) -> None:
    with RestTrackingStore(live_server.url) as store:
        for key in ("a/./b", "x y:z", "dir/"):
            store.log_batch(run_id, [Metric(key, 1.0, 1, 0)], tags={key: "v"})
            assert [m.value for m in store.get_metric_history(run_id, key)] == [1.0]
            store.delete_tag(run_id, key)
        assert store.get_run(run_id).tags == {}
        for bad_id in ("..", ".", "a/b"):
            with pytest.raises(NotFound):
                store.get_experiment(bad_id)
            with pytest.raises(NotFound):
                store.get_run(bad_id)


def test_abandoned_downloads_give_their_connection_back(
    live_server: LiveServer, run_id: str
) -> None:
    with RestTrackingStore(live_server.url, timeout=5) as store:
        store.log_artifact(run_id, "big.bin", io.BytesIO(b"z" * (3 * 1024 * 1024)))
        # More than httpx's 100 pooled connections: a leak would end in a pool timeout.
        for index in range(110):
            chunks = store.open_artifact(run_id, "big.bin")
            if index % 2:
                next(chunks)
            del chunks
        closed = store.open_artifact(run_id, "big.bin")
        closed.close()  # type: ignore[attr-defined]
        assert store.get_run(run_id).run_id == run_id
