"""Training: evaluation overall and on slices, and the validation gate.

Examples
--------
>>> from loopml.training import Gate
>>> Gate(thresholds={"f1": 0.8}, min_improvement={"f1": 0.01})
Gate(thresholds={'f1': 0.8}, min_improvement={'f1': 0.01})
"""

from loopml.training.evaluation import EvaluationResult, SliceResult, evaluate
from loopml.training.gate import (
    Gate,
    GateReason,
    GateResult,
    InfraCheckResult,
    infra_check_in_subprocess,
)
from loopml.training.slices import parse_predicate, resolve_slices

__all__ = [
    "EvaluationResult",
    "Gate",
    "GateReason",
    "GateResult",
    "InfraCheckResult",
    "SliceResult",
    "evaluate",
    "infra_check_in_subprocess",
    "parse_predicate",
    "resolve_slices",
]
