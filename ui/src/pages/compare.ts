// Several runs side by side: parallel coordinates over params and latest metrics, and one
// metric-over-step chart per metric key with a line per run.

import { getJson, seg } from "../api";
import { lineChart, parallelCoordinates, toNumber, type Dimension } from "../charts";
import { formatValue, h, link, replace, section, table } from "../dom";
import { heading, type Page, type PageContext } from "../page";
import { href, piece } from "../router";
import type { MetricPoint, Run } from "../types";

const MAX_RUNS = 50;

function label(run: Run): string {
  return run.run_name || run.run_id.slice(0, 8);
}

export const comparePage: Page = {
  name: "compare",
  async render(ctx: PageContext): Promise<void> {
    const ids = Array.from(new Set((ctx.query.get("runs") ?? "").split(",").map((s) => s.trim()).filter(Boolean))).slice(0, MAX_RUNS);
    if (ids.length === 0) {
      replace(ctx.main, heading("Compare runs"), h("p", null, "No runs chosen: select runs in an experiment's run table, then press Compare."));
      return;
    }
    const runs = await Promise.all(ids.map((id) => getJson<Run>(`/runs/${seg(id)}`)));
    if (!ctx.alive()) return;
    const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
    const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();

    const summary = table(
      ["Run", ...paramKeys.map((k) => `param ${k}`), ...metricKeys.map((k) => `metric ${k}`)],
      runs.map((run) => [
        link(href(`/runs/${piece(run.run_id)}`), label(run)),
        ...paramKeys.map((k) => run.params[k] ?? "—"),
        ...metricKeys.map((k) => formatValue(run.metrics[k])),
      ]),
      { class: "grid", "data-testid": "compare-table" },
    );
    const parcoords = h("div", { class: "parcoords-wrap", "data-testid": "parallel-coords" });
    const chartsBox = h("div", { class: "chart-grid" });
    const colorKey = metricKeys[0];
    const colorKeyNote = h("p", { class: "muted" }, colorKey ? `Lines colored by ${colorKey} (dark: low, yellow: high); hover a line for its run.` : "One line per run.");
    replace(
      ctx.main,
      heading("Compare runs", `${runs.length} runs`),
      section("Params and latest metrics", h("div", { class: "table-wrap" }, summary)),
      section("Parallel coordinates", colorKeyNote, parcoords),
      section("Metrics over steps", metricKeys.length ? chartsBox : h("p", { class: "muted" }, "These runs logged no metrics.")),
    );

    const dimensions: Dimension[] = [
      ...paramKeys.map((k) => {
        const values = runs.map((r) => r.params[k] ?? null);
        const numeric = values.every((v) => v === null || toNumber(v) !== null);
        return { label: k, values: numeric ? values.map((v) => toNumber(v)) : values };
      }),
      ...metricKeys.map((k) => ({ label: k, values: runs.map((r) => toNumber(r.metrics[k])) })),
    ];
    parallelCoordinates(parcoords, dimensions, colorKey ? runs.map((r) => toNumber(r.metrics[colorKey])) : null, runs.map(label));

    for (const key of metricKeys) {
      const el = h("div", { class: "chart", "data-testid": "metric-chart", "data-metric": key, role: "img", "aria-label": `${key} over steps` });
      chartsBox.appendChild(el);
      const histories = await Promise.all(
        runs.map((run) =>
          key in run.metrics
            ? getJson<{ metrics: MetricPoint[] }>(`/runs/${seg(run.run_id)}/metrics/${key.split("/").map(seg).join("/")}`).then((r) => r.metrics)
            : Promise.resolve([] as MetricPoint[]),
        ),
      ).catch((error: unknown) => {
        ctx.fail(error);
        return null;
      });
      if (!ctx.alive()) return;
      if (!histories) continue;
      void lineChart(
        el,
        key,
        runs.map((run, index) => ({
          name: label(run),
          x: (histories[index] ?? []).map((p) => p.step),
          y: (histories[index] ?? []).map((p) => toNumber(p.value)),
        })),
        { x: "step", y: key },
      );
    }
  },
};
