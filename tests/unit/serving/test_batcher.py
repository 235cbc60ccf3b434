"""The micro-batcher on its own: coalescing, latency of a lone request, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from loopml.serving.batcher import BatchResult, MicroBatcher, Overloaded

PREDICT_SECONDS = 0.02


class Recorder:
    """A predict function that doubles ``x`` and remembers every batch size."""

    def __init__(self, delay: float = PREDICT_SECONDS, fail_on: int | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, frame: pd.DataFrame) -> tuple[Sequence[Any], Sequence[Sequence[float]]]:
        with self.lock:
            self.sizes.append(len(frame))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in frame["x"].tolist():
            raise RuntimeError("model exploded")
        values = frame["x"].tolist()
        return [v * 2 for v in values], [[float(v), 1.0 - v] for v in values]


def _frame(*values: int) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


def test_concurrent_requests_are_coalesced_and_results_matched() -> None:
    predict = Recorder()

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=16, max_wait_ms=50)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(_frame(i)) for i in range(40)))
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert [r.predictions for r in results] == [[i * 2] for i in range(40)]
    assert [r.probabilities for r in results] == [[[float(i), 1.0 - i]] for i in range(40)]
    assert max(predict.sizes) > 1
    assert max(predict.sizes) <= 16
    assert sum(predict.sizes) == 40
    assert len(predict.sizes) < 40


def test_multi_row_requests_keep_their_own_slices() -> None:
    predict = Recorder()

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait_ms=30)
        await batcher.start()
        try:
            return list(
                await asyncio.gather(
                    batcher.submit(_frame(1, 2, 3)),
                    batcher.submit(_frame(4)),
                    batcher.submit(_frame(5, 6)),
                )
            )
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert [r.predictions for r in results] == [[2, 4, 6], [8], [10, 12]]
    assert predict.sizes == [6]


def test_a_lone_request_waits_at_most_max_wait() -> None:
    max_wait_ms = 30.0
    predict = Recorder()

    async def scenario() -> float:
        batcher = MicroBatcher(predict, max_batch_size=32, max_wait_ms=max_wait_ms)
        await batcher.start()
        try:
            await batcher.submit(_frame(1))  # warm the thread pool
            started = time.perf_counter()
            result = await batcher.submit(_frame(7))
            elapsed = time.perf_counter() - started
            assert result.predictions == [14]
            return elapsed
        finally:
            await batcher.stop()

    elapsed = asyncio.run(scenario())
    slack = 0.05
    assert elapsed <= max_wait_ms / 1000 + PREDICT_SECONDS + slack
    assert predict.sizes == [1, 1]


def test_a_failing_batch_fails_only_its_requests() -> None:
    predict = Recorder(fail_on=13)

    async def scenario() -> tuple[list[Any], BatchResult]:
        batcher = MicroBatcher(predict, max_batch_size=4, max_wait_ms=20)
        await batcher.start()
        try:
            first = list(
                await asyncio.gather(
                    batcher.submit(_frame(13)), batcher.submit(_frame(1)), return_exceptions=True
                )
            )
            later = await batcher.submit(_frame(2))
            return first, later
        finally:
            await batcher.stop()

    first, later = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert later.predictions == [4]


def test_a_full_queue_is_refused() -> None:
    predict = Recorder(delay=0.05)

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(_frame(i)) for i in range(6)), return_exceptions=True
            )
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert any(isinstance(r, Overloaded) for r in results)
    assert any(not isinstance(r, BaseException) for r in results)


def test_submit_before_start_is_refused() -> None:
    async def scenario() -> None:
        await MicroBatcher(Recorder()).submit(_frame(1))

    with pytest.raises(Overloaded):
        asyncio.run(scenario())


def test_drain_answers_queued_requests_before_stopping() -> None:
    predict = Recorder()

    async def scenario() -> list[BatchResult]:
        batcher = MicroBatcher(predict, max_batch_size=2, max_wait_ms=5)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit(_frame(i))) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.drain()
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(scenario())
    assert [r.predictions for r in results] == [[i * 2] for i in range(5)]
