// Datasets: the list, one dataset's versions, and a version's metadata, profile plots and
// validation results.

import { getJson, isNotFound, seg } from "../api";
import { barChart, toNumber } from "../charts";
import { badge, formatTime, formatValue, h, jsonDetails, link, replace, section, table } from "../dom";
import { crumbs, heading, type Page, type PageContext } from "../page";
import { href, piece } from "../router";

// Field access lives here, in one place, so a renamed API field is a one-line change.
type Json = Record<string, unknown>;
const num = (value: unknown): number | null => (typeof value === "number" ? value : null);
const text = (value: unknown): string => (value === null || value === undefined ? "" : String(value));
const list = (value: unknown): Json[] => (Array.isArray(value) ? (value as Json[]) : []);

const dataset = {
  name: (d: Json) => text(d.name),
  latest: (d: Json) => d.latest_version ?? null,
  updated: (d: Json) => num(d.updated) ?? num(d.last_update_time) ?? num(d.updated_time),
  description: (d: Json) => text(d.description),
};
const version = {
  number: (v: Json) => text(v.version).replace(/^v/, ""),
  digest: (v: Json) => text(v.digest),
  rows: (v: Json) => num(v.num_rows) ?? num(v.rows),
  columns: (v: Json) => num(v.num_columns) ?? (Array.isArray(v.columns) ? v.columns.length : null),
  schema: (v: Json) => list(v.columns ?? v.schema),
  source: (v: Json) => text(v.source),
  created: (v: Json) => num(v.created_time) ?? num(v.created),
  runId: (v: Json) => (typeof v.run_id === "string" ? v.run_id : null),
  size: (v: Json) => num(v.size_bytes),
};
const validation = {
  passed: (r: Json) => Boolean(r.passed ?? (r.result as Json | undefined)?.passed),
  created: (r: Json) => num(r.created_time) ?? num(r.time),
  result: (r: Json): Json => (r.result && typeof r.result === "object" ? (r.result as Json) : r),
};

export const datasetsPage: Page = {
  name: "datasets",
  async render(ctx: PageContext): Promise<void> {
    const body = await getJson<{ datasets: Json[] }>("/datasets");
    if (!ctx.alive()) return;
    const items = list(body.datasets);
    replace(
      ctx.main,
      heading("Datasets", `${items.length} dataset${items.length === 1 ? "" : "s"}`),
      items.length
        ? table(
            ["Name", "Latest version", "Updated", "Description"],
            items.map((d) => [link(href(`/datasets/${piece(dataset.name(d))}`), dataset.name(d)), text(dataset.latest(d)) || "—", formatTime(dataset.updated(d)), dataset.description(d) || "—"]),
            { "data-testid": "datasets", class: "grid" },
          )
        : h("div", { "data-testid": "datasets", class: "empty" }, h("p", null, "No datasets yet. Register one with loopml.datasets.register(...).")),
    );
  },
};

export const datasetPage: Page = {
  name: "dataset",
  async render(ctx: PageContext): Promise<void> {
    const name = ctx.params.name ?? "";
    const body = await getJson<{ versions: Json[] }>(`/datasets/${seg(name)}/versions`);
    if (!ctx.alive()) return;
    const versions = list(body.versions);
    replace(
      ctx.main,
      crumbs(["Datasets", "#/datasets"], [name, null]),
      heading(name, `${versions.length} version${versions.length === 1 ? "" : "s"}`),
      table(
        ["Version", "Rows", "Columns", "Created", "Source", "Digest"],
        versions.map((v) => [
          link(href(`/datasets/${piece(name)}/${piece(version.number(v))}`), `v${version.number(v)}`),
          formatValue(version.rows(v)),
          formatValue(version.columns(v)),
          formatTime(version.created(v)),
          version.source(v) || "—",
          h("code", null, version.digest(v).slice(0, 12)),
        ]),
        { "data-testid": "dataset-versions", class: "grid" },
      ),
    );
  },
};

function columnPlot(column: Json): HTMLElement {
  const el = h("div", { class: "chart small", role: "img", "aria-label": `Distribution of ${text(column.name)}` });
  const histogram = column.histogram as { edges?: unknown[]; counts?: number[] } | null | undefined;
  const top = Array.isArray(column.top_values) ? (column.top_values as [unknown, number][]) : [];
  if (histogram && Array.isArray(histogram.edges) && Array.isArray(histogram.counts)) {
    const edges = histogram.edges;
    const labels = histogram.counts.map((_, i) => {
      const lo = edges[i];
      const hi = edges[i + 1];
      const a = toNumber(lo);
      const b = toNumber(hi);
      return a !== null && b !== null ? formatValue((a + b) / 2) : `${text(lo)}…`;
    });
    void barChart(el, text(column.name), labels, histogram.counts, { y: "rows" });
  } else if (top.length) {
    void barChart(el, text(column.name), top.map(([value]) => text(value)), top.map(([, count]) => count), { y: "rows" });
  } else {
    el.appendChild(h("p", { class: "muted" }, `${text(column.name)}: nothing to plot.`));
  }
  return el;
}

function profileView(profile: Json | null): HTMLElement {
  if (!profile) return h("div", { "data-testid": "profile" }, h("p", { class: "muted" }, "No profile stored for this version."));
  const columns = list(profile.columns);
  return h(
    "div",
    { "data-testid": "profile" },
    h("p", null, `${formatValue(profile.num_rows)} rows, ${formatValue(profile.num_columns ?? columns.length)} columns, ${formatValue(profile.missing_cells)} missing cells.`),
    table(
      ["Column", "Type", "Missing", "Distinct", "Mean", "Std", "Min", "Max"],
      columns.map((c) => [h("code", null, text(c.name)), text(c.logical_type), formatValue(c.missing), formatValue(c.distinct), formatValue(c.mean), formatValue(c.std), formatValue(c.min), formatValue(c.max)]),
      { class: "grid" },
    ),
    h("div", { class: "chart-grid" }, columns.map(columnPlot)),
  );
}

function validationView(records: Json[]): HTMLElement {
  if (!records.length) return h("div", { "data-testid": "validation" }, h("p", { class: "muted" }, "No validation results recorded for this version."));
  return h(
    "div",
    { "data-testid": "validation" },
    records.map((record) => {
      const result = validation.result(record);
      const anomalies = list(result.anomalies);
      return h(
        "article",
        { class: "validation" },
        h("h3", null, badge(validation.passed(record) ? "passed" : "failed"), " ", formatTime(validation.created(record))),
        result.summary ? h("p", null, text(result.summary)) : null,
        anomalies.length
          ? table(["Severity", "Column", "Kind", "Message"], anomalies.map((a) => [badge(text(a.severity)), text(a.column) || "—", text(a.kind), text(a.message)]), { class: "grid" })
          : h("p", { class: "muted" }, "No anomalies."),
        jsonDetails("Full result", result),
      );
    }),
  );
}

export const datasetVersionPage: Page = {
  name: "dataset-version",
  async render(ctx: PageContext): Promise<void> {
    const name = ctx.params.name ?? "";
    const number = (ctx.params.version ?? "").replace(/^v/, "");
    const base = `/datasets/${seg(name)}/versions/${seg(number)}`;
    const meta = await getJson<Json>(base);
    const [profile, validations] = await Promise.all([
      getJson<Json>(`${base}/profile`).catch((error: unknown) => {
        if (!isNotFound(error)) ctx.fail(error);
        return null;
      }),
      getJson<{ validations: Json[] }>(`${base}/validations`).then((b) => list(b.validations)).catch((error: unknown) => {
        ctx.fail(error);
        return [] as Json[];
      }),
    ]);
    if (!ctx.alive()) return;
    const runId = version.runId(meta);
    const facts: [string, unknown][] = [
      ["Digest", version.digest(meta)],
      ["Rows", version.rows(meta)],
      ["Columns", version.columns(meta)],
      ["Size (bytes)", version.size(meta)],
      ["Created", formatTime(version.created(meta))],
      ["Source", version.source(meta) || "—"],
    ];
    replace(
      ctx.main,
      crumbs(["Datasets", "#/datasets"], [name, href(`/datasets/${piece(name)}`)], [`v${number}`, null]),
      heading(`${name} v${number}`),
      section(
        "Version",
        table(["Field", "Value"], [...facts.map(([k, v]) => [k, formatValue(v)]), ["Run", runId ? link(href(`/runs/${piece(runId)}`), runId) : "—"]], { class: "kv" }),
        h("h3", null, "Schema"),
        table(["Column", "Type"], version.schema(meta).map((c) => [h("code", null, text(c.name)), text(c.type ?? c.arrow_type)]), { class: "grid" }),
      ),
      section("Profile", profileView(profile)),
      section("Validation", validationView(validations)),
    );
  },
};
