"""Model monitoring: the prediction log, ground truth, monitors, alerts and reports.

Examples
--------
>>> import loopml as lm
>>> frame = lm.monitoring.predictions("churn", since=yesterday)          # doctest: +SKIP
>>> lm.monitoring.log_labels(pd.DataFrame({"request_id": ["r1"], "label": [1]}))  # doctest: +SKIP
>>> lm.monitoring.label_stats("churn")                                    # doctest: +SKIP
>>> lm.monitoring.save(lm.monitoring.Monitor("churn"))                    # doctest: +SKIP
>>> lm.monitoring.run("churn").verdict                                    # doctest: +SKIP

Every name but ``predictions`` (the reader, bound at import) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PredictionLogger": "loopml.monitoring.predictions",
    "PredictionRecord": "loopml.monitoring.predictions",
    "make_prediction_hook": "loopml.monitoring.predictions",
    "feedback_payload_to_frame": "loopml.monitoring.labels",
    "label_stats": "loopml.monitoring.labels",
    "log_labels": "loopml.monitoring.labels",
    "LastN": "loopml.monitoring.monitors",
    "Monitor": "loopml.monitoring.monitors",
    "MonitorResult": "loopml.monitoring.monitors",
    "TimeWindow": "loopml.monitoring.monitors",
    "delete": "loopml.monitoring.monitors",
    "get": "loopml.monitoring.monitors",
    "history": "loopml.monitoring.monitors",
    "list_monitors": "loopml.monitoring.monitors",
    "load_monitor": "loopml.monitoring.monitors",
    "report": "loopml.monitoring.monitors",
    "resolve_alerts": "loopml.monitoring.monitors",
    "run": "loopml.monitoring.monitors",
    "save": "loopml.monitoring.monitors",
    "status": "loopml.monitoring.monitors",
    "Rule": "loopml.monitoring.checks",
}

# ``predictions`` names both a submodule and its reader function. Importing the submodule
# sets the package attribute to the module; binding the function here, once, after that
# import keeps ``lm.monitoring.predictions`` the function whatever is imported later.
from loopml.monitoring.predictions import predictions as predictions  # noqa: E402

__all__ = sorted([*_EXPORTS, "predictions"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'loopml.monitoring' has no attribute {name!r}")
