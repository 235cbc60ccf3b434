"""Process plumbing the side-by-side benchmarks share: workers, results, signals.

Every benchmark script is also its own worker: the parent runs it again with ``--worker``
under the interpreter of the tool being measured, and the worker prints its result as one
JSON line after :data:`RESULT_MARKER`. Workers may run in another tool's virtualenv, so this
module, like :mod:`_report`, uses the standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

RESULT_MARKER = "BENCH_RESULT "


class BenchError(RuntimeError):
    """A measurement, a worker or a server could not be run."""


def emit_result(result: Any) -> int:
    """Print a worker's result for the parent (see :func:`parse_result`); return exit code 0."""
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def parse_result(stdout: str, stderr: str, returncode: int | None, what: str = "worker") -> Any:
    """Return the last result line a worker printed, or raise with the tail of its output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = "\n".join((stdout.strip().splitlines() + stderr.strip().splitlines())[-15:])
    raise BenchError(f"{what} exited with {returncode} and no result:\n{tail}")


@contextmanager
def watchdog(proc: subprocess.Popen[str], timeout: float) -> Iterator[None]:
    """Kill ``proc`` after ``timeout`` seconds, and on the way out if it is still running."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted: never leave a worker behind
            proc.kill()
            proc.wait()


def run_worker_script(
    python: Path,
    script: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    what: str,
) -> Any:
    """Run ``script --worker *args`` with ``python`` and return the result it printed."""
    cmd = [str(python), str(Path(script).resolve()), "--worker", *args]
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what} did not finish in {timeout:.0f} s") from exc
    return parse_result(proc.stdout, proc.stderr, proc.returncode, what)


def run_code(python: Path, code: str, *, env: dict[str, str], timeout: float, failure: str) -> str:
    """Run ``python -c code`` and return its stripped stdout; raise ``failure`` if it fails."""
    proc = subprocess.run(
        [str(python), "-c", code],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise BenchError(f"{failure}:\n{tail}")
    return proc.stdout.strip()


def dist_version(dist: str, fallback: str) -> str:
    """The installed version of ``dist`` in this interpreter, else ``fallback``."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return fallback


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the servers and workers."""
    signal.signal(signal.SIGTERM, _exit_on_signal)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail_of(path: Path, lines: int = 20) -> str:
    """Return the last lines of a log file (or a note that it is empty)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    """Poll ``url`` until it answers 200; return the seconds it took."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{tail_of(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.2)
    raise BenchError(f"server not healthy at {url} after {timeout:.0f} s:\n{tail_of(log)}")


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server we started and everything it forked: SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group may outlive its leader (MLflow's CLI execs uvicorn from a bash child).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def running_server(
    cmd: list[str], env: dict[str, str], home: Path, ready_url: str, timeout: float
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start a server in its own process group, wait for ``ready_url``, stop it on exit.

    The server's output goes to ``home/server.log``; the context yields the process and the
    seconds it took to answer.
    """
    log = home / "server.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=home,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, wait_healthy(ready_url, proc, log, timeout)
    finally:
        stop_process_group(proc)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent environment without any tool's settings, telemetry off, plus ``extra``.

    Every benchmark starts its workers and servers with this, so that neither a developer's
    ``LOOPML_*``/``MLFLOW_*``/``EVIDENTLY_*``/``FEAST_*`` variables nor an active venv leak in.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOOPML_", "MLFLOW_", "EVIDENTLY_", "FEAST_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "EVIDENTLY_DISABLE_TELEMETRY": "1",
            "GIT_PYTHON_REFRESH": "quiet",
            # MLflow 3's server runs a background job runner that keeps the cores busy after
            # start; nothing measured here uses it.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    env.update(extra or {})
    return env
