"""What runs a step, wherever it runs: load inputs, call the function, store the outputs.

A :class:`StepTask` carries only references (blob digests, store URIs, the step's import
path), so executors in other processes or on other machines fetch data from the artifact
store rather than receiving pickled objects.
"""

from __future__ import annotations

import importlib
import io
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from loopml.entities.pipelines import OutputRef
from loopml.errors import InvalidInput
from loopml.pipelines import materializers

if TYPE_CHECKING:
    from loopml.pipelines.dsl import Step
    from loopml.store.base import BlobStore


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one attempt of one step (references only)."""

    node: str
    step_reference: str
    inputs: dict[str, OutputRef]
    params: dict[str, Any]
    outputs: tuple[str, ...]
    materializer: str | None
    store_uri: str
    artifact_uri: str
    tracking_run_id: str | None
    attempt: int = 1
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutcome:
    """What an attempt produced."""

    succeeded: bool
    outputs: tuple[OutputRef, ...]
    logs_sha256: str | None
    start_time: int
    end_time: int
    host: str
    error: str | None = None
    traceback: str | None = None


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


def import_step(reference: str) -> Step:
    """Import a step by ``module:qualname``."""
    from loopml.pipelines.dsl import Step

    module_name, _, qualname = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot import step {reference!r}: {exc}", field="step") from exc
    if not isinstance(target, Step):
        raise InvalidInput(f"{reference!r} is not a step", field="step")
    return target


class _ThreadRoutedStream(io.TextIOBase):
    """Sends writes of threads that capture logs to their buffer, others to the original."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.buffers: dict[int, io.StringIO] = {}

    def write(self, text: str) -> int:
        buffer = self.buffers.get(threading.get_ident())
        return (buffer if buffer is not None else self.original).write(text)

    def flush(self) -> None:
        self.original.flush()


_route_lock = threading.Lock()


@contextmanager
def capture_output() -> Iterator[io.StringIO]:
    """Capture this thread's stdout and stderr (other threads keep printing normally)."""
    buffer = io.StringIO()
    ident = threading.get_ident()
    with _route_lock:
        routes = []
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _ThreadRoutedStream):
                current = _ThreadRoutedStream(current)
                setattr(sys, name, current)
            current.buffers[ident] = buffer
            routes.append(current)
    try:
        yield buffer
    finally:
        with _route_lock:
            for route in routes:
                route.buffers.pop(ident, None)


def _load_input(blobs: BlobStore, ref: OutputRef) -> Any:
    materializer = materializers.by_name(ref.materializer)
    with blobs.open(ref.sha256) as stream:
        return materializer.load(stream)


def _store_value(blobs: BlobStore, value: Any, task: StepTask, name: str) -> OutputRef:
    materializer = materializers.choose(value, task.node, name, task.materializer)
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        materializer.save(value, spool)  # type: ignore[arg-type]
        spool.seek(0)
        sha256, size = blobs.put_stream(spool)  # type: ignore[arg-type]
    return OutputRef(
        name=name,
        sha256=sha256,
        size=size,
        materializer=materializer.name,
        type_name=f"{type(value).__module__}.{type(value).__qualname__}",
    )


def split_outputs(value: Any, task: StepTask) -> dict[str, Any]:
    """Map the function's return value onto the step's declared outputs."""
    if len(task.outputs) == 1:
        return {task.outputs[0]: value}
    if not isinstance(value, tuple | list) or len(value) != len(task.outputs):
        raise InvalidInput(
            f"step {task.node!r} declares outputs {task.outputs} but returned "
            f"{type(value).__name__}",
            field=task.node,
        )
    return dict(zip(task.outputs, value, strict=True))


@contextmanager
def _environment(overrides: dict[str, str]) -> Iterator[None]:
    """Set variables for one attempt and put the previous values back afterwards."""
    previous = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(task: StepTask, step: Step | None = None, *, in_caller: bool = False) -> StepOutcome:
    """Run one attempt of a step; failures come back as an outcome, never as an exception.

    Outside the calling process, the task's store settings are applied for the attempt;
    ``in_caller=True`` (threads of the process that started the run) leaves the
    environment alone, since it already names the same stores.
    """
    if in_caller or not task.environment:
        return _execute(task, step)
    with _environment(task.environment):
        return _execute(task, step)


def _execute(task: StepTask, step: Step | None) -> StepOutcome:
    from loopml.store.artifacts import open_blob_store
    from loopml.tracking.fluent import use_run

    start = now_ms()
    blobs = open_blob_store(task.artifact_uri)
    outputs: tuple[OutputRef, ...] = ()
    error = trace = None
    with capture_output() as logs:
        try:
            function = (step or import_step(task.step_reference)).fn
            kwargs = {name: _load_input(blobs, ref) for name, ref in task.inputs.items()}
            kwargs.update(task.params)
            with use_run(task.tracking_run_id):
                value = function(**kwargs)
            outputs = tuple(
                _store_value(blobs, v, task, name) for name, v in split_outputs(value, task).items()
            )
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, not raised
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            print(trace, file=sys.stderr)
    text = logs.getvalue()
    logs_sha256 = blobs.put_stream(io.BytesIO(text.encode("utf-8")))[0] if text else None
    return StepOutcome(
        succeeded=error is None,
        outputs=outputs,
        logs_sha256=logs_sha256,
        start_time=start,
        end_time=now_ms(),
        host=socket.gethostname(),
        error=error,
        traceback=trace,
    )
