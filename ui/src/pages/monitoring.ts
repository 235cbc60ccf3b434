// Deployments and monitoring: the monitored models, and per model the traffic split, serving
// figures (request rate, latency percentiles, error rate), drift per feature over time,
// quality over time and alerts.

import { getJson, isNotFound, seg } from "../api";
import { barChart, heatmap, lineChart, type Series } from "../charts";
import { badge, formatTime, formatValue, h, jsonDetails, link, replace, section, table } from "../dom";
import { crumbs, heading, type Page, type PageContext } from "../page";
import { href, piece } from "../router";

type Json = Record<string, unknown>;
const HISTORY_RUNS = 200;

interface MonitorRow {
  monitor: string;
  model: string;
  version: number | null;
  verdict: string;
  time: number | null;
  firing: number | unknown[];
}

interface Latency {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface Summary {
  requests: number;
  request_rate: number;
  latency_ms: Latency;
  error_rate: number | null;
}

interface ServingStats {
  since: string;
  until: string;
  bucket_seconds: number;
  overall: Summary;
  variants: (Summary & { variant: string; version: number; share: number })[];
  buckets: (Summary & { start: string })[];
  note?: string;
}

interface MonitorRun {
  time: number;
  verdict: string;
  version: number | null;
  rows: number;
  features: Record<string, { statistic?: number; p_value?: number | null; threshold?: number; drifted?: boolean; method?: string }>;
  quality: Record<string, number>;
  drift_share: number;
  alerts: Json[];
}

interface Alert {
  id: number;
  check: string;
  state: string;
  value: number | null;
  message: string;
  fired_time: number;
  resolved_time: number | null;
}

interface Deployment {
  name: string;
  model: string;
  revision: number;
  variants: { name: string; role: string; model: string; version: number | null; weight: number; share: number }[];
  canary: { state: string; variant: string | null; version: number | null; reason: string | null };
  events: { time: number; kind: string; variant: string | null; from_version: number | null; to_version: number | null; evidence: unknown }[];
}

const firingCount = (row: MonitorRow): number => (Array.isArray(row.firing) ? row.firing.length : Number(row.firing) || 0);
const percent = (value: number | null | undefined): string => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`);
const rate = (perSecond: number): string =>
  perSecond >= 1 ? `${formatValue(perSecond)} /s` : perSecond * 60 >= 1 ? `${formatValue(perSecond * 60)} /min` : `${formatValue(perSecond * 3600)} /h`;
const ms = (value: number | null | undefined): string => (value === null || value === undefined ? "—" : `${value.toFixed(1)} ms`);

export const monitoringPage: Page = {
  name: "monitoring",
  async render(ctx: PageContext): Promise<void> {
    const [{ monitors }, deployments] = await Promise.all([
      getJson<{ monitors: MonitorRow[] }>("/monitors"),
      getJson<{ deployments: { name: string; model: string; revision: number; variants: number; applied_at: number }[] }>("/deployments").catch((error: unknown) => {
        ctx.fail(error);
        return { deployments: [] };
      }),
    ]);
    if (!ctx.alive()) return;
    const models = new Set([...monitors.map((m) => m.model), ...deployments.deployments.map((d) => d.model)]);
    const byModel = new Map(monitors.map((m) => [m.model, m]));
    replace(
      ctx.main,
      heading("Monitoring", "Models with a monitor or a deployment"),
      models.size
        ? table(
            ["Model", "Monitor", "Verdict", "Version", "Last check", "Firing alerts", "Deployments"],
            [...models].sort().map((model) => {
              const m = byModel.get(model);
              return [
                link(href(`/monitoring/${piece(model)}`), model),
                m?.monitor ?? "—",
                m ? badge(m.verdict) : "—",
                m?.version ?? "—",
                formatTime(m?.time ?? null),
                m ? String(firingCount(m)) : "—",
                deployments.deployments.filter((d) => d.model === model).map((d) => `${d.name} (rev ${d.revision})`).join(", ") || "—",
              ];
            }),
            { "data-testid": "monitored-models", class: "grid" },
          )
        : h("div", { "data-testid": "monitored-models", class: "empty" }, h("p", null, "No monitors or deployments yet.")),
    );
  },
};

function trafficView(deployments: Deployment[], stats: ServingStats | null): HTMLElement {
  const chart = h("div", { class: "chart small", role: "img", "aria-label": "Observed traffic per variant" });
  const observed = stats?.variants ?? [];
  if (observed.length) {
    void barChart(chart, "Observed share of requests", observed.map((v) => `${v.variant || "default"} v${v.version}`), observed.map((v) => v.share * 100), { y: "%" });
  }
  return h(
    "div",
    { "data-testid": "traffic" },
    deployments.map((d) =>
      h(
        "div",
        null,
        h("h3", null, `Deployment ${d.name} (revision ${d.revision})`, d.canary.state !== "none" ? [" ", badge(`canary ${d.canary.state}`)] : null),
        table(
          ["Variant", "Role", "Model", "Version", "Weight", "Configured share"],
          d.variants.map((v) => [v.name, v.role, v.model, v.version === null ? "—" : `v${v.version}`, formatValue(v.weight), percent(v.share)]),
          { class: "grid" },
        ),
      ),
    ),
    observed.length
      ? [h("h3", null, "Observed in the prediction log"), table(["Variant", "Version", "Requests", "Share"], observed.map((v) => [v.variant || "default", `v${v.version}`, String(v.requests), percent(v.share)]), { class: "grid" }), chart]
      : h("p", { class: "muted" }, "No requests logged in this window."),
  );
}

function servingView(stats: ServingStats | null): HTMLElement {
  if (!stats) return h("div", { "data-testid": "serving-stats" }, h("p", { class: "muted" }, "No serving statistics."));
  const o = stats.overall;
  const rateChart = h("div", { class: "chart", role: "img", "aria-label": "Request rate over time" });
  const latencyChart = h("div", { class: "chart", role: "img", "aria-label": "Latency percentiles over time" });
  const x = stats.buckets.map((b) => b.start);
  if (o.requests > 0) {
    void lineChart(rateChart, "Requests per second", [{ name: "rate", x, y: stats.buckets.map((b) => b.request_rate) }], { xTime: true, y: "req/s" });
    void lineChart(
      latencyChart,
      "Latency (ms)",
      (["p50", "p95", "p99"] as const).map((p) => ({ name: p, x, y: stats.buckets.map((b) => b.latency_ms[p]) })),
      { xTime: true, y: "ms" },
    );
  }
  return h(
    "div",
    { "data-testid": "serving-stats" },
    h(
      "dl",
      { class: "figures" },
      [
        ["Requests", String(o.requests)],
        ["Request rate", rate(o.request_rate)],
        ["Latency p50", ms(o.latency_ms.p50)],
        ["Latency p95", ms(o.latency_ms.p95)],
        ["Latency p99", ms(o.latency_ms.p99)],
        ["Error rate", percent(o.error_rate)],
      ].map(([term, value]) => h("div", null, h("dt", null, term), h("dd", null, value))),
    ),
    h("p", { class: "muted" }, `From ${formatTime(stats.since)} to ${formatTime(stats.until)}.${stats.note ? ` ${stats.note}` : ""}`),
    o.requests > 0 ? h("div", { class: "chart-grid" }, rateChart, latencyChart) : null,
  );
}

interface DriftGrid {
  times: string[];
  features: string[];
  drifted: (number | null)[][];
  hover: string[][];
}

/** Which feature drifted at which run: tests differ in scale, so the verdict is what compares. */
function driftGrid(runs: MonitorRun[]): DriftGrid {
  const ordered = [...runs].sort((a, b) => a.time - b.time);
  const features = [...new Set(ordered.flatMap((r) => Object.keys(r.features ?? {})))].sort();
  const times = ordered.map((r) => new Date(r.time).toISOString());
  const drifted = features.map((feature) =>
    ordered.map((r) => {
      const result = r.features?.[feature];
      return result && typeof result.drifted === "boolean" ? Number(result.drifted) : null;
    }),
  );
  const hover = features.map((feature) =>
    ordered.map((r) => {
      const result = r.features?.[feature];
      if (!result) return `${feature}: not tested`;
      const score = result.p_value !== undefined && result.p_value !== null ? `p-value ${formatValue(result.p_value)}` : `statistic ${formatValue(result.statistic)}`;
      return `${feature} · ${result.drifted ? "drifted" : "no drift"} · ${result.method ?? "test"} ${score} (threshold ${formatValue(result.threshold)}) · ${formatTime(r.time)}`;
    }),
  );
  return { times, features, drifted, hover };
}

function qualitySeries(runs: MonitorRun[]): Series[] {
  const ordered = [...runs].sort((a, b) => a.time - b.time);
  const metrics = [...new Set(ordered.flatMap((r) => Object.keys(r.quality ?? {})))].sort();
  return metrics.map((metric) => ({
    name: metric,
    x: ordered.map((r) => new Date(r.time).toISOString()),
    y: ordered.map((r) => (typeof r.quality?.[metric] === "number" ? r.quality[metric]! : null)),
  }));
}

function alertsView(status: Json | null, runs: MonitorRun[]): HTMLElement {
  const firing = Array.isArray(status?.firing) ? (status.firing as Alert[]) : [];
  // Each run lists the alerts it opened or resolved as {"status", "alert": {...}}.
  const recent = runs.flatMap((r) =>
    (r.alerts ?? []).map((entry) => {
      const alert = (entry.alert && typeof entry.alert === "object" ? entry.alert : entry) as Json;
      return { time: r.time, check: String(alert.check ?? "—"), status: String(entry.status ?? alert.state ?? "—"), message: String(alert.message ?? "") };
    }),
  );
  return h(
    "div",
    { "data-testid": "alerts" },
    h("h3", null, `Firing (${firing.length})`),
    firing.length
      ? table(["Check", "Value", "Since", "Message"], firing.map((a) => [a.check, formatValue(a.value), formatTime(a.fired_time), a.message]), { class: "grid alerts" })
      : h("p", { class: "muted" }, "No alert is firing."),
    h("h3", null, "Opened or resolved by recent checks"),
    recent.length
      ? table(["When", "Check", "State", "Message"], recent.map((a) => [formatTime(a.time), a.check, badge(a.status), a.message]), { class: "grid" })
      : h("p", { class: "muted" }, "None."),
  );
}

export const monitorPage: Page = {
  name: "monitor",
  async render(ctx: PageContext): Promise<void> {
    const model = ctx.params.model ?? "";
    const optional = <T>(promise: Promise<T>): Promise<T | null> =>
      promise.catch((error: unknown) => {
        if (!isNotFound(error)) ctx.fail(error);
        return null;
      });
    const [status, history, stats, deploymentList] = await Promise.all([
      optional(getJson<Json>(`/monitors/${seg(model)}/status`)),
      optional(getJson<{ runs: MonitorRun[] }>(`/monitors/${seg(model)}/history`, { n: HISTORY_RUNS })),
      optional(getJson<ServingStats>(`/monitoring/${seg(model)}/serving-stats`)),
      optional(getJson<{ deployments: { name: string; model: string }[] }>("/deployments")),
    ]);
    const names = (deploymentList?.deployments ?? []).filter((d) => d.model === model).map((d) => d.name);
    const deployments = (await Promise.all(names.map((n) => optional(getJson<Deployment>(`/deployments/${seg(n)}`))))).filter((d): d is Deployment => d !== null);
    if (!ctx.alive()) return;
    if (!status && !history && deployments.length === 0 && (stats?.overall.requests ?? 0) === 0) {
      ctx.notFound(`No monitor, deployment or logged prediction for model ${model}.`);
      return;
    }
    const runs = history?.runs ?? [];
    const driftChart = h("div", { class: "chart", "data-testid": "drift-chart", role: "img", "aria-label": "Drift verdict per feature over time" });
    const qualityChart = h("div", { class: "chart", "data-testid": "quality-chart", role: "img", "aria-label": "Quality over time" });
    const drift = driftGrid(runs);
    const quality = qualitySeries(runs);
    if (drift.features.length) void heatmap(driftChart, "Drift per feature at each check", drift.times, drift.features, drift.drifted, drift.hover, ["no drift", "drifted"]);
    else driftChart.appendChild(h("p", { class: "muted" }, "No drift results yet."));
    if (quality.length) void lineChart(qualityChart, "Quality on labelled predictions", quality, { xTime: true });
    else qualityChart.appendChild(h("p", { class: "muted" }, "No quality results yet (they need labels)."));
    const events = deployments.flatMap((d) => d.events.map((e) => ({ ...e, deployment: d.name })));

    replace(
      ctx.main,
      crumbs(["Monitoring", "#/monitoring"], [model, null]),
      heading(model, status ? `Monitor ${String(status.monitor ?? "")} · latest verdict ${String(status.verdict ?? "—")} · ${formatTime(status.time as number | null)}` : null),
      h("p", null, link(href(`/models/${piece(model)}`), "Registry page of this model")),
      section("Traffic", trafficView(deployments, stats)),
      section("Serving", servingView(stats)),
      section("Drift", driftChart),
      section("Quality", qualityChart),
      section("Alerts", alertsView(status, runs)),
      events.length
        ? section(
            "Deployment events",
            table(["When", "Deployment", "Kind", "Variant", "From", "To", "Evidence"], [...events].reverse().map((e) => [formatTime(e.time), e.deployment, badge(e.kind), e.variant ?? "—", e.from_version ?? "—", e.to_version ?? "—", jsonDetails("evidence", e.evidence)]), { class: "grid" }),
          )
        : null,
      runs.length
        ? section(
            "Recent checks",
            table(["When", "Verdict", "Version", "Rows", "Drift share", "Details"], runs.slice(0, 20).map((r) => [formatTime(r.time), badge(r.verdict), r.version ?? "—", String(r.rows), percent(r.drift_share), jsonDetails("result", r)]), { class: "grid" }),
          )
        : null,
    );
  },
};
