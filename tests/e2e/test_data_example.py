"""The data example in docs/data.md runs and prints what the page says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "data_quality.py"


def test_data_quality_example(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("data_quality_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    printed = capsys.readouterr().out
    assert "same content again -> churn@v1" in printed
    assert "churn@v2: passed" in printed
    assert "churn@v3: FAILED" in printed
    assert "unseen_category" in printed and "enterprise" in printed
    docs = (EXAMPLE.parents[1] / "docs" / "data.md").read_text()
    for line in printed.splitlines()[:4]:
        assert line.split("digest=")[0] in docs
