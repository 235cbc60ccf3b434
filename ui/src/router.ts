// Hash routing: "#/experiments/3?filter=...&page=2" → the pattern "/experiments/:id", its
// params and its query. Pages link with plain <a href="#/..."> so every view has a URL.

export interface Location {
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface Route<T> {
  pattern: string;
  handler: T;
}

/** Split the current hash into its path and query. */
export function currentHash(): { path: string; query: URLSearchParams } {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [pathPart, queryPart = ""] = raw.split("?", 2) as [string, string?];
  const path = pathPart.startsWith("/") ? pathPart : `/${pathPart}`;
  return { path: path.length > 1 ? path.replace(/\/+$/, "") : path, query: new URLSearchParams(queryPart) };
}

/** Find the first route whose pattern matches ``path``; params are URL-decoded. */
export function match<T>(routes: Route<T>[], path: string): { route: Route<T>; params: Record<string, string> } | null {
  const parts = path.split("/").filter(Boolean);
  for (const route of routes) {
    const pattern = route.pattern.split("/").filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    pattern.forEach((piece, index) => {
      const part = parts[index] ?? "";
      if (piece.startsWith(":")) {
        try {
          params[piece.slice(1)] = decodeURIComponent(part);
        } catch {
          ok = false;
        }
      } else if (piece !== part) {
        ok = false;
      }
    });
    if (ok) return { route, params };
  }
  return null;
}

/** The hash of a route: path pieces are encoded, empty query values dropped. */
export function href(path: string, query: Record<string, string | number | null | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/** Encode one path piece of a hash route. */
export function piece(value: string | number): string {
  return encodeURIComponent(String(value));
}

/** Go to a hash route (a new history entry, so Back works). */
export function navigate(hash: string): void {
  if (window.location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else window.location.hash = hash;
}
