"""Traffic rules of a deployment: sticky weighted assignment, canaries and shadows.

:class:`DeploymentRuntime` owns the variants one server runs. Requests are assigned by
hashing the sticky key onto ``[0, 1)`` and walking the variants' cumulative shares, so one
key always lands on the same variant while the shares stay put, and the canary's slice sits
at the start of the interval so growing or shrinking it moves as few keys as possible.

The canary rule is judged on the canary's own window of requests: it is rolled back as soon
as it fails with at least ``min_requests`` answered, and promoted once it has passed for
``duration`` and ``min_requests``. Every decision goes to the event sink (the deployment
store) with its evidence; alias moves go through the registry with the same reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from loopml.serving.deployment import CanaryConfig, DeploymentConfig, Role, VariantPlan
from loopml.store.base import DeploymentEvent

logger = logging.getLogger("loopml.serving.traffic")

#: Latencies kept per variant for the p99 of the canary rule.
LATENCY_WINDOW = 10_000
CANARY_VARIANT = "canary"


class Served(Protocol):
    """What the runtime needs to know of a loaded model."""

    name: str
    version: int | None


S = TypeVar("S", bound=Served)


def unit_hash(salt: str, key: str) -> float:
    """Map ``key`` to a stable point of ``[0, 1)`` (the same on every process and run)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def sticky_value(sticky_key: str | None, headers: Mapping[str, str], body: bytes) -> str | None:
    """The sticky key of a request, or None when it carries none.

    Parameters
    ----------
    sticky_key : str or None
        ``header:NAME``, ``body:FIELD`` or a bare name (a header, else a body field).
    headers : mapping
        The request headers (looked up case-insensitively by Starlette).
    body : bytes
        The raw JSON body; a field is read at the top level, in the first record of
        ``inputs`` or the first value of ``columns``.
    """
    if not sticky_key:
        return None
    source, sep, name = sticky_key.partition(":")
    if not sep or source not in ("header", "body"):
        source, name = "any", sticky_key
    if source in ("header", "any"):
        value = headers.get(name)
        if value:
            return value
        if source == "header":
            return None
    return _body_field(body, name)


def _body_field(body: bytes, name: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    value = data.get(name)
    inputs, columns = data.get("inputs"), data.get("columns")
    if value is None and isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        value = inputs[0].get(name)
    if value is None and isinstance(columns, dict):
        column = columns.get(name)
        value = column[0] if isinstance(column, list) and column else None
    return None if value is None or isinstance(value, dict | list) else str(value)


@dataclass(frozen=True)
class PredictionRecord:
    """One variant's predictions for one request, as the ``on_prediction`` hook gets them.

    Attributes
    ----------
    deployment, variant, role : str
        Where the predictions came from; ``role`` is ``shadow`` for shadow copies.
    model : str
        The registered model name.
    version : int or None
        The version that predicted.
    request_id : str
        The request's id (``X-Request-ID``).
    time : int
        Epoch milliseconds of the prediction.
    inputs : pandas.DataFrame
        The validated input rows.
    predictions : list or None
        One prediction per row; None when the variant failed.
    probabilities : list or None
        Class probabilities per row, for classifiers.
    latency_ms : float
        Time the prediction took.
    error : str or None
        Why the variant failed (shadows only: a failed served request is not recorded).
    """

    deployment: str
    variant: str
    role: str
    model: str
    version: int | None
    request_id: str
    time: int
    inputs: Any
    predictions: list[Any] | None
    probabilities: list[list[float]] | None
    latency_ms: float
    error: str | None = None


@dataclass
class WindowStats:
    """Requests, failures and recent latencies of one variant since the window opened."""

    requests: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def record(self, latency_ms: float, ok: bool) -> None:
        """Count one answered request."""
        self.requests += 1
        if not ok:
            self.errors += 1
        self.latencies_ms.append(latency_ms)

    @property
    def error_rate(self) -> float:
        """Failed over answered requests (0 before any)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99_ms(self) -> float | None:
        """The 99th percentile latency of the kept window, or None before any request."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    def summary(self) -> dict[str, Any]:
        """The numbers as JSON-able evidence."""
        p99 = self.p99_ms
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p99_latency_ms": None if p99 is None else round(p99, 3),
        }


@dataclass
class Variant(Generic[S]):
    """A variant being served: its plan, its loaded model and its live share."""

    name: str
    role: Role
    weight: float
    spec: str
    alias: str | None
    served: S
    share: float = 0.0
    stats: WindowStats = field(default_factory=WindowStats)


@dataclass
class CanaryRun:
    """A canary in progress."""

    variant: str
    version: int | None
    baseline_version: int | None
    from_alias_move: bool
    started: float
    share: float


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging a canary, with the reason recorded in the audit trail."""

    kind: Literal["promoted", "rolled_back"]
    reason: str
    evidence: dict[str, Any]


def judge(
    run: CanaryRun,
    stats: WindowStats,
    rule: CanaryConfig,
    now: float,
    quality: float | None = None,
) -> Verdict | None:
    """Decide a canary's fate, or None while there is not enough evidence yet.

    Parameters
    ----------
    run : CanaryRun
        The canary.
    stats : WindowStats
        Its requests since it started.
    rule : CanaryConfig
        The success rule.
    now : float
        The current monotonic time.
    quality : float, optional
        Its live quality metric, when a quality source knows it.
    """
    elapsed = now - run.started
    evidence: dict[str, Any] = {
        **stats.summary(),
        "elapsed_s": round(elapsed, 3),
        "quality": quality,
        "rule": rule.model_dump(mode="json"),
    }
    if stats.requests < rule.min_requests:
        return None
    over = f"over {stats.requests} requests"
    if stats.error_rate > rule.max_error_rate:
        reason = (
            f"canary rollback: error rate {stats.error_rate:.2f} > {rule.max_error_rate:g} {over}"
        )
        return Verdict("rolled_back", reason, evidence)
    p99 = stats.p99_ms
    if rule.max_p99_latency_ms is not None and p99 is not None and p99 > rule.max_p99_latency_ms:
        reason = (
            f"canary rollback: p99 latency {p99:.0f} ms > {rule.max_p99_latency_ms:g} ms {over}"
        )
        return Verdict("rolled_back", reason, evidence)
    if rule.min_quality is not None and quality is not None and quality < rule.min_quality:
        reason = f"canary rollback: quality {quality:.4g} < {rule.min_quality:g} {over}"
        return Verdict("rolled_back", reason, evidence)
    if elapsed < rule.duration:
        return None
    reason = (
        f"canary promoted: error rate {stats.error_rate:.2f} <= {rule.max_error_rate:g} "
        f"{over} in {elapsed:.0f}s"
    )
    return Verdict("promoted", reason, evidence)


@dataclass
class RuntimeHooks(Generic[S]):
    """The effects the runtime needs, injected so tests and other stores can swap them.

    Attributes
    ----------
    prepare : callable
        ``spec -> served`` (async): load and warm a model and start its batcher.
    retire : callable
        ``served -> None`` (async): let its queued requests finish, then stop it.
    resolve : callable
        ``spec -> (name, version)``: where an alias points now.
    set_alias : callable
        ``(model, alias, version, reason) -> None``: move an alias in the registry.
    emit : callable, optional
        Stores a :class:`~loopml.store.base.DeploymentEvent`.
    quality_source : callable, optional
        ``variant -> float | None``: a live quality metric of a variant.
    on_change : callable, optional
        Called after the variants or their shares changed (metrics).
    """

    prepare: Callable[[str], Awaitable[S]]
    retire: Callable[[S], Awaitable[None]]
    resolve: Callable[[str], tuple[str, int | None]]
    set_alias: Callable[[str, str, int, str], None]
    emit: Callable[[DeploymentEvent], None] | None = None
    quality_source: Callable[[str], float | None] | None = None
    on_change: Callable[[], None] | None = None


class DeploymentRuntime(Generic[S]):
    """The variants one server runs, how requests are assigned, and the canary controller.

    Parameters
    ----------
    name : str
        The deployment name (events are recorded under it).
    model : str
        The registered model name.
    plans : sequence of VariantPlan
        The variants to load.
    hooks : RuntimeHooks
        Loading, retiring, registry and event effects.
    config : DeploymentConfig, optional
        Sticky key, canary rule and alias-move policy; defaults when None.
    revision : int
        The stored revision served (0 when not served from the store).
    seed : int, optional
        Seeds the random assignment of requests without a sticky key.
    """

    def __init__(
        self,
        name: str,
        model: str,
        plans: Sequence[VariantPlan],
        hooks: RuntimeHooks[S],
        *,
        config: DeploymentConfig | None = None,
        revision: int = 0,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.plans = list(plans)
        self.hooks = hooks
        self.rule = config.canary if config is not None else CanaryConfig()
        self.on_alias_move = config.on_alias_move if config is not None else "swap"
        self.served_alias = (
            config.served_alias()
            if config is not None
            else next((p.alias for p in plans if p.alias), None)
        )
        self.revision = revision
        self.variants: list[Variant[S]] = []
        self.canary: CanaryRun | None = None
        self.last_canary: dict[str, Any] | None = None
        self.rejected: set[int] = set()
        self.lock = asyncio.Lock()
        self._random = random.Random(seed)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Load every variant, then open the configured canary, if any."""
        for plan in self.plans:
            served = await self.hooks.prepare(plan.spec)
            self.variants.append(
                Variant(plan.name, plan.role, plan.weight, plan.spec, plan.alias, served)
            )
        canary = next((v for v in self.variants if v.role == "canary"), None)
        if canary is not None:
            baseline = self._baseline()
            if baseline is not None and baseline.served.version == canary.served.version:
                logger.info(
                    "canary %s serves the primary's version %s: nothing to canary",
                    canary.name,
                    canary.served.version,
                )
                self.variants.remove(canary)
                await self.hooks.retire(canary.served)
            else:
                await self._open_canary(canary, baseline, from_alias_move=False)
        self.rebalance()

    async def stop(self) -> None:
        """Stop every variant's batcher."""
        retired: set[int] = set()
        for variant in self.variants:
            if id(variant.served) not in retired:
                retired.add(id(variant.served))
                await self.hooks.retire(variant.served)
        self.variants.clear()

    @property
    def ready(self) -> bool:
        """True once the variants are loaded."""
        return bool(self.variants)

    # -- assignment ---------------------------------------------------------------------
    def rebalance(self) -> None:
        """Recompute the shares: the canary's first, the primaries' rest by weight."""
        canary_share = self.canary.share if self.canary is not None else 0.0
        primaries = [v for v in self.variants if v.role == "primary"]
        total = sum(v.weight for v in primaries) or 1.0
        for variant in self.variants:
            if variant.role == "primary":
                variant.share = (1.0 - canary_share) * variant.weight / total
            elif variant.role == "canary" and self.canary is not None:
                variant.share = canary_share if variant.name == self.canary.variant else 0.0
            else:
                variant.share = 0.0
        if self.hooks.on_change is not None:
            self.hooks.on_change()

    def live(self) -> list[Variant[S]]:
        """The variants that answer requests, canary first."""
        ordered = sorted(self.variants, key=lambda v: v.role != "canary")
        return [v for v in ordered if v.role != "shadow" and v.share > 0]

    def shadows(self) -> list[Variant[S]]:
        """The variants that get a copy of every request."""
        return [v for v in self.variants if v.role == "shadow"]

    def choose(self, key: str | None) -> Variant[S]:
        """The variant that answers a request with this sticky key (random without one)."""
        live = self.live()
        if not live:
            raise LookupError("no variant is taking traffic")
        point = unit_hash(self.name, key) if key is not None else self._random.random()
        cumulative = 0.0
        for variant in live:
            cumulative += variant.share
            if point < cumulative:
                return variant
        return live[-1]  # rounding: the shares may sum to slightly under 1

    def record(self, variant: Variant[S], latency_ms: float, ok: bool) -> None:
        """Count an answered request of a variant (the canary rule reads these)."""
        variant.stats.record(latency_ms, ok)

    def variant(self, name: str) -> Variant[S] | None:
        """The variant of this name, if it is being served."""
        return next((v for v in self.variants if v.name == name), None)

    def _baseline(self) -> Variant[S] | None:
        """The primary a canary competes with: the one on the served alias, else the first."""
        primaries = [v for v in self.variants if v.role == "primary"]
        on_alias = [v for v in primaries if self.served_alias and v.alias == self.served_alias]
        chosen = on_alias or primaries
        return chosen[0] if chosen else None

    # -- events -------------------------------------------------------------------------
    async def _emit(
        self,
        kind: str,
        variant: str | None,
        from_version: int | None,
        to_version: int | None,
        evidence: dict[str, Any],
    ) -> None:
        event = DeploymentEvent(
            deployment=self.name,
            revision=self.revision,
            kind=kind,
            variant=variant,
            from_version=from_version,
            to_version=to_version,
            evidence=evidence,
            time=int(time.time() * 1000),
        )
        logger.info(
            "deployment %s: %s %s (%s -> %s) %s",
            self.name,
            kind,
            variant or "",
            from_version,
            to_version,
            evidence.get("reason", ""),
        )
        if self.hooks.emit is None:
            return
        try:
            await asyncio.to_thread(self.hooks.emit, event)
        except Exception:  # a store outage must not stop the server deciding
            logger.exception("could not record the %s event of deployment %s", kind, self.name)

    # -- hot swap and alias moves ---------------------------------------------------------
    async def check_aliases(self) -> None:
        """Follow alias moves: hot swap the variant, or canary the new version."""
        async with self.lock:
            for variant in list(self.variants):
                if variant.alias is None or variant.spec.startswith("runs:/"):
                    continue
                name, version = await asyncio.to_thread(self.hooks.resolve, variant.spec)
                if version is None:
                    continue
                if version == variant.served.version:
                    if variant.alias == self.served_alias:
                        self.rejected.clear()  # a rollback's move back has landed
                    continue
                if self.canary is not None and self.canary.version == version:
                    continue  # the canary already serves it
                if version in self.rejected and variant.alias == self.served_alias:
                    continue  # rolled back; the alias is on its way back
                canary_it = (
                    self.on_alias_move == "canary"
                    and variant.role == "primary"
                    and variant.alias == self.served_alias
                    and (self.canary is None or self.canary.from_alias_move)
                )
                if canary_it:
                    await self._canary_alias_move(variant, name, version)
                else:
                    await self._swap(variant, name, version)

    async def _swap(self, variant: Variant[S], name: str, version: int) -> None:
        old = variant.served
        variant.served = await self.hooks.prepare(f"{name}/{version}")
        variant.stats = WindowStats()
        if self.canary is not None and self.canary.variant == variant.name:
            # The canary's own alias moved: judge the new version from scratch.
            self.canary.version = version
            self.canary.started = time.monotonic()
        logger.info("now serving %s version %s (was %s)", name, version, old.version)
        self.rebalance()
        await self._emit(
            "swapped", variant.name, old.version, version, {"alias": variant.alias or ""}
        )
        if all(v.served is not old for v in self.variants):
            await self.hooks.retire(old)

    async def _canary_alias_move(self, primary: Variant[S], name: str, version: int) -> None:
        if self.canary is not None:
            superseded = self.canary
            await self._close_canary(
                superseded,
                f"superseded: the alias moved on to version {version}",
                {"superseded_by": version},
                move_back=False,
            )
        served = await self.hooks.prepare(f"{name}/{version}")
        taken = {v.name for v in self.variants}
        label = CANARY_VARIANT if CANARY_VARIANT not in taken else f"{CANARY_VARIANT}-v{version}"
        canary = Variant(label, "canary", 1.0, f"{name}/{version}", None, served)
        self.variants.append(canary)
        await self._open_canary(canary, primary, from_alias_move=True)
        self.rebalance()

    async def _open_canary(
        self, canary: Variant[S], baseline: Variant[S] | None, *, from_alias_move: bool
    ) -> None:
        self.canary = CanaryRun(
            variant=canary.name,
            version=canary.served.version,
            baseline_version=None if baseline is None else baseline.served.version,
            from_alias_move=from_alias_move,
            started=time.monotonic(),
            share=self.rule.share,
        )
        for variant in self.variants:
            variant.stats = WindowStats()
        await self._emit(
            "canary_started",
            canary.name,
            self.canary.baseline_version,
            canary.served.version,
            {
                "share": self.rule.share,
                "duration_s": self.rule.duration,
                "trigger": "alias_move" if from_alias_move else "config",
                "alias": self.served_alias,
            },
        )

    # -- canary controller --------------------------------------------------------------
    async def evaluate(self) -> Verdict | None:
        """Judge the running canary once and act on the verdict."""
        async with self.lock:
            run = self.canary
            if run is None:
                return None
            canary = self.variant(run.variant)
            if canary is None:
                self.canary = None
                return None
            quality = await self._quality(canary.name)
            verdict = judge(run, canary.stats, self.rule, time.monotonic(), quality)
            if verdict is None:
                return None
            baseline = self._baseline()
            if baseline is not None:
                verdict.evidence["baseline"] = {
                    "variant": baseline.name,
                    "version": baseline.served.version,
                    **baseline.stats.summary(),
                }
            if verdict.kind == "rolled_back":
                await self._rollback(run, verdict)
            else:
                await self._promote(run, canary, verdict)
            return verdict

    async def _quality(self, variant: str) -> float | None:
        if self.hooks.quality_source is None:
            return None
        try:
            value = await asyncio.to_thread(self.hooks.quality_source, variant)
        except Exception:
            logger.exception("the quality source failed for variant %s", variant)
            return None
        return None if value is None else float(value)

    async def _rollback(self, run: CanaryRun, verdict: Verdict) -> None:
        move_back = (
            run.from_alias_move and bool(self.served_alias) and run.baseline_version is not None
        )
        await self._close_canary(run, verdict.reason, verdict.evidence, move_back=move_back)

    async def _close_canary(
        self, run: CanaryRun, reason: str, evidence: dict[str, Any], *, move_back: bool
    ) -> None:
        """Take a canary out of traffic, move the alias back if asked, record the rollback."""
        canary = self.variant(run.variant)
        self.canary = None
        if canary is not None:
            self.variants.remove(canary)
        self.rebalance()  # traffic first; the registry and the store come second
        moved = False
        if move_back and self.served_alias and run.baseline_version is not None:
            if run.version is not None:
                self.rejected.add(run.version)
            try:
                await asyncio.to_thread(
                    self.hooks.set_alias,
                    self.model,
                    self.served_alias,
                    run.baseline_version,
                    reason,
                )
                moved = True
            except Exception:
                logger.exception(
                    "could not move %s@%s back to version %s",
                    self.model,
                    self.served_alias,
                    run.baseline_version,
                )
        await self._emit(
            "rolled_back",
            run.variant,
            run.version,
            run.baseline_version,
            {**evidence, "reason": reason, "alias_moved_back": moved},
        )
        if canary is not None and all(v.served is not canary.served for v in self.variants):
            await self.hooks.retire(canary.served)
        self.last_canary = {
            "variant": run.variant,
            "version": run.version,
            "outcome": "rolled_back",
            "reason": reason,
        }

    async def _promote(self, run: CanaryRun, canary: Variant[S], verdict: Verdict) -> None:
        if self.served_alias and run.version is not None:
            try:
                await asyncio.to_thread(
                    self.hooks.set_alias, self.model, self.served_alias, run.version, verdict.reason
                )
            except Exception:
                logger.exception("could not promote %s; the canary keeps running", run.variant)
                return
        baseline = self._baseline()
        targets = [
            v
            for v in self.variants
            if v.role == "primary" and (v is baseline or (v.alias and v.alias == self.served_alias))
        ]
        old = [v.served for v in targets]
        for variant in targets:
            variant.served = canary.served
            variant.stats = WindowStats()
        self.variants.remove(canary)
        self.canary = None
        self.last_canary = {
            "variant": run.variant,
            "version": run.version,
            "outcome": "promoted",
            "reason": verdict.reason,
        }
        self.rebalance()
        await self._emit(
            "promoted",
            run.variant,
            run.baseline_version,
            run.version,
            {**verdict.evidence, "reason": verdict.reason, "alias": self.served_alias},
        )
        retired: set[int] = set()
        for served in old:
            if id(served) not in retired and all(v.served is not served for v in self.variants):
                retired.add(id(served))
                await self.hooks.retire(served)

    # -- reporting ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The variants, their shares and the canary, as ``/metadata`` shows them."""
        canary: dict[str, Any] | None = None
        if self.canary is not None:
            run = self.canary
            stats = self.variant(run.variant)
            canary = {
                "variant": run.variant,
                "version": run.version,
                "baseline_version": run.baseline_version,
                "share": run.share,
                "running_s": round(time.monotonic() - run.started, 3),
                "trigger": "alias_move" if run.from_alias_move else "config",
                **(stats.stats.summary() if stats is not None else {}),
            }
        return {
            "deployment": self.name,
            "revision": self.revision,
            "variants": [
                {
                    "name": v.name,
                    "role": v.role,
                    "model": v.served.name,
                    "version": v.served.version,
                    "alias": v.alias,
                    "weight": v.weight,
                    "share": round(v.share, 6),
                }
                for v in self.variants
            ],
            "canary": canary,
            "last_canary": self.last_canary,
        }
