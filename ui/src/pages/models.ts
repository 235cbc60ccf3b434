// The model registry: models, a model's versions, aliases and audit trail (with the form that
// moves an alias, reason required), and a version's model card and gate result.

import { getJson, getText, sendJson, seg } from "../api";
import { badge, formatTime, formatValue, h, jsonDetails, link, replace, section, table } from "../dom";
import { crumbs, heading, type Page, type PageContext } from "../page";
import { href, piece } from "../router";

interface RegisteredModel {
  name: string;
  description: string;
  created_time: number;
  last_update_time: number;
  aliases: Record<string, number>;
  tags: Record<string, string>;
  latest_version: number | null;
}

interface GateReason {
  check: string;
  passed: boolean;
  message: string;
  details?: unknown;
}

interface ModelVersion {
  name: string;
  version: number;
  run_id: string;
  source: string;
  status: string;
  created_time: number;
  description: string;
  flavor: string;
  metrics: Record<string, number | string>;
  datasets: string[];
  code_version: string;
  user: string;
  tags: Record<string, string>;
  aliases: string[];
  gate: { passed: boolean; reasons: GateReason[]; checked_at?: number } | null;
}

interface AuditEntry {
  id: number;
  version: number | null;
  action: string;
  from_value: string | null;
  to_value: string | null;
  reason: string;
  user: string;
  time: number;
}

function aliasChips(aliases: Record<string, number>, name: string): HTMLElement[] {
  return Object.entries(aliases)
    .sort()
    .map(([alias, version]) => h("a", { class: "tag alias", href: href(`/models/${piece(name)}/versions/${piece(version)}`) }, `@${alias} → v${version}`));
}

export const modelsPage: Page = {
  name: "models",
  async render(ctx: PageContext): Promise<void> {
    const { models } = await getJson<{ models: RegisteredModel[] }>("/models");
    if (!ctx.alive()) return;
    replace(
      ctx.main,
      heading("Registered models", `${models.length} model${models.length === 1 ? "" : "s"}`),
      models.length
        ? table(
            ["Model", "Latest version", "Aliases", "Updated", "Description"],
            models.map((m) => [link(href(`/models/${piece(m.name)}`), m.name), m.latest_version === null ? "—" : `v${m.latest_version}`, aliasChips(m.aliases, m.name), formatTime(m.last_update_time), m.description || "—"]),
            { "data-testid": "models", class: "grid" },
          )
        : h("div", { "data-testid": "models", class: "empty" }, h("p", null, "No registered models yet.")),
    );
  },
};

function auditRows(entries: AuditEntry[]): HTMLElement {
  return h(
    "table",
    { "data-testid": "audit", class: "grid" },
    h("thead", null, h("tr", null, ["When", "Who", "Action", "Version", "From", "To", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      null,
      [...entries].reverse().map((e) =>
        h(
          "tr",
          { "data-testid": "audit-entry", "data-action": e.action },
          h("td", null, formatTime(e.time)),
          h("td", null, e.user),
          h("td", null, e.action),
          h("td", null, e.version === null ? "—" : `v${e.version}`),
          h("td", null, e.from_value ?? "—"),
          h("td", null, e.to_value ?? "—"),
          h("td", null, e.reason || "—"),
        ),
      ),
    ),
  );
}

export const modelPage: Page = {
  name: "model",
  async render(ctx: PageContext): Promise<void> {
    const name = ctx.params.name ?? "";
    const base = `/models/${seg(name)}`;
    const model = await getJson<RegisteredModel>(base);
    const [{ versions }, { entries }] = await Promise.all([
      getJson<{ versions: ModelVersion[] }>(`${base}/versions`),
      getJson<{ entries: AuditEntry[] }>(`${base}/audit`),
    ]);
    if (!ctx.alive()) return;

    const aliasesBox = h("div", { "data-testid": "aliases", class: "chips" });
    const auditBox = h("div", { class: "table-wrap" });
    const drawAliases = (aliases: Record<string, number>): void => {
      replace(aliasesBox, Object.keys(aliases).length ? aliasChips(aliases, name) : h("span", { class: "muted" }, "No aliases."));
    };
    drawAliases(model.aliases);
    replace(auditBox, auditRows(entries));

    const versionSelect = h(
      "select",
      { id: "alias-version", name: "version", required: true },
      [...versions].reverse().map((v) => h("option", { value: String(v.version) }, `v${v.version}${v.status !== "READY" ? ` (${v.status.toLowerCase()})` : ""}`)),
    );
    const aliasInput = h("input", { id: "alias-name", name: "alias", required: true, list: "known-aliases", autocomplete: "off", value: "champion" });
    const reasonInput = h("textarea", { id: "alias-reason", name: "reason", required: true, rows: 2, placeholder: "Why this version? (kept in the audit trail)" });
    const submit = h("button", { type: "submit", class: "primary" }, "Move alias");
    const result = h("p", { role: "status", class: "muted" });
    const form = h(
      "form",
      { "data-testid": "alias-form", class: "alias-form" },
      h("datalist", { id: "known-aliases" }, Object.keys(model.aliases).map((a) => h("option", { value: a }))),
      h("div", { class: "field" }, h("label", { for: "alias-name" }, "Alias"), aliasInput),
      h("div", { class: "field" }, h("label", { for: "alias-version" }, "Version"), versionSelect),
      h("div", { class: "field grow" }, h("label", { for: "alias-reason" }, "Reason (required)"), reasonInput),
      h("div", { class: "field" }, submit),
      result,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const alias = aliasInput.value.trim();
      const reason = reasonInput.value.trim();
      if (!alias || !reason) {
        result.textContent = "Alias and reason are both required.";
        (reason ? aliasInput : reasonInput).focus();
        return;
      }
      submit.disabled = true;
      result.textContent = "Saving…";
      void (async () => {
        try {
          await sendJson("PUT", `${base}/aliases/${seg(alias)}`, { version: Number(versionSelect.value), reason });
          const [fresh, audit] = await Promise.all([getJson<RegisteredModel>(base), getJson<{ entries: AuditEntry[] }>(`${base}/audit`)]);
          if (!ctx.alive()) return;
          drawAliases(fresh.aliases);
          replace(auditBox, auditRows(audit.entries));
          reasonInput.value = "";
          result.textContent = `@${alias} now points at v${versionSelect.value}.`;
        } catch (error) {
          result.textContent = "The alias was not moved; see the error above.";
          ctx.fail(error);
        } finally {
          submit.disabled = false;
        }
      })();
    });

    replace(
      ctx.main,
      crumbs(["Models", "#/models"], [name, null]),
      heading(name, model.description || null),
      section("Aliases", aliasesBox),
      section(
        "Versions",
        h(
          "div",
          { class: "table-wrap" },
          table(
            ["Version", "Status", "Aliases", "Created", "By", "Source run", "Gate", "Metrics"],
            [...versions].reverse().map((v) => [
              link(href(`/models/${piece(name)}/versions/${piece(v.version)}`), `v${v.version}`),
              badge(v.status),
              v.aliases.map((a) => h("span", { class: "tag alias" }, `@${a}`)),
              formatTime(v.created_time),
              v.user || "—",
              link(href(`/runs/${piece(v.run_id)}`), h("code", null, v.run_id.slice(0, 8))),
              v.gate ? badge(v.gate.passed ? "passed" : "rejected") : "—",
              Object.entries(v.metrics).slice(0, 4).map(([k, val]) => `${k}=${formatValue(val)}`).join(", ") || "—",
            ]),
            { "data-testid": "versions", class: "grid" },
          ),
        ),
      ),
      section("Move an alias", form),
      section("Audit trail", h("p", { class: "muted" }, "Newest first."), auditBox),
    );
  },
};

function gateView(version: ModelVersion): HTMLElement {
  const gate = version.gate;
  if (!gate) return h("div", { "data-testid": "gate" }, h("p", { class: "muted" }, "No gate result recorded for this version."));
  return h(
    "div",
    { "data-testid": "gate", "data-passed": gate.passed ? "true" : "false" },
    h("p", null, badge(gate.passed ? "passed" : "rejected"), gate.checked_at ? ` checked ${formatTime(gate.checked_at)}` : ""),
    table(["Check", "Result", "Message"], (gate.reasons ?? []).map((r) => [r.check, badge(r.passed ? "passed" : "failed"), r.message]), { class: "grid" }),
    jsonDetails("Full gate result", gate),
  );
}

export const modelVersionPage: Page = {
  name: "model-version",
  async render(ctx: PageContext): Promise<void> {
    const name = ctx.params.name ?? "";
    const number = ctx.params.version ?? "";
    const base = `/models/${seg(name)}/versions/${seg(number)}`;
    const version = await getJson<ModelVersion>(base);
    // The card shows a kept importance only: computing SHAP can take seconds, so it waits
    // for the button below.
    const card = await getText(`${base}/card`, { format: "html", importance: "stored" }).catch((error: unknown) => {
      ctx.fail(error);
      return null;
    });
    if (!ctx.alive()) return;
    // The card is server-made HTML holding user text: it is shown in a sandbox that runs no
    // script and has no origin, never inserted into this page.
    const frame = h("iframe", { title: `Model card of ${name} v${version.version}`, sandbox: "", class: "card-frame", "data-testid": "model-card" });
    frame.srcdoc = card ?? "<p>The model card could not be loaded.</p>";
    const computeStatus = h("span", { class: "muted", role: "status" });
    const compute = h("button", { type: "button", class: "secondary", "data-testid": "compute-importance" }, "Compute feature importance");
    compute.addEventListener("click", () => {
      compute.setAttribute("disabled", "");
      computeStatus.textContent = " computing SHAP values over the background sample…";
      getText(`${base}/card`, { format: "html", importance: "compute" })
        .then((text) => {
          if (!ctx.alive()) return;
          frame.srcdoc = text;
          computeStatus.textContent = " done.";
        })
        .catch((error: unknown) => {
          ctx.fail(error);
          computeStatus.textContent = "";
        })
        .finally(() => compute.removeAttribute("disabled"));
    });
    replace(
      ctx.main,
      crumbs(["Models", "#/models"], [name, href(`/models/${piece(name)}`)], [`v${version.version}`, null]),
      heading(`${name} v${version.version}`, version.description || null),
      h(
        "p",
        null,
        badge(version.status),
        " ",
        version.aliases.map((a) => h("span", { class: "tag alias" }, `@${a}`)),
        ` · ${version.flavor} · registered ${formatTime(version.created_time)} by ${version.user || "—"} · run `,
        link(href(`/runs/${piece(version.run_id)}`), version.run_id),
        version.datasets.length ? ` · data ${version.datasets.join(", ")}` : "",
        version.code_version ? ` · code ${version.code_version.slice(0, 10)}` : "",
      ),
      section("Gate", gateView(version)),
      section("Model card", h("p", null, compute, computeStatus), frame),
    );
  },
};
