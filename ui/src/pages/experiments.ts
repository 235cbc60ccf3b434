// Experiments, and one experiment's run table: chosen metric/param columns, server-side
// filter (the SDK's syntax), sort and paging, and run selection for the comparison page.

import { ApiError, getJson, isNotFound, seg } from "../api";
import { badge, formatDuration, formatTime, formatValue, h, link, replace, table } from "../dom";
import { crumbs, heading, type Page, type PageContext } from "../page";
import { href, navigate, piece } from "../router";
import type { Experiment, ExperimentKeys, Run, RunPage } from "../types";

export const PAGE_SIZE = 100;
const DEFAULT_ORDER = "attributes.start_time DESC";
const DEFAULT_COLUMNS_PER_KIND = 4;

export const experimentsPage: Page = {
  name: "experiments",
  async render(ctx: PageContext): Promise<void> {
    const { experiments } = await getJson<{ experiments: Experiment[] }>("/experiments");
    if (!ctx.alive()) return;
    const rows = experiments.map((e) => [
      link(href(`/experiments/${piece(e.experiment_id)}`), e.name),
      h("code", null, e.experiment_id),
      formatTime(e.creation_time),
      formatTime(e.last_update_time),
      Object.keys(e.tags).length ? Object.entries(e.tags).map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`)) : "—",
    ]);
    replace(
      ctx.main,
      heading("Experiments", `${experiments.length} experiment${experiments.length === 1 ? "" : "s"}`),
      experiments.length
        ? table(["Name", "ID", "Created", "Last update", "Tags"], rows, { "data-testid": "experiments", class: "grid" })
        : h("div", { "data-testid": "experiments", class: "empty" }, h("p", null, "No experiments yet. Log a run with the SDK (loopml.start_run()) and it appears here.")),
    );
  },
};

interface TableState {
  id: string;
  filter: string;
  order: string;
  page: number;
  columns: string[];
}

function readState(ctx: PageContext): TableState {
  const page = Number.parseInt(ctx.query.get("page") ?? "1", 10);
  const cols = ctx.query.get("cols");
  return {
    id: ctx.params.id ?? "",
    filter: ctx.query.get("filter") ?? "",
    order: ctx.query.get("order") || DEFAULT_ORDER,
    page: Number.isFinite(page) && page > 0 ? page : 1,
    columns: cols === null ? [] : cols.split(",").filter((c) => c && c !== "-"),
  };
}

function stateHref(state: TableState, change: Partial<TableState>): string {
  const next = { ...state, ...change };
  return href(`/experiments/${piece(next.id)}`, {
    filter: next.filter,
    order: next.order === DEFAULT_ORDER ? "" : next.order,
    page: next.page > 1 ? next.page : "",
    // "-" keeps "no extra columns" apart from "no choice made" (the defaults).
    cols: next.columns.length ? next.columns.join(",") : "-",
  });
}

function defaultColumns(keys: ExperimentKeys): string[] {
  return [
    ...keys.metrics.slice(0, DEFAULT_COLUMNS_PER_KIND).map((k) => `metrics.${k}`),
    ...keys.params.slice(0, DEFAULT_COLUMNS_PER_KIND).map((k) => `params.${k}`),
  ];
}

function keysFromRuns(runs: Run[]): ExperimentKeys {
  const metrics = new Set<string>();
  const params = new Set<string>();
  const tags = new Set<string>();
  for (const run of runs) {
    Object.keys(run.metrics).forEach((k) => metrics.add(k));
    Object.keys(run.params).forEach((k) => params.add(k));
    Object.keys(run.tags).forEach((k) => tags.add(k));
  }
  return { metrics: [...metrics].sort(), params: [...params].sort(), tags: [...tags].sort() };
}

/** The value of a ``metrics.x`` / ``params.x`` / ``tags.x`` column of a run. */
function cellValue(run: Run, column: string): string {
  const dot = column.indexOf(".");
  const kind = column.slice(0, dot);
  const key = column.slice(dot + 1);
  if (kind === "metrics") return formatValue(run.metrics[key]);
  if (kind === "params") return run.params[key] ?? "—";
  if (kind === "tags") return run.tags[key] ?? "—";
  return "—";
}

function splitOrder(order: string): { key: string; descending: boolean } {
  const match = /^(.*?)(?:\s+(ASC|DESC))?$/i.exec(order.trim());
  const key = match?.[1] ?? order;
  return { key, descending: (match?.[2] ?? "ASC").toUpperCase() === "DESC" };
}

export const experimentPage: Page = {
  name: "experiment",
  async render(ctx: PageContext): Promise<void> {
    const state = readState(ctx);
    const experimentPath = `/experiments/${seg(state.id)}`;
    const experiment = await getJson<Experiment>(experimentPath);
    if (!ctx.alive()) return;

    const keysRequest = getJson<ExperimentKeys>(`${experimentPath}/keys`).catch((error: unknown) => {
      // A server without the keys route: fall back to the keys of the runs shown.
      if (!isNotFound(error)) ctx.fail(error);
      return null;
    });
    let filterError: string | null = null;
    let page: RunPage = { runs: [], next_offset: null, next_page_token: null };
    try {
      page = await getJson<RunPage>("/runs/search", {
        experiment_ids: [state.id],
        filter_string: state.filter,
        order_by: [state.order],
        max_results: PAGE_SIZE,
        offset: (state.page - 1) * PAGE_SIZE,
      });
    } catch (error) {
      if (error instanceof ApiError && (error.field === "filter_string" || error.field === "order_by")) {
        filterError = error.message;
      } else {
        throw error;
      }
    }
    const keys = (await keysRequest) ?? keysFromRuns(page.runs);
    if (!ctx.alive()) return;
    const columns = ctx.query.get("cols") === null ? defaultColumns(keys) : state.columns;
    const current = { ...state, columns };
    const selected = new Set<string>();

    const compareButton = h("button", { type: "button", "data-testid": "compare", disabled: true, class: "primary" }, "Compare selected runs");
    const selectedNote = h("span", { class: "muted", role: "status" }, "Select two or more runs to compare.");
    const updateSelection = (): void => {
      compareButton.disabled = selected.size < 2;
      selectedNote.textContent = selected.size ? `${selected.size} selected` : "Select two or more runs to compare.";
    };
    compareButton.addEventListener("click", () => {
      if (selected.size >= 2) navigate(href("/compare", { runs: [...selected].join(",") }));
    });

    const { key: sortKey, descending } = splitOrder(current.order);
    const sortHeader = (key: string, label: string): HTMLElement => {
      const active = key === sortKey;
      const next = active && descending ? `${key} ASC` : `${key} DESC`;
      const go = (): void => navigate(stateHref(current, { order: next, page: 1 }));
      const th = h(
        "th",
        { scope: "col", "data-sort-key": key, "aria-sort": active ? (descending ? "descending" : "ascending") : "none", class: "sortable" },
        h("button", { type: "button", class: "sort", title: `Sort by ${label}` }, label, active ? (descending ? " ▼" : " ▲") : ""),
      );
      th.addEventListener("click", go);
      return th;
    };

    const head = h(
      "tr",
      null,
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")),
      sortHeader("attributes.run_name", "Run"),
      sortHeader("attributes.status", "Status"),
      sortHeader("attributes.start_time", "Started"),
      h("th", { scope: "col" }, "Duration"),
      columns.map((column) => sortHeader(column, column.replace(/^(metrics|params|tags)\./, ""))),
    );
    const body = h(
      "tbody",
      null,
      page.runs.map((run) => {
        const box = h("input", {
          type: "checkbox",
          "data-testid": "select-run",
          "aria-label": `Select run ${run.run_name}`,
          value: run.run_id,
        });
        box.addEventListener("change", () => {
          if (box.checked) selected.add(run.run_id);
          else selected.delete(run.run_id);
          updateSelection();
        });
        return h(
          "tr",
          { "data-run-id": run.run_id },
          h("td", null, box),
          h("td", null, link(href(`/runs/${piece(run.run_id)}`), run.run_name || run.run_id)),
          h("td", null, badge(run.status)),
          h("td", null, formatTime(run.start_time)),
          h("td", null, run.end_time ? formatDuration(run.end_time - run.start_time) : "—"),
          columns.map((column) => h("td", { class: column.startsWith("metrics.") ? "num" : "" }, cellValue(run, column))),
        );
      }),
    );
    const runsTable = h("table", { "data-testid": "runs-table", class: "grid runs" }, h("thead", null, head), body);

    const filterInput = h("input", {
      id: "run-filter",
      type: "search",
      "data-testid": "run-filter",
      "aria-label": "Filter runs",
      "aria-describedby": "filter-help filter-error",
      placeholder: "metrics.acc > 0.9 and params.model = 'rf'",
      value: state.filter,
      spellcheck: "false",
      autocomplete: "off",
    });
    filterInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        navigate(stateHref(current, { filter: filterInput.value.trim(), page: 1 }));
      }
    });
    const filterBox = h(
      "div",
      { class: "filter" },
      h("label", { for: "run-filter" }, "Filter"),
      filterInput,
      h("p", { id: "filter-help", class: "help" }, "The SDK's filter syntax, e.g. metrics.rmse < 0.5 and params.model = 'rf' and tags.team = 'x'. Press Enter to apply."),
      h("p", { id: "filter-error", class: "field-error", "data-testid": "filter-error", role: "alert", hidden: filterError === null }, filterError ?? ""),
    );

    const chooser = h(
      "details",
      { class: "columns", "data-testid": "columns" },
      h("summary", null, `Columns (${columns.length})`),
      ([["metrics", keys.metrics], ["params", keys.params], ["tags", keys.tags]] as [string, string[]][]).map(([kind, names]) =>
        names.length
          ? h(
              "fieldset",
              null,
              h("legend", null, kind),
              names.map((name) => {
                const column = `${kind}.${name}`;
                const box = h("input", { type: "checkbox", value: column, checked: columns.includes(column), "data-column": column });
                box.addEventListener("change", () => {
                  const chosen = box.checked ? [...columns, column] : columns.filter((c) => c !== column);
                  navigate(stateHref(current, { columns: chosen }));
                });
                return h("label", { class: "check" }, box, " ", name);
              }),
            )
          : null,
      ),
    );

    const first = (state.page - 1) * PAGE_SIZE + 1;
    const pager = h(
      "nav",
      { class: "pager", "aria-label": "Run pages" },
      h("button", { type: "button", "data-testid": "prev-page", disabled: state.page <= 1, onclick: () => navigate(stateHref(current, { page: state.page - 1 })) }, "← Previous"),
      h("span", { role: "status" }, page.runs.length ? `Runs ${first}–${first + page.runs.length - 1}, page ${state.page}` : `No runs on page ${state.page}`),
      h("button", { type: "button", "data-testid": "next-page", disabled: page.next_offset === null, onclick: () => navigate(stateHref(current, { page: state.page + 1 })) }, "Next →"),
    );

    replace(
      ctx.main,
      crumbs(["Experiments", "#/"], [experiment.name, null]),
      heading(experiment.name, `Experiment ${experiment.experiment_id} · created ${formatTime(experiment.creation_time)}`),
      h("div", { class: "toolbar" }, filterBox, chooser),
      h("div", { class: "toolbar" }, compareButton, selectedNote),
      h("div", { class: "table-wrap" }, runsTable),
      page.runs.length === 0 ? h("p", { class: "muted" }, filterError ? "Fix the filter to see runs." : "No runs match.") : null,
      pager,
    );
  },
};
