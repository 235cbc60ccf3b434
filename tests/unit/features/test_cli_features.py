"""``loopml features apply|list|show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from loopml.cli.main import app


class Cli:
    """Run ``loopml`` commands in-process: expect success, or one clean error and exit 2."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def invoke(self, args: list[str]) -> Any:
        return self.runner.invoke(app, args, env={"COLUMNS": "200"})

    def ok(self, args: list[str]) -> str:
        result = self.invoke(args)
        assert result.exit_code == 0, result.output
        return str(result.stdout)

    def fails(self, args: list[str], fragment: str) -> None:
        result = self.invoke(args)
        assert result.exit_code == 2, result.output
        assert fragment in result.stderr, result.stderr
        assert "Traceback" not in result.output


DEFINITIONS = """
from datetime import timedelta
import loopml as lm

driver = lm.features.Entity("driver", ["driver_id"])
stats = lm.features.FeatureView(
    "driver_stats", [driver], source="stats.parquet", timestamp_field="ts",
    features=[lm.features.Field("rating", "{dtype}")], ttl=timedelta(hours=1),
)
ALL = [driver, stats, lm.features.FeatureService("ranker", ["driver_stats:rating"])]
"""


def _write(tmp_path: Path, dtype: str = "float64") -> str:
    path = tmp_path / "defs.py"
    path.write_text(DEFINITIONS.replace("{dtype}", dtype))
    return f"{path}:ALL"


def test_apply_list_show(tmp_path: Path) -> None:
    cli = Cli()
    out = cli.ok(["features", "apply", _write(tmp_path)])
    assert "feature view driver_stats is version 1" in out
    listed = json.loads(cli.ok(["features", "list", "--json"]))
    assert [(r["kind"], r["name"], r["version"]) for r in listed] == [
        ("entity", "driver", 1),
        ("feature_service", "ranker", 1),
        ("feature_view", "driver_stats", 1),
    ]
    table = cli.ok(["features", "list"])
    assert "rating from stats.parquet, ttl 3600s" in table
    shown = cli.ok(["features", "show", "driver_stats"])
    assert "rating (float64)" in shown
    assert "3600s" in shown
    assert json.loads(cli.ok(["features", "show", "ranker", "--json"]))["kind"] == (
        "feature_service"
    )


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cli = Cli()
    cli.ok(["features", "apply", _write(tmp_path)])
    cli.fails(["features", "apply", _write(tmp_path, "string")], "incompatible change")
    assert "version 2" in cli.ok(["features", "apply", _write(tmp_path, "string"), "--force"])
    cli.fails(["features", "show", "nope"], "nope")
    cli.fails(["features", "apply", "no_such_module:X"], "cannot load")
    cli.fails(["features", "apply", "nocolon"], "must look like")
