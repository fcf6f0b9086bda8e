// Labels page: the disagreements no person has labelled yet (GET /api/labels/queue), each with its
// frame and both answers. An operator confirms the cloud's label or picks another of the edge
// model's labels (PUT /api/escalations/{id}/label); a person's label wins over the cloud's in the
// exported dataset. Loaded after app.js, whose helpers it uses; it builds its own section and
// registers itself in app.js's pages.
"use strict";

(function () {
  const section = h("section", { id: "page-labels", class: "page", hidden: true },
    h("h2", {}, "Labels"),
    h("p", { id: "labels-note", class: "note", hidden: true },
      "Your token is a viewer's: you can look, not label."),
    h("div", { class: "filters" },
      h("label", {}, "Site ", h("select", { id: "labels-site" }, h("option", { value: "" }, "all"))),
      h("span", { id: "labels-count" })),
    h("div", { id: "labels-queue", class: "gallery" }));
  document.querySelector("main").append(section);

  async function setLabel(item, label) {
    try {
      await api(`/api/escalations/${encodeURIComponent(item.msg_id)}/label`, {
        method: "PUT", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ label }) });
      say(`labelled ${label}: ${item.site}/${item.device} ${item.msg_id}`, false);
    } catch (error) {
      say(error.message, true);
    }
    state.lastRefresh = 0;
    refresh();
  }

  async function labelCard(item) {
    const allowed = item.labels || [];
    const locked = !may("operator") || allowed.length === 0;
    const pick = h("select", { class: "pick", disabled: locked },
      ...allowed.map(l => h("option", { value: l, selected: l === item.cloud_label }, l)));
    return h("div", { class: "shot disagree", dataset: { id: item.msg_id } },
      h("img", { src: await frameUrl(item), alt: item.msg_id }),
      h("div", {}, `${item.site}/${item.device} · ${new Date(item.captured_at * 1000).toLocaleString()}`),
      h("div", { class: "edge" }, `edge: ${item.edge_label} ${pct(item.edge_score)}`),
      h("div", { class: "cloud" }, `cloud: ${item.cloud_label} ${pct(item.cloud_score)}`),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "confirm", disabled: locked || !allowed.includes(item.cloud_label),
                      onclick: () => setLabel(item, item.cloud_label) }, `Confirm ${item.cloud_label}`),
        pick,
        h("button", { type: "button", class: "relabel", disabled: locked,
                      onclick: () => setLabel(item, pick.value) }, "Label as chosen")),
      allowed.length ? null : h("div", { class: "note" }, "the edge model's labels are unknown"));
  }

  async function loadLabels() {
    const site = $("#labels-site").value;
    const [queue, sites] = await Promise.all([
      api("/api/labels/queue?limit=48" + (site ? `&site=${encodeURIComponent(site)}` : "")),
      api("/api/sites")]);
    $("#labels-note").hidden = may("operator");
    fillSelect($("#labels-site"), sites.items.map(s => s.site), true);
    $("#labels-count").textContent = `${queue.total} disagreement(s) waiting for a label`;
    $("#labels-queue").replaceChildren(...await Promise.all(queue.items.map(labelCard)));
  }

  $("#labels-site").addEventListener("change", refresh);
  pages.labels = loadLabels;
})();
