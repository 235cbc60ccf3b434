"""The infrastructure check: a stored model must load in a fresh process and predict.

:func:`infra_check_in_subprocess` runs a snippet (written by the model registry: load a stored
version, predict on its input example) in a new interpreter and reads the one-line JSON report
it prints. The gate fails a candidate whose check did not load, did not predict, or was too
slow.

Examples
--------
>>> from loopml.training import infra_check_in_subprocess
>>> code = "; ".join([
...     "import json, time",
...     "start = time.perf_counter()",
...     "prediction = sum([1, 2, 3])",
...     "latency = (time.perf_counter() - start) * 1000",
...     "print(json.dumps({'loaded': True, 'predict_ok': prediction == 6, 'latency_ms': latency}))",
... ])
>>> result = infra_check_in_subprocess(code, timeout_s=60)
>>> result.ok, result.error
(True, None)
"""

from __future__ import annotations

import json
import numbers
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from loopml.errors import InvalidInput

__all__ = ["InfraCheckResult", "infra_check_in_subprocess"]


@dataclass(frozen=True)
class InfraCheckResult:
    """Whether the stored model loaded in a fresh process and predicted on its input example."""

    loaded: bool
    predict_ok: bool
    latency_ms: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Loaded, predicted and reported no error."""
        return self.loaded and self.predict_ok and self.error is None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InfraCheckResult:
        """Read a report; ``latency_ms`` must be a number or null."""
        latency = data.get("latency_ms")
        if latency is not None and (
            isinstance(latency, bool) or not isinstance(latency, numbers.Real)
        ):
            raise InvalidInput(f"latency_ms must be a number, got {latency!r:.40}", field="infra")
        error = data.get("error")
        return cls(
            loaded=data.get("loaded") is True,
            predict_ok=data.get("predict_ok") is True,
            latency_ms=None if latency is None else float(latency),
            error=None if error is None else str(error),
        )


def _tail(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def infra_check_in_subprocess(
    python_code: str,
    timeout_s: float = 120.0,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> InfraCheckResult:
    """Run ``python_code`` in a fresh ``sys.executable`` and read the JSON report it prints.

    The code must print one line such as ``{"loaded": true, "predict_ok": true,
    "latency_ms": 1.7}`` (and may add ``"error"``); the last JSON object on stdout counts.
    A crash, a timeout or a missing report is a failed check whose ``error`` says why.

    Parameters
    ----------
    python_code : str
        Trusted code (the model registry writes it): load a stored version, predict on its
        input example, print the report. It is passed as an argument, never through a shell.
    timeout_s : float, default 120
        The child is killed after this many seconds.
    env, cwd : optional
        Environment and working folder of the child (default: this process's).

    Examples
    --------
    >>> code = 'import json; print(json.dumps({"loaded": True, "predict_ok": False}))'
    >>> infra_check_in_subprocess(code, timeout_s=30).ok
    False
    """
    if not isinstance(python_code, str) or not python_code.strip():
        raise InvalidInput("python_code must be non-empty Python source", field="python_code")
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise InvalidInput("timeout_s must be a positive number of seconds", field="timeout_s")
    try:
        done = subprocess.run(
            [sys.executable, "-c", python_code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return InfraCheckResult(False, False, None, f"timed out after {timeout_s:g} s")
    report: dict[str, Any] | None = None
    for line in reversed(done.stdout.splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "loaded" in parsed:
            report = parsed
            break
    if report is None:
        return InfraCheckResult(
            False,
            False,
            None,
            f"no JSON report on stdout (exit code {done.returncode}): {_tail(done.stderr)}",
        )
    try:
        result = InfraCheckResult.from_dict(report)
    except InvalidInput as exc:
        return InfraCheckResult(False, False, None, f"malformed report: {exc.message}")
    if done.returncode != 0 and result.error is None:
        failure = f"exit code {done.returncode}: {_tail(done.stderr)}"
        return InfraCheckResult(result.loaded, result.predict_ok, result.latency_ms, failure)
    return result
