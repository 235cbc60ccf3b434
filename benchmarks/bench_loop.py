#!/usr/bin/env python
"""Drift-replay benchmark: a model trained once, retrained every week, and kept by loopml.

Run it with the project's interpreter (ISLP installed, as ``make demo`` does)::

    .venv/bin/python benchmarks/bench_loop.py            # print the tables
    .venv/bin/python benchmarks/bench_loop.py --write    # and append them to RESULTS.md

The data is the hourly Bikeshare record of 2011 (``examples/demo_bikes.py``): the first
quarter is history, April to December is replayed week by week, and every approach predicts
the same hours (every hour of every week):

(a) **trained once**: the first champion (trained on the last 30 days of March), never
    retrained;
(b) **retrained every week**: at the start of each week, the demo's pipeline (the same
    tuning and model) trains on the 30 days before it, and that model predicts the week;
(c) **loopml's policy**: ``examples/demo.py`` as ``make demo`` runs it (a model server on
    127.0.0.1, prediction logging, labels through ``/feedback``, a monitor, and the loop
    controller retraining on its alerts, gating against the champion and canarying), here
    with ``--quiet``; its accuracy is that of the answers the server gave.

The targets: (c) within 2 accuracy points of (b), with at most a fifth of its retrains, and
clearly above (a). Detection delay is measured per *episode*: a run of weeks in which the
served model is more than 5 points below (b); it counts the weeks from the episode's first
week to the controller pass that triggered a retrain, and to the one that promoted a new
version (a week's labels arrive at its end, so 1 is the fastest possible).

Everything runs in one process on a fresh ``LOOPML_HOME`` under ``benchmarks/.work/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples"
WORK_DIR = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
#: Targets: accuracy points behind (b), share of (b)'s retrains, points ahead of (a).
TARGET_GAP = 0.02
TARGET_RETRAIN_SHARE = 0.2
TARGET_LEAD = 0.03
#: Weeks more than this behind (b) are a stale model (a drift episode).
STALE = 0.05

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLES))

from _report import cpu_model, render_markdown, render_plain, say  # noqa: E402


@dataclass
class Approach:
    """One way of keeping the model: its weekly accuracies and what it cost."""

    label: str
    weekly: list[float]
    retrains: int
    promotions: int | None = None
    rejected: int | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.weekly)


def load_average() -> str:
    """The 1-minute load average, where the OS has one."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "n/a"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weeks", type=int, default=None, help="replay only this many weeks")
    parser.add_argument("--trials", type=int, default=4, help="tuning trials per training")
    parser.add_argument(
        "--skip-drift-variant",
        action="store_true",
        help="leave out (c'), the policy that also retrains on feature-drift alerts",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the tuner")
    parser.add_argument("--write", action="store_true", help="append the results to RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also dump every number as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the store under .work/")
    return parser.parse_args(argv)


def run_policy(label: str, tag: str, args: argparse.Namespace, extra: list[str]) -> Any:
    """Run the demo's whole loop quietly and return its result."""
    import demo

    argv = ["--quiet", "--tag", tag, "--trials", str(args.trials), "--seed", str(args.seed)]
    if args.weeks is not None:
        argv += ["--weeks", str(args.weeks)]
    say(f"{label}: replaying with the model server and the loop controller ...")
    started = time.perf_counter()
    result = demo.main(argv + extra)
    say(f"{label}: done in {time.perf_counter() - started:.0f} s")
    return result, time.perf_counter() - started


def every_week(result: Any, args: argparse.Namespace, *, full: bool) -> Approach:
    """(b): retrain at the start of every week with the demo's pipeline; predict the week.

    Without ``full`` it trains on exactly the rows a loop retrain at that moment trains on
    (the 30-day window less its newest fifth, which the loop holds out to judge the
    candidate); with ``full``, on the whole window.
    """
    import demo
    import demo_bikes as bikes
    import pandas as pd

    import loopml as lm

    data = bikes.load_bikeshare()
    times = data[bikes.TIMESTAMP]
    weekly: list[float] = []
    name = "bench-every-week-full" if full else "bench-every-week"
    started = time.perf_counter()
    for week in result.weeks:
        train_part, holdout = demo.window_of(data[times < week.start])
        rows = pd.concat([train_part, holdout], ignore_index=True) if full else train_part
        version = lm.datasets.register(name, rows, profile=False)
        trained = bikes.train(dataset=version.uri, trials=args.trials, seed=args.seed)
        model = lm.models.load(trained["model_uri"])
        weekly.append(bikes.accuracy(model, data[(times >= week.start) & (times < week.end)]))
        say(f"{name} week of {week.start:%Y-%m-%d}: accuracy {weekly[-1]:.3f}")
    label = (
        "(b+) retrained every week, whole window"
        if full
        else "(b) retrained every week, the loop's training rows"
    )
    return Approach(label, weekly, retrains=len(weekly), seconds=time.perf_counter() - started)


def episodes(served: list[float], oracle: list[float], weeks: list[Any]) -> list[dict[str, Any]]:
    """Drift episodes of a policy and how long it took to trigger and to promote a retrain."""
    found: list[dict[str, Any]] = []
    stale = [o - s > STALE for s, o in zip(served, oracle, strict=True)]
    index = 0
    while index < len(stale):
        if not stale[index]:
            index += 1
            continue
        onset = index
        while index < len(stale) and stale[index]:
            index += 1
        triggered = promoted = None
        for later in range(onset, len(weeks)):
            kinds = [e.kind for e in weeks[later].events]
            if triggered is None and "triggered" in kinds:
                triggered = later - onset + 1
            if "promoted" in kinds:
                promoted = later - onset + 1
                break
        found.append(
            {
                "onset": f"{weeks[onset].start:%Y-%m-%d}",
                "weeks_stale": index - onset,
                "weeks_to_trigger": triggered,
                "weeks_to_promotion": promoted,
            }
        )
    return found


def from_result(label: str, result: Any, oracle: list[float], seconds: float) -> Approach:
    kinds = [e.kind for e in result.history]
    served = [w.served_accuracy for w in result.weeks]
    return Approach(
        label,
        served,
        retrains=kinds.count("trained"),
        promotions=kinds.count("promoted"),
        rejected=kinds.count("gate_rejected") + kinds.count("rolled_back"),
        episodes=episodes(served, oracle, result.weeks),
        seconds=seconds,
    )


def delays(approach: Approach) -> str:
    """``median trigger / median promotion`` delay in weeks, and unrecovered episodes."""
    if not approach.episodes:
        return "no episode"
    trig = [e["weeks_to_trigger"] for e in approach.episodes if e["weeks_to_trigger"]]
    prom = [e["weeks_to_promotion"] for e in approach.episodes if e["weeks_to_promotion"]]
    text = (
        f"{len(approach.episodes)} episode(s): trigger "
        f"{f'{statistics.median(trig):g}' if trig else '-'}, promotion "
        f"{f'{statistics.median(prom):g}' if prom else '-'} week(s) (median)"
    )
    missed = sum(1 for e in approach.episodes if not e["weeks_to_promotion"])
    return text + (f"; {missed} without a promotion" if missed else "")


def tables(approaches: list[Approach], weeks: list[Any]) -> tuple[list[str], list[list[str]]]:
    oracle = next(a for a in approaches if a.label.startswith("(b)"))
    head = ["Approach", "Mean weekly accuracy", "vs (b)", "Retrains", "Promoted", "Delay"]
    rows = []
    for approach in approaches:
        rows.append(
            [
                approach.label,
                f"{approach.mean:.4f}",
                f"{(approach.mean - oracle.mean) * 100:+.1f} pts",
                f"{approach.retrains}",
                "-" if approach.promotions is None else str(approach.promotions),
                delays(approach) if approach.promotions is not None else "-",
            ]
        )
    return head, rows


def monthly(approaches: list[Approach], weeks: list[Any]) -> tuple[list[str], list[list[str]]]:
    """Mean weekly accuracy per month (a week counts in the month it starts in)."""
    months = sorted({f"{w.start:%Y-%m}" for w in weeks})
    head = ["Month", *[a.label.split(" ")[0] for a in approaches]]
    rows = []
    for month in months:
        picked = [i for i, w in enumerate(weeks) if f"{w.start:%Y-%m}" == month]
        rows.append(
            [month, *[f"{statistics.fmean(a.weekly[i] for i in picked):.3f}" for a in approaches]]
        )
    return head, rows


def verdicts(approaches: list[Approach]) -> list[str]:
    once = approaches[0]
    oracle = next(a for a in approaches if a.label.startswith("(b)"))
    lines = []
    for policy in approaches[3:]:
        gap = oracle.mean - policy.mean
        share = policy.retrains / oracle.retrains
        lead = policy.mean - once.mean
        checks = [
            (gap <= TARGET_GAP, f"{gap * 100:.1f} pts behind (b) (target <= {TARGET_GAP * 100:g})"),
            (
                share <= TARGET_RETRAIN_SHARE,
                f"{policy.retrains} of (b)'s {oracle.retrains} retrains = {share:.0%} "
                f"(target <= {TARGET_RETRAIN_SHARE:.0%})",
            ),
            (
                lead >= TARGET_LEAD,
                f"{lead * 100:+.1f} pts over (a) (target >= +{TARGET_LEAD * 100:g})",
            ),
        ]
        met = all(ok for ok, _ in checks)
        detail = "; ".join(f"{'met' if ok else 'NOT met'}: {text}" for ok, text in checks)
        lines.append(f"{policy.label}: targets {'met' if met else 'NOT met'} ({detail})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = load_average()
    if load_start != "n/a" and float(load_start) > 0.5:
        say(f"warning: 1-minute load average is {load_start}; timings will be noisy")
    home = WORK_DIR / f"loop-{uuid.uuid4().hex[:8]}"
    for name in [k for k in os.environ if k.startswith("LOOPML_")]:
        del os.environ[name]
    os.environ["LOOPML_HOME"] = str(home)
    try:
        policy, policy_s = run_policy("(c) loopml policy", "bench", args, [])
        oracle = every_week(policy, args, full=False)
        upper = every_week(policy, args, full=True)
        once = Approach("(a) trained once", [w.static_accuracy for w in policy.weeks], retrains=0)
        approaches = [
            once,
            oracle,
            upper,
            from_result("(c) loopml policy: accuracy alerts", policy, oracle.weekly, policy_s),
        ]
        if not args.skip_drift_variant:
            drift, drift_s = run_policy("(c') drift too", "benchdrift", args, ["--drift-trigger"])
            approaches.append(
                from_result(
                    "(c') loopml policy: accuracy and drift alerts", drift, oracle.weekly, drift_s
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    head, rows = tables(approaches, policy.weeks)
    month_head, month_rows = monthly(approaches, policy.weeks)
    lines = verdicts(approaches)
    print()
    print(render_plain(head, rows))
    print()
    print(render_plain(month_head, month_rows))
    print()
    for line in lines:
        print(line)
    for approach in approaches[3:]:
        for episode in approach.episodes:
            print(f"  {approach.label.split(' ')[0]} episode {json.dumps(episode)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "label": a.label,
                        "weekly": a.weekly,
                        "mean": a.mean,
                        "retrains": a.retrains,
                        "promotions": a.promotions,
                        "rejected": a.rejected,
                        "episodes": a.episodes,
                        "seconds": a.seconds,
                    }
                    for a in approaches
                ],
                indent=2,
            )
        )
    if args.write:
        write_results(
            args, approaches, policy, head, rows, month_head, month_rows, lines, load_start, started
        )
    return 0


def write_results(
    args: argparse.Namespace,
    approaches: list[Approach],
    policy: Any,
    head: list[str],
    rows: list[list[str]],
    month_head: list[str],
    month_rows: list[list[str]],
    lines: list[str],
    load_start: str,
    started: float,
) -> None:
    """Append a dated section to RESULTS.md (never rewrite what is there)."""
    import sklearn

    import loopml

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    weeks = policy.weeks
    hours = sum(w.requests for w in weeks)
    notes = [
        f"- Machine: {os.cpu_count()} cores (os.cpu_count()), {cpu_model()}, {platform.platform()}",
        f"- Versions: loopml {loopml.__version__}, scikit-learn {sklearn.__version__}, "
        f"Python {platform.python_version()}",
        f"- 1-minute load average: {load_start} at start, {load_average()} at the end; "
        f"benchmark took {time.perf_counter() - started:.0f} s",
        f"- Command: `python benchmarks/bench_loop.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- Replay: {len(weeks)} weeks from {weeks[0].start:%Y-%m-%d} to "
        f"{weeks[-1].end:%Y-%m-%d}, {hours:,} hours, each one request to the model server; "
        f"tuning trials per training: {args.trials}",
        "",
        render_markdown(head, rows),
        "",
        render_markdown(month_head, month_rows),
        "",
        *[f"- {line}" for line in lines],
        "- Mean weekly accuracy: the mean over weeks of the share of the week's hours whose "
        "`busy` label (>= 200 bikes) was predicted right; all approaches on the same hours. "
        "(c) is the accuracy of the answers the model server gave, canary weeks included.",
        "- Retrains: pipeline runs. (b) trains once per week; (c) counts every candidate the "
        "loop trained, rejected ones included; Promoted: canaries the model server promoted.",
        f"- Delay: per episode (weeks more than {STALE * 100:g} points behind (b)), the weeks "
        "from its first week to the controller pass that triggered a retrain / that recorded "
        "the promotion (labels arrive at the end of a week, so 1 is the fastest).",
        *[
            f"- {a.label.split(' ')[0]} episodes: "
            + ", ".join(
                f"{e['onset']} ({e['weeks_stale']} wk stale, trigger "
                f"{e['weeks_to_trigger'] or '-'}, promotion {e['weeks_to_promotion'] or '-'})"
                for e in a.episodes
            )
            for a in approaches[3:]
            if a.episodes
        ],
        f"- Time: (c) {approaches[3].seconds:.0f} s for the whole replay (serving, logging, "
        f"monitoring, {approaches[3].retrains} retrains); (b) {approaches[1].seconds:.0f} s "
        "for its trainings alone.",
    ]
    section = "\n## Continuous training: drift replay — " + now + "\n\n" + "\n".join(notes) + "\n"
    with RESULTS.open("a", encoding="utf-8") as stream:
        stream.write(section)
    say(f"appended to {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
