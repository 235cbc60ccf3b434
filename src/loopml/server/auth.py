"""Authentication and role checks, applied to every route unless it is marked public.

:func:`authorize` is an app-level dependency, so a route added later is closed by default:
safe methods need ``reader``, every other method ``writer``; the token routes add
:func:`require_admin`. Only endpoints passed through :func:`public` (``/health``) skip it;
the OpenAPI document and ``/docs`` are plain Starlette routes and carry no data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from loopml.auth import AuthService
from loopml.store.base import TokenInfo

F = TypeVar("F", bound=Callable[..., Any])
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC: set[Any] = set()


def public(endpoint: F) -> F:
    """Mark an endpoint as open to anyone, even on a server with auth."""
    _PUBLIC.add(endpoint)
    return endpoint


def bearer_secret(header: str | None) -> str | None:
    """Extract the secret of an ``Authorization: Bearer <secret>`` header."""
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


def required_role(method: str) -> str:
    """The least role a request method needs on tracking routes."""
    return "reader" if method.upper() in READ_METHODS else "writer"


def authorize(request: Request) -> TokenInfo | None:
    """Authenticate the request and check its role for the method; None when auth is off.

    Raises
    ------
    Unauthenticated
        When auth is on and the request has no valid token.
    PermissionDenied
        When the token's role does not allow the method.
    """
    if not request.app.state.auth_enabled or request.scope.get("endpoint") in _PUBLIC:
        return None
    service: AuthService = request.app.state.auth
    secret = bearer_secret(request.headers.get("authorization"))
    token = service.authorize(secret, required_role(request.method))
    request.state.token = token
    return token


def require_admin(request: Request, token: Annotated[TokenInfo | None, Depends(authorize)]) -> None:
    """Refuse any token below ``admin`` (the tokens router depends on this)."""
    if token is not None:
        AuthService.require(token, "admin")
