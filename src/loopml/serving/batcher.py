"""Adaptive micro-batching: coalesce concurrent requests into one ``predict`` call.

One worker task takes the oldest waiting request, then waits at most ``max_wait_ms`` for
more until the batch holds ``max_batch_size`` rows, runs a single prediction in a thread on
the concatenated frame and hands every request its own slice of the results. A lone request
therefore never waits longer than ``max_wait_ms`` before its prediction starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from loopml.errors import LoopmlError


class Overloaded(LoopmlError):
    """The batcher's queue is full; the client should retry later."""

    status_code = 503
    code = "overloaded"


@dataclass(frozen=True)
class BatchResult:
    """The predictions (and class probabilities) for one request's rows."""

    predictions: list[Any]
    probabilities: list[list[float]] | None


#: ``predict(frame) -> (predictions, probabilities or None)``, one entry per row.
PredictFn = Callable[[pd.DataFrame], tuple[Sequence[Any], Sequence[Sequence[float]] | None]]


@dataclass
class _Pending:
    frame: pd.DataFrame
    future: asyncio.Future[BatchResult]


class MicroBatcher:
    """Coalesce concurrent prediction requests into batches.

    Parameters
    ----------
    predict : callable
        Runs on a worker thread with the concatenated frame of a batch; returns one
        prediction per row and optionally one probability vector per row.
    max_batch_size : int
        Rows after which a batch is run without waiting further.
    max_wait_ms : float
        The longest time the first request of a batch waits for company.
    max_queue : int
        Requests that may wait at once; beyond it :meth:`submit` raises :class:`Overloaded`.
    on_batch : callable, optional
        Called with the number of rows of every batch run (for metrics).
    arriving : callable, optional
        The number of requests received but not yet submitted (their bodies still being
        read). When given, a batch waits for company only while that is above zero, so a
        lone request is predicted at once; requests that come while a batch is predicting
        still share the next one. Without it, every batch waits up to ``max_wait_ms``.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        on_batch: Callable[[int], None] | None = None,
        arriving: Callable[[], int] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.arriving = arriving
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    async def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="loopml-micro-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting fail with :class:`Overloaded`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(Overloaded("the server is shutting down"))

    async def drain(self, poll_seconds: float = 0.001) -> None:
        """Wait until every queued request has its answer, then stop."""
        while self._task is not None and (self._queue or self._busy):
            await asyncio.sleep(poll_seconds)
        await self.stop()

    async def submit(self, frame: pd.DataFrame) -> BatchResult:
        """Queue ``frame`` (already validated) and wait for its predictions.

        Raises
        ------
        Overloaded
            When the queue is full or the batcher is not running.
        """
        if self._task is None or self._wakeup is None:
            raise Overloaded("the model is not ready to serve predictions")
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"too many requests are waiting (limit {self.max_queue}); retry later")
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(frame, future))
        self._wakeup.set()
        return await future

    def _company_expected(self) -> bool:
        # Waiting only pays when another request is on its way; a lone request goes at once.
        return self.arriving is None or self.arriving() > 0

    def _queued_rows(self) -> int:
        return sum(len(p.frame) for p in self._queue)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = loop.time() + self.max_wait
            while self._queued_rows() < self.max_batch_size and self._company_expected():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            self._busy = True
            try:
                await self._execute(self._take_batch())
            finally:
                self._busy = False

    def _take_batch(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        rows = len(batch[0].frame)
        while self._queue and rows + len(self._queue[0].frame) <= self.max_batch_size:
            pending = self._queue.popleft()
            batch.append(pending)
            rows += len(pending.frame)
        return [p for p in batch if not p.future.done()]

    async def _execute(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        frame = (
            batch[0].frame
            if len(batch) == 1
            else pd.concat([p.frame for p in batch], ignore_index=True)
        )
        if self.on_batch is not None:
            self.on_batch(len(frame))
        try:
            predictions, probabilities = await asyncio.to_thread(self.predict, frame)
            if len(predictions) != len(frame):
                raise RuntimeError(
                    f"the model returned {len(predictions)} predictions for {len(frame)} rows"
                )
        except Exception as exc:  # one failing batch fails only its own requests
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        start = 0
        for pending in batch:
            end = start + len(pending.frame)
            if not pending.future.done():
                pending.future.set_result(
                    BatchResult(
                        predictions=list(predictions[start:end]),
                        probabilities=(
                            None
                            if probabilities is None
                            else [list(row) for row in probabilities[start:end]]
                        ),
                    )
                )
            start = end
