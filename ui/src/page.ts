// What every page gets: where to draw, the route's params and query, and the two ways a page
// reports trouble (the error banner, the not-found view).

import { ApiError } from "./api";
import { h, replace } from "./dom";

export interface PageContext {
  /** The <main> element the page draws into. */
  main: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  /** False once the user navigated elsewhere: late answers must not draw. */
  alive(): boolean;
  /** Show an error in the banner; the page keeps what it drew. */
  fail(error: unknown): void;
  /** Replace the page with the not-found view. */
  notFound(what: string): void;
}

export interface Page {
  /** The ``data-page`` of <main>. */
  name: string;
  render(ctx: PageContext): Promise<void>;
}

/** A message for any thrown value. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.status ? `${error.message} (HTTP ${error.status})` : error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The not-found view. */
export function notFoundView(main: HTMLElement, what: string): void {
  main.setAttribute("data-page", "not-found");
  replace(
    main,
    h(
      "div",
      { "data-testid": "not-found", class: "not-found" },
      h("h1", null, "Not found"),
      h("p", null, what),
      h("p", null, h("a", { href: "#/" }, "Back to the experiments")),
    ),
  );
}

/** A page heading with an optional subtitle. */
export function heading(title: string, subtitle?: string | null, testid?: string): HTMLElement {
  return h(
    "header",
    { class: "page-head" },
    h("h1", testid ? { "data-testid": testid } : null, title),
    subtitle ? h("p", { class: "muted" }, subtitle) : null,
  );
}

/** Breadcrumbs: [label, href] pairs, the last one the current page. */
export function crumbs(...items: [string, string | null][]): HTMLElement {
  return h(
    "nav",
    { class: "crumbs", "aria-label": "Breadcrumb" },
    h(
      "ol",
      null,
      items.map(([label, target], index) =>
        h("li", null, target && index < items.length - 1 ? h("a", { href: target }, label) : h("span", { "aria-current": "page" }, label)),
      ),
    ),
  );
}
