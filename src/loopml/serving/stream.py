"""Stream scoring: read requests from a Redis stream, write predictions to another, exactly once.

A scorer is one consumer of a consumer group on the source stream. It reads micro-batches
with ``XREADGROUP``, checks every message against the model's signature, predicts the good
ones in one call and then, in a single ``MULTI``/``EXEC`` transaction, adds one entry per
message to the sink stream (or to the dead-letter stream ``<source>:dead``) and acknowledges
the source entries. Redis applies a transaction whole or not at all, so a crash leaves each
message either scored and acknowledged, or pending; pending messages are scored again on
restart (``XREADGROUP`` from id ``0``), or claimed by another consumer of the group once they
have been idle long enough (``XAUTOCLAIM``).

Two processes must never score under one consumer name: both would see the same pending
messages. Each scorer therefore holds a lease on its name (a key with a time to live, renewed
by every transaction) and each transaction first checks, under ``WATCH``, that the lease is
still its own. Claims from other consumers only take messages idle for longer than the lease,
so a scorer that stalled past its lease has lost it and writes nothing when it wakes up.

With ``log_predictions`` each scored message is also logged to the prediction log (variant
``"stream"``, request id the source message id), once its transaction has succeeded: a
message scored again after a crash was never logged, and dead letters are not logged.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from loopml.errors import Conflict, InvalidInput, StoreUnavailable
from loopml.serving._stream_input import Inputs, Message, StreamUrl, decode, parse_stream_url
from loopml.store.redis_errors import redis_errors

if TYPE_CHECKING:
    import pandas as pd
    import redis

    from loopml.models.storage import LoadedModel
    from loopml.monitoring.predictions import PredictionLogger

logger = logging.getLogger("loopml.serving")

#: Suffix of the dead-letter stream, next to the source stream.
DEAD_SUFFIX = ":dead"
DEFAULT_BLOCK_MS = 1_000
DEFAULT_CLAIM_IDLE_MS = 60_000
#: Shortest lease on a consumer name; it must outlast one blocking read plus one batch.
MIN_LEASE_MS = 10_000
#: Transactions retried when another writer touched the sink stream between WATCH and EXEC.
MAX_COMMIT_ATTEMPTS = 100
#: The variant logged stream predictions carry.
VARIANT = "stream"


@dataclass(frozen=True)
class StreamStats:
    """What a stream scorer has done so far.

    Attributes
    ----------
    scored : int
        Messages predicted and written to the sink stream.
    dead_lettered : int
        Messages written to the dead-letter stream instead (bad input, model failure).
    batches : int
        Transactions committed.
    recovered : int
        Of the messages above, those found pending for this consumer at start.
    claimed : int
        Of the messages above, those claimed from other consumers of the group.
    model : str
        The registered model name, or the model URI when it is not registered.
    version : int or None
        The registered version scored with, ``None`` for a ``runs:/`` model.
    group : str
        The consumer group.
    consumer : str
        This scorer's consumer name.
    """

    scored: int
    dead_lettered: int
    batches: int
    recovered: int
    claimed: int
    model: str
    version: int | None
    group: str
    consumer: str

    @property
    def messages(self) -> int:
        """Messages handled: scored plus dead-lettered."""
        return self.scored + self.dead_lettered

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict."""
        return {
            "messages": self.messages,
            "scored": self.scored,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "recovered": self.recovered,
            "claimed": self.claimed,
            "model": self.model,
            "version": self.version,
            "group": self.group,
            "consumer": self.consumer,
        }


def stream_score(
    spec: str,
    source: str,
    sink: str,
    *,
    group: str = "loopml",
    consumer: str | None = None,
    batch_size: int = 64,
    block_ms: int = DEFAULT_BLOCK_MS,
    claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
    max_messages: int | None = None,
    stop_event: threading.Event | None = None,
    on_batch: Callable[[StreamStats], None] | None = None,
    log_predictions: bool = False,
    log_sample_rate: float = 1.0,
) -> StreamStats:
    """Score the messages of a Redis stream into another stream, each exactly once.

    A message holds the model input either as one field per feature (text, converted with
    the signature's types: ``sepal_length=5.1``) or as one ``data`` field holding a JSON
    record (``data={"sepal_length": 5.1, ...}``). Each result is an entry of the sink stream
    with the fields ``request_id`` (the source message id), ``prediction``, ``probabilities``
    (a JSON list, for models that have them), ``model``, ``version`` and ``scored_at``. A
    message that does not fit the signature goes to ``<source stream>:dead`` with the error.

    Parameters
    ----------
    spec : str
        The model: ``name@alias``, ``name/3``, ``models:/...`` or ``runs:/<id>/<path>``.
    source : str
        ``redis://host:port/db?stream=<key>``; the stream and group are created when missing
        (a new group starts at the beginning of the stream).
    sink : str
        The output stream URL, on the same server and database as ``source``: outputs are
        written and inputs acknowledged in one transaction.
    group : str, default "loopml"
        The consumer group; scorers of one group share the work.
    consumer : str, optional
        This scorer's name in the group, the host name by default. A restarted scorer with
        the same name first scores the messages it had read but not finished.
    batch_size : int, default 64
        Messages per read, prediction call and transaction.
    block_ms : int, default 1000
        How long a read waits for new messages; also how soon a stop request is noticed.
    claim_idle_ms : int, default 60000
        Messages pending for another consumer for this long are claimed and scored here (at
        start, then every ``claim_idle_ms``). At least the lease on a consumer name:
        ``max(10000, 3 * block_ms)``.
    max_messages : int, optional
        Stop after handling this many messages (scored or dead-lettered).
    stop_event : threading.Event, optional
        Stop once it is set, after committing the batch in hand.
    on_batch : callable, optional
        Called with the statistics after every committed batch.
    log_predictions : bool, default False
        Also log each scored message to the prediction log (variant ``"stream"``, request
        id the source message id), for monitoring, once its batch is committed. Dead
        letters are not logged. The log is flushed when the scorer stops.
    log_sample_rate : float, default 1.0
        Fraction of the messages logged, chosen by a hash of their id.

    Returns
    -------
    StreamStats
        Counts of messages scored and dead-lettered, and the model version used.

    Raises
    ------
    InvalidInput
        For a bad URL or option, a sink on another server or database, or a key that is not
        a stream.
    Conflict
        When a running scorer holds this consumer name, or this scorer lost it.
    StoreUnavailable
        When Redis cannot be reached or refuses a command.
    NotFound
        When the model does not exist.
    """
    source_url = parse_stream_url(source, field="source")
    sink_url = parse_stream_url(sink, field="sink")
    _check_options(batch_size, block_ms, claim_idle_ms, max_messages, group, consumer)
    if not 0.0 <= log_sample_rate <= 1.0:
        raise InvalidInput(
            f"log_sample_rate must be between 0 and 1, got {log_sample_rate}",
            field="log_sample_rate",
        )
    _check_pair(source_url, sink_url)
    lease_ms = max(MIN_LEASE_MS, 3 * block_ms)
    if claim_idle_ms < lease_ms:
        raise InvalidInput(
            f"claim_idle_ms must be at least the consumer lease of {lease_ms} ms, so that "
            "messages of a scorer that is still working are not claimed",
            field="claim_idle_ms",
        )
    from loopml import models

    model = models.load(spec)
    import redis

    client = redis.Redis.from_url(
        source_url.connection,
        socket_connect_timeout=5,
        socket_timeout=block_ms / 1000 + 30,
        health_check_interval=30,
    )
    scorer = _Scorer(
        client,
        model,
        source_url,
        sink_url.stream,
        group,
        consumer or socket.gethostname(),
        batch_size,
        block_ms,
        claim_idle_ms,
        lease_ms,
        max_messages,
        stop_event or threading.Event(),
        on_batch,
    )
    if log_predictions:
        from loopml.monitoring.predictions import PredictionLogger

        scorer.prediction_logger = PredictionLogger(sample_rate=log_sample_rate)
    try:
        with redis_errors(source_url.display):
            return scorer.run()
    finally:
        client.close()
        if scorer.prediction_logger is not None and not scorer.prediction_logger.close():
            logger.warning("the prediction log was not fully written before stopping")


def _check_options(
    batch_size: int,
    block_ms: int,
    claim_idle_ms: int,
    max_messages: int | None,
    group: str,
    consumer: str | None,
) -> None:
    for name, value in (
        ("batch_size", batch_size),
        ("block_ms", block_ms),
        ("claim_idle_ms", claim_idle_ms),
    ):
        if value < 1:
            raise InvalidInput(f"{name} must be at least 1, got {value}", field=name)
    if max_messages is not None and max_messages < 1:
        raise InvalidInput(
            f"max_messages must be at least 1, got {max_messages}", field="max_messages"
        )
    if not group.strip():
        raise InvalidInput("the consumer group name is empty", field="group")
    if consumer is not None and not consumer.strip():
        raise InvalidInput("the consumer name is empty", field="consumer")


def _check_pair(source: StreamUrl, sink: StreamUrl) -> None:
    """Require one server and database: a transaction cannot span two."""
    if _server(source) != _server(sink):
        raise InvalidInput(
            f"the sink {sink.display} must be on the same Redis server and database as the "
            f"source {source.display}: outputs are written and inputs acknowledged in one "
            "MULTI/EXEC transaction",
            field="sink",
        )
    if sink.stream in (source.stream, source.stream + DEAD_SUFFIX):
        raise InvalidInput(
            f"the sink stream {sink.stream!r} must differ from the source stream and its "
            "dead-letter stream",
            field="sink",
        )


def _server(url: StreamUrl) -> tuple[Any, ...]:
    parts = urlsplit(url.connection)
    return (parts.scheme, parts.username, parts.password, url.host.lower(), url.port, url.db)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str:
    """A prediction as stream field text: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


class _Output(NamedTuple):
    """A scored message: its sink entry, and what the prediction log keeps of it."""

    message: Message
    prediction: Any
    probabilities: list[float] | None
    fields: dict[str, str]


class _Scorer:
    """The read, predict and commit loop of one consumer."""

    def __init__(
        self,
        client: redis.Redis,
        model: LoadedModel,
        source: StreamUrl,
        sink: str,
        group: str,
        consumer: str,
        batch_size: int,
        block_ms: int,
        claim_idle_ms: int,
        lease_ms: int,
        max_messages: int | None,
        stop_event: threading.Event,
        on_batch: Callable[[StreamStats], None] | None,
    ) -> None:
        # redis-py types every reply as maybe-awaitable (one class serves both APIs).
        self.client: Any = client
        self.model = model
        self.source = source.stream
        self.sink = sink
        self.dead = source.stream + DEAD_SUFFIX
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.lease_ms = lease_ms
        self.lease_key = f"{source.stream}:lease:{group}:{consumer}"
        self.token = uuid.uuid4().hex
        self.max_messages = max_messages
        self.stop_event = stop_event
        self.on_batch = on_batch
        self.name: str = model.registered[0] if model.registered else model.source
        self.version: int | None = model.registered[1] if model.registered else None
        self.inputs = Inputs(model.signature)
        self.has_proba = False
        self.prediction_logger: PredictionLogger | None = None
        self.counts = {"scored": 0, "dead_lettered": 0, "batches": 0, "recovered": 0, "claimed": 0}

    # -- the loop -------------------------------------------------------------------------

    def stats(self) -> StreamStats:
        """A snapshot of the counts."""
        return StreamStats(
            **self.counts,
            model=self.name,
            version=self.version,
            group=self.group,
            consumer=self.consumer,
        )

    def run(self) -> StreamStats:
        """Recover pending messages, claim stale ones, then score new ones until stopped."""
        self._warm_up()
        self._prepare_streams()
        if not self._acquire():
            return self.stats()
        try:
            self._recover()
            next_claim = time.monotonic()
            while not self._done():
                if time.monotonic() >= next_claim:
                    self._claim()
                    next_claim = time.monotonic() + self.claim_idle_ms / 1000
                    continue
                reply = self.client.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.source: ">"},
                    count=self._room(),
                    block=self.block_ms,
                )
                entries = _entries(reply)
                if entries:
                    self._handle(entries, None)
                else:
                    self._renew()
        finally:
            self._release()
        return self.stats()

    def _done(self) -> bool:
        handled = self.counts["scored"] + self.counts["dead_lettered"]
        return self.stop_event.is_set() or (
            self.max_messages is not None and handled >= self.max_messages
        )

    def _room(self) -> int:
        """Messages the next read may take, bounded by ``max_messages``."""
        if self.max_messages is None:
            return self.batch_size
        handled = self.counts["scored"] + self.counts["dead_lettered"]
        return max(1, min(self.batch_size, self.max_messages - handled))

    def _recover(self) -> None:
        """Score the messages this consumer read but never acknowledged (a crash)."""
        cursor = "0"
        while not self._done():
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.source: cursor}, count=self._room()
            )
            entries = _entries(reply)
            if not entries:
                return
            cursor = _Scorer._id(entries[-1][0])
            self._handle(entries, "recovered")

    def _claim(self) -> None:
        """Take over messages left pending by consumers that stopped (XAUTOCLAIM)."""
        cursor = "0-0"
        while not self._done():
            reply = self.client.xautoclaim(
                self.source,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=cursor,
                count=self._room(),
            )
            cursor = _Scorer._id(reply[0])
            entries = list(reply[1]) + [(i, None) for i in (reply[2] if len(reply) > 2 else [])]
            if entries:
                self._handle(entries, "claimed")
            if cursor == "0-0":
                return

    @staticmethod
    def _id(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    # -- one batch ------------------------------------------------------------------------

    def _handle(self, entries: list[tuple[Any, Any]], origin: str | None) -> None:
        """Validate, predict and commit one batch of entries."""
        started = time.perf_counter()
        messages = [decode(entry_id, raw) for entry_id, raw in entries]
        for message in messages:
            if message.error is None:
                try:
                    message.record = self.inputs.record(message.fields)
                except InvalidInput as exc:
                    message.error = exc
        outputs = self._predict([m for m in messages if m.error is None])
        dead = [self._dead_entry(m) for m in messages if m.error is not None]
        self._commit([m.id for m in messages], [o.fields for o in outputs], dead)
        # Only now: a batch that failed to commit is scored again, and logged then.
        self._log(outputs, (time.perf_counter() - started) * 1000)
        self.counts["scored"] += len(outputs)
        self.counts["dead_lettered"] += len(dead)
        self.counts["batches"] += 1
        if origin is not None:
            self.counts[origin] += len(messages)
        if self.on_batch is not None:
            self.on_batch(self.stats())

    def _frame(self, messages: list[Message]) -> pd.DataFrame:
        import pandas as pd

        records = [m.record or {} for m in messages]
        if self.inputs.names:
            return pd.DataFrame.from_records(records, columns=self.inputs.names)
        return pd.DataFrame.from_records(records)

    def _infer(self, messages: list[Message]) -> list[_Output]:
        """Predict a list of messages in one call and build their sink entries."""
        import numpy as np

        frame = self._frame(messages)
        predictions = np.asarray(self.model.predict(frame)).tolist()
        probabilities = (
            np.asarray(self.model.predict_proba(frame)).tolist() if self.has_proba else None
        )
        scored_at = _now()
        entries = []
        for index, message in enumerate(messages):
            fields = {"request_id": message.id, "prediction": _text(predictions[index])}
            if probabilities is not None:
                fields["probabilities"] = json.dumps(probabilities[index])
            fields.update(self._model_fields())
            fields["scored_at"] = scored_at
            row_probabilities = None if probabilities is None else probabilities[index]
            entries.append(_Output(message, predictions[index], row_probabilities, fields))
        return entries

    def _predict(self, messages: list[Message]) -> list[_Output]:
        """Predict the good messages; one the model fails on is dead-lettered alone."""
        if not messages:
            return []
        try:
            return self._infer(messages)
        except Exception as exc:  # noqa: BLE001 - the model's own errors vary by flavor
            if len(messages) == 1:
                messages[0].error = InvalidInput(f"the model failed on this message: {exc}")
                return []
        # Score the messages one by one to find those at fault; the model was warmed up on
        # its input example, so a failure here is caused by the message, not the model.
        outputs: list[_Output] = []
        for message in messages:
            try:
                outputs.extend(self._infer([message]))
            except Exception as exc:  # noqa: BLE001 - the model's own errors vary by flavor
                message.error = InvalidInput(f"the model failed on this message: {exc}")
        return outputs

    def _log(self, outputs: list[_Output], latency_ms: float) -> None:
        """Queue the committed predictions for the prediction log (never blocks)."""
        if self.prediction_logger is None or not outputs:
            return
        from loopml.monitoring.predictions import make_prediction_hook

        hook = make_prediction_hook(self.prediction_logger, variant=VARIANT)
        now = datetime.now(UTC)
        for output in outputs:
            hook(
                request_id=output.message.id,
                model=self.name,
                version=self.version,
                inputs=[output.message.record or {}],
                predictions=[output.prediction],
                probabilities=None if output.probabilities is None else [output.probabilities],
                latency_ms=latency_ms,
                timestamp=now,
            )

    def _model_fields(self) -> dict[str, str]:
        return {"model": self.name, "version": "" if self.version is None else str(self.version)}

    def _dead_entry(self, message: Message) -> dict[str, str]:
        error = message.error or InvalidInput("unknown error")
        return {
            "request_id": message.id,
            "error": error.message,
            "field": error.field or "",
            "payload": json.dumps(message.fields, ensure_ascii=False),
            **self._model_fields(),
            "failed_at": _now(),
        }

    def _commit(
        self, ids: list[str], outputs: list[dict[str, str]], dead: list[dict[str, str]]
    ) -> None:
        """Write the outputs and dead letters and acknowledge ``ids``, in one transaction."""
        import redis

        written = ([self.sink] if outputs else []) + ([self.dead] if dead else [])
        for _ in range(MAX_COMMIT_ATTEMPTS):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    # Redis does not roll a transaction back when one command fails inside
                    # it, so the key types are checked before, under WATCH: an XADD onto a
                    # key that is not a stream would otherwise fail while its XACK succeeds.
                    pipe.watch(self.lease_key, *written)
                    self._check_lease(pipe)
                    for key in written:
                        _check_type(pipe, key, "sink" if key == self.sink else "source")
                    pipe.multi()
                    for fields in outputs:
                        pipe.xadd(self.sink, fields)
                    for fields in dead:
                        pipe.xadd(self.dead, fields)
                    pipe.xack(self.source, self.group, *ids)
                    pipe.pexpire(self.lease_key, self.lease_ms)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
        raise StoreUnavailable(
            f"could not commit a batch to {self.sink!r} after {MAX_COMMIT_ATTEMPTS} attempts: "
            "other writers keep changing it"
        )

    # -- start-up, the consumer lease -----------------------------------------------------

    def _warm_up(self) -> None:
        """Predict the input example once, so a broken model fails before any message."""
        self.has_proba = hasattr(self.model.model, "predict_proba")
        example = self.model.input_example
        if example is None:
            return
        self.model.predict(example)
        if self.has_proba:
            try:
                self.model.predict_proba(example)
            except Exception:  # noqa: BLE001 - e.g. a regressor wrapped with a proba method
                self.has_proba = False

    def _prepare_streams(self) -> None:
        """Check the keys are streams; create the source stream and group when missing."""
        import redis

        _check_type(self.client, self.source, "source")
        _check_type(self.client, self.sink, "sink")
        _check_type(self.client, self.dead, "source")
        try:
            self.client.xgroup_create(self.source, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _acquire(self) -> bool:
        """Take the lease on this consumer name; wait for a crashed holder's to expire.

        Returns ``False`` when asked to stop while waiting.
        """
        deadline = time.monotonic() + self.lease_ms / 1000 + 1
        warned = False
        while not self.client.set(self.lease_key, self.token, nx=True, px=self.lease_ms):
            if time.monotonic() > deadline:
                raise Conflict(
                    f"consumer {self.consumer!r} of group {self.group!r} on stream "
                    f"{self.source!r} is in use by another running scorer; give each scorer "
                    "its own consumer name",
                    field="consumer",
                )
            if not warned:
                logger.warning(
                    "consumer %s is leased by another scorer; waiting up to %d ms for the "
                    "lease to expire",
                    self.consumer,
                    self.lease_ms,
                )
                warned = True
            if self.stop_event.wait(0.1):
                return False
        return True

    def _check_lease(self, pipe: Any) -> None:
        holder = pipe.get(self.lease_key)
        if holder is None or holder.decode() != self.token:
            raise Conflict(
                f"this scorer lost its lease on consumer {self.consumer!r} (it stalled for "
                f"more than {self.lease_ms} ms); its pending messages are left to be scored "
                "again",
                field="consumer",
            )

    def _renew(self) -> None:
        """Extend the lease between batches (every transaction also extends it)."""
        import redis

        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.lease_key)
                self._check_lease(pipe)
                pipe.multi()
                pipe.pexpire(self.lease_key, self.lease_ms)
                pipe.execute()
            except redis.WatchError:
                raise Conflict(
                    f"another scorer took consumer {self.consumer!r} while this one was running",
                    field="consumer",
                ) from None

    def _release(self) -> None:
        """Give the lease back, unless another scorer holds it by now."""
        import redis

        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.watch(self.lease_key)
                holder = pipe.get(self.lease_key)
                if holder is not None and holder.decode() == self.token:
                    pipe.multi()
                    pipe.delete(self.lease_key)
                    pipe.execute()
        except redis.RedisError:
            # The lease expires by itself; do not hide the error that ended the run.
            logger.debug("could not release the lease on %s", self.consumer, exc_info=True)


def _check_type(client: Any, key: str, field: str) -> None:
    """Raise when ``key`` exists and is not a stream."""
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind not in ("stream", "none"):
        raise InvalidInput(f"the Redis key {key!r} holds a {kind}, not a stream", field=field)


def _entries(reply: Any) -> list[tuple[Any, Any]]:
    """The ``(id, fields)`` pairs of an XREADGROUP reply on one stream."""
    if not reply:
        return []
    return [(entry_id, fields) for entry_id, fields in reply[0][1]]
