"""One behavioural suite for every metadata backend: SQLite, PostgreSQL and the REST client."""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.entities.search import Clause, FieldKind, OrderBy
from loopml.entities.tracking import LifecycleStage, Metric, RunStatus
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store.base import ExperimentStore, RunArtifactStore, RunStore


@dataclass
class Backend:
    name: str
    store: Any  # implements ExperimentStore and RunStore
    artifacts: RunArtifactStore


def _sql_backend(name: str, uri: str, root: Path) -> Backend:
    from loopml.store.artifacts.local import LocalBlobStore
    from loopml.store.artifacts_index import IndexedArtifactStore
    from loopml.store.sql import SqlTrackingStore

    store = SqlTrackingStore(uri)
    return Backend(name, store, IndexedArtifactStore(LocalBlobStore(root), store))


@pytest.fixture(scope="session")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    root = tmp_path_factory.mktemp("sqlite-contract")
    return _sql_backend("sqlite", f"sqlite:///{root / 'loopml.db'}", root / "artifacts")


@pytest.fixture(scope="session")
def postgres_backend(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return _sql_backend("postgres", pg_uri, tmp_path_factory.mktemp("pg-artifacts"))


@pytest.fixture(scope="session")
def rest_backend(live_server: Any) -> Iterator[Backend]:
    from loopml.store.rest import RestTrackingStore

    store = RestTrackingStore(live_server.url)
    yield Backend("rest", store, store)
    store.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "rest",
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]


def _name(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _run(backend: Backend, experiment_id: str | None = None, **kwargs: Any) -> Any:
    experiment_id = experiment_id or backend.store.create_experiment(_name())
    return backend.store.create_run(
        experiment_id=experiment_id,
        run_name=kwargs.pop("run_name", "run"),
        user="tester",
        start_time=kwargs.pop("start_time", 1_000),
        tags=kwargs.pop("tags", {}),
        **kwargs,
    )


def test_backends_implement_the_protocols(backend: Backend) -> None:
    assert isinstance(backend.store, ExperimentStore)
    assert isinstance(backend.store, RunStore)
    assert isinstance(backend.artifacts, RunArtifactStore)


# -- experiments -------------------------------------------------------------------------
def test_experiment_lifecycle(backend: Backend) -> None:
    store = backend.store
    name = _name()
    experiment_id = store.create_experiment(name, {"team": "risk"})
    experiment = store.get_experiment(experiment_id)
    assert experiment.name == name
    assert experiment.tags == {"team": "risk"}
    assert experiment.lifecycle_stage is LifecycleStage.ACTIVE
    assert store.get_experiment_by_name(name) == experiment
    assert store.get_experiment_by_name(_name("missing")) is None
    assert experiment_id in [e.experiment_id for e in store.list_experiments()]

    store.set_experiment_tag(experiment_id, "owner", "ana")
    assert store.get_experiment(experiment_id).tags == {"team": "risk", "owner": "ana"}

    store.delete_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage is LifecycleStage.DELETED
    assert experiment_id not in [e.experiment_id for e in store.list_experiments()]
    assert experiment_id in [e.experiment_id for e in store.list_experiments(include_deleted=True)]
    with pytest.raises(InvalidInput):
        _run(backend, experiment_id)
    with pytest.raises(InvalidInput):
        store.set_experiment_tag(experiment_id, "k", "v")
    store.restore_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage is LifecycleStage.ACTIVE


def test_duplicate_experiment_name_conflicts(backend: Backend) -> None:
    name = _name()
    backend.store.create_experiment(name)
    with pytest.raises(Conflict):
        backend.store.create_experiment(name)


@pytest.mark.parametrize("bad_id", ["999999999", "not-a-number"])
def test_unknown_experiment_is_not_found(backend: Backend, bad_id: str) -> None:
    with pytest.raises(NotFound):
        backend.store.get_experiment(bad_id)
    with pytest.raises(NotFound):
        backend.store.delete_experiment(bad_id)
    with pytest.raises(NotFound):
        _run(backend, bad_id)


# -- runs --------------------------------------------------------------------------------
def test_create_and_get_run(backend: Backend) -> None:
    experiment_id = backend.store.create_experiment(_name())
    run = _run(backend, experiment_id, run_name="first", tags={"a": "1"}, host="h1", pid=42)
    assert run.status is RunStatus.RUNNING
    assert run.experiment_id == experiment_id
    assert run.run_name == "first"
    assert run.user == "tester"
    assert run.tags == {"a": "1"}
    assert run.host == "h1"
    assert run.pid == 42
    assert run.end_time is None
    assert backend.store.get_run(run.run_id) == run

    child = _run(backend, experiment_id, parent_run_id=run.run_id)
    assert child.parent_run_id == run.run_id
    with pytest.raises(NotFound):
        _run(backend, experiment_id, parent_run_id="0" * 32)


def test_unknown_run_is_not_found(backend: Backend) -> None:
    missing = uuid.uuid4().hex
    with pytest.raises(NotFound):
        backend.store.get_run(missing)
    with pytest.raises(NotFound):
        backend.store.log_batch(missing, params={"a": "1"})
    with pytest.raises(NotFound):
        backend.store.get_metric_history(missing, "m")
    with pytest.raises(NotFound):
        backend.store.set_run_status(missing, RunStatus.FINISHED, 5)


def test_status_transitions(backend: Backend) -> None:
    run = _run(backend)
    assert backend.store.set_run_status(run.run_id, RunStatus.FINISHED, 2_000) is True
    finished = backend.store.get_run(run.run_id)
    assert (finished.status, finished.end_time) == (RunStatus.FINISHED, 2_000)
    changed = backend.store.set_run_status(
        run.run_id, RunStatus.KILLED, 3_000, only_if_running=True
    )
    assert changed is False
    assert backend.store.get_run(run.run_id).status is RunStatus.FINISHED


def test_rename_heartbeat_delete_restore(backend: Backend) -> None:
    run = _run(backend)
    backend.store.set_run_name(run.run_id, "renamed")
    backend.store.heartbeat(run.run_id, 9_999)
    fetched = backend.store.get_run(run.run_id)
    assert (fetched.run_name, fetched.heartbeat_time) == ("renamed", 9_999)
    backend.store.delete_run(run.run_id)
    assert backend.store.get_run(run.run_id).lifecycle_stage is LifecycleStage.DELETED
    with pytest.raises(InvalidInput):
        backend.store.log_batch(run.run_id, params={"a": "1"})
    backend.store.restore_run(run.run_id)
    backend.store.log_batch(run.run_id, params={"a": "1"})
    assert backend.store.get_run(run.run_id).params == {"a": "1"}


# -- params, metrics, tags ---------------------------------------------------------------
def test_log_batch_writes_everything(backend: Backend) -> None:
    run = _run(backend)
    metrics = [Metric("loss", 1.0 / (i + 1), 1_000 + i, i) for i in range(50)]
    backend.store.log_batch(run.run_id, metrics, {"lr": "0.1", "depth": "3"}, {"t": "x"})
    fetched = backend.store.get_run(run.run_id)
    assert fetched.params == {"lr": "0.1", "depth": "3"}
    assert fetched.tags == {"t": "x"}
    assert fetched.metrics == {"loss": pytest.approx(1.0 / 50)}
    history = backend.store.get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == list(range(50))
    assert history[3] == Metric("loss", pytest.approx(0.25), 1_003, 3)


def test_latest_metric_is_highest_step_not_last_logged(backend: Backend) -> None:
    run = _run(backend)
    backend.store.log_batch(run.run_id, [Metric("acc", 0.9, 100, 10)])
    backend.store.log_batch(run.run_id, [Metric("acc", 0.1, 200, 2)])
    assert backend.store.get_run(run.run_id).metrics["acc"] == pytest.approx(0.9)
    backend.store.log_batch(run.run_id, [Metric("acc", 0.95, 300, 10)])
    assert backend.store.get_run(run.run_id).metrics["acc"] == pytest.approx(0.95)


def test_special_float_values_round_trip(backend: Backend) -> None:
    run = _run(backend)
    backend.store.log_batch(
        run.run_id,
        [
            Metric("nan", math.nan, 1, 0),
            Metric("inf", math.inf, 1, 0),
            Metric("ninf", -math.inf, 1, 0),
            Metric("neg", -1.5e-300, 1, 0),
        ],
    )
    metrics = backend.store.get_run(run.run_id).metrics
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == math.inf
    assert metrics["ninf"] == -math.inf
    assert metrics["neg"] == -1.5e-300
    assert math.isnan(backend.store.get_metric_history(run.run_id, "nan")[0].value)


def test_param_conflict_rejects_the_whole_batch(backend: Backend) -> None:
    run = _run(backend)
    backend.store.log_batch(run.run_id, params={"lr": "0.1"})
    backend.store.log_batch(run.run_id, params={"lr": "0.1"})  # same value is fine
    with pytest.raises(Conflict) as caught:
        backend.store.log_batch(
            run.run_id, [Metric("m", 1.0, 1, 0)], {"lr": "0.2", "new": "x"}, {"t": "1"}
        )
    assert caught.value.field == "params.lr"
    fetched = backend.store.get_run(run.run_id)
    assert fetched.params == {"lr": "0.1"}
    assert fetched.metrics == {}
    assert fetched.tags == {}
    assert backend.store.get_metric_history(run.run_id, "m") == []


def test_tags_overwrite_and_delete(backend: Backend) -> None:
    run = _run(backend, tags={"keep": "1"})
    backend.store.log_batch(run.run_id, tags={"stage": "dev"})
    backend.store.log_batch(run.run_id, tags={"stage": "prod"})
    assert backend.store.get_run(run.run_id).tags == {"keep": "1", "stage": "prod"}
    backend.store.delete_tag(run.run_id, "stage")
    assert backend.store.get_run(run.run_id).tags == {"keep": "1"}
    with pytest.raises(NotFound):
        backend.store.delete_tag(run.run_id, "stage")


# -- search ------------------------------------------------------------------------------
@pytest.fixture
def searchable(backend: Backend) -> tuple[Backend, str, list[str]]:
    experiment_id = backend.store.create_experiment(_name())
    ids = []
    for index, (acc, model) in enumerate([(0.7, "lr"), (0.9, "rf"), (0.8, "rf"), (None, "gb")]):
        run = _run(
            backend,
            experiment_id,
            run_name=f"run-{index}",
            start_time=1_000 + index,
            tags={"team": "a" if index % 2 else "b"},
        )
        metrics = [] if acc is None else [Metric("acc", acc, 5, 1)]
        backend.store.log_batch(run.run_id, metrics, {"model": model})
        ids.append(run.run_id)
    backend.store.set_run_status(ids[0], RunStatus.FAILED, 2_000)
    return backend, experiment_id, ids


def _search(backend: Backend, experiment_id: str, *clauses: Clause, **kwargs: Any) -> list[str]:
    page = backend.store.search_runs([experiment_id], list(clauses), **kwargs)
    return [r.run_id for r in page.runs]


def test_search_by_metric_param_tag_attribute(searchable: tuple[Backend, str, list[str]]) -> None:
    backend, exp, ids = searchable
    metric = FieldKind.METRIC
    assert set(_search(backend, exp, Clause(metric, "acc", ">", 0.75))) == {ids[1], ids[2]}
    assert set(_search(backend, exp, Clause(metric, "acc", "<=", 0.8))) == {ids[0], ids[2]}
    assert _search(backend, exp, Clause(metric, "acc", "=", 0.9)) == [ids[1]]
    assert set(_search(backend, exp, Clause(metric, "acc", "!=", 0.9))) == {ids[0], ids[2]}
    assert set(_search(backend, exp, Clause(FieldKind.PARAM, "model", "=", "rf"))) == {
        ids[1],
        ids[2],
    }
    assert set(_search(backend, exp, Clause(FieldKind.PARAM, "model", "LIKE", "%r%"))) == {
        ids[0],
        ids[1],
        ids[2],
    }
    assert _search(backend, exp, Clause(FieldKind.PARAM, "model", "ILIKE", "G%")) == [ids[3]]
    assert set(_search(backend, exp, Clause(FieldKind.TAG, "team", "=", "a"))) == {ids[1], ids[3]}
    assert _search(backend, exp, Clause(FieldKind.ATTRIBUTE, "status", "=", "FAILED")) == [ids[0]]
    assert _search(backend, exp, Clause(FieldKind.ATTRIBUTE, "run_name", "=", "run-2")) == [ids[2]]
    assert set(_search(backend, exp, Clause(FieldKind.ATTRIBUTE, "start_time", ">=", 1002.0))) == {
        ids[2],
        ids[3],
    }
    both = [Clause(FieldKind.PARAM, "model", "=", "rf"), Clause(metric, "acc", ">", 0.85)]
    assert _search(backend, exp, *both) == [ids[1]]


def test_search_order_and_paging(searchable: tuple[Backend, str, list[str]]) -> None:
    backend, exp, ids = searchable
    by_acc = _search(backend, exp, order_by=[OrderBy(FieldKind.METRIC, "acc", False)])
    assert by_acc == [ids[1], ids[2], ids[0], ids[3]]  # the run without the metric sorts last
    by_acc_asc = _search(backend, exp, order_by=[OrderBy(FieldKind.METRIC, "acc", True)])
    assert by_acc_asc == [ids[0], ids[2], ids[1], ids[3]]
    assert _search(backend, exp) == list(reversed(ids))  # newest first by default
    first = backend.store.search_runs([exp], [], [], max_results=3, offset=0)
    second = backend.store.search_runs([exp], [], [], max_results=3, offset=first.next_offset)
    assert first.next_offset == 3
    assert second.next_offset is None
    assert [r.run_id for r in first.runs + second.runs] == list(reversed(ids))


def test_search_hides_deleted_runs_unless_asked(searchable: tuple[Backend, str, list[str]]) -> None:
    backend, exp, ids = searchable
    backend.store.delete_run(ids[1])
    assert ids[1] not in _search(backend, exp)
    assert ids[1] in _search(backend, exp, include_deleted=True)


# -- artifacts ---------------------------------------------------------------------------
def test_artifacts_round_trip(backend: Backend) -> None:
    run = _run(backend)
    payload = b"x" * 3_000_000 + b"end"
    entry = backend.artifacts.log_artifact(run.run_id, "model/weights.bin", io.BytesIO(payload))
    assert entry.size == len(payload)
    backend.artifacts.log_artifact(run.run_id, "model/config.json", io.BytesIO(b"{}"))
    backend.artifacts.log_artifact(run.run_id, "modelcard.md", io.BytesIO(b"# card"))
    assert b"".join(backend.artifacts.open_artifact(run.run_id, "model/weights.bin")) == payload
    paths = [e.path for e in backend.artifacts.list_artifacts(run.run_id, "model")]
    assert paths == ["model/config.json", "model/weights.bin"]
    assert len(backend.artifacts.list_artifacts(run.run_id)) == 3

    backend.artifacts.log_artifact(run.run_id, "modelcard.md", io.BytesIO(b"# card v2"))
    assert b"".join(backend.artifacts.open_artifact(run.run_id, "modelcard.md")) == b"# card v2"
    with pytest.raises(NotFound):
        backend.artifacts.open_artifact(run.run_id, "missing.txt")
    with pytest.raises(InvalidInput):
        backend.artifacts.log_artifact(run.run_id, "../escape.txt", io.BytesIO(b"x"))
