"""Training: evaluation overall and on slices, and the validation gate.

Examples
--------
>>> from loopml.training import Gate
>>> Gate(thresholds={"f1": 0.8}, min_improvement={"f1": 0.01})
Gate(thresholds={'f1': 0.8}, min_improvement={'f1': 0.01})
"""

from loopml.training.automl import AutoMLResult, automl, available_families
from loopml.training.evaluation import EvaluationResult, SliceResult, evaluate
from loopml.training.gate import (
    Gate,
    GateReason,
    GateResult,
    InfraCheckResult,
    infra_check_in_subprocess,
)
from loopml.training.slices import parse_predicate, resolve_slices
from loopml.training.tuning import TuneResult, optuna_storage, parse_space, tune

__all__ = [
    "AutoMLResult",
    "EvaluationResult",
    "Gate",
    "GateReason",
    "GateResult",
    "InfraCheckResult",
    "SliceResult",
    "TuneResult",
    "automl",
    "available_families",
    "evaluate",
    "infra_check_in_subprocess",
    "optuna_storage",
    "parse_predicate",
    "parse_space",
    "resolve_slices",
    "tune",
]
