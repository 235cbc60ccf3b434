"""The pipeline API: ``@lm.step`` and ``@lm.pipeline`` on plain functions.

Calling steps inside a pipeline function does not run them: each call returns a
:class:`StepOutput` placeholder and records a node, so the DAG follows data dependencies
(a step depends on the steps whose outputs it receives). The runner then executes the graph,
independent steps concurrently. Each step's plain function stays available as ``step.fn``
for unit tests.

Examples
--------
>>> import loopml as lm
>>> @lm.step
... def load(rows: int) -> list[int]:
...     return list(range(rows))
>>> @lm.step
... def total(values: list[int]) -> int:
...     return sum(values)
>>> @lm.pipeline
... def count(rows: int = 10) -> int:
...     return total(load(rows))
>>> count(rows=4).output()  # doctest: +SKIP
6
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from loopml.errors import InvalidInput
from loopml.pipelines.hashing import code_hash, combine

if TYPE_CHECKING:
    from loopml.pipelines.executors import Executor
    from loopml.pipelines.runner import PipelineResult

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]{0,127}$")


@dataclass(frozen=True)
class StepOptions:
    """How a step runs: caching, retries with exponential backoff, timeout, resources."""

    cache: bool = True
    retries: int = 0
    retry_backoff: float = 1.0
    timeout: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("output",)
    materializer: str | None = None


class Step:
    """A function made into a pipeline step (see :func:`step`)."""

    def __init__(self, fn: Callable[..., Any], name: str, options: StepOptions) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def version(self) -> str:
        """sha256 of the step's code and its own helpers."""
        return code_hash(self.fn)

    @property
    def reference(self) -> str:
        """``module:qualname`` by which worker processes import the step."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Record a call inside a pipeline definition; return its output placeholder(s)."""
        graph = _current_graph.get()
        if graph is None:
            raise InvalidInput(
                f"step {self.name!r} was called outside a pipeline: call it from an "
                f"@lm.pipeline function, or call {self.name}.fn(...) to run the plain function",
                field="step",
            )
        return graph.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@dataclass(frozen=True)
class StepOutput:
    """A placeholder for an output of a step call inside a pipeline definition."""

    node: str
    output: str

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} is only known when the pipeline runs: "
            "branch inside a step, not in the pipeline function",
            field="pipeline",
        )

    def __iter__(self) -> Iterator[Any]:
        raise InvalidInput(
            f"step {self.node!r} has one output; declare several with "
            "@lm.step(outputs=('a', 'b')) to unpack them",
            field="pipeline",
        )


@dataclass
class Node:
    """One step call in a pipeline graph."""

    name: str
    step: Step
    inputs: dict[str, StepOutput]
    params: dict[str, Any]

    @property
    def upstream(self) -> list[str]:
        """Names of the nodes this one reads from, without repeats."""
        return list(dict.fromkeys(ref.node for ref in self.inputs.values()))


class Graph:
    """The nodes recorded while a pipeline function runs in definition mode."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Record a step call: outputs of other calls are inputs, everything else params."""
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"step {step.name!r}: {exc}", field=step.name) from exc
        bound.apply_defaults()
        inputs: dict[str, StepOutput] = {}
        params: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if isinstance(value, StepOutput):
                inputs[name] = value
            elif _contains_output(value):
                raise InvalidInput(
                    f"step {step.name!r}: argument {name!r} nests step outputs in a container; "
                    "pass each output as its own argument",
                    field=name,
                )
            else:
                try:
                    json.dumps(value)
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(
                        f"step {step.name!r}: parameter {name!r} must be JSON-able "
                        f"(got {type(value).__name__}); pass data between steps as outputs",
                        field=name,
                    ) from exc
                params[name] = value
        node_name = step.name
        counter = 2
        while node_name in self.nodes:
            node_name = f"{step.name}_{counter}"
            counter += 1
        self.nodes[node_name] = Node(node_name, step, inputs, params)
        outputs = [StepOutput(node_name, o) for o in step.options.outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def order(self) -> list[str]:
        """Node names in a topological order (Kahn); a cycle is an error."""
        indegree = {name: len(node.upstream) for name, node in self.nodes.items()}
        for name, node in self.nodes.items():
            for upstream in node.upstream:
                if upstream not in self.nodes:
                    raise InvalidInput(
                        f"step {name!r} reads from unknown step {upstream!r}", field=name
                    )
        ready = [n for n, d in indegree.items() if d == 0]
        ordered = []
        downstream: dict[str, list[str]] = {n: [] for n in self.nodes}
        for name, node in self.nodes.items():
            for upstream in node.upstream:
                downstream[upstream].append(name)
        while ready:
            name = ready.pop(0)
            ordered.append(name)
            for child in downstream[name]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(ordered) != len(self.nodes):
            cyclic = sorted(set(self.nodes) - set(ordered))
            raise InvalidInput(
                f"the pipeline has a cycle through {', '.join(cyclic)}", field="pipeline"
            )
        return ordered


def _contains_output(value: Any) -> bool:
    if isinstance(value, StepOutput):
        return True
    if isinstance(value, list | tuple | set):
        return any(_contains_output(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_output(v) for v in value.values())
    return False


_current_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "loopml_pipeline_graph", default=None
)


@contextmanager
def _defining(graph: Graph) -> Iterator[None]:
    token = _current_graph.set(graph)
    try:
        yield
    finally:
        _current_graph.reset(token)


class Pipeline:
    """A function made into a pipeline (see :func:`pipeline`)."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def validate_params(self, params: dict[str, Any] | Any | None) -> dict[str, Any]:
        """Check parameters against the function's annotations (pydantic); return them."""
        from pydantic import ValidationError, create_model

        values: dict[str, Any]
        if params is None:
            values = {}
        elif isinstance(params, dict):
            values = dict(params)
        else:
            raise InvalidInput("params must be a mapping of name to value", field="params")
        unknown = sorted(set(values) - set(self.signature.parameters))
        if unknown:
            raise InvalidInput(
                f"pipeline {self.name!r} has no parameter(s) {', '.join(unknown)}", field=unknown[0]
            )
        fields: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            annotation = (
                Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
            )
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[name] = (annotation, default)
        model = create_model(f"{self.name}_params", **fields)
        try:
            validated = model(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"pipeline {self.name!r} parameter {name}: {first['msg']}", field=name
            ) from exc
        return {name: getattr(validated, name) for name in self.signature.parameters}

    def build(self, params: dict[str, Any]) -> tuple[Graph, Any]:
        """Run the function in definition mode: return the graph and its return value."""
        graph = Graph()
        with _defining(graph):
            result = self.fn(**params)
        if not graph.nodes:
            raise InvalidInput(f"pipeline {self.name!r} calls no steps", field="pipeline")
        return graph, result

    def version(self, graph: Graph) -> str:
        """sha256 of the pipeline's code and every step version in the graph."""
        steps = sorted(f"{n}:{node.step.version}" for n, node in graph.nodes.items())
        return combine(code_hash(self.fn), *steps)

    def run(
        self,
        params: dict[str, Any] | None = None,
        *,
        executor: str | Executor = "inprocess",
        cache: bool = True,
        trigger: str = "manual",
        max_workers: int | None = None,
    ) -> PipelineResult:
        """Run the pipeline and return its result (also when a step failed).

        Parameters
        ----------
        params : dict, optional
            Pipeline parameters, validated against the function's annotations.
        executor : {"inprocess", "process", "dask"} or Executor
            Where steps run; ``"dask"`` starts a LocalCluster unless
            ``LOOPML_DASK_SCHEDULER`` names a scheduler address.
        cache : bool
            ``False`` re-runs every step of this run.
        trigger : str
            What started the run (recorded).
        max_workers : int, optional
            Steps running at the same time (default: the executor's choice).
        """
        from loopml.pipelines.runner import PipelineRunner

        return PipelineRunner(
            self, executor=executor, cache=cache, trigger=trigger, max_workers=max_workers
        ).run(params)

    def __call__(self, **params: Any) -> PipelineResult:
        """Run with these parameters and the default options (see :meth:`run`)."""
        return self.run(params)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(f"{name!r} is not a valid step or pipeline name", field="name")
    return name


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    resources: dict[str, float] | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    materializer: str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    resources: dict[str, float] | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    materializer: str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step.

    Parameters
    ----------
    cache : bool
        Reuse outputs of an earlier successful execution with the same code, inputs and
        parameters.
    retries : int
        Extra attempts after a failure; attempt ``k`` waits ``retry_backoff * 2**(k-1)`` s.
    timeout : float, optional
        Seconds an attempt may take before it counts as failed.
    resources : dict, optional
        Resource hints for executors that schedule by resources (Dask: worker resources).
    outputs : tuple of str, optional
        Names of several outputs; the function then returns a tuple of that length.
    materializer : str, optional
        Force a materializer by name (e.g. ``"pickle"`` for values nothing else stores).
    """
    if retries < 0 or retry_backoff < 0 or (timeout is not None and timeout <= 0):
        raise InvalidInput("retries and retry_backoff must be >= 0 and timeout > 0", field="step")
    names = tuple(outputs) if outputs else ("output",)
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise InvalidInput(f"invalid output names {names!r}", field="outputs")
    options = StepOptions(
        cache=cache,
        retries=retries,
        retry_backoff=retry_backoff,
        timeout=timeout,
        resources=dict(resources or {}),
        outputs=names,
        materializer=materializer,
    )

    def decorate(function: Callable[..., Any]) -> Step:
        return Step(function, _check_name(name or function.__name__), options)

    return decorate(fn) if fn is not None else decorate


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function that calls steps a pipeline; its parameters are typed and recorded."""

    def decorate(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, _check_name(name or function.__name__))

    return decorate(fn) if fn is not None else decorate


def outputs_of(result: Any) -> dict[str, StepOutput]:
    """The placeholders a pipeline function returned, by name."""
    if result is None:
        return {}
    if isinstance(result, StepOutput):
        return {"output": result}
    if isinstance(result, tuple | list):
        return {f"output_{i}": r for i, r in enumerate(result) if isinstance(r, StepOutput)}
    if isinstance(result, dict):
        return {str(k): v for k, v in result.items() if isinstance(v, StepOutput)}
    return {}
