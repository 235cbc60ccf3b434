"""The frame of a self-contained HTML report: base styles, the page, and chart data.

Both reports (the dataset profile of :mod:`loopml.data.report` and the monitor report of
:mod:`loopml.monitoring.html_report`) embed plotly.js once, inline, and load nothing from the
network, so a page opens offline and can be attached to a run or mailed. Each report supplies
its sections and plotly figures; this module writes the document around them. The title and
subtitle are HTML-escaped here; the chart data is embedded as JSON with ``<``, ``>`` and
``&`` written as unicode escapes, so no value can close the script element.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["BASE_CSS", "render_page", "script_json"]

# What every report page shares; each report appends the rules of its own elements.
BASE_CSS = """
:root { --fg: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f5f7fa; --accent: #2f6fde;
        --bad: #c62828; --warn: #b26a00; --good: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 18px; margin: 0 0 12px; word-break: break-word; }
.muted { color: var(--muted); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
        padding: 16px 20px; margin-top: 16px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

# Characters that must not appear raw inside a <script> element (and two that end a
# JavaScript line in older engines).
_SCRIPT_ESCAPES = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def script_json(value: Any) -> str:
    """Encode ``value`` as JSON that is safe inside a script element.

    Parameters
    ----------
    value : Any
        JSON-compatible data; other objects are written as their ``str``. NaN and infinity
        are refused (callers write them as ``None``).

    Returns
    -------
    str
        Compact JSON without ``<``, ``>``, ``&`` or line separators.
    """
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    for raw, escaped in _SCRIPT_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def render_page(
    *,
    title: str,
    subtitle: str,
    css: str,
    sections: Sequence[str],
    figures: Sequence[dict[str, Any]],
) -> str:
    """Write one self-contained HTML document around a report's sections and charts.

    Parameters
    ----------
    title : str
        The page title and heading (escaped here).
    subtitle : str
        The line under the heading (escaped here).
    css : str
        The report's own style rules, appended to :data:`BASE_CSS`.
    sections : sequence of str
        HTML fragments, already escaped, in page order; empty ones are left out.
    figures : sequence of dict
        Plotly figures ``{"id", "data", "layout"}``; each is drawn into the element whose
        id is ``id``.

    Returns
    -------
    str
        The HTML document, with plotly.js inline and no external resources.
    """
    from plotly.offline import get_plotlyjs

    heading = html.escape(title, quote=True)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{heading}</title>",
        f"<style>{BASE_CSS}{css}</style></head><body><main>",
        f'<header><h1>{heading}</h1><p class="muted">{html.escape(subtitle, quote=True)}</p>'
        "</header>",
        *sections,
        "</main>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        '<script type="text/javascript">',
        f"const figures = {script_json(list(figures))};",
        "for (const f of figures) {",
        "  Plotly.newPlot(f.id, f.data, f.layout, {displaylogo: false, responsive: true});",
        "}",
        "</script></body></html>",
    ]
    return "\n".join(part for part in parts if part)
