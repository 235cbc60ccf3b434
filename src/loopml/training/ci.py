"""ML CI: the checks a Git CI job runs on every push and on new data.

:class:`CIService` runs four checks for one project, in this order:

1. ``tests``: the code tests, a command run in the project folder (``pytest -q`` when the
   project has a ``tests/`` folder and no command is configured);
2. ``data``: the latest version of a dataset validated against the schema attached to it
   (and for drift against a reference version, when one is named); the result is stored
   with the version;
3. ``pipeline``: the training pipeline run on a sample (the contract is below);
4. ``gate``: the validation gate on what the pipeline produced, against the champion.

Configuration mistakes (a dataset or pipeline that does not exist, a dataset without a
schema, an unknown setting) raise :class:`~loopml.errors.InvalidInput` before any check
runs. Everything that goes wrong while the checks run (a failing test, an invalid batch, a
step that raises, a rejected candidate) is a failed check in the :class:`CIReport`.

The pipeline contract
---------------------
The pipeline is told to train on a sample in one of two ways, whichever its signature
allows (a value set in ``params`` is left alone):

- it takes a ``sample`` parameter: it receives the number of rows to use (``sample``,
  1,000 by default) and samples its own data;
- it takes a ``dataset`` parameter: it receives a dataset reference (``churn.ci-sample@v2``)
  to read with ``lm.datasets.get(dataset)``. The reference names ``sample`` rows of the
  latest version of the configured dataset (else of the parameter's default), drawn with a
  fixed seed, kept in their original order and registered as the dataset
  ``<dataset>.ci-sample`` (the same rows register once); a version with at most ``sample``
  rows is passed as it is.

What the pipeline returns (its single output, or the output named ``candidate``) is what
the gate checks:

- a registered model version, ``"churn/7"`` or ``{"name": "churn", "version": 7}``, with a
  stored evaluation (``lm.evaluate(lm.models.load("churn/7"), test, target=...)``): the full
  gate, infrastructure check included, against ``churn@champion``; the decision is stored
  with the version;
- an evaluation, ``lm.evaluate(model, test, target=...).to_dict()``: the gate against the
  stored evaluation of the configured ``model``'s champion. Nothing was stored to load in a
  fresh process, so the infrastructure check does not apply and is not required.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loopml.entities.pipelines import PipelineRun, StepExecution, StepStatus
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.training._ci_config import CHECKS, CIConfig, load_config
from loopml.training.evaluation import EvaluationResult
from loopml.training.gate import Gate, GateResult

if TYPE_CHECKING:
    from loopml.data.datasets import DatasetService
    from loopml.entities.data import DatasetVersion
    from loopml.entities.registry import ModelVersion
    from loopml.registry.service import RegistryService

__all__ = [
    "CHECKS",
    "CIConfig",
    "CIPipeline",
    "CIReport",
    "CIService",
    "CheckResult",
    "load_config",
]

#: The suffix of the dataset that holds the rows a pipeline trains on in CI.
SAMPLE_SUFFIX = ".ci-sample"
#: Rows are sampled with this seed, so the same data gives the same sample (and version).
SAMPLE_SEED = 0
#: Lines of test output kept for the report of a failed test run.
OUTPUT_TAIL = 30
_VERSION_SPEC = re.compile(r"^(?P<name>[^/@\s]+)/(?P<version>\d+)$")


class CIPipelineResult(Protocol):
    """What the check reads of a finished pipeline run."""

    @property
    def run(self) -> PipelineRun:
        """The run record."""

    @property
    def steps(self) -> Mapping[str, StepExecution]:
        """Step executions by name."""

    @property
    def returned(self) -> Mapping[str, object]:
        """The outputs the pipeline function returned, by name."""

    @property
    def succeeded(self) -> bool:
        """Whether every step completed or was cached."""

    def output(self, name: str = "output") -> Any:
        """Load one returned output."""


class CIPipeline(Protocol):
    """An ``@lm.pipeline`` function, as far as CI uses it."""

    name: str
    signature: inspect.Signature

    def validate_params(self, params: dict[str, Any] | Any | None) -> dict[str, Any]:
        """Check parameters against the function's annotations."""

    def run(
        self,
        params: dict[str, Any] | None = None,
        *,
        executor: str = "inprocess",
        cache: bool = True,
        trigger: str = "manual",
        max_workers: int | None = None,
    ) -> CIPipelineResult:
        """Run the pipeline."""


PipelineLoader = Callable[[str], CIPipeline]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    check : str
        ``tests``, ``data``, ``pipeline`` or ``gate``.
    status : {"passed", "failed", "skipped"}
    detail : str
        One line: what ran and what came out, or why it was skipped.
    seconds : float
        Wall time of the check.
    lines : tuple of str
        More lines for a failure: failed tests, anomalies, step errors, gate checks.
    data : dict
        Machine-readable facts (dataset version, pipeline run id, model version, gate result).
    """

    check: str
    status: str
    detail: str
    seconds: float = 0.0
    lines: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "check": self.check,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "lines": list(self.lines),
            "data": self.data,
        }


@dataclass(frozen=True)
class CIReport:
    """Every check of one CI run; ``passed`` unless one failed."""

    checks: list[CheckResult]
    project: str
    source: str

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail the run)."""
        return not self.failed

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.check for c in self.checks if c.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "project": self.project,
            "config": self.source,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class _Plan:
    """What the configuration resolved to, before anything runs."""

    tests: list[str] | None = None
    tests_shown: str = ""
    dataset: DatasetVersion | None = None
    pipeline: CIPipeline | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sample_of: DatasetVersion | None = None
    gate: Gate | None = None
    skipped: dict[str, str] = field(default_factory=dict)


class CIService:
    """Runs the ML CI checks of a project.

    Parameters
    ----------
    datasets : DatasetService
        Reads, validates and registers dataset versions.
    registry : RegistryService
        Finds model versions and the champion.
    load_pipeline : callable, optional
        Imports a pipeline by reference (``loopml.pipelines.load_pipeline``). Passed in
        because the training layer does not import the pipelines package; without it a
        configured pipeline is refused.
    """

    def __init__(
        self,
        datasets: DatasetService,
        registry: RegistryService,
        load_pipeline: PipelineLoader | None = None,
    ) -> None:
        self.datasets = datasets
        self.registry = registry
        self.load_pipeline = load_pipeline

    # -- planning ---------------------------------------------------------------------------
    def plan(self, config: CIConfig) -> _Plan:
        """Resolve the configuration: raise on mistakes, decide what is skipped and why."""
        plan = _Plan()
        for name in config.skip:
            plan.skipped[name] = "skipped on request"
        if "tests" not in plan.skipped:
            self._plan_tests(config, plan)
        if "data" not in plan.skipped:
            if config.dataset is None:
                plan.skipped["data"] = "no dataset configured"
            else:
                plan.dataset = self._plan_dataset(config)
        if config.reference is not None:
            self.datasets.resolve(config.reference)
        if "pipeline" not in plan.skipped:
            if config.pipeline is None:
                plan.skipped["pipeline"] = "no pipeline configured"
            else:
                self._plan_pipeline(config, plan)
        if "gate" not in plan.skipped:
            if plan.pipeline is None or "pipeline" in plan.skipped:
                plan.skipped["gate"] = "no pipeline run: nothing to gate"
            else:
                with _importable(config):
                    plan.gate = _load_gate(config.gate)
        if len(plan.skipped) == len(CHECKS):
            raise InvalidInput(
                f"nothing to check in {config.project}: "
                + "; ".join(f"{name}: {plan.skipped[name]}" for name in CHECKS)
                + ". Configure [tool.loopml.ci] in pyproject.toml or [ci] in loopml.toml "
                "(dataset, pipeline, tests)",
                field="ci",
            )
        return plan

    def _plan_tests(self, config: CIConfig, plan: _Plan) -> None:
        if config.tests is None:
            if not (config.project / "tests").is_dir():
                plan.skipped["tests"] = "no tests/ folder and no tests command"
                return
            plan.tests = [sys.executable, "-m", "pytest", "-q"]
            plan.tests_shown = "pytest -q"
            return
        try:
            command = shlex.split(config.tests)
        except ValueError as exc:
            raise InvalidInput(f"tests command {config.tests!r}: {exc}", field="tests") from exc
        if not command:
            plan.skipped["tests"] = "the tests command is empty"
            return
        if (
            shutil.which(command[0], path=None) is None
            and not (config.project / command[0]).is_file()
        ):
            raise InvalidInput(f"tests command {command[0]!r} is not on PATH", field="tests")
        plan.tests, plan.tests_shown = command, config.tests

    def _plan_dataset(self, config: CIConfig) -> DatasetVersion:
        assert config.dataset is not None
        version = self.datasets.resolve(config.dataset)
        if self.datasets.get_schema(version.name) is None:
            raise InvalidInput(
                f"dataset {version.name!r} has no schema attached: attach one with "
                f"'loopml data schema infer {version.uri} --attach' or lm.datasets.set_schema",
                field="dataset",
            )
        return version

    def _plan_pipeline(self, config: CIConfig, plan: _Plan) -> None:
        assert config.pipeline is not None
        if self.load_pipeline is None:
            raise InvalidInput("this CI service cannot load pipelines", field="pipeline")
        with _importable(config):
            pipeline = self.load_pipeline(config.pipeline)
        params = dict(config.params)
        accepted = pipeline.signature.parameters
        if "sample" in params or "dataset" in params:
            pass
        elif "sample" in accepted:
            params["sample"] = config.sample
        elif "dataset" in accepted:
            default = accepted["dataset"].default
            source = config.dataset or (default if isinstance(default, str) else None)
            if source is None:
                raise InvalidInput(
                    f"pipeline {pipeline.name!r} takes a dataset parameter: name the dataset "
                    "to sample (dataset = ...)",
                    field="dataset",
                )
            plan.sample_of = self.datasets.resolve(source)
            # A placeholder of the right type; the sample is registered when the check runs.
            params["dataset"] = f"{plan.sample_of.name}{SAMPLE_SUFFIX}"
        else:
            raise InvalidInput(
                f"pipeline {pipeline.name!r} takes neither a 'sample' nor a 'dataset' "
                "parameter, so CI cannot run it on a sample; add one, or set one in params",
                field="pipeline",
            )
        plan.params = pipeline.validate_params(params)
        plan.pipeline = pipeline

    # -- running ----------------------------------------------------------------------------
    def run(self, config: CIConfig, *, progress: Callable[[str], None] | None = None) -> CIReport:
        """Plan, then run every check that is not skipped; return the report.

        Parameters
        ----------
        config : CIConfig
            What to check (see :func:`load_config`).
        progress : callable, optional
            Receives a line when a check starts.

        Raises
        ------
        InvalidInput, NotFound
            For configuration mistakes, before any check runs.
        """
        say = progress or (lambda line: None)
        plan = self.plan(config)
        results: list[CheckResult] = []
        outcome: CIPipelineResult | None = None
        for name in CHECKS:
            if name in plan.skipped:
                results.append(CheckResult(name, "skipped", plan.skipped[name]))
                continue
            if config.fail_fast and any(r.status == "failed" for r in results):
                results.append(CheckResult(name, "skipped", "skipped after a failure"))
                continue
            started = time.perf_counter()
            if name == "tests":
                say(f"tests: {plan.tests_shown}")
                result = self._run_tests(config, plan)
            elif name == "data":
                assert plan.dataset is not None
                say(f"data: validating {plan.dataset.uri}")
                result = self._run_data(config, plan.dataset)
            elif name == "pipeline":
                assert plan.pipeline is not None
                say(f"pipeline: running {plan.pipeline.name} on a sample")
                result, outcome = self._run_pipeline(config, plan)
            elif outcome is None or not outcome.succeeded:
                result = CheckResult(name, "skipped", "the pipeline did not produce a model")
            else:
                say("gate: checking the candidate")
                assert plan.gate is not None
                result = self._run_gate(config, plan.gate, outcome)
            seconds = time.perf_counter() - started
            results.append(
                CheckResult(
                    result.check, result.status, result.detail, seconds, result.lines, result.data
                )
            )
        return CIReport(results, str(config.project), config.source)

    def _run_tests(self, config: CIConfig, plan: _Plan) -> CheckResult:
        assert plan.tests is not None
        try:
            proc = subprocess.run(
                plan.tests,
                cwd=config.project,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=config.tests_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return CheckResult(
                "tests", "failed", f"{plan.tests_shown}: timed out after {config.tests_timeout:g} s"
            )
        except OSError as exc:
            return CheckResult("tests", "failed", f"{plan.tests_shown}: {exc}")
        output = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        last = output[-1].strip(" =") if output else "no output"
        data = {"command": plan.tests_shown, "exit_code": proc.returncode}
        if proc.returncode == 0:
            return CheckResult("tests", "passed", f"{plan.tests_shown}: {last}", data=data)
        return CheckResult(
            "tests",
            "failed",
            f"{plan.tests_shown}: exit code {proc.returncode}: {last}",
            lines=tuple(output[-OUTPUT_TAIL:]),
            data=data,
        )

    def _run_data(self, config: CIConfig, version: DatasetVersion) -> CheckResult:
        result, _ = self.datasets.validate(
            version.name, version.version, reference=config.reference
        )
        problems = sorted(result.anomalies, key=lambda a: a.severity != "error")
        lines = tuple(
            f"{a.severity} {a.kind.value} {a.column or '(batch)'}: {a.message}" for a in problems
        )
        against = "its schema" + (f" and {config.reference}" if config.reference else "")
        data = {
            "dataset": version.uri,
            "summary": result.summary(),
            "anomalies": [a.to_dict() for a in problems],
        }
        status = "passed" if result.passed else "failed"
        detail = f"{version.uri} against {against}: {result.summary()}"
        return CheckResult(
            "data", status, detail, lines=lines if not result.passed else (), data=data
        )

    def _sample_reference(self, config: CIConfig, latest: DatasetVersion) -> tuple[str, int]:
        """Register (once) the sample the pipeline trains on; return its reference and rows."""
        if latest.num_rows <= config.sample:
            return latest.uri, latest.num_rows
        frame = self.datasets.read(latest.name, latest.version)
        sampled = frame.sample(n=config.sample, random_state=SAMPLE_SEED).sort_index()
        version = self.datasets.register(
            f"{latest.name}{SAMPLE_SUFFIX}",
            sampled.reset_index(drop=True),
            description=f"{config.sample} rows of {latest.uri}, drawn by loopml ci",
            tags={"loopml.ci_sample_of": latest.uri},
        )
        return version.uri, config.sample

    def _run_pipeline(
        self, config: CIConfig, plan: _Plan
    ) -> tuple[CheckResult, CIPipelineResult | None]:
        assert plan.pipeline is not None
        params = dict(plan.params)
        rows = params.get("sample")
        try:
            if plan.sample_of is not None:
                params["dataset"], rows = self._sample_reference(config, plan.sample_of)
            with _importable(config):
                outcome = plan.pipeline.run(
                    params, executor=config.executor, cache=config.cache, trigger="ci"
                )
        except Exception as exc:  # noqa: BLE001 - any error of the user's pipeline fails the check
            message = (
                exc.message if isinstance(exc, LoopmlError) else f"{type(exc).__name__}: {exc}"
            )
            return CheckResult("pipeline", "failed", f"{plan.pipeline.name}: {message}"), None
        run = outcome.run
        steps = list(outcome.steps.values())
        cached = sum(s.status is StepStatus.CACHED for s in steps)
        where = f"on {rows:,} rows" if isinstance(rows, int) else "with its parameters"
        data = {"pipeline": plan.pipeline.name, "run_id": run.id, "params": params}
        if outcome.succeeded:
            detail = (
                f"{plan.pipeline.name} run {run.id[:8]} completed {where}: "
                f"{len(steps)} steps, {cached} cached"
            )
            return CheckResult("pipeline", "passed", detail, data=data), outcome
        failed = [s for s in steps if s.status is StepStatus.FAILED]
        lines = tuple(
            f"step {s.step_name}: {(s.error or 'failed').strip().splitlines()[-1]}" for s in failed
        )
        detail = (
            f"{plan.pipeline.name} run {run.id[:8]} failed {where}: "
            f"{', '.join(s.step_name for s in failed) or run.error or 'see the run'}"
        )
        return CheckResult("pipeline", "failed", detail, lines=lines, data=data), outcome

    def _run_gate(self, config: CIConfig, gate: Gate, outcome: CIPipelineResult) -> CheckResult:
        try:
            value = _candidate_output(outcome)
            decision, against, candidate = self._gate(config, gate, value)
        except LoopmlError as exc:
            return CheckResult("gate", "failed", f"the gate could not decide: {exc.message}")
        data = {"candidate": candidate, "champion": against, "result": decision.to_dict()}
        total = len(decision.reasons)
        versus = f"vs {against}" if against else "no champion"
        if decision.passed:
            passed = sum(r.passed for r in decision.reasons)
            detail = f"{candidate} accepted ({versus}): {passed} of {total} checks passed"
            return CheckResult("gate", "passed", detail, data=data)
        failures = decision.failures
        detail = (
            f"{candidate} rejected ({versus}): {len(failures)} of {total} checks failed: "
            + "; ".join(r.message for r in failures)
        )
        lines = tuple(r.message for r in failures)
        return CheckResult("gate", "failed", detail, lines=lines, data=data)

    def _gate(self, config: CIConfig, gate: Gate, value: Any) -> tuple[GateResult, str | None, str]:
        version = self._as_version(value)
        if version is not None:
            champion = self._champion(version.name)
            other = champion if champion and champion.version != version.version else None
            against = f"{other.name}/{other.version}" if other else None
            return gate.check(version), against, f"{version.name}/{version.version}"
        if isinstance(value, Mapping) and "metrics" in value and "task" in value:
            evaluation = EvaluationResult.from_dict(dict(value))
            champion = self._champion(config.model) if config.model else None
            stored = champion.evaluation if champion is not None else None
            previous = EvaluationResult.from_dict(stored) if stored else None
            # No model was stored to load in a fresh process: the infra check cannot apply.
            lenient = Gate(**gate.get_params()).set_params(require_infra_check=False)
            against = f"{champion.name}/{champion.version}" if previous and champion else None
            return lenient.check(evaluation, champion=previous), against, "the evaluation"
        raise InvalidInput(
            "the pipeline must return a registered model version ('churn/7') or an "
            f"evaluation (lm.evaluate(...).to_dict()), not {_describe(value)}",
            field="pipeline",
        )

    def _as_version(self, value: Any) -> ModelVersion | None:
        if isinstance(value, str):
            match = _VERSION_SPEC.match(value.strip())
            if match is None:
                return None
            return self.registry.get_version(match["name"], int(match["version"]))
        if isinstance(value, Mapping) and "version" in value and "metrics" not in value:
            name, number = value.get("name", value.get("model")), value["version"]
            if isinstance(name, str) and isinstance(number, int) and not isinstance(number, bool):
                return self.registry.get_version(name, number)
        return None

    def _champion(self, model: str) -> ModelVersion | None:
        try:
            return self.registry.resolve(f"{model}@champion")
        except NotFound:
            return None


def _candidate_output(outcome: CIPipelineResult) -> Any:
    returned = list(outcome.returned)
    if not returned:
        raise InvalidInput("the pipeline returned nothing to gate", field="pipeline")
    if "candidate" in returned:
        return outcome.output("candidate")
    if "output" in returned:
        return outcome.output("output")
    if len(returned) == 1:
        return outcome.output(returned[0])
    raise InvalidInput(
        f"the pipeline returned several outputs ({', '.join(returned)}); name the one to "
        "gate 'candidate'",
        field="pipeline",
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _load_gate(spec: dict[str, Any] | str | None) -> Gate:
    """``lm.Gate()``, a Gate from parameters, or the Gate a ``module:attr`` names."""
    if spec is None:
        return Gate()
    if isinstance(spec, dict):
        known = list(Gate().get_params())
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise InvalidInput(
                f"gate has no parameter {unknown[0]!r} (known: {', '.join(known)})",
                field="gate",
            )
        return Gate(**spec)
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise InvalidInput(f"gate {spec!r} must look like module:attr", field="gate")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot load gate {spec!r}: {exc}", field="gate") from exc
    if not isinstance(found, Gate):
        raise InvalidInput(f"{spec!r} is not an lm.Gate", field="gate")
    return found


@contextmanager
def _importable(config: CIConfig) -> Iterator[None]:
    """Let ``module:attr`` references import from the project folder, as pytest does."""
    folder = str(config.project)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
