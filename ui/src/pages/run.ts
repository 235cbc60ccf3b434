// One run: params, metrics (table and charts), tags, system info, lineage and artifacts with
// previews (images, JSON, CSV tables, text) and downloads.

import { getBlob, getJson, isNotFound, seg } from "../api";
import { lineChart, toNumber } from "../charts";
import { badge, formatDuration, formatTime, formatValue, h, kvTable, link, replace, section, table } from "../dom";
import { crumbs, messageOf, type Page, type PageContext } from "../page";
import { href, piece } from "../router";
import type { ArtifactEntry, Experiment, MetricPoint, Run } from "../types";

const SYSTEM_PREFIXES = ["loopml.", "mlflow."];
const PREVIEW_BYTES = 512 * 1024;
const PREVIEW_ROWS = 50;

interface Lineage {
  datasets: { name: string; version: string | number; digest?: string; context?: string }[];
  models: { name: string; version: string | number }[];
}

function metricPath(runId: string, key: string): string {
  return `/runs/${seg(runId)}/metrics/${key.split("/").map(seg).join("/")}`;
}

function artifactPath(runId: string, path: string): string {
  return `/runs/${seg(runId)}/artifacts/${path.split("/").map(seg).join("/")}`;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Rows of a CSV text (quoted fields, doubled quotes), at most ``limit`` of them. */
export function parseCsv(text: string, limit: number): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < limit; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if ((field || row.length) && rows.length < limit) rows.push([...row, field]);
  return rows;
}

async function preview(runId: string, entry: ArtifactEntry, box: HTMLElement, ctx: PageContext): Promise<void> {
  const name = entry.path.split("/").pop() ?? entry.path;
  const ext = (name.includes(".") ? name.split(".").pop() ?? "" : "").toLowerCase();
  replace(box, h("p", { class: "muted" }, `Loading ${entry.path}…`));
  let blob: Blob;
  try {
    blob = await getBlob(artifactPath(runId, entry.path));
  } catch (error) {
    ctx.fail(error);
    replace(box, h("p", { class: "muted" }, `Could not load ${entry.path}.`));
    return;
  }
  const download = h("button", { type: "button", class: "secondary" }, `Download ${name}`);
  download.addEventListener("click", () => {
    // Through a blob, so that a server with auth gets the token (a plain link would not send it).
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
  let body: HTMLElement;
  if (["png", "jpg", "jpeg", "gif", "webp", "bmp"].includes(ext)) {
    body = h("img", { src: URL.createObjectURL(blob), alt: `Artifact ${entry.path}`, class: "preview-image" });
  } else if (blob.size > PREVIEW_BYTES) {
    body = h("p", { class: "muted" }, `${formatSize(blob.size)}: too large to preview; download it.`);
  } else if (ext === "json") {
    const text = await blob.text();
    try {
      body = h("pre", { class: "json" }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      body = h("pre", null, text);
    }
  } else if (ext === "csv" || ext === "tsv") {
    const text = await blob.text();
    const rows = ext === "tsv" ? text.split(/\r?\n/).slice(0, PREVIEW_ROWS + 1).map((l) => l.split("\t")) : parseCsv(text, PREVIEW_ROWS + 1);
    const [header = [], ...rest] = rows;
    body = h("div", { class: "table-wrap" }, table(header, rest, { class: "grid" }), h("p", { class: "muted" }, `First ${rest.length} rows.`));
  } else if (["txt", "log", "md", "yaml", "yml", "py", "toml", "cfg", "ini", "html", "xml", "svg", ""].includes(ext) || blob.type.startsWith("text/")) {
    // HTML and SVG are shown as source: rendering them would run the file's markup.
    body = h("pre", null, await blob.text());
  } else {
    body = h("p", { class: "muted" }, `No preview for ${ext ? `.${ext}` : "this"} files (${formatSize(blob.size)}); download it.`);
  }
  if (!ctx.alive()) return;
  replace(box, h("div", { class: "preview-head" }, h("strong", null, entry.path), download), body);
}

function artifactsView(runId: string, entries: ArtifactEntry[], ctx: PageContext): HTMLElement {
  const previewBox = h("div", { class: "preview", "data-testid": "artifact-preview", "aria-live": "polite" }, h("p", { class: "muted" }, "Choose a file to preview it."));
  const list = h(
    "ul",
    { class: "artifact-list" },
    entries.map((entry) =>
      h(
        "li",
        null,
        h("button", { type: "button", class: "link", "data-testid": "artifact", "data-path": entry.path, onclick: () => void preview(runId, entry, previewBox, ctx) }, entry.path),
        h("span", { class: "muted" }, ` ${formatSize(entry.size)}`),
      ),
    ),
  );
  return h(
    "div",
    { "data-testid": "artifacts", class: "artifacts" },
    entries.length ? [list, previewBox] : h("p", { class: "muted" }, "No artifacts."),
  );
}

function lineageView(lineage: Lineage | null): HTMLElement {
  if (!lineage) return h("p", { "data-testid": "lineage", class: "muted" }, "No lineage recorded.");
  return h(
    "div",
    { "data-testid": "lineage" },
    h("h3", null, "Datasets read"),
    lineage.datasets.length
      ? table(
          ["Dataset", "Version", "Context", "Digest"],
          lineage.datasets.map((d) => [link(href(`/datasets/${piece(d.name)}/${piece(String(d.version).replace(/^v/, ""))}`), d.name), String(d.version), d.context ?? "—", h("code", null, (d.digest ?? "").slice(0, 12) || "—")]),
          { class: "grid" },
        )
      : h("p", { class: "muted" }, "None recorded."),
    h("h3", null, "Models registered from this run"),
    lineage.models.length
      ? h("ul", null, lineage.models.map((m) => h("li", null, link(href(`/models/${piece(m.name)}/versions/${piece(m.version)}`), `${m.name} v${m.version}`))))
      : h("p", { class: "muted" }, "None."),
  );
}

export const runPage: Page = {
  name: "run",
  async render(ctx: PageContext): Promise<void> {
    const runId = ctx.params.id ?? "";
    const run = await getJson<Run>(`/runs/${seg(runId)}`);
    const [experiment, artifacts, lineage] = await Promise.all([
      getJson<Experiment>(`/experiments/${seg(run.experiment_id)}`).catch(() => null),
      getJson<{ artifacts: ArtifactEntry[] }>(`/runs/${seg(runId)}/artifacts`).then((r) => r.artifacts).catch((error: unknown) => {
        ctx.fail(error);
        return [] as ArtifactEntry[];
      }),
      getJson<Lineage>(`/runs/${seg(runId)}/lineage`).catch((error: unknown) => {
        if (!isNotFound(error)) ctx.fail(error);
        return null;
      }),
    ]);
    if (!ctx.alive()) return;

    const system: Record<string, string> = {};
    const tags: Record<string, string> = {};
    for (const [key, value] of Object.entries(run.tags)) {
      if (SYSTEM_PREFIXES.some((p) => key.startsWith(p))) system[key] = value;
      else tags[key] = value;
    }
    const attributes: Record<string, unknown> = {
      "run id": run.run_id,
      user: run.user,
      host: run.host,
      pid: run.pid,
      "parent run": run.parent_run_id,
      started: formatTime(run.start_time),
      ended: formatTime(run.end_time),
      duration: run.end_time ? formatDuration(run.end_time - run.start_time) : "—",
    };
    const metricKeys = Object.keys(run.metrics).sort();
    const charts = h("div", { class: "chart-grid" });
    const experimentName = experiment?.name ?? run.experiment_id;

    replace(
      ctx.main,
      crumbs(["Experiments", "#/"], [experimentName, href(`/experiments/${piece(run.experiment_id)}`)], [run.run_name || run.run_id, null]),
      h("header", { class: "page-head" }, h("h1", { "data-testid": "run-name" }, run.run_name || run.run_id), h("p", null, badge(run.status), " ", h("span", { class: "muted" }, `in ${experimentName}`))),
      h(
        "div",
        { class: "columns-2" },
        section("Params", kvTable(run.params, "params", "No params.")),
        section(
          "Metrics",
          metricKeys.length
            ? table(["Metric", "Latest"], metricKeys.map((k) => [h("code", null, k), formatValue(run.metrics[k])]), { "data-testid": "metrics", class: "kv" })
            : h("p", { "data-testid": "metrics", class: "muted" }, "No metrics."),
        ),
      ),
      metricKeys.length ? section("Metric charts", charts) : null,
      h("div", { class: "columns-2" }, section("Tags", kvTable(tags, "tags", "No tags.")), section("Run", kvTable(attributes, "attributes"))),
      section("System", kvTable(system, "system", "No system information recorded.")),
      section("Lineage", lineageView(lineage)),
      section("Artifacts", artifactsView(runId, artifacts, ctx)),
    );

    for (const key of metricKeys) {
      const el = h("div", { class: "chart", "data-testid": "metric-chart", "data-metric": key, role: "img", "aria-label": `${key} over steps` });
      charts.appendChild(el);
      getJson<{ metrics: MetricPoint[] }>(metricPath(runId, key))
        .then(({ metrics }) => {
          if (!ctx.alive()) return;
          void lineChart(el, key, [{ name: key, x: metrics.map((p) => p.step), y: metrics.map((p) => toNumber(p.value)) }], { x: "step", y: key });
        })
        .catch((error: unknown) => {
          ctx.fail(error);
          replace(el, h("p", { class: "muted" }, `${key}: ${messageOf(error)}`));
        });
    }
  },
};
