// Continuous training: the policies, and one policy's timeline of triggers, retrains, gate
// decisions, canaries, promotions and rollbacks, each with the evidence it rests on.

import { getJson, seg } from "../api";
import { badge, formatTime, h, jsonBlock, jsonDetails, link, replace, section, table } from "../dom";
import { crumbs, heading, type Page, type PageContext } from "../page";
import { href, piece } from "../router";

const EVENTS = 500;

interface Policy {
  name: string;
  version: number;
  created_time: number;
  definition: Record<string, unknown>;
  rollout_in_flight?: unknown;
  state?: Record<string, unknown>;
}

interface LoopEvent {
  id: number | null;
  time: number;
  policy_version: number | null;
  kind: string;
  retrain: string | null;
  evidence: Record<string, unknown>;
  summary?: string;
}

/** The family of an event kind, for its color and the filter chips. */
export function family(kind: string): string {
  if (kind === "triggered") return "trigger";
  if (kind.startsWith("skipped")) return "skipped";
  if (kind === "window_built" || kind === "trained") return "retrain";
  if (kind.startsWith("gate")) return "gate";
  if (kind.startsWith("canary")) return "canary";
  if (kind === "promoted") return "promotion";
  if (kind === "rolled_back") return "rollback";
  if (kind === "failed") return "failure";
  return "other";
}

function modelOf(policy: Policy): string {
  const model = policy.definition.model ?? policy.definition.model_name;
  return typeof model === "string" ? model : "";
}

export const loopPage: Page = {
  name: "loop",
  async render(ctx: PageContext): Promise<void> {
    const { policies } = await getJson<{ policies: Policy[] }>("/loop/policies");
    if (!ctx.alive()) return;
    replace(
      ctx.main,
      heading("Continuous training", `${policies.length} polic${policies.length === 1 ? "y" : "ies"}`),
      policies.length
        ? table(
            ["Policy", "Version", "Model", "Applied", "Rollout in flight"],
            policies.map((p) => [link(href(`/loop/${piece(p.name)}`), p.name), `v${p.version}`, modelOf(p) || "—", formatTime(p.created_time), p.rollout_in_flight ? jsonDetails("yes", p.rollout_in_flight) : "no"]),
            { "data-testid": "loop-policies", class: "grid" },
          )
        : h("div", { "data-testid": "loop-policies", class: "empty" }, h("p", null, "No policies. Apply one with loopml loop apply policy.yaml.")),
    );
  },
};

export const loopPolicyPage: Page = {
  name: "loop-policy",
  async render(ctx: PageContext): Promise<void> {
    const name = ctx.params.name ?? "";
    const policy = await getJson<Policy>(`/loop/${seg(name)}`);
    const { events } = await getJson<{ events: LoopEvent[] }>(`/loop/${seg(name)}/history`, { limit: EVENTS });
    if (!ctx.alive()) return;
    const shown = ctx.query.get("kind") ?? "";
    const families = [...new Set(events.map((e) => family(e.kind)))].sort();
    const newestFirst = [...events].reverse().filter((e) => !shown || family(e.kind) === shown);
    const model = modelOf(policy);
    const timeline = h(
      "ol",
      { class: "timeline", "data-testid": "loop-timeline" },
      newestFirst.map((event) =>
        h(
          "li",
          { class: `event family-${family(event.kind)}`, "data-testid": "loop-event", "data-kind": event.kind, "data-family": family(event.kind) },
          h("div", { class: "event-head" }, h("time", { datetime: new Date(event.time).toISOString() }, formatTime(event.time)), " ", badge(event.kind.replace(/_/g, " ")), event.retrain ? h("span", { class: "muted" }, ` retrain ${event.retrain.slice(0, 12)}`) : null),
          h("p", { class: "event-summary" }, event.summary || event.kind),
          h("details", null, h("summary", null, "Evidence"), jsonBlock(event.evidence)),
        ),
      ),
    );
    replace(
      ctx.main,
      crumbs(["Loop", "#/loop"], [name, null]),
      heading(`Policy ${name}`, `version ${policy.version} · applied ${formatTime(policy.created_time)}${model ? ` · model ${model}` : ""}`),
      model ? h("p", null, link(href(`/models/${piece(model)}`), "Model registry"), " · ", link(href(`/monitoring/${piece(model)}`), "Monitoring")) : null,
      section(
        "Timeline",
        h(
          "nav",
          { class: "chips", "aria-label": "Event kinds" },
          h("a", { href: href(`/loop/${piece(name)}`), "aria-current": shown ? null : "page" }, "All"),
          families.map((f) => h("a", { href: href(`/loop/${piece(name)}`, { kind: f }), "aria-current": f === shown ? "page" : null }, f)),
        ),
        newestFirst.length ? h("p", { class: "muted" }, `${newestFirst.length} events, newest first.`) : h("p", { class: "muted" }, "No events yet."),
        timeline,
      ),
      section("Definition", jsonBlock(policy.definition)),
      policy.state ? section("Controller state", jsonDetails("state", policy.state)) : null,
    );
  },
};
