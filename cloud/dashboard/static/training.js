// Training page: the fine-tuning runs of the sites' edge models (GET /api/training/runs), one
// run's log (#/training/<id>), a "Train now" button for admins (POST /api/training/runs), and the
// family tree of the registered versions (GET /api/training/lineage). Runs move without a change
// in the results, so the page also polls while it is open. Loaded after app.js, whose helpers it
// uses; it builds its own section and registers itself in app.js's pages.
"use strict";

(function () {
  const POLL_MS = 5000;
  const COLUMNS = ["run", "state", "site", "trigger", "parent → child", "dataset", "holdout before → after",
                   "original before → after", "decision", "rollout", "queued", "finished"];
  const section = h("section", { id: "page-training", class: "page", hidden: true },
    h("h2", {}, "Training"),
    h("p", { id: "training-note", class: "note", hidden: true },
      "Your token is not an admin's: you can look, not start a run."),
    h("form", { id: "train-form", class: "panel" },
      h("fieldset", { id: "train-fields" },
        h("legend", {}, "Train now (admin)"),
        h("label", {}, "Site ", h("select", { id: "train-site", required: true })),
        h("button", { id: "train-now", type: "submit" }, "Train now"))),
    h("div", { id: "training-run", class: "panel", hidden: true }),
    h("h3", {}, "Runs"),
    h("table", { id: "training-runs" },
      h("thead", {}, h("tr", {}, COLUMNS.map(c => h("th", {}, c)))), h("tbody")),
    h("h3", {}, "Lineage of the models"),
    h("div", { id: "training-lineage" }));
  document.querySelector("main").append(section);

  // One decimal: the regression gate is a fraction of a point.
  const acc = v => (v === null || v === undefined ? "-" : (v * 100).toFixed(1) + " %");
  const beforeAfter = (before, after) => `${acc(before)} → ${acc(after)}`;
  const side = (run, when, key) => ((run.metrics || {})[when] || {})[key];
  const time = ts => (ts ? new Date(ts * 1000).toLocaleString() : "-");

  function version(run) {
    if (!run.parent_name) return "-";
    const parent = `${run.parent_name}@${run.parent_version}`;
    return run.child_version ? `${parent} → ${run.child_version}` : parent;
  }

  function runRow(run) {
    const dataset = run.snapshot_id ? `${run.snapshot_id} (${run.dataset_size ?? "?"})` : "-";
    return h("tr", { class: "clickable", dataset: { id: run.id, state: run.state },
                     onclick: () => { location.hash = `#/training/${encodeURIComponent(run.id)}`; } },
      h("td", {}, run.id), h("td", {}, h("span", { class: "run-state " + run.state }, run.state)),
      h("td", {}, run.site), h("td", {}, run.trigger), h("td", { class: "versions" }, version(run)),
      h("td", {}, dataset),
      h("td", { class: "num holdout" }, beforeAfter(side(run, "before", "holdout_accuracy"),
                                                     side(run, "after", "holdout_accuracy"))),
      h("td", { class: "num original" }, beforeAfter(side(run, "before", "original_accuracy"),
                                                      side(run, "after", "original_accuracy"))),
      h("td", { class: "reason" }, run.reason || "-"),
      h("td", {}, run.rollout_id ? h("a", { href: "#/models" }, run.rollout_id) : "-"),
      h("td", {}, ago(run.created_at)), h("td", {}, time(run.finished_at)));
  }

  function runDetail(run) {
    const m = run.metrics || {};
    return [
      h("h3", {}, `Run ${run.id} `, h("span", { class: "run-state " + run.state }, run.state),
        " ", h("a", { href: "#/training" }, "close")),
      h("div", { class: "cards" },
        card("site", run.site), card("versions", version(run)),
        card("dataset", run.snapshot_id ? `${run.dataset_size} samples` : "-"),
        card("holdout accuracy", beforeAfter(side(run, "before", "holdout_accuracy"), side(run, "after", "holdout_accuracy"))),
        card("original accuracy", beforeAfter(side(run, "before", "original_accuracy"), side(run, "after", "original_accuracy"))),
        card("train / holdout samples", m.train_samples === undefined ? "-" : `${m.train_samples} / ${m.holdout_samples}`)),
      h("p", {}, `Trigger: ${run.trigger}. Queued ${time(run.created_at)}, started ${time(run.started_at)}, `
        + `finished ${time(run.finished_at)}` + (run.trainer_id ? ` by trainer ${run.trainer_id}.` : ".")),
      h("p", { class: "reason" }, `Decision: ${run.reason || "-"}`),
      h("pre", { id: "training-log", class: "log" }, run.log || "(no log yet)")];
  }

  // The versions' family tree as nested lists: each model under the parent it was fine-tuned from.
  function lineageTree(nodes) {
    const known = new Set(nodes.map(n => n.model));
    const children = new Map();
    for (const node of nodes) {
      const parent = node.parent && known.has(node.parent) ? node.parent : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(node);
    }
    const branch = parent => {
      const kids = children.get(parent) || [];
      return kids.length ? h("ul", {}, kids.map(node => h("li", {},
        h("span", { class: "node", dataset: { model: node.model, parent: node.parent || "" } },
          h("strong", {}, node.model),
          node.parent ? ` · from ${node.parent} · dataset ${node.dataset_size ?? "?"} samples · holdout `
            + `${beforeAfter(node.holdout_before, node.holdout_after)} · original `
            + `${beforeAfter(node.original_before, node.original_after)}`
            : node.trainable ? " · trainable" : " · not trainable"),
        branch(node.model)))) : null;
    };
    return nodes.length ? branch(null) : h("p", { class: "note" }, "no registered models");
  }

  async function loadTraining(runId) {
    const [runs, lineage, sites, run] = await Promise.all([
      api("/api/training/runs?limit=100"), api("/api/training/lineage"), api("/api/sites"),
      runId ? api(`/api/training/runs/${encodeURIComponent(runId)}`) : null]);
    $("#training-note").hidden = may("admin");
    $("#train-fields").disabled = !may("admin");
    fillSelect($("#train-site"), sites.items.map(s => s.site));
    setRows($("#training-runs tbody"), runs.items.map(runRow));
    $("#training-run").hidden = !run;
    $("#training-run").replaceChildren(...(run ? runDetail(run) : []));
    $("#training-lineage").replaceChildren(lineageTree(lineage.items));
  }

  async function trainNow(event) {
    event.preventDefault();
    const site = $("#train-site").value;
    try {
      const run = await post("/api/training/runs", { site });
      say(`training run ${run.id} queued for site ${site}`, false);
    } catch (error) {
      say("training refused: " + error.message, true);
    }
    state.lastRefresh = 0;
    refresh();
  }

  $("#train-form").addEventListener("submit", trainNow);
  setInterval(() => { if (state.page === "training" && !document.hidden) refresh(); }, POLL_MS);
  pages.training = loadTraining;
})();
