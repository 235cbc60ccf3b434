"""``loopml stream-score``: score a Redis stream into another stream, exactly once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli._common import JsonOption, ModelSpecArgument
from loopml.cli._output import print_json, print_success, render_pairs, stderr_console

if TYPE_CHECKING:
    from loopml.serving.stream import StreamStats


def stream_score(
    spec: ModelSpecArgument,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="The input stream: redis://host:6379/0?stream=requests.",
            show_default=False,
        ),
    ],
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            help="The output stream, on the same server and database: "
            "redis://host:6379/0?stream=predictions.",
            show_default=False,
        ),
    ],
    group: Annotated[
        str, typer.Option("--group", help="The consumer group; its scorers share the work.")
    ] = "loopml",
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            help="This scorer's name in the group (the host name by default); give each "
            "running scorer its own.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Messages per read, prediction and commit.")
    ] = 64,
    max_messages: Annotated[
        int | None,
        typer.Option("--max-messages", min=1, help="Stop after this many messages."),
    ] = None,
    claim_idle_ms: Annotated[
        int,
        typer.Option(
            "--claim-idle-ms",
            min=1,
            help="Claim messages pending this long for another consumer of the group.",
        ),
    ] = 60_000,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Log each scored message to the prediction log, for monitoring.",
        ),
    ] = True,
    log_sample_rate: Annotated[
        float,
        typer.Option(
            "--log-sample-rate", min=0.0, max=1.0, help="Fraction of the messages logged."
        ),
    ] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Score the messages of a Redis stream into another stream until Ctrl-C or SIGTERM.

    A stop request lets the batch in hand finish; a second Ctrl-C stops at once (nothing is
    lost: unfinished messages are scored again on the next start).
    """
    from loopml.serving.stream import stream_score as run

    stop = threading.Event()
    with _stop_on_signals(stop), _LiveCounter(enabled=not as_json) as counter:
        stats = run(
            spec,
            source,
            sink,
            group=group,
            consumer=consumer,
            batch_size=batch_size,
            claim_idle_ms=claim_idle_ms,
            max_messages=max_messages,
            stop_event=stop,
            on_batch=counter.update,
            log_predictions=log_predictions,
            log_sample_rate=log_sample_rate,
        )
    if as_json:
        print_json(stats.to_dict())
        return
    version = f"{stats.model}/{stats.version}" if stats.version is not None else stats.model
    noun = "message" if stats.scored == 1 else "messages"
    print_success(f"scored {stats.scored} {noun} with {version}")
    render_pairs(
        [
            ("dead-lettered", str(stats.dead_lettered)),
            ("recovered", str(stats.recovered)),
            ("claimed", str(stats.claimed)),
            ("consumer", f"{stats.group}/{stats.consumer}"),
        ]
    )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into a stop request; a second SIGINT interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _LiveCounter:
    """A live line on stderr counting scored and dead-lettered messages."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._live: Any = None

    def __enter__(self) -> _LiveCounter:
        if self.enabled:
            from rich.live import Live
            from rich.text import Text

            self._live = Live(
                Text("waiting for messages...", style="dim"),
                console=stderr_console(),
                transient=True,
                refresh_per_second=4,
            )
            self._live.__enter__()
        return self

    def update(self, stats: StreamStats) -> None:
        """Show the latest counts."""
        if self._live is None:
            return
        from rich.text import Text

        text = Text()
        text.append(f"scored {stats.scored}", style="green")
        dead = f"  dead-lettered {stats.dead_lettered}"
        text.append(dead, style="red" if stats.dead_lettered else "dim")
        text.append(f"  batches {stats.batches}  (Ctrl-C to stop)", style="dim")
        self._live.update(text)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
