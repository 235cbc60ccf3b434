"""How the continuous-training demo tells what happened: event lines, the table, the report.

``demo.py`` records one :class:`Week`-like object per replayed week (its accuracies, the
monitor's view and the loop events of the controller pass that closed it); this module turns
them into the progress lines, the monthly summary table and the HTML report.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import time
import uuid
from pathlib import Path
from typing import Any

#: The summary table's columns: (header, field of the monthly frame).
COLUMNS = (
    ("month", "month"),
    ("hours", "requests"),
    ("trained once", "trained_once"),
    ("served", "served"),
    ("triggers", "triggers"),
    ("retrains", "retrains"),
    ("promoted", "promotions"),
    ("rejected", "rejected"),
)


def describe_event(event: Any) -> str:
    """One line for a loop event."""
    evidence = event.evidence
    trigger = evidence.get("trigger") or {}
    if event.kind == "triggered":
        detail = trigger.get("rule") or trigger.get("check") or trigger.get("reason") or ""
        return f"triggered by {trigger.get('type', '?')} ({detail})"
    if event.kind.startswith("skipped"):
        what = trigger.get("type", "?")
        return f"{what} trigger {event.kind.replace('_', ' ')}: {evidence.get('reason', '')}"
    if event.kind == "window_built":
        return (
            f"window {evidence.get('window_dataset')}: {evidence.get('train_rows')} hours to "
            f"train, {evidence.get('holdout_rows')} to judge ({str(evidence.get('start'))[:10]} "
            f"to {str(evidence.get('end'))[:10]})"
        )
    if event.kind == "trained":
        return f"trained version {evidence.get('version')} in {evidence.get('duration_s', 0):.1f}s"
    if event.kind in ("gate_passed", "gate_rejected"):
        candidate = (evidence.get("candidate_metrics") or {}).get("accuracy", math.nan)
        champion = (evidence.get("champion_metrics") or {}).get("accuracy", math.nan)
        verdict = "passed" if event.kind == "gate_passed" else "rejected"
        return (
            f"gate {verdict}: accuracy on the newest hours {candidate:.3f}, champion {champion:.3f}"
        )
    if event.kind == "canary_started":
        return (
            f"canary: version {evidence.get('to_version')} gets {evidence.get('share', 0):.0%} "
            f"of the traffic, version {evidence.get('from_version')} the rest"
        )
    if event.kind in ("promoted", "rolled_back"):
        verb = "promoted" if event.kind == "promoted" else "rolled back"
        return (
            f"{verb}: version {evidence.get('to_version')} "
            f"(was {evidence.get('from_version')}); {evidence.get('reason', '')}"
        )
    if event.kind == "failed":
        return f"failed at {evidence.get('stage')}: {evidence.get('error')}"
    return str(event.kind)


def summarize(weeks: list[Any]) -> Any:
    """One row per month: both accuracies, triggers, retrains, promotions and rejections.

    Accuracies are over the month's requests; a week counts in the month it starts in, and
    its loop events (taken when it ends) with it.
    """
    import pandas as pd

    rows = []
    for week in weeks:
        kinds = [e.kind for e in week.events]
        rows.append(
            {
                "month": f"{week.start:%Y-%m}",
                "requests": week.requests,
                "served_hits": week.served_accuracy * week.requests,
                "static_hits": week.static_accuracy * week.requests,
                "alerts": len(week.alerts),
                "triggers": sum(k == "triggered" or k.startswith("skipped") for k in kinds),
                "retrains": kinds.count("trained"),
                "promotions": kinds.count("promoted"),
                "rejected": kinds.count("gate_rejected") + kinds.count("rolled_back"),
            }
        )
    frame = pd.DataFrame(rows)
    monthly = frame.groupby("month", sort=True).sum(numeric_only=True)
    monthly["served"] = monthly["served_hits"] / monthly["requests"]
    monthly["trained_once"] = monthly["static_hits"] / monthly["requests"]
    return monthly.drop(columns=["served_hits", "static_hits"]).reset_index()


def _cells(row: Any) -> list[str]:
    values = []
    for _, key in COLUMNS:
        value = getattr(row, key)
        if isinstance(value, numbers.Integral):
            values.append(f"{int(value):,}")
        elif isinstance(value, numbers.Real):
            values.append(f"{float(value):.3f}")
        else:
            values.append(str(value))
    return values


def totals(monthly: Any) -> dict[str, Any]:
    """The whole replay in one row: request-weighted accuracies and summed counts."""
    requests = int(monthly["requests"].sum())
    return {
        "month": "all",
        "requests": requests,
        "trained_once": float((monthly["trained_once"] * monthly["requests"]).sum() / requests),
        "served": float((monthly["served"] * monthly["requests"]).sum() / requests),
        **{k: int(monthly[k].sum()) for k in ("triggers", "retrains", "promotions", "rejected")},
    }


def print_summary(console: Any, title: str, monthly: Any) -> None:
    """The monthly table, with the whole replay as its last row."""
    from types import SimpleNamespace

    from rich.table import Table

    table = Table(title=title)
    for header, key in COLUMNS:
        table.add_column(header, justify="left" if key == "month" else "right")
    for row in monthly.itertuples(index=False):
        table.add_row(*_cells(row))
    table.add_row(*_cells(SimpleNamespace(**totals(monthly))), style="bold")
    console.print(table)


def _figure(title: str, weeks: list[Any]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ends = [w.end for w in weeks]
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.65, 0.35],
        vertical_spacing=0.08,
        subplot_titles=("accuracy per week", "monitor: share of drifted features"),
    )
    figure.add_trace(
        go.Scatter(
            x=ends,
            y=[w.static_accuracy for w in weeks],
            name="trained once",
            line={"dash": "dash"},
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(x=ends, y=[w.served_accuracy for w in weeks], name="served (with the loop)"),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Bar(x=ends, y=[w.drift_share for w in weeks], name="drift share", opacity=0.6),
        row=2,
        col=1,
    )
    markers = {
        "triggered": ("triangle-up", "orange"),
        "gate_rejected": ("x", "red"),
        "promoted": ("star", "green"),
        "rolled_back": ("x", "purple"),
    }
    for kind, (symbol, color) in markers.items():
        picked = [w for w in weeks for e in w.events if e.kind == kind]
        if picked:
            figure.add_trace(
                go.Scatter(
                    x=[w.end for w in picked],
                    y=[w.served_accuracy for w in picked],
                    mode="markers",
                    marker={"symbol": symbol, "size": 13, "color": color},
                    name=kind.replace("_", " "),
                ),
                row=1,
                col=1,
            )
    figure.update_yaxes(title_text="accuracy", row=1, col=1)
    figure.update_yaxes(title_text="share", range=[0, 1], row=2, col=1)
    figure.update_layout(title=title, template="plotly_white", height=650)
    return figure


def write_report(
    path: Path, title: str, intro: str, weeks: list[Any], monthly: Any, history: list[Any]
) -> Path:
    """The timeline (accuracy, drift, loop decisions) and both tables as one HTML page.

    plotly.js is embedded, so the page opens offline; it is written to a temporary file and
    renamed, never left half-written.
    """
    from types import SimpleNamespace

    def row(cells: list[str], tag: str = "td") -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

    table = row([header for header, _ in COLUMNS], "th")
    table += "".join(row(_cells(r)) for r in monthly.itertuples(index=False))
    table += row(_cells(SimpleNamespace(**totals(monthly))))
    events = row(["time (replay)", "event", "what"], "th") + "".join(
        row(
            [
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.time / 1000)),
                e.kind,
                describe_event(e),
            ]
        )
        for e in history
    )
    plot = _figure(title, weeks).to_html(full_html=False, include_plotlyjs=True)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(intro)}</p>
{plot}
<h2>Per month</h2>
<table>{table}</table>
<h2>Loop history</h2>
<table>{events}</table>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
