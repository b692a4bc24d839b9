// Data of the "Compare clouds for one model" view, in one module so the view can switch to the
// compare API (`infersight compare`) when it exists: today it reads the rollups through the query
// API (infersight_requests_1m, infersight_latency_1m; docs/ROLLUPS.md), $/1M tokens from the cost
// module (/ui/cost.json, the same report as `infersight cost report`) and SLO state from
// /api/v1/slos. The view only sees the object loadCompare() returns.
import { api, meta, query } from "./api.js";
import { num } from "./fmt.js";
import { percentileSQL, requestsSQL, rollupWhere, str, table } from "./sql.js";

// A deployment: where the model is served. Self-hosted: a server kind (vllm, sglang, …) in a cloud
// region; API-served: the provider (azure.ai.openai, aws.bedrock, gcp.vertex_ai, …) in its region.
const DIMS = ["CloudProvider", "CloudRegion", "ServerKind"];
export function keyOf(r) {
  return [r.CloudProvider, r.CloudRegion, r.ServerKind].join("/");
}

export async function models(r) {
  const m = await meta();
  return (await query("SELECT Model AS model, sum(Requests) AS requests FROM " + table(m.database, "infersight_requests_1m") +
    " WHERE " + rollupWhere(r, {}) + " AND Model != '' GROUP BY model ORDER BY requests DESC, model", "models"))
    .map((x) => x.model);
}

function hoursOf(r) {
  return Math.max(1, Math.ceil(r.seconds / 3600));
}

// {rows: [{key, cloud, region, kind, requests, bad, error_ratio, rps, tokens_per_s, p50/p95/p99 per
//   latency kind with their bucket bounds, usd_per_1m_tokens, cost_source, slo: [{slo, state, budget...}]}],
//  series: {t: [...], by key: {requests, bad, output, ttft_p95, e2e_p95, tpot_p95}}, step, estimate_note}
export async function loadCompare(model, r) {
  const m = await meta();
  const withCost = m.request_columns.indexOf("ReportedCostUSD") >= 0;
  const where = rollupWhere(r, { model: model });
  const lat = (kind, step) => query(percentileSQL({ db: m.database, kind: kind, qs: [0.5, 0.95, 0.99], dims: DIMS,
    where: where, step: step }), kind + (step ? " over time" : ""));
  const [totals, ttft, tpot, e2e, over, ttftT, e2eT, tpotT, cost, slos] = await Promise.all([
    query(requestsSQL(m.database, where, DIMS, 0, withCost), "requests"),
    lat("ttft", 0), lat("tpot", 0), lat("e2e", 0),
    query(requestsSQL(m.database, where, DIMS, r.step, false), "requests over time"),
    lat("ttft", r.step), lat("e2e", r.step), lat("tpot", r.step),
    m.priced ? api("/ui/cost.json?hours=" + hoursOf(r) + "&by=cloud,region,kind,model").catch(() => ({ lines: [] }))
      : Promise.resolve({ lines: [] }),
    m.slo_engine ? api("/api/v1/slos").catch(() => ({ instances: [] })) : Promise.resolve({ instances: [] }),
  ]);
  const by = (rows) => new Map(rows.map((x) => [keyOf(x), x]));
  const T = by(ttft), P = by(tpot), E = by(e2e);
  const priced = new Map(cost.lines.filter((l) => l.model === model)
    .map((l) => [[l.cloud, l.region, l.kind].join("/"), l]));
  const rows = totals.map((x) => {
    const key = keyOf(x);
    const requests = num(x.requests), tokens = num(x.input) + num(x.output);
    const line = priced.get(key);
    let usd = null, source = "unpriced";
    if (line && num(line.usd_per_million_tokens) !== null) { usd = num(line.usd_per_million_tokens); source = "price catalog (cost report)"; }
    else if (withCost && num(x.reported_cost) > 0 && tokens > 0) { usd = num(x.reported_cost) / tokens * 1e6; source = "cost reported by the instrumentation"; }
    return {
      key: key, cloud: x.CloudProvider, region: x.CloudRegion, kind: x.ServerKind,
      requests: requests, bad: num(x.bad), error_ratio: requests ? num(x.bad) / requests : null,
      rps: requests / r.seconds, tokens_per_s: num(x.output) / r.seconds,
      input: num(x.input), output: num(x.output),
      ttft: T.get(key) || null, tpot: P.get(key) || null, e2e: E.get(key) || null,
      usd_per_1m_tokens: usd, cost_source: source,
      slo: (slos.instances || []).filter((i) => matches(i.group, model, x)),
    };
  });
  return { model: model, rows: rows, over: over, ttft: ttftT, e2e: e2eT, tpot: tpotT, step: r.step };
}

// An SLO instance belongs to a deployment when its group names this model and does not contradict
// the deployment's cloud, region or server kind.
function matches(group, model, x) {
  const g = group || {};
  if (g["gen_ai.request.model"] !== model) return false;
  const want = { "cloud.provider": x.CloudProvider, "cloud.region": x.CloudRegion, "infersight.server.kind": x.ServerKind };
  return Object.entries(want).every(([k, v]) => g[k] === undefined || g[k] === v);
}

export { str };
