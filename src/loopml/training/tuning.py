"""Hyperparameter tuning on Optuna, with every trial tracked as a nested run.

Optuna versions its tables in a table named ``alembic_version``, as loopml's migrations do, so
the two cannot share a SQL namespace. Studies live beside loopml's metadata: on PostgreSQL in
the schema ``loopml_optuna`` of the same database, on SQLite in ``<store>-optuna.db`` next to
the store file (``$LOOPML_HOME/loopml-optuna.db`` by default); in memory with a remote
tracking server (``LOOPML_TRACKING_URI``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import numbers
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import optuna
from optuna import distributions as dists
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from loopml.config import Settings, load_settings
from loopml.errors import InvalidInput, LoopmlError
from loopml.tracking import fluent
from loopml.tracking.validation import check_key, check_name

__all__ = ["OPTUNA_SCHEMA", "TuneResult", "optuna_storage", "parse_space", "tune"]

#: PostgreSQL schema that holds Optuna's tables, beside loopml's own in the same database.
OPTUNA_SCHEMA = "loopml_optuna"
SpaceSpec: TypeAlias = Mapping[str, Any]
SamplerSpec: TypeAlias = "str | optuna.samplers.BaseSampler"
PrunerSpec: TypeAlias = "str | optuna.pruners.BasePruner | None"
_SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
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

    ``best_*`` describe the best completed trial; ``n_trials`` counts the study's trials in
    every state; ``trials`` holds one dict per trial (``number``, ``state``, ``value``,
    ``params``, ``metrics``, ``run_id``). Load the study itself with
    ``optuna.load_study(study_name=result.study_name, storage=optuna_storage())``.
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

    ``{"C": ("float", 1e-3, 10, {"log": True}), "depth": ("int", 2, 8, {"step": 2}),
    "kernel": ("categorical", ["rbf", "linear"])}``; Optuna distributions are accepted too.
    Raises :class:`InvalidInput` naming the first malformed key.
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
            return dists.CategoricalDistribution(list(args[0]))
        if len(args) != 2 or set(options) - {"log", "step"}:
            raise ValueError(f"expected ({kind!r}, low, high[, {{'log': ..., 'step': ...}}])")
        number = int if kind == "int" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, number) for v in args):
            raise ValueError(f"low and high must be {'integers' if kind == 'int' else 'numbers'}")
        low, high, log = args[0], args[1], bool(options.get("log", False))
        if kind == "int":
            return dists.IntDistribution(low, high, log=log, step=int(options.get("step", 1)))
        return dists.FloatDistribution(low, high, log=log, step=options.get("step"))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"space[{name!r}] is invalid: {exc}", field=f"space.{name}") from exc


def _suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, d in space.items():
        if isinstance(d, dists.FloatDistribution):
            params[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, dists.IntDistribution):
            params[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, dists.CategoricalDistribution):
            params[key] = trial.suggest_categorical(key, d.choices)
        else:
            raise InvalidInput(f"space[{key!r}] has an unsupported distribution", field="space")
    return params


def _named(spec: Any, table: Mapping[str, Callable[..., Any]], kind: str, *args: Any) -> Any:
    """Build the sampler or pruner ``spec`` names, or pass an Optuna object through."""
    base = optuna.samplers.BaseSampler if kind == "sampler" else optuna.pruners.BasePruner
    if isinstance(spec, base):
        return spec
    _check(spec in table, kind, spec, f"one of {tuple(table)} or an Optuna {kind}")
    return table[spec](*args)


def optuna_storage(settings: Settings | None = None) -> optuna.storages.RDBStorage:
    """Return the Optuna storage beside loopml's metadata store (see the module notes)."""
    settings = settings or load_settings()
    if settings.tracking_uri:
        raise InvalidInput("a remote tracking server has no local database", field="storage")
    from loopml.store.sql.engine import open_engine

    engines = open_engine(settings.resolved_store_uri)
    url = engines.write.url
    if engines.dialect == "sqlite":
        store_file = Path(str(url.database)).expanduser()
        target = store_file.with_name(f"{store_file.stem}-optuna.db")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60.0}}
        return optuna.storages.RDBStorage(f"sqlite:///{target}", engine_kwargs=kwargs)
    with engines.write.begin() as conn:  # concurrent first uses must not race
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(119304647)")
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")
    kwargs = {"pool_pre_ping": True, "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}}
    return optuna.storages.RDBStorage(
        url.render_as_string(hide_password=False), engine_kwargs=kwargs
    )


def _close_storage(storage: optuna.storages.BaseStorage) -> None:
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()


def _as_metrics(result: Any, metric: str) -> dict[str, float]:
    values = dict(result) if isinstance(result, Mapping) else {metric: result}
    if metric not in values:
        message = f"the objective returned {sorted(values)}, not the metric {metric!r}"
        raise InvalidInput(message, field="metric")
    for key, value in values.items():
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not number or (key == metric and math.isnan(float(value))):
            raise InvalidInput(f"metric {key!r} is {value!r}, not a number", field="metric")
    return {str(key): float(value) for key, value in values.items()}


@dataclass(frozen=True)
class _TrialRunner:
    """The Optuna objective: one nested loopml run around the user's objective."""

    objective: Callable[[Any], Any]
    space: Mapping[str, BaseDistribution] | None
    metric: str
    study_name: str
    parent_run_id: str
    experiment_id: str

    def __call__(self, trial: optuna.Trial) -> float:
        current = fluent.active_run()
        on_parent = current is not None and current.run_id == self.parent_run_id
        # in a worker thread or a Dask worker, make the parent the active run first
        attach = nullcontext() if on_parent else fluent.use_run(self.parent_run_id)
        tags = {"loopml.trial_number": trial.number, "loopml.study": self.study_name}
        name, pruned = f"trial-{trial.number}", False
        with (
            attach,
            fluent.start_run(name, nested=True, tags=tags, experiment_id=self.experiment_id) as run,
        ):
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
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if trial.state is TrialState.COMPLETE else None,
        "params": dict(trial.params),
        "metrics": dict(trial.user_attrs.get("loopml.metrics", {})),
        "run_id": trial.user_attrs.get("loopml.run_id"),
    }


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise InvalidInput(f"{name} must be {expected}, got {value!r}", field=name)


def tune(
    objective: Callable[[Any], Any],
    space: SpaceSpec | None = None,
    *,
    n_trials: int = 20,
    direction: Literal["maximize", "minimize"] = "maximize",
    metric: str = "objective",
    sampler: SamplerSpec = "tpe",
    pruner: PrunerSpec = None,
    seed: int | None = None,
    study_name: str | None = None,
    timeout_s: float | None = None,
    executor: Literal["local", "dask"] = "local",
    n_jobs: int = 1,
) -> TuneResult:
    """Tune hyperparameters with Optuna, tracking every trial as a nested run.

    Trials are child runs of the active run (else of a new run named after the study) with
    their params, metrics and the tags ``loopml.trial_number`` and ``loopml.study``; the parent
    gets the best params (``best.<name>``) and value (``best.<metric>``). Raises
    :class:`InvalidInput` naming a bad argument, :class:`LoopmlError` if no trial completed.

    Parameters
    ----------
    objective, space
        ``objective`` gets the params sampled from ``space`` (see :func:`parse_space`) or,
        without a space, the ``optuna.Trial``; it returns a number or a dict of metrics
        holding ``metric``. ``lm.log_*`` calls inside land in the trial's run; a trial that
        raises ends FAILED and the study goes on.
    n_trials, direction, metric
        How many trials (fewer when ``timeout_s`` runs out), and which way to optimise which
        of the objective's metrics.
    sampler, pruner, seed
        ``"tpe"``, ``"random"`` or an Optuna sampler, seeded by ``seed`` (which makes a local
        ``n_jobs=1`` study reproducible); ``"median"``, ``"hyperband"``,
        ``"successive_halving"`` or an Optuna pruner for objectives that ``trial.report``.
    study_name, timeout_s
        Defaults to ``tune-<hex>``; an existing study is resumed. Start no trial after
        ``timeout_s`` seconds.
    executor, n_jobs
        ``"local"`` runs ``n_jobs`` trials at once in threads; ``"dask"`` runs them on a
        ``LocalCluster`` of ``max(n_jobs, 2)`` processes (or on ``LOOPML_DASK_SCHEDULER``,
        given PostgreSQL and shared artifacts) sharing the study's SQL storage.

    Examples
    --------
    >>> lm.tune(lambda p: -((p["x"] - 2) ** 2), {"x": ("float", -5, 5)})  # doctest: +SKIP
    """
    for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        _check(is_int and value > 0, key, value, "a positive integer")
    _check(direction in ("maximize", "minimize"), "direction", direction, "maximize or minimize")
    _check(executor in ("local", "dask"), "executor", executor, "'local' or 'dask'")
    if executor == "dask" and importlib.util.find_spec("distributed") is None:
        raise InvalidInput("dask tuning needs: pip install 'loopml[dask]'", field="executor")
    _check(timeout_s is None or timeout_s > 0, "timeout_s", timeout_s, "positive")
    check_key(metric, "metric")
    parsed = None if space is None else parse_space(space)
    if parsed is not None and pruner not in (None, "none"):
        raise InvalidInput("pruning needs space=None and trial.report calls", field="pruner")
    name = check_name(study_name or f"tune-{uuid.uuid4().hex[:12]}", "study_name")
    the_sampler = _named(sampler, _SAMPLERS, "sampler", seed)
    the_pruner = _named(pruner or "none", _PRUNERS, "pruner")
    parent = fluent.active_run()
    if parent is not None and "loopml.study" in fluent.get_run(parent.run_id).tags:
        message = f"run {parent.run_id} already holds a study: start a nested run per tune call"
        raise InvalidInput(message, field="study_name")
    settings, verbosity = load_settings(), optuna.logging.get_verbosity()
    remote = settings.tracking_uri is not None
    _check(executor == "local" or not remote, "executor", executor, "'local' with remote tracking")
    storage = optuna.storages.InMemoryStorage() if remote else optuna_storage(settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with fluent.start_run(name) if parent is None else nullcontext(parent) as run:
            kwargs: dict[str, Any] = {"sampler": the_sampler, "pruner": the_pruner}
            kwargs.update(storage=storage, direction=direction, load_if_exists=True)
            study = optuna.create_study(study_name=name, **kwargs)
            if study.direction.name.lower() != direction:
                raise InvalidInput(f"study {name!r} has the other direction", field="direction")
            fluent.set_tags({"loopml.study": name, "loopml.study_direction": direction})
            sampler_name = sampler if isinstance(sampler, str) else type(sampler).__name__
            config = {"n_trials": n_trials, "sampler": sampler_name, "seed": seed}
            fluent.log_params({f"tune.{key}": value for key, value in config.items()})
            info = run.info
            runner = _TrialRunner(objective, parsed, metric, name, info.run_id, info.experiment_id)
            if executor == "dask":
                plan = (storage, sampler, seed, timeout_s)
                _optimize_on_dask(study, runner, n_trials, n_jobs, plan)
            else:
                options: dict[str, Any] = {"n_trials": n_trials, "timeout": timeout_s}
                study.optimize(runner, n_jobs=n_jobs, catch=(Exception,), **options)
            return _finish(study, metric, info.run_id)
    finally:
        _close_storage(storage)
        optuna.logging.set_verbosity(verbosity)


def _finish(study: optuna.Study, metric: str, parent_run_id: str) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state is state for t in trials) for state in TrialState}
    if not count[TrialState.COMPLETE]:
        failed = [t.system_attrs.get("fail_reason") for t in trials if t.state is TrialState.FAIL]
        reason = failed[0] if failed else "none recorded"
        raise LoopmlError(f"no trial of {study.study_name!r} completed; first failure: {reason}")
    best, value = study.best_trial, float(study.best_value)
    fluent.log_params({f"best.{k}": v for k, v in best.params.items()})
    fluent.log_metrics({f"best.{metric}": value, "tune.n_failed": count[TrialState.FAIL]})
    best_run_id = str(best.user_attrs.get("loopml.run_id", ""))
    fluent.set_tags({"loopml.best_trial_number": best.number, "loopml.best_run_id": best_run_id})
    found = (dict(best.params), value, best.number, study.study_name, len(trials))
    return TuneResult(*found, parent_run_id, [_trial_dict(t) for t in trials])


def _run_dask_task(environment: dict[str, str], study: tuple[Any, ...], runner: Any) -> None:
    """What a Dask worker runs: point loopml at the parent's stores, then run its trials."""
    with _environment_lock:
        os.environ.update(environment)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, storage, sampler_spec, seed, pruner, n_trials, timeout_s = study
    sampler = _named(sampler_spec, _SAMPLERS, "sampler", seed)
    if seed is None or not isinstance(sampler_spec, str):
        sampler.reseed_rng()  # else every worker would propose the same params
    try:
        loaded = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        loaded.optimize(runner, n_trials=n_trials, timeout=timeout_s, catch=(Exception,))
    finally:
        _close_storage(storage)


def _optimize_on_dask(
    study: optuna.Study, runner: _TrialRunner, n_trials: int, n_jobs: int, plan: tuple[Any, ...]
) -> None:
    distributed: Any = importlib.import_module("distributed")
    settings = load_settings()
    env = {"LOOPML_HOME": str(settings.home), "LOOPML_STORE_URI": settings.resolved_store_uri}
    env["LOOPML_ARTIFACT_URI"] = settings.resolved_artifact_uri
    storage, sampler, seed, timeout_s = plan
    workers = max(n_jobs, 2)
    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
    address, cluster = os.environ.get("LOOPML_DASK_SCHEDULER"), None
    if not address:
        quiet = {"dashboard_address": None, "silence_logs": logging.WARNING}
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, **quiet)
    try:
        with distributed.Client(address or cluster, set_as_default=False) as client:
            key, futures = f"loopml-tune-{uuid.uuid4().hex}", []
            for i, n in enumerate(share for share in shares if share):
                seed_i = None if seed is None else seed + i
                task = (study.study_name, storage, sampler, seed_i, study.pruner, n, timeout_s)
                futures.append(client.submit(_run_dask_task, env, task, runner, key=f"{key}-{i}"))
            client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()
