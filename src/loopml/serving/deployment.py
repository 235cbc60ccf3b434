"""Deployment configuration: which versions of a model one server runs, and how traffic flows.

A deployment names a registered model and its variants. Each variant serves an alias
(``champion``) or a pinned version (``3``) in one role: ``primary`` variants share the traffic
by weight (A/B), a ``canary`` variant gets ``canary.share`` of it until the canary rule
promotes or rolls it back, and a ``shadow`` variant sees a copy of every request whose
predictions are recorded but never returned.

Examples
--------
>>> config = parse_deployment(
...     {
...         "name": "iris-api",
...         "model": "iris",
...         "sticky_key": "X-User-Id",
...         "variants": [
...             {"name": "blue", "model": "champion", "weight": 90},
...             {"name": "green", "model": 2, "weight": 10},
...         ],
...     }
... )
>>> [v.spec for v in config.plans()]
['iris@champion', 'iris/2']
>>> parse_duration("10m")
600.0
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from loopml.errors import InvalidInput, NotFound
from loopml.store.base import DeploymentEvent

Role = Literal["primary", "canary", "shadow"]
OnAliasMove = Literal["swap", "canary"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,99}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SPEC = re.compile(r"^(?:models:/)?(?P<name>[^@/:]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
#: The variant name of a server started for a single model (``loopml serve churn@champion``).
SINGLE_VARIANT = "primary"


def parse_duration(value: Any) -> float:
    """Turn ``"500ms"``, ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"`` or seconds into seconds.

    Raises
    ------
    ValueError
        When ``value`` is neither a non-negative number nor such a string.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '10m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration: use seconds or a number with ms, s, m, h or d "
            "(such as '10m')"
        )
    return float(match.group("value")) * _UNITS[match.group("unit") or "s"]


Seconds = Annotated[float, BeforeValidator(parse_duration)]


def _model_spec(value: Any) -> Any:
    """A variant's model: a version number (``3`` or ``"3"``) or an alias (``champion``)."""
    if isinstance(value, bool):
        raise ValueError("give an alias such as 'champion' or a version number")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a version number starts at 1")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _model_spec(int(text))
        if not _ALIAS.match(text) or text == "latest":
            raise ValueError(
                f"{value!r} is neither a version number nor an alias (a lowercase identifier "
                "such as 'champion')"
            )
        return text
    raise ValueError("give an alias such as 'champion' or a version number")


class CanaryConfig(BaseModel):
    """How a canary is run and judged.

    Attributes
    ----------
    share : float
        Fraction of the traffic the canary gets, in (0, 1).
    duration : float
        Seconds (or ``"10m"``) the canary must run before it can be promoted.
    min_requests : int
        Requests the canary must answer before any verdict.
    max_error_rate : float
        Failed predictions over requests above which the canary is rolled back.
    max_p99_latency_ms : float, optional
        99th percentile latency above which the canary is rolled back.
    min_quality : float, optional
        A live quality metric (from the server's ``quality_source`` hook) below which the
        canary is rolled back; unknown quality (None) never fails the rule.
    check_interval : float
        Seconds between two evaluations of the rule.
    """

    model_config = ConfigDict(extra="forbid")

    share: float = Field(default=0.1, gt=0, lt=1)
    duration: Seconds = Field(default=600.0, ge=0)
    min_requests: int = Field(default=100, ge=1)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p99_latency_ms: float | None = Field(default=None, gt=0)
    min_quality: float | None = None
    check_interval: Seconds = Field(default=5.0, gt=0)


class VariantConfig(BaseModel):
    """One variant: a name, the version it serves, its weight and its role."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME.pattern)
    model: Annotated[int | str, BeforeValidator(_model_spec)]
    weight: float = Field(default=1.0, gt=0)
    role: Role = "primary"


@dataclass(frozen=True)
class VariantPlan:
    """What the server loads for a variant.

    Attributes
    ----------
    name : str
        The variant name returned with each prediction.
    role : {"primary", "canary", "shadow"}
        How it takes traffic.
    weight : float
        Its weight among the primary variants.
    spec : str
        What the model loader is given (``iris@champion``, ``iris/3``, ``runs:/...``).
    alias : str or None
        The registry alias it follows (and may be hot swapped or canaried on), or None.
    """

    name: str
    role: Role
    weight: float
    spec: str
    alias: str | None


class DeploymentConfig(BaseModel):
    """A deployment: one registered model served as one or more variants.

    Attributes
    ----------
    name : str
        The deployment name (its revisions and events are stored under it).
    model : str
        The registered model name.
    variants : list of VariantConfig
        At least one ``primary``; at most one ``canary``; any number of ``shadow``.
    sticky_key : str, optional
        Where the key that pins a caller to a variant comes from: ``header:X-User-Id``,
        ``body:user_id`` (a top-level field or a field of the first record), or a bare name
        (a header of that name, else a body field). Without a key, variants are drawn at
        random by weight.
    canary : CanaryConfig
        Share, duration and success rule of canaries.
    on_alias_move : {"swap", "canary"}
        When the alias a primary serves moves: switch all traffic (``swap``) or canary the
        new version at ``canary.share`` first (``canary``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME.pattern)
    model: str = Field(pattern=_NAME.pattern)
    variants: list[VariantConfig] = Field(min_length=1)
    sticky_key: str | None = Field(default=None, min_length=1, max_length=200)
    canary: CanaryConfig = CanaryConfig()
    on_alias_move: OnAliasMove = "swap"

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        seen: set[str] = set()
        canaries = 0
        for index, variant in enumerate(self.variants):
            if variant.name in seen:
                _fail(f"variants.{index}.name", f"variant name {variant.name!r} is used twice")
            seen.add(variant.name)
            if variant.role == "canary":
                canaries += 1
                if canaries > 1:
                    _fail(f"variants.{index}.role", "a deployment runs at most one canary")
        primaries = [v for v in self.variants if v.role == "primary"]
        if not primaries:
            _fail("variants", "at least one variant must have role 'primary'")
        if self.on_alias_move == "canary" and not any(isinstance(v.model, str) for v in primaries):
            _fail(
                "on_alias_move",
                "on_alias_move 'canary' needs a primary variant that serves an alias",
            )
        if self.sticky_key is not None:
            source, _, key = self.sticky_key.partition(":")
            if source in ("header", "body") and not key.strip():
                _fail("sticky_key", f"sticky_key {self.sticky_key!r} names no {source} field")
        return self

    def plans(self) -> list[VariantPlan]:
        """The variants as the server loads them, in configuration order."""
        return [
            VariantPlan(
                name=v.name,
                role=v.role,
                weight=v.weight,
                spec=f"{self.model}@{v.model}"
                if isinstance(v.model, str)
                else f"{self.model}/{v.model}",
                alias=v.model if isinstance(v.model, str) else None,
            )
            for v in self.variants
        ]

    def shares(self, *, canary: bool = True) -> dict[str, float]:
        """The traffic share of each variant: the canary's first, the primaries' rest by weight.

        Parameters
        ----------
        canary : bool
            Whether a canary variant takes its share (False once it was rolled back).
        """
        has_canary = canary and any(v.role == "canary" for v in self.variants)
        rest = 1.0 - (self.canary.share if has_canary else 0.0)
        total = sum(v.weight for v in self.variants if v.role == "primary")
        shares = {}
        for variant in self.variants:
            if variant.role == "primary":
                shares[variant.name] = rest * variant.weight / total
            elif variant.role == "canary" and has_canary:
                shares[variant.name] = self.canary.share
            else:
                shares[variant.name] = 0.0
        return shares

    def served_alias(self) -> str | None:
        """The alias of the first primary variant that follows one (promotions move it)."""
        return next(
            (v.model for v in self.variants if v.role == "primary" and isinstance(v.model, str)),
            None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-able data (durations in seconds)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The configuration as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _fail(field: str, message: str) -> None:
    # A custom error keeps the field path, which a model validator's ValueError would lose.
    raise PydanticCustomError("deployment", "{message}", {"message": message, "field": field})


def single_model(spec: str) -> tuple[DeploymentConfig | None, VariantPlan]:
    """The one-variant deployment ``loopml serve SPEC`` runs.

    Returns
    -------
    tuple
        The configuration when ``spec`` names a registered model (``name@alias``,
        ``name/3``, ``models:/...``), else None (``runs:/...``); and the variant's plan,
        whose ``spec`` is ``spec`` itself.
    """
    match = _SPEC.match(spec.strip())
    if match is None:
        return None, VariantPlan(SINGLE_VARIANT, "primary", 1.0, spec, None)
    name, alias, version = match.group("name"), match.group("alias"), match.group("version")
    plan = VariantPlan(SINGLE_VARIANT, "primary", 1.0, spec, alias)
    try:
        config = DeploymentConfig(
            name=name,
            model=name,
            variants=[VariantConfig(name=SINGLE_VARIANT, model=alias or int(version))],
        )
    except ValidationError:
        return None, plan
    return config, plan


def parse_deployment(data: Any, *, source: str = "deployment") -> DeploymentConfig:
    """Validate a deployment given as data (a mapping, as read from YAML or JSON).

    Parameters
    ----------
    data : Any
        The configuration.
    source : str
        Names the configuration in error messages (a file name, say).

    Raises
    ------
    InvalidInput
        Naming the first field at fault with its path, such as ``variants.1.weight``.
    """
    if isinstance(data, DeploymentConfig):
        return data
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{source}: a deployment is a mapping with name, model and variants", field="config"
        )
    try:
        return DeploymentConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _invalid(exc, source) from None


def _invalid(exc: ValidationError, source: str) -> InvalidInput:
    first = exc.errors()[0]
    context = first.get("ctx") or {}
    field = context.get("field") or ".".join(str(p) for p in first.get("loc", ())) or "config"
    message = str(context.get("message") or first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        message = "this field is required"
    elif first.get("type") == "extra_forbidden":
        message = "unknown field"
    elif first.get("type") == "string_pattern_mismatch":
        message = "may only hold letters, digits, '_', '-' and '.' (at most 100 characters)"
    message = message.removeprefix("Value error, ")
    return InvalidInput(f"{source}: {field}: {message}", field=field)


def load_deployment(path: str | Path) -> DeploymentConfig:
    """Read and validate a deployment YAML (or JSON) file.

    Raises
    ------
    InvalidInput
        When the file is missing, is not YAML, or a field is wrong (named in the message).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"deployment file {str(file)!r} does not exist", field="file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot read deployment file {str(file)!r}: {exc}", field="file"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidInput(f"{file.name}: not valid YAML{where}: {problem}", field="file") from None
    return parse_deployment(data, source=file.name)


def check_registered(
    config: DeploymentConfig, resolve: Callable[[str], int] | None = None
) -> dict[str, int]:
    """Check that every variant names an existing version; return each one's version now.

    Parameters
    ----------
    config : DeploymentConfig
        The deployment.
    resolve : callable, optional
        ``spec -> version``; the registry by default.

    Raises
    ------
    NotFound
        Naming the variant's field (``variants.1.model``) or ``model`` when the registered
        model does not exist.
    """
    check = resolve or _registry_version
    versions: dict[str, int] = {}
    for index, plan in enumerate(config.plans()):
        try:
            versions[plan.name] = check(plan.spec)
        except NotFound as exc:
            if exc.field == "name":
                raise NotFound(
                    f"registered model {config.model!r} does not exist", field="model"
                ) from None
            what = (
                f"alias {plan.alias!r}" if plan.alias else f"version {plan.spec.rsplit('/', 1)[1]}"
            )
            raise NotFound(
                f"variant {plan.name!r}: model {config.model!r} has no {what}",
                field=f"variants.{index}.model",
            ) from None
    return versions


def _registry_version(spec: str) -> int:
    from loopml.registry import resolve

    return resolve(spec).version


#: The deployment events that decide whether a canary variant still takes its share.
CANARY_EVENT_KINDS = ("canary_started", "promoted", "rolled_back")


def canary_state(
    config: DeploymentConfig, events: Sequence[DeploymentEvent], revision: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """The traffic shares now and the canary's state, from the revision's last canary event.

    Parameters
    ----------
    config : DeploymentConfig
        The revision's configuration.
    events : sequence of DeploymentEvent
        The deployment's events, oldest first.
    revision : int
        The revision ``config`` is.

    Returns
    -------
    tuple
        The share of each variant, and ``{"state", "variant", "version", "time", "reason"}``
        where ``state`` is ``none``, ``running``, ``promoted`` or ``rolled_back``.
    """
    decisions = [e for e in events if e.revision == revision and e.kind in CANARY_EVENT_KINDS]
    if not decisions:
        none = {"state": "none", "variant": None, "version": None, "time": None, "reason": None}
        return config.shares(), none
    last = decisions[-1]
    state = {
        "state": "running" if last.kind == "canary_started" else last.kind,
        "variant": last.variant,
        "version": last.to_version,
        "time": last.time,
        "reason": last.evidence.get("reason"),
    }
    # A decided canary no longer takes traffic: promoted, it became the primary's version.
    return config.shares(canary=last.kind == "canary_started"), state
