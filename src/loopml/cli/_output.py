"""Output helpers shared by every command group: tables or JSON, times, sizes and numbers.

Human output goes through rich (colour only on a terminal, and ``NO_COLOR`` is honoured by
rich itself); ``--json`` output is written with :mod:`json` straight to stdout so that it
stays machine-readable whatever the terminal width.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loopml.entities._json import jsonable

#: Characters of a run id shown in tables; ``loopml`` accepts such prefixes back.
SHORT_ID_LENGTH = 8

STATUS_STYLES = {
    "RUNNING": "bold blue",
    "FINISHED": "green",
    "FAILED": "bold red",
    "KILLED": "yellow",
}

Justify = Literal["left", "center", "right"]
Cell = str | Text


def stdout_console() -> Console:
    """Return a console on the current ``sys.stdout``.

    A new console per call follows ``sys.stdout`` when it is swapped (tests, redirection)
    and re-reads the terminal width.
    """
    return Console(file=sys.stdout, highlight=False)


def stderr_console() -> Console:
    """Return a console on the current ``sys.stderr``."""
    return Console(file=sys.stderr, highlight=False)


def print_error(message: str) -> None:
    """Print ``error: <message>`` in red on stderr, on one line whatever the width."""
    text = Text("error: ", style="bold red")
    text.append(" ".join(str(message).splitlines()), style="red")
    stderr_console().print(text, soft_wrap=True)


def print_warning(message: str) -> None:
    """Print ``warning: <message>`` in yellow on stderr."""
    text = Text("warning: ", style="bold yellow")
    text.append(message)
    stderr_console().print(text, soft_wrap=True)


def print_success(message: str) -> None:
    """Print a confirmation line on stdout (green on a terminal)."""
    stdout_console().print(Text(message, style="green"), soft_wrap=True)


def print_note(message: str, *, err: bool = False) -> None:
    """Print a dim side remark (on stderr with ``err=True``, to keep stdout clean)."""
    console = stderr_console() if err else stdout_console()
    console.print(Text(message, style="dim"), soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented, strictly valid JSON on stdout.

    Parameters
    ----------
    data : Any
        JSON-able data; non-finite floats are written as strings (as the REST API does).
    """
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Column:
    """One column of a table rendered by :func:`render_table`.

    Attributes
    ----------
    key : str
        Key of the value in each record.
    header : str
        Column title.
    justify : {"left", "center", "right"}
        Alignment of the cells.
    style : str or None
        Rich style of the cells.
    header_style : str or None
        Rich style of the title.
    max_width : int or None
        Longest cell before rich shortens it with an ellipsis.
    no_wrap : bool
        Never wrap the cells (ids, times, numbers): rich narrows other columns first.
    fmt : callable or None
        Turns a value into the cell text; :func:`format_value` by default.
    """

    key: str
    header: str
    justify: Justify = "left"
    style: str | None = None
    header_style: str | None = None
    max_width: int | None = None
    no_wrap: bool = False
    fmt: Callable[[Any], Cell] | None = None

    def cell(self, record: Mapping[str, Any]) -> Cell:
        """Format this column's value of ``record``."""
        value = record.get(self.key)
        return (self.fmt or format_value)(value)


def render_table(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
    console: Console | None = None,
) -> None:
    """Print records as a rich table, one row per record.

    Parameters
    ----------
    records : sequence of mapping
        The rows; missing keys show as ``-``.
    columns : sequence of Column
        Which values to show, in order.
    title, caption : str, optional
        Text above and below the table.
    console : Console, optional
        Where to print; stdout by default.
    """
    table = Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        expand=False,
    )
    for column in columns:
        table.add_column(
            column.header,
            justify=column.justify,
            style=column.style,
            header_style=column.header_style,
            max_width=column.max_width,
            overflow="ellipsis" if column.max_width else "fold",
            no_wrap=column.no_wrap,
        )
    for record in records:
        table.add_row(*(column.cell(record) for column in columns))
    (console or stdout_console()).print(table)


def render_pairs(pairs: Iterable[tuple[str, Cell]], *, title: str | None = None) -> None:
    """Print ``label: value`` pairs as a borderless two-column table."""
    table = Table(
        title=title,
        title_justify="left",
        show_header=False,
        box=None,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in pairs:
        table.add_row(label, value)
    stdout_console().print(table)


def emit(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    title: str | None = None,
    empty_message: str | None = None,
) -> None:
    """Print records as JSON (all keys) or as a table (the given columns).

    Parameters
    ----------
    records : sequence of mapping
        JSON-able records.
    columns : sequence of Column
        Columns of the table form.
    as_json : bool
        Write a JSON array instead of a table.
    title : str, optional
        Table title.
    empty_message : str, optional
        Printed (dim) instead of an empty table.
    """
    if as_json:
        print_json(list(records))
        return
    if not records and empty_message:
        print_note(empty_message)
        return
    render_table(records, columns, title=title)


# -- formatting ---------------------------------------------------------------------------
def format_value(value: Any) -> Cell:
    """Format a cell: ``-`` for missing values, compact numbers, text as is."""
    if value is None or value == "":
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


def format_number(value: float) -> str:
    """Format a metric value compactly: at most 4 decimals, scientific when very large/small.

    Examples
    --------
    >>> format_number(0.956140350877193)
    '0.9561'
    >>> format_number(20.0)
    '20'
    >>> format_number(1.5e-07)
    '1.500e-07'
    """
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if number == 0:
        return "0"
    magnitude = abs(number)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{number:.3e}"
    if number.is_integer():
        return str(int(number))
    return f"{number:.4f}".rstrip("0").rstrip(".")


def format_time(time_ms: int | None, *, seconds: bool = False) -> str:
    """Format epoch milliseconds as local time, ``YYYY-MM-DD HH:MM[:SS]``; ``-`` for None."""
    if time_ms is None:
        return "-"
    moment = datetime.fromtimestamp(time_ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_age(time_ms: int | None, now_ms: int | None = None) -> str:
    """Format how long ago an epoch-ms instant was: ``12s ago``, ``5m ago``, ``3h ago``, ``4d ago``.

    Instants older than 30 days (or in the future) are shown as a date instead.

    Examples
    --------
    >>> format_age(0, 90_000)
    '1m ago'
    """
    if time_ms is None:
        return "-"
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    seconds = (now - time_ms) // 1000
    if seconds < 0 or seconds >= 30 * 86400:
        return datetime.fromtimestamp(time_ms / 1000).astimezone().strftime("%Y-%m-%d")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    """Format the time between two epoch-ms instants (until now when ``end_ms`` is None).

    Examples
    --------
    >>> format_duration(0, 1_500)
    '1.5s'
    >>> format_duration(0, 184_000)
    '3m 04s'
    >>> format_duration(0, 7_500_000)
    '2h 05m'
    """
    if start_ms is None:
        return "-"
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    total = max(0, end - start_ms) / 1000
    if total < 10:
        return f"{total:.1f}s"
    if total < 60:
        return f"{total:.0f}s"
    minutes, secs = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_size(size: int | None) -> str:
    """Format a byte count with binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def status_text(status: str, *, deleted: bool = False) -> Text:
    """Return a run status coloured by outcome, marked when the run is deleted."""
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    if deleted:
        text.append(" (deleted)", style="dim")
    return text


def short_id(run_id: str) -> str:
    """The first characters of a run id, as tables show it."""
    return run_id[:SHORT_ID_LENGTH]


_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.\-]*://[^/:@]*:)(?P<secret>[^/@]*)@")


def mask_uri(uri: str) -> str:
    """Hide the password of a URI such as ``postgresql+psycopg://user:secret@host/db``.

    Examples
    --------
    >>> mask_uri("postgresql+psycopg://loop:hunter2@db:5432/loopml")
    'postgresql+psycopg://loop:***@db:5432/loopml'
    """
    return _URI_PASSWORD.sub(lambda m: f"{m.group('head')}***@", uri)
