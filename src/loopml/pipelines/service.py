"""Queries over recorded pipeline runs: the one layer the CLI and the REST API both call.

:class:`PipelineService` answers "which pipelines ran", "which runs", "what did each step
of a run do" and "what did a step print". It reads the pipeline store and the blob store
only; running pipelines stays with :class:`~loopml.pipelines.runner.PipelineRunner`.

Examples
--------
>>> from loopml.pipelines.service import get_pipeline_service
>>> service = get_pipeline_service()                     # doctest: +SKIP
>>> run = service.get_run("1a2b3c4d")                    # a unique 8+ character prefix
>>> [s.step_name for s in service.steps(run.id)]         # doctest: +SKIP
['load', 'total']
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from typing import Any

from loopml.config import load_settings
from loopml.entities.pipelines import PipelineRun, StepExecution, StepStatus
from loopml.errors import InvalidInput, NotFound
from loopml.store.base import BlobStore, PipelineStore

#: Shortest pipeline run id prefix accepted, as tables show ids (8 characters).
MIN_PREFIX_LENGTH = 8
#: Length of a full pipeline run id (a uuid4 in hex).
FULL_ID_LENGTH = 32
#: Runs fetched per store query while resolving a prefix.
_SCAN_PAGE = 500
_HEX = frozenset("0123456789abcdef")


class PipelineService:
    """Read recorded pipeline runs, their steps and the steps' logs.

    Parameters
    ----------
    store : PipelineStore
        Where pipeline runs and step executions are recorded.
    blobs : BlobStore
        Where step outputs and logs are stored.
    """

    def __init__(self, store: PipelineStore, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs

    # -- pipelines and runs --------------------------------------------------------------
    def list_pipelines(self) -> list[dict[str, Any]]:
        """One summary per pipeline name that has runs, by name.

        Returns
        -------
        list of dict
            ``pipeline_name``, ``runs`` (count), ``last_run_id``, ``last_status``,
            ``last_start_time`` and ``pipeline_version`` (of the last run).
        """
        return self.store.list_pipelines()

    def list_runs(
        self, pipeline_name: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[PipelineRun]:
        """Pipeline runs, newest first.

        Parameters
        ----------
        pipeline_name : str, optional
            Only runs of this pipeline.
        limit : int
            Largest number of runs returned (1 to 10,000).
        offset : int
            Runs to skip, for paging.

        Raises
        ------
        InvalidInput
            When ``limit`` or ``offset`` is out of range.
        """
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be >= 0", field="offset")
        return self.store.list_pipeline_runs(pipeline_name, limit=limit, offset=offset)

    def get_run(self, run_id: str) -> PipelineRun:
        """Return the pipeline run named by its full id or a unique prefix.

        Parameters
        ----------
        run_id : str
            A full run id, or at least 8 leading characters of one (as tables show them).

        Raises
        ------
        NotFound
            When no run has this id or prefix.
        InvalidInput
            When the prefix matches several runs.
        """
        text = run_id.strip().lower()
        if len(text) == FULL_ID_LENGTH and set(text) <= _HEX:
            return self.store.get_pipeline_run(text)
        if not (text and len(text) < FULL_ID_LENGTH and set(text) <= _HEX):
            raise NotFound(f"pipeline run {run_id!r:.80} does not exist", field="run_id")
        if len(text) < MIN_PREFIX_LENGTH:
            raise NotFound(
                f"pipeline run {run_id!r} does not exist (a run id prefix needs at least "
                f"{MIN_PREFIX_LENGTH} characters)",
                field="run_id",
            )
        matches = self._runs_with_prefix(text)
        if not matches:
            raise NotFound(f"pipeline run {run_id!r} does not exist", field="run_id")
        if len(matches) > 1:
            raise InvalidInput(
                f"pipeline run id prefix {run_id!r} matches more than one run "
                f"({', '.join(sorted(matches))}); give more characters",
                field="run_id",
            )
        return next(iter(matches.values()))

    def _runs_with_prefix(self, prefix: str) -> dict[str, PipelineRun]:
        # The store has no prefix query: page through the runs, newest first, and stop at
        # the second match (enough to call the prefix ambiguous).
        matches: dict[str, PipelineRun] = {}
        offset = 0
        while True:
            page = self.store.list_pipeline_runs(None, limit=_SCAN_PAGE, offset=offset)
            for run in page:
                if run.id.startswith(prefix):
                    matches[run.id] = run
                    if len(matches) > 1:
                        return matches
            if len(page) < _SCAN_PAGE:
                return matches
            offset += len(page)

    # -- steps -----------------------------------------------------------------------------
    def steps(self, run_id: str) -> list[StepExecution]:
        """The step executions of a run, upstream steps before the steps that read them.

        Steps whose inputs are ready at the same time keep the store's order (start time).

        Parameters
        ----------
        run_id : str
            A full run id or a unique prefix.

        Raises
        ------
        NotFound
            When the run does not exist.
        """
        run = self.get_run(run_id)
        return topological(self.store.list_step_executions(run.id))

    def step(self, run_id: str, step_name: str) -> StepExecution:
        """One step execution of a run.

        Raises
        ------
        NotFound
            When the run does not exist or has no such step (the message lists its steps).
        """
        executions = self.steps(run_id)
        for execution in executions:
            if execution.step_name == step_name:
                return execution
        names = ", ".join(e.step_name for e in executions) or "none"
        raise NotFound(
            f"pipeline run {run_id!r} has no step {step_name!r} (steps: {names})", field="step"
        )

    def step_logs(self, run_id: str, step_name: str) -> str:
        """What a step printed (stdout and stderr, with the traceback of a failure).

        A cached step shows the logs of the execution whose outputs it reused; a step that
        printed nothing (or never ran) gives ``""``.

        Raises
        ------
        NotFound
            When the run or the step does not exist, or the logs blob is gone.
        """
        execution = self.step(run_id, step_name)
        if execution.logs_sha256 is None:
            return ""
        with self.blobs.open(execution.logs_sha256) as stream:
            data = stream.read()
        return data.decode("utf-8", errors="replace")

    def tree(self, run_id: str) -> dict[str, Any]:
        """A run and its steps as JSON-able data, for ``pipeline show`` and the REST API.

        Returns
        -------
        dict
            ``run`` (:meth:`PipelineRun.to_dict`), ``steps`` (in topological order, each
            :meth:`StepExecution.to_dict` plus ``cache_hit`` and ``has_logs``) and
            ``summary`` (``steps``, ``cache_hits`` and counts ``by_status``).
        """
        run = self.get_run(run_id)
        executions = topological(self.store.list_step_executions(run.id))
        steps = [
            {
                **execution.to_dict(),
                "cache_hit": execution.status is StepStatus.CACHED,
                "has_logs": execution.logs_sha256 is not None,
            }
            for execution in executions
        ]
        counts = Counter(e.status.value for e in executions)
        return {
            "run": run.to_dict(),
            "steps": steps,
            "summary": {
                "steps": len(executions),
                "cache_hits": counts.get(StepStatus.CACHED.value, 0),
                "by_status": {s.value: counts[s.value] for s in StepStatus if counts[s.value]},
            },
        }


def topological(executions: list[StepExecution]) -> list[StepExecution]:
    """Order step executions so that every step follows the steps it reads from.

    Parameters
    ----------
    executions : list of StepExecution
        One run's executions; ties keep this order.

    Returns
    -------
    list of StepExecution
        The same executions (Kahn's algorithm; upstream names not in the list are ignored).
    """
    position = {e.step_name: index for index, e in enumerate(executions)}
    by_name = {e.step_name: e for e in executions}
    downstream: dict[str, list[str]] = {name: [] for name in by_name}
    indegree: dict[str, int] = {}
    for execution in executions:
        upstream = [u for u in dict.fromkeys(execution.upstream) if u in by_name]
        indegree[execution.step_name] = len(upstream)
        for name in upstream:
            downstream[name].append(execution.step_name)
    ready = [(position[n], n) for n, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    ordered: list[StepExecution] = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(by_name[name])
        for child in downstream[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(ordered) < len(executions):  # a cycle cannot be recorded, but never drop a step
        seen = {e.step_name for e in ordered}
        ordered += [e for e in executions if e.step_name not in seen]
    return ordered


_lock = threading.Lock()
_service: PipelineService | None = None
_service_key: tuple[str, str] | None = None


def get_pipeline_service() -> PipelineService:
    """The pipeline service for the current settings (re-opened when they change).

    Raises
    ------
    InvalidInput
        When the settings name a tracking server: pipeline runs are read from the metadata
        store directly (see :func:`~loopml.store.registry.open_pipeline_stores`).
    """
    global _service, _service_key
    from loopml.store.registry import open_pipeline_stores

    settings = load_settings()
    key = (settings.resolved_store_uri, settings.resolved_artifact_uri)
    with _lock:
        if settings.tracking_uri or _service is None or key != _service_key:
            stores = open_pipeline_stores(settings)
            _service = PipelineService(stores.pipelines, stores.blobs)
            _service_key = key
        return _service
