// The shell: header (navigation, token box), the error banner and <main>, and the router that
// picks a page for the hash.

import "./style.css";
import { ApiError, getToken, isNotFound, setToken } from "./api";
import { h, replace } from "./dom";
import { messageOf, notFoundView, type Page, type PageContext } from "./page";
import { currentHash, match, type Route } from "./router";
import { experimentsPage, experimentPage } from "./pages/experiments";
import { comparePage } from "./pages/compare";
import { runPage } from "./pages/run";
import { datasetsPage, datasetPage, datasetVersionPage } from "./pages/datasets";
import { pipelinesPage, pipelineRunPage } from "./pages/pipelines";
import { modelsPage, modelPage, modelVersionPage } from "./pages/models";
import { monitoringPage, monitorPage } from "./pages/monitoring";
import { loopPage, loopPolicyPage } from "./pages/loop";

const routes: Route<Page>[] = [
  { pattern: "/", handler: experimentsPage },
  { pattern: "/experiments", handler: experimentsPage },
  { pattern: "/experiments/:id", handler: experimentPage },
  { pattern: "/compare", handler: comparePage },
  { pattern: "/runs/:id", handler: runPage },
  { pattern: "/datasets", handler: datasetsPage },
  { pattern: "/datasets/:name", handler: datasetPage },
  { pattern: "/datasets/:name/:version", handler: datasetVersionPage },
  { pattern: "/pipelines", handler: pipelinesPage },
  { pattern: "/pipelines/runs/:id", handler: pipelineRunPage },
  { pattern: "/models", handler: modelsPage },
  { pattern: "/models/:name", handler: modelPage },
  { pattern: "/models/:name/versions/:version", handler: modelVersionPage },
  { pattern: "/monitoring", handler: monitoringPage },
  { pattern: "/monitoring/:model", handler: monitorPage },
  { pattern: "/loop", handler: loopPage },
  { pattern: "/loop/:name", handler: loopPolicyPage },
];

const NAV: [string, string, string[]][] = [
  ["Experiments", "#/", ["/", "/experiments", "/compare", "/runs"]],
  ["Datasets", "#/datasets", ["/datasets"]],
  ["Pipelines", "#/pipelines", ["/pipelines"]],
  ["Models", "#/models", ["/models"]],
  ["Monitoring", "#/monitoring", ["/monitoring"]],
  ["Loop", "#/loop", ["/loop"]],
];

const banner = h("div", { class: "banner-slot", "aria-live": "assertive" });
const main = h("main", { id: "page", tabindex: "-1", "data-testid": "page", "data-page": "loading" });
const navLinks = NAV.map(([label, target]) => h("a", { href: target }, label));
const tokenStatus = h("span", { class: "token-status", role: "status" });
const tokenInput = h("input", {
  id: "token",
  name: "token",
  type: "password",
  autocomplete: "off",
  placeholder: "bearer token",
  "data-testid": "token-input",
  value: getToken(),
});
const tokenForm = h(
  "form",
  { class: "token", "data-testid": "token-form" },
  h("label", { for: "token" }, "API token"),
  tokenInput,
  h("button", { type: "submit" }, "Save"),
  tokenStatus,
);

function showTokenState(): void {
  tokenStatus.textContent = getToken() ? "saved" : "";
}

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  showTokenState();
  tokenForm.classList.remove("needed");
  void render();
});

window.addEventListener("loopml:unauthorized", () => {
  tokenForm.classList.add("needed");
  tokenStatus.textContent = getToken() ? "token refused" : "this server needs a token";
});

function skipToContent(event: Event): void {
  event.preventDefault();
  main.focus();
}

const shell = [
  h("a", { class: "skip-link", href: "#page", onclick: skipToContent }, "Skip to content"),
  h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/" }, "loopml"),
    h("nav", { "aria-label": "Main" }, h("ul", null, navLinks.map((a) => h("li", null, a)))),
    tokenForm,
  ),
  banner,
  main,
];

/** Show an error in the banner (one at a time, newest wins). */
function showError(error: unknown): void {
  const message = messageOf(error);
  const hint = error instanceof ApiError && error.status === 401 ? " Enter a token in the box above." : "";
  replace(
    banner,
    h(
      "div",
      { class: "error-banner", role: "alert", "data-testid": "error-banner" },
      h("strong", null, "Error: "),
      h("span", { "data-testid": "error-message" }, message + hint),
      h("button", { type: "button", class: "link", "aria-label": "Dismiss the error", onclick: () => banner.replaceChildren() }, "Dismiss"),
    ),
  );
}

let generation = 0;
let lastPath = "";

async function render(): Promise<void> {
  const mine = ++generation;
  const { path, query } = currentHash();
  banner.replaceChildren();
  const section = `/${path.split("/")[1] ?? ""}`;
  NAV.forEach(([, , prefixes], index) => {
    const active = prefixes.includes(path) || prefixes.some((p) => p !== "/" && section === p);
    const anchor = navLinks[index];
    if (!anchor) return;
    if (active) anchor.setAttribute("aria-current", "page");
    else anchor.removeAttribute("aria-current");
  });
  const focusedId = document.activeElement?.getAttribute("data-testid") ?? null;
  const found = match(routes, path);
  if (!found) {
    notFoundView(main, `No page at ${path}.`);
    return;
  }
  const page = found.route.handler;
  main.setAttribute("data-page", page.name);
  main.setAttribute("aria-busy", "true");
  replace(main, h("p", { class: "muted loading" }, "Loading…"));
  const ctx: PageContext = {
    main,
    params: found.params,
    query,
    alive: () => mine === generation,
    fail: (error) => {
      if (mine === generation) showError(error);
    },
    notFound: (what) => {
      if (mine === generation) notFoundView(main, what);
    },
  };
  try {
    await page.render(ctx);
  } catch (error) {
    if (mine !== generation) return;
    if (isNotFound(error)) {
      notFoundView(main, messageOf(error));
    } else {
      showError(error);
      if (main.querySelector(".loading")) {
        replace(main, h("p", { class: "muted" }, "This page could not be loaded; see the error above."));
      }
    }
  } finally {
    if (mine === generation) main.removeAttribute("aria-busy");
  }
  if (mine !== generation) return;
  document.title = `${main.querySelector("h1")?.textContent ?? "loopml"} · loopml`;
  // A query change (sort, filter, page) redraws the page; keep the control the user was on.
  const again = focusedId ? main.querySelector<HTMLElement>(`[data-testid="${CSS.escape(focusedId)}"]`) : null;
  if (again) again.focus();
  else if (path !== lastPath) main.focus({ preventScroll: true });
  lastPath = path;
}

const root = document.getElementById("app");
if (root) {
  replace(root, ...shell);
  showTokenState();
  window.addEventListener("hashchange", () => void render());
  void render();
}
