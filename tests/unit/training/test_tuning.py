from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest

import loopml as lm
from loopml.errors import InvalidInput, LoopmlError
from loopml.training.tuning import OPTUNA_SCHEMA, optuna_storage, parse_space, tune

SPACE: dict[str, Any] = {
    "x": ("float", -5.0, 5.0),
    "lr": ("float", 1e-3, 1.0, {"log": True}),
    "depth": ("int", 2, 8, {"step": 2}),
    "kind": ("categorical", ["a", "b"]),
}


def quadratic(params: dict[str, Any]) -> dict[str, float]:
    """Module level, so that Dask workers import it by reference."""
    bonus = 1.0 if params["kind"] == "a" else 0.0
    return {"score": -((params["x"] - 2) ** 2) + bonus, "depth_cost": params["depth"] / 10}


def test_every_trial_is_a_nested_run_and_the_parent_holds_the_best() -> None:
    result = tune(quadratic, SPACE, n_trials=3, metric="score", seed=0, study_name="quad")

    parent = lm.get_run(result.parent_run_id)
    assert parent.run_name == "quad"
    assert parent.status is lm.RunStatus.FINISHED
    assert parent.tags["loopml.study"] == "quad"
    assert parent.metrics["best.score"] == pytest.approx(result.best_value)
    assert {k: parent.params[f"best.{k}"] for k in SPACE} == {
        k: str(v) for k, v in result.best_params.items()
    }
    assert parent.tags["loopml.best_trial_number"] == str(result.best_trial_number)
    assert parent.params["tune.seed"] == "0"

    assert result.n_trials == len(result.trials) == 3
    assert result.best_value == max(t["value"] for t in result.trials)
    for trial in result.trials:
        run = lm.get_run(trial["run_id"])
        assert run.parent_run_id == parent.run_id
        assert run.experiment_id == parent.experiment_id
        assert run.run_name == f"trial-{trial['number']}"
        assert run.status is lm.RunStatus.FINISHED
        assert run.tags["loopml.trial_number"] == str(trial["number"])
        assert run.tags["loopml.study"] == "quad"
        assert run.tags["loopml.trial_state"] == "COMPLETE"
        assert run.params == {k: str(v) for k, v in trial["params"].items()}
        assert run.metrics == pytest.approx(trial["metrics"])
        assert set(run.metrics) == {"score", "depth_cost"}
    assert result.to_dict()["best_params"] == result.best_params
    assert lm.active_run() is None


def test_the_active_run_becomes_the_parent_once() -> None:
    with lm.start_run(run_name="outer") as outer:
        result = tune(lambda p: p["x"], {"x": ("float", 0, 1)}, n_trials=2, direction="minimize")
        assert result.parent_run_id == outer.run_id
        assert lm.active_run() is outer
        with pytest.raises(InvalidInput, match="already holds a study"):
            tune(lambda p: p["x"], {"x": ("float", 0, 1)}, n_trials=1)
        with lm.start_run(run_name="second", nested=True) as inner:
            again = tune(lambda p: p["x"], {"x": ("float", 0, 1)}, n_trials=1)
        assert again.parent_run_id == inner.run_id
    assert lm.get_run(outer.run_id).metrics["best.objective"] == result.best_value
    children = lm.search_runs(filter_string=f"attributes.parent_run_id = '{outer.run_id}'")
    assert len(children) == 3  # two trials and the nested run of the second study


def test_a_fixed_seed_reproduces_the_trials() -> None:
    def sequence(seed: int, **kwargs: Any) -> list[dict[str, Any]]:
        result = tune(quadratic, SPACE, n_trials=3, metric="score", seed=seed, **kwargs)
        return [t["params"] for t in result.trials]

    first = sequence(7)
    assert sequence(7) == first
    assert sequence(8) != first
    # past the random start-up trials, TPE's model-based proposals repeat too
    tpe = {"n_startup_trials": 1, "seed": 5}
    model_based = sequence(0, sampler=optuna.samplers.TPESampler(**tpe))
    assert sequence(0, sampler=optuna.samplers.TPESampler(**tpe)) == model_based


@pytest.mark.parametrize(
    ("space", "key"),
    [
        ({"ok": ("int", 1, 3), "lr": ("float", 1, "x")}, "lr"),
        ({"lr": ("uniform", 0, 1)}, "lr"),
        ({"lr": ("float", 0.0, 1.0, {"log": True})}, "lr"),
        ({"lr": ("float", 0.0, 1.0, {"scale": 2})}, "lr"),
        ({"n": ("int", 1.5, 3)}, "n"),
        ({"n": ("int", 5, 1)}, "n"),
        ({"c": ("categorical", [])}, "c"),
        ({"c": "rbf"}, "c"),
        ({"bad key!": ("int", 1, 2)}, "bad key!"),
    ],
)
def test_a_bad_space_names_the_key(space: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tune(quadratic, space, n_trials=1)
    assert key in caught.value.message
    assert caught.value.field == f"space.{key}" or key == "bad key!"


def test_space_accepts_optuna_distributions() -> None:
    dist = optuna.distributions.IntDistribution(1, 4)
    assert parse_space({"n": dist})["n"] is dist
    with pytest.raises(InvalidInput):
        parse_space({})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_jobs": True}, "n_jobs"),
        ({"direction": "up"}, "direction"),
        ({"executor": "spark"}, "executor"),
        ({"sampler": "grid"}, "sampler"),
        ({"pruner": "median"}, "pruner"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"metric": "a|b"}, "metric"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tune(quadratic, SPACE, **kwargs)
    assert caught.value.field == field
    assert lm.search_runs().empty  # refused before any run started


def test_a_failing_trial_ends_failed_and_the_study_goes_on() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            raise RuntimeError("boom")
        if trial.number == 2:
            return float("nan")
        return x

    result = tune(objective, n_trials=4, seed=1)
    states = [t["state"] for t in result.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    failed = lm.get_run(result.trials[1]["run_id"])
    assert failed.status is lm.RunStatus.FAILED
    assert failed.tags["loopml.trial_state"] == "FAIL"
    assert "RuntimeError: boom" in failed.tags["loopml.error"]
    assert "x" in failed.params  # suggested before the failure
    assert "is nan, not a number" in lm.get_run(result.trials[2]["run_id"]).tags["loopml.error"]
    parent = lm.get_run(result.parent_run_id)
    assert parent.status is lm.RunStatus.FINISHED
    assert parent.metrics["tune.n_failed"] == 2


def test_a_study_without_a_completed_trial_fails_its_run() -> None:
    with pytest.raises(LoopmlError, match="no trial .* completed"):
        tune(lambda p: {"other": 1.0}, {"x": ("int", 0, 3)}, n_trials=2, metric="score")
    runs = lm.search_runs()
    assert len(runs) == 3
    assert set(runs["status"]) == {"FAILED"}  # both trials and their parent


class _PruneAfterFirst(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0


def test_pruned_trials_finish_with_their_state() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(3):
            trial.report(x * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    result = tune(objective, n_trials=3, pruner=_PruneAfterFirst(), seed=0)
    assert [t["state"] for t in result.trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    pruned = lm.get_run(result.trials[1]["run_id"])
    assert pruned.status is lm.RunStatus.FINISHED
    assert pruned.tags["loopml.trial_state"] == "PRUNED"
    assert result.best_trial_number == 0


def test_parallel_threads_still_nest_under_the_parent() -> None:
    result = tune(quadratic, SPACE, n_trials=4, metric="score", n_jobs=2, seed=0)
    parents = {lm.get_run(t["run_id"]).parent_run_id for t in result.trials}
    assert parents == {result.parent_run_id}


def test_the_study_lives_beside_loopmls_own_store(isolated_home: Path, tmp_path: Path) -> None:
    result = tune(quadratic, SPACE, n_trials=2, metric="score", study_name="kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loopml-home"]  # nothing stray
    assert (isolated_home / "loopml-optuna.db").is_file()
    with sqlite3.connect(isolated_home / "loopml.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "runs" in tables and "studies" not in tables
    storage = optuna_storage()
    try:
        study = optuna.load_study(study_name="kept", storage=storage)
        assert len(study.trials) == 2
        assert study.best_value == result.best_value
    finally:
        storage.engine.dispose()
    resumed = tune(quadratic, SPACE, n_trials=1, metric="score", study_name="kept")
    assert resumed.n_trials == 3


@pytest.mark.postgres
def test_on_postgresql_the_study_gets_its_own_schema(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_STORE_URI", pg_uri)
    result = tune(quadratic, SPACE, n_trials=2, metric="score")
    assert lm.get_run(result.parent_run_id).metrics["best.score"] == result.best_value
    from loopml.store.sql.engine import open_engine

    with open_engine(pg_uri).read.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'studies'"
        ).all()
    assert [row[0] for row in rows] == [OPTUNA_SCHEMA]


@pytest.mark.slow
def test_dask_workers_share_the_study_and_nest_their_runs() -> None:
    pytest.importorskip("distributed")
    result = tune(quadratic, SPACE, n_trials=4, metric="score", executor="dask", seed=3)
    assert result.n_trials == 4
    assert len({str(t["params"]) for t in result.trials}) == 4  # workers sample differently
    for trial in result.trials:
        run = lm.get_run(trial["run_id"])
        assert run.parent_run_id == result.parent_run_id
        assert run.status is lm.RunStatus.FINISHED
    parent = lm.get_run(result.parent_run_id)
    assert parent.metrics["best.score"] == result.best_value
