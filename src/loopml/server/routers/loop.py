"""``/api/v1/loop``: continuous-training policies and the decisions of the loop controller.

Policies are applied and the controller runs elsewhere (``loopml loop apply``,
``loopml loop start``); these routes read back what is stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from loopml.config import Settings
from loopml.entities._json import jsonable
from loopml.loop.service import LoopService, event_summary
from loopml.store.registry import open_loop_store

router = APIRouter(prefix="/api/v1/loop", tags=["loop"])

__all__ = ["install", "router"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the loop routes to ``app``, over the settings' store."""
    app.state.loop = LoopService(open_loop_store(settings))
    app.include_router(router)


def get_loop(request: Request) -> LoopService:
    """Return the app's :class:`LoopService`."""
    service: LoopService = request.app.state.loop
    return service


Loop = Annotated[LoopService, Depends(get_loop)]


@router.get("/policies")
def list_policies(loop: Loop) -> JSONResponse:
    """Every stored policy (its latest version), with its rollout in flight, by name."""
    policies = []
    for stored in loop.list_policies():
        state = loop.store.get_loop_state(stored.name)
        policies.append({**stored.to_dict(), "rollout_in_flight": state.get("rollout")})
    return JSONResponse(jsonable({"policies": policies}))


@router.get("/{name}")
def get_policy(name: str, loop: Loop) -> JSONResponse:
    """One policy (its latest version) and the controller's state of it."""
    stored = loop.get(name)
    state = loop.store.get_loop_state(name)
    return JSONResponse(jsonable({**stored.to_dict(), "state": state}))


@router.get("/{name}/history")
def get_history(
    name: str,
    loop: Loop,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most recent events.")] = 50,
) -> JSONResponse:
    """The policy's last ``limit`` loop events, oldest first, each with its evidence."""
    events = [{**e.to_dict(), "summary": event_summary(e)} for e in loop.history(name, limit)]
    return JSONResponse(jsonable({"policy": name, "events": events}))
