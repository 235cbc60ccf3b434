// DOM building without HTML strings: text only ever reaches the page through text nodes, so
// run names, tags, params and reasons can never become markup.

export type Child = Node | string | number | boolean | null | undefined | Child[];
type Handler = (event: Event) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "g", "rect", "path", "line", "text", "title", "circle", "defs", "marker", "polyline"]);

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false || child === true) return;
  if (Array.isArray(child)) {
    for (const item of child) append(parent, item);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

function applyAttrs(el: Element, attrs: Attrs | null): void {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.replace(/^on/, "").toLowerCase(), value);
    } else if (key === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else if (key === "checked" && el instanceof HTMLInputElement) {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** Build an element; attributes are set with setAttribute and children become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Attrs | null, ...children: Child[]): Element;
export function h(tag: string, attrs: Attrs | null = null, ...children: Child[]): Element {
  const el = SVG_TAGS.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replace every child of ``el``. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A table with a header row; cells are any children. */
export function table(headers: Child[], rows: Child[][], attrs: Attrs = {}): HTMLTableElement {
  return h(
    "table",
    attrs,
    h("thead", null, h("tr", null, headers.map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", null, rows.map((cells) => h("tr", null, cells.map((cell) => h("td", null, cell))))),
  );
}

/** A key/value table of an object's entries, sorted by key. */
export function kvTable(values: Record<string, unknown>, testid: string, empty = "None."): HTMLElement {
  const keys = Object.keys(values).sort();
  if (keys.length === 0) return h("p", { "data-testid": testid, class: "muted" }, empty);
  return table(
    ["Key", "Value"],
    keys.map((key) => [h("code", null, key), formatValue(values[key])]),
    { "data-testid": testid, class: "kv" },
  );
}

/** A titled section of a page. */
export function section(title: string, ...children: Child[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

/** Epoch milliseconds (or an ISO string) as a local date and time. */
export function formatTime(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** A duration in milliseconds, short. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A number with at most 4 significant decimals; other values as text. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(5))) : value.toExponential(3);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Pretty-printed JSON in a <pre>. */
export function jsonBlock(value: unknown, attrs: Attrs = {}): HTMLElement {
  return h("pre", { class: "json", ...attrs }, JSON.stringify(value, null, 2));
}

/** A collapsed <details> holding JSON, for evidence and raw results. */
export function jsonDetails(summary: string, value: unknown): HTMLElement {
  return h("details", null, h("summary", null, summary), jsonBlock(value));
}

/** A status badge whose class follows the status, e.g. ``status-failed``. */
export function badge(status: string | null | undefined): HTMLElement {
  const text = status ?? "unknown";
  return h("span", { class: `badge status-${text.toLowerCase().replace(/[^a-z0-9]+/g, "-")}` }, text);
}

/** A link to a hash route. */
export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href }, ...children);
}
