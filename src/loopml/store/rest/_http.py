"""HTTP plumbing of the REST store: one keep-alive client, errors mapped back to classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from loopml.errors import InvalidInput, LoopmlError, StoreUnavailable, error_from_dict

CHUNK_SIZE = 1024 * 1024
_USER_AGENT = "loopml-rest-store"


def _quote(segment: str) -> str:
    # URL clients remove "." and ".." segments; encoded, they reach the server as sent.
    if segment in (".", ".."):
        return segment.replace(".", "%2E")
    return quote(segment, safe="")


def segment(value: str) -> str:
    """Percent-encode one URL path segment (``/`` included)."""
    return _quote(str(value))


def path_segments(path: str) -> str:
    """Percent-encode a relative path, keeping its ``/`` separators."""
    return "/".join(_quote(part) for part in path.split("/"))


class HttpClient:
    """A small wrapper over :class:`httpx.Client` that raises loopml errors.

    Parameters
    ----------
    base_url : str
        ``http(s)://host:port``, optionally with a path prefix.
    token : str, optional
        Sent as ``Authorization: Bearer <token>``.
    timeout : float
        Seconds to wait for connecting and for each read or write.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInput(
                f"the tracking URI must start with http:// or https://, got {base_url!r}",
                field="tracking_uri",
            )
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, follow_redirects=False
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __del__(self) -> None:
        # Stores are often dropped without close() (the SDK swaps them when settings
        # change); closing here keeps their sockets from leaking until interpreter exit.
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - nothing may escape a finaliser
            pass

    def _unavailable(self, exc: httpx.HTTPError) -> StoreUnavailable:
        return StoreUnavailable(
            f"cannot reach the tracking server at {self.base_url}: {type(exc).__name__}: {exc}"
        )

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request; return the response, or raise the error it reports.

        Raises
        ------
        LoopmlError
            The error class the server named (NotFound, Conflict, ...).
        StoreUnavailable
            When the server cannot be reached or the connection breaks.
        """
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        if response.status_code >= 400:
            raise self.error(response)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send a request and return its decoded JSON body."""
        response = self.send(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise LoopmlError(
                f"the tracking server at {self.base_url} sent a response that is not JSON "
                f"({response.status_code}, {response.headers.get('content-type')})"
            ) from exc

    def stream(self, url: str) -> ResponseChunks:
        """Start a streamed GET; errors are raised before the first chunk is returned."""
        request = self._client.build_request("GET", url)
        try:
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        if response.status_code >= 400:
            try:
                response.read()
            except httpx.HTTPError as exc:
                raise self._unavailable(exc) from exc
            finally:
                response.close()
            raise self.error(response)
        return ResponseChunks(response, self)

    def error(self, response: httpx.Response) -> LoopmlError:
        """Rebuild the error a response reports."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "message" not in body:
            text = response.text[:200].strip()
            body = {
                "message": f"the tracking server at {self.base_url} answered "
                f"HTTP {response.status_code}: {text or response.reason_phrase}"
            }
        error = error_from_dict(body, response.status_code)
        if response.status_code in (413, 422) and type(error) is LoopmlError:
            # Too large, or not the shape the server wants: the caller's input is at fault.
            return InvalidInput(error.message, field=error.field)
        return error


class ResponseChunks(Iterator[bytes]):
    """The body of a streamed response, chunk by chunk; closes the response when done.

    Closing it early (or letting it be garbage collected) returns the connection to the
    pool, whether or not it was ever iterated.
    """

    def __init__(self, response: httpx.Response, client: HttpClient) -> None:
        self._response = response
        self._client = client
        self._chunks = response.iter_bytes(CHUNK_SIZE)

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except httpx.HTTPError as exc:
            self.close()
            raise self._client._unavailable(exc) from exc

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._response.close()

    def __del__(self) -> None:
        try:
            self._response.close()
        except Exception:  # noqa: BLE001 - nothing may escape a finaliser
            pass
