"""A process SIGKILLed in the middle of logging leaves a consistent store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BATCH = 500

CHILD = textwrap.dedent(
    f"""
    import io, sys, time
    from pathlib import Path
    import loopml as lm

    class SlowStream(io.RawIOBase):
        # An artifact upload that never finishes: 64 KiB every 10 ms.
        def readable(self):
            return True
        def readinto(self, buffer):
            time.sleep(0.01)
            size = min(len(buffer), 65536)
            buffer[:size] = b"x" * size
            return size

    lm.set_experiment("crash")
    with lm.start_run(run_name="doomed") as run:
        Path(sys.argv[1]).write_text(run.run_id)
        lm.log_text("complete", "done.txt")
        for step in range(20):
            lm.log_batch(metrics=[lm.Metric("m", float(i), 0, step * {BATCH} + i)
                                  for i in range({BATCH})])
        Path(sys.argv[2]).write_text("uploading")
        lm.get_service().log_artifact_stream(run.run_id, "partial.bin", SlowStream())
    """
)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the child never wrote {path.name}"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_logging_leaves_a_killed_run_and_no_partial_artifact(
    isolated_home: Path, tmp_path: Path
) -> None:
    run_file, upload_file = tmp_path / "run_id", tmp_path / "uploading"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(run_file), str(upload_file)],
        env={**os.environ, "LOOPML_HOME": str(isolated_home)},
    )
    try:
        _wait_for(upload_file)
        time.sleep(0.5)  # well inside the endless upload
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    run_id = run_file.read_text()

    import loopml as lm

    service = lm.get_service()
    assert service.get_run(run_id).status is lm.RunStatus.RUNNING
    assert run_id in service.gc_runs()
    run = service.get_run(run_id)
    assert run.status is lm.RunStatus.KILLED
    assert run.end_time is not None

    history = service.get_metric_history(run_id, "m")
    assert len(history) == 20 * BATCH
    assert [a.path for a in service.list_artifacts(run_id)] == ["done.txt"]
    blobs = [p for p in (isolated_home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert blobs[0].read_bytes() == b"complete"


@pytest.mark.slow
def test_sigkill_during_batches_keeps_whole_batches_only(
    isolated_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "batches.py"
    ready = tmp_path / "ready"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import loopml as lm
        lm.set_experiment("batches")
        with lm.start_run() as run:
            Path(sys.argv[1]).write_text(run.run_id)
            step = 0
            while True:
                lm.log_batch(metrics=[lm.Metric("m", 1.0, 0, step + i) for i in range({BATCH})])
                step += {BATCH}
    """)
    )
    child = subprocess.Popen(
        [sys.executable, str(script), str(ready)],
        env={**os.environ, "LOOPML_HOME": str(isolated_home)},
    )
    try:
        _wait_for(ready)
        time.sleep(1.5)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    import loopml as lm

    history = lm.get_service().get_metric_history(ready.read_text(), "m")
    assert len(history) > 0
    assert len(history) % BATCH == 0
    assert [m.step for m in history] == list(range(len(history)))


def test_sigterm_ends_the_run_killed(isolated_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "term.py"
    ready = tmp_path / "ready"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from pathlib import Path
        import loopml as lm
        with lm.start_run() as run:
            Path(sys.argv[1]).write_text(run.run_id)
            while True:
                time.sleep(0.05)
    """)
    )
    child = subprocess.Popen(
        [sys.executable, str(script), str(ready)],
        env={**os.environ, "LOOPML_HOME": str(isolated_home)},
    )
    try:
        _wait_for(ready)
        child.send_signal(signal.SIGTERM)
    finally:
        child.wait(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    import loopml as lm

    assert lm.get_run(ready.read_text()).status is lm.RunStatus.KILLED
