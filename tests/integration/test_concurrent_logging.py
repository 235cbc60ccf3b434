"""Several processes logging to one store at once lose nothing (SQLite WAL and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

PROCESSES = 4
METRICS_PER_PROCESS = 2_000


def _log_metrics(store_uri: str, artifact_root: str, worker: int) -> None:
    # A fresh interpreter (spawn) opens its own connections, as a separate process would.
    os.environ["LOOPML_STORE_URI"] = store_uri
    os.environ["LOOPML_ARTIFACT_URI"] = artifact_root
    import loopml as lm

    lm.set_experiment("concurrency")
    with lm.start_run(run_name=f"worker-{worker}"):
        for step in range(METRICS_PER_PROCESS):
            # Alternate single calls and small batches, as training loops do.
            if step % 2:
                lm.log_metric("loss", 1.0 / (step + 1), step=step)
            else:
                lm.log_batch(metrics=[lm.Metric("loss", 1.0 / (step + 1), 0, step)])


def _run_workers(store_uri: str, artifact_root: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_log_metrics, args=(store_uri, str(artifact_root), i))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0


def _assert_all_present(store_uri: str) -> None:
    from loopml.entities.tracking import RunStatus
    from loopml.store.sql import SqlTrackingStore

    store = SqlTrackingStore(store_uri)
    experiment = store.get_experiment_by_name("concurrency")
    assert experiment is not None
    runs = store.search_runs([experiment.experiment_id], max_results=100).runs
    assert len(runs) == PROCESSES
    total = 0
    for run in runs:
        assert run.status is RunStatus.FINISHED
        history = store.get_metric_history(run.run_id, "loss")
        assert [m.step for m in history] == list(range(METRICS_PER_PROCESS))
        total += len(history)
    assert total == PROCESSES * METRICS_PER_PROCESS


@pytest.mark.slow
def test_four_processes_on_sqlite(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    _run_workers(uri, tmp_path / "artifacts")
    _assert_all_present(uri)


@pytest.mark.slow
@pytest.mark.postgres
def test_four_processes_on_postgres(pg_uri: str, tmp_path: Path) -> None:
    from loopml.store.sql import SqlTrackingStore

    # The session database is shared with other tests: use a schema of runs of our own name.
    store = SqlTrackingStore(pg_uri)
    existing = store.get_experiment_by_name("concurrency")
    if existing is not None:
        store.delete_experiment(existing.experiment_id)
        pytest.fail("the concurrency experiment already exists in the session database")
    _run_workers(pg_uri, tmp_path / "artifacts")
    _assert_all_present(pg_uri)
