"""Run every step attempt in a fresh process, so that a timed-out attempt can be killed.

:class:`ProcessExecutor` starts one process per attempt (``multiprocessing`` with the
``spawn`` start method, or ``forkserver`` on request; at most ``max_workers`` at once). The
child receives the :class:`~loopml.pipelines.worker.StepTask` (references only) and imports
the step by its ``module:qualname`` reference; a step that a fresh interpreter could not
import (defined in ``__main__``, inside a function, or in a module loaded from a file path)
travels by value, pickled with cloudpickle. That pickle only ever goes from this process to
its own children.

The child sends its :class:`~loopml.pipelines.worker.StepOutcome` back through a pipe; a
dispatcher thread resolves the attempt's :class:`concurrent.futures.Future`. A child that
dies without an outcome (killed, crashed) resolves its future with :class:`StepProcessDied`,
which the runner records as the step's failure. :meth:`ProcessExecutor.cancel` terminates a
running attempt and kills it if it is still alive after ``kill_grace`` seconds.

Scripts that use this executor (or any ``spawn``-based pool) must keep their top-level code
under ``if __name__ == "__main__":``, because every child imports the main module again.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, LoopmlError
from loopml.pipelines.worker import StepOutcome, StepTask, execute, import_step, now_ms

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext  # no fork server on Windows

    from loopml.pipelines.dsl import Step

__all__ = [
    "FORKSERVER_PRELOAD",
    "ProcessExecutor",
    "StepProcessDied",
    "importable_by_reference",
    "load_step",
    "refuse_in_bootstrapping_child",
    "run_attempt",
    "step_payload",
]

_by_value_lock = threading.Lock()

FORKSERVER_PRELOAD: tuple[str, ...] = (
    "loopml.pipelines.executors_process",
    "loopml.pipelines.materializers",
    "loopml.store.registry",
    "loopml.store.sql",
    "loopml.tracking.fluent",
)
"""Modules the fork server imports once, so that forked attempts start warm."""


class StepProcessDied(LoopmlError):
    """The process running a step attempt ended without reporting an outcome."""


# -- shipping steps ---------------------------------------------------------------------------
def _findable_on_path(module_name: str) -> bool:
    """Whether a fresh interpreter with this ``sys.path`` finds the module's top package."""
    top = module_name.partition(".")[0]
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(top, None) is not None:
                return True
        except (ImportError, ValueError, TypeError):
            continue
    return False


def importable_by_reference(step: Step) -> bool:
    """Whether another interpreter can import ``step`` by ``step.reference``.

    Parameters
    ----------
    step : Step
        The step to check.

    Returns
    -------
    bool
        ``False`` for steps defined in ``__main__``, inside functions, or in modules that were
        loaded from a file path rather than found on ``sys.path``.
    """
    module_name = step.fn.__module__
    if module_name in ("__main__", "__mp_main__") or "<locals>" in step.fn.__qualname__:
        return False
    module = sys.modules.get(module_name)
    spec = getattr(module, "__spec__", None)
    if module is None or spec is None or spec.name != module_name:
        return False
    if not _findable_on_path(module_name):
        return False
    try:
        return import_step(step.reference) is step
    except InvalidInput:
        return False


def _cloudpickle() -> Any:
    try:
        return importlib.import_module("cloudpickle")
    except ImportError as exc:
        raise LoopmlError(
            "this step cannot be imported by reference (it is defined in __main__, inside a "
            "function or in a module loaded from a path), so it has to be shipped by value, "
            "which needs cloudpickle: pip install 'loopml[dask]' or move the step into an "
            "importable module"
        ) from exc


def step_payload(step: Step) -> bytes | None:
    """``None`` when workers can import the step by reference, else the step pickled by value.

    The pickle is meant for trusted workers started by this process (or its own Dask
    cluster); it is never read from anywhere else.

    Parameters
    ----------
    step : Step
        The step to ship.

    Returns
    -------
    bytes or None
        cloudpickle bytes of the :class:`~loopml.pipelines.dsl.Step`, or ``None``.
    """
    if importable_by_reference(step):
        return None
    cloudpickle = _cloudpickle()
    module = sys.modules.get(step.fn.__module__)
    register = (
        module is not None
        and module.__name__ not in ("__main__", "__mp_main__")
        and module.__name__ not in cloudpickle.list_registry_pickle_by_value()
        and not _findable_on_path(module.__name__)
    )
    with _by_value_lock:
        # A module loaded from a path is in sys.modules but not importable elsewhere: its
        # helpers must travel by value too, so register it for the duration of this dump.
        if register:
            cloudpickle.register_pickle_by_value(module)
        try:
            data: bytes = cloudpickle.dumps(step)
        finally:
            if register:
                cloudpickle.unregister_pickle_by_value(module)
    return data


def load_step(payload: bytes | None) -> Step | None:
    """Undo :func:`step_payload` in a worker (``None`` means import by reference)."""
    if payload is None:
        return None
    step: Step = _cloudpickle().loads(payload)
    return step


# -- the child side ---------------------------------------------------------------------------
def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="loopml-parent-watch", daemon=True).start()


def run_attempt(task: StepTask, payload: bytes | None) -> StepOutcome:
    """Run one attempt in a worker from a task and a :func:`step_payload`; never raises.

    Parameters
    ----------
    task : StepTask
        The attempt (references only).
    payload : bytes or None
        The step by value, or ``None`` to import it by ``task.step_reference``.

    Returns
    -------
    StepOutcome
        The outcome, a failed one when even loading the step failed.
    """
    start = now_ms()
    try:
        return execute(task, load_step(payload))
    except BaseException as exc:  # noqa: BLE001 - report, never die silently
        return StepOutcome(
            succeeded=False,
            outputs=(),
            logs_sha256=None,
            start_time=start,
            end_time=now_ms(),
            host=socket.gethostname(),
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )


def _child_main(
    conn: Connection, task: StepTask, payload: bytes | None, environ: dict[str, str] | None
) -> None:
    """Entry point of an attempt's process: run it, send the outcome, exit."""
    _exit_with_parent()
    if environ is not None:  # forked from a fork server: take the submitter's environment
        os.environ.clear()
        os.environ.update(environ)
    conn.send(run_attempt(task, payload))
    conn.close()


def refuse_in_bootstrapping_child() -> None:
    """Fail clearly when a spawned worker re-imports an unguarded main module."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise LoopmlError(
            "a pipeline was started while a worker process imported the main module: guard "
            "the script's top-level code with if __name__ == '__main__': to use the process "
            "or dask executor"
        )


# -- the parent side --------------------------------------------------------------------------
@dataclass(eq=False)
class _Job:
    task: StepTask
    payload: bytes | None
    future: Future[StepOutcome]
    process: BaseProcess | None = None
    reader: Connection | None = None
    deadline: float | None = None
    stage: int = 0  # 0: alive, 1: terminate sent, 2: kill sent


def _set_result(future: Future[StepOutcome], outcome: StepOutcome) -> None:
    try:
        future.set_result(outcome)
    except InvalidStateError:  # already resolved (cancelled meanwhile)
        pass


def _set_error(future: Future[StepOutcome], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:  # already resolved
        pass


def _death_message(job: _Job) -> str:
    assert job.process is not None
    code = job.process.exitcode
    where = f"step {job.task.node!r} (attempt {job.task.attempt}, pid {job.process.pid})"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"the process running {where} was killed by signal {name}"
    return f"the process running {where} exited with code {code} without reporting an outcome"


_live_executors: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    for executor in list(_live_executors):
        executor.shutdown()


class ProcessExecutor:
    """One fresh process per attempt, at most ``max_workers`` at once; attempts are killable.

    Parameters
    ----------
    max_workers : int, optional
        Attempts running at once (default: ``os.cpu_count()``); the ``max_workers`` passed
        to :meth:`start` (the pipeline run's) takes precedence.
    kill_grace : float
        Seconds between SIGTERM and SIGKILL when an attempt is cancelled, and how long a
        child may linger after reporting its outcome.
    start_method : {"spawn", "forkserver"}
        ``"spawn"`` (default) starts a new interpreter per attempt, which then imports loopml
        and opens the stores (about a second per attempt). ``"forkserver"`` (POSIX only)
        forks each attempt from a server process that imported loopml once
        (:data:`FORKSERVER_PRELOAD`), so attempts start in tens of milliseconds; each child
        still gets the submitter's current environment and working folder.
    """

    name = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        kill_grace: float = 2.0,
        start_method: str = "spawn",
    ) -> None:
        refuse_in_bootstrapping_child()
        if max_workers is not None and max_workers < 1:
            raise InvalidInput("max_workers must be at least 1", field="max_workers")
        self.max_workers = max_workers
        self.kill_grace = kill_grace
        if start_method not in ("spawn", "forkserver"):
            raise InvalidInput("start_method must be 'spawn' or 'forkserver'", field="start_method")
        self._context: SpawnContext | ForkServerContext
        try:
            if start_method == "forkserver":
                self._context = multiprocessing.get_context("forkserver")
                self._context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
            else:
                self._context = multiprocessing.get_context("spawn")
        except ValueError as exc:  # no fork server on this platform
            raise InvalidInput(str(exc), field="start_method") from exc
        self.start_method = start_method
        self._lock = threading.Lock()
        self._queued: deque[_Job] = deque()
        self._active: list[_Job] = []
        self._jobs: dict[Future[StepOutcome], _Job] = {}
        self._limit = 1
        self._thread: threading.Thread | None = None
        self._wake_reader: Connection | None = None
        self._wake_writer: Connection | None = None
        self._stopping = False
        self._wake_pending = False

    # -- the Executor interface --------------------------------------------------------------
    def start(self, max_workers: int | None = None) -> None:
        """Start the dispatcher thread (processes start per attempt)."""
        with self._lock:
            self._limit = max(1, max_workers or self.max_workers or os.cpu_count() or 1)
            if self._thread is not None:
                return
            self._wake_reader, self._wake_writer = self._context.Pipe(duplex=False)
            self._stopping = self._wake_pending = False
            self._thread = threading.Thread(
                target=self._dispatch, name="loopml-process-executor", daemon=True
            )
            self._thread.start()
        _live_executors.add(self)

    def submit(self, task: StepTask, step: Step) -> Future[StepOutcome]:
        """Queue an attempt; it starts in its own process when a slot is free."""
        if self._thread is None:
            self.start()
        future: Future[StepOutcome] = Future()
        try:
            payload = step_payload(step)
        except Exception as exc:  # noqa: BLE001 - e.g. a closure cloudpickle cannot pickle
            future.set_exception(exc)
            return future
        job = _Job(task, payload, future)
        with self._lock:
            self._queued.append(job)
            self._jobs[future] = job
            self._wake()
        return future

    def cancel(self, future: Future[StepOutcome]) -> None:
        """Drop a queued attempt, or terminate (then kill) the process of a running one."""
        with self._lock:
            job = self._jobs.get(future)
            if job is None:
                return
            if job.process is None:
                self._queued.remove(job)
                del self._jobs[future]
                future.cancel()
                return
            self._stop(job, now=True)
            _set_error(future, CancelledError(f"attempt of step {job.task.node!r} cancelled"))
            self._wake()

    def shutdown(self) -> None:
        """Cancel queued attempts, stop running ones and wait until every child is gone."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stopping = True
            for job in self._queued:
                job.future.cancel()
                self._jobs.pop(job.future, None)
            self._queued.clear()
            for job in self._active:
                # A child that already reported only needs a moment to exit on its own.
                self._stop(job, now=not job.future.done())
                _set_error(job.future, CancelledError("the executor shut down"))
            self._wake()
        thread.join()
        with self._lock:
            for connection in (self._wake_reader, self._wake_writer):
                if connection is not None:
                    connection.close()
            self._wake_reader = self._wake_writer = None
            self._thread = None
        _live_executors.discard(self)

    # -- internals (called with the lock held) -----------------------------------------------
    def _wake(self) -> None:
        # At most one wake-up byte is ever unread, so the pipe can never fill up.
        if self._wake_writer is not None and not self._wake_pending:
            self._wake_pending = True
            self._wake_writer.send_bytes(b"w")

    def _stop(self, job: _Job, *, now: bool) -> None:
        """Terminate now (``now``) or after ``kill_grace``; the dispatcher escalates to kill."""
        assert job.process is not None
        if now and job.stage == 0:
            job.process.terminate()
            job.stage = 1
            job.deadline = time.monotonic() + self.kill_grace
        elif job.deadline is None:
            job.deadline = time.monotonic() + self.kill_grace

    def _environ(self) -> dict[str, str] | None:
        # Spawned children inherit the environment; forked ones would get the fork server's.
        return dict(os.environ) if self.start_method == "forkserver" else None

    def _launch_ready(self) -> None:
        running = sum(1 for job in self._active if not job.future.done())
        while self._queued and running < self._limit and not self._stopping:
            job = self._queued.popleft()
            if not job.future.set_running_or_notify_cancel():
                self._jobs.pop(job.future, None)
                continue
            reader, writer = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=_child_main,
                args=(writer, job.task, job.payload, self._environ()),
                name=f"loopml-step-{job.task.node}-{job.task.attempt}",
            )
            try:
                process.start()
            except Exception as exc:  # noqa: BLE001 - e.g. out of processes or memory
                reader.close()
                _set_error(job.future, StepProcessDied(f"cannot start a process: {exc}"))
                self._jobs.pop(job.future, None)
                continue
            finally:
                writer.close()
            job.process, job.reader = process, reader
            self._active.append(job)
            running += 1

    def _receive(self, job: _Job) -> None:
        """Read the outcome if the child sent it; close the pipe once it is read or broken."""
        assert job.reader is not None
        try:
            if not job.reader.poll():
                return
            outcome: StepOutcome = job.reader.recv()
        except (EOFError, OSError):
            pass  # closed without an outcome: the child died, its sentinel reports how
        else:
            _set_result(job.future, outcome)
            if job.deadline is None:
                job.deadline = time.monotonic() + self.kill_grace
        job.reader.close()
        job.reader = None

    def _collect(self, ready: set[Any]) -> None:
        for job in list(self._active):
            assert job.process is not None
            exited = job.process.sentinel in ready
            if job.reader is not None and (job.reader in ready or exited):
                self._receive(job)
            if not exited:
                continue
            job.process.join()
            if job.reader is not None:
                self._receive(job)
            if not job.future.done():
                _set_error(job.future, StepProcessDied(_death_message(job)))
            if job.reader is not None:
                job.reader.close()
            job.process.close()
            self._active.remove(job)
            self._jobs.pop(job.future, None)

    def _escalate(self) -> None:
        clock = time.monotonic()
        for job in self._active:
            if job.deadline is None or clock < job.deadline:
                continue
            assert job.process is not None
            if job.stage == 0:
                job.process.terminate()
                job.stage, job.deadline = 1, clock + self.kill_grace
            elif job.stage == 1:
                job.process.kill()
                job.stage, job.deadline = 2, None

    def _dispatch(self) -> None:
        try:
            self._dispatch_loop()
        except Exception as exc:  # noqa: BLE001 - never leave futures hanging
            with self._lock:
                for job in [*self._queued, *self._active]:
                    if job.process is not None and job.process.exitcode is None:
                        job.process.kill()
                        job.process.join()
                    _set_error(job.future, StepProcessDied(f"the process executor failed: {exc}"))
                self._queued.clear()
                self._active.clear()
                self._jobs.clear()
            raise

    def _dispatch_loop(self) -> None:
        assert self._wake_reader is not None
        wake_reader = self._wake_reader
        while True:
            with self._lock:
                self._launch_ready()
                if self._stopping and not self._active:
                    return
                handles: list[Any] = [wake_reader]
                deadlines = []
                for job in self._active:
                    assert job.process is not None
                    handles.append(job.process.sentinel)
                    if job.reader is not None:
                        handles.append(job.reader)
                    if job.deadline is not None:
                        deadlines.append(job.deadline)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = set(wait(handles, timeout))
            with self._lock:
                if self._wake_pending:
                    wake_reader.recv_bytes()
                    self._wake_pending = False
                self._collect(ready)
                self._escalate()
