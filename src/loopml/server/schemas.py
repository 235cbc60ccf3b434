"""Request and response bodies of the REST API (they also make the OpenAPI document).

Request models forbid unknown fields, so a misspelt field is a 422 naming it rather than a
silently ignored value. Names, keys and values are checked again by the tracking service,
which owns those rules; the models only pin the JSON shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from loopml.entities.tracking import RunStatus

#: JSON has no NaN or infinities: they travel as the strings "nan", "inf" and "-inf".
FloatOut = float | str


def _as_text(value: Any) -> Any:
    # One coercing type rather than a union, whose errors would name each member type.
    return str(value) if isinstance(value, bool | int | float) else value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


#: Tag and param values; numbers and booleans are stored as their string form.
TextValue = Annotated[str, BeforeValidator(_as_text)]
#: A metric value: a JSON number, or "nan" / "inf" / "-inf" (booleans are refused).
MetricValue = Annotated[float, BeforeValidator(_not_bool)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: str = Field(description="Machine-readable code: invalid_input, not_found, ...")
    message: str = Field(description="What went wrong, for a human.")
    field: Annotated[str | None, Field(description="The input field at fault, if any.")] = None


class HealthOut(BaseModel):
    """``GET /health``."""

    status: Literal["ok"]
    version: str


# -- experiments ---------------------------------------------------------------------------
class ExperimentCreate(_Request):
    """Create an experiment."""

    name: str
    tags: dict[str, TextValue] | None = None


class ExperimentCreated(BaseModel):
    """The id of a new experiment."""

    experiment_id: str


class ExperimentOut(BaseModel):
    """An experiment."""

    experiment_id: str
    name: str
    lifecycle_stage: Literal["active", "deleted"]
    creation_time: int
    last_update_time: int
    tags: dict[str, str]


class ExperimentList(BaseModel):
    """Experiments ordered by id."""

    experiments: list[ExperimentOut]


class ExperimentKeys(BaseModel):
    """The distinct keys an experiment's active runs use, each list sorted."""

    metrics: list[str]
    params: list[str]
    tags: list[str]


class TagIn(_Request):
    """One tag."""

    key: str
    value: TextValue


# -- runs ----------------------------------------------------------------------------------
class RunCreate(_Request):
    """Start a run; omitted fields get server-side defaults (generated name, now...)."""

    experiment_id: str
    run_name: str | None = None
    tags: dict[str, TextValue] | None = None
    parent_run_id: str | None = None
    user: str | None = None
    start_time: Annotated[int | None, Field(description="Epoch milliseconds; default now.")] = None
    host: str | None = None
    pid: int | None = None


class RunOut(BaseModel):
    """A run with its latest metrics, params and tags."""

    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    lifecycle_stage: Literal["active", "deleted"]
    user: str
    parent_run_id: str | None
    host: str
    pid: int | None
    heartbeat_time: int | None
    metrics: dict[str, FloatOut]
    params: dict[str, str]
    tags: dict[str, str]


class RunEnd(_Request):
    """End a run."""

    status: Literal["FINISHED", "FAILED", "KILLED"] = "FINISHED"
    end_time: Annotated[int | None, Field(description="Epoch milliseconds; default now.")] = None


class RunStatusIn(_Request):
    """Set a run's status (also back to RUNNING, to resume it)."""

    status: RunStatus
    end_time: int | None = None
    only_if_running: Annotated[
        bool, Field(description="Change nothing unless the run is RUNNING (used by run gc).")
    ] = False


class RunStatusOut(BaseModel):
    """Whether a status change happened."""

    changed: bool


class RunRename(_Request):
    """Rename a run."""

    run_name: str


class HeartbeatIn(_Request):
    """A liveness signal; ``time_ms`` defaults to the server's clock."""

    time_ms: int | None = None


class MetricIn(_Request):
    """One metric value."""

    key: str
    value: MetricValue
    timestamp: Annotated[int | None, Field(description="Epoch milliseconds; default now.")] = None
    step: int | None = None


class MetricOut(BaseModel):
    """One stored metric value."""

    key: str
    value: FloatOut
    timestamp: int
    step: int


class MetricHistory(BaseModel):
    """Every value of one metric, by step then timestamp."""

    metrics: list[MetricOut]


class ParamIn(_Request):
    """One write-once param."""

    key: str
    value: TextValue | None


class LogBatch(_Request):
    """Metrics, params and tags written in one transaction: all or none."""

    metrics: list[MetricIn] = Field(default_factory=list)
    params: dict[str, TextValue | None] = Field(default_factory=dict)
    tags: dict[str, TextValue] = Field(default_factory=dict)


class RunSearchOut(BaseModel):
    """One page of runs; the ``next_*`` fields are null on the last page."""

    runs: list[RunOut]
    next_offset: int | None
    next_page_token: str | None


class GcIn(_Request):
    """Mark RUNNING runs whose process is gone as KILLED."""

    timeout: Annotated[
        float | None,
        Field(ge=0, description="Seconds without heartbeat; default the server setting."),
    ] = None


class GcOut(BaseModel):
    """The runs marked KILLED."""

    killed: list[str]


# -- artifacts -----------------------------------------------------------------------------
class ArtifactOut(BaseModel):
    """One file of a run."""

    path: str
    sha256: str
    size: int


class ArtifactList(BaseModel):
    """A run's files under a prefix, sorted by path."""

    artifacts: list[ArtifactOut]


class ArtifactIndexIn(_Request):
    """Point a run path at an already stored blob."""

    sha256: str
    size: Annotated[int, Field(ge=0)]


# -- tokens --------------------------------------------------------------------------------
class TokenCreate(_Request):
    """Issue a token."""

    name: str
    role: Literal["reader", "writer", "admin"] = "reader"


class TokenOut(BaseModel):
    """A token, without its secret or hash."""

    name: str
    role: str
    created_time: int


class TokenCreated(TokenOut):
    """A new token; ``token`` is the secret, shown only this once."""

    token: str


class TokenList(BaseModel):
    """Every token."""

    tokens: list[TokenOut]
