// Alerts page: how many alerts fire now and which (GET /api/alerts?state=firing), the recently
// resolved ones, and the rules in force (GET /api/alerts/rules). The firing count also shows on
// the nav link from every page, polled, since alerts change without a new result arriving.
// Loaded after app.js, whose helpers it uses; it builds its own section and registers itself in
// app.js's pages.
"use strict";

(function () {
  const POLL_MS = 10000;
  const COLUMNS = ["since", "rule", "kind", "site", "device", "about", "value", "message"];
  const table = id => h("table", { id }, h("thead", {}, h("tr", {}, COLUMNS.map(c => h("th", {}, c)))),
                        h("tbody"));
  const section = h("section", { id: "page-alerts", class: "page", hidden: true },
    h("h2", {}, "Alerts"),
    h("div", { class: "cards" }, card("firing now", "-", "alerts-firing")),
    h("h3", {}, "Firing"), table("alerts-firing-table"),
    h("h3", {}, "Resolved recently"), table("alerts-resolved-table"),
    h("h3", {}, "Rules"),
    h("table", { id: "alerts-rules" },
      h("thead", {}, h("tr", {}, ["rule", "kind", "threshold", "window s", "for s", "scope"]
        .map(c => h("th", {}, c)))), h("tbody")),
    h("p", { id: "alerts-channels", class: "note" }));
  document.querySelector("main").append(section);

  const value = v => (v === null || v === undefined ? "-" : Number(v).toPrecision(3));

  function alertRow(a) {
    return h("tr", { dataset: { id: a.id, state: a.state, rule: a.rule } },
      h("td", {}, ago(a.since)), h("td", {}, a.rule), h("td", {}, a.kind), h("td", {}, a.site || "-"),
      h("td", {}, a.device || "-"), h("td", {}, a.item || "-"), h("td", { class: "num" }, value(a.value)),
      h("td", { class: "message" }, a.message));
  }

  function empty(text) {
    return [h("tr", {}, h("td", { colspan: COLUMNS.length }, text))];
  }

  function ruleRow(r) {
    const scope = [r.site && `site ${r.site}`, r.device && `device ${r.device}`].filter(Boolean);
    return h("tr", { dataset: { rule: r.name } }, h("td", {}, r.name), h("td", {}, r.kind),
      h("td", { class: "num" }, value(r.threshold)), h("td", { class: "num" }, r.window_s),
      h("td", { class: "num" }, r.for_s), h("td", {}, scope.join(", ") || "everywhere"));
  }

  function showCount(n) {
    const link = document.querySelector("#nav a[data-page='alerts']");
    if (link) link.textContent = n ? `Alerts (${n})` : "Alerts";
    if (link) link.classList.toggle("firing", n > 0);
  }

  async function loadAlerts() {
    const [firing, resolved, rules] = await Promise.all([
      api("/api/alerts?state=firing&limit=500"), api("/api/alerts?state=resolved&limit=50"),
      api("/api/alerts/rules")]);
    $("#alerts-firing .value").textContent = firing.firing;
    showCount(firing.firing);
    setRows($("#alerts-firing-table tbody"),
            firing.items.length ? firing.items.map(alertRow) : empty("nothing fires"));
    setRows($("#alerts-resolved-table tbody"),
            resolved.items.length ? resolved.items.map(alertRow) : empty("none yet"));
    setRows($("#alerts-rules tbody"), rules.rules.length ? rules.rules.map(ruleRow)
      : [h("tr", {}, h("td", { colspan: 6 }, "no rules: nothing is watched"))]);
    const where = rules.channels.concat(rules.mqtt_topic ? [`MQTT ${rules.mqtt_topic}/#`] : []);
    $("#alerts-channels").textContent = `Rules from the ${rules.source}. Notifications go to: `
      + (where.length ? where.join(", ") : "no channel (the dashboard and the API only)") + ".";
  }

  async function pollCount() {
    if (!state.me || document.hidden) return;
    if (state.page === "alerts") { refresh(); return; }
    try {
      showCount((await api("/api/alerts?state=firing&limit=1")).firing);
    } catch (error) { /* the page in view reports errors; the badge just waits */ }
  }

  setTimeout(pollCount, 1000);  // after the login the page restores from the session
  setInterval(pollCount, POLL_MS);
  pages.alerts = loadAlerts;
})();
