// Thin wrappers over Plotly, which the server ships at /ui/vendor/plotly.min.js (from the
// Python plotly package). It is loaded on the first chart, so table-only pages stay light.

interface PlotlyApi {
  newPlot(el: HTMLElement, data: unknown[], layout: Record<string, unknown>, config: Record<string, unknown>): Promise<unknown>;
  purge(el: HTMLElement): void;
}

declare global {
  interface Window {
    Plotly?: PlotlyApi;
  }
}

const PLOTLY_URL = "/ui/vendor/plotly.min.js";
let loading: Promise<PlotlyApi> | null = null;

function loadPlotly(): Promise<PlotlyApi> {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise<PlotlyApi>((resolve, reject) => {
      const script = document.createElement("script");
      script.src = PLOTLY_URL;
      script.async = true;
      script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("the chart library did not load")));
      script.onerror = () => {
        loading = null;
        reject(new Error("the chart library could not be loaded"));
      };
      document.head.appendChild(script);
    });
  }
  return loading;
}

const CONFIG = { displaylogo: false, responsive: true };
const BASE_LAYOUT = {
  margin: { l: 56, r: 16, t: 36, b: 44 },
  font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
  paper_bgcolor: "#ffffff",
  plot_bgcolor: "#ffffff",
  legend: { orientation: "h", y: -0.2 },
};

export interface Series {
  name: string;
  x: (number | string)[];
  y: (number | null)[];
}

async function plot(el: HTMLElement, data: unknown[], layout: Record<string, unknown>): Promise<void> {
  try {
    const plotly = await loadPlotly();
    el.replaceChildren();
    await plotly.newPlot(el, data, { ...BASE_LAYOUT, ...layout }, CONFIG);
  } catch (error) {
    el.replaceChildren();
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = `Chart unavailable: ${error instanceof Error ? error.message : String(error)}`;
    el.appendChild(note);
  }
}

/** Lines of y over x, one per series (metric over step, drift over time...). */
export function lineChart(el: HTMLElement, title: string, series: Series[], axes: { x?: string; y?: string; xTime?: boolean } = {}): Promise<void> {
  const data = series.map((s) => ({ type: "scatter", mode: s.x.length > 1 ? "lines+markers" : "markers", name: s.name, x: s.x, y: s.y }));
  return plot(el, data, {
    title: { text: title, font: { size: 14 } },
    xaxis: { title: { text: axes.x ?? "" }, type: axes.xTime ? "date" : "-" },
    yaxis: { title: { text: axes.y ?? "" } },
    showlegend: series.length > 1,
  });
}

/** Bars (histograms, counts). */
export function barChart(el: HTMLElement, title: string, labels: (string | number)[], values: number[], axes: { x?: string; y?: string } = {}): Promise<void> {
  return plot(el, [{ type: "bar", x: labels, y: values, marker: { color: "#3b6ea5" } }], {
    title: { text: title, font: { size: 14 } },
    xaxis: { title: { text: axes.x ?? "" } },
    yaxis: { title: { text: axes.y ?? "" } },
    bargap: 0.05,
  });
}

/**
 * A grid of cells (rows by columns), e.g. which features drifted at each monitor run. ``z`` is
 * 0 or 1 (or null for no result) and ``text`` is shown on hover.
 */
export function heatmap(el: HTMLElement, title: string, x: string[], y: string[], z: (number | null)[][], text: string[][], legend: [string, string]): Promise<void> {
  return plot(
    el,
    [
      {
        type: "heatmap",
        x,
        y,
        z,
        text,
        hoverinfo: "text",
        zmin: 0,
        zmax: 1,
        xgap: 1,
        ygap: 1,
        colorscale: [
          [0, "#cfe8d5"],
          [1, "#d64545"],
        ],
        colorbar: { tickvals: [0, 1], ticktext: legend, len: 0.6, thickness: 12 },
      },
    ],
    {
      title: { text: title, font: { size: 14 } },
      xaxis: { type: "date" },
      yaxis: { automargin: true },
      margin: { l: 110, r: 16, t: 36, b: 44 },
    },
  );
}

export interface Dimension {
  label: string;
  values: (number | string | null)[];
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A color from dark blue (0) to yellow-green (1), for the lines of parallel coordinates. */
function ramp(share: number): string {
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const position = Math.min(Math.max(share, 0), 1) * (stops.length - 1);
  const low = stops[Math.floor(position)] ?? stops[0]!;
  const high = stops[Math.ceil(position)] ?? low;
  const t = position - Math.floor(position);
  const mix = low.map((c, i) => Math.round(c + ((high[i] ?? c) - c) * t));
  return `rgb(${mix.join(",")})`;
}

/**
 * Parallel coordinates as SVG: one vertical axis per dimension (numbers scaled min..max, text
 * as evenly spaced categories) and one line per run, colored by ``colorBy``.
 *
 * Drawn without Plotly's WebGL ``parcoords``, which needs a GPU context and run-time code
 * generation that the page's Content-Security-Policy forbids.
 */
export function parallelCoordinates(el: HTMLElement, dimensions: Dimension[], colorBy: (number | null)[] | null, labels: string[] = []): void {
  el.replaceChildren();
  const count = Math.max(0, ...dimensions.map((d) => d.values.length));
  if (dimensions.length === 0 || count === 0) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "No params or metrics to compare.";
    el.appendChild(note);
    return;
  }
  const width = Math.max(640, dimensions.length * 150);
  const height = 380;
  const top = 48;
  const bottom = height - 28;
  const left = 70;
  const right = width - 70;
  const step = dimensions.length > 1 ? (right - left) / (dimensions.length - 1) : 0;
  const axisX = (index: number): number => (dimensions.length > 1 ? left + index * step : (left + right) / 2);
  const scaled = dimensions.map((dimension) => {
    const numeric = dimension.values.every((v) => v === null || typeof v === "number");
    if (numeric) {
      const numbers = dimension.values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
      const min = Math.min(...numbers);
      const max = Math.max(...numbers);
      const y = (v: number | string | null): number | null =>
        typeof v !== "number" || !Number.isFinite(v) ? null : max === min ? (top + bottom) / 2 : bottom - ((v - min) / (max - min)) * (bottom - top);
      const ticks = numbers.length ? (max === min ? [min] : [min, (min + max) / 2, max]) : [];
      return { y, ticks: ticks.map((t) => ({ label: Number(t.toPrecision(4)).toString(), at: y(t) ?? 0 })) };
    }
    const categories = Array.from(new Set(dimension.values.map((v) => String(v ?? "—")))).sort();
    const spot = (index: number): number => (categories.length === 1 ? (top + bottom) / 2 : bottom - (index / (categories.length - 1)) * (bottom - top));
    return {
      y: (v: number | string | null): number | null => spot(categories.indexOf(String(v ?? "—"))),
      ticks: categories.map((c, index) => ({ label: c.length > 18 ? `${c.slice(0, 17)}…` : c, at: spot(index) })),
    };
  });
  const colors = colorBy ?? [];
  const known = colors.filter((c): c is number => c !== null && Number.isFinite(c));
  const cMin = Math.min(...known);
  const cMax = Math.max(...known);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "parcoords", role: "img", "aria-label": "Parallel coordinates" });
  for (let run = 0; run < count; run++) {
    const value = colors[run];
    const color = value === null || value === undefined || !known.length ? "#3b6ea5" : ramp(cMax === cMin ? 0.5 : (value - cMin) / (cMax - cMin));
    let path = "";
    let pen = false;
    dimensions.forEach((dimension, index) => {
      const y = scaled[index]!.y(dimension.values[run] ?? null);
      if (y === null) {
        pen = false;
        return;
      }
      path += `${pen ? "L" : "M"}${axisX(index).toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    });
    const line = svg("path", { d: path.trim() || "M0,0", class: "pc-line", stroke: color });
    line.appendChild(svg("title", {}, labels[run] ?? `run ${run + 1}`));
    root.appendChild(line);
  }
  dimensions.forEach((dimension, index) => {
    const x = axisX(index);
    root.appendChild(svg("line", { x1: x, x2: x, y1: top, y2: bottom, class: "pc-axis" }));
    root.appendChild(svg("text", { x, y: top - 22, class: "pc-label", "text-anchor": "middle" }, dimension.label));
    for (const tick of scaled[index]!.ticks) {
      root.appendChild(svg("text", { x: x - 6, y: tick.at + 4, class: "pc-tick", "text-anchor": "end" }, tick.label));
    }
  });
  el.appendChild(root);
}

/** Numbers from API values, where NaN and infinities travel as "nan" / "inf" / "-inf". */
export function toNumber(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "") {
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : null;
  }
  return null;
}
