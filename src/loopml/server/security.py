"""Request guards that run before routing: Host allowlist, Origin check, body size limits.

A server on ``127.0.0.1`` is still reachable from any web page the user opens: DNS
rebinding points an attacker's host name at 127.0.0.1 (the request then carries the
attacker's ``Host``), and a cross-site form or ``fetch`` can POST to it (the request then
carries the attacker's ``Origin``). The allowlist stops the first; refusing state-changing
requests from foreign origins stops the second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import PayloadTooLarge
from loopml.server.errors import error_response

#: Hosts every server accepts; a server bound elsewhere adds its own names.
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1", "testserver")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def split_host(value: str) -> str:
    """Return the host name of a ``Host`` header value, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.split(":", 1)[0]


class HostPolicy:
    """Which ``Host`` names a server answers to.

    Parameters
    ----------
    allowed_hosts : iterable of str, optional
        Extra host names; ``"*"`` allows any, ``"*.example.com"`` any subdomain.
    """

    def __init__(self, allowed_hosts: Iterable[str] | None = None) -> None:
        names = [*DEFAULT_ALLOWED_HOSTS, *(allowed_hosts or [])]
        self.allow_any = "*" in names
        self.exact = {split_host(n) for n in names if n != "*" and not n.startswith("*.")}
        self.suffixes = tuple(n[1:].lower() for n in names if n.startswith("*."))

    def allows(self, host: str) -> bool:
        """Whether a host name (no port) is on the list."""
        if self.allow_any:
            return True
        host = host.rstrip(".")
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    def allows_origin(self, origin: str, request_host: str) -> bool:
        """Whether a state-changing request from ``origin`` may proceed.

        Same-origin requests (the server's own pages) pass; otherwise the origin's host
        must be listed by name, since ``"*"`` is about reachability, not trust.
        """
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # includes the opaque origin "null" of sandboxed pages and files
        if parts.netloc.lower() == request_host.strip().lower():
            return True
        host = parts.hostname.rstrip(".").lower()
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


class BrowserGuardMiddleware:
    """Refuse unknown ``Host`` names (400) and foreign ``Origin`` on writes (403).

    Also adds ``X-Content-Type-Options: nosniff`` to every response so that a browser
    never reinterprets an uploaded file or an error body as HTML or script.
    """

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request headers, then run the wrapped app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        if not self.policy.allows(split_host(host_header)):
            response = error_response(
                400,
                "invalid_input",
                f"host {host_header!r:.100} is not allowed; start the server with "
                "--allowed-hosts to accept it",
                field="host",
            )
            await response(scope, receive, send)
            return
        origin = headers.get("origin")
        if (
            origin is not None
            and scope["method"] not in SAFE_METHODS
            and not self.policy.allows_origin(origin, host_header)
        ):
            response = error_response(
                403,
                "permission_denied",
                f"cross-origin request from {origin!r:.100} refused",
                field="origin",
            )
            await response(scope, receive, send)
            return

        async def send_with_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_nosniff)


class BodyLimitMiddleware:
    """Answer 413 when a request body is larger than its limit.

    Uploads (requests whose method and path match ``upload_pattern``) get
    ``max_upload_bytes``; every other request gets ``max_body_bytes``. A declared
    ``Content-Length`` over the limit is refused before a byte is read; a body without
    one (chunked) is counted as it streams in, and the response is replaced by the 413
    the moment the count passes the limit, whatever the app made of the interruption.

    Parameters
    ----------
    app : ASGIApp
        The wrapped application.
    max_body_bytes : int
        Limit for JSON requests.
    max_upload_bytes : int
        Limit for artifact uploads.
    upload_pattern : re.Pattern
        Matched against ``"<METHOD> <path>"``.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_pattern: re.Pattern[str],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_pattern = upload_pattern

    def _too_large(self, limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than the limit of {limit} bytes", field="body"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Enforce the limit that applies to this request, then run the wrapped app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = self.upload_pattern.match(f"{scope['method']} {scope['path']}") is not None
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        received = 0
        exceeded = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise self._too_large(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not replaced:
                replaced = True
                await self._reject(scope, receive, send, limit)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or replaced:
                raise
            replaced = True
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = self._too_large(limit)
        response = error_response(
            error.status_code,
            error.code,
            error.message,
            field=error.field,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
