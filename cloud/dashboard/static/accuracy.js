// Live accuracy of the edge models, on the cascade health page (GET /api/accuracy): per site and
// edge model, the audit samples' agreement with the cloud and its 95 % Wilson interval. Audit
// samples are a random draw of the frames the edge was sure of, so this is the unbiased figure;
// the escalated frames' disagreement stands beside it, labelled biased (the policy picked them
// because the edge was unsure). Uses app.js's helpers (api, h, setRows); builds its own table.
"use strict";

const ACCURACY_COLUMNS = ["site", "edge model", "audited", "agreeing", "accuracy (estimate)",
                          "95 % interval", "escalated-only disagreement (biased)"];

function accuracyPercent(v) {
  return v === null || v === undefined ? "-" : (v * 100).toFixed(1) + " %";
}

function accuracyTable() {
  let table = document.getElementById("accuracy-table");
  if (table) return table;
  table = h("table", { id: "accuracy-table" },
            h("thead", {}, h("tr", {}, ACCURACY_COLUMNS.map(c => h("th", {}, c)))), h("tbody"));
  document.getElementById("page-health").append(
    h("h3", {}, "Live accuracy of the edge models, from audit samples (unbiased)"), table,
    h("p", { id: "accuracy-note", class: "note" }));
  return table;
}

function accuracyRow(m) {
  const esc = m.escalated;
  const biased = esc.verdicts
    ? `${accuracyPercent(esc.disagreement)} of ${esc.verdicts} (biased)` : "-";
  return h("tr", { dataset: { site: m.site, model: `${m.model_name}/${m.model_version}` } },
           h("td", {}, m.site), h("td", {}, `${m.model_name} ${m.model_version}`),
           h("td", { class: "num audited" }, m.audited), h("td", { class: "num" }, m.agreeing),
           h("td", { class: "num estimate" }, accuracyPercent(m.estimate)),
           h("td", { class: "num interval" },
             m.audited ? `${accuracyPercent(m.low)} to ${accuracyPercent(m.high)}` : "-"),
           h("td", { class: "num biased", title: esc.note }, biased));
}

async function loadAccuracy(window_s) {
  const since = Date.now() / 1000 - window_s;
  const body = await api(`/api/accuracy?since=${since.toFixed(3)}`);
  const table = accuracyTable();
  const rows = body.items.map(accuracyRow);
  setRows(table.querySelector("tbody"), rows.length ? rows
    : [h("tr", {}, h("td", { colspan: ACCURACY_COLUMNS.length }, "no verdicts in this window"))]);
  document.getElementById("accuracy-note").textContent =
    "Accuracy: how often the cloud model agreed with the edge's answer on random audit samples of "
    + "the frames the edge was sure of (the cloud taken as right). The escalated-only disagreement "
    + "is biased" + (body.items.length ? ` (${body.items[0].escalated.note}).` : ".");
}
