"""The registry example in docs/models.md runs, promotes the candidate, and prints the page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import loopml as lm

EXAMPLE = Path(__file__).parents[2] / "examples" / "models_example.py"
DOCS = Path(__file__).parents[2] / "docs" / "models.md"
# What differs from one run to the next: run ids, timings and the git commit.
_VOLATILE = (
    (re.compile(r"[0-9a-f]{32}"), "<run-id>"),
    (re.compile(r"runs:/[0-9a-f]{8}…"), "runs:/<run-id>…"),
    (re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)? ms\b"), "<t> ms"),
    (re.compile(r"\| code version \| \S+ \|"), "| code version | <commit> |"),
)


def _mask(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.slow
def test_models_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The page was produced by user "ada"; the audit trail and the card name the user.
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "ada")
    spec = importlib.util.spec_from_file_location("models_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    printed = capsys.readouterr().out

    assert "PASSED: 11 of 11 checks passed" in printed
    assert "champion: v1 -> v2" in printed
    champion = lm.registry.resolve("churn-model@champion")
    assert champion.version == 2 and champion.datasets == ("churn@v1",)
    assert champion.gate is not None and champion.gate["passed"] is True
    assert champion.evaluation is not None and set(champion.evaluation["slices"]) == {
        "plan=basic",
        "plan=plus",
        "plan=pro",
        "tenure<12",
    }
    assert lm.registry.get_model_version("churn-model", 1).evaluation is not None
    moves = [e for e in lm.registry.audit("churn-model") if e.action == "set_alias:champion"]
    assert [(e.from_value, e.to_value, e.user) for e in moves] == [
        (None, "1", "ada"),
        ("1", "2", "ada"),
    ]
    assert moves[-1].reason.startswith("gate passed: f1 ")

    # The page shows this very output (run ids, timings and the commit aside).
    docs = _mask(DOCS.read_text(encoding="utf-8"))
    for line in _mask(printed).splitlines():
        assert line in docs, line
