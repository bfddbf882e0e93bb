// lbtune dashboard: plain JavaScript and SVG, no external assets.
"use strict";

const WINDOW_MS = 30 * 60 * 1000;
const COLORS = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const SVGNS = "http://www.w3.org/2000/svg";
// Metrics a decision is usually based on, in order of preference.
const PREFERRED_METRICS = ["p95_ms", "latency_ms", "mean_ms", "utilisation", "utilization", "queue", "rate"];

async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function hhmm(ms) {
  const d = new Date(ms);
  return String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// lineChart draws series [{name, pts: [[ms, value]], dashed, step}] into a
// new .chart element and returns it; the svg carries data-points with the
// number of points drawn.
function lineChart(title, series, t0, t1) {
  const box = el("div", {class: "chart"});
  box.appendChild(el("h3", {}, title));
  const W = 440, H = 180, L = 44, R = 8, T = 18, B = 20;
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"});
  box.appendChild(svg);
  let ymax = 0, n = 0;
  for (const s of series) for (const [, v] of s.pts) { if (v > ymax) ymax = v; n++; }
  ymax = niceMax(ymax * 1.05);
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => H - B - (H - T - B) * v / ymax;
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4, yy = y(v);
    svg.appendChild(el("svg:line", {class: "grid", x1: L, x2: W - R, y1: yy, y2: yy}));
    svg.appendChild(el("svg:text", {class: "tick", x: L - 4, y: yy + 3, "text-anchor": "end"}, +v.toPrecision(3)));
  }
  for (let t = Math.ceil(t0 / 300000) * 300000; t <= t1; t += 300000) {
    svg.appendChild(el("svg:text", {class: "tick", x: x(t), y: H - 6, "text-anchor": "middle"}, hhmm(t)));
  }
  svg.appendChild(el("svg:line", {class: "axis", x1: L, x2: L, y1: T, y2: H - B}));
  svg.appendChild(el("svg:line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  let lx = L + 4;
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    if (s.pts.length > 0) {
      let d = "";
      s.pts.forEach(([t, v], j) => {
        if (j === 0) d += `M${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        else if (s.step) d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
        else d += `L${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      });
      if (s.pts.length === 1) d += `h2`;
      const path = el("svg:path", {class: "series", d, stroke: color, "data-points": s.pts.length, "data-name": s.name});
      if (s.dashed) path.setAttribute("stroke-dasharray", "5,3");
      svg.appendChild(path);
    }
    const label = el("svg:text", {class: "legend", x: lx, y: 12, fill: color}, s.name);
    svg.appendChild(label);
    lx += 14 + 6.6 * s.name.length;
  });
  if (n === 0) svg.appendChild(el("svg:text", {class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data yet"));
  svg.setAttribute("data-points", n);
  return box;
}

function decisionMetric(ds) {
  const out = {};
  for (const d of ds) {
    const m = d.metrics || {};
    const keys = Object.keys(m).filter(k => k !== "cluster" && k !== "state").sort();
    if (keys.length === 0) continue;
    const name = PREFERRED_METRICS.find(k => k in m) || keys[0];
    (out[name] = out[name] || []).push([Date.parse(d.time), m[name]]);
  }
  return Object.entries(out).map(([name, pts]) => ({name, pts}));
}

async function renderPool(container, p, now) {
  const since = new Date(now - WINDOW_MS).toISOString();
  const q = encodeURIComponent(p.name);
  const [pts, ds] = await Promise.all([
    getJSON(`/v1/series?pool=${q}&since=${since}`),
    getJSON(`/v1/decisions?pool=${q}&since=${since}&limit=2000`),
  ]);
  const t0 = now - WINDOW_MS, t1 = now;
  const at = pt => Date.parse(pt.t);
  const div = el("div", {class: "pool", "data-pool": p.name});
  div.appendChild(el("h2", {}, `${p.name}${p.simulated ? " (simulated)" : ""}`));
  const last = p.last_decision;
  div.appendChild(el("div", {class: "facts"},
    `mode ${p.mode}${p.paused ? " (paused)" : ""} · servers ${p.min}..${p.max} · target ${p.target_ms} ms · ` +
    `cluster ${p.cluster < 0 ? "unknown" : p.cluster} · ${p.fallback_active ? "fallback active" : "agent"}` +
    (last ? ` · last: ${last.policy} ${last.outcome || ""} (${last.reason})` : "")));
  const charts = el("div", {class: "charts"});
  div.appendChild(charts);
  charts.appendChild(lineChart("Requests/s and concurrent requests", [
    {name: "req/s", pts: pts.map(pt => [at(pt), pt.rate])},
    {name: "in progress", pts: pts.map(pt => [at(pt), pt.active])},
  ], t0, t1));
  const lat = [{name: "mean ms", pts: pts.filter(pt => pt.mean_ms > 0).map(pt => [at(pt), pt.mean_ms])}];
  if (pts.some(pt => pt.p95_ms > 0)) lat.push({name: "p95 ms", pts: pts.filter(pt => pt.p95_ms > 0).map(pt => [at(pt), pt.p95_ms])});
  lat.push({name: "target", color: "#2ca02c", dashed: true, pts: pts.length ? [[at(pts[0]), p.target_ms], [at(pts[pts.length - 1]), p.target_ms]] : []});
  charts.appendChild(lineChart("Response time vs target (ms)", lat, t0, t1));
  charts.appendChild(lineChart("Servers serving", [{name: "servers", step: true, pts: pts.map(pt => [at(pt), pt.servers])}], t0, t1));
  charts.appendChild(lineChart("Metric each decision used", decisionMetric(ds), t0, t1));
  const names = [...new Set(pts.flatMap(pt => Object.keys(pt.weights || {})))].sort().slice(0, 8);
  charts.appendChild(lineChart("Weights", names.map(n => ({name: n, step: true,
    pts: pts.filter(pt => pt.weights && n in pt.weights).map(pt => [at(pt), pt.weights[n]])})), t0, t1));
  charts.appendChild(lineChart("Cluster", [{name: "cluster", step: true,
    pts: ds.filter(d => d.metrics && ("state" in d.metrics || "cluster" in d.metrics))
      .map(d => [Date.parse(d.time), "state" in d.metrics ? d.metrics.state : d.metrics.cluster])}], t0, t1));
  container.appendChild(div);
  return ds;
}

function fmtMetrics(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${+Number(v).toPrecision(4)}`).join(" ");
}

function renderDecisions(ds) {
  const body = document.querySelector("#decisions tbody");
  body.replaceChildren();
  ds.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  for (const d of ds.slice(0, 100)) {
    const tr = el("tr");
    tr.appendChild(el("td", {}, new Date(d.time).toISOString().slice(11, 19)));
    tr.appendChild(el("td", {}, d.pool));
    tr.appendChild(el("td", {}, d.policy));
    tr.appendChild(el("td", {}, d.servers ? String(d.servers) : "keep"));
    tr.appendChild(el("td", {class: "outcome-" + (d.outcome || "")}, d.outcome || ""));
    tr.appendChild(el("td", {}, d.reason + (d.error ? ` (error: ${d.error})` : "")));
    tr.appendChild(el("td", {}, fmtMetrics(d.metrics)));
    tr.appendChild(el("td", {}, (d.clamps || []).map(c => c.reason).join("; ")));
    body.appendChild(tr);
  }
  body.parentElement.setAttribute("data-rows", Math.min(ds.length, 100));
}

async function refresh() {
  try {
    const st = await getJSON("/v1/state");
    const now = Date.parse(st.now);
    document.getElementById("meta").textContent =
      `${st.version} · up since ${new Date(st.started).toISOString().slice(0, 19)}Z · ${st.pools.length} pools · last 30 minutes, UTC`;
    const container = el("div", {id: "pools"});
    const all = [];
    for (const p of st.pools) all.push(...await renderPool(container, p, p.now ? Date.parse(p.now) : now));
    document.getElementById("pools").replaceWith(container);
    renderDecisions(all);
    const drawn = document.querySelectorAll("svg[data-points]:not([data-points='0'])").length;
    document.body.setAttribute("data-rendered", drawn);
  } catch (e) {
    document.getElementById("meta").textContent = "error: " + e.message;
    document.body.setAttribute("data-error", e.message);
  }
}

refresh();
setInterval(refresh, 5000);
