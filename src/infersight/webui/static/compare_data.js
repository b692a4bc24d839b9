// Data of the "Compare clouds for one model" view. The table's numbers are the compare document
// (GET /api/v1/compare, `infersight compare --format json`: compare.report.build, the one implementation
// of traffic, ≈percentiles, $/1M tokens, SLO state and probes per deployment); only the over-time charts
// read the rollups: requests through the query API (infersight_requests_1m), percentiles per time bucket
// from /ui/percentiles.json (infersight_latency_1m by infersight.quantiles, as the document; docs/ROLLUPS.md).
// The view only sees the object loadCompare() returns.
import { meta, query, timedApi } from "./api.js";
import { num, seconds as secondsText } from "./fmt.js";
import { percentiles } from "./percentiles.js";
import { requestsSQL, rollupWhere, str, table } from "./sql.js";

// A deployment: where the model is served. Self-hosted: a server kind (vllm, sglang, …) in a cloud
// region; API-served: the provider (azure.ai.openai, aws.bedrock, gcp.vertex_ai, …) in its region.
// The same key as the compare document's `key` (cloud/region/kind).
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

// A latency entry of the document ({value, lower, upper, estimate, open}, infersight.quantiles) as the
// cells show it: pNN (seconds), pNN_lo/pNN_hi (the interval) and pNN_note (what the value is).
function estimates(lat) {
  if (!lat) return null;
  const out = { count: lat.count, layouts: lat.layouts };
  for (const q of ["p50", "p95"]) {
    const e = lat[q];
    if (!e) continue;
    out[q] = e.value;
    out[q + "_lo"] = e.lower;
    out[q + "_hi"] = e.upper === null ? "inf" : e.upper;
    const within = e.upper === null ? "above " + secondsText(e.lower) + " (the +Inf bucket: shown as the largest finite bound)"
      : "between " + secondsText(e.lower) + " and " + secondsText(e.upper);
    out[q + "_note"] = e.estimate
      ? "≈ " + q + " estimated over " + lat.layouts + " bucket layouts: known to lie " + within
      : q + " = histogram_quantile over the source's own buckets (" + Number(lat.count).toLocaleString("en-US") +
        " observations): " + within;
  }
  return out;
}

// The SLO instance a deployment's cells show: the one with the least budget left.
function worstOf(slo) {
  const inst = (slo && slo.instances) || [];
  return inst.length ? inst.slice().sort((a, b) => (a.budget_remaining ?? 9) - (b.budget_remaining ?? 9))[0] : null;
}

// {doc, rows: [{key, cloud, region, kind, hosting, requests, bad, error_ratio, rps, tokens, tokens_per_s,
//   ttft/tpot/e2e: {p50, p50_lo, p50_hi, p95, ...}, usd_per_1m_tokens (exact decimal text or null), cost,
//   slo (the document's summary), worst (its instance with the least budget left), probe}],
//  over, ttft, e2e, tpot: rows of the over-time queries, step}
export async function loadCompare(model, r) {
  const m = await meta();
  const where = rollupWhere(r, { model: model });
  const [doc, over, lat] = await Promise.all([
    timedApi("/api/v1/compare?model=" + encodeURIComponent(model) + "&since=" + r.seconds, "compare document"),
    query(requestsSQL(m.database, where, DIMS, r.step, false), "requests over time"),
    percentiles({ seconds: r.seconds, latency: ["ttft", "tpot", "e2e"], by: ["cloud,region,kind,t"], step: r.step, qs: [0.5, 0.95],
      filters: { model: model } }, "percentiles over time"),
  ]);
  // Chart rows keyed as the requests' rows (keyOf), pNN the value.
  const series = (kind) => lat["cloud,region,kind,t"].filter((x) => x.latency === kind).map((x) => ({
    CloudProvider: x.cloud, CloudRegion: x.region, ServerKind: x.kind, t: x.t,
    p50: x.p50 ? x.p50.value : null, p95: x.p95 ? x.p95.value : null }));
  const [ttftT, tpotT, e2eT] = [series("ttft"), series("tpot"), series("e2e")];
  const seconds = num(doc.since_seconds) || r.seconds;
  const rows = doc.deployments.map((d) => {
    const cost = d.cost || {};
    const usd = cost.usd_per_million_tokens === null || cost.usd_per_million_tokens === undefined ? null : cost.usd_per_million_tokens;
    return {
      key: d.key, cloud: d.cloud, region: d.region, kind: d.kind, hosting: d.hosting, hosts: d.hosts || [],
      requests: d.requests, bad: d.bad_requests, error_ratio: d.error_ratio,
      rps: d.requests / seconds, tokens: d.tokens, tokens_per_s: d.tokens.output / seconds,
      ttft: estimates(d.latency.ttft), tpot: estimates(d.latency.tpot), e2e: estimates(d.latency.e2e),
      usd_per_1m_tokens: usd, cost: cost,
      cost_source: usd === null ? ((cost.unpriced || []).join("; ") || "unpriced") :
        (cost.pricing === "capacity" ? "capacity price per node-hour over the tokens served" : "list price per token") +
        " (" + (doc.catalog || "catalog") + ")",
      slo: d.slo, worst: worstOf(d.slo), probe: d.probe,
    };
  });
  return { doc: doc, model: model, rows: rows, over: over, ttft: ttftT, e2e: e2eT, tpot: tpotT, step: r.step, seconds: seconds };
}

export { str };
