"""Pipelines: ``@lm.step``, ``@lm.pipeline``, caching, executors, schedules and triggers."""

from loopml.pipelines.dsl import Pipeline, Step, StepOutput, pipeline, step
from loopml.pipelines.executors import Executor, InProcessExecutor
from loopml.pipelines.materializers import Materializer, register_materializer
from loopml.pipelines.runner import PipelineResult, load_pipeline, run_pipeline_ref

__all__ = [
    "Executor",
    "InProcessExecutor",
    "Materializer",
    "Pipeline",
    "PipelineResult",
    "Step",
    "StepOutput",
    "load_pipeline",
    "pipeline",
    "register_materializer",
    "run_pipeline_ref",
    "step",
]
