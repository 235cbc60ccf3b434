"""Every failure leaves the server as JSON: ``{"error", "message", "field"}``.

:class:`~loopml.errors.LoopmlError` keeps its own status; request validation errors become
422 naming the field (400 for a body that is not JSON); Starlette's own HTTP errors (404 for
an unknown route, 405) keep their status; anything else is a logged 500 whose body says
nothing about the server's internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import LoopmlError

logger = logging.getLogger("loopml.server")

_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "store_unavailable",
}
_MAX_LISTED_ERRORS = 5


def error_response(
    status_code: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the JSON error response every failure path uses.

    Parameters
    ----------
    status_code : int
        The HTTP status.
    code : str
        The machine-readable error code (``invalid_input``, ``not_found``...).
    message : str
        A sentence for a human.
    field : str, optional
        The input field at fault.
    headers : dict, optional
        Extra response headers.

    Returns
    -------
    JSONResponse
        The response.
    """
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status_code, headers=headers)


def _loopml_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoopmlError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _location(loc: Sequence[int | str]) -> tuple[str, str]:
    """Return the dotted location (``body.metrics.0.value``) and the field (``metrics.0.value``)."""
    parts = [str(p) for p in loc]
    dotted = ".".join(parts)
    inner = parts[1:] if parts and parts[0] in ("body", "query", "path", "header") else parts
    return dotted, ".".join(inner) or (parts[0] if parts else "body")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "invalid_input", "the request is not valid")
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "JSON decode error")
        return error_response(
            400,
            "invalid_input",
            f"the request body is not valid JSON: {detail} at position {first['loc'][-1]}",
            field="body",
        )
    content_type = request.headers.get("content-type", "")
    if (
        tuple(first.get("loc", ())) == ("body",)
        and first.get("type") != "missing"
        and "json" not in content_type.lower()
    ):
        return error_response(
            422,
            "invalid_input",
            f"the request body must be a JSON object sent with Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'!r:.60})",
            field="body",
        )
    messages = []
    for error in errors[:_MAX_LISTED_ERRORS]:
        dotted, _ = _location(error.get("loc", ()))
        messages.append(f"{dotted}: {error.get('msg', 'invalid value')}")
    if len(errors) > _MAX_LISTED_ERRORS:
        messages.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more errors")
    _, field = _location(first.get("loc", ()))
    return error_response(422, "invalid_input", "; ".join(messages), field=field)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _CODES.get(status, "internal_error" if status >= 500 else "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if status == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(status, code, message, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON exception handlers on ``app``."""
    app.add_exception_handler(LoopmlError, _loopml_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class CatchAllMiddleware:
    """Turn any unexpected exception into a logged, generic JSON 500.

    Starlette's own last-resort handler re-raises after answering, which makes the ASGI
    server log the error a second time; this middleware answers and logs exactly once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app, answering 500 if it fails before its response started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                # Headers are gone; dropping the connection tells the client the body is cut.
                raise
            response = error_response(
                500, "internal_error", "internal server error; the server log has the details"
            )
            await response(scope, receive, send)
