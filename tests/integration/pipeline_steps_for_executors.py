"""Steps and pipelines that test_pipeline_executors.py runs on every executor.

They live in a plain, importable module (not the test file) so that worker processes and Dask
workers import them by reference, as they would a user's package. numpy and pandas are
imported where needed, so the kill and retry tests do not pay for them in every child.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import loopml as lm

if TYPE_CHECKING:
    import pandas as pd


@lm.step
def make_frame(rows: int, seed: int) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "x": rng.normal(size=rows).round(6),
            "group": [f"g{i % 3}" for i in range(rows)],
        }
    )


@lm.step
def summarize(frame: pd.DataFrame) -> dict[str, float]:
    return {"rows": float(len(frame)), "mean_x": round(float(frame["x"].mean()), 9)}


@lm.step
def scale(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    scaled = frame.assign(x=frame["x"] * factor)
    lm.log_metric("scaled_max", float(scaled["x"].max()))
    return scaled


@lm.step
def join(summary: dict[str, float], scaled: pd.DataFrame) -> dict[str, float]:
    by_group = scaled.groupby("group")["x"].sum().round(9)
    return {**summary, **{f"sum_{k}": float(v) for k, v in by_group.items()}}


@lm.pipeline
def executor_parity(rows: int = 200, seed: int = 7, factor: float = 2.5) -> object:
    """make_frame -> (summarize | scale) -> join: two independent branches and a join."""
    frame = make_frame(rows, seed)
    return join(summarize(frame), scale(frame, factor))


@lm.step(retries=2, retry_backoff=0.5, cache=False)
def flaky(counter: str) -> int:
    """Fails on its first attempt; every attempt appends its start time to ``counter``."""
    path = Path(counter)
    earlier = path.read_text().splitlines() if path.exists() else []
    with path.open("a") as stream:
        stream.write(f"{time.time()}\n")
    if not earlier:
        raise RuntimeError("the first attempt fails on purpose")
    return len(earlier) + 1


@lm.pipeline
def flaky_pipeline(counter: str) -> object:
    return flaky(counter)


@lm.step(timeout=1, cache=False)
def sleepy(pid_file: str) -> int:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
    return 1


@lm.step(cache=False)
def stubborn(pid_file: str) -> int:
    """Ignores SIGTERM, so only SIGKILL stops it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
    return 1


@lm.step(cache=False)
def killed() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@lm.step
def after(value: int) -> int:
    return value + 1


@lm.pipeline
def sleepy_pipeline(pid_file: str) -> object:
    return after(sleepy(pid_file))


@lm.pipeline
def killed_pipeline() -> object:
    return after(killed())


@lm.step(resources={"GPU": 1.0})
def needs_gpu() -> int:
    return 1


@lm.pipeline
def gpu_pipeline() -> object:
    return needs_gpu()
