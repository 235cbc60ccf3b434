"""Stream scoring on a real Redis: exactly once across crashes, consumers and bad messages."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import loopml as lm
from conftest import free_port, register_iris, service_missing
from loopml.cli.main import app
from loopml.errors import Conflict, InvalidInput, StoreUnavailable
from loopml.monitoring.predictions import is_sampled
from loopml.serving import stream
from loopml.serving._stream_input import Inputs, parse_stream_url
from loopml.serving.stream import StreamStats, stream_score

REDIS = "redis://127.0.0.1:6379/0"
FAST = {"block_ms": 100, "claim_idle_ms": 1_000}


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.RedisError:
        connection.close()
        service_missing("Redis at 127.0.0.1:6379 is not reachable")
    yield connection
    connection.close()


@pytest.fixture
def names(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Random stream names; every key of the test is deleted afterwards."""
    # A short lease lets a restart after a kill take the consumer name back within a second.
    monkeypatch.setattr(stream, "MIN_LEASE_MS", 1_000)
    prefix = f"loopml-test-{uuid.uuid4().hex[:10]}"
    yield {
        "prefix": prefix,
        "source": f"{prefix}:requests",
        "sink": f"{prefix}:predictions",
        "dead": f"{prefix}:requests:dead",
        "source_url": f"{REDIS}?stream={prefix}:requests",
        "sink_url": f"{REDIS}?stream={prefix}:predictions",
    }
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def iris() -> pd.DataFrame:
    """Register ``iris`` version 1 as ``iris@champion``; return its features."""
    return register_iris()


def _produce(client: redis.Redis, stream_key: str, frame: pd.DataFrame) -> list[str]:
    """Add one message per row: even rows one field per feature, odd rows a JSON record."""
    ids = []
    for index, row in enumerate(frame.to_dict(orient="records")):
        if index % 2:
            fields: dict[str, Any] = {"data": json.dumps(row)}
        else:
            fields = {name: repr(value) for name, value in row.items()}
        ids.append(client.xadd(stream_key, fields).decode())
    return ids


def _read(client: redis.Redis, stream_key: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in client.xrange(stream_key)
    ]


def _expected(frame: pd.DataFrame, ids: list[str]) -> dict[str, int]:
    predictions = lm.models.load("iris@champion").predict(frame)
    return dict(zip(ids, np.asarray(predictions).tolist(), strict=True))


def _pending(client: redis.Redis, names: dict[str, str], group: str = "loopml") -> int:
    return int(client.xpending(names["source"], group)["pending"])


@contextlib.contextmanager
def _deadline(seconds: float = 30) -> Iterator[threading.Event]:
    """A stop event set after ``seconds``: a scorer waiting for messages that never come
    (they were lost) stops, and the test fails instead of hanging."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        yield stop
    finally:
        timer.cancel()
    assert not stop.is_set(), "the scorer did not find every message before the deadline"


def _run(names: dict[str, str], **options: Any) -> StreamStats:
    """Score the test's source stream into its sink (``FAST`` timings unless overridden)."""
    return stream_score(
        "iris@champion", names["source_url"], names["sink_url"], **{**FAST, **options}
    )


def _run_to_the_end(names: dict[str, str], **options: Any) -> StreamStats:
    """:func:`_run` under a :func:`_deadline`, for a scorer that stops at ``max_messages``."""
    with _deadline() as stop:
        return _run(names, stop_event=stop, **options)


def _assert_exactly_once(client: redis.Redis, names: dict[str, str], ids: list[str]) -> None:
    scored = [entry["request_id"] for entry in _read(client, names["sink"])]
    assert len(scored) == len(set(scored)), "a message was scored twice"
    assert sorted(scored) == sorted(ids), "a message was lost"
    assert _pending(client, names) == 0


def test_scores_each_message_exactly_once(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    frame = iris.sample(n=100, random_state=1)
    ids = _produce(client, names["source"], frame)
    seen: list[StreamStats] = []
    stats = _run_to_the_end(names, batch_size=16, max_messages=100, on_batch=seen.append)
    assert (stats.scored, stats.dead_lettered, stats.batches) == (100, 0, 7)
    assert (stats.model, stats.version, stats.group) == ("iris", 1, "loopml")
    assert [s.scored for s in seen] == [16, 32, 48, 64, 80, 96, 100]
    _assert_exactly_once(client, names, ids)
    expected = _expected(frame, ids)
    for entry in _read(client, names["sink"]):
        assert int(entry["prediction"]) == expected[entry["request_id"]]
        probabilities = json.loads(entry["probabilities"])
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-9
        assert (entry["model"], entry["version"]) == ("iris", "1")
        assert datetime.fromisoformat(entry["scored_at"]).tzinfo is not None
    assert client.exists(names["dead"]) == 0
    assert not list(client.scan_iter(match=f"{names['prefix']}*:lease:*")), "lease not released"


def test_bad_messages_go_to_the_dead_letter_stream(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    good = _produce(client, names["source"], iris.head(6))
    row = {name: str(value) for name, value in iris.iloc[0].items()}
    first_feature = str(iris.columns[0])
    bad = {
        client.xadd(names["source"], {**row, first_feature: "abc"}): first_feature,
        client.xadd(names["source"], {k: v for k, v in row.items() if k != first_feature}): (
            first_feature
        ),
        client.xadd(names["source"], {"data": "{not json"}): "data",
        client.xadd(names["source"], {"data": "[1, 2]"}): "data",
        client.xadd(names["source"], {"data": json.dumps({**row, first_feature: None})}): (
            first_feature
        ),
        client.xadd(names["source"], {**row, first_feature: b"\xff\xfe"}): first_feature,
        client.xadd(names["source"], {**row, first_feature: "inf"}): first_feature,
    }
    good += _produce(client, names["source"], iris.tail(6))
    stats = _run(names, batch_size=5, max_messages=19)
    assert (stats.scored, stats.dead_lettered) == (12, 7)
    assert sorted(e["request_id"] for e in _read(client, names["sink"])) == sorted(good)
    dead = {e["request_id"]: e for e in _read(client, names["dead"])}
    assert set(dead) == {i.decode() for i in bad}
    for entry_id, field in bad.items():
        entry = dead[entry_id.decode()]
        assert entry["field"] == field, entry
        assert field in entry["error"] and entry["model"] == "iris"
    assert "not valid JSON" in dead[list(bad)[2].decode()]["error"]
    assert _pending(client, names) == 0


def test_a_batch_the_model_fails_on_dead_letters_only_the_message_at_fault(
    client: redis.Redis,
    names: dict[str, str],
    iris: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _produce(client, names["source"], iris.head(8))
    marker = float(iris.iloc[3, 0])
    real = LogisticRegression.predict

    def fussy(self: LogisticRegression, X: pd.DataFrame) -> Any:
        if (X.iloc[:, 0] == marker).any():
            raise ValueError("cannot score this row")
        return real(self, X)

    monkeypatch.setattr(LogisticRegression, "predict", fussy)
    monkeypatch.setattr(stream._Scorer, "_warm_up", lambda self: None)
    stats = _run(names, max_messages=8)
    faulty = {i for i, v in zip(ids, iris.head(8).iloc[:, 0], strict=True) if v == marker}
    assert stats.dead_lettered == len(faulty) and stats.scored == 8 - len(faulty)
    dead = _read(client, names["dead"])
    assert {e["request_id"] for e in dead} == faulty
    assert "cannot score this row" in dead[0]["error"]


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


@pytest.mark.parametrize("when", ["between_batches", "before_exec", "after_exec"])
def test_restart_after_a_crash_scores_every_message_exactly_once(
    client: redis.Redis,
    names: dict[str, str],
    iris: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    ids = _produce(client, names["source"], iris.head(60))
    real_execute = redis.client.Pipeline.execute
    commits = {"count": 0}

    def execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        writes = any(args[0] == "XADD" for args, _ in self.command_stack)
        if writes:
            commits["count"] += 1
        if writes and commits["count"] == 3:
            if when == "before_exec":  # read and predicted, nothing written
                raise Crash
            real_execute(self, raise_on_error)  # committed, but the reply is lost
            raise redis.ConnectionError("connection lost after EXEC")
        return real_execute(self, raise_on_error)

    def on_batch(stats: StreamStats) -> None:
        if when == "between_batches" and stats.batches == 3:
            raise Crash

    if when != "between_batches":
        monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    expected_error = StoreUnavailable if when == "after_exec" else Crash
    with pytest.raises(expected_error):
        _run(names, consumer="c1", batch_size=10, on_batch=on_batch)
    monkeypatch.setattr(redis.client.Pipeline, "execute", real_execute)
    written = len(_read(client, names["sink"]))
    assert written == (20 if when == "before_exec" else 30)
    assert _pending(client, names) == (10 if when == "before_exec" else 0)
    stats = _run_to_the_end(names, consumer="c1", batch_size=10, max_messages=60 - written)
    assert stats.recovered == (10 if when == "before_exec" else 0)
    _assert_exactly_once(client, names, ids)


@pytest.mark.slow
def test_a_killed_scorer_leaves_nothing_lost_or_doubled(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], pd.concat([iris] * 2, ignore_index=True))
    script = (
        "import sys, time\n"
        "from loopml.serving import stream\n"
        "stream.MIN_LEASE_MS = 1000\n"
        "stream.stream_score('iris@champion', sys.argv[1], sys.argv[2], consumer='c1',\n"
        "    batch_size=5, block_ms=100, claim_idle_ms=1000,\n"
        "    on_batch=lambda stats: time.sleep(0.02))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, names["source_url"], names["sink_url"]],
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while client.xlen(names["sink"]) < 40:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the scorer did not start"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]
    written = client.xlen(names["sink"])
    assert written < len(ids)
    # The killed scorer still holds its lease for up to a second: the restart waits.
    stats = _run_to_the_end(names, consumer="c1", max_messages=len(ids) - written)
    assert stats.messages == len(ids) - written
    _assert_exactly_once(client, names, ids)


def test_two_consumers_of_one_group_split_the_work(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], pd.concat([iris] * 2, ignore_index=True))
    stop = threading.Event()
    results: dict[str, StreamStats] = {}
    errors: list[BaseException] = []

    def work(consumer: str) -> None:
        try:
            results[consumer] = _run(
                names,
                consumer=consumer,
                batch_size=10,
                stop_event=stop,
                on_batch=lambda stats: time.sleep(0.005),
            )
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while client.xlen(names["sink"]) < len(ids) and time.monotonic() < deadline and not errors:
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert results["a"].scored > 0 and results["b"].scored > 0
    assert results["a"].scored + results["b"].scored == len(ids)
    _assert_exactly_once(client, names, ids)


def test_messages_of_a_dead_consumer_are_claimed(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], iris.head(30))
    client.xgroup_create(names["source"], "loopml", id="0")
    # A consumer that read ten messages and died before scoring them.
    client.xreadgroup("loopml", "gone", {names["source"]: ">"}, count=10)
    time.sleep(FAST["claim_idle_ms"] / 1000 + 0.1)
    stats = _run_to_the_end(names, consumer="alive", max_messages=30)
    assert (stats.claimed, stats.recovered, stats.scored) == (10, 0, 30)
    _assert_exactly_once(client, names, ids)


def test_one_consumer_name_is_never_used_by_two_scorers(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    stop = threading.Event()
    started = threading.Event()
    thread = threading.Thread(
        target=stream_score,
        args=("iris@champion", names["source_url"], names["sink_url"]),
        kwargs={"consumer": "same", "stop_event": stop, **FAST},
    )
    original = stream._Scorer._recover

    def recover(self: Any) -> None:
        started.set()
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream._Scorer, "_recover", recover)
        thread.start()
        assert started.wait(30)
    try:
        second = threading.Event()
        timer = threading.Timer(10, second.set)  # without the lease it would run on
        timer.start()
        with pytest.raises(Conflict, match="in use by another running scorer"):
            stream_score(
                "iris@champion",
                names["source_url"],
                names["sink_url"],
                consumer="same",
                stop_event=second,
                **FAST,
            )
        timer.cancel()
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("url", "field", "message"),
    [
        ("http://127.0.0.1:6379/0?stream=a", "source", "redis://"),
        ("127.0.0.1:6379/0?stream=a", "source", "redis://"),
        ("redis://127.0.0.1:6379?stream=a", "source", "no database"),
        ("redis://127.0.0.1:6379/zero?stream=a", "source", "database must be a number"),
        ("redis://127.0.0.1:6379/0", "source", "no stream"),
        ("redis://127.0.0.1:6379/0?stream=", "source", "no stream"),
        ("redis://127.0.0.1:6379/0?stream=a&db=1", "source", "unknown parameter(s) db"),
        ("redis://127.0.0.1:port/0?stream=a", "source", "invalid port"),
        ("redis:///0?stream=a", "source", "no host"),
    ],
)
def test_bad_urls_name_the_part(url: str, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        stream_score("iris@champion", url, f"{REDIS}?stream=out")
    assert caught.value.field == field
    assert message in caught.value.message


def test_url_parsing_and_the_source_sink_pair() -> None:
    parsed = parse_stream_url("rediss://user:secret@cache.local/2?stream=in", field="sink")
    assert (parsed.host, parsed.port, parsed.db, parsed.stream) == ("cache.local", 6379, 2, "in")
    assert parsed.connection == "rediss://user:secret@cache.local/2"
    assert "secret" not in parsed.display and "***" in parsed.display
    for sink, message in [
        ("redis://127.0.0.1:6379/1?stream=out", "same Redis server and database"),
        ("redis://10.0.0.9:6379/0?stream=out", "same Redis server and database"),
        (f"{REDIS}?stream=in", "must differ"),
        (f"{REDIS}?stream=in:dead", "must differ"),
    ]:
        with pytest.raises(InvalidInput, match=message) as caught:
            stream_score("iris@champion", f"{REDIS}?stream=in", sink)
        assert caught.value.field == "sink"
    # Default port and host case do not make two servers.
    with pytest.raises(InvalidInput, match="batch_size"):
        stream_score(
            "iris@champion", f"{REDIS}?stream=in", "redis://127.0.0.1/0?stream=o", batch_size=0
        )
    with pytest.raises(InvalidInput, match="claim_idle_ms"):
        stream_score("iris@champion", f"{REDIS}?stream=in", f"{REDIS}?stream=o", claim_idle_ms=5)


def test_field_text_is_converted_with_the_signature_types() -> None:
    inputs = Inputs(
        {
            "inputs": [
                {"name": "n", "type": "integer"},
                {"name": "x", "type": "double"},
                {"name": "b", "type": "boolean"},
                {"name": "s", "type": "string"},
                {"name": "t", "type": "datetime"},
            ]
        }
    )
    fields = {"n": "3", "x": "2.5", "b": "true", "s": " a ", "t": "2024-05-01T10:00:00"}
    assert inputs.record({**fields, "extra": "ignored"}) == {
        "n": 3,
        "x": 2.5,
        "b": True,
        "s": " a ",
        "t": pd.Timestamp("2024-05-01T10:00:00"),
    }
    assert inputs.record({"data": json.dumps({**fields, "n": 3.0, "x": 2, "b": False})})["n"] == 3
    for bad, field in [
        ({**fields, "n": "3.5"}, "n"),
        ({**fields, "b": "maybe"}, "b"),
        ({**fields, "t": "yesterday"}, "t"),
        ({"data": json.dumps({**fields, "b": 1})}, "b"),
        ({"data": json.dumps({**fields, "s": 7})}, "s"),
        ({"data": json.dumps({**fields, "x": True})}, "x"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            inputs.record(bad)
        assert caught.value.field == field
    assert Inputs(None).record({"a": "1.5", "b": "text"}) == {"a": 1.5, "b": "text"}


def test_redis_down_is_one_clear_error(iris: pd.DataFrame) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailable, match="cannot reach Redis at redis://127.0.0.1"):
        stream_score("iris@champion", f"{url}?stream=in", f"{url}?stream=out")


def test_cli_scores_until_max_messages_and_exits_2_on_bad_input(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], iris.head(30))
    runner = CliRunner()
    base = ["stream-score", "iris@champion", "--source", names["source_url"]]
    args = [*base, "--sink", names["sink_url"], "--batch-size", "8", "--consumer", "cli"]
    result = runner.invoke(app, [*args, "--max-messages", "20", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["scored"], stats["batches"], stats["consumer"]) == (20, 3, "cli")
    result = runner.invoke(app, [*args, "--max-messages", "10"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "scored 10 messages with iris/1" in result.stdout
    _assert_exactly_once(client, names, ids)
    logged = lm.monitoring.predictions("iris")  # logged by default on the command line
    assert sorted(logged["request_id"]) == sorted(ids) and set(logged["variant"]) == {"stream"}
    down = f"redis://127.0.0.1:{free_port()}/0"
    for bad, message in [
        ([*base, "--sink", "http://x/0?stream=o"], "sink URL must start with redis://"),
        ([*base, "--sink", f"{REDIS}"], "sink URL names no stream"),
        (
            [
                "stream-score",
                "nosuch@champion",
                "--source",
                names["source_url"],
                "--sink",
                names["sink_url"],
                "--max-messages",
                "1",
            ],
            "nosuch",
        ),
        (
            [
                "stream-score",
                "iris@champion",
                "--source",
                f"{down}?stream=a",
                "--sink",
                f"{down}?stream=b",
            ],
            "cannot reach Redis",
        ),
    ]:
        result = runner.invoke(app, bad)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_stops_gracefully_on_sigterm(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], iris.head(40))
    default = signal.getsignal(signal.SIGTERM)

    def terminate() -> None:
        # Only signal once the command has put its handler in place (else pytest would die).
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGTERM) is default or client.xlen(names["sink"]) < 40:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate)
    killer.start()
    args = ["stream-score", "iris@champion", "--source", names["source_url"]]
    result = CliRunner().invoke(app, [*args, "--sink", names["sink_url"], "--json"])
    killer.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scored"] == 40
    assert signal.getsignal(signal.SIGTERM) is default
    _assert_exactly_once(client, names, ids)


def _assert_logged_once(client: redis.Redis, names: dict[str, str], frame: pd.DataFrame) -> None:
    """Every scored message logged exactly once, as its sink entry and input say."""
    logged = lm.monitoring.predictions("iris").set_index("request_id")
    sink = {e["request_id"]: e for e in _read(client, names["sink"])}
    assert logged.index.is_unique, "a message was logged twice"
    assert set(logged.index) == set(sink)
    assert set(logged["variant"]) == {"stream"} and set(logged["version"]) == {1}
    assert set(logged["row"]) == {0}
    for request_id, entry in sink.items():
        assert int(logged.at[request_id, "prediction"]) == int(entry["prediction"])
        probabilities = json.loads(entry["probabilities"])
        assert logged.at[request_id, "probability"] == pytest.approx(max(probabilities))
    features = list(frame.columns)
    by_features = frame.set_index(features[0])  # the first feature tells the rows apart here
    for request_id in sink:
        row = logged.loc[request_id, features]
        expected = by_features.loc[[row[features[0]]]].iloc[0]
        assert row[features[1:]].tolist() == pytest.approx(expected.tolist())


def test_each_scored_message_is_logged_once_even_across_a_crash(
    client: redis.Redis,
    names: dict[str, str],
    iris: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = iris.drop_duplicates(subset=iris.columns[0]).head(30)
    ids = _produce(client, names["source"], frame)
    bad = client.xadd(names["source"], {"data": "{not json"}).decode()
    real_execute = redis.client.Pipeline.execute
    commits = {"count": 0}

    def execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        if any(args[0] == "XADD" for args, _ in self.command_stack):
            commits["count"] += 1
            if commits["count"] == 2:  # read and predicted, never committed
                raise Crash
        return real_execute(self, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    options: dict[str, Any] = {"consumer": "c1", "batch_size": 8, "log_predictions": True}
    with pytest.raises(Crash):
        _run(names, **options)
    assert len(lm.monitoring.predictions("iris")) == 8  # the committed batch only
    monkeypatch.setattr(redis.client.Pipeline, "execute", real_execute)
    stats = _run_to_the_end(names, max_messages=23, **options)
    assert (stats.recovered, stats.scored, stats.dead_lettered) == (8, 22, 1)
    _assert_exactly_once(client, names, ids)
    _assert_logged_once(client, names, frame)
    assert bad not in set(lm.monitoring.predictions("iris")["request_id"])


def test_logging_is_off_by_default_and_sampled_by_message_id(
    client: redis.Redis, names: dict[str, str], iris: pd.DataFrame
) -> None:
    ids = _produce(client, names["source"], iris.head(40))
    url, sink = names["source_url"], names["sink_url"]
    stream_score("iris@champion", url, sink, max_messages=20, **FAST)
    assert lm.monitoring.predictions("iris").empty
    stream_score(
        "iris@champion",
        url,
        sink,
        max_messages=20,
        log_predictions=True,
        log_sample_rate=0.5,
        **FAST,
    )
    expected = {i for i in ids[20:] if is_sampled(i, 0.5)}
    assert set(lm.monitoring.predictions("iris")["request_id"]) == expected
    with pytest.raises(InvalidInput, match="log_sample_rate"):
        stream_score("iris@champion", url, sink, log_predictions=True, log_sample_rate=1.5)
