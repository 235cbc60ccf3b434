"""The web UI: ``/`` serves the single page, ``/ui/`` its built assets and the chart library.

The page is plain TypeScript compiled by Vite into ``ui_dist/`` (package data, so a pip
install needs no Node); it reads the same public REST API as the SDK. Plotly comes from the
installed ``plotly`` Python package, so the UI makes no request outside this server.

Like ``/docs``, these are plain Starlette routes: they carry no data, so the app-level auth
dependency (which runs on API routes only) never applies and they stay public on a server with
auth, where the page asks for a token. They are not part of the OpenAPI document.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import mimetypes
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from loopml.errors import NotFound

__all__ = ["CONTENT_SECURITY_POLICY", "UI_DIST", "install", "plotly_bundle", "resolve_asset"]

#: The built assets (``scripts/build_ui.sh`` writes them from ``ui/``).
UI_DIST = Path(__file__).parent / "ui_dist"

#: No inline or foreign script. Plotly sets inline styles as it draws, hence
#: ``'unsafe-inline'`` for styles only; artifact previews are ``blob:`` images; the model
#: card is a sandboxed ``srcdoc`` frame.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Asset names are stable (no content hash), so browsers must revalidate; the ETag keeps that
# to a 304. The chart library changes only with the plotly package.
_REVALIDATE = {"Cache-Control": "no-cache"}
_VENDOR_CACHE = {"Cache-Control": "public, max-age=86400"}
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def resolve_asset(path: str, root: Path = UI_DIST) -> Path:
    """Return the file ``path`` names under ``root``, refusing anything outside it.

    Parameters
    ----------
    path : str
        The decoded URL path below ``/ui/``.
    root : Path
        The asset folder.

    Returns
    -------
    Path
        An existing regular file inside ``root``.

    Raises
    ------
    NotFound
        When the path is empty, climbs out (``..``), is absolute, hides a backslash or NUL,
        names a dot file, or names no file.
    """
    pieces = PurePosixPath(path).parts
    unsafe = (
        not pieces
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(piece in ("..", ".") or piece.startswith(".") for piece in pieces)
    )
    if not unsafe:
        base = root.resolve()
        candidate = base.joinpath(*pieces).resolve()
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    raise NotFound(f"no UI asset {path!r}", field="path")


def plotly_bundle() -> Path:
    """The ``plotly.min.js`` shipped by the installed plotly package.

    Raises
    ------
    NotFound
        When the package has no bundled ``plotly.min.js``.
    """
    bundle = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not bundle.is_file():
        raise NotFound("the plotly package ships no plotly.min.js", field="path")
    return bundle


def _file(request: Request, path: Path, media_type: str, headers: dict[str, str]) -> Response:
    # Starlette's FileResponse never answers a revalidation with 304, so the ETag (size and
    # modification time, as Starlette makes it) is checked here.
    stat = path.stat()
    etag = (
        '"'
        + hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest()
        + '"'
    )
    tagged = {**headers, "ETag": etag}
    wanted = request.headers.get("if-none-match", "")
    if etag in (tag.strip().removeprefix("W/") for tag in wanted.split(",")):
        return Response(status_code=304, headers=tagged)
    return FileResponse(path, media_type=media_type, headers=tagged, stat_result=stat)


def index(request: Request) -> Response:
    """The single page of the web UI."""
    page = UI_DIST / "index.html"
    if not page.is_file():
        raise NotFound("the web UI is not built; run scripts/build_ui.sh", field="path")
    return _file(request, page, "text/html; charset=utf-8", _PAGE_HEADERS)


def vendor_plotly(request: Request) -> Response:
    """Plotly, from the installed Python package."""
    return _file(request, plotly_bundle(), "text/javascript", _VENDOR_CACHE)


def asset(request: Request) -> Response:
    """One built asset of the UI (404 for anything outside ``ui_dist``)."""
    found = resolve_asset(str(request.path_params["path"]))
    media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    if found.suffix == ".js":
        media_type = "text/javascript"
    return _file(request, found, media_type, _REVALIDATE)


def install(app: FastAPI) -> None:
    """Add the UI routes (``/``, ``/ui/vendor/plotly.min.js``, ``/ui/{path}``) to ``app``."""
    # Starlette answers HEAD on GET routes by itself.
    app.add_route("/", index, methods=["GET"], include_in_schema=False)
    app.add_route(
        "/ui/vendor/plotly.min.js", vendor_plotly, methods=["GET"], include_in_schema=False
    )
    app.add_route("/ui/{path:path}", asset, methods=["GET"], include_in_schema=False)
