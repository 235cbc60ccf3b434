"""Reporting helpers the side-by-side benchmarks share: machine facts and tables."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


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
