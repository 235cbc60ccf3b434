"""The exception hierarchy users catch.

Every error loopml raises on purpose derives from :class:`LoopmlError`. Each class carries
an HTTP status so that the server and the REST client translate errors both ways without
a lookup table scattered over the code.
"""

from __future__ import annotations

from typing import Any


class LoopmlError(Exception):
    """Base class of every error loopml raises on purpose.

    Parameters
    ----------
    message : str
        A sentence naming what is wrong, meant for a human.
    field : str, optional
        The name of the input field at fault, when there is one.
    """

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body the server sends for this error."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(LoopmlError, ValueError):
    """The caller passed a value loopml cannot accept (HTTP 400)."""

    status_code = 400
    code = "invalid_input"


class NotFound(LoopmlError, LookupError):
    """The named object does not exist (HTTP 404)."""

    status_code = 404
    code = "not_found"


class Conflict(LoopmlError):
    """The request contradicts what is already stored (HTTP 409)."""

    status_code = 409
    code = "conflict"


class Unauthenticated(LoopmlError):
    """No valid credentials were given (HTTP 401)."""

    status_code = 401
    code = "unauthenticated"


class PermissionDenied(LoopmlError):
    """The credentials are valid but their role does not allow the action (HTTP 403)."""

    status_code = 403
    code = "permission_denied"


class PayloadTooLarge(LoopmlError):
    """The request body is larger than the server accepts (HTTP 413)."""

    status_code = 413
    code = "payload_too_large"


class StoreUnavailable(LoopmlError):
    """A backend (database, object store, tracking server) cannot be reached (HTTP 503)."""

    status_code = 503
    code = "store_unavailable"


_BY_CODE: dict[str, type[LoopmlError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        NotFound,
        Conflict,
        Unauthenticated,
        PermissionDenied,
        StoreUnavailable,
    )
}


def error_from_dict(body: dict[str, Any], status_code: int) -> LoopmlError:
    """Rebuild the error a server reported, so remote callers catch the same classes.

    Parameters
    ----------
    body : dict
        The JSON error body (``error``, ``message`` and optionally ``field``).
    status_code : int
        The HTTP status of the response, used when the body names no known code.
    """
    cls = _BY_CODE.get(str(body.get("error", "")))
    if cls is None:
        cls = next((c for c in _BY_CODE.values() if c.status_code == status_code), LoopmlError)
    field = body.get("field")
    return cls(
        str(body.get("message", "request failed")), field=None if field is None else str(field)
    )
