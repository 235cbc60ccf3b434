"""Where steps run. One interface; in-process threads by default.

The ``process`` and ``dask`` executors live in their own modules and are imported only when
asked for. An executor takes :class:`~loopml.pipelines.worker.StepTask` objects (references
only) and returns :class:`concurrent.futures.Future` objects of
:class:`~loopml.pipelines.worker.StepOutcome`.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from loopml.errors import InvalidInput
from loopml.pipelines.worker import StepOutcome, StepTask, execute

if TYPE_CHECKING:
    from loopml.pipelines.dsl import Step


@runtime_checkable
class Executor(Protocol):
    """Runs step attempts, possibly in other processes or machines."""

    name: str

    def start(self, max_workers: int | None = None) -> None:
        """Acquire resources (threads, processes, a cluster)."""
        ...

    def submit(self, task: StepTask, step: Step) -> Future[StepOutcome]:
        """Start an attempt; the future resolves to its outcome."""
        ...

    def cancel(self, future: Future[StepOutcome]) -> None:
        """Stop an attempt if the executor can (timeouts); best effort."""
        ...

    def shutdown(self) -> None:
        """Release resources."""
        ...


class InProcessExecutor:
    """Threads of the current process: independent steps overlap, nothing is copied.

    A timed-out attempt is abandoned, not killed (Python threads cannot be stopped); use
    the ``process`` executor when steps must be killable.
    """

    name = "inprocess"

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def start(self, max_workers: int | None = None) -> None:
        """Start the thread pool."""
        workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loopml-step")

    def submit(self, task: StepTask, step: Step) -> Future[StepOutcome]:
        """Run the attempt on a thread."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        return self._pool.submit(execute, task, step, in_caller=True)

    def cancel(self, future: Future[StepOutcome]) -> None:
        """Drop a queued attempt (a running one finishes in the background)."""
        future.cancel()

    def shutdown(self) -> None:
        """Stop the pool without waiting for abandoned attempts."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def get_executor(executor: str | Executor) -> Executor:
    """Resolve ``"inprocess"``, ``"process"``, ``"dask"`` (or pass an executor through)."""
    if not isinstance(executor, str):
        return executor
    if executor == "inprocess":
        return InProcessExecutor()
    if executor == "process":
        from loopml.pipelines.executors_process import ProcessExecutor

        return ProcessExecutor()
    if executor == "dask":
        from loopml.pipelines.executors_dask import DaskExecutor

        return DaskExecutor()
    raise InvalidInput(
        f"unknown executor {executor!r}: use 'inprocess', 'process' or 'dask'", field="executor"
    )
