"""Connects evaluation and the validation gate to the registry.

- Evaluating a model loaded from the registry (``lm.models.load("churn/3")``) stores the
  evaluation with that version.
- ``gate.check(model_version)`` takes the version's stored evaluation, the current champion's
  (none for the first model), runs the infrastructure check (the version loads in a fresh
  process from the store and predicts on its input example), and stores the decision with
  the version.
"""

from __future__ import annotations

import json
import os
from typing import Any

from loopml.entities.registry import ModelVersion
from loopml.errors import InvalidInput, NotFound
from loopml.models.storage import LoadedModel
from loopml.registry.service import RegistryService
from loopml.training.evaluation import EvaluationResult, register_evaluation_recorder
from loopml.training.gate import Gate, GateInputs, GateResult, register_gate_resolver
from loopml.training.infra import InfraCheckResult, infra_check_in_subprocess

_INFRA_SNIPPET = """
import json, time
import loopml as lm
started = time.perf_counter()
model = lm.models.load({spec!r})
loaded = time.perf_counter()
example = model.input_example
if example is None:
    print(json.dumps({{"loaded": True, "predict_ok": False, "latency_ms": 0.0,
                      "error": "the model was logged without an input example"}}))
else:
    model.predict(example)
    print(json.dumps({{"loaded": True, "predict_ok": True,
                      "latency_ms": (time.perf_counter() - loaded) * 1000}}))
"""


def _service() -> RegistryService:
    from loopml.registry import get_service

    return get_service()


def _record_evaluation(model: Any, result: EvaluationResult) -> None:
    if isinstance(model, LoadedModel) and model.registered is not None:
        name, version = model.registered
        _service().record(name, version, "evaluation", result.to_dict())


def infrastructure_check(version: ModelVersion, timeout_s: float = 120.0) -> InfraCheckResult:
    """Load the version in a fresh process from the store and predict on its input example."""
    from loopml.config import load_settings

    settings = load_settings()
    env = {
        **os.environ,
        "LOOPML_HOME": str(settings.home),
        "LOOPML_STORE_URI": settings.resolved_store_uri,
        "LOOPML_ARTIFACT_URI": settings.resolved_artifact_uri,
    }
    code = _INFRA_SNIPPET.format(spec=f"{version.name}/{version.version}")
    return infra_check_in_subprocess(code, timeout_s, env=env)


def _resolve(candidate: ModelVersion, gate: Gate) -> GateInputs:
    if candidate.evaluation is None:
        raise InvalidInput(
            f"{candidate.name}/{candidate.version} has no stored evaluation: run "
            f"lm.evaluate(lm.models.load('{candidate.name}/{candidate.version}'), data, "
            "target=...) first",
            field="evaluation",
        )
    service = _service()
    champion = None
    try:
        current = service.resolve(f"{candidate.name}@champion")
    except NotFound:
        current = None
    if current is not None and current.version != candidate.version and current.evaluation:
        champion = EvaluationResult.from_dict(current.evaluation)
    infra = infrastructure_check(candidate) if gate.require_infra_check else None

    def record(result: GateResult) -> None:
        service.record(
            candidate.name,
            candidate.version,
            "gate",
            json.loads(json.dumps(result.to_dict(), default=str)),
        )

    return GateInputs(
        candidate=EvaluationResult.from_dict(candidate.evaluation),
        champion=champion,
        infra=infra,
        record=record,
    )


register_evaluation_recorder(LoadedModel, _record_evaluation)
register_gate_resolver(ModelVersion, _resolve)
