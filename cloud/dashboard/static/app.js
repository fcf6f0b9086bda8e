// EdgeCascade dashboard: a single page over the cloud's HTTP API, no framework, no build step.
// The token lives in sessionStorage and goes out as "Authorization: Bearer"; live updates come
// from /api/events (server-sent events read with fetch, since EventSource cannot send headers).
"use strict";

const TOKEN_KEY = "edgecascade-token";
const ROLES = ["viewer", "operator", "admin"];
const MAX_FRAMES = 300;  // escalated frames kept as object URLs
const state = { me: null, page: null, params: [], stream: null, snapshot: null, frames: new Map(),
                refreshing: false, again: false, events: 0 };
const $ = sel => document.querySelector(sel);

// -- API ------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  options = options || {};
  const headers = Object.assign({ Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
                                options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    if (response.status === 401) logout("Logged out: " + detail);
    throw new ApiError(response.status, `${response.status}: ${detail}`);
  }
  if (options.raw) return response;
  return response.status === 204 ? null : response.json();
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify(body || {}) });
}

function may(role) {
  return state.me !== null && ROLES.indexOf(state.me.role) >= ROLES.indexOf(role);
}

function say(text, isError) {
  const box = $("#message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
}

// -- helpers --------------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function ago(ts) {
  if (!ts) return "-";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return `${Math.max(0, s).toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return new Date(ts * 1000).toLocaleString();
}

const num = (v, opts) => window.formatNumber(v, opts);
const pct = v => num(v, { percent: true });

function card(label, value, id) {
  return h("div", { class: "card", id }, h("div", { class: "value" }, value),
           h("div", { class: "label" }, label));
}

function fillSelect(select, values, keepFirst) {
  const current = select.value;
  while (select.options.length > (keepFirst ? 1 : 0)) select.remove(keepFirst ? 1 : 0);
  for (const v of values) {
    const [value, text] = Array.isArray(v) ? v : [v, v];
    select.append(h("option", { value }, text));
  }
  if ([...select.options].some(o => o.value === current)) select.value = current;
}

function setRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// -- login ----------------------------------------------------------------------------------------
async function login(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    state.me = await api("/api/dashboard/whoami");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#login-error").textContent = "Refused: " + error.message;
    return false;
  }
  $("#login-error").textContent = "";
  $("#whoami").textContent = `${state.me.name} (${state.me.role})`;
  $("#nav").hidden = false;
  $("#session").hidden = false;
  document.body.dataset.role = state.me.role;
  connectEvents();
  return true;
}

function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  $("#nav").hidden = true;
  $("#session").hidden = true;
  $("#login-error").textContent = reason || "";
  show("login");
}

// -- live updates ---------------------------------------------------------------------------------
function connectEvents() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  (async () => {
    while (!controller.signal.aborted && state.me) {
      try {
        const response = await api("/api/events", { raw: true, signal: controller.signal });
        setLive(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        setLive(false);
        if (error instanceof ApiError && error.status === 401) return;
        await new Promise(r => setTimeout(r, 2000));
      }
    }
  })();
}

function setLive(on) {
  const live = $("#live");
  live.className = on ? "on" : "off";
  if (!on) live.textContent = "reconnecting";
}

function handleEvent(block) {
  let name = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (name !== "change" || !data) return;
  state.snapshot = JSON.parse(data);
  state.events += 1;
  const s = state.snapshot;
  const live = $("#live");
  live.textContent = `live: ${s.results} results, ${s.online}/${s.devices} online`;
  live.dataset.results = s.results;
  live.dataset.events = state.events;
  refresh();
}

// -- pages ----------------------------------------------------------------------------------------
const pages = { fleet: loadFleet, device: loadDevice, escalations: loadEscalations,
                models: loadModels, health: loadHealth };

function show(page) {
  for (const section of document.querySelectorAll(".page")) {
    section.hidden = section.id !== "page-" + page;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  state.page = page;
}

function route() {
  if (!state.me) { show("login"); return; }
  const parts = (location.hash || "#/fleet").slice(2).split("/").map(decodeURIComponent);
  const page = pages[parts[0]] ? parts[0] : "fleet";
  state.params = parts.slice(1);
  show(page);
  state.lastRefresh = 0;  // a page the operator asked for loads at once
  refresh();
}

// One refresh at a time, at most one every MIN_REFRESH_MS; a change that arrives meanwhile asks
// for one more.
const MIN_REFRESH_MS = 1500;

async function refresh() {
  if (!state.me || !pages[state.page]) return;
  if (state.refreshing) { state.again = true; return; }
  const wait = (state.lastRefresh || 0) + MIN_REFRESH_MS - Date.now();
  if (wait > 0) {
    if (!state.again) { state.again = true; setTimeout(() => { state.again = false; refresh(); }, wait); }
    return;
  }
  state.lastRefresh = Date.now();
  state.refreshing = true;
  try {
    await pages[state.page](...state.params);
    document.body.dataset.loaded = state.page;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) say(error.message, true);
  } finally {
    state.refreshing = false;
    if (state.again) { state.again = false; setTimeout(refresh, MIN_REFRESH_MS); }
  }
}

// Fleet ---------------------------------------------------------------------------------------------
async function loadFleet() {
  const [sites, fleet] = await Promise.all([api("/api/sites"), api("/api/dashboard/fleet")]);
  $("#sites").replaceChildren(...sites.items.map(s =>
    card(`site ${s.site}: online / devices, results`, `${s.online}/${s.devices}, ${s.results}`)));
  fillSelect($("#filter-site"), sites.items.map(s => s.site), true);
  const site = $("#filter-site").value, status = $("#filter-status").value;
  const role = $("#filter-role").value, text = $("#filter-text").value.trim().toLowerCase();
  const rows = fleet.items.filter(d =>
    (!site || d.site === site) && (!status || d.status === status) && (!role || d.role === role) &&
    (!text || `${d.device} ${d.model_name || ""} ${d.model_version || ""}`.toLowerCase().includes(text)));
  setRows($("#fleet-table tbody"), rows.map(d => h("tr", {
    class: "clickable", dataset: { device: d.device, site: d.site, status: d.status },
    onclick: () => { location.hash = `#/device/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}`; },
  },
    h("td", {}, d.site), h("td", {}, d.device), h("td", {}, d.role || "-"),
    h("td", { class: "status-" + d.status }, d.status), h("td", {}, ago(d.last_seen)),
    h("td", {}, d.model_name ? `${d.model_name} ${d.model_version}` : "-"),
    h("td", { class: "num" }, num(d.fps)), h("td", { class: "num" }, num(d.cpu_percent)),
    h("td", { class: "num" }, d.outbox_depth ?? "-"), h("td", { class: "num" }, d.results_recent),
    h("td", { class: "num escalation-rate" }, pct(d.escalation_rate)))));
}

// Device --------------------------------------------------------------------------------------------
async function loadDevice(site, device) {
  const q = `site=${encodeURIComponent(site)}&device=${encodeURIComponent(device)}`;
  const detail = await api(`/api/dashboard/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}`);
  const sample = detail.telemetry || {};
  const stages = Object.keys(sample.latency_ms || {});
  const queues = Object.keys(sample.queues || {}).filter(k => k.startsWith("outbox."));
  const fields = [...stages.map(s => `latency_ms.${s}.p50`), ...queues.map(k => `queues.${k}`)];
  const extra = fields.map(f => "&field=" + encodeURIComponent(f)).join("");
  const [series, count] = await Promise.all([
    api(`/api/telemetry?${q}&limit=500${extra}`),
    api(`/api/results?${q}&limit=1`),
  ]);
  const recent = await api(`/api/results?${q}&limit=15&offset=${Math.max(0, count.total - 15)}`);
  const d = detail.device;
  $("#device-title").textContent = `Device ${d.site} / ${d.device}`;
  $("#device-facts").replaceChildren(
    card("status", d.status, "device-status"), card("last seen", ago(d.last_seen)),
    card("model", d.model_name ? `${d.model_name} ${d.model_version}` : "-"),
    card("fps", num(d.fps)), card("escalation rate (5 min)", pct(d.escalation_rate)),
    card("outbox depth", d.outbox_depth ?? "-", "device-outbox"), card("results stored", count.total));
  const pts = series.points;
  const line = (name, get) => ({ name, points: pts.map(p => [p.ts, get(p)]) });
  window.lineChart($("#chart-cpu"), [line("CPU %", p => p.cpu_percent), line("memory %", p => p.memory_percent)]);
  window.lineChart($("#chart-temp"), [line("°C", p => p.temperature_c)]);
  window.lineChart($("#chart-fps"), [line("fps", p => p.fps)]);
  window.lineChart($("#chart-latency"), stages.map(s => line(s, p => p.fields[`latency_ms.${s}.p50`])));
  window.lineChart($("#chart-outbox"), [line("queued", p =>
    queues.reduce((sum, k) => sum + (p.fields[`queues.${k}`] || 0), 0))]);
  const counters = Object.entries(sample.counters || {}).sort(([a], [b]) =>
    (/drop|expired/.test(b) - /drop|expired/.test(a)) || a.localeCompare(b));
  setRows($("#device-counters tbody"), counters.map(([k, v]) =>
    h("tr", { class: /drop|expired/.test(k) ? "drop" : null }, h("td", {}, k), h("td", { class: "num" }, v))));
  setRows($("#recent-results tbody"), recent.items.reverse().map(r => h("tr", {},
    h("td", {}, new Date(r.captured_at * 1000).toLocaleTimeString()), h("td", {}, r.frame_id),
    h("td", {}, `${r.model_name} ${r.model_version}`), h("td", {}, r.label),
    h("td", { class: "num" }, num(r.score)), h("td", {}, r.escalated ? "yes" : "no"),
    h("td", { class: "num" }, num(r.latency.invoke)))));
}

// Escalations ---------------------------------------------------------------------------------------
async function frameUrl(item) {
  if (!state.frames.has(item.msg_id)) {
    const response = await api(item.frame_url, { raw: true });
    state.frames.set(item.msg_id, URL.createObjectURL(await response.blob()));
    if (state.frames.size > MAX_FRAMES) {  // forget the oldest (a Map keeps insertion order)
      const [oldest, url] = state.frames.entries().next().value;
      URL.revokeObjectURL(url);
      state.frames.delete(oldest);
    }
  }
  return state.frames.get(item.msg_id);
}

async function loadEscalations() {
  const device = $("#esc-device").value, label = $("#esc-class").value, agree = $("#esc-agree").value;
  let q = "";
  if (device) {
    const [site, dev] = device.split("/");
    q += `&site=${encodeURIComponent(site)}&device=${encodeURIComponent(dev)}`;
  }
  if (label) q += `&label=${encodeURIComponent(label)}`;
  if (agree === "pending") q += "&judged=false";
  else if (agree) q += `&agrees=${agree}`;
  const [first, fleet] = await Promise.all([api(`/api/escalations?limit=1${q}`), api("/api/dashboard/fleet")]);
  fillSelect($("#esc-device"), fleet.items.filter(d => d.role !== "gateway")
    .map(d => [`${d.site}/${d.device}`, `${d.site}/${d.device}`]), true);
  const page = await api(`/api/escalations?limit=48&offset=${Math.max(0, first.total - 48)}${q}`);
  const labels = new Set([...$("#esc-class").options].slice(1).map(o => o.value));
  page.items.forEach(e => { if (e.edge_label) labels.add(e.edge_label); });
  fillSelect($("#esc-class"), [...labels].sort(), true);
  $("#esc-count").textContent = `${first.total} escalation(s)`;
  const cards = await Promise.all(page.items.reverse().map(async e => {
    const v = e.verdict;
    const verdict = v ? h("span", { class: "badge " + (v.agrees ? "agree" : "disagree") }, v.agrees ? "agree" : "disagree")
                      : h("span", { class: "badge pending" }, "pending");
    const lines = e.task === "detection" ? window.detectionLines(e) : [
      h("div", { class: "edge" }, `edge: ${e.edge_label} ${pct(e.edge_score)}`),
      h("div", { class: "cloud" }, v ? `cloud: ${v.label} ${pct(v.score)} ` : "cloud: ")];
    lines[1].append(verdict);
    return h("div", { class: "shot" + (v && !v.agrees ? " disagree" : ""), dataset: { id: e.msg_id, task: e.task } },
      window.framedShot(await frameUrl(e), e),
      h("div", {}, `${e.device} · ${new Date(e.captured_at * 1000).toLocaleTimeString()}`),
      ...lines);
  }));
  $("#gallery").replaceChildren(...cards);
  await window.loadDetectionCounts();  // detections.js
}

// Models and rollouts -------------------------------------------------------------------------------
async function loadModels() {
  const [models, rollouts, sites] = await Promise.all([api("/api/models"), api("/api/rollouts"), api("/api/sites")]);
  $("#role-note").hidden = may("operator");
  for (const fieldset of document.querySelectorAll("fieldset[data-role]")) {
    fieldset.disabled = !may(fieldset.dataset.role);
  }
  setRows($("#models-table tbody"), models.items.map(m => h("tr", { dataset: { model: `${m.name}/${m.version}` } },
    h("td", {}, m.name), h("td", {}, m.version), h("td", {}, m.sha256.slice(0, 12)),
    h("td", { class: "num" }, num(m.size_bytes, { bytes: true })), h("td", { class: "num" }, m.num_classes),
    h("td", {}, ago(m.created_at)), h("td", {}, m.created_by))));
  const fresh = $("#rollout-model").options.length === 0;
  fillSelect($("#rollout-model"), models.items.map(m => [`${m.name}/${m.version}`, `${m.name} ${m.version}`]));
  if (fresh && models.items.length) {  // the newest registration is the likeliest to roll out
    const newest = models.items.reduce((a, b) => (b.created_at > a.created_at ? b : a));
    $("#rollout-model").value = `${newest.name}/${newest.version}`;
  }
  fillSelect($("#rollout-site"), sites.items.map(s => s.site));
  const details = await Promise.all(rollouts.items.map(r => api(`/api/rollouts/${encodeURIComponent(r.id)}`)));
  $("#rollouts").replaceChildren(...details.map(rolloutCard));
}

function rolloutCard(r) {
  const reached = Math.max(...r.stages.slice(0, r.stage + 1));
  const actions = [];
  const act = (label, cls, enabled, fn) => actions.push(h("button", {
    type: "button", class: cls, disabled: !(enabled && may("operator")), onclick: fn }, label));
  act("Pause", "pause", r.state === "running", () => rolloutAction(r.id, "pause", { reason: "from the dashboard" }));
  act("Resume", "resume", r.state === "paused", () => rolloutAction(r.id, "resume"));
  act("Roll back", "rollback", r.state === "running" || r.state === "paused",
      () => rolloutAction(r.id, "abort", { reason: "from the dashboard" }));
  const ev = r.evaluation || {};
  const side = key => ev[key] || {};
  const row = (label, key, fmt) => h("tr", {}, h("td", {}, label),
    h("td", { class: "num" }, fmt(side("new")[key])), h("td", { class: "num" }, fmt(side("baseline")[key])));
  const devices = r.targets.map(d => h("tr", {}, h("td", {}, d),
    h("td", {}, r.offered.includes(d) ? "offered" : "not offered yet"), h("td", {}, r.device_states[d] || "-")));
  return h("div", { class: "rollout", dataset: { id: r.id, state: r.state } },
    h("div", { class: "head" },
      h("strong", {}, r.id), h("span", {}, `${r.model_name} ${r.model_version} (was ${r.baseline_name} ${r.baseline_version}) on ${r.site}`),
      h("span", { class: "state" }, r.state),
      h("span", {}, `stage ${r.stage + 1}/${r.stages.length}: ${r.stages.join(" → ")} %`),
      h("div", { class: "progress", title: `${r.offered.length} of ${r.targets.length} offered` },
        h("div", { style: `width: ${100 * r.offered.length / Math.max(1, r.targets.length)}%` })),
      ...actions),
    h("p", { class: "reason" }, r.reason || (reached >= 100 && r.state === "completed" ? "completed" : "")),
    h("div", { class: "cards" },
      h("table", { class: "cohort" }, h("thead", {}, h("tr", {}, h("th", {}, "device"), h("th", {}, "cohort"), h("th", {}, "newest ack"))),
        h("tbody", {}, devices)),
      h("table", { class: "quality" }, h("thead", {}, h("tr", {}, h("th", {}, "quality"), h("th", {}, side("new").model || "new"),
        h("th", {}, side("baseline").model || "baseline"))),
        h("tbody", {}, row("results", "results", v => v ?? "-"), row("escalation rate", "escalation_rate", pct),
          row("verdicts", "verdicts", v => v ?? "-"), row("cloud disagreement", "disagreement", pct),
          row("invoke p50 ms", "invoke_ms_p50", v => num(v))))));
}

async function rolloutAction(id, action, body) {
  try {
    await post(`/api/rollouts/${encodeURIComponent(id)}/${action}`, body);
    say(`rollout ${id}: ${action} done`);
  } catch (error) {
    say(`rollout ${id}: ${action} refused: ${error.message}`, true);
  }
  refresh();
}

async function startRollout(event) {
  event.preventDefault();
  const [name, version] = $("#rollout-model").value.split("/");
  const canary = Number($("#rollout-canary").value);
  const later = $("#rollout-stages").value.split(",").map(s => s.trim()).filter(Boolean).map(Number);
  const stages = [...new Set([canary, ...later])].sort((a, b) => a - b);
  const body = { model_name: name, model_version: version, site: $("#rollout-site").value, stages,
                 criteria: { stage_min_s: Number($("#rollout-stage-min").value) } };
  try {
    const created = await post("/api/rollouts", body);
    say(`rollout ${created.id} started: ${name} ${version} to ${created.offered.join(", ")}`);
  } catch (error) {
    say("rollout refused: " + error.message, true);
  }
  refresh();
}

async function uploadModel(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  if (!data.get("preprocess")) data.delete("preprocess");
  if (!$("#upload-golden").files.length) data.delete("golden");
  try {
    const created = await api("/api/models", { method: "POST", body: data });
    say(`registered ${created.name} ${created.version}`);
    form.reset();
  } catch (error) {
    say("upload refused: " + error.message, true);
  }
  refresh();
}

// Cascade health ------------------------------------------------------------------------------------
async function loadHealth() {
  const window_s = Number($("#health-window").value);
  const bucket = Math.max(5, Math.ceil(window_s / 120));
  const body = await api(`/api/dashboard/health?window_s=${window_s}&bucket_s=${bucket}`);
  const t = body.totals;
  $("#health-totals").replaceChildren(
    card("results", t.results, "health-results"), card("escalation rate", pct(t.escalation_rate), "health-escalation"),
    card("cloud disagreement (escalated only, biased)", pct(t.disagreement), "health-disagreement"),
    card("uplinked", num(t.uplink_bytes, { bytes: true }), "health-uplink"),
    card("every frame would be", num(t.every_frame_bytes, { bytes: true }), "health-every-frame"),
    card("uplinked / every frame", t.uplink_ratio === null ? "-" : t.uplink_ratio.toFixed(3), "health-ratio"));
  const pts = body.points.map(p => Object.assign({ mid: p.start + body.bucket_s / 2 }, p));
  const line = (name, key) => ({ name, points: pts.map(p => [p.mid, p.results || key === "results" ? p[key] : null]) });
  const span = { x0: body.since, x1: body.until };
  window.lineChart($("#chart-escalation"), [line("escalation rate", "escalation_rate")], { percent: true, ...span });
  window.lineChart($("#chart-disagreement"), [{ name: "disagreement", points: pts.map(p => [p.mid, p.disagreement]) }],
                   { percent: true, ...span });
  window.lineChart($("#chart-bytes"), [line("uplinked", "uplink_bytes"), line("every frame", "every_frame_bytes")],
                   { bytes: true, ...span });
  window.lineChart($("#chart-results"), [line("results", "results")], span);
  await loadAccuracy(window_s);  // accuracy.js
}

// -- wiring ---------------------------------------------------------------------------------------
function wire() {
  $("#login-form").addEventListener("submit", async event => {
    event.preventDefault();
    if (await login($("#token").value.trim())) { $("#token").value = ""; route(); }
  });
  $("#logout").addEventListener("click", () => logout(""));
  for (const id of ["#filter-site", "#filter-status", "#filter-role", "#esc-device", "#esc-class",
                    "#esc-agree", "#health-window"]) {
    $(id).addEventListener("change", refresh);
  }
  $("#filter-text").addEventListener("input", refresh);
  $("#rollout-form").addEventListener("submit", startRollout);
  $("#upload-form").addEventListener("submit", uploadModel);
  window.addEventListener("hashchange", route);
}

async function main() {
  wire();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && await login(token)) route();
  else show("login");
}

main();
