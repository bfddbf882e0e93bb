// lbtune dashboard: plain JavaScript and SVG, no external assets.
"use strict";

// Windows the selector offers (ms); "auto" fits the data available, up to
// AUTO_MAX_MS, so a run that started a minute ago fills the charts.
const WINDOWS = {"auto": 0, "5m": 5 * 60e3, "30m": 30 * 60e3, "2h": 2 * 3600e3, "12h": 12 * 3600e3};
const AUTO_MAX_MS = 2 * 3600e3;
const COLORS = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const SVGNS = "http://www.w3.org/2000/svg";
// Metrics a decision is usually based on, in order of preference.
const PREFERRED_METRICS = ["p95_ms", "latency_ms", "mean_ms", "utilisation", "utilization", "queue", "rate"];
// Consecutive points further apart than GAP_FACTOR x the usual interval
// are not joined: nothing was recorded in between.
const GAP_FACTOR = 3;

const ui = {
  window: new URLSearchParams(location.search).get("window") || "auto",
  showNoop: new URLSearchParams(location.search).get("noop") === "1",
};
if (!(ui.window in WINDOWS)) ui.window = "auto";

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

function clock(ms, seconds) {
  const d = new Date(ms), p = n => String(n).padStart(2, "0");
  return p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + (seconds ? ":" + p(d.getUTCSeconds()) : "");
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// num formats a value shortly: 25, 2500, 0.25, 25k.
function num(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  return String(+v.toPrecision(3));
}

// timeStep picks the time-axis tick spacing for a span: 3 to 8 ticks.
function timeStep(span) {
  for (const s of [10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3]) {
    if (span / s <= 8) return s;
  }
  return 43200e3;
}

// lineChart draws series [{name, pts: [[ms, value|null]], dashed, step}]
// into a new .chart element and returns it. A null value, or a jump in
// time much longer than the usual interval, breaks the line (a gap). Each
// path carries data-points (points drawn) and data-segments; the svg
// carries data-points with the total.
function lineChart(title, series, t0, t1, opts) {
  opts = opts || {};
  const box = el("div", {class: "chart"});
  box.appendChild(el("h3", {}, title));
  const legend = el("div", {class: "legend"});
  box.appendChild(legend);
  const W = 440, H = 170, L = 44, R = 16, T = 8, B = 20;
  const svg = el("svg:svg", {viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"});
  box.appendChild(svg);
  let ymax = 0, n = 0;
  for (const s of series) for (const [, v] of s.pts) { if (v !== null && v > ymax) ymax = v; }
  ymax = Math.max(opts.ymax || 0, ymax * 1.05);
  // Round ticks (1, 2, 2.5 or 5 x 10^k; whole numbers for counts), 3 to 6 of them.
  let ystep = niceMax(ymax / 4);
  if (opts.integer) ystep = Math.max(1, Math.ceil(ystep));
  ymax = Math.max(ystep, Math.ceil(ymax / ystep - 1e-9) * ystep);
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => H - B - (H - T - B) * v / ymax;
  for (let v = 0; v <= ymax + 1e-9; v += ystep) {
    const yy = y(v);
    svg.appendChild(el("svg:line", {class: "grid", x1: L, x2: W - R, y1: yy, y2: yy}));
    svg.appendChild(el("svg:text", {class: "tick", x: L - 4, y: yy + 3, "text-anchor": "end"}, num(v)));
  }
  const step = timeStep(t1 - t0);
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    svg.appendChild(el("svg:text", {class: "tick", x: x(t), y: H - 6, "text-anchor": "middle"}, clock(t, step < 60e3)));
  }
  svg.appendChild(el("svg:line", {class: "axis", x1: L, x2: L, y1: T, y2: H - B}));
  svg.appendChild(el("svg:line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const pts = s.pts.filter(([t]) => t >= t0 && t <= t1);
    // The usual interval: the median time between points.
    const dts = [];
    for (let j = 1; j < pts.length; j++) dts.push(pts[j][0] - pts[j - 1][0]);
    dts.sort((a, b) => a - b);
    const maxGap = dts.length ? GAP_FACTOR * dts[Math.floor(dts.length / 2)] : Infinity;
    let d = "", drawn = 0, segs = 0, prevT = null, open = false;
    for (const [t, v] of pts) {
      if (v === null || v === undefined || !isFinite(v)) { open = false; continue; }
      if (!open || (prevT !== null && t - prevT > maxGap && !s.step)) {
        d += `M${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        segs++;
        open = true;
      } else if (s.step) d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
      else d += `L${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prevT = t;
      drawn++;
    }
    if (drawn > 0) {
      if (drawn === 1) d += "h2";
      const path = el("svg:path", {class: "series", d, stroke: color, "data-points": drawn, "data-segments": segs, "data-name": s.name});
      if (s.dashed) path.setAttribute("stroke-dasharray", "5,3");
      svg.appendChild(path);
    }
    const item = el("span", {class: "key" + (s.dashed ? " dashed" : ""), style: `--c:${color}`}, s.name);
    legend.appendChild(item);
    n += drawn;
  });
  if (n === 0) svg.appendChild(el("svg:text", {class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data in this window"));
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

// clusterLabel says what a learned load state is, from its centroid: in
// pool units (servers' worth of load, utilisation, p95 as a multiple of
// the target) when the model uses them, else in req/s and ms.
function clusterLabel(c, targetMs) {
  const m = c.centroid || {}, parts = [];
  if ("load_servers" in m) parts.push(`load ${num(m.load_servers)} servers' worth`);
  if ("rate_rps" in m) parts.push(`~${num(m.rate_rps)} req/s`);
  if ("utilisation" in m) parts.push(`utilisation ${num(m.utilisation)}`);
  if ("p95_latency_x_target" in m) {
    parts.push(`p95 ${num(m.p95_latency_x_target)}× target` + (targetMs > 0 ? ` (~${num(m.p95_latency_x_target * targetMs)} ms)` : ""));
  } else if ("p95_latency_ms" in m) parts.push(`p95 ${num(m.p95_latency_ms)} ms`);
  if ("servers" in m) parts.push(`${num(m.servers)} servers`);
  if ("error_ratio" in m && m.error_ratio > 0.001) parts.push(`errors ${num(100 * m.error_ratio)}%`);
  if (c.share > 0) parts.push(`${Math.round(100 * c.share)}% of training`);
  return parts.join(", ");
}

function clusterOf(d) {
  const m = d.metrics || {};
  return "state" in m ? m.state : "cluster" in m ? m.cluster : null;
}

async function renderPool(container, p, policy) {
  const now = Date.parse(p.now || policy.now);
  const win = WINDOWS[ui.window] || AUTO_MAX_MS;
  const since = new Date(now - win).toISOString();
  const q = encodeURIComponent(p.name);
  const [pts, ds] = await Promise.all([
    getJSON(`/v1/series?pool=${q}&since=${since}`),
    getJSON(`/v1/decisions?pool=${q}&since=${since}&limit=5000`),
  ]);
  const at = pt => Date.parse(pt.t);
  const t1 = now;
  let t0 = now - win;
  if (ui.window === "auto" && pts.length > 0) t0 = Math.min(at(pts[0]), now - 60e3);
  // ?clusters=once: the model's clusters once at the top (every pool shares them).
  const clusters = new Map((policy.clusters || (policy.pools || []).find(pp => pp.pool === p.name)?.clusters || []).map(c => [c.id, c]));

  const div = el("div", {class: "pool", "data-pool": p.name});
  const head = el("h2", {}, p.name + (p.simulated ? " (simulated)" : ""));
  head.appendChild(el("span", {class: `badge mode mode-${p.mode}`, "data-mode": p.mode, title: "mode (lbtune mode)"}, p.mode));
  if (p.paused) head.appendChild(el("span", {class: "badge paused", "data-paused": "true", title: "decisions paused (lbtune pool resume)"}, "paused"));
  head.appendChild(el("span", {class: "badge " + (p.fallback_active ? "fallback" : "agent")}, p.fallback_active ? "fallback deciding" : "agent deciding"));
  div.appendChild(head);
  const last = p.last_decision;
  const cl = clusters.get(p.cluster);
  div.appendChild(el("div", {class: "facts"},
    `servers ${p.min}..${p.max} · target p95 ${p.target_ms} ms · ` +
    `load state ${p.cluster < 0 ? "unknown" : "cluster " + p.cluster + (cl ? ` (${clusterLabel(cl, p.target_ms)})` : "")}` +
    (last ? ` · last decision: ${last.policy} ${last.outcome || ""} (${last.reason})` : "")));
  const charts = el("div", {class: "charts"});
  div.appendChild(charts);
  // Response times and error ratios exist only for intervals with requests.
  const served = pt => pt.rate > 0;
  charts.appendChild(lineChart("Requests/s and concurrent requests", [
    {name: "req/s", pts: pts.map(pt => [at(pt), pt.rate])},
    {name: "in progress", pts: pts.map(pt => [at(pt), pt.active])},
  ], t0, t1));
  const lat = [{name: "mean ms", pts: pts.map(pt => [at(pt), served(pt) && pt.mean_ms > 0 ? pt.mean_ms : null])}];
  if (pts.some(pt => pt.p95_ms > 0)) lat.push({name: "p95 ms", pts: pts.map(pt => [at(pt), served(pt) && pt.p95_ms > 0 ? pt.p95_ms : null])});
  if (p.target_ms > 0) lat.push({name: `target ${p.target_ms} ms`, color: "#2ca02c", dashed: true, pts: [[t0, p.target_ms], [t1, p.target_ms]]});
  charts.appendChild(lineChart("Response time vs target (ms)", lat, t0, t1));
  charts.appendChild(lineChart("Errors (% of requests)", [
    {name: "errors %", color: "#d62728", pts: pts.map(pt => [at(pt), served(pt) ? 100 * (pt.error_ratio || 0) : null])},
  ], t0, t1, {ymax: 1}));
  charts.appendChild(lineChart("Servers serving", [{name: "servers", step: true, pts: pts.map(pt => [at(pt), pt.servers])}], t0, t1, {integer: true}));
  charts.appendChild(lineChart("Metric each decision used", decisionMetric(ds), t0, t1));
  const names = [...new Set(pts.flatMap(pt => Object.keys(pt.weights || {})))].sort().slice(0, 8);
  charts.appendChild(lineChart("Weights", names.map(n => ({name: n, step: true,
    pts: pts.filter(pt => pt.weights && n in pt.weights).map(pt => [at(pt), pt.weights[n]])})), t0, t1));
  // Load state: the GMM cluster of each decision, each cluster explained.
  const cpts = ds.filter(d => clusterOf(d) !== null).map(d => [Date.parse(d.time), clusterOf(d)]);
  const seen = [...new Set(cpts.filter(([t]) => t >= t0).map(([, c]) => c))].sort((a, b) => a - b);
  const cmax = Math.max(1, ...seen, ...clusters.keys());
  const cbox = lineChart("Load state (GMM cluster)", [{name: "cluster", step: true, pts: cpts}], t0, t1, {integer: true, ymax: cmax});
  const ul = el("ul", {class: "clusters"});
  for (const c of seen) {
    const info = clusters.get(c);
    ul.appendChild(el("li", {"data-cluster": c}, `cluster ${c}: ` + (info ? clusterLabel(info, p.target_ms) : "not in the loaded model")));
  }
  if (seen.length === 0) ul.appendChild(el("li", {}, clusters.size ? "no decision in this window named a cluster" : "no trained model: no load states"));
  cbox.appendChild(ul);
  charts.appendChild(cbox);
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
  const shown = ui.showNoop ? ds : ds.filter(d => d.outcome !== "noop");
  for (const d of shown.slice(0, 100)) {
    const tr = el("tr", {class: "outcome-" + (d.outcome || "")});
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
  const table = body.parentElement;
  const hidden = ds.length - shown.length;
  table.setAttribute("data-rows", Math.min(shown.length, 100));
  table.setAttribute("data-hidden", hidden);
  document.getElementById("decisions-note").textContent =
    (hidden > 0 ? `${hidden} noop decisions hidden. ` : "") +
    (shown.length > 100 ? `Newest 100 of ${shown.length} shown.` : `${shown.length} shown.`);
}

async function refresh() {
  try {
    const [st, policy] = await Promise.all([getJSON("/v1/state"), getJSON("/v1/policy?clusters=once")]);
    policy.now = st.now;
    const w = ui.window === "auto" ? "since the first data (at most 2 h)" : "last " + ui.window;
    document.getElementById("meta").textContent =
      `${st.version} · up since ${new Date(st.started).toISOString().slice(0, 19)}Z · ${st.pools.length} pools · ${w}, UTC`;
    const container = el("div", {id: "pools"});
    const all = [];
    for (const p of st.pools) all.push(...await renderPool(container, p, policy));
    document.getElementById("pools").replaceWith(container);
    renderDecisions(all);
    const drawn = document.querySelectorAll("#pools svg[data-points]:not([data-points='0'])").length;
    document.body.setAttribute("data-rendered", drawn);
  } catch (e) {
    document.getElementById("meta").textContent = "error: " + e.message;
    document.body.setAttribute("data-error", e.message);
  }
}

function setupControls() {
  const sel = document.getElementById("window");
  for (const k of Object.keys(WINDOWS)) sel.appendChild(el("option", {value: k}, k === "auto" ? "fit data" : k));
  sel.value = ui.window;
  sel.addEventListener("change", () => { ui.window = sel.value; refresh(); });
  const noop = document.getElementById("show-noop");
  noop.checked = ui.showNoop;
  noop.addEventListener("change", () => { ui.showNoop = noop.checked; refresh(); });
}

setupControls();
refresh();
setInterval(refresh, 5000);
