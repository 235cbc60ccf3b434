"""Model serving: a FastAPI app with micro-batching and Prometheus metrics, batch scoring.

The web app is imported on first use, so batch scoring (``loopml.serving.batch``) does not
load FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BatchResult": "loopml.serving.batcher",
    "MicroBatcher": "loopml.serving.batcher",
    "Overloaded": "loopml.serving.batcher",
    "build_request_model": "loopml.serving.app",
    "create_serving_app": "loopml.serving.app",
    "batch_score": "loopml.serving.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'loopml.serving' has no attribute {name!r}")
