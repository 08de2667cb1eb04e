"""The report page's style sheet and script, inlined into every page (no framework, no network).

The script reads the JSON in ``<script id="report-data">`` and draws:

* line charts (``<div class="chart" data-chart="N">``) as SVG: series ``{name, x, y}``, optional
  band ``lo``/``hi``, dashed series, log axes, a dashed reference line;
* the gate viewer (``<div class="gates">``): one ``<span>`` per token whose background is the chosen
  unit's value of the chosen signal (signed signals divided by the unit's largest |value| on the
  passage, gates as they are, in [0, 1]); values are stored per signal as uint8 codes (base64, t-major)
  with a per-unit range, value = lo[u] + code / 255 · (hi[u] − lo[u]).
"""

CSS = r"""
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header, main { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0 0 12px; color: var(--muted); }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; font-size: 14px; }
section { margin: 26px 0; }
section > h2 { font-size: 19px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.note { color: var(--muted); font-size: 13.5px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px 4px; background: var(--bg); }
.chart svg { width: 100%; height: auto; display: block; }
.chart .legend { font-size: 12.5px; color: var(--muted); }
.chart .legend span { margin-right: 12px; white-space: nowrap; }
.chart .legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
svg .title { font-size: 13px; fill: #222; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); }
pre { background: var(--panel); padding: 8px 10px; overflow-x: auto; font-size: 12.5px; border-radius: 6px; }
details summary { cursor: pointer; color: var(--muted); }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
figure img { width: 100%; height: auto; }
figcaption { font-size: 12.5px; color: var(--muted); }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 8px 0; font-size: 14px; }
.controls select { font-size: 14px; padding: 2px 4px; max-width: 520px; }
.passage { font: 14px/1.75 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; white-space: pre-wrap;
           word-break: break-word; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
           max-height: 440px; overflow-y: auto; }
.passage span { cursor: default; }
.passage span:hover { outline: 1px solid #000; }
.hover { font: 13px ui-monospace, Menlo, Consolas, monospace; min-height: 1.6em; color: var(--fg); }
.scale { display: inline-block; width: 160px; height: 10px; vertical-align: middle; border: 1px solid var(--line); }
.ranking tr { cursor: pointer; }
.ranking tr.chosen td { background: #fff8c5; }
.bars { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 14px; }
.prompt { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.prompt code { white-space: pre-wrap; background: var(--panel); padding: 1px 3px; }
.barrow { display: grid; grid-template-columns: 110px 1fr 52px; gap: 6px; align-items: center; font-size: 13px; }
.barrow .label { font-family: ui-monospace, Menlo, Consolas, monospace; overflow: hidden; white-space: nowrap; }
.barrow .track { background: var(--panel); height: 12px; border-radius: 2px; }
.barrow .bar { background: #4c72b0; height: 12px; border-radius: 2px; }
.barrow.truth .bar { background: #dd8452; }
.barrow .p { text-align: right; color: var(--muted); }
"""

JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
                 "#ccb974", "#64b5cd"];
const SVGNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(s => s * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  const a = Math.floor(lo), b = Math.ceil(hi), stride = Math.max(1, Math.ceil((b - a) / 6));
  for (let e = a; e <= b; e += stride) ticks.push(e);
  return ticks;
}

function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return +v.toPrecision(4) + "";
}

function lineChart(host, spec) {
  const W = 640, H = 330, m = {l: 60, r: 14, t: 26, b: 42};
  const tx = v => spec.logx ? Math.log10(v) : v, ty = v => spec.logy ? Math.log10(v) : v;
  const ok = (x, y) => Number.isFinite(x) && Number.isFinite(y) && (!spec.logx || x > 0) && (!spec.logy || y > 0);
  const xs = [], ys = [];
  for (const s of spec.series) s.x.forEach((x, i) => {
    for (const y of [s.y[i], s.lo ? s.lo[i] : null, s.hi ? s.hi[i] : null])
      if (y !== null && ok(x, y)) { xs.push(tx(x)); ys.push(ty(y)); }
  });
  if (spec.hline && ok(1, spec.hline.y)) ys.push(ty(spec.hline.y));
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img"}, host);
  svg("text", {x: W / 2, y: 16, "text-anchor": "middle", class: "title"}, root).textContent = spec.title || "";
  if (!xs.length) {
    svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, root).textContent = "no data yet";
    return;
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 === y0) { y0 -= spec.logy ? 0.5 : Math.abs(y0) * 0.1 + 0.5; y1 += spec.logy ? 0.5 : Math.abs(y1) * 0.1 + 0.5; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = v => m.l + (tx(v) - x0) / (x1 - x0) * (W - m.l - m.r);
  const Y = v => H - m.b - (ty(v) - y0) / (y1 - y0) * (H - m.t - m.b);
  const axis = svg("g", {}, root);
  const xt = spec.logx ? logTicks(x0, x1).map(e => Math.pow(10, e)) : niceTicks(x0, x1, 6);
  const yt = spec.logy ? logTicks(y0, y1).map(e => Math.pow(10, e)) : niceTicks(y0, y1, 5);
  for (const v of (spec.xticks || xt)) {
    if (tx(v) < x0 - 1e-9 || tx(v) > x1 + 1e-9) continue;
    svg("line", {x1: X(v), x2: X(v), y1: m.t, y2: H - m.b, stroke: "#eee"}, axis);
    svg("text", {x: X(v), y: H - m.b + 15, "text-anchor": "middle"}, axis).textContent = fmt(v);
  }
  for (const v of yt) {
    if (ty(v) < y0 - 1e-9 || ty(v) > y1 + 1e-9) continue;
    svg("line", {x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: "#eee"}, axis);
    svg("text", {x: m.l - 5, y: Y(v) + 4, "text-anchor": "end"}, axis).textContent = fmt(v);
  }
  svg("rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: "none", stroke: "#999"}, axis);
  svg("text", {x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle"}, axis).textContent = spec.xlabel || "";
  svg("text", {x: 13, y: (m.t + H - m.b) / 2, "text-anchor": "middle",
               transform: `rotate(-90 13 ${(m.t + H - m.b) / 2})`}, axis).textContent = spec.ylabel || "";
  if (spec.hline && ok(1, spec.hline.y)) {
    svg("line", {x1: m.l, x2: W - m.r, y1: Y(spec.hline.y), y2: Y(spec.hline.y), stroke: "#888",
                 "stroke-dasharray": "5 4"}, root);
    svg("text", {x: W - m.r - 4, y: Y(spec.hline.y) - 4, "text-anchor": "end"}, root).textContent = spec.hline.label || "";
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  spec.series.forEach((s, k) => {
    const color = s.color || PALETTE[k % PALETTE.length];
    const pts = s.x.map((x, i) => [x, s.y[i]]).filter(([x, y]) => y !== null && ok(x, y));
    if (s.lo && s.hi) {
      const band = s.x.map((x, i) => [x, s.lo[i], s.hi[i]]).filter(([x, a, b]) => a !== null && b !== null && ok(x, a) && ok(x, b));
      if (band.length > 1) {
        const d = band.map(([x, a]) => `${X(x)},${Y(a)}`).concat(band.slice().reverse().map(([x, , b]) => `${X(x)},${Y(b)}`));
        svg("polygon", {points: d.join(" "), fill: color, opacity: 0.18, class: "band"}, root);
      }
    }
    if (pts.length) {
      const path = svg("path", {d: "M" + pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("L"),
                                fill: "none", stroke: color, "stroke-width": 1.8, class: "series",
                                "stroke-dasharray": s.dash ? "6 4" : "none"}, root);
      svg("title", {}, path).textContent = s.name;
      if (pts.length <= 12 || s.markers) for (const [x, y] of pts)
        svg("circle", {cx: X(x), cy: Y(y), r: 2.8, fill: color}, root);
    }
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${color}"></i>`;
    item.appendChild(document.createTextNode(s.name));
    legend.appendChild(item);
  });
  host.appendChild(legend);
}

function decode(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function colour(v, diverging) {
  // diverging: blue (< 0) to red (> 0) with |v| <= 1 as opacity; sequential: white to green for [0, 1]
  if (diverging) {
    const a = Math.min(Math.abs(v), 1);
    return v >= 0 ? `rgba(214, 39, 40, ${a.toFixed(3)})` : `rgba(31, 119, 180, ${a.toFixed(3)})`;
  }
  return `rgba(44, 160, 44, ${Math.min(Math.max(v, 0), 1).toFixed(3)})`;
}

function gateViewer(host, spec) {
  const T = spec.tokens.length, H = spec.units;
  const codes = {};
  for (const [name, s] of Object.entries(spec.signals)) codes[name] = decode(s.data);
  const value = (name, t, u) => {
    const s = spec.signals[name];
    return s.lo[u] + codes[name][t * H + u] / 255 * (s.hi[u] - s.lo[u]);
  };
  const unitSel = host.querySelector("select.unit"), sigSel = host.querySelector("select.signal");
  const passage = host.querySelector(".passage"), hover = host.querySelector(".hover");
  const spans = spec.tokens.map((tok, t) => {
    const span = document.createElement("span");
    span.textContent = tok;
    span.dataset.t = t;
    passage.appendChild(span);
    return span;
  });
  function paint() {
    const u = +unitSel.value, name = sigSel.value, s = spec.signals[name];
    const scale = Math.max(Math.abs(s.lo[u]), Math.abs(s.hi[u])) || 1;  // signed: v / max |v| of this unit
    for (let t = 0; t < T; t++) {
      const v = value(name, t, u);
      spans[t].style.backgroundColor = colour(s.diverging ? v / scale : v, s.diverging);
    }
    host.querySelectorAll(".ranking tr[data-unit]").forEach(row =>
      row.classList.toggle("chosen", +row.dataset.unit === u && row.dataset.signal === name));
  }
  passage.addEventListener("mouseover", event => {
    const t = event.target.dataset ? event.target.dataset.t : undefined;
    if (t === undefined) return;
    const u = +unitSel.value, tok = JSON.stringify(spec.tokens[t]);
    const parts = spec.hover.filter(n => n in spec.signals).map(n => `${n}=${value(n, +t, u).toFixed(3)}`);
    hover.textContent = `step ${t}  ${tok}  unit ${u}:  ` + parts.join("  ");
  });
  unitSel.addEventListener("change", paint);
  sigSel.addEventListener("change", paint);
  host.querySelectorAll(".ranking tr[data-unit]").forEach(row => row.addEventListener("click", () => {
    unitSel.value = row.dataset.unit;
    sigSel.value = row.dataset.signal;
    paint();
  }));
  paint();
}

document.querySelectorAll(".chart[data-chart]").forEach(host => {
  try { lineChart(host, DATA.charts[+host.dataset.chart]); }
  catch (error) { host.textContent = "chart failed: " + error; throw error; }
});
document.querySelectorAll(".gates[data-gates]").forEach(host => gateViewer(host, DATA.gates[+host.dataset.gates]));
document.body.dataset.rendered = "yes";
"""
