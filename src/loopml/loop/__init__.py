"""Continuous training: policies that retrain, gate and roll out a model on their own.

A :class:`Policy` names a registered model, the pipeline that trains it, the dataset its
training window is cut from, its triggers, its window, its gate and its rollout.
:func:`apply` stores it; a :class:`Controller` (``loopml loop start``) consumes trigger
events from the scheduler and the monitors, assembles the window, runs the pipeline, applies
the gate against the current champion, rolls the candidate out (directly, or as a canary the
model server promotes or rolls back) and records every decision with its evidence as a
:class:`LoopEvent` (:func:`history`, ``loopml loop history``).

Examples
--------
>>> import loopml as lm  # doctest: +SKIP
>>> policy = lm.loop.Policy(  # doctest: +SKIP
...     name="bikes", model="bikeshare", pipeline=train, data="bikes",
...     timestamp="ts", label="label",
...     triggers=[lm.loop.Drift(share=0.3), lm.loop.Manual()],
...     window=lm.loop.FixedWindow(days=30),
...     gate=lm.Gate(min_improvement={"accuracy": 0.0}, require_infra_check=False),
...     rollout=lm.loop.Direct(), cooldown="6h", max_retrains_per_day=4,
... )
>>> lm.loop.apply(policy)  # doctest: +SKIP
>>> lm.loop.trigger("bikes", reason="new labels arrived")  # doctest: +SKIP
>>> lm.loop.Controller().run_once()  # doctest: +SKIP
>>> [e.kind for e in lm.loop.history("bikes")]  # doctest: +SKIP
['triggered', 'window_built', 'trained', 'gate_passed', 'promoted']
"""

from loopml.loop.controller import Controller
from loopml.loop.policy import (
    Canary,
    Cron,
    Degradation,
    Direct,
    Drift,
    FixedWindow,
    GrowingWindow,
    Manual,
    NewData,
    Policy,
    RepresentativeSample,
)
from loopml.loop.service import (
    EVENT_KINDS,
    LoopEvent,
    StoredPolicy,
    apply,
    get,
    history,
    list_policies,
    trigger,
)

__all__ = [
    "EVENT_KINDS",
    "Canary",
    "Controller",
    "Cron",
    "Degradation",
    "Direct",
    "Drift",
    "FixedWindow",
    "GrowingWindow",
    "LoopEvent",
    "Manual",
    "NewData",
    "Policy",
    "RepresentativeSample",
    "StoredPolicy",
    "apply",
    "get",
    "history",
    "list_policies",
    "trigger",
]
