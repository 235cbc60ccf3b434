"""Executes a pipeline graph: caching, retries, timeouts, concurrency, metadata.

Every run is recorded as it happens: the pipeline run, one step execution per node (pending,
running, then completed, cached, failed or skipped, with the reason for each cache hit or
miss), and tracked runs (the pipeline's, with one nested run per executed step so metrics
logged inside steps land there).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from loopml.entities.pipelines import (
    OutputRef,
    PipelineRun,
    PipelineStatus,
    StepExecution,
    StepStatus,
)
from loopml.entities.tracking import RunStatus
from loopml.errors import InvalidInput, LoopmlError
from loopml.pipelines import materializers
from loopml.pipelines.dsl import Pipeline, StepOutput, outputs_of
from loopml.pipelines.executors import Executor, get_executor
from loopml.pipelines.hashing import combine
from loopml.pipelines.loading import load_object
from loopml.pipelines.worker import StepOutcome, StepTask, now_ms
from loopml.store.base import BlobStore, PipelineStore


@dataclass
class PipelineResult:
    """A finished pipeline run: its record, its step executions, and its outputs."""

    run: PipelineRun
    steps: dict[str, StepExecution]
    returned: dict[str, StepOutput] = field(default_factory=dict)
    blobs: BlobStore | None = None

    @property
    def succeeded(self) -> bool:
        """Whether every step completed (or was cached)."""
        return self.run.status is PipelineStatus.COMPLETED

    def raise_if_failed(self) -> PipelineResult:
        """Raise :class:`LoopmlError` naming the failed steps and their errors."""
        if not self.succeeded:
            failed = [
                f"{name}: {s.error}"
                for name, s in self.steps.items()
                if s.status is StepStatus.FAILED
            ]
            raise LoopmlError(f"pipeline run {self.run.id} failed: " + "; ".join(failed))
        return self

    def output(self, name: str = "output") -> Any:
        """Load a value the pipeline function returned (``output``, ``output_0``, or a key)."""
        if name not in self.returned:
            raise InvalidInput(
                f"the pipeline returned no output {name!r} (has: {', '.join(self.returned)})",
                field="name",
            )
        ref = self.returned[name]
        return self.step_output(ref.node, ref.output)

    def step_output(self, step: str, output: str = "output") -> Any:
        """Load one output of one step of this run."""
        execution = self.steps.get(step)
        if execution is None:
            raise InvalidInput(f"no step {step!r} in this run", field="step")
        for ref in execution.outputs:
            if ref.name == output:
                assert self.blobs is not None
                with self.blobs.open(ref.sha256) as stream:
                    return materializers.by_name(ref.materializer).load(stream)
        raise InvalidInput(
            f"step {step!r} has no stored output {output!r} (status {execution.status.value})",
            field="output",
        )


@dataclass
class _Attempt:
    node: str
    attempt: int
    started: float
    execution: StepExecution


class PipelineRunner:
    """Runs one pipeline once (see :meth:`loopml.pipelines.dsl.Pipeline.run`)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        executor: str | Executor = "inprocess",
        cache: bool = True,
        trigger: str = "manual",
        max_workers: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.executor = get_executor(executor)
        self.cache = cache
        self.trigger = trigger
        self.max_workers = max_workers

    def run(self, params: dict[str, Any] | None = None) -> PipelineResult:
        """Validate parameters, build the graph, execute it and record everything."""
        from loopml.config import load_settings
        from loopml.store.registry import open_pipeline_stores
        from loopml.tracking import fluent

        values = self.pipeline.validate_params(params)
        graph, returned = self.pipeline.build(values)
        order = graph.order()
        settings = load_settings()
        stores = open_pipeline_stores(settings)
        self.store: PipelineStore = stores.pipelines
        self.blobs: BlobStore = stores.blobs
        self.settings = settings
        self.tracking = fluent.get_service()
        self.graph = graph
        recorded = json.loads(json.dumps(values, default=_jsonable))
        parent = fluent.active_run()
        experiment = self.tracking.get_or_create_experiment(f"pipeline:{self.pipeline.name}")
        from loopml.tracking.system import system_tags

        run_id = uuid.uuid4().hex
        tracked = self.tracking.create_run(
            experiment.experiment_id,
            run_name=f"{self.pipeline.name}-{run_id[:8]}",
            tags={
                **system_tags(),
                "loopml.pipeline": self.pipeline.name,
                "loopml.pipeline_run_id": run_id,
                "loopml.trigger": self.trigger,
            },
            parent_run_id=parent.run_id if parent else None,
        )
        self.tracking.log_batch(
            tracked.run_id,
            params={k: json.dumps(v) if not isinstance(v, str) else v for k, v in recorded.items()},
        )
        self.run_record = PipelineRun(
            id=run_id,
            pipeline_name=self.pipeline.name,
            pipeline_version=self.pipeline.version(graph),
            status=PipelineStatus.RUNNING,
            start_time=now_ms(),
            end_time=None,
            executor=self.executor.name,
            host=socket.gethostname(),
            params=recorded,
            run_id=tracked.run_id,
            trigger=self.trigger,
        )
        self.store.create_pipeline_run(self.run_record)
        self.executions: dict[str, StepExecution] = {}
        for node in order:
            self._save(
                StepExecution(
                    id=uuid.uuid4().hex,
                    pipeline_run_id=run_id,
                    step_name=node,
                    step_version=graph.nodes[node].step.version,
                    cache_key="",
                    status=StepStatus.PENDING,
                    executor=self.executor.name,
                    params=graph.nodes[node].params,
                    upstream=tuple(graph.nodes[node].upstream),
                )
            )
        try:
            self._execute(order)
        except BaseException as exc:
            self._finish(PipelineStatus.FAILED, f"interrupted: {type(exc).__name__}: {exc}")
            raise
        failed = [n for n in order if self.executions[n].status is StepStatus.FAILED]
        if failed:
            errors = "; ".join(f"{n}: {self.executions[n].error}" for n in failed)
            self._finish(PipelineStatus.FAILED, f"failed steps: {errors}")
        else:
            self._finish(PipelineStatus.COMPLETED, None)
        return PipelineResult(
            run=self.store.get_pipeline_run(run_id),
            steps=dict(self.executions),
            returned=outputs_of(returned),
            blobs=self.blobs,
        )

    # -- bookkeeping --------------------------------------------------------------------
    def _save(self, execution: StepExecution) -> None:
        self.executions[execution.step_name] = execution
        self.store.save_step_execution(execution)

    def _finish(self, status: PipelineStatus, error: str | None) -> None:
        for node, execution in self.executions.items():
            if execution.status in (StepStatus.PENDING, StepStatus.RUNNING):
                self._save(
                    replace(
                        execution,
                        status=StepStatus.SKIPPED,
                        end_time=now_ms(),
                        cache_reason=execution.cache_reason or "not run",
                    )
                )
                if execution.run_id:
                    self.tracking.end_run(execution.run_id, RunStatus.KILLED)
            del node
        self.store.finish_pipeline_run(self.run_record.id, status, now_ms(), error)
        assert self.run_record.run_id is not None
        self.tracking.end_run(
            self.run_record.run_id,
            RunStatus.FINISHED if status is PipelineStatus.COMPLETED else RunStatus.FAILED,
        )

    # -- the scheduling loop ------------------------------------------------------------
    def _execute(self, order: list[str]) -> None:
        self.executor.start(self.max_workers)
        pending = list(order)
        running: dict[Future[StepOutcome], _Attempt] = {}
        retries: dict[str, tuple[float, int]] = {}
        try:
            while pending or running or retries:
                for node in list(pending):
                    upstream = self.graph.nodes[node].upstream
                    states = [self.executions[u].status for u in upstream]
                    if any(s in (StepStatus.FAILED, StepStatus.SKIPPED) for s in states):
                        pending.remove(node)
                        blocked = [u for u in upstream if not self.executions[u].status.succeeded]
                        self._save(
                            replace(
                                self.executions[node],
                                status=StepStatus.SKIPPED,
                                end_time=now_ms(),
                                cache_reason=f"upstream {', '.join(blocked)} failed",
                            )
                        )
                    elif all(s.succeeded for s in states):
                        pending.remove(node)
                        attempt = self._start(node)
                        if attempt is not None:
                            running[self._submit(attempt)] = attempt
                clock = time.monotonic()
                for node, (due, number) in list(retries.items()):
                    if clock >= due:
                        del retries[node]
                        attempt = _Attempt(node, number, clock, self.executions[node])
                        running[self._submit(attempt)] = attempt
                if not running:
                    if retries:
                        time.sleep(max(0.0, min(d for d, _ in retries.values()) - clock))
                    continue
                done, _ = wait(
                    list(running),
                    timeout=self._wait_time(running, retries),
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    attempt = running.pop(future)
                    self._settle(attempt, _outcome(future), retries)
                clock = time.monotonic()
                for future, attempt in list(running.items()):
                    limit = self.graph.nodes[attempt.node].step.options.timeout
                    if limit is not None and clock - attempt.started > limit:
                        running.pop(future)
                        self.executor.cancel(future)
                        self._settle(
                            attempt,
                            _failure(
                                attempt,
                                f"TimeoutError: step {attempt.node!r} took longer than {limit:g} s",
                            ),
                            retries,
                        )
        finally:
            self.executor.shutdown()

    def _wait_time(
        self, running: dict[Future[StepOutcome], _Attempt], retries: dict[str, tuple[float, int]]
    ) -> float:
        clock = time.monotonic()
        deadlines = [1.0]
        for attempt in running.values():
            limit = self.graph.nodes[attempt.node].step.options.timeout
            if limit is not None:
                deadlines.append(attempt.started + limit - clock)
        deadlines += [due - clock for due, _ in retries.values()]
        return max(0.01, min(deadlines))

    def _cache_key(self, node: str, inputs: dict[str, OutputRef]) -> str:
        spec = self.graph.nodes[node]
        return combine(
            spec.step.version,
            json.dumps({k: v.sha256 for k, v in sorted(inputs.items())}),
            json.dumps(spec.params, sort_keys=True, default=str),
            json.dumps(list(spec.step.options.outputs)),
        )

    def _inputs(self, node: str) -> dict[str, OutputRef]:
        inputs = {}
        for argument, ref in self.graph.nodes[node].inputs.items():
            produced = {o.name: o for o in self.executions[ref.node].outputs}
            inputs[argument] = replace(produced[ref.output], name=argument)
        return inputs

    def _start(self, node: str) -> _Attempt | None:
        spec = self.graph.nodes[node]
        inputs = self._inputs(node)
        key = self._cache_key(node, inputs)
        execution = replace(
            self.executions[node], cache_key=key, inputs={k: v.sha256 for k, v in inputs.items()}
        )
        reason = ""
        if spec.step.options.cache and self.cache:
            hit = self.store.find_cached_execution(node, key)
            if hit is not None and all(self.blobs.exists(o.sha256) for o in hit.outputs):
                now = now_ms()
                self._save(
                    replace(
                        execution,
                        status=StepStatus.CACHED,
                        start_time=now,
                        end_time=now,
                        outputs=hit.outputs,
                        logs_sha256=hit.logs_sha256,
                        cache_reason=f"cache hit: outputs of execution {hit.id} "
                        f"(pipeline run {hit.pipeline_run_id})",
                    )
                )
                return None
            if hit is not None:
                reason = "outputs of the earlier identical execution are gone"
        elif not spec.step.options.cache:
            reason = "cache disabled for this step"
        else:
            reason = "cache disabled for this run"
        # Only misses pay for finding out what changed since the last successful execution.
        reason = reason or self._miss_reason(node, execution)
        assert self.run_record.run_id is not None
        tracked = self.tracking.create_run(
            self.tracking.get_run(self.run_record.run_id).experiment_id,
            run_name=node,
            parent_run_id=self.run_record.run_id,
            tags={
                "loopml.pipeline_run_id": self.run_record.id,
                "loopml.step": node,
                "loopml.step_version": spec.step.version,
            },
        )
        execution = replace(
            execution,
            status=StepStatus.RUNNING,
            start_time=now_ms(),
            cache_reason=f"cache miss: {reason}",
            run_id=tracked.run_id,
        )
        self._save(execution)
        return _Attempt(node, 1, time.monotonic(), execution)

    def _miss_reason(self, node: str, execution: StepExecution) -> str:
        previous = self.store.previous_step_execution(self.pipeline.name, node, self.run_record.id)
        if previous is None:
            return "no earlier execution of this step"
        changes = []
        if previous.step_version != execution.step_version:
            changes.append("code changed")
        changed_inputs = sorted(
            k
            for k in set(previous.inputs) | set(execution.inputs)
            if previous.inputs.get(k) != execution.inputs.get(k)
        )
        if changed_inputs:
            changes.append(f"input {', '.join(changed_inputs)} changed")
        changed_params = sorted(
            k
            for k in set(previous.params) | set(execution.params)
            if previous.params.get(k) != execution.params.get(k)
        )
        if changed_params:
            changes.append(f"parameter {', '.join(changed_params)} changed")
        return "; ".join(changes) or "no successful execution with these inputs"

    def _submit(self, attempt: _Attempt) -> Future[StepOutcome]:
        spec = self.graph.nodes[attempt.node]
        task = StepTask(
            node=attempt.node,
            step_reference=spec.step.reference,
            inputs=self._inputs(attempt.node),
            params=spec.params,
            outputs=spec.step.options.outputs,
            materializer=spec.step.options.materializer,
            store_uri=self.settings.resolved_store_uri,
            artifact_uri=self.settings.resolved_artifact_uri,
            tracking_run_id=attempt.execution.run_id,
            attempt=attempt.attempt,
            environment={
                "LOOPML_HOME": str(self.settings.home),
                "LOOPML_STORE_URI": self.settings.resolved_store_uri,
                "LOOPML_ARTIFACT_URI": self.settings.resolved_artifact_uri,
            },
        )
        attempt.started = time.monotonic()
        self._save(replace(self.executions[attempt.node], attempts=attempt.attempt))
        return self.executor.submit(task, spec.step)

    def _settle(
        self, attempt: _Attempt, outcome: StepOutcome, retries: dict[str, tuple[float, int]]
    ) -> None:
        options = self.graph.nodes[attempt.node].step.options
        execution = replace(
            self.executions[attempt.node],
            attempts=attempt.attempt,
            host=outcome.host,
            logs_sha256=outcome.logs_sha256,
        )
        if outcome.succeeded:
            self._save(
                replace(
                    execution,
                    status=StepStatus.COMPLETED,
                    end_time=outcome.end_time,
                    outputs=outcome.outputs,
                    error=None,
                    traceback=None,
                )
            )
            if execution.run_id:
                self.tracking.end_run(execution.run_id, RunStatus.FINISHED)
            return
        if attempt.attempt <= options.retries:
            delay = options.retry_backoff * 2 ** (attempt.attempt - 1)
            retries[attempt.node] = (time.monotonic() + delay, attempt.attempt + 1)
            self._save(replace(execution, error=outcome.error, traceback=outcome.traceback))
            return
        self._save(
            replace(
                execution,
                status=StepStatus.FAILED,
                end_time=outcome.end_time,
                error=outcome.error,
                traceback=outcome.traceback,
            )
        )
        if execution.run_id:
            self.tracking.end_run(execution.run_id, RunStatus.FAILED)


def _outcome(future: Future[StepOutcome]) -> StepOutcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - an executor failure is the step's failure
        now = now_ms()
        return StepOutcome(
            False, (), None, now, now, socket.gethostname(), f"{type(exc).__name__}: {exc}", None
        )


def _failure(attempt: _Attempt, error: str) -> StepOutcome:
    now = now_ms()
    return StepOutcome(
        False, (), None, attempt.execution.start_time or now, now, socket.gethostname(), error, None
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)


def load_pipeline(reference: str) -> Pipeline:
    """Import a pipeline by ``package.module:attr`` or ``path/to/file.py:attr``."""
    found = load_object(reference, field="pipeline")
    if not isinstance(found, Pipeline):
        raise InvalidInput(f"{reference!r} is not an @lm.pipeline function", field="pipeline")
    return found


def run_pipeline_ref(
    ref: str,
    params: dict[str, Any] | None = None,
    *,
    trigger: str = "manual",
    executor: str = "inprocess",
) -> PipelineRun:
    """Run a pipeline given by reference (for the CLI and the scheduler)."""
    return load_pipeline(ref).run(params, executor=executor, trigger=trigger).run
