"""``/api/v1/models``: the model registry: models, versions, aliases, tags, audit, cards.

Routes map onto :class:`~loopml.registry.service.RegistryService`, which owns validation and
the audit trail. Every change is recorded under the caller's token name when the server runs
with auth, else under the operating-system user running the server.

The approval rule sits here because it is about who is calling: on a server with auth, moving
or removing an approval alias (``champion``) needs an ``admin`` token, while every other
alias change needs ``writer`` (the app-level check). The service itself insists on a reason
for ``champion`` whatever the caller's role.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from loopml.auth import role_allows
from loopml.entities._json import jsonable
from loopml.entities.registry import AuditEntry, ModelVersion, RegisteredModel
from loopml.errors import PermissionDenied
from loopml.registry.service import APPROVAL_ALIASES, RegistryService, check_model_name
from loopml.server.auth import authorize
from loopml.server.schemas import FloatOut, TextValue
from loopml.store.base import TokenInfo
from loopml.tracking.system import current_user

router = APIRouter(prefix="/api/v1/models", tags=["models"])

#: The least role that may move or remove an approval alias on a server with auth.
APPROVAL_ROLE = "admin"


def get_registry(request: Request) -> RegistryService:
    """Return the app's :class:`RegistryService`."""
    service: RegistryService = request.app.state.registry
    return service


Registry = Annotated[RegistryService, Depends(get_registry)]
#: The authenticated token (None on a server without auth); FastAPI caches it per request,
#: so this is the token the app-level :func:`~loopml.server.auth.authorize` checked.
Caller = Annotated[TokenInfo | None, Depends(authorize)]


# -- bodies --------------------------------------------------------------------------------
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelVersionOut(BaseModel):
    """One registered version with its lineage, metrics and stored results."""

    name: str
    version: int
    run_id: str
    artifact_path: str
    source: str = Field(description="The logged model: runs:/<run_id>/<artifact_path>.")
    status: str = Field(description="READY or ARCHIVED.")
    created_time: int
    last_update_time: int
    description: str
    flavor: str
    signature: dict[str, Any] | None
    metrics: dict[str, FloatOut] = Field(description="The source run's metrics.")
    datasets: list[str] = Field(description="Dataset versions (name@vN) the source run read.")
    code_version: str = Field(description="The git commit of the source run, if known.")
    user: str = Field(description="Who registered the version.")
    tags: dict[str, str]
    aliases: list[str]
    evaluation: dict[str, Any] | None
    gate: dict[str, Any] | None


class ModelVersionList(BaseModel):
    """A model's versions, oldest first."""

    versions: list[ModelVersionOut]


class RegisteredModelOut(BaseModel):
    """A registered model with its aliases (alias to version) and tags."""

    name: str
    description: str
    created_time: int
    last_update_time: int
    aliases: dict[str, int]
    tags: dict[str, str]
    latest_version: int | None


class RegisteredModelDetail(RegisteredModelOut):
    """A registered model and its latest version."""

    latest: ModelVersionOut | None


class RegisteredModelList(BaseModel):
    """Every registered model."""

    models: list[RegisteredModelOut]


class RegisterIn(_Request):
    """Register a logged model as a new version."""

    model_uri: str = Field(description="runs:/<run_id>/<artifact_path> of a logged model.")
    description: str = ""
    tags: dict[str, TextValue] | None = None


class AliasIn(_Request):
    """Point an alias at a version."""

    version: int = Field(ge=1)
    reason: str = Field(default="", description="Why; required for 'champion'.")


class AliasOut(BaseModel):
    """An alias change: where the alias points now and where it pointed before."""

    name: str
    alias: str
    version: int | None = Field(description="The version it points at now (null: removed).")
    previous: int | None = Field(description="The version it pointed at before, if any.")


class ReasonIn(_Request):
    """Why a change is made (kept in the audit trail)."""

    reason: str = ""


class ModelTagIn(_Request):
    """A tag on a model, or on one version with ``version``."""

    key: str
    value: TextValue
    version: int | None = Field(default=None, ge=1)


class AuditEntryOut(BaseModel):
    """One change: who, when, what, from, to and why."""

    id: int
    model_name: str
    version: int | None
    action: str
    from_value: str | None
    to_value: str | None
    reason: str
    user: str
    time: int


class AuditList(BaseModel):
    """Every change to a model, oldest first."""

    entries: list[AuditEntryOut]


# -- helpers -------------------------------------------------------------------------------
def caller_name(token: TokenInfo | None) -> str:
    """The name changes are recorded under: the token's, else the server's OS user."""
    return token.name if token is not None else current_user()


def check_approval(alias: str, token: TokenInfo | None) -> None:
    """Refuse a change to an approval alias unless the token has the approval role.

    Raises
    ------
    PermissionDenied
        When auth is on, ``alias`` is an approval alias and the token's role is below
        :data:`APPROVAL_ROLE`.
    """
    if token is None or alias not in APPROVAL_ALIASES:
        return
    if not role_allows(token.role, APPROVAL_ROLE):
        raise PermissionDenied(
            f"changing the {alias!r} alias needs the {APPROVAL_ROLE!r} role; "
            f"token {token.name!r} has role {token.role!r}",
            field="alias",
        )


def version_out(version: ModelVersion) -> dict[str, Any]:
    """The JSON body of a version."""
    body: dict[str, Any] = jsonable(version.to_dict())
    return body


def model_out(model: RegisteredModel) -> dict[str, Any]:
    """The JSON body of a registered model."""
    return model.to_dict()


def audit_out(entry: AuditEntry) -> dict[str, Any]:
    """The JSON body of an audit entry."""
    return entry.to_dict()


# -- reading -------------------------------------------------------------------------------
@router.get("", response_model=RegisteredModelList)
def list_models(registry: Registry) -> dict[str, Any]:
    """Every registered model with its aliases and tags."""
    return {"models": [model_out(m) for m in registry.list_models()]}


@router.get("/{name}", response_model=RegisteredModelDetail)
def get_model(name: str, registry: Registry) -> dict[str, Any]:
    """A registered model, its aliases and tags, and its latest version."""
    model = registry.get_model(name)
    latest = None
    if model.latest_version is not None:
        latest = version_out(registry.get_version(name, model.latest_version))
    return {**model_out(model), "latest": latest}


@router.get("/{name}/versions", response_model=ModelVersionList)
def list_versions(name: str, registry: Registry) -> dict[str, Any]:
    """A model's versions, oldest first."""
    return {"versions": [version_out(v) for v in registry.versions(name)]}


@router.get("/{name}/versions/{version}", response_model=ModelVersionOut)
def get_version(name: str, version: int, registry: Registry) -> dict[str, Any]:
    """One version: source run, datasets read, code version, signature, metrics, results."""
    return version_out(registry.get_version(name, version))


@router.get("/{name}/aliases/{alias}", response_model=ModelVersionOut)
def resolve_alias(name: str, alias: str, registry: Registry) -> dict[str, Any]:
    """The version an alias points at (``latest``: the newest READY version)."""
    return version_out(registry.resolve(f"{check_model_name(name)}@{alias}"))


@router.get("/{name}/audit", response_model=AuditList)
def get_audit(name: str, registry: Registry) -> dict[str, Any]:
    """Every change to the model (who, when, from, to, reason), oldest first."""
    return {"entries": [audit_out(e) for e in registry.audit(name)]}


@router.get(
    "/{name}/versions/{version}/card",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {"text/markdown": {}, "text/html": {}},
            "description": "The model card.",
        }
    },
)
def get_card(
    name: str,
    version: int,
    registry: Registry,
    format: Annotated[Literal["markdown", "html"], Query()] = "markdown",
    importance: Annotated[
        Literal["compute", "stored"],
        Query(description="`stored` shows the global importance only when kept before."),
    ] = "compute",
) -> Response:
    """The version's model card, from its lineage, metrics, slices and gate result."""
    text = registry.card(name, version, format=format, compute_importance=importance == "compute")
    if format == "html":
        return HTMLResponse(text)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


# -- changing ------------------------------------------------------------------------------
@router.post(
    "/{name}/versions", status_code=status.HTTP_201_CREATED, response_model=ModelVersionOut
)
def register_version(
    name: str, body: RegisterIn, registry: Registry, caller: Caller
) -> dict[str, Any]:
    """Register a logged model (``runs:/<run_id>/<path>``) as the model's next version."""
    created = registry.register(
        body.model_uri,
        name,
        description=body.description,
        tags=body.tags,
        user=caller_name(caller),
    )
    return version_out(created)


@router.put("/{name}/aliases/{alias}", response_model=AliasOut)
def set_alias(
    name: str, alias: str, body: AliasIn, registry: Registry, caller: Caller
) -> dict[str, Any]:
    """Point an alias at a version; ``champion`` needs a reason (and, with auth, admin)."""
    check_approval(alias, caller)
    previous = registry.set_alias(
        name, alias, body.version, reason=body.reason, user=caller_name(caller)
    )
    return {"name": name, "alias": alias, "version": body.version, "previous": previous}


@router.delete("/{name}/aliases/{alias}", response_model=AliasOut)
def delete_alias(
    name: str,
    alias: str,
    registry: Registry,
    caller: Caller,
    reason: Annotated[str, Query(description="Why (kept in the audit trail).")] = "",
) -> dict[str, Any]:
    """Remove an alias (``champion`` needs admin with auth); return where it pointed."""
    check_approval(alias, caller)
    previous = registry.delete_alias(name, alias, reason=reason, user=caller_name(caller))
    return {"name": name, "alias": alias, "version": None, "previous": previous}


@router.post("/{name}/versions/{version}/archive", response_model=ModelVersionOut)
def archive_version(
    name: str, version: int, registry: Registry, caller: Caller, body: ReasonIn | None = None
) -> dict[str, Any]:
    """Archive a version (refused while an alias points at it)."""
    registry.archive(name, version, reason=body.reason if body else "", user=caller_name(caller))
    return version_out(registry.get_version(name, version))


@router.post("/{name}/versions/{version}/restore", response_model=ModelVersionOut)
def restore_version(
    name: str, version: int, registry: Registry, caller: Caller, body: ReasonIn | None = None
) -> dict[str, Any]:
    """Make an archived version READY again."""
    registry.restore(name, version, reason=body.reason if body else "", user=caller_name(caller))
    return version_out(registry.get_version(name, version))


@router.post("/{name}/tags", status_code=status.HTTP_204_NO_CONTENT)
def set_tag(name: str, body: ModelTagIn, registry: Registry, caller: Caller) -> None:
    """Tag the model, or one of its versions with ``version``."""
    registry.set_tag(name, body.key, body.value, version=body.version, user=caller_name(caller))
