// Pipeline runs, and one run as a DAG: steps colored by status, cache hits marked, durations
// shown; choosing a step shows its logs.

import { getJson, getText, seg } from "../api";
import { badge, formatDuration, formatTime, h, jsonDetails, link, replace, section, table } from "../dom";
import { crumbs, heading, messageOf, type Page, type PageContext } from "../page";
import { href, piece } from "../router";

interface PipelineRun {
  id: string;
  pipeline_name: string;
  pipeline_version: string;
  status: string;
  start_time: number;
  end_time: number | null;
  duration_ms: number | null;
  executor: string;
  host: string;
  params: Record<string, unknown>;
  run_id: string | null;
  trigger: string;
  error: string | null;
}

interface Step {
  id: string;
  step_name: string;
  status: string;
  start_time: number | null;
  duration_ms: number | null;
  attempts: number;
  upstream: string[];
  has_logs: boolean;
  error: string | null;
  cache_hit: boolean;
  cache_reason: string;
  run_id: string | null;
  params: Record<string, unknown>;
  outputs: { name: string; size: number; type_name: string }[];
}

interface RunTree {
  run: PipelineRun;
  steps: Step[];
  summary: { steps: number; cache_hits: number; by_status: Record<string, number> };
}

const PAGE_SIZE = 50;

export const pipelinesPage: Page = {
  name: "pipelines",
  async render(ctx: PageContext): Promise<void> {
    const pipeline = ctx.query.get("pipeline") ?? "";
    const offset = Math.max(0, Number.parseInt(ctx.query.get("offset") ?? "0", 10) || 0);
    const [summaries, page] = await Promise.all([
      getJson<{ pipelines: { pipeline_name: string; runs: number; last_status: string; last_start_time: number }[] }>("/pipelines"),
      getJson<{ runs: PipelineRun[]; next_offset: number | null }>("/pipelines/runs", { pipeline, max_results: PAGE_SIZE, offset }),
    ]);
    if (!ctx.alive()) return;
    const filter = h(
      "nav",
      { class: "chips", "aria-label": "Pipelines" },
      h("a", { href: "#/pipelines", "aria-current": pipeline ? null : "page" }, "All"),
      summaries.pipelines.map((p) =>
        h("a", { href: href("/pipelines", { pipeline: p.pipeline_name }), "aria-current": p.pipeline_name === pipeline ? "page" : null }, `${p.pipeline_name} (${p.runs})`),
      ),
    );
    replace(
      ctx.main,
      heading("Pipeline runs", pipeline ? `Runs of ${pipeline}, newest first` : "Newest first"),
      filter,
      page.runs.length
        ? table(
            ["Run", "Pipeline", "Status", "Started", "Duration", "Trigger", "Executor"],
            page.runs.map((r) => [
              link(href(`/pipelines/runs/${piece(r.id)}`), h("code", null, r.id.slice(0, 12))),
              r.pipeline_name,
              badge(r.status),
              formatTime(r.start_time),
              formatDuration(r.duration_ms),
              r.trigger || "—",
              r.executor,
            ]),
            { "data-testid": "pipeline-runs", class: "grid" },
          )
        : h("div", { "data-testid": "pipeline-runs", class: "empty" }, h("p", null, "No pipeline runs yet.")),
      h(
        "nav",
        { class: "pager", "aria-label": "Pipeline run pages" },
        h("a", { href: href("/pipelines", { pipeline, offset: Math.max(0, offset - PAGE_SIZE) || null }), "aria-disabled": offset === 0 ? "true" : null, class: offset === 0 ? "disabled" : "" }, "← Newer"),
        page.next_offset !== null ? h("a", { href: href("/pipelines", { pipeline, offset: page.next_offset }) }, "Older →") : null,
      ),
    );
  },
};

const NODE_W = 190;
const NODE_H = 58;
const GAP_X = 70;
const GAP_Y = 22;

/** Depth of each step: 0 for sources, else one more than its deepest upstream step. */
export function layers(steps: Step[]): Map<string, number> {
  const byName = new Map(steps.map((s) => [s.step_name, s]));
  const depth = new Map<string, number>();
  const visit = (name: string, seen: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0;
    seen.add(name);
    const step = byName.get(name);
    const ups = (step?.upstream ?? []).filter((u) => byName.has(u));
    const value = ups.length ? Math.max(...ups.map((u) => visit(u, seen))) + 1 : 0;
    depth.set(name, value);
    return value;
  };
  steps.forEach((s) => visit(s.step_name, new Set()));
  return depth;
}

function dag(steps: Step[], onChoose: (step: Step) => void): SVGElement {
  const depth = layers(steps);
  const columns = new Map<number, Step[]>();
  steps.forEach((s) => {
    const d = depth.get(s.step_name) ?? 0;
    columns.set(d, [...(columns.get(d) ?? []), s]);
  });
  const position = new Map<string, { x: number; y: number }>();
  let height = 0;
  columns.forEach((items, d) => {
    items.forEach((s, i) => position.set(s.step_name, { x: 10 + d * (NODE_W + GAP_X), y: 10 + i * (NODE_H + GAP_Y) }));
    height = Math.max(height, items.length * (NODE_H + GAP_Y));
  });
  const width = 20 + columns.size * (NODE_W + GAP_X) - GAP_X;
  const edges = steps.flatMap((s) =>
    s.upstream
      .filter((u) => position.has(u))
      .map((u) => {
        const from = position.get(u)!;
        const to = position.get(s.step_name)!;
        const x1 = from.x + NODE_W;
        const y1 = from.y + NODE_H / 2;
        const x2 = to.x;
        const y2 = to.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        return h("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" });
      }),
  );
  const nodes = steps.map((s) => {
    const p = position.get(s.step_name)!;
    const status = s.status.toLowerCase();
    const label = `${s.step_name}: ${s.status}${s.cache_hit ? ", cache hit" : ""}, ${formatDuration(s.duration_ms)}`;
    const node = h(
      "g",
      {
        class: `node status-${status}${s.cache_hit ? " cached" : ""}`,
        transform: `translate(${p.x},${p.y})`,
        "data-step": s.step_name,
        "data-status": status,
        "data-cached": s.cache_hit ? "true" : null,
        tabindex: "0",
        role: "button",
        "aria-label": `${label}. Show logs.`,
      },
      h("title", null, `${label}${s.cache_reason ? ` (${s.cache_reason})` : ""}`),
      h("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
      h("text", { x: 10, y: 22, class: "name" }, s.step_name.length > 24 ? `${s.step_name.slice(0, 23)}…` : s.step_name),
      h("text", { x: 10, y: 42, class: "meta" }, `${s.status} · ${formatDuration(s.duration_ms)}${s.cache_hit ? " · cached" : ""}`),
    );
    node.addEventListener("click", () => onChoose(s));
    node.addEventListener("keydown", (event) => {
      const key = (event as KeyboardEvent).key;
      if (key === "Enter" || key === " ") {
        event.preventDefault();
        onChoose(s);
      }
    });
    return node;
  });
  return h(
    "svg",
    { class: "dag", "data-testid": "dag", viewBox: `0 0 ${width} ${Math.max(height, NODE_H + 20)}`, width, height: Math.max(height, NODE_H + 20), role: "group", "aria-label": "Pipeline steps" },
    h("defs", null, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, h("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))),
    edges,
    nodes,
  ) as SVGElement;
}

export const pipelineRunPage: Page = {
  name: "pipeline-run",
  async render(ctx: PageContext): Promise<void> {
    const id = ctx.params.id ?? "";
    const tree = await getJson<RunTree>(`/pipelines/runs/${seg(id)}`);
    if (!ctx.alive()) return;
    const run = tree.run;
    const detail = h("div", { class: "step-detail", "aria-live": "polite" }, h("p", { class: "muted" }, "Choose a step (click, or Tab and Enter) to see its logs."));
    const choose = async (step: Step): Promise<void> => {
      const logs = h("pre", { class: "logs", "data-testid": "step-logs", "data-step": step.step_name }, "Loading logs…");
      replace(
        detail,
        h("h3", null, step.step_name, " ", badge(step.status), step.cache_hit ? h("span", { class: "badge cached" }, "cache hit") : null),
        table(
          ["", ""],
          [
            ["Duration", formatDuration(step.duration_ms)],
            ["Started", formatTime(step.start_time)],
            ["Attempts", String(step.attempts)],
            ["Cache", step.cache_reason || "—"],
            ["Upstream", step.upstream.join(", ") || "—"],
            ["Tracking run", step.run_id ? link(href(`/runs/${piece(step.run_id)}`), step.run_id) : "—"],
          ],
          { class: "kv" },
        ),
        step.error ? h("p", { class: "field-error" }, step.error) : null,
        h("h4", null, "Logs"),
        logs,
      );
      // Asked even when has_logs is false: a cached step's server may still answer with text.
      try {
        const textBody = await getText(`/pipelines/runs/${seg(run.id)}/steps/${seg(step.step_name)}/logs`);
        logs.textContent = textBody || (step.cache_hit ? "Taken from the cache: the step did not run, so it printed nothing." : "The step printed nothing.");
      } catch (error) {
        logs.textContent = `Logs unavailable: ${messageOf(error)}`;
        ctx.fail(error);
      }
    };
    const counts = Object.entries(tree.summary.by_status).map(([status, n]) => `${n} ${status.toLowerCase()}`).join(", ");
    replace(
      ctx.main,
      crumbs(["Pipelines", "#/pipelines"], [run.pipeline_name, href("/pipelines", { pipeline: run.pipeline_name })], [run.id.slice(0, 12), null]),
      heading(`${run.pipeline_name} run`, `${run.id} · ${formatTime(run.start_time)}`),
      h(
        "p",
        null,
        badge(run.status),
        ` ${formatDuration(run.duration_ms)} · ${tree.summary.steps} steps (${counts}) · ${tree.summary.cache_hits} cache hits · trigger ${run.trigger || "—"} · executor ${run.executor}`,
      ),
      run.error ? h("p", { class: "field-error" }, run.error) : null,
      section(
        "Steps",
        h("div", { class: "legend" }, ["completed", "cached", "running", "failed", "skipped", "pending"].map((s) => h("span", { class: `legend-item status-${s}` }, s))),
        h("div", { class: "dag-wrap" }, dag(tree.steps, (step) => void choose(step))),
      ),
      section("Step", detail),
      section("Run", run.run_id ? h("p", null, "Metrics: ", link(href(`/runs/${piece(run.run_id)}`), run.run_id)) : null, jsonDetails("Params", run.params)),
    );
  },
};
