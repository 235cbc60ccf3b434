"""Run step attempts on a Dask.distributed cluster (``executor="dask"``).

:class:`DaskExecutor` connects to the scheduler at ``address`` (or ``LOOPML_DASK_SCHEDULER``,
e.g. ``tcp://host:8786``); without one it starts a ``LocalCluster`` of worker processes in
:meth:`~DaskExecutor.start` and closes it in :meth:`~DaskExecutor.shutdown`.

Only references travel through Dask: each task is a
:class:`~loopml.pipelines.worker.StepTask` (blob digests of the inputs, parameters, store
URIs) plus, for steps a worker could not import by ``module:qualname``, the step pickled by
value. Workers read inputs from and write outputs to the artifact store themselves, so the
artifact store and the metadata store must be reachable from every worker under the same
URIs. A ``LocalCluster`` shares the machine's folders, so the default local store works; a
remote cluster needs shared stores (``LOOPML_ARTIFACT_URI=s3://...`` and a PostgreSQL
``LOOPML_STORE_URI``) and the step's code installed on the workers. Each attempt applies the
run's store settings (``task.environment``) while it runs, so one long-lived cluster can
serve runs against different stores.

Dask cannot stop a task that is already running: a timed-out attempt is released but its
worker thread runs on until the function returns. Use the ``process`` executor when
timeouts must kill the step.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, InvalidStateError
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.pipelines.executors_process import (
    refuse_in_bootstrapping_child,
    run_attempt,
    step_payload,
)
from loopml.pipelines.worker import StepOutcome, StepTask

if TYPE_CHECKING:
    from loopml.pipelines.dsl import Step

__all__ = ["DaskExecutor"]

SCHEDULER_ENV = "LOOPML_DASK_SCHEDULER"


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Keep Dask's shutdown chatter (a worker still busy with a timed-out step) off stderr.

    Dask emits no Python warnings when a ``LocalCluster`` starts or closes, so none are
    filtered here; only its own loggers are raised to ERROR while the cluster closes.
    """
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _set_result(future: Future[StepOutcome], outcome: StepOutcome) -> None:
    try:
        future.set_result(outcome)
    except InvalidStateError:  # cancelled meanwhile
        pass


def _set_error(future: Future[StepOutcome], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:  # cancelled meanwhile
        pass


class DaskExecutor:
    """Step attempts as Dask tasks on a cluster: a scheduler address or a ``LocalCluster``.

    Parameters
    ----------
    address : str, optional
        Scheduler address (``tcp://host:8786``); default ``LOOPML_DASK_SCHEDULER``, else a
        ``LocalCluster`` owned by this executor.
    n_workers : int
        Worker processes of the ``LocalCluster`` (capped by the run's ``max_workers``).
    threads_per_worker : int
        Threads per ``LocalCluster`` worker.

    Notes
    -----
    Steps with ``resources`` are sent only to workers that declare those resources
    (``dask worker --resources "GPU=1"``); when no worker of the cluster declares them the
    attempt fails at once instead of waiting forever. ``LocalCluster`` workers declare none.
    """

    name = "dask"

    def __init__(
        self, address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1
    ) -> None:
        refuse_in_bootstrapping_child()
        if n_workers < 1 or threads_per_worker < 1:
            raise InvalidInput(
                "n_workers and threads_per_worker must be at least 1", field="n_workers"
            )
        self.address = address or os.environ.get(SCHEDULER_ENV) or None
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._futures: dict[Future[StepOutcome], Any] = {}

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` while the executor runs (``None`` otherwise)."""
        return self._client

    def start(self, max_workers: int | None = None) -> None:
        """Connect to the scheduler, or start a ``LocalCluster`` of worker processes.

        Parameters
        ----------
        max_workers : int, optional
            Caps the number of ``LocalCluster`` workers; a remote cluster ignores it.
        """
        if self._client is not None:
            return
        # Imported here so that the module loads without Dask; untyped, hence Any.
        distributed: Any = importlib.import_module("distributed")
        if self.address:
            self._client = distributed.Client(self.address, set_as_default=False)
            return
        workers = min(self.n_workers, max_workers) if max_workers else self.n_workers
        self._cluster = distributed.LocalCluster(
            processes=True,
            n_workers=workers,
            threads_per_worker=self.threads_per_worker,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        try:
            self._client = distributed.Client(self._cluster, set_as_default=False)
        except BaseException:
            self._cluster.close()
            self._cluster = None
            raise

    def submit(self, task: StepTask, step: Step) -> Future[StepOutcome]:
        """Submit the attempt as a Dask task; its outcome resolves the returned future."""
        if self._client is None:
            self.start()
        future: Future[StepOutcome] = Future()
        resources = dict(step.options.resources) or None
        if resources and not self._offers(resources):
            _set_error(
                future,
                InvalidInput(
                    f"step {task.node!r} needs resources {resources} but no worker of the "
                    "Dask cluster declares them (start workers with --resources)",
                    field="resources",
                ),
            )
            return future
        try:
            dask_future = self._client.submit(
                run_attempt,
                task,
                step_payload(step),
                pure=False,
                key=f"loopml-{task.node}-{task.attempt}-{uuid.uuid4().hex}",
                resources=resources,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a step cloudpickle cannot pickle
            _set_error(future, exc)
            return future
        with self._lock:
            self._futures[future] = dask_future

        def bridge(done: Any) -> None:
            with self._lock:
                self._futures.pop(future, None)
            if done.cancelled():
                _set_error(future, CancelledError(f"Dask cancelled the task of {task.node!r}"))
                return
            try:
                _set_result(future, done.result())
            except BaseException as exc:  # noqa: BLE001 - e.g. KilledWorker: the step failed
                _set_error(future, exc)

        dask_future.add_done_callback(bridge)
        return future

    def cancel(self, future: Future[StepOutcome]) -> None:
        """Release the attempt's task (a running one finishes on its worker, unobserved)."""
        with self._lock:
            dask_future = self._futures.pop(future, None)
        if dask_future is not None and self._client is not None:
            self._client.cancel([dask_future])
        _set_error(future, CancelledError("attempt cancelled"))

    def shutdown(self) -> None:
        """Cancel outstanding tasks, disconnect, and close the ``LocalCluster`` if owned."""
        with self._lock:
            outstanding = list(self._futures.items())
            self._futures.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is None:
            return
        if outstanding:
            client.cancel([dask_future for _, dask_future in outstanding])
        for future, _ in outstanding:
            _set_error(future, CancelledError("the executor shut down"))
        client.close()
        if cluster is not None:
            with _quiet_logs():
                cluster.close()

    def _offers(self, resources: dict[str, float]) -> bool:
        """Whether some worker declares at least these amounts of every resource."""
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        return any(
            all(info.get("resources", {}).get(k, 0) >= v for k, v in resources.items())
            for info in workers.values()
        )
