"""``loopml server``: starting it (serve is replaced by a recorder) and its tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from loopml.auth import AuthService, hash_secret
from loopml.cli.main import app
from loopml.config import load_settings
from loopml.store.sql import SqlTrackingStore

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import loopml.server.run

    calls: list[dict[str, Any]] = []

    def fake_serve(host: str, port: int, **options: Any) -> None:
        calls.append({"host": host, "port": port, **options})

    monkeypatch.setattr(loopml.server.run, "serve", fake_serve)
    return calls


def test_server_defaults(served: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["server"])
    assert result.exit_code == 0, result.output
    assert served == [
        {"host": "127.0.0.1", "port": 5000, "auth": False, "allowed_hosts": [], "workers": 1}
    ]
    assert "http://127.0.0.1:5000" in result.stderr


def test_server_options_are_passed_through(served: list[dict[str, Any]]) -> None:
    runner.invoke(app, ["server", "token", "create", "root", "--role", "admin"])
    result = runner.invoke(
        app,
        [
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--auth",
            "--allowed-host",
            "ml.example.com",
            "--allowed-host",
            "10.0.0.5",
            "--workers",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert served == [
        {
            "host": "0.0.0.0",
            "port": 8080,
            "auth": True,
            "allowed_hosts": ["ml.example.com", "10.0.0.5"],
            "workers": 2,
        }
    ]
    assert "no token exists" not in result.stderr


def test_server_auth_without_tokens_warns(served: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["server", "--auth"])
    assert result.exit_code == 0, result.output
    assert "no token exists yet" in result.stderr
    assert served and served[0]["auth"] is True


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "70000"], ["--workers", "0"]])
def test_server_bad_options_exit_2(served: list[dict[str, Any]], args: list[str]) -> None:
    result = runner.invoke(app, ["server", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert served == []


def test_token_lifecycle() -> None:
    created = runner.invoke(app, ["server", "token", "create", "ci", "--role", "writer"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert len(secret) >= 40 and "\n" not in secret
    assert "cannot be shown again" in created.stderr

    listed = runner.invoke(app, ["server", "token", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (token,) = json.loads(listed.stdout)
    assert token["name"] == "ci" and token["role"] == "writer"
    assert secret not in listed.stdout and hash_secret(secret) not in listed.stdout
    assert (
        AuthService(SqlTrackingStore(load_settings().resolved_store_uri)).verify(secret).name
        == "ci"
    )

    table = runner.invoke(app, ["server", "token", "list"], env={"COLUMNS": "200"})
    assert "ci" in table.stdout and "writer" in table.stdout and secret not in table.stdout

    revoked = runner.invoke(app, ["server", "token", "revoke", "ci"])
    assert revoked.exit_code == 0 and "Revoked token 'ci'" in revoked.stdout
    empty = runner.invoke(app, ["server", "token", "list"])
    assert "No tokens" in empty.stdout


def test_token_role_defaults_to_reader() -> None:
    runner.invoke(app, ["server", "token", "create", "dash"])
    (token,) = json.loads(runner.invoke(app, ["server", "token", "list", "--json"]).stdout)
    assert token["role"] == "reader"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "x", "--role", "root"], "--role"),
        (["create", "bad name"], "token name must be"),
        (["revoke", "ghost"], "token 'ghost' does not exist"),
    ],
)
def test_token_bad_input_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["server", "token", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_token_name_taken_exits_2() -> None:
    runner.invoke(app, ["server", "token", "create", "ci"])
    result = runner.invoke(app, ["server", "token", "create", "ci"])
    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_tokens_refuse_a_remote_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://tracking.example:5000")
    result = runner.invoke(app, ["server", "token", "list"])
    assert result.exit_code == 2
    assert "LOOPML_TRACKING_URI" in result.stderr
