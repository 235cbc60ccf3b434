"""The pipeline example in docs/pipelines.md runs and prints what the page says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import loopml as lm
from loopml.pipelines.service import get_pipeline_service

EXAMPLE = Path(__file__).parents[2] / "examples" / "pipeline_example.py"
DOCS = Path(__file__).parents[2] / "docs" / "pipelines.md"


def test_pipeline_example(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    printed = capsys.readouterr().out
    runs: list[str] = []
    for line in printed.splitlines():
        if line.startswith("run "):
            runs.append("")
        runs[-1] += line + "\n"
    assert len(runs) == 3
    first, cached, retrained = runs
    assert "load_data        COMPLETED  2 attempts, cache miss" in first
    assert first.count("cache miss: no earlier execution of this step") == 6
    assert cached.count("CACHED") == 6 and "COMPLETED  " not in cached
    assert "train_model      COMPLETED  cache miss: parameter C changed" in retrained
    assert "evaluate         COMPLETED  cache miss: input model changed" in retrained
    assert retrained.count("CACHED") == 4
    assert "-> {'accuracy': 0.951, 'roc_auc': 0.9725}" in first

    # The page shows this very output (run ids aside).
    docs = DOCS.read_text(encoding="utf-8")
    for line in printed.splitlines():
        if not line.startswith("run "):
            assert line in docs, line

    # The metric logged inside a step lands in that step's tracked run.
    service = get_pipeline_service()
    latest = service.list_runs("breast_cancer", limit=1)[0]
    evaluate = next(s for s in service.steps(latest.id) if s.step_name == "evaluate")
    assert evaluate.run_id is not None
    assert lm.get_run(evaluate.run_id).metrics["accuracy"] == pytest.approx(0.9231, abs=1e-4)
