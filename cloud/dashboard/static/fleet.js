// Remote config and diagnostics on the fleet and device pages. Loaded after app.js, whose helpers
// it uses; it wraps app.js's fleet and device loaders:
// - fleet: a "config" column, the version each agent reports against the one it should run
//   (GET /api/config/devices), flagged when they differ (drift) or the agent refused it;
// - device: desired vs reported config, the refusal's reason and the desired settings
//   (GET /api/devices/{site}/{device}/config), and a Diagnostics button (operator) that asks the
//   device or gateway for its last log lines, settings in force and outbox summary
//   (POST /api/devices/{site}/{device}/diagnostics; 504 when it does not answer).
"use strict";

(function () {
  const answers = new Map();  // "site/device" -> the newest diagnostics answer, kept across refreshes

  function configText(c) {
    if (!c) return "-";
    const reported = c.reported === null ? "start-up" : `v${c.reported}`;
    if (c.desired === null) return reported;
    if (c.refused) return `refused v${c.desired} (runs ${reported})`;
    return c.drift ? `${reported} \u2192 v${c.desired}` : `v${c.desired}`;
  }

  async function decorateFleet() {
    const header = $("#fleet-table thead tr");
    if (!header.querySelector("th.config")) header.append(h("th", { class: "config" }, "config"));
    const configs = await api("/api/config/devices");
    const bySite = new Map(configs.items.map(c => [`${c.site}/${c.device}`, c]));
    for (const row of document.querySelectorAll("#fleet-table tbody tr")) {
      const c = bySite.get(`${row.dataset.site}/${row.dataset.device}`);
      const flag = c && (c.refused ? "refused" : c.drift ? "drift" : "in-step");
      row.dataset.config = flag || "none";
      row.append(h("td", { class: "config-" + (flag || "none"), title: c && c.reply && c.reply.error || null },
        configText(c)));
    }
  }

  async function diagnose(site, device, lines) {
    const key = `${site}/${device}`;
    answers.set(key, { pending: true });
    renderDiagnostics(site, device);
    try {
      const answer = await post(`/api/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}/diagnostics`,
        { lines });
      answers.set(key, { data: answer.data, at: Date.now() });
    } catch (error) {
      answers.set(key, { error: error.message });
    }
    renderDiagnostics(site, device);
  }

  function renderDiagnostics(site, device) {
    const box = $("#device-diagnostics");
    if (!box) return;
    const answer = answers.get(`${site}/${device}`);
    const children = [];
    if (answer && answer.pending) children.push(h("p", { class: "note" }, "asking the device\u2026"));
    else if (answer && answer.error) children.push(h("p", { class: "error", id: "diagnostics-error" }, answer.error));
    else if (answer) {
      const d = answer.data;
      children.push(
        h("p", { class: "note" }, `answered at ${new Date(answer.at).toLocaleTimeString()}`),
        h("h4", {}, "Outbox"), h("pre", { class: "log", id: "diagnostics-outbox" }, JSON.stringify(d.outbox, null, 2)),
        h("h4", {}, "Last log lines"), h("pre", { class: "log", id: "diagnostics-logs" }, (d.logs || []).join("\n")),
        h("h4", {}, "Settings in force (secrets hidden)"),
        h("pre", { class: "log", id: "diagnostics-settings" }, JSON.stringify(d.settings, null, 2)));
    }
    box.replaceChildren(...children);
  }

  async function decorateDevice(site, device) {
    const page = $("#page-device");
    let section = $("#device-fleet");
    if (!section) {
      section = h("div", { id: "device-fleet" });
      page.append(section);
    }
    let config = null;
    try {
      config = await api(`/api/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}/config`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;  // a gateway: no config
    }
    const lines = h("input", { type: "number", min: 0, max: 2000, value: 200, id: "diagnostics-lines" });
    const button = h("button", { id: "diagnostics-run", disabled: !may("operator"),
      title: may("operator") ? null : "needs an operator's token",
      onclick: () => diagnose(site, device, Number(lines.value)) }, "Run diagnostics");
    const parts = [h("h3", {}, "Configuration")];
    if (config) {
      parts.push(h("div", { class: "cards" },
        card("desired version", config.desired ?? "none", "config-desired"),
        card("reported version", config.reported ?? "start-up settings", "config-reported"),
        card("state", config.refused ? "refused" : config.drift ? "drift" : "in step", "config-state"),
        card("tags", config.tags.join(", ") || "-", "config-tags")));
      if (config.reply && config.reply.status === "error") {
        parts.push(h("p", { class: "error", id: "config-error" },
          `refused v${config.reply.version}: ${config.reply.error}`));
      }
      if (config.settings) parts.push(h("pre", { class: "log", id: "config-settings" }, JSON.stringify(config.settings, null, 2)));
    } else {
      parts.push(h("p", { class: "note" }, "Not an agent: no remote config."));
    }
    parts.push(h("h3", {}, "Diagnostics"), h("div", { class: "filters" },
      h("label", {}, "Log lines ", lines), button), h("div", { id: "device-diagnostics" }));
    section.replaceChildren(...parts);
    renderDiagnostics(site, device);
  }

  const loadFleet = pages.fleet, loadDevice = pages.device;
  pages.fleet = async (...args) => { await loadFleet(...args); await decorateFleet(); };
  pages.device = async (site, device) => { await loadDevice(site, device); await decorateDevice(site, device); };
})();
