"""The monitoring HTML report: self-contained, with the plots and the verdict table."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import MODEL, NOW, FakeSource, clock, features_frame, register_model, window

import loopml as lm
from loopml.config import load_settings
from loopml.monitoring.alerts import Notifier
from loopml.monitoring.html_report import render_report
from loopml.monitoring.metrics import MonitorMetrics
from loopml.monitoring.monitors import Monitor
from loopml.monitoring.service import MonitorService
from loopml.store.sql.monitors import SqlMonitorStore


class Page(HTMLParser):
    """Collects element ids, script sources and table cells; fails on unbalanced tags."""

    VOID = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.cells: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag == "script" and values.get("src"):
            self.sources.append(str(values["src"]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "td" in self.stack:
            self.cells.append(data)


def _parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == []
    return page


def _service(moment: object = NOW) -> MonitorService:
    return MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=lambda kind, payload: None),
        metrics=MonitorMetrics(),
        clock=clock(moment),  # type: ignore[arg-type]
    )


def test_report_parses_and_holds_every_plot(tmp_path: Path) -> None:
    register_model()
    lm.monitoring.save(Monitor(MODEL, features=["tenure", "charges", "plan"]))
    traffic = features_frame(300, 1)
    labelled = window(traffic, labels=(traffic["charges"] > 75).astype(int).to_numpy())
    for hour, frame in enumerate([labelled, window(features_frame(300, 2, shift=1.5))]):
        _service(NOW + timedelta(hours=hour)).run(MODEL, source=FakeSource([frame]))

    path = _service().write_report(MODEL, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    page = _parse(text)
    assert {"dist-0", "dist-1", "dist-2"} <= set(page.ids)
    assert {"drift-history", "quality-history", "latency-history", "verdicts"} <= set(page.ids)
    assert page.sources == []  # plotly.js is inline: the file opens offline
    assert "Plotly.newPlot" in text and len(text) > 1_000_000
    assert "drift_share >= 0.3" in page.cells  # the verdict table (the parser unescapes)
    assert "alert" in page.cells and "charges" in page.cells
    figures = json.loads(re.search(r"const figures = (.*);", text).group(1))  # type: ignore[union-attr]
    quality = next(f for f in figures if f["id"] == "quality-history")
    assert {t["name"] for t in quality["data"]} >= {"accuracy", "f1"}
    drift = next(f for f in figures if f["id"] == "drift-history")
    assert drift["data"][0]["y"] == [0.0, pytest.approx(1 / 3)]
    assert not list(tmp_path.joinpath("out").glob(".report.html.*"))  # no temporary file left
    written = lm.monitoring.report(MODEL, tmp_path / "fluent.html")  # the SDK entry point
    assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_escapes_names_and_handles_a_monitor_that_never_ran() -> None:
    status = {
        "monitor": "m",
        "model": "<script>alert(1)</script>",
        "verdict": "never_run",
        "last_run": None,
        "firing": [],
    }
    text = render_report(status, [])
    assert "<script>alert(1)</script>" not in text
    assert "has not run yet" in text
    _parse(text)


def test_feature_names_cannot_break_out_of_the_script() -> None:
    data = pd.DataFrame({"</script><b>x": range(300)}).astype(float)
    lm.datasets.register("odd", data)
    traffic = window(features_frame(300, 2)).assign(**{"</script><b>x": data.iloc[:, 0] + 50})
    service = _service()
    service.run(Monitor(MODEL, reference="odd@v1", task="regression"), source=FakeSource([traffic]))
    text = service.render_report(MODEL)
    assert text.count("</script>") == 2  # the two script elements' own end tags
    _parse(text)
