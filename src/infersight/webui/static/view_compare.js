// Compare clouds for one model: side by side per cloud/region/deployment (self-hosted and API):
// ≈TTFT/TPOT/e2e percentiles, error ratio, throughput, $/1M tokens, SLO state, budget and probes from the
// compare document (GET /api/v1/compare, the numbers `infersight compare` prints), charts over time.
import { chart, pivot, steps } from "./charts.js";
import { keyOf, loadCompare, models } from "./compare_data.js";
import * as f from "./fmt.js";
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
    " · the numbers of `infersight compare --model " + model + " --since " + data.seconds + "s`" +
    " · percentiles from histogram buckets (hover a cell for its interval; ≈ where bucket layouts are mixed)";
  const p = (kind, q) => (x) => x[kind] && x[kind][q] !== undefined ? f.seconds(x[kind][q]) : "–";
  const pv = (kind, q) => (x) => x[kind] && x[kind][q] !== undefined ? x[kind][q] : null;
  const tip = (kind, q) => (x) => x[kind] && x[kind][q + "_note"] ? x[kind][q + "_note"] : "";
  const sloCell = (x) => {
    if (!x.worst) return x.slo ? "no SLO" : "–";
    const n = x.slo.instances.length;
    return (x.slo.meets ? "meets" : x.slo.exhausted ? "exhausted" : x.slo.page_firing ? "paging" : "burning") + " · " +
      x.worst.slo + ": " + x.worst.state + (n > 1 ? " (+" + (n - 1) + ")" : "");
  };
  const sloTip = (x) => x.slo && x.slo.fastest_burning_tier ? "fastest burning tier: " + x.slo.fastest_burning_tier.slo + " " +
    x.slo.fastest_burning_tier.tier + " (" + x.slo.fastest_burning_tier.severity + ")" : "";
  const budgetCell = (x) => x.worst ? x.worst.budget_left_text || f.percent(x.slo.budget_remaining, 1) : "–";
  const probeCell = (x) => x.probe ? (x.probe.error_ratio === null ? "–" : f.percent(x.probe.error_ratio, 1)) + " of " +
    f.int(x.probe.requests) + " failed" : "–";
  const columns = [
    ["deployment", "Cloud / region / deployment", (x) => [x.cloud || "?", x.region || "?", x.kind || "?"].join(" / "), null, (x) => (x.hosts || []).join(", "), null, (x) => x.key],
    ["hosting", "Hosting", (x) => x.hosting, null, null, "self-hosted (capacity-priced) or API (list-priced)", (x) => x.hosting],
    ["requests", "Requests", (x) => f.int(x.requests), "num", null, "requests in the range", (x) => x.requests],
    ["rps", "Req/s", (x) => f.rate(x.rps, ""), "num", null, "mean over the range", (x) => x.rps],
    ["error_ratio", "Errors", (x) => x.error_ratio === null ? "–" : f.percent(x.error_ratio, 2), (x) => "num" + (x.error_ratio > 0.01 ? " bad" : ""), null, "failed ÷ all requests", (x) => x.error_ratio],
    ["ttft_p50", "≈p50 TTFT", p("ttft", "p50"), "num", tip("ttft", "p50"), null, pv("ttft", "p50")],
    ["ttft_p95", "≈p95 TTFT", p("ttft", "p95"), "num", tip("ttft", "p95"), null, pv("ttft", "p95")],
    ["tpot_p50", "≈p50 TPOT", p("tpot", "p50"), "num", tip("tpot", "p50"), "time per output token", pv("tpot", "p50")],
    ["tpot_p95", "≈p95 TPOT", p("tpot", "p95"), "num", tip("tpot", "p95"), "time per output token", pv("tpot", "p95")],
    ["e2e_p50", "≈p50 e2e", p("e2e", "p50"), "num", tip("e2e", "p50"), null, pv("e2e", "p50")],
    ["e2e_p95", "≈p95 e2e", p("e2e", "p95"), "num", tip("e2e", "p95"), null, pv("e2e", "p95")],
    ["tokens", "Tokens", (x) => f.int(x.tokens.total), "num", (x) => f.int(x.tokens.input) + " input (" + f.int(x.tokens.cached) + " cached) + " + f.int(x.tokens.output) + " output", "input + output tokens", (x) => x.tokens.total],
    ["tokens_per_s", "Tokens/s", (x) => f.rate(x.tokens_per_s, ""), "num", null, "generated tokens per second", (x) => x.tokens_per_s],
    ["usd_per_1m_tokens", "$/1M tokens", (x) => f.usd(x.usd_per_1m_tokens), "num", (x) => x.cost_source, "input + output tokens", (x) => x.usd_per_1m_tokens],
    ["slo", "SLO", sloCell, (x) => x.worst ? "state-" + x.worst.state : "", sloTip, "meets its SLOs now, or the worst instance", (x) => x.slo ? x.slo.meets : null],
    ["budget_left", "Budget left", budgetCell, "num", null, "least error budget left of its SLOs", (x) => x.slo ? x.slo.budget_remaining : null],
    ["probe", "Probes", probeCell, "num", (x) => x.probe ? (x.probe.endpoints || []).join(", ") : "", "synthetic probes next to user traffic", (x) => x.probe ? x.probe.error_ratio : null],
  ];
  page.appendChild(f.el("div", null, "scroll")).appendChild(f.table(columns, data.rows, (x) => x.key));
  const grid = f.el("div", null, "grid");
  page.appendChild(grid);
  const xs = steps(r.seconds, r.step, Date.now() / 1000);
  const per = f.duration(r.step) + " steps";
  const line = (rows, v) => pivot(rows, keyOf, v, xs).series;
  chart(grid, { id: "compare-ttft", title: "p95 TTFT per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.ttft, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-tpot", title: "p95 TPOT per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.tpot, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-e2e", title: "p95 end-to-end per deployment", note: per, unit: "s", fmt: f.seconds, x: xs, series: line(data.e2e, (x) => f.num(x.p95)) });
  chart(grid, { id: "compare-errors", title: "Error ratio per deployment", note: per, unit: "1", fmt: (v) => f.percent(v, 1), x: xs,
    series: line(data.over, (x) => f.num(x.requests) ? f.num(x.bad) / f.num(x.requests) : null) });
  chart(grid, { id: "compare-tokens", title: "Generated tokens/s per deployment", note: per, unit: "1/s", fmt: (v) => f.rate(v, "/s"), x: xs,
    series: line(data.over, (x) => f.num(x.output) / r.step) });
  const links = f.el("p", null, "status");
  links.appendChild(f.link("SLOs of " + model, href("slos", { range: ctx.rangeKey, model: model })));
  page.appendChild(links);
}
