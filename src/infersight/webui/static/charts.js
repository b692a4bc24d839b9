// Time-series charts on the vendored uPlot (vendor/uPlot.iife.min.js, MIT). Each chart registers what
// it draws in window.infersightCharts[id] = {title, unit, series: [{label, points}]} and on its
// element (data-series, data-points), so tests and people can check what is plotted.
/* global uPlot */
import { el } from "./fmt.js";

const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d",
  "#9333ea", "#ea580c", "#0f766e", "#be123c"];
window.infersightCharts = window.infersightCharts || {};
const live = new Set();

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

// Destroy the charts of the previous view.
export function clear() {
  for (const u of live) u.destroy();
  live.clear();
  window.infersightCharts = {};
}

// spec: {id, title, unit: "s"|"1"|"W"|..., fmt: value -> text, x: [unix s], series: [{label, values, dash}],
//        thresholds: [{label, value}], note: "what it covers"}
export function chart(parent, spec) {
  const box = el("figure", null, "chart");
  box.id = "chart-" + spec.id;
  box.appendChild(el("figcaption", spec.title + (spec.note ? " — " + spec.note : "")));
  const plot = el("div", null, "plot");
  box.appendChild(plot);
  parent.appendChild(box);
  const fmt = spec.fmt || ((v) => String(v));
  const series = spec.series.slice();
  for (const th of spec.thresholds || []) {
    series.push({ label: th.label, values: spec.x.map(() => th.value), dash: [6, 4], threshold: true });
  }
  const points = series.map((s) => s.values.filter((v) => v !== null && v !== undefined && isFinite(v)).length);
  window.infersightCharts[spec.id] = { title: spec.title, unit: spec.unit, x: spec.x.length,
    series: series.map((s, i) => ({ label: s.label, points: points[i], threshold: Boolean(s.threshold) })) };
  box.dataset.series = JSON.stringify(series.map((s) => s.label));
  box.dataset.points = JSON.stringify(points);
  if (!spec.x.length) {
    plot.appendChild(el("p", "no data in this range", "status"));
    return box;
  }
  if (typeof uPlot === "undefined") {
    plot.appendChild(el("p", "chart library did not load", "status error"));
    return box;
  }
  const opts = {
    width: Math.max(240, (plot.clientWidth || 400) - 2),
    height: spec.height || 170,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: spec.yRange ? { range: spec.yRange } : {} },
    axes: [
      {},
      { values: (u, ticks) => axisValues(ticks, spec.unit, fmt), size: 70 },
    ],
    series: [{ value: (u, v) => v === null ? "–" : new Date(v * 1000).toLocaleString("en-GB",
      { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }) }].concat(series.map((s, i) => ({
      label: s.label,
      stroke: s.threshold ? "#6b7280" : color(i),
      width: s.threshold ? 1 : 1.6,
      dash: s.dash,
      // The demo's backfill (and a coarse step) leaves empty buckets between points: join them; a node
      // that stopped reporting is called out in the tables, not by a gap.
      spanGaps: true,
      // Sparse series (a few points with gaps) would not show as lines: draw their points.
      points: { show: !s.threshold && points[i] > 0 && points[i] < 24, size: 5 },
      value: (u, v) => v === null || v === undefined ? "–" : fmt(v),
    }))),
  };
  const data = [spec.x].concat(series.map((s) => s.values.map((v) => v === undefined ? null : v)));
  const u = new uPlot(opts, data, plot);
  live.add(u);
  const ro = new ResizeObserver(() => {
    const w = Math.max(240, plot.clientWidth - 2);
    if (Math.abs(w - u.width) > 4) u.setSize({ width: w, height: opts.height });
  });
  ro.observe(plot);
  const destroy = u.destroy.bind(u);
  u.destroy = () => { ro.disconnect(); destroy(); };
  return box;
}

// Axis labels with as many digits as the tick spacing needs (0.1%, 0.2%, … not 0.0%, 0.0%).
function axisValues(ticks, unit, fmt) {
  if (unit === "1/s") {
    return ticks.map((v) => Math.abs(v) >= 1000 ? Number((v / 1000).toPrecision(3)) + "k/s" : Number(v.toPrecision(3)) + "/s");
  }
  if (unit !== "1" || ticks.length < 2) return ticks.map((v) => fmt(v));
  const step = Math.abs(ticks[1] - ticks[0]) * 100;
  const digits = step > 0 ? Math.min(4, Math.max(0, -Math.floor(Math.log10(step)))) : 1;
  return ticks.map((v) => (v * 100).toFixed(digits) + "%");
}

// Rows [{key, t, value}] as uPlot columns: sorted x and one value array per key (null where missing).
export function pivot(rows, keyOf, valueOf, xs) {
  const times = xs || Array.from(new Set(rows.map((r) => Number(r.t)))).sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const by = new Map();
  for (const r of rows) {
    const k = keyOf(r);
    if (!by.has(k)) by.set(k, times.map(() => null));
    const i = index.get(Number(r.t));
    if (i !== undefined) {
      const v = valueOf(r);
      by.get(k)[i] = v === null || v === undefined || !isFinite(v) ? null : v;
    }
  }
  return { x: times, series: Array.from(by.entries()).sort((a, b) => String(a[0]).localeCompare(String(b[0])))
    .map(([label, values]) => ({ label: String(label), values: values })) };
}

// Every step from the range's start to now, so gaps show as gaps.
export function steps(seconds, step, nowS) {
  const end = Math.floor(nowS / step) * step;
  const out = [];
  for (let t = end - Math.floor(seconds / step) * step; t <= end; t += step) out.push(t);
  return out;
}
