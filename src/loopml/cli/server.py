"""``loopml server``: run the tracking server and manage its API tokens."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli._common import HostOption, JsonOption, PortOption
from loopml.cli._output import (
    Column,
    emit,
    format_time,
    print_success,
    print_warning,
    stderr_console,
)
from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:
    from loopml.auth.service import AuthService
    from loopml.store.base import TokenInfo

app = typer.Typer(
    name="server",
    help="Run the loopml tracking server (REST API) and manage its tokens.",
)
token_app = typer.Typer(
    name="token",
    help="Create, list and revoke the bearer tokens of `loopml server --auth`.",
    no_args_is_help=True,
)
app.add_typer(token_app)


class Role(str, enum.Enum):
    """What a token may do: read, also write, or also administer (tokens, deletions)."""

    reader = "reader"
    writer = "writer"
    admin = "admin"


@app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    host: HostOption = "127.0.0.1",
    port: PortOption = 5000,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Require a bearer token (see `loopml server token create`).",
        ),
    ] = False,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            "--allowed-hosts",
            metavar="HOST",
            help="Host header value to accept besides the listening address "
            "(repeatable; guards against DNS rebinding).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
) -> None:
    """Start the server: the REST API, its OpenAPI docs at /docs, and /health.

    Without a subcommand this serves the store in use (LOOPML_STORE_URI,
    LOOPML_ARTIFACT_URI, or the embedded store in LOOPML_HOME).
    """
    if ctx.invoked_subcommand is not None:
        return
    # serve() itself warns when a non-loopback address is served without auth.
    if auth:
        _warn_if_no_tokens()
    from loopml.server.run import serve

    stderr_console().print(
        f"loopml server on http://{_url_host(host)}:{port} (API docs at /docs)"
        f"{', auth on' if auth else ''}; Ctrl-C stops it.",
        style="bold",
        soft_wrap=True,
        markup=False,
    )
    serve(host, port, auth=auth, allowed_hosts=list(allowed_hosts or []), workers=workers)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _warn_if_no_tokens() -> None:
    try:
        tokens = _auth_service().list_tokens()
    except LoopmlError:
        return
    if not tokens:
        print_warning(
            "auth is on but no token exists yet: every request will be refused "
            "until you run `loopml server token create NAME --role admin`"
        )


def _auth_service() -> AuthService:
    """Open the token service over the local store (the one `loopml server` serves)."""
    from loopml.config import load_settings

    settings = load_settings()
    if settings.tracking_uri:
        raise InvalidInput(
            "tokens live in the server's own store, but LOOPML_TRACKING_URI points this shell "
            f"at {settings.tracking_uri}; run the command on the server host without it",
            field="tracking_uri",
        )
    from loopml.auth.service import AuthService
    from loopml.store.registry import open_tracking_stores

    stores = open_tracking_stores(settings)
    if stores.auth is None:
        raise InvalidInput("this store does not keep API tokens", field="store_uri")
    return AuthService(stores.auth)


@token_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="A name to recognise the token by (e.g. ci).")],
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            "-r",
            case_sensitive=False,
            help="reader: read only; writer: also log runs and artifacts; admin: everything.",
        ),
    ] = Role.reader,
) -> None:
    """Create a token and print its secret (shown only this once) on stdout."""
    secret = _auth_service().create_token(name, role.value)
    stderr_console().print(
        f"Created {role.value} token {name!r}. Copy the secret now, it cannot be shown again; "
        "clients send it as LOOPML_TRACKING_TOKEN:",
        style="green",
        soft_wrap=True,
        markup=False,
    )
    typer.echo(secret)


def _token_record(info: TokenInfo) -> dict[str, Any]:
    # Like the REST API, never show the stored hash: it is what a secret is looked up by.
    return {"name": info.name, "role": info.role, "created_time": info.created_time}


@token_app.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """List tokens: names, roles and creation times (secrets are never stored)."""
    records = [_token_record(info) for info in _auth_service().list_tokens()]
    emit(
        records,
        (
            Column("name", "Name", style="bold"),
            Column("role", "Role"),
            Column("created_time", "Created", fmt=lambda v: format_time(v)),
        ),
        as_json=as_json,
        empty_message="No tokens: `loopml server token create NAME --role ROLE` makes one.",
    )


@token_app.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument(help="Name of the token to revoke.")],
) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    _auth_service().revoke(name)
    print_success(f"Revoked token {name!r}.")
