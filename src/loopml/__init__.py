"""loopml: the whole MLOps loop in one package.

Track experiments the way MLflow users expect::

    import loopml as lm

    lm.set_experiment("churn")
    with lm.start_run(run_name="baseline"):
        lm.log_param("C", 1.0)
        lm.log_metric("accuracy", 0.93, step=1)
"""

from typing import Any as _Any

from loopml.config import Settings, load_settings
from loopml.entities import Experiment, Metric, Run, RunStatus
from loopml.errors import (
    Conflict,
    InvalidInput,
    LoopmlError,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Unauthenticated,
)
from loopml.pipelines.dsl import pipeline, step
from loopml.tracking.fluent import (
    ActiveRun,
    active_run,
    delete_run,
    end_run,
    get_run,
    get_service,
    log_artifact,
    log_artifacts,
    log_batch,
    log_dict,
    log_figure,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    restore_run,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
)

__version__ = "0.1.0"

_LAZY_MODULES = (
    "data",
    "datasets",
    "features",
    "loop",
    "models",
    "monitoring",
    "pipelines",
    "registry",
    "triggers",
)


def __getattr__(name: str) -> _Any:
    # lm.data and lm.datasets pull in pyarrow and numpy: import them on first use so that
    # `import loopml` (and every CLI start) stays fast.
    if name == "log_model":
        from loopml.models import log_model

        return log_model
    if name in ("evaluate", "Gate", "tune", "automl"):
        import loopml.registry  # noqa: F401 - stores evaluations and gate results
        import loopml.training

        return getattr(loopml.training, name)
    if name in _LAZY_MODULES:
        import importlib

        target = "pipelines.triggers" if name == "triggers" else name
        return importlib.import_module(f"loopml.{target}")
    raise AttributeError(f"module 'loopml' has no attribute {name!r}")


__all__ = [
    "ActiveRun",
    "Conflict",
    "Experiment",
    "Gate",
    "InvalidInput",
    "LoopmlError",
    "Metric",
    "NotFound",
    "PermissionDenied",
    "Run",
    "RunStatus",
    "Settings",
    "StoreUnavailable",
    "Unauthenticated",
    "__version__",
    "active_run",
    "automl",
    "data",
    "datasets",
    "delete_run",
    "end_run",
    "evaluate",
    "features",
    "get_run",
    "get_service",
    "load_settings",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "loop",
    "models",
    "monitoring",
    "pipeline",
    "pipelines",
    "registry",
    "restore_run",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "triggers",
    "tune",
]
