"""``loopml data``: register, list, show, sql, profile, schema, validate, tag, delete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _frame(seed: int, shift: float = 0.0, rows: int = 2_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "charges": rng.normal(70 + shift, 20, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "reference": tmp_path / "reference.parquet",
        "clean": tmp_path / "clean.csv",
        "shifted": tmp_path / "shifted.parquet",
    }
    _frame(1).to_parquet(paths["reference"], index=False)
    _frame(2, rows=1_000).to_csv(paths["clean"], index=False)
    shifted = _frame(3, shift=40, rows=1_000)
    shifted.loc[:20, "plan"] = "enterprise"
    shifted.to_parquet(paths["shifted"], index=False)
    return paths


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_register_list_show_and_dedup(files: dict[str, Path]) -> None:
    assert "Registered churn@v1" in _ok(
        ["data", "register", "churn", str(files["reference"]), "--tag", "source=crm"]
    )
    assert "nothing new was stored" in _ok(["data", "register", "churn", str(files["reference"])])
    listed = json.loads(_ok(["data", "list", "--json"]))
    assert [(d["name"], d["latest_version"]) for d in listed] == [("churn", 1)]
    shown = _ok(["data", "show", "churn@v1"])
    assert "charges" in shown and "source=crm" in shown
    assert json.loads(_ok(["data", "show", "churn", "--json"]))["profile"]["num_rows"] == 2_000


def test_sql(files: dict[str, Path]) -> None:
    _ok(["data", "register", "churn", str(files["reference"])])
    rows = json.loads(
        _ok(
            [
                "data",
                "sql",
                "select plan, count(*) as n from churn group by plan order by plan",
                "--json",
            ]
        )
    )
    assert [r["plan"] for r in rows] == ["basic", "plus", "pro"]
    assert sum(r["n"] for r in rows) == 2_000
    printed = _ok(["data", "sql", 'select * from "churn@v1"', "--max-rows", "3"])
    assert "1997 more rows" in printed


def test_profile_writes_a_report(files: dict[str, Path], tmp_path: Path) -> None:
    _ok(["data", "register", "churn", str(files["reference"]), "--no-profile"])
    report = tmp_path / "report.html"
    printed = _ok(["data", "profile", "churn", "--out", str(report)])
    assert "tenure" in printed and str(report) in printed.replace("\n", "")
    html = report.read_text()
    assert "<html" in html.lower() and "charges" in html


def test_validate_passes_clean_and_fails_shifted(files: dict[str, Path], tmp_path: Path) -> None:
    _ok(["data", "register", "churn", str(files["reference"])])
    _ok(["data", "register", "churn", str(files["clean"])])
    clean = runner.invoke(
        app, ["data", "validate", "churn@v2", "--reference", "churn@v1"], env=WIDE
    )
    assert clean.exit_code == 0, clean.output
    _ok(["data", "register", "churn", str(files["shifted"])])
    failed = runner.invoke(
        app, ["data", "validate", "churn@v3", "--reference", "churn@v1"], env=WIDE
    )
    assert failed.exit_code == 1
    assert "unseen_category" in failed.stdout and "drift" in failed.stdout
    shown = json.loads(_ok(["data", "show", "churn@v3", "--json"]))
    assert [v["passed"] for v in shown["validations"]] == [False]


def test_schema_infer_attach_show(files: dict[str, Path], tmp_path: Path) -> None:
    _ok(["data", "register", "churn", str(files["reference"])])
    out = tmp_path / "schema.yaml"
    _ok(["data", "schema", "infer", "churn", "--out", str(out), "--attach"])
    assert "plan" in out.read_text()
    assert "charges" in _ok(["data", "schema", "show", "churn"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed")
    result = runner.invoke(app, ["data", "schema", "attach", "churn", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output


def test_tag_and_delete(files: dict[str, Path]) -> None:
    _ok(["data", "register", "churn", str(files["reference"])])
    _ok(["data", "tag", "churn", "reviewed", "yes"])
    assert json.loads(_ok(["data", "show", "churn", "--json"]))["version"]["tags"] == {
        "reviewed": "yes"
    }
    _ok(["data", "delete", "churn", "--all"])
    assert json.loads(_ok(["data", "list", "--json"])) == []


@pytest.mark.parametrize(
    "args",
    [
        ["data", "register", "../escape", "x.parquet"],
        ["data", "show", "missing"],
        ["data", "sql", "drop table churn"],
        ["data", "sql", "select * from nothing_here"],
        ["data", "register", "churn", "/no/such/file.csv"],
        ["data", "register", "churn", "x.csv", "--tag", "novalue"],
    ],
)
def test_bad_input_exits_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
