// Detections on the escalations page: the edge's and the cloud's boxes drawn over each detection
// frame (two colours, with a legend), and boxes per label over time (GET /api/detections/counts)
// in the bundled line chart (charts.js). Uses app.js's helpers (api, h, pct).
"use strict";

const BOX_COLORS = { edge: "#1f5fbf", cloud: "#c4320a" };
const DETECTION_WINDOWS = [[3600, "1 h"], [21600, "6 h"], [86400, "24 h"]];
const DETECTION_SERIES = 7;  // labels charted, most boxes first

// The frame with its boxes: an SVG over the image in the frame's own pixels (the boxes are in
// pixels of the escalated frame), so it scales with the image.
function framedShot(src, e) {
  const img = h("img", { src, alt: e.frame_id });
  if (e.task !== "detection") return img;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "boxes");
  svg.setAttribute("viewBox", `0 0 ${e.width} ${e.height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const cloud = e.verdict ? e.verdict.detections : [];
  for (const [source, boxes] of [["edge", e.edge_detections], ["cloud", cloud]]) {
    for (const d of boxes) {
      const [x0, y0, x1, y1] = d.box;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("class", `box ${source}`);
      rect.setAttribute("x", x0);
      rect.setAttribute("y", y0);
      rect.setAttribute("width", Math.max(x1 - x0, 1));
      rect.setAttribute("height", Math.max(y1 - y0, 1));
      rect.setAttribute("stroke", BOX_COLORS[source]);
      rect.setAttribute("vector-effect", "non-scaling-stroke");
      const title = document.createElementNS(ns, "title");
      title.textContent = `${source}: ${d.label} ${pct(d.score)}`;
      rect.append(title);
      svg.append(rect);
    }
  }
  return h("div", { class: "framed" }, img, svg);
}

// What a detection card says below the frame: box counts and the agreement.
function detectionLines(e) {
  const v = e.verdict;
  const edge = h("div", { class: "edge" }, `edge: ${e.edge_detections.length} box(es)`);
  if (!v) return [edge, h("div", { class: "cloud" }, "cloud: ")];
  const a = v.agreement;
  const scored = a ? ` · precision ${pct(a.precision)} recall ${pct(a.recall)}` : "";
  return [edge, h("div", { class: "cloud" }, `cloud: ${v.detections.length} box(es)${scored} `)];
}

function boxLegend() {
  const swatch = source => h("span", { class: `swatch ${source}` });
  return h("div", { id: "box-legend", class: "legend" },
    swatch("edge"), " edge's boxes ", swatch("cloud"), " cloud's boxes");
}

function detectionPanel() {
  let panel = document.getElementById("detections-panel");
  if (panel) return panel;
  const select = h("select", { id: "det-window" },
    DETECTION_WINDOWS.map(([s, name]) => h("option", { value: s }, name)));
  select.addEventListener("change", () => loadDetectionCounts());
  const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  chart.setAttribute("id", "chart-detections");
  chart.setAttribute("class", "chart");
  panel = h("div", { id: "detections-panel" },
    h("div", { class: "filters" }, boxLegend(), h("label", {}, "Boxes per label over ", select)),
    h("figure", {}, h("figcaption", {}, "Detections per label (edge and cloud boxes)"), chart));
  document.getElementById("gallery").before(panel);
  return panel;
}

// Shown once there are boxes to count: a classification fleet's page stays as it was.
async function loadDetectionCounts() {
  const panel = detectionPanel();
  const window_s = Number(document.getElementById("det-window").value);
  const until = Date.now() / 1000;
  const bucket = Math.max(60, Math.ceil(window_s / 120));
  const body = await api(`/api/detections/counts?since=${until - window_s}&until=${until}&bucket_s=${bucket}`);
  const svg = document.getElementById("chart-detections");
  svg.dataset.labels = body.labels.join(",");
  panel.hidden = body.labels.length === 0 && !document.querySelector(".shot[data-task=detection]");
  if (panel.hidden) return;
  const series = body.labels.slice(0, DETECTION_SERIES).map(label => ({
    name: label,
    points: body.points.map(p => [p.start + body.bucket_s / 2, p.counts[label] || 0]),
  }));
  window.lineChart(svg, series, { x0: body.since, x1: body.until });
}

window.framedShot = framedShot;
window.detectionLines = detectionLines;
window.loadDetectionCounts = loadDetectionCounts;
