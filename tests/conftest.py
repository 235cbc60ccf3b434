"""Shared fixtures: an isolated LOOPML_HOME per test, PostgreSQL and a live server per session."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx
    import pandas as pd
    from starlette.types import ASGIApp

    from loopml.config import Settings

REQUIRE_SERVICES = os.environ.get("LOOPML_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("LOOPML_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


def service_missing(reason: str) -> None:
    """Skip, or fail when CI demands every service (LOOPML_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_app(app: ASGIApp, *, timeout: float = 10.0) -> Iterator[httpx.Client]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield a client to it.

    The app's lifespan runs on entry and exit, and the server stops when the block ends.
    """
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


#: Settings a caller's environment might carry that would point tests at a real store.
_SETTINGS = (
    "LOOPML_STORE_URI",
    "LOOPML_ARTIFACT_URI",
    "LOOPML_TRACKING_URI",
    "LOOPML_TRACKING_TOKEN",
    "LOOPML_EXPERIMENT_NAME",
)


def register_iris(
    name: str = "iris", *, columns: list[str] | None = None, background: bool = False
) -> pd.DataFrame:
    """Log a LogisticRegression fitted on iris in a run; register it as ``name@champion`` (v1).

    Parameters
    ----------
    name : str
        The registered model name.
    columns : list of str, optional
        Feature names to use instead of sklearn's (``"sepal length (cm)"``, ...).
    background : bool
        Store the features as the model's explanation background too.

    Returns
    -------
    pandas.DataFrame
        The 150 feature rows the model was fitted on.
    """
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import loopml as lm

    features, target = load_iris(return_X_y=True, as_frame=True)
    if columns is not None:
        features.columns = columns
    extra = {"background": features} if background else {}
    with lm.start_run():
        info = lm.log_model(
            LogisticRegression(max_iter=300).fit(features, target),
            "model",
            input_example=features.head(),
            **extra,
        )
    lm.registry.register(info.uri, name)
    lm.registry.set_alias(name, "champion", 1, reason="first")
    frame: pd.DataFrame = features
    return frame


@contextmanager
def module_home(tmp_path_factory: pytest.TempPathFactory, label: str) -> Iterator[Path]:
    """A store of its own for a module-scoped fixture, which runs before any per-test home.

    Inside the block ``LOOPML_HOME`` is a fresh folder (and the working directory), the other
    ``LOOPML_*`` settings are unset and the fluent state is clean; all is undone afterwards.
    """
    from loopml.tracking import fluent

    root = tmp_path_factory.mktemp(label)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPML_HOME", str(root / "loopml-home"))
        for name in _SETTINGS:
            patch.delenv(name, raising=False)
        patch.chdir(root)
        fluent._reset_for_tests()
        try:
            yield root
        finally:
            fluent._reset_for_tests()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own embedded store and a clean fluent state."""
    home = tmp_path / "loopml-home"
    monkeypatch.setenv("LOOPML_HOME", str(home))
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    from loopml.tracking import fluent

    fluent._reset_for_tests()
    yield home
    fluent._reset_for_tests()


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        service_missing("psycopg is not installed")
    name = f"loopml_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    uri = f"{base}/{name}"
    yield uri
    from loopml.store.sql.engine import dispose_all

    dispose_all()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Settings over each SQL store in turn: the embedded SQLite one, then PostgreSQL."""
    from loopml.config import load_settings

    if request.param == "postgres":
        return load_settings(store_uri=request.getfixturevalue("pg_uri"))
    return load_settings()


class LiveServer:
    """A loopml server running in a thread of the test process."""

    def __init__(self, home: Path, auth: bool = False) -> None:
        import uvicorn

        from loopml.config import Settings
        from loopml.server.app import create_app

        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(home=home)
        self.app = create_app(settings, auth=auth)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server (no auth) on a free 127.0.0.1 port for the whole session."""
    server = LiveServer(tmp_path_factory.mktemp("server-home")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3-compatible server on a free 127.0.0.1 port for the whole session."""
    import logging

    from moto.server import ThreadedMotoServer

    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    quiet.setLevel(level)


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket on the test S3 server (idempotent)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
