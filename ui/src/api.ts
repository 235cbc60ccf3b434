// The one way pages talk to the server: the public REST API under /api/v1, with the bearer
// token from the header's token box when there is one.

export const TOKEN_KEY = "loopml.token";
export const API = "/api/v1";

/** A failed API call: the HTTP status and the server's message (and field, when named). */
export class ApiError extends Error {
  readonly status: number;
  readonly field: string | null;
  readonly code: string | null;

  constructor(status: number, message: string, field: string | null = null, code: string | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
    this.code = code;
  }
}

export type Query = Record<string, string | number | boolean | string[] | null | undefined>;

export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(token: string): void {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the token then lasts for this page only.
  }
  memoryToken = token;
}

let memoryToken = "";

/** Build an API URL; path segments must already be encoded (see ``seg``). */
export function apiUrl(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => params.append(key, item));
    else params.append(key, String(value));
  }
  const text = params.toString();
  return `${API}${path}${text ? `?${text}` : ""}`;
}

/** Encode one path segment (names may hold spaces, slashes or other characters). */
export function seg(value: string | number): string {
  return encodeURIComponent(String(value));
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken() || memoryToken;
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function failure(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let field: string | null = null;
  let code: string | null = null;
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object") {
      const record = body as Record<string, unknown>;
      if (typeof record.message === "string") message = record.message;
      else if (typeof record.detail === "string") message = record.detail;
      if (typeof record.field === "string") field = record.field;
      if (typeof record.error === "string") code = record.error;
    }
  } catch {
    // Not JSON (a proxy's page, say): the status line is all there is to say.
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("loopml:unauthorized"));
  return new ApiError(response.status, message, field, code);
}

async function send(url: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers: headers(init.headers as Record<string, string>) });
  } catch (error) {
    throw new ApiError(0, `the server could not be reached (${String(error)})`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** GET a JSON document. */
export async function getJson<T>(path: string, query: Query = {}): Promise<T> {
  const response = await send(apiUrl(path, query), { headers: { Accept: "application/json" } });
  return (await response.json()) as T;
}

/** GET a text document (logs, an HTML card). */
export async function getText(path: string, query: Query = {}): Promise<string> {
  const response = await send(apiUrl(path, query));
  return response.text();
}

/** GET raw bytes (artifact previews). */
export async function getBlob(path: string, query: Query = {}): Promise<Blob> {
  const response = await send(apiUrl(path, query));
  return response.blob();
}

/** Send a JSON body with ``method``; return the JSON answer (null for 204). */
export async function sendJson<T>(method: string, path: string, body: unknown): Promise<T | null> {
  const response = await send(apiUrl(path), {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status === 204) return null;
  return (await response.json()) as T;
}

/** Whether an error is the API's 404 (an unknown id: the page shows not-found). */
export function isNotFound(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404;
}
