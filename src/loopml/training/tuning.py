"""Hyperparameter tuning on Optuna, with every trial tracked as a nested run.

:func:`tune` runs an Optuna study whose trials are child runs of one parent run: the active
run when there is one, else a new run named after the study. Each trial run holds its params,
the metric(s) its objective returned and the tags ``loopml.trial_number`` and ``loopml.study``;
the parent gets the study name, the best params (``best.<name>``) and the best value (metric
``best.<metric>``). A trial that raises ends FAILED and the study goes on.

Optuna versions its tables with Alembic in a table named ``alembic_version``, the one loopml's
migrations use, so the two cannot share a SQL namespace. Studies live beside loopml's metadata
instead: on PostgreSQL in the schema ``loopml_optuna`` of the same database (created on first
use), on SQLite in the file ``<store>-optuna.db`` next to the store file
(``$LOOPML_HOME/loopml-optuna.db`` by default). With a remote tracking server
(``LOOPML_TRACKING_URI``) studies stay in memory unless ``storage`` names one.
"""

from __future__ import annotations

import importlib
import logging
import math
import numbers
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from loopml.config import Settings, load_settings
from loopml.errors import InvalidInput, LoopmlError
from loopml.tracking import fluent
from loopml.tracking.validation import check_key, check_name

__all__ = ["OPTUNA_SCHEMA", "TuneResult", "optuna_storage", "parse_space", "tune"]

#: PostgreSQL schema that holds Optuna's tables, beside loopml's own in the same database.
OPTUNA_SCHEMA = "loopml_optuna"
_PG_SCHEMA_LOCK_KEY = 0x6C6F6F706F7074
SpaceSpec: TypeAlias = Mapping[str, Any]
Objective: TypeAlias = Callable[[Any], Any]
SamplerSpec: TypeAlias = "str | optuna.samplers.BaseSampler"
_SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
}
_PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
}
_environment_lock = threading.Lock()


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found.

    Attributes
    ----------
    best_params, best_value, best_trial_number
        The best completed trial: its params, its value of the metric and its number.
    study_name : str
        The study; ``optuna.load_study(study_name=..., storage=optuna_storage())`` loads it.
    n_trials : int
        Trials the study holds, in every state.
    parent_run_id : str
        The run the trial runs are nested under.
    trials : list of dict
        Per trial: ``number``, ``state``, ``value``, ``params``, ``metrics``, ``run_id``.
    """

    best_params: dict[str, Any]
    best_value: float
    best_trial_number: int
    study_name: str
    n_trials: int
    parent_run_id: str
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


def parse_space(space: SpaceSpec) -> dict[str, BaseDistribution]:
    """Turn a search-space spec into Optuna distributions.

    Parameters
    ----------
    space : mapping
        ``{"C": ("float", 1e-3, 10, {"log": True}), "depth": ("int", 2, 8, {"step": 2}),
        "kernel": ("categorical", ["rbf", "linear"])}``; Optuna distributions are accepted too.

    Raises
    ------
    InvalidInput
        Naming the first key whose spec is malformed.
    """
    if not isinstance(space, Mapping) or not space:
        raise InvalidInput("space must be a non-empty mapping of name to spec", field="space")
    return {check_key(name, "space"): _distribution(name, spec) for name, spec in space.items()}


def _distribution(name: str, spec: Any) -> BaseDistribution:
    if isinstance(spec, BaseDistribution):
        return spec
    kinds = ("float", "int", "categorical")
    try:
        if not isinstance(spec, tuple | list) or not spec or spec[0] not in kinds:
            raise ValueError(f"expected a tuple starting with one of {kinds}, got {spec!r}")
        kind, *args = spec
        options = args.pop() if args and isinstance(args[-1], Mapping) else {}
        if kind == "categorical":
            if len(args) != 1 or not isinstance(args[0], tuple | list) or options:
                raise ValueError("expected ('categorical', [choice, ...])")
            return CategoricalDistribution(list(args[0]))
        if len(args) != 2 or set(options) - {"log", "step"}:
            raise ValueError(f"expected ({kind!r}, low, high[, {{'log': ..., 'step': ...}}])")
        number = int if kind == "int" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, number) for v in args):
            raise ValueError(f"low and high must be {'integers' if kind == 'int' else 'numbers'}")
        log = bool(options.get("log", False))
        if kind == "int":
            return IntDistribution(args[0], args[1], log=log, step=int(options.get("step", 1)))
        return FloatDistribution(args[0], args[1], log=log, step=options.get("step"))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"space[{name!r}] is invalid: {exc}", field=f"space.{name}") from exc


def _suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)  # type: ignore[call-overload]
        else:
            raise InvalidInput(f"space[{name!r}] has an unsupported distribution", field="space")
    return params


def _sampler(sampler: SamplerSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler not in _SAMPLERS:
        choices = ", ".join(_SAMPLERS)
        raise InvalidInput(f"unknown sampler {sampler!r}: use {choices}", field="sampler")
    return _SAMPLERS[sampler](seed)


def _pruner(pruner: str | optuna.pruners.BasePruner | None) -> optuna.pruners.BasePruner:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if (pruner or "none") not in _PRUNERS:
        choices = ", ".join(_PRUNERS)
        raise InvalidInput(f"unknown pruner {pruner!r}: use {choices}", field="pruner")
    return _PRUNERS[pruner or "none"]()


def optuna_storage(settings: Settings | None = None) -> optuna.storages.RDBStorage:
    """Return the Optuna storage beside loopml's metadata store (see the module notes).

    Raises
    ------
    InvalidInput
        When loopml talks to a remote tracking server, which has no local database.
    """
    settings = settings or load_settings()
    if settings.tracking_uri:
        raise InvalidInput(
            "with a remote tracking server, studies need their own storage: pass "
            "storage='postgresql+psycopg://...' to tune",
            field="storage",
        )
    from loopml.store.sql.engine import open_engine

    engines = open_engine(settings.resolved_store_uri)
    url = engines.write.url
    if engines.dialect == "sqlite":
        store_file = Path(str(url.database)).expanduser()
        target = store_file.with_name(f"{store_file.stem}-optuna.db")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60.0}}
        return optuna.storages.RDBStorage(f"sqlite:///{target}", engine_kwargs=kwargs)
    with engines.write.begin() as conn:  # concurrent first uses must not race
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK_KEY})")
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")
    kwargs = {"pool_pre_ping": True, "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}}
    return optuna.storages.RDBStorage(
        url.render_as_string(hide_password=False), engine_kwargs=kwargs
    )


def _open_storage(
    storage: optuna.storages.BaseStorage | str | None, settings: Settings
) -> tuple[optuna.storages.BaseStorage, bool]:
    """Return the storage and whether this call opened it (and must close it)."""
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage, False
    if isinstance(storage, str):
        return optuna.storages.RDBStorage(storage), True
    if settings.tracking_uri:
        return optuna.storages.InMemoryStorage(), True
    return optuna_storage(settings), True


def _close_storage(storage: optuna.storages.BaseStorage) -> None:
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()


def _as_metrics(result: Any, metric: str) -> dict[str, float]:
    values = dict(result) if isinstance(result, Mapping) else {metric: result}
    if metric not in values:
        raise InvalidInput(
            f"the objective returned {sorted(values)}, not the optimised metric {metric!r}",
            field="metric",
        )
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInput(f"metric {key!r} is {value!r}, not a number", field="metric")
    if math.isnan(float(values[metric])):
        raise InvalidInput(f"metric {metric!r} is NaN", field="metric")
    return {str(key): float(value) for key, value in values.items()}


@dataclass(frozen=True)
class _TrialRunner:
    """The Optuna objective: one nested loopml run around the user's objective."""

    objective: Objective
    space: Mapping[str, BaseDistribution] | None
    metric: str
    study_name: str
    parent_run_id: str
    experiment_id: str

    def __call__(self, trial: optuna.Trial) -> float:
        current = fluent.active_run()
        attach: AbstractContextManager[Any] = (
            nullcontext()
            if current is not None and current.run_id == self.parent_run_id
            else fluent.use_run(self.parent_run_id)  # a worker thread or a Dask worker
        )
        tags = {"loopml.trial_number": trial.number, "loopml.study": self.study_name}
        pruned = False
        with attach, fluent.start_run(
            f"trial-{trial.number}", nested=True, tags=tags, experiment_id=self.experiment_id
        ) as run:
            trial.set_user_attr("loopml.run_id", run.run_id)
            try:
                metrics = _as_metrics(self._call(trial), self.metric)
                fluent.log_metrics(metrics)
                trial.set_user_attr("loopml.metrics", metrics)
                fluent.set_tag("loopml.trial_state", TrialState.COMPLETE.name)
            except optuna.TrialPruned:
                pruned = True  # the run ends FINISHED; the tag says it was stopped early
                fluent.set_tag("loopml.trial_state", TrialState.PRUNED.name)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:8000]
                fluent.set_tags({"loopml.trial_state": TrialState.FAIL.name, "loopml.error": error})
                raise
        if pruned:
            raise optuna.TrialPruned()
        return metrics[self.metric]

    def _call(self, trial: optuna.Trial) -> Any:
        if self.space is not None:
            params = _suggest(trial, self.space)
            fluent.log_params(params)
            return self.objective(params)
        try:
            return self.objective(trial)
        finally:  # the params the objective suggested, also when it failed or was pruned
            if trial.params:
                fluent.log_params(dict(trial.params))


def _trial_dict(trial: FrozenTrial) -> dict[str, Any]:
    complete = trial.state is TrialState.COMPLETE
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if complete else None,
        "params": dict(trial.params),
        "metrics": dict(trial.user_attrs.get("loopml.metrics", {})),
        "run_id": trial.user_attrs.get("loopml.run_id"),
    }


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}", field=name)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {choices}, got {value!r}", field=name)


def tune(
    objective: Objective,
    space: SpaceSpec | None = None,
    *,
    n_trials: int = 20,
    direction: Literal["maximize", "minimize"] = "maximize",
    metric: str = "objective",
    sampler: SamplerSpec = "tpe",
    pruner: str | optuna.pruners.BasePruner | None = None,
    seed: int | None = None,
    study_name: str | None = None,
    timeout_s: float | None = None,
    executor: Literal["local", "dask"] = "local",
    n_jobs: int = 1,
    storage: optuna.storages.BaseStorage | str | None = None,
) -> TuneResult:
    """Tune hyperparameters with Optuna, tracking every trial as a nested run.

    Parameters
    ----------
    objective : callable
        Called per trial with the sampled params dict (when ``space`` is given) or the
        ``optuna.Trial`` (when it is not); returns a number, or a dict of metrics holding
        ``metric``. ``lm.log_*`` calls inside it land in the trial's run.
    space : mapping, optional
        The search space, see :func:`parse_space`.
    n_trials : int, default 20
        Trials to run (fewer if ``timeout_s`` runs out first).
    direction : {"maximize", "minimize"}
        What to do with ``metric``.
    metric : str, default "objective"
        Name of the optimised metric.
    sampler : {"tpe", "random", "cmaes"} or optuna sampler
        How params are chosen; ``seed`` seeds the named samplers.
    pruner : {"none", "median", "hyperband", "successive_halving"} or optuna pruner
        Stops unpromising trials that call ``trial.report`` (so it needs ``space=None``).
    seed : int, optional
        Makes a sequential (local, ``n_jobs=1``) study reproducible.
    study_name : str, optional
        Defaults to ``tune-<hex>``; an existing study of that name is resumed.
    timeout_s : float, optional
        Start no trial after this many seconds.
    executor : {"local", "dask"}
        ``local`` runs trials here (``n_jobs`` threads); ``dask`` on a ``LocalCluster`` of
        ``max(n_jobs, 2)`` processes, or on ``LOOPML_DASK_SCHEDULER``, that share the study's
        SQL storage. Parallel studies are not reproducible.
    n_jobs : int, default 1
        Trials run at once.
    storage : optuna storage or SQLAlchemy URL, optional
        Where the study lives; loopml's database by default (see the module notes).

    Raises
    ------
    InvalidInput
        For a malformed argument (naming it), or an active run that already holds a study.
    LoopmlError
        When no trial completed.

    Examples
    --------
    >>> result = lm.tune(lambda p: -((p["x"] - 2) ** 2), {"x": ("float", -5, 5)},  # doctest: +SKIP
    ...                  n_trials=30, seed=0)
    >>> result.best_params  # doctest: +SKIP
    {'x': 2.01...}
    """
    _check_int(n_trials, "n_trials")
    _check_int(n_jobs, "n_jobs")
    _check_choice(direction, "direction", ("maximize", "minimize"))
    _check_choice(executor, "executor", ("local", "dask"))
    if timeout_s is not None and not timeout_s > 0:
        raise InvalidInput("timeout_s must be positive", field="timeout_s")
    check_key(metric, "metric")
    parsed = None if space is None else parse_space(space)
    if parsed is not None and pruner not in (None, "none"):
        raise InvalidInput("pruning needs space=None and trial.report calls", field="pruner")
    name = check_name(study_name or f"tune-{uuid.uuid4().hex[:12]}", "study_name")
    the_sampler, the_pruner = _sampler(sampler, seed), _pruner(pruner)
    settings = load_settings()
    parent = fluent.active_run()
    if parent is not None and "loopml.study" in fluent.get_run(parent.run_id).tags:
        raise InvalidInput(
            f"run {parent.run_id} already holds a study: start a nested run per tune call",
            field="study_name",
        )
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    the_storage, opened = _open_storage(storage, settings)
    try:
        with fluent.start_run(name) if parent is None else nullcontext(parent) as run:
            study = optuna.create_study(
                storage=the_storage,
                sampler=the_sampler,
                pruner=the_pruner,
                study_name=name,
                direction=direction,
                load_if_exists=True,
            )
            if study.direction.name.lower() != direction:
                raise InvalidInput(f"study {name!r} has the other direction", field="direction")
            fluent.set_tags({"loopml.study": name, "loopml.study_direction": direction})
            fluent.log_params(
                {
                    "tune.n_trials": n_trials,
                    "tune.metric": metric,
                    "tune.sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
                    "tune.seed": seed,
                    "tune.executor": executor,
                }
            )
            runner = _TrialRunner(
                objective, parsed, metric, name, run.run_id, run.info.experiment_id
            )
            if executor == "dask":
                _optimize_on_dask(study, runner, n_trials, timeout_s, n_jobs, settings, seed)
            else:
                study.optimize(
                    runner, n_trials=n_trials, timeout=timeout_s, n_jobs=n_jobs, catch=(Exception,)
                )
            return _finish(study, metric, run.run_id)
    finally:
        if opened:
            _close_storage(the_storage)
        optuna.logging.set_verbosity(verbosity)


def _finish(study: optuna.Study, metric: str, parent_run_id: str) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    if not any(t.state is TrialState.COMPLETE for t in trials):
        failed = [t for t in trials if t.state is TrialState.FAIL]
        reason = failed[0].system_attrs.get("fail_reason") if failed else None
        raise LoopmlError(
            f"no trial of study {study.study_name!r} completed ({len(trials)} trials); "
            f"first failure: {reason or 'none recorded'}"
        )
    best = study.best_trial
    count = {s: float(sum(t.state is s for t in trials)) for s in TrialState}
    fluent.log_params({f"best.{k}": v for k, v in best.params.items()})
    fluent.log_metrics(
        {
            f"best.{metric}": float(study.best_value),
            "tune.n_complete": count[TrialState.COMPLETE],
            "tune.n_failed": count[TrialState.FAIL],
        }
    )
    best_run = str(best.user_attrs.get("loopml.run_id", ""))
    fluent.set_tags({"loopml.best_trial_number": best.number, "loopml.best_trial_run_id": best_run})
    return TuneResult(
        best_params=dict(best.params),
        best_value=float(study.best_value),
        best_trial_number=best.number,
        study_name=study.study_name,
        n_trials=len(trials),
        parent_run_id=parent_run_id,
        trials=[_trial_dict(t) for t in trials],
    )


@dataclass(frozen=True)
class _DaskTask:
    """One worker's share of a study (Dask pickles it to the worker)."""

    study: optuna.Study
    sampler: optuna.samplers.BaseSampler
    runner: _TrialRunner
    n_trials: int
    timeout_s: float | None
    environment: dict[str, str]


def _run_dask_task(task: _DaskTask) -> int:
    """What a Dask worker runs: point loopml at the parent's stores, then run trials."""
    with _environment_lock:
        os.environ.update(task.environment)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=task.study.study_name,
        storage=task.study._storage,
        sampler=task.sampler,
        pruner=task.study.pruner,
    )
    try:
        study.optimize(task.runner, n_trials=task.n_trials, timeout=task.timeout_s, catch=(Exception,))
    finally:
        _close_storage(study._storage)
    return task.n_trials


def _optimize_on_dask(
    study: optuna.Study,
    runner: _TrialRunner,
    n_trials: int,
    timeout_s: float | None,
    n_jobs: int,
    settings: Settings,
    seed: int | None,
) -> None:
    if not isinstance(study._storage, optuna.storages.RDBStorage):
        raise InvalidInput(
            "dask tuning needs a SQL study storage every worker reaches: with a remote "
            "tracking server pass storage='postgresql+psycopg://...'",
            field="executor",
        )
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError as exc:
        raise InvalidInput(
            "dask tuning needs dask.distributed: pip install 'loopml[dask]'", field="executor"
        ) from exc
    environment = {"LOOPML_HOME": str(settings.home)}
    if settings.tracking_uri:
        environment["LOOPML_TRACKING_URI"] = settings.tracking_uri
        environment.update({"LOOPML_TRACKING_TOKEN": settings.tracking_token or ""})
    else:
        environment["LOOPML_STORE_URI"] = settings.resolved_store_uri
        environment["LOOPML_ARTIFACT_URI"] = settings.resolved_artifact_uri
    workers = max(n_jobs, 2)
    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
    tasks = [
        _DaskTask(study, _worker_sampler(study.sampler, seed, i), runner, n, timeout_s, environment)
        for i, n in enumerate(shares)
        if n
    ]
    address = os.environ.get("LOOPML_DASK_SCHEDULER")
    cluster = None
    if not address:
        cluster = distributed.LocalCluster(
            processes=True,
            n_workers=len(tasks),
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
    try:
        with distributed.Client(address or cluster, set_as_default=False) as client:
            key = f"loopml-tune-{uuid.uuid4().hex}"
            futures = [
                client.submit(_run_dask_task, task, pure=False, key=f"{key}-{i}")
                for i, task in enumerate(tasks)
            ]
            client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()


def _worker_sampler(
    sampler: optuna.samplers.BaseSampler, seed: int | None, index: int
) -> optuna.samplers.BaseSampler:
    """Give each worker its own random stream, or they would all propose the same params."""
    for name, factory in _SAMPLERS.items():
        if seed is not None and type(sampler) is type(factory(None)):
            return _SAMPLERS[name](seed + index)
    return sampler
