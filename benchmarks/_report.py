"""Reporting helpers the side-by-side benchmarks share: machine facts and tables."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORK_DIR = BENCH_DIR / ".work"
DEFAULT_RESULTS = BENCH_DIR / "RESULTS.md"

#: A table: its header and its rows of formatted cells.
Table = tuple[list[str], list[list[str]]]

#: What a new results file starts with.
RESULTS_PREAMBLE = (
    "# Benchmark results\n\nMeasured numbers only, appended by the `--write` option of the "
    "scripts in this folder. See `README.md` for the method.\n"
)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def say(msg: str) -> None:
    """Print progress to stderr so stdout stays the table."""
    print(msg, file=sys.stderr, flush=True)


def render_plain(head: list[str], rows: list[list[str]]) -> str:
    """Render a table as aligned plain text."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    for r in rows:
        out.append(
            "  ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


def render_markdown(head: list[str], rows: list[list[str]]) -> str:
    """Render a table as GitHub Markdown (first column left, the rest right-aligned)."""
    out = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---", *["---:"] * (len(head) - 1)]) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def load_at_start() -> float:
    """Return the 1-minute load average, warning when other work will make numbers noisy."""
    load = os.getloadavg()[0]
    if load > 0.5:
        say(
            f"warning: 1-minute load average is {load:.2f} before starting; other "
            "processes compete for the CPU and make the numbers noisier"
        )
    return load


def load_span(load_start: float) -> str:
    """Describe the load average at the start and now, e.g. ``0.12 at start, 1.03 at the end``."""
    return f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at the end"


def run_facts(
    versions: str, load: str, took: str, argv: Sequence[str], extra: Sequence[str] = ()
) -> list[str]:
    """The bullet lines under a results heading: machine, versions, load and command."""
    return [
        f"- Machine: {os.cpu_count()} cores (os.cpu_count()), {cpu_model()}, {platform.platform()}",
        f"- Versions: {versions}",
        *extra,
        f"- 1-minute load average: {load}; benchmark took {took}",
        f"- Command: `{shlex.join(argv)}`",
    ]


def print_tables_plain(tables: Sequence[tuple[str, Table]]) -> None:
    """Print captioned tables as aligned plain text (an empty caption prints nothing)."""
    for caption, (head, rows) in tables:
        if caption:
            print(caption)
        print(render_plain(head, rows) + "\n")


def append_section(
    path: Path,
    heading: str,
    facts: Sequence[str],
    tables: Sequence[tuple[str, Table]],
    notes: Sequence[str],
) -> None:
    """Append a ``## heading`` section (facts, captioned tables, notes) to a results file."""
    parts = [] if path.exists() else [RESULTS_PREAMBLE]
    parts += [f"## {heading}\n", *facts, ""]
    for caption, (head, rows) in tables:
        if caption:
            parts.append(f"{caption}\n")
        parts.append(render_markdown(head, rows) + "\n")
    parts.extend(f"- {line}" for line in notes)
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    with path.open("a", encoding="utf-8") as fh:
        if previous and not previous.endswith("\n\n"):
            fh.write("\n" if previous.endswith("\n") else "\n\n")
        fh.write("\n".join(parts) + "\n")


def add_output_options(
    parser: argparse.ArgumentParser, *, keep: bool = True, raw_json: str | None = None
) -> None:
    """Add ``--work-dir``, ``--keep``, ``--write``, ``--results`` and, if named, ``--json``.

    ``raw_json`` says what ``--json PATH`` dumps (e.g. ``"the raw timings"``); without it the
    script has no ``--json`` option.
    """
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="where data sets, temporary stores and logs go (default: benchmarks/.work)",
    )
    if keep:
        parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    parser.add_argument("--write", action="store_true", help="append the results to --results")
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="results file (default: benchmarks/RESULTS.md)",
    )
    if raw_json:
        parser.add_argument(
            "--json", type=Path, default=None, metavar="PATH", help=f"also dump {raw_json} as JSON"
        )


def write_raw_json(path: Path, args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """Dump ``payload`` with the machine and the command-line options as indented JSON."""
    data = {
        **payload,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def replace_section(
    path: Path,
    section: str,
    heading: str,
    facts: Sequence[str],
    tables: Sequence[tuple[str, Table]],
    notes: Sequence[str],
) -> None:
    """Replace the last ``## <section>`` section of a results file, or append one.

    A section belongs to ``section`` when its heading is ``section`` or starts with it
    followed by ``:`` or a space (``## Feature store: loopml vs Feast — <date>``). The new
    section, headed ``## <heading>``, is rendered by :func:`append_section` into an empty
    scratch file, so it looks exactly like the others, and spliced in where the old one
    stood; the sections of other benchmarks are left as they are.
    """
    with tempfile.TemporaryDirectory() as scratch:
        section_file = Path(scratch) / "section.md"
        section_file.write_text("", encoding="utf-8")
        append_section(section_file, heading, facts, tables, notes)
        rendered = section_file.read_text(encoding="utf-8").strip("\n") + "\n"
    if not path.exists():
        append_section(path, heading, facts, tables, notes)
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)

    def ours(line: str) -> bool:
        title = line.rstrip("\n")[3:] if line.startswith("## ") else None
        return title is not None and (
            title == section or title.startswith((f"{section}:", f"{section} "))
        )

    starts = [i for i, line in enumerate(lines) if ours(line)]
    if not starts:
        append_section(path, heading, facts, tables, notes)
        return
    start = starts[-1]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = lines[end:]
    text = "".join(lines[:start]) + rendered + ("\n" + "".join(after) if after else "")
    path.write_text(text, encoding="utf-8")
