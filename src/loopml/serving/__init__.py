"""Model serving: online (deployments, micro-batching, metrics), batch and stream scoring, bundles.

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
    "build_bundle": "loopml.serving.bundle",
    "DeploymentConfig": "loopml.serving.deployment",
    "load_deployment": "loopml.serving.deployment",
    "parse_deployment": "loopml.serving.deployment",
    "stream_score": "loopml.serving.stream",
    "StreamStats": "loopml.serving.stream",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'loopml.serving' has no attribute {name!r}")
