"""``/api/v1/tokens``: token administration (admin role, server started with auth)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status

from loopml.server.auth import require_admin
from loopml.server.deps import Auth
from loopml.server.schemas import TokenCreate, TokenCreated, TokenList
from loopml.store.base import TokenInfo

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], dependencies=[Depends(require_admin)])


def _public(token: TokenInfo) -> dict[str, Any]:
    return {"name": token.name, "role": token.role, "created_time": token.created_time}


@router.get("", response_model=TokenList)
def list_tokens(auth: Auth) -> dict[str, Any]:
    """List tokens (names, roles, creation times; never secrets or hashes)."""
    return {"tokens": [_public(t) for t in auth.list_tokens()]}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, auth: Auth) -> dict[str, Any]:
    """Issue a token; the response holds its secret, which is not stored and not shown again."""
    secret, created = auth.issue_token(body.name, body.role)
    return {**_public(created), "token": secret}


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(name: str, auth: Auth) -> None:
    """Revoke a token; it stops working at once."""
    auth.revoke(name)
