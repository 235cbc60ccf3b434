"""The ``loopml`` command: the root app, ``loopml version`` and the error boundary.

Every error loopml raises on purpose (:class:`loopml.errors.LoopmlError`) and every usage
error becomes one red line on stderr and exit code 2; tracebacks are kept for real bugs.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from loopml.cli import artifacts, data, experiments, models, pipeline, runs, serve, server
from loopml.cli._common import JsonOption
from loopml.cli._output import mask_uri, print_error, print_json, render_pairs
from loopml.cli.batch_score import batch_score as batch_score_command
from loopml.cli.build import build as build_command
from loopml.cli.ci import ci as ci_command
from loopml.cli.deploy import app as deploy_app
from loopml.cli.features import app as features_app
from loopml.cli.loop import app as loop_app
from loopml.cli.monitor import app as monitor_app
from loopml.cli.scheduler import schedule_app, scheduler_app, trigger_app
from loopml.cli.stream_score import stream_score as stream_score_command
from loopml.errors import LoopmlError

try:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer releases that still depend on click
    from click.exceptions import (  # type: ignore[assignment]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )

#: Exit code of invalid input, unknown objects and usage errors (as click uses for usage).
EXIT_INVALID = 2
#: Exit code of environment failures such as an unwritable destination folder.
EXIT_FAILURE = 1


def _package_version() -> str:
    from loopml import __version__

    return __version__


class LoopmlGroup(TyperGroup):
    """The root command group; its ``main`` is the error boundary of the whole CLI.

    Both the console script and ``typer.testing.CliRunner`` call ``main``, so tests see
    exactly the exit codes and messages users see.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI and turn expected errors into a message and an exit code."""
        code = run_guarded(
            lambda: super(LoopmlGroup, self).main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(invoke: Callable[[], Any]) -> int:
    """Call ``invoke`` (a non-standalone click ``main``) and return the process exit code.

    Parameters
    ----------
    invoke : callable
        Runs the command; returns its result, or an exit code when it exits early.

    Returns
    -------
    int
        0 on success, 2 for loopml errors and usage errors, 1 for other expected failures.
    """
    try:
        result = invoke()
    except NoArgsIsHelpError:
        # The help text has been printed already; like click, exit 2.
        return EXIT_INVALID
    except UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        print_error(f"{exc.format_message()}{hint}")
        return EXIT_INVALID
    except ClickException as exc:
        print_error(exc.format_message())
        return int(exc.exit_code)
    except typer.Abort:
        print_error("aborted")
        return EXIT_FAILURE
    except LoopmlError as exc:
        print_error(exc.message)
        return EXIT_INVALID
    except OSError as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0


app = typer.Typer(
    name="loopml",
    cls=LoopmlGroup,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(experiments.app)
app.add_typer(runs.app)
app.add_typer(artifacts.app)
app.add_typer(server.app)
app.add_typer(data.app)
app.add_typer(pipeline.app)
app.add_typer(models.app)
app.add_typer(scheduler_app)
app.add_typer(schedule_app)
app.add_typer(trigger_app)
app.add_typer(deploy_app)
app.add_typer(monitor_app)
app.add_typer(loop_app)
app.add_typer(features_app)
app.command("serve")(serve.serve)
app.command("batch-score")(batch_score_command)
app.command("stream-score")(stream_score_command)
app.command("build")(build_command)
app.command("ci")(ci_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"loopml {_package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the loopml version and exit.",
        ),
    ] = False,
) -> None:
    """Track experiments and runs, and serve them over HTTP.

    Settings come from LOOPML_* environment variables or loopml.toml; see `loopml version`
    for the store in use.
    """


@app.command("version")
def version(as_json: JsonOption = False) -> None:
    """Print the loopml and Python versions and the store in use."""
    from loopml.config import load_settings

    settings = load_settings()
    loopml_version = _package_version()
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    store = mask_uri(settings.resolved_store_uri)
    artifacts_uri = mask_uri(settings.resolved_artifact_uri)
    if as_json:
        print_json(
            {
                "loopml": loopml_version,
                "python": python,
                "home": str(settings.home),
                "store_uri": store,
                "artifact_uri": artifacts_uri,
                "tracking_uri": settings.tracking_uri,
            }
        )
        return
    pairs: list[tuple[str, str]] = [("loopml", loopml_version), ("python", python)]
    if settings.tracking_uri:
        # With a tracking server the local store settings are not used by the SDK.
        pairs.append(("tracking", f"{settings.tracking_uri} (REST: the server's stores)"))
    else:
        pairs += [("home", str(settings.home)), ("store", store), ("artifacts", artifacts_uri)]
    render_pairs(pairs)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``loopml`` command line (the console script entry point).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    command = typer.main.get_command(app)
    command.main(args=list(argv) if argv is not None else None, prog_name="loopml")


if __name__ == "__main__":  # pragma: no cover
    main()
