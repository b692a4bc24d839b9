// Compare clouds for one model: side by side per cloud/region/deployment (self-hosted and API):
// ≈TTFT/TPOT/e2e percentiles over time, error ratio, throughput, $/1M tokens, SLO state and budget.
import { chart, pivot, steps } from "./charts.js";
import { keyOf, loadCompare, models } from "./compare_data.js";
import * as f from "./fmt.js";
import { percentileNote } from "./sql.js";
import { href, setParams } from "./state.js";

export async function render(page, params, ctx) {
  const r = ctx.range;
  const head = f.el("div", null, "view-head");
  head.appendChild(f.el("h2", "Compare clouds for one model"));
  page.appendChild(head);
  const list = await models(r);
  const model = params.model || list[0];
  const bar = f.el("div", null, "filters");
  bar.id = "filters";
  const lab = f.el("label", "Model ");
  const sel = f.el("select");
  sel.id = "filter-model";
  for (const x of list.indexOf(model) < 0 && model ? [model].concat(list) : list) sel.appendChild(f.el("option", x, null, { value: x }));
  if (model) sel.value = model;
  sel.addEventListener("change", () => setParams({ model: sel.value }));
  lab.appendChild(sel);
  bar.appendChild(lab);
  page.appendChild(bar);
  const status = f.el("p", "loading…", "status");
  status.id = "compare-status";
  page.appendChild(status);
  if (!model) { status.textContent = "no model served in the " + r.label + " — start the demo fleet: infersight demo"; return; }
  const data = await loadCompare(model, r);
  if (ctx.stale()) return;
  status.textContent = data.rows.length + " deployments of " + model + ", " + r.label +
    " · percentiles are ≈ estimates from per-minute histogram buckets (hover a cell for its bucket)";
  const p = (kind, q) => (x) => x[kind] ? f.seconds(x[kind][q]) : "–";
  const tip = (kind, q) => (x) => x[kind] ? percentileNote(x[kind], q, f.seconds) : "";
  const sloCell = (x) => {
    if (!x.slo.length) return "–";
    const worst = x.slo.slice().sort((a, b) => (a.budget_remaining ?? 9) - (b.budget_remaining ?? 9))[0];
    return worst.slo + ": " + worst.state + (x.slo.length > 1 ? " (+" + (x.slo.length - 1) + ")" : "");
  };
  const budgetCell = (x) => {
    if (!x.slo.length) return "–";
    const worst = x.slo.slice().sort((a, b) => (a.budget_remaining ?? 9) - (b.budget_remaining ?? 9))[0];
    return worst.budget_left_text || f.percent(worst.budget_remaining, 1);
  };
  const columns = [
    ["deployment", "Cloud / region / deployment", (x) => [x.cloud || "?", x.region || "?", x.kind || "?"].join(" / ")],
    ["rps", "Req/s", (x) => f.rate(x.rps, ""), "num", null, "mean over the range"],
    ["error_ratio", "Errors", (x) => x.error_ratio === null ? "–" : f.percent(x.error_ratio, 2), (x) => "num" + (x.error_ratio > 0.01 ? " bad" : "")],
    ["ttft_p50", "≈p50 TTFT", p("ttft", "p50"), "num", tip("ttft", "p50")],
    ["ttft_p95", "≈p95 TTFT", p("ttft", "p95"), "num", tip("ttft", "p95")],
    ["tpot_p95", "≈p95 TPOT", p("tpot", "p95"), "num", tip("tpot", "p95"), "time per output token"],
    ["e2e_p95", "≈p95 e2e", p("e2e", "p95"), "num", tip("e2e", "p95")],
    ["e2e_p99", "≈p99 e2e", p("e2e", "p99"), "num", tip("e2e", "p99")],
    ["tokens_per_s", "Tokens/s", (x) => f.rate(x.tokens_per_s, ""), "num", null, "generated tokens per second"],
    ["usd_per_1m_tokens", "$/1M tokens", (x) => f.usd(x.usd_per_1m_tokens), "num", (x) => x.cost_source],
    ["slo", "SLO", sloCell, (x) => x.slo.length ? "state-" + x.slo.slice().sort((a, b) => (a.budget_remaining ?? 9) - (b.budget_remaining ?? 9))[0].state : ""],
    ["budget_left", "Budget left", budgetCell, "num"],
  ];
  page.appendChild(f.el("div", null, "scroll")).appendChild(f.table(columns, data.rows, (x) => x.key));
  const grid = f.el("div", null, "grid");
  page.appendChild(grid);
  const xs = steps(r.seconds, r.step, Date.now() / 1000);
  const per = f.duration(r.step) + " steps";
  const line = (rows, v) => pivot(rows, keyOf, v, xs).series;
  chart(grid, { id: "compare-ttft", title: "≈p95 TTFT per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.ttft, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-tpot", title: "≈p95 TPOT per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.tpot, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-e2e", title: "≈p95 end-to-end per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.e2e, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-errors", title: "Error ratio per deployment", note: per, unit: "1", fmt: (v) => f.percent(v, 1), x: xs,
    series: line(data.over, (x) => f.num(x.requests) ? f.num(x.bad) / f.num(x.requests) : null) });
  chart(grid, { id: "compare-tokens", title: "Generated tokens/s per deployment", note: per, unit: "1/s", fmt: (v) => f.rate(v, "/s"), x: xs,
    series: line(data.over, (x) => f.num(x.output) / r.step) });
  const links = f.el("p", null, "status");
  links.appendChild(f.link("SLOs of " + model, href("slos", { range: ctx.rangeKey, model: model })));
  page.appendChild(links);
}
