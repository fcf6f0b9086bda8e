// Line charts in plain SVG: lineChart(svg, series, {percent, bytes, x0, x1}).
// series: [{name, points: [[x, y], ...]}], x in Unix seconds; null ys leave a gap.
"use strict";

const COLORS = ["#1f5fbf", "#c4320a", "#12805c", "#b54708", "#7a5af8", "#0e9384", "#667085"];
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function formatNumber(v, opts) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  if (opts && opts.percent) return (v * 100).toFixed(v < 0.1 ? 1 : 0) + " %";
  if (opts && opts.bytes) {
    const units = ["B", "kB", "MB", "GB"];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    return v.toFixed(v < 10 && i > 0 ? 1 : 0) + " " + units[i];
  }
  const abs = Math.abs(v);
  return abs >= 100 ? v.toFixed(0) : abs >= 1 ? v.toFixed(1) : v.toFixed(3);
}

function lineChart(svg, series, opts) {
  opts = opts || {};
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const box = svg.getBoundingClientRect();
  const width = Math.max(box.width, 200), height = Math.max(box.height, 120);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pad = { left: 56, right: 8, top: 8, bottom: 34 };
  const all = series.flatMap(s => s.points.filter(p => p[1] !== null && p[1] !== undefined));
  if (all.length === 0) {
    svg.appendChild(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no data yet"));
    svg.dataset.points = "0";
    return;
  }
  const xs = all.map(p => p[0]), ys = all.map(p => p[1]);
  const x0 = opts.x0 ?? Math.min(...xs), x1 = Math.max(opts.x1 ?? Math.max(...xs), x0 + 1);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys, opts.percent ? 0.01 : 1e-9) * 1.05;
  const sx = x => pad.left + (x - x0) / (x1 - x0) * (width - pad.left - pad.right);
  const sy = y => height - pad.bottom - (y - y0) / (y1 - y0) * (height - pad.top - pad.bottom);
  svg.appendChild(svgEl("line", { class: "axis", x1: pad.left, y1: sy(y0), x2: width - pad.right, y2: sy(y0) }));
  svg.appendChild(svgEl("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: sy(y0) }));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    svg.appendChild(svgEl("text", { x: pad.left - 4, y: sy(y) + 3, "text-anchor": "end" }, formatNumber(y, opts)));
  }
  const time = t => new Date(t * 1000).toLocaleTimeString();
  svg.appendChild(svgEl("text", { x: pad.left, y: height - pad.bottom + 12 }, time(x0)));
  svg.appendChild(svgEl("text", { x: width - pad.right, y: height - pad.bottom + 12, "text-anchor": "end" }, time(x1)));
  let legendX = pad.left;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "", pen = false;
    for (const [x, y] of s.points) {
      if (y === null || y === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)} `;
      pen = true;
    }
    svg.appendChild(svgEl("path", { class: "line", d, stroke: color }));
    if (s.points.length <= 60) {  // dots, so that a lone sample shows too
      for (const [x, y] of s.points) {
        if (y !== null && y !== undefined) {
          svg.appendChild(svgEl("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 2.2, fill: color }));
        }
      }
    }
    const label = svgEl("text", { x: legendX, y: height - 4, fill: color }, s.name);
    label.style.fill = color;
    svg.appendChild(label);
    legendX += 12 + 6.5 * s.name.length;
  });
  svg.dataset.points = String(all.length);
}

window.lineChart = lineChart;
window.formatNumber = formatNumber;
