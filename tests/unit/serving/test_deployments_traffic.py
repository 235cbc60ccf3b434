"""Traffic rules without HTTP: sticky weighted assignment, the canary rule and its actions."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from loopml.serving.deployment import CanaryConfig, parse_deployment
from loopml.serving.traffic import (
    CanaryRun,
    DeploymentRuntime,
    RuntimeHooks,
    WindowStats,
    judge,
    sticky_value,
    unit_hash,
)
from loopml.store.base import DeploymentEvent


@dataclass
class FakeServed:
    name: str
    version: int | None


@dataclass
class Registry:
    """Aliases, alias moves and events, as the runtime's hooks see them."""

    aliases: dict[str, int]
    moves: list[tuple[str, int, str]] = field(default_factory=list)
    events: list[DeploymentEvent] = field(default_factory=list)
    retired: list[int | None] = field(default_factory=list)
    quality: float | None = None

    def hooks(self) -> RuntimeHooks[FakeServed]:
        async def prepare(spec: str) -> FakeServed:
            return FakeServed("iris", self.version(spec))

        async def retire(served: FakeServed) -> None:
            self.retired.append(served.version)

        def set_alias(model: str, alias: str, version: int, reason: str) -> None:
            self.aliases[alias] = version
            self.moves.append((alias, version, reason))

        return RuntimeHooks(
            prepare=prepare,
            retire=retire,
            resolve=lambda spec: ("iris", self.version(spec)),
            set_alias=set_alias,
            emit=self.events.append,
            quality_source=lambda variant: self.quality,
        )

    def version(self, spec: str) -> int:
        name, _, rest = spec.partition("@")
        return self.aliases[rest] if rest else int(spec.rsplit("/", 1)[1])


def _runtime(data: dict[str, Any], registry: Registry) -> DeploymentRuntime[FakeServed]:
    config = parse_deployment({"name": "iris-api", "model": "iris", **data})
    return DeploymentRuntime(
        config.name, config.model, config.plans(), registry.hooks(), config=config, seed=7
    )


AB = {
    "sticky_key": "X-User-Id",
    "variants": [
        {"name": "blue", "model": "champion", "weight": 3},
        {"name": "green", "model": 2, "weight": 1},
    ],
}


def test_weighted_shares_over_2000_keys_and_stickiness() -> None:
    async def scenario() -> None:
        runtime = _runtime(AB, Registry({"champion": 1}))
        await runtime.start()
        picks = {f"user-{i}": runtime.choose(f"user-{i}").name for i in range(2000)}
        counts = Counter(picks.values())
        assert abs(counts["blue"] / 2000 - 0.75) < 0.04, counts
        for key, name in list(picks.items())[:200]:
            assert runtime.choose(key).name == name
        unkeyed = Counter(runtime.choose(None).name for _ in range(2000))
        assert abs(unkeyed["green"] / 2000 - 0.25) < 0.04, unkeyed

    asyncio.run(scenario())


def test_unit_hash_is_stable_and_uniform() -> None:
    assert unit_hash("api", "user-1") == unit_hash("api", "user-1")
    assert unit_hash("api", "user-1") != unit_hash("other", "user-1")
    points = [unit_hash("api", str(i)) for i in range(4000)]
    assert 0 <= min(points) and max(points) < 1
    assert abs(sum(p < 0.5 for p in points) / 4000 - 0.5) < 0.03


def test_sticky_value_from_headers_and_bodies() -> None:
    headers = {"X-User-Id": "u-1"}
    records = json.dumps({"inputs": [{"customer": 42, "x": 1.0}]}).encode()
    columns = json.dumps({"columns": {"customer": ["c-9"], "x": [1.0]}}).encode()
    assert sticky_value(None, headers, b"") is None
    assert sticky_value("X-User-Id", headers, b"") == "u-1"
    assert sticky_value("header:X-User-Id", headers, records) == "u-1"
    assert sticky_value("header:X-Other", headers, records) is None
    assert sticky_value("body:customer", headers, records) == "42"
    assert sticky_value("customer", {}, columns) == "c-9"
    assert sticky_value("body:customer", {}, b"not json") is None
    assert (
        sticky_value("body:session", {}, json.dumps({"session": "s", "inputs": []}).encode()) == "s"
    )


def _stats(requests: int, errors: int, latency_ms: float = 5.0) -> WindowStats:
    stats = WindowStats()
    for i in range(requests):
        stats.record(latency_ms, ok=i >= errors)
    return stats


def _run(started: float = 0.0) -> CanaryRun:
    return CanaryRun("canary", 2, 1, True, started, 0.1)


def test_judge_waits_for_evidence_then_rolls_back_or_promotes() -> None:
    rule = CanaryConfig(min_requests=200, duration=60, max_error_rate=0.05)
    assert judge(_run(), _stats(199, 100), rule, now=1000) is None  # too few requests
    verdict = judge(_run(), _stats(200, 62), rule, now=1)
    assert verdict is not None and verdict.kind == "rolled_back"
    assert verdict.reason == "canary rollback: error rate 0.31 > 0.05 over 200 requests"
    assert verdict.evidence["error_rate"] == 0.31 and verdict.evidence["requests"] == 200
    assert judge(_run(), _stats(200, 2), rule, now=30) is None  # healthy but too early
    promoted = judge(_run(), _stats(200, 2), rule, now=61)
    assert promoted is not None and promoted.kind == "promoted"
    assert promoted.reason.startswith("canary promoted: error rate 0.01 <= 0.05 over 200")


def test_judge_latency_and_quality_rules() -> None:
    rule = CanaryConfig(min_requests=10, duration=0, max_p99_latency_ms=50, min_quality=0.8)
    slow = judge(_run(), _stats(10, 0, latency_ms=80), rule, now=1)
    assert slow is not None and slow.kind == "rolled_back"
    assert "p99 latency 80 ms > 50 ms over 10 requests" in slow.reason
    poor = judge(_run(), _stats(10, 0), rule, now=1, quality=0.61)
    assert poor is not None and poor.reason.startswith("canary rollback: quality 0.61 < 0.8")
    unknown = judge(_run(), _stats(10, 0), rule, now=1, quality=None)
    assert unknown is not None and unknown.kind == "promoted"


def test_alias_move_starts_a_canary_that_is_rolled_back_and_the_alias_moved_back() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1})
        runtime = _runtime(
            {
                "on_alias_move": "canary",
                "variants": [{"name": "main", "model": "champion"}],
                "canary": {"share": 0.25, "min_requests": 20, "duration": "1h"},
            },
            registry,
        )
        await runtime.start()
        registry.aliases["champion"] = 2
        await runtime.check_aliases()
        assert [v.name for v in runtime.live()] == ["canary", "main"]
        assert runtime.variant("canary").share == 0.25  # type: ignore[union-attr]
        assert runtime.variant("main").served.version == 1  # type: ignore[union-attr]
        started = registry.events[-1]
        assert (started.kind, started.from_version, started.to_version) == ("canary_started", 1, 2)
        assert started.evidence["trigger"] == "alias_move"
        await runtime.check_aliases()  # the alias still names the canary: nothing new
        assert len(registry.events) == 1

        canary = runtime.variant("canary")
        assert canary is not None
        for i in range(20):
            runtime.record(canary, 3.0, ok=i % 3 != 0)
        verdict = await runtime.evaluate()
        assert verdict is not None and verdict.kind == "rolled_back"
        assert registry.aliases["champion"] == 1
        assert registry.moves == [("champion", 1, verdict.reason)]
        assert "error rate 0.35 > 0.05 over 20 requests" in verdict.reason
        assert [v.name for v in runtime.live()] == ["main"] and runtime.live()[0].share == 1
        event = registry.events[-1]
        assert (event.kind, event.from_version, event.to_version) == ("rolled_back", 2, 1)
        assert event.evidence["baseline"]["variant"] == "main"
        assert registry.retired == [2]
        await runtime.check_aliases()  # the alias is back on the primary's version
        assert runtime.canary is None and len(registry.events) == 2

    asyncio.run(scenario())


def test_configured_canary_is_promoted_and_takes_the_alias() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1})
        runtime = _runtime(
            {
                "variants": [
                    {"name": "main", "model": "champion"},
                    {"name": "next", "model": 2, "role": "canary"},
                    {"name": "dark", "model": 3, "role": "shadow"},
                ],
                "canary": {"share": 0.5, "min_requests": 5, "duration": 0, "min_quality": 0.5},
            },
            registry,
        )
        await runtime.start()
        assert {v.name: v.share for v in runtime.variants} == {"main": 0.5, "next": 0.5, "dark": 0}
        assert [v.name for v in runtime.shadows()] == ["dark"]
        registry.quality = 0.9
        for _ in range(5):
            runtime.record(runtime.variant("next"), 2.0, ok=True)  # type: ignore[arg-type]
        verdict = await runtime.evaluate()
        assert verdict is not None and verdict.kind == "promoted"
        assert verdict.evidence["quality"] == 0.9
        assert registry.aliases["champion"] == 2
        assert registry.moves[-1][2].startswith("canary promoted")
        main = runtime.variant("main")
        assert main is not None and main.served.version == 2 and main.share == 1
        assert runtime.variant("next") is None and registry.retired == [1]
        assert runtime.describe()["last_canary"]["outcome"] == "promoted"
        assert [e.kind for e in registry.events] == ["canary_started", "promoted"]
        await runtime.check_aliases()
        assert len(registry.events) == 2  # the alias already names what main serves

    asyncio.run(scenario())


def test_low_quality_rolls_back_a_configured_canary_without_moving_aliases() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1}, quality=0.2)
        runtime = _runtime(
            {
                "variants": [
                    {"name": "main", "model": "champion"},
                    {"name": "next", "model": 2, "role": "canary"},
                ],
                "canary": {"min_requests": 3, "duration": "1h", "min_quality": 0.5},
            },
            registry,
        )
        await runtime.start()
        for _ in range(3):
            runtime.record(runtime.variant("next"), 2.0, ok=True)  # type: ignore[arg-type]
        verdict = await runtime.evaluate()
        assert verdict is not None and "quality 0.2 < 0.5" in verdict.reason
        assert registry.moves == [] and registry.aliases["champion"] == 1
        assert [v.name for v in runtime.live()] == ["main"]

    asyncio.run(scenario())


def test_swap_policy_hot_swaps_and_records_it() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1})
        runtime = _runtime({"variants": [{"name": "main", "model": "champion"}]}, registry)
        await runtime.start()
        registry.aliases["champion"] = 3
        await runtime.check_aliases()
        assert runtime.variant("main").served.version == 3  # type: ignore[union-attr]
        assert [(e.kind, e.from_version, e.to_version) for e in registry.events] == [
            ("swapped", 1, 3)
        ]
        assert registry.retired == [1]

    asyncio.run(scenario())


def test_canary_on_the_primary_version_is_not_started() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 2})
        runtime = _runtime(
            {
                "variants": [
                    {"name": "main", "model": "champion"},
                    {"name": "next", "model": 2, "role": "canary"},
                ]
            },
            registry,
        )
        await runtime.start()
        assert runtime.canary is None and [v.name for v in runtime.variants] == ["main"]
        assert registry.events == []

    asyncio.run(scenario())


def test_a_failing_event_sink_does_not_stop_decisions() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1})
        hooks = registry.hooks()

        def broken(event: DeploymentEvent) -> None:
            raise RuntimeError("store down")

        hooks.emit = broken
        config = parse_deployment(
            {"name": "x", "model": "iris", "variants": [{"name": "main", "model": "champion"}]}
        )
        runtime = DeploymentRuntime("x", "iris", config.plans(), hooks, config=config)
        await runtime.start()
        registry.aliases["champion"] = 2
        await runtime.check_aliases()
        assert runtime.variant("main").served.version == 2  # type: ignore[union-attr]

    asyncio.run(scenario())


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_canary_share_of_keys(share: float) -> None:
    async def scenario() -> None:
        runtime = _runtime(
            {
                "sticky_key": "X-User-Id",
                "variants": [
                    {"name": "main", "model": "champion"},
                    {"name": "next", "model": 2, "role": "canary"},
                ],
                "canary": {"share": share},
            },
            Registry({"champion": 1}),
        )
        await runtime.start()
        hits = sum(runtime.choose(f"k{i}").name == "next" for i in range(2000))
        assert abs(hits / 2000 - share) < 0.04

    asyncio.run(scenario())


def test_a_canary_on_an_alias_restarts_when_its_alias_moves() -> None:
    async def scenario() -> None:
        registry = Registry({"champion": 1, "challenger": 2})
        runtime = _runtime(
            {
                "variants": [
                    {"name": "main", "model": "champion"},
                    {"name": "next", "model": "challenger", "role": "canary"},
                ],
                "canary": {"min_requests": 1, "duration": 0},
            },
            registry,
        )
        await runtime.start()
        registry.aliases["challenger"] = 3
        await runtime.check_aliases()
        assert runtime.canary is not None and runtime.canary.version == 3
        runtime.record(runtime.variant("next"), 1.0, ok=True)  # type: ignore[arg-type]
        verdict = await runtime.evaluate()
        assert verdict is not None and verdict.kind == "promoted"
        assert registry.aliases["champion"] == 3

    asyncio.run(scenario())
