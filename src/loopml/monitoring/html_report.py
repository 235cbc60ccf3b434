"""A self-contained HTML report of a monitor: verdicts, distributions, trends.

The page shows the latest run's verdict per check and firing alerts, each tested feature's
reference and current distributions, and, over the stored history, the drift scores, the
quality metrics and the latency percentiles. It embeds plotly.js inline (as the dataset
report of :mod:`loopml.data.report` does) and loads nothing from the network. Every string
from the data or the caller is HTML-escaped and the chart data is embedded as JSON with
``<``, ``>`` and ``&`` escaped, so no value can end the script element.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loopml.data._html import render_page
from loopml.monitoring.monitors import MonitorResult

__all__ = ["render_report", "write_html"]

# The rules of this page's own elements; the shared ones are in loopml.data._html.
_CSS = """
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid var(--line);
         vertical-align: top; word-break: break-word; }
th { border-bottom: 2px solid var(--line); }
.plot { min-height: 300px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 12px; }
.ok { color: var(--good); font-weight: 600; }
.alert, .firing { color: var(--bad); font-weight: 600; }
.skipped, .no_data, .never_run { color: var(--warn); font-weight: 600; }
"""
_LAYOUT: dict[str, Any] = {"margin": {"l": 50, "r": 10, "t": 30, "b": 50}, "height": 300}


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return f"{float(value):.4g}"
    return "–"


def _when(time_ms: Any) -> str:
    if not isinstance(time_ms, int | float):
        return "–"
    return datetime.fromtimestamp(time_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{_text(h)}</th>' if i in numeric else f"<th>{_text(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(value: str) -> str:
    return f'<span class="{_text(value)}">{_text(value)}</span>'


def _summary(status: dict[str, Any], latest: MonitorResult | None) -> str:
    rows = [("Monitor", _text(status.get("monitor", ""))), ("Verdict", _verdict(status["verdict"]))]
    if latest is not None:
        window = latest.window or {}
        described = (
            f"last {window['last']} rows"
            if "last" in window
            else (f"last {window.get('time', '')}")
        )
        rows += [
            ("Last run", _text(_when(latest.time))),
            ("Model version", _text(latest.version if latest.version is not None else "–")),
            ("Reference", _text(latest.reference or "–")),
            ("Window", _text(described)),
            ("Rows", f"{latest.rows:,} ({latest.labelled_rows:,} labelled)"),
            ("Drift share", _number(latest.drift_share)),
        ]
        if latest.missing:
            rows.append(("Missing in window", _text(", ".join(latest.missing))))
        for name, why in latest.skipped.items():
            rows.append((f"Not tested: {_text(name)}", _text(why)))
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<section class="card"><h2>Summary</h2><table>{body}</table></section>'


def _checks(latest: MonitorResult | None, firing: list[dict[str, Any]]) -> str:
    if latest is None:
        return ""
    rows = [
        [
            _text(c.get("name", "")),
            _number(c.get("value")),
            _number(c.get("baseline")),
            _verdict(str(c.get("verdict", ""))),
            _text(c.get("message", "")),
        ]
        for c in latest.checks
    ]
    table = _table(["Check", "Value", "Baseline", "Verdict", "Detail"], rows, {1, 2})
    alerts = ""
    if firing:
        alert_rows = [
            [_text(a.get("check", "")), _text(_when(a.get("fired_time"))), _text(a.get("message"))]
            for a in firing
        ]
        alerts = "<h2 style='margin-top:16px'>Firing alerts</h2>" + _table(
            ["Rule", "Since", "Detail"], alert_rows, set()
        )
    return f'<section class="card" id="verdicts"><h2>Verdicts</h2>{table}{alerts}</section>'


def _features(latest: MonitorResult | None, figures: list[dict[str, Any]]) -> str:
    if latest is None or not latest.features:
        return ""
    rows = []
    plots = []
    for index, (name, item) in enumerate(latest.features.items()):
        rows.append(
            [
                _text(name),
                _text(item.get("kind", "")),
                _text(item.get("method", "")),
                _number(item.get("statistic")),
                _number(item.get("p_value")),
                _number(item.get("threshold")),
                _verdict("alert" if item.get("drifted") else "ok"),
            ]
        )
        figure = _distribution_figure(name, item.get("distribution") or {}, f"dist-{index}")
        if figure is not None:
            figures.append(figure)
            plots.append(f'<div class="plot" id="dist-{index}"></div>')
    table = _table(
        ["Feature", "Kind", "Test", "Statistic", "p-value", "Threshold", "Drift"],
        rows,
        {3, 4, 5},
    )
    return (
        '<section class="card" id="features"><h2>Feature drift</h2>'
        f'{table}<div class="grid2" style="margin-top:12px">{"".join(plots)}</div></section>'
    )


def _distribution_figure(name: str, data: dict[str, Any], element: str) -> dict[str, Any] | None:
    if data.get("kind") == "numeric" and data.get("edges"):
        edges = [float(e) for e in data["edges"]]
        x: list[Any] = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    elif data.get("kind") == "categorical" and data.get("categories"):
        x = [str(c) for c in data["categories"]]
    else:
        return None
    traces = [
        {"type": "bar", "name": side, "x": x, "y": [_finite(v) for v in data.get(side) or []]}
        for side in ("reference", "current")
    ]
    layout = {
        **_LAYOUT,
        "title": {"text": name},
        "barmode": "group",
        "yaxis": {"title": {"text": "share"}},
    }
    return {"id": element, "data": traces, "layout": layout}


def _series(
    history: Sequence[MonitorResult], pick: Any, names: Sequence[str]
) -> list[dict[str, Any]]:
    ordered = sorted(history, key=lambda r: r.time)
    x = [_when(r.time).removesuffix(" UTC") for r in ordered]
    return [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            "x": x,
            "y": [_finite(pick(r, name)) for r in ordered],
        }
        for name in names
    ]


def _trends(history: Sequence[MonitorResult], figures: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    features = sorted({f for r in history for f in r.features})
    metrics = sorted({m for r in history for m in r.quality})
    quantiles = sorted({q for r in history for q in r.latency})
    charts = [
        (
            "drift-history",
            "Drift over time",
            _series(history, lambda r, n: r.drift_share, ["drift_share"])
            + _series(history, lambda r, n: (r.features.get(n) or {}).get("score"), features),
            "share / score",
        ),
        (
            "quality-history",
            "Quality over time (labelled rows)",
            _series(history, lambda r, n: r.quality.get(n), metrics),
            "value",
        ),
        (
            "latency-history",
            "Latency percentiles",
            _series(history, lambda r, n: r.latency.get(n), quantiles),
            "ms",
        ),
    ]
    divs = []
    for element, title, traces, axis in charts:
        layout = {**_LAYOUT, "title": {"text": title}, "yaxis": {"title": {"text": axis}}}
        figures.append({"id": element, "data": traces, "layout": layout})
        divs.append(f'<div class="plot" id="{element}"></div>')
    rows = [
        [
            _text(_when(r.time)),
            _text(r.version if r.version is not None else "–"),
            _verdict(r.verdict),
            f"{r.rows:,}",
            _number(r.drift_share),
            _text(", ".join(r.drifted_features) or "–"),
        ]
        for r in history
    ]
    table = _table(["Run", "Version", "Verdict", "Rows", "Drift share", "Drifted"], rows, {3, 4})
    return (
        '<section class="card" id="history"><h2>History</h2>'
        f'{"".join(divs)}<div style="margin-top:12px">{table}</div></section>'
    )


def render_report(status: dict[str, Any], history: Sequence[MonitorResult]) -> str:
    """Render a monitor's status and history as one self-contained HTML page.

    Parameters
    ----------
    status : dict
        What :meth:`~loopml.monitoring.service.MonitorService.status` returns.
    history : sequence of MonitorResult
        Stored runs, newest first.

    Returns
    -------
    str
        The HTML document, with plotly.js inline and no external resources.
    """
    latest = history[0] if history else None
    figures: list[dict[str, Any]] = []
    firing = list(status.get("firing") or [])
    sections = [
        _summary(status, latest),
        _checks(latest, firing),
        _features(latest, figures),
        _trends(history, figures),
    ]
    if latest is None:
        sections.append(
            '<section class="card"><p class="muted">The monitor has not run yet.</p></section>'
        )
    return render_page(
        title=f"Monitoring report: {status.get('model', '')}",
        subtitle=f"Generated {_when(datetime.now(timezone.utc).timestamp() * 1000)}",
        css=_CSS,
        sections=sections,
        figures=figures,
    )


def write_html(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
