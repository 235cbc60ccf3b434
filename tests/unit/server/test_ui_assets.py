"""The web UI's page and assets on a live server: CSP, confinement to ui_dist, public routes."""

from __future__ import annotations

import hashlib
import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import serve_app
from loopml.errors import NotFound
from loopml.server.app import create_app
from loopml.server.ui import UI_DIST, resolve_asset

REPO = Path(__file__).resolve().parents[3]
#: What ``scripts/build_ui.sh`` hashes, relative to ui/.
UI_SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "index.html")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from loopml.config import Settings

    app = create_app(Settings(home=tmp_path_factory.mktemp("ui-home")))
    with serve_app(app) as http_client:
        yield http_client


def _raw_get(client: httpx.Client, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written: httpx would normalise dot segments away."""
    url = httpx.URL(str(client.base_url))
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_page_is_served_under_a_strict_content_security_policy(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split("; ")
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert set(policy["img-src"]) == {"'self'", "data:", "blob:"}
    html = response.text
    assert 'src="/ui/app.js"' in html
    assert 'href="/ui/app.css"' in html
    # Every script is a file of this server: no inline script, nothing from elsewhere.
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts and all('src="/ui/' in attributes for attributes in scripts)
    assert "http://" not in html and "https://" not in html


def test_assets_and_the_chart_library_are_served(client: httpx.Client) -> None:
    script = client.get("/ui/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == "no-cache"
    assert "data-testid" in script.text
    again = client.get("/ui/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    style = client.get("/ui/app.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    plotly = client.get("/ui/vendor/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert "plotly.js" in plotly.text[:500]
    assert client.head("/ui/app.js").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "/ui/../pyproject.toml",
        "/ui/../../../../pyproject.toml",
        "/ui/%2e%2e/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/ui/..%2f..%2f..%2f..%2fpyproject.toml",
        "/ui/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/ui/..%5c..%5c..%5c..%5cpyproject.toml",
        "/ui//etc/passwd",
        "/ui/%2fetc%2fpasswd",
        "/ui/app.js%00.png",
        "/ui/.source-sha256",
        "/ui/",
        "/ui/missing.js",
    ],
)
def test_paths_outside_the_assets_are_not_found(client: httpx.Client, target: str) -> None:
    status, body = _raw_get(client, target)
    assert status == 404, (target, body[:200])
    assert b"build-system" not in body and b"root:" not in body


def test_resolve_asset_stays_inside_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "dist"
    (root / "nested").mkdir(parents=True)
    (root / "nested" / "a.js").write_text("ok", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert resolve_asset("nested/a.js", root) == (root / "nested" / "a.js").resolve()
    for path in ("../secret.txt", "nested/../../secret.txt", "/etc/passwd", "link.txt", "nested"):
        with pytest.raises(NotFound):
            resolve_asset(path, root)


def test_the_ui_is_public_when_the_api_needs_a_token(tmp_path: Path) -> None:
    from loopml.config import Settings

    app = create_app(Settings(home=tmp_path / "home"), auth=True)
    with serve_app(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/ui/app.js").status_code == 200
        assert client.head("/ui/vendor/plotly.min.js").status_code == 200
        refused = client.get("/api/v1/experiments")
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"
        paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/ui")]


def test_committed_assets_are_built_from_the_committed_sources() -> None:
    ui = REPO / "ui"
    if not ui.is_dir():
        pytest.skip("the UI sources are not part of this installation")
    files = [ui / name for name in UI_SOURCES]
    files += [path for path in (ui / "src").rglob("*") if path.is_file()]
    relative = sorted(path.relative_to(ui).as_posix().encode() for path in files)
    # The same digest as `sha256sum <files> | sha256sum` in scripts/build_ui.sh.
    digests = [hashlib.sha256((ui / name.decode()).read_bytes()).hexdigest() for name in relative]
    listing = b"".join(
        f"{d}  ".encode() + name + b"\n" for d, name in zip(digests, relative, strict=True)
    )
    stamp = (UI_DIST / ".source-sha256").read_text(encoding="utf-8").strip()
    assert hashlib.sha256(listing).hexdigest() == stamp, "run scripts/build_ui.sh"
