"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against ``loopml server``.

One seeded store (``ui_seed.py``) and one server subprocess on 127.0.0.1 serve the whole
module; each test gets a fresh browser context. Every page is opened, filtered, sorted and
clicked through the ``data-testid`` hooks of the UI contract, and a screenshot of each lands
in ``test-artifacts/ui/``. No request may leave 127.0.0.1, and no payload planted in run
names, tags, params, descriptions or audit reasons may run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from ui_seed import ARTIFACTS, XSS_IMG, XSS_SCRIPT, SeededStore, seed

from conftest import free_port, module_home, service_missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request

# Over 30 s: a seeded store, a server and some forty page loads in Chromium.
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
#: Playwright waits at most this long (ms) for a hook to appear.
WAIT_MS = 10_000


@dataclass
class UiServer:
    """The seeded store and the ``loopml server`` serving it."""

    url: str
    store: SeededStore
    api: httpx.Client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module: the distribution's, never a downloaded one."""
    if not CHROMIUM.exists():
        service_missing(f"{CHROMIUM} is missing (apt-get install chromium; make services)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"loopml server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"loopml server did not answer /health: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def ui(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """Seed a store and serve it with ``loopml server`` on a free 127.0.0.1 port."""
    with module_home(tmp_path_factory, "ui-browser") as root:
        store = seed()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "loopml", "server", "--host", "127.0.0.1"]
                + ["--port", str(port)],
                env={**os.environ, "LOOPML_HOME": str(root / "loopml-home")},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_healthy(url, process, log)
            with httpx.Client(base_url=url, timeout=30) as api:
                index = api.get("/")
                assert index.status_code == 200 and "html" in index.headers["content-type"], (
                    f"GET / answered {index.status_code}: the web UI is not built into "
                    "src/loopml/server/ui_dist (cd ui && npm run build)"
                )
                yield UiServer(url=url, store=store, api=api)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged and where it went."""

    page: Page
    base: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, route: str) -> Page:
        """Load the UI at a hash route (``#/models/churn``) and wait for its page element."""
        self.page.goto(f"{self.base}/{route}")
        self.page.locator("main[data-testid=page]").wait_for(timeout=WAIT_MS)
        return self.page

    def hook(self, testid: str) -> Locator:
        """The element with a ``data-testid``, once visible."""
        locator = self.page.locator(f"[data-testid={testid}]").first
        locator.wait_for(state="visible", timeout=WAIT_MS)
        return locator

    def shot(self, name: str) -> None:
        """Save a full-page screenshot as a test artifact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def xss_ran(self) -> bool:
        """Whether any planted payload executed."""
        return bool(self.page.evaluate("() => window.__xss !== undefined"))


@pytest.fixture
def tab(browser: Browser, ui: UiServer) -> Iterator[Tab]:
    """A fresh context and page; afterwards, no request may have left the server."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    opened = Tab(page=page, base=ui.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            opened.console_errors.append(message.text)

    def on_request(request: Request) -> None:
        opened.requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: opened.console_errors.append(f"uncaught: {error}"))
    page.on("request", on_request)
    yield opened
    context.close()
    local = urlsplit(ui.url).netloc
    outside = [u for u in opened.requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert [u for u in outside if urlsplit(u).netloc != local] == []


def _api(ui: UiServer, path: str, **params: Any) -> Any:
    response = ui.api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("tr[data-run-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)"
    )
    return ids


def _search_ids(ui: UiServer, **params: Any) -> list[str]:
    body = _api(
        ui,
        "/api/v1/runs/search",
        experiment_ids=[ui.store.experiment_id],
        max_results=100,
        **params,
    )
    return [run["run_id"] for run in body["runs"]]


# -- every page opens, shows its hooks, and logs no error ---------------------------------
#: Page name -> (hash route, filled from the seeded store; the hooks it must show).
PAGES: dict[str, tuple[str, list[str]]] = {
    "experiments": ("#/", ["experiments"]),
    "runs-table": (
        "#/experiments/{experiment_id}",
        ["runs-table", "run-filter", "columns", "compare"],
    ),
    "run": (
        "#/runs/{model_run_id}",
        ["run-name", "params", "metrics", "metric-chart", "tags", "system", "lineage", "artifacts"],
    ),
    "compare": ("#/compare?runs={first_run},{second_run}", ["parallel-coords", "metric-chart"]),
    "datasets": ("#/datasets", ["datasets"]),
    "dataset-versions": ("#/datasets/{dataset}", ["dataset-versions"]),
    "dataset-version": ("#/datasets/{dataset}/2", ["profile", "validation"]),
    "pipelines": ("#/pipelines", ["pipeline-runs"]),
    "pipeline-run": ("#/pipelines/runs/{second_pipeline_run}", ["dag"]),
    "models": ("#/models", ["models"]),
    "model": ("#/models/{model}", ["versions", "aliases", "audit", "alias-form"]),
    "model-version": ("#/models/{model}/versions/2", ["model-card", "gate"]),
    "monitoring": ("#/monitoring", ["monitored-models"]),
    "monitoring-model": (
        "#/monitoring/{model}",
        ["traffic", "serving-stats", "drift-chart", "quality-chart", "alerts"],
    ),
    "loop": ("#/loop", ["loop-policies"]),
    "loop-timeline": ("#/loop/{loop_policy}", ["loop-timeline", "loop-event"]),
}


#: Hooks that hold a plot: each must contain plotly's rendered SVG, not an empty box.
CHARTS = {"parallel-coords", "metric-chart", "drift-chart", "quality-chart"}


def _route(template: str, store: SeededStore) -> str:
    return template.format(
        experiment_id=store.experiment_id,
        model_run_id=store.model_run_id,
        first_run=store.run_ids[0],
        second_run=store.run_ids[1],
        dataset=store.dataset,
        second_pipeline_run=store.pipeline_run_ids[1],
        model=store.model,
        loop_policy=store.loop_policy,
    )


NAV = {
    "Experiments": "#/",
    "Datasets": "#/datasets",
    "Pipelines": "#/pipelines",
    "Models": "#/models",
    "Monitoring": "#/monitoring",
    "Loop": "#/loop",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_opens_with_its_hooks_and_no_console_error(name: str, ui: UiServer, tab: Tab) -> None:
    template, hooks = PAGES[name]
    page = tab.open(_route(template, ui.store))
    for testid in hooks:
        tab.hook(testid)
        if testid in CHARTS:
            page.locator(f"[data-testid={testid}] svg").first.wait_for(timeout=WAIT_MS)
    nav = page.locator("nav")
    for label, target in NAV.items():
        assert nav.get_by_role("link", name=label).first.get_attribute("href") == target
    page.wait_for_load_state("networkidle")
    tab.shot(name)
    assert page.locator("[data-testid=error-banner]:visible").count() == 0
    assert page.locator("[data-testid=not-found]").count() == 0
    assert tab.console_errors == []


# -- the run table -------------------------------------------------------------------------
def _open_runs(ui: UiServer, tab: Tab) -> Page:
    page = tab.open(f"#/experiments/{ui.store.experiment_id}")
    tab.hook("runs-table")
    page.locator("tr[data-run-id]").first.wait_for(timeout=WAIT_MS)
    return page


def _wait_rows(page: Page, *candidates: list[str], ordered: bool = True) -> list[str]:
    """Poll the table until it shows one of ``candidates`` (or time out); return its rows."""

    def shown(rows: list[str]) -> bool:
        if ordered:
            return rows in candidates
        return any(sorted(rows) == sorted(c) for c in candidates)

    deadline = time.monotonic() + WAIT_MS / 1000
    rows = _row_ids(page)
    while not shown(rows) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        rows = _row_ids(page)
    return rows


def test_run_table_lists_the_experiment(ui: UiServer, tab: Tab) -> None:
    page = _open_runs(ui, tab)
    assert sorted(_row_ids(page)) == sorted(ui.store.run_ids)
    first = ui.store.run_ids[0]
    link = page.locator(f'tr[data-run-id="{first}"] a[href="#/runs/{first}"]')
    assert link.count() >= 1


def test_a_filter_narrows_the_rows_like_the_api(ui: UiServer, tab: Tab) -> None:
    query = "metrics.acc > 0.8 and params.optimizer = 'adam'"
    expected = _search_ids(ui, filter_string=query)
    assert 0 < len(expected) < len(ui.store.run_ids)
    page = _open_runs(ui, tab)
    box = page.locator("input[data-testid=run-filter]")
    assert box.get_attribute("aria-label") == "Filter runs"
    box.fill(query)
    box.press("Enter")
    assert sorted(_wait_rows(page, expected, ordered=False)) == sorted(expected)
    tab.shot("runs-filtered")
    assert page.locator("[data-testid=filter-error]:visible").count() == 0


def test_a_malformed_filter_shows_the_parser_message(ui: UiServer, tab: Tab) -> None:
    query = "metrics.acc >>> banana"
    answer = ui.api.get(
        "/api/v1/runs/search",
        params={"experiment_ids": ui.store.experiment_id, "filter_string": query},
    )
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    page = _open_runs(ui, tab)
    box = page.locator("input[data-testid=run-filter]")
    box.fill(query)
    box.press("Enter")
    error = tab.hook("filter-error")
    assert message in error.inner_text()
    tab.shot("runs-filter-error")
    # The box keeps what was typed, so it can be corrected.
    assert box.input_value() == query


def test_sorting_by_a_metric_follows_the_api(ui: UiServer, tab: Tab) -> None:
    descending = _search_ids(ui, order_by="metrics.acc DESC")
    ascending = _search_ids(ui, order_by="metrics.acc ASC")
    page = _open_runs(ui, tab)
    header = page.locator('th[data-sort-key="metrics.acc"]')
    header.click()
    first = _wait_rows(page, descending, ascending)
    assert first in (descending, ascending), "the rows follow neither ASC nor DESC"
    header.click()
    other = ascending if first == descending else descending
    assert _wait_rows(page, other) == other
    tab.shot("runs-sorted")


def test_selecting_two_runs_opens_the_comparison(ui: UiServer, tab: Tab) -> None:
    page = _open_runs(ui, tab)
    compare = page.locator("[data-testid=compare]")
    picked = ui.store.run_ids[3], ui.store.run_ids[7]
    page.locator(f'tr[data-run-id="{picked[0]}"] input[data-testid=select-run]').check()
    assert compare.is_disabled()
    page.locator(f'tr[data-run-id="{picked[1]}"] input[data-testid=select-run]').check()
    assert compare.is_enabled()
    compare.click()
    page.wait_for_url(re.compile(r"#/compare\?runs="))
    query = urlsplit(page.url).fragment.split("?", 1)[1]
    assert sorted(parse_qs(query)["runs"][0].split(",")) == sorted(picked)
    tab.hook("parallel-coords")
    tab.page.locator("[data-testid=metric-chart] svg").first.wait_for(timeout=WAIT_MS)
    assert page.locator("[data-testid=metric-chart]").count() >= 2
    tab.shot("compare-selected")


# -- run page: artifacts and lineage -------------------------------------------------------
def test_artifacts_preview_by_kind(ui: UiServer, tab: Tab) -> None:
    page = tab.open(f"#/runs/{ui.store.artifact_run_id}")
    entries = tab.hook("artifacts").locator("[data-testid=artifact]")
    entries.first.wait_for(timeout=WAIT_MS)
    checks: dict[str, Callable[[Locator], None]] = {
        "image": lambda p: p.locator("img").first.wait_for(timeout=WAIT_MS),
        "json": lambda p: _contains(p, '"layers"'),
        "csv": lambda p: (
            p.locator("table td, table th").get_by_text("epoch").first.wait_for(timeout=WAIT_MS)
        ),
        "text": lambda p: (
            p.locator("pre").get_by_text("training finished").first.wait_for(timeout=WAIT_MS)
        ),
    }
    for kind, file_name in ARTIFACTS.items():
        entries.filter(has_text=file_name).first.click()
        preview = tab.hook("artifact-preview")
        checks[kind](preview)
        with tab.page.expect_download() as download:
            preview.get_by_text(re.compile(r"^\s*Download")).first.click()
        assert download.value.suggested_filename == file_name
        tab.shot(f"artifact-{kind}")
    assert "<img" in page.locator("[data-testid=artifact-preview] pre").inner_text()
    assert not tab.xss_ran()


def _contains(locator: Locator, text: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while text not in locator.inner_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {locator}"
        time.sleep(0.1)


def test_run_page_shows_its_lineage(ui: UiServer, tab: Tab) -> None:
    tab.open(f"#/runs/{ui.store.model_run_id}")
    _contains(tab.hook("lineage"), ui.store.dataset)
    _contains(tab.hook("system"), "python")


# -- pipelines, models, loop ---------------------------------------------------------------
def test_pipeline_dag_marks_the_cached_step(ui: UiServer, tab: Tab) -> None:
    page = tab.open(f"#/pipelines/runs/{ui.store.pipeline_run_ids[1]}")
    dag = tab.hook("dag")
    cached = dag.locator(f'[data-step="{ui.store.cached_step}"]')
    assert cached.get_attribute("data-cached") == "true"
    rerun = dag.locator(f'[data-step="{ui.store.rerun_step}"]')
    assert rerun.get_attribute("data-cached") != "true"
    assert (rerun.get_attribute("data-status") or "").upper() == "COMPLETED"
    rerun.click()
    tab.hook("step-logs")
    page.wait_for_load_state("networkidle")
    tab.shot("pipeline-step-logs")


def test_moving_an_alias_adds_an_audit_entry(ui: UiServer, tab: Tab) -> None:
    model = ui.store.model
    reason = f"browser test moved the challenger at {time.time_ns()}"
    page = tab.open(f"#/models/{model}")
    tab.hook("audit")
    before = page.locator("[data-testid=audit-entry]").count()
    form = tab.hook("alias-form")
    for name, value in (("alias", "challenger"), ("version", "1"), ("reason", reason)):
        _enter(form.locator(f"[name={name}]"), value)
    form.locator("button[type=submit], input[type=submit]").first.click()
    entry = page.locator("[data-testid=audit-entry]").filter(has_text=reason)
    entry.first.wait_for(timeout=WAIT_MS)
    assert page.locator("[data-testid=audit-entry]").count() == before + 1
    tab.shot("model-alias-moved")
    assert _api(ui, f"/api/v1/models/{model}/aliases/challenger")["version"] == 1
    trail = _api(ui, f"/api/v1/models/{model}/audit")["entries"]
    assert trail[-1]["reason"] == reason


def _enter(field: Locator, value: str) -> None:
    """Type into an input, or pick from a select the option whose value or label is ``value``."""
    if field.evaluate("node => node.tagName") != "SELECT":
        field.fill(value)
        return
    options: list[list[str]] = field.locator("option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent.trim()])"
    )
    for option_value, label in options:
        if option_value == value or re.match(rf"v?{re.escape(value)}\b", label):
            field.select_option(value=option_value)
            return
    raise AssertionError(f"no option {value!r} among {options}")


def test_loop_timeline_lists_the_retrain(ui: UiServer, tab: Tab) -> None:
    page = tab.open(f"#/loop/{ui.store.loop_policy}")
    tab.hook("loop-timeline")
    events = page.locator("[data-testid=loop-event]")
    history = _api(ui, f"/api/v1/loop/{ui.store.loop_policy}/history")
    recorded = history["events"] if isinstance(history, dict) else history
    assert events.count() == len(recorded)
    for kind in ("triggered", "promoted"):
        assert events.filter(has_text=kind).count() >= 1


# -- bad input: not found, failing API, injected markup ------------------------------------
@pytest.mark.parametrize(
    "route",
    ["#/runs/0123456789abcdef0123456789abcdef", "#/models/no-such-model", "#/no/such/page"],
)
def test_unknown_ids_and_routes_show_not_found(route: str, ui: UiServer, tab: Tab) -> None:
    tab.open(route)
    tab.hook("not-found")
    assert not tab.xss_ran()
    tab.shot("not-found-" + re.sub(r"[^a-z]+", "-", route.lower()).strip("-")[:40])


def test_a_failing_api_call_shows_the_error_banner(ui: UiServer, tab: Tab) -> None:
    message = "the registry is unavailable (simulated by the test)"
    tab.page.route(
        re.compile(r".*/api/v1/models(\?.*)?$"),
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body=f'{{"error": "store_unavailable", "message": "{message}"}}',
        ),
    )
    page = tab.open("#/models")
    banner = tab.hook("error-banner")
    assert message in banner.inner_text()
    assert page.locator("nav").is_visible()  # never a blank page
    tab.shot("error-banner")


@pytest.mark.parametrize("where", ["runs-table", "run", "model", "model-version"])
def test_injected_markup_renders_as_text(where: str, ui: UiServer, tab: Tab) -> None:
    store = ui.store
    if where == "runs-table":
        page = _open_runs(ui, tab)
        visible = page.locator(f'tr[data-run-id="{store.xss_run_id}"]')
        _contains(visible, XSS_IMG)
    elif where == "run":
        page = tab.open(f"#/runs/{store.xss_run_id}")
        _contains(tab.hook("run-name"), XSS_IMG)
        _contains(tab.hook("tags"), XSS_SCRIPT)
        _contains(tab.hook("params"), XSS_SCRIPT)
    elif where == "model":
        # The challenger's alias reason and version 2's description, in the audit trail.
        page = tab.open(f"#/models/{store.model}")
        entries = tab.hook("audit").locator("[data-testid=audit-entry]")
        for payload in (XSS_SCRIPT, XSS_IMG):
            entries.filter(has_text=payload).first.wait_for()
    else:
        page = tab.open(f"#/models/{store.model}/versions/2")
        tab.hook("model-card")
        page.get_by_text(XSS_IMG).first.wait_for()
    page.wait_for_load_state("networkidle")
    tab.shot(f"xss-{where}")
    assert not tab.xss_ran()
    # Nothing the payloads carry became an element.
    assert page.locator('img[src="x"]').count() == 0
    assert (
        page.locator("script:not([src])").evaluate_all(
            "nodes => nodes.filter(n => n.textContent.includes('__xss')).length"
        )
        == 0
    )
