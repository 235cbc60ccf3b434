"""A self-contained HTML page of a dataset profile and, optionally, its validation result.

The page embeds plotly.js once, inline, and loads nothing from the network, so it opens
offline and can be attached to a run or mailed. Every string that comes from the data or the
caller (title, column names, values, anomaly messages) is HTML-escaped; the chart data is
embedded as JSON with ``<``, ``>`` and ``&`` written as unicode escapes, so no value can close
the script element.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from loopml.data._html import render_page
from loopml.data.profile import ColumnProfile, DatasetProfile, Scalar

__all__ = ["render_profile_html"]

_LABEL_CHARS = 40
_SEVERITIES = ("error", "warning", "info")
_QUANTILE_NAMES = {0.5: "median"}

# The rules of this page's own elements; the shared ones are in loopml.data._html.
_CSS = """
table { border-collapse: collapse; }
th, td { text-align: left; padding: 4px 12px 4px 0; vertical-align: top; }
table.grid { width: 100%; }
table.grid th { border-bottom: 2px solid var(--line); }
table.grid td { border-bottom: 1px solid var(--line); word-break: break-word; }
table.stats th { color: var(--muted); font-weight: normal; white-space: nowrap; }
.column-body { display: flex; flex-wrap: wrap; gap: 16px; }
.column-body table { flex: 0 0 280px; }
.chart { flex: 1 1 520px; min-height: 300px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         font-weight: normal; background: #e8eefc; color: var(--accent); vertical-align: middle; }
.badge.approx { background: #fff4e0; color: var(--warn); }
.passed { color: var(--good); font-weight: 600; }
.failed, .sev-error { color: var(--bad); font-weight: 600; }
.sev-warning { color: var(--warn); font-weight: 600; }
a { color: var(--accent); text-decoration: none; }
"""


def render_profile_html(
    profile: DatasetProfile, *, title: str, validation: dict[str, Any] | None = None
) -> str:
    """Render a dataset profile as one self-contained HTML page.

    Parameters
    ----------
    profile : DatasetProfile
        What :func:`loopml.data.profile.profile_table` returned.
    title : str
        The page title (escaped).
    validation : dict, optional
        A validation result: ``{"passed": bool, "anomalies": [{"column", "kind",
        "severity", "message"}, ...], ...}``; when given, the page lists its anomalies.

    Returns
    -------
    str
        The HTML document, with plotly.js inline and no external resources.
    """
    figures: list[dict[str, Any]] = []
    sections = []
    for index, column in enumerate(profile.columns):
        figure = _figure(column, f"chart-{index}")
        if figure is not None:
            figures.append(figure)
        sections.append(_column_section(column, index, has_chart=figure is not None))
    anchors = {c.name: f"column-{i}" for i, c in enumerate(profile.columns)}
    return render_page(
        title=title,
        subtitle="Dataset profile",
        css=_CSS,
        sections=[
            _overview(profile),
            "" if validation is None else _validation(validation, anchors),
            *sections,
        ],
        figures=figures,
    )


def _overview(profile: DatasetProfile) -> str:
    cells = profile.num_rows * profile.num_columns
    share = profile.missing_cells / cells if cells else 0.0
    rows = [
        ("Rows", _number(profile.num_rows)),
        ("Columns", _number(profile.num_columns)),
        ("Missing cells", f"{_number(profile.missing_cells)} ({share:.1%})"),
    ]
    if profile.approximate:
        rows.append(
            ("Estimates", f"some figures come from a sample of {_number(profile.sample_size)}")
        )
    summary = "".join(
        f'<tr><td><a href="#column-{i}">{_text(c.name)}</a></td><td>{_text(c.logical_type)}</td>'
        f'<td class="num">{c.missing_rate:.1%}</td><td class="num">{_number(c.distinct)}</td></tr>'
        for i, c in enumerate(profile.columns)
    )
    return (
        '<section class="card"><h2>Overview</h2>'
        f"{_stats_table(rows)}"
        '<table class="grid" style="margin-top:12px"><thead><tr><th>Column</th><th>Type</th>'
        '<th class="num">Missing</th><th class="num">Distinct</th></tr></thead>'
        f"<tbody>{summary}</tbody></table></section>"
    )


def _validation(validation: dict[str, Any], anchors: dict[str, str]) -> str:
    passed = bool(validation.get("passed"))
    status = (
        '<span class="passed">passed</span>' if passed else '<span class="failed">failed</span>'
    )
    anomalies = validation.get("anomalies")
    if not isinstance(anomalies, list):
        anomalies = []
    rows = []
    for anomaly in anomalies:
        item = anomaly if isinstance(anomaly, dict) else {"message": anomaly}
        column = str(item.get("column") or "")
        anchor = anchors.get(column)
        cell = f'<a href="#{anchor}">{_text(column)}</a>' if anchor else _text(column)
        severity = str(item.get("severity") or "")
        css = f"sev-{severity}" if severity in _SEVERITIES else ""
        rows.append(
            f"<tr><td>{cell}</td><td>{_text(str(item.get('kind') or ''))}</td>"
            f'<td class="{css}">{_text(severity)}</td>'
            f"<td>{_text(str(item.get('message') or ''))}</td></tr>"
        )
    body = (
        '<table class="grid anomalies"><thead><tr><th>Column</th><th>Kind</th>'
        f"<th>Severity</th><th>Message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No anomalies.</p>'
    )
    summary = validation.get("summary")
    note = f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'}"
    if isinstance(summary, str) and summary:
        note = _text(summary)
    return (
        f'<section class="card" id="validation"><h2>Validation: {status}</h2>'
        f'<p class="muted">{note}</p>{body}</section>'
    )


def _column_section(column: ColumnProfile, index: int, *, has_chart: bool) -> str:
    arrow_type, logical_type = _text(column.arrow_type), _text(column.logical_type)
    badges = f'<span class="badge" title="Arrow type: {arrow_type}">{logical_type}</span>'
    if column.approximate:
        badges += ' <span class="badge approx" title="some figures are estimates">approx.</span>'
    chart = f'<div class="chart" id="chart-{index}"></div>' if has_chart else ""
    return (
        f'<section class="card column" id="column-{index}">'
        f"<h2>{_text(column.name)} {badges}</h2>"
        f'<div class="column-body">{_stats_table(_stats(column))}{chart}</div></section>'
    )


def _stats(column: ColumnProfile) -> list[tuple[str, str]]:
    rows = [
        ("Count", _number(column.count)),
        ("Missing", f"{_number(column.missing)} ({column.missing_rate:.1%})"),
        ("Distinct", _number(column.distinct)),
    ]
    if column.infinite:
        rows.append(("Infinite", _number(column.infinite)))
    if column.logical_type == "bool":
        rows.append(("Share true", "–" if column.mean is None else f"{float(column.mean):.1%}"))
    if column.histogram is not None:
        std = column.std
        spread = _duration(std) if column.logical_type == "datetime" else _value(std)
        rows += [("Mean", _value(column.mean)), ("Std", spread), ("Min", _value(column.min))]
        rows += [(_quantile_name(q), _value(v)) for q, v in column.quantiles]
        rows.append(("Max", _value(column.max)))
    if column.top_values and column.logical_type in ("string", "category"):
        value, count = column.top_values[0]
        rows.append(("Most frequent", f"{_value(value)} ({_number(count)})"))
    return rows


def _stats_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f'<tr><th>{name}</th><td class="num">{value}</td></tr>' for name, value in rows)
    return f'<table class="stats">{body}</table>'


def _figure(column: ColumnProfile, element: str) -> dict[str, Any] | None:
    """The plotly data and layout of a column's chart, or None when there is nothing to plot."""
    layout: dict[str, Any] = {
        "margin": {"l": 50, "r": 10, "t": 10, "b": 60},
        "height": 300,
        "bargap": 0.05,
        "yaxis": {"title": {"text": "rows"}},
    }
    if column.histogram is not None and column.histogram.counts:
        edges = column.histogram.edges
        if column.logical_type == "datetime":
            positions = [_epoch_ms(e) for e in edges]
            layout["xaxis"] = {"type": "date"}
        else:
            positions = [float(e) for e in edges]
        left, right = positions[:-1], positions[1:]
        trace = {
            "type": "bar",
            "x": [_finite(a / 2 + b / 2) for a, b in zip(left, right, strict=True)],
            "width": [_finite(b - a) for a, b in zip(left, right, strict=True)],
            "y": list(column.histogram.counts),
            "customdata": [
                [_text(_plain(a)), _text(_plain(b))]
                for a, b in zip(edges[:-1], edges[1:], strict=True)
            ],
            "hovertemplate": "%{customdata[0]} to %{customdata[1]}<br>%{y} rows<extra></extra>",
            "marker": {"color": "#2f6fde"},
        }
        return {"id": element, "data": [trace], "layout": layout}
    if column.top_values:
        labels: list[str] = []
        for value, _ in column.top_values:  # distinct labels, or plotly would merge the bars
            label, copy = _text(_label(value)), 1
            while label in labels:
                copy += 1
                label = _text(f"{_label(value)} ({copy})")
            labels.append(label)
        trace = {
            "type": "bar",
            "x": labels,
            "y": [count for _, count in column.top_values],
            "hovertemplate": "%{x}<br>%{y} rows<extra></extra>",
            "marker": {"color": "#2f6fde"},
        }
        layout["xaxis"] = {"type": "category", "automargin": True}
        return {"id": element, "data": [trace], "layout": layout}
    return None


def _epoch_ms(text: Scalar) -> float:
    """Milliseconds since the epoch of an ISO 8601 datetime (as the profile writes them)."""
    stamp = np.datetime64(str(text).rstrip("Z"), "us")
    return float(stamp.astype(np.int64)) / 1e3


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _plain(value: Scalar) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _label(value: Scalar) -> str:
    text = "(empty)" if value == "" else str(value)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _number(value: int) -> str:
    return f"{value:,}"


def _value(value: Scalar) -> str:
    """A figure as escaped text: thousands separators for ints, 6 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _number(value)
    if isinstance(value, float):
        return _text(f"{value:.6g}")
    return _text(str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    for unit, size in (("days", 86_400.0), ("hours", 3_600.0), ("minutes", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds:.4g} s"


def _quantile_name(q: float) -> str:
    return _QUANTILE_NAMES.get(q, f"p{100 * q:g}")
