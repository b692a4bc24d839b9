// Fleet overview: per cloud and region the nodes, accelerators (utilisation vs tensor-active),
// requests/s, error ratio, p95 TTFT and e2e (infersight.quantiles through /ui/percentiles.json: exact
// histogram_quantile over one bucket layout, ≈ over mixed ones), tokens/s and $/1M tokens, per-cloud
// subtotals, small charts per cloud, and the nodes that stopped reporting on top.
import { meta, query, timedApi } from "./api.js";
import { chart, pivot, steps } from "./charts.js";
import * as f from "./fmt.js";
import { cellText, noteText, percentiles } from "./percentiles.js";
import { acceleratorSQL, collectorsSQL, downText, nodesSQL, requestsSQL, rollupWhere } from "./sql.js";
import { href, setParams } from "./state.js";

// A node is stale when nothing came from it for this long (agents report every 10-60 s).
export const STALE_SECONDS = 300;

function section(page, title, id) {
  const s = f.el("section");
  s.id = id;
  s.appendChild(f.el("h2", title));
  const status = f.el("p", "loading…", "status");
  status.id = id + "-status";
  s.appendChild(status);
  page.appendChild(s);
  return { s: s, status: status };
}

export function filterBar(page, params, options, onto) {
  const bar = f.el("div", null, "filters");
  bar.id = "filters";
  for (const [key, label] of [["cloud", "Cloud"], ["region", "Region"], ["model", "Model"]]) {
    if (!options[key]) continue;
    const lab = f.el("label", label + " ");
    const sel = f.el("select");
    sel.id = "filter-" + key;
    sel.appendChild(f.el("option", "all", null, { value: "" }));
    for (const v of options[key]) sel.appendChild(f.el("option", v, null, { value: v }));
    if (params[key] && options[key].indexOf(params[key]) < 0) sel.appendChild(f.el("option", params[key], null, { value: params[key] }));
    sel.value = params[key] || "";
    sel.addEventListener("change", () => setParams({ [key]: sel.value }));
    lab.appendChild(sel);
    bar.appendChild(lab);
  }
  (onto || page).appendChild(bar);
  return bar;
}

// Down collectors/parts per host (collectorsSQL rows), and how a cell shows them.
export function downsByHost(rows) {
  const by = new Map();
  for (const x of rows) {
    if (!by.has(x.host)) by.set(x.host, []);
    by.get(x.host).push(x);
  }
  return by;
}
export function healthCell(down) {
  if (!down.length) return "ok";
  const box = f.el("span");
  for (const x of down) box.appendChild(f.el("span", downText(x), "badge bad"));
  return box;
}
export function healthTip(down) {
  return down.map((x) => (x.name ? "collector " + x.name + " (" + x.type + ")" : x.metric) + ": " + downText(x) +
    ", last reported " + f.when(x.last)).join("\n");
}

// Hosts from the light presence series and from the accelerator scan (per-host rows, t = 0).
export function mergeNodes(presence, accelRows) {
  const accel = accelRows.filter((x) => f.num(x.t) === 0 && x.host !== "");
  const by = new Map(presence.map((n) => [n.host, Object.assign({}, n)]));
  for (const a of accel) {
    const n = by.get(a.host);
    if (!n) by.set(a.host, { host: a.host, cloud: a.cloud, region: a.region, host_type: a.host_type, last_seen: a.last_seen });
    else {
      n.last_seen = Math.max(f.num(n.last_seen) || 0, f.num(a.last_seen) || 0);
      n.cloud = n.cloud || a.cloud; n.region = n.region || a.region; n.host_type = n.host_type || a.host_type;
    }
  }
  const nodes = Array.from(by.values()).sort((a, b) => (a.cloud || "").localeCompare(b.cloud || "") ||
    (a.region || "").localeCompare(b.region || "") || a.host.localeCompare(b.host));
  return { nodes: nodes, accel: accel };
}

export async function render(page, params, ctx) {
  const m = await meta();
  const r = ctx.range;
  const filters = { cloud: params.cloud, region: params.region, model: params.model };
  const withCost = m.request_columns.indexOf("ReportedCostUSD") >= 0;
  const where = rollupWhere(r, filters);
  const head = f.el("div", null, "view-head");
  head.appendChild(f.el("h2", "Fleet overview"));
  head.appendChild(f.el("p", r.label + " · p95 from the histogram buckets: histogram_quantile over one bucket layout, ≈ an estimate " +
    "where layouts are mixed (hover for the interval)", "status"));
  page.appendChild(head);
  const filterSlot = f.el("div");
  page.appendChild(filterSlot);
  const staleBox = f.el("div", null, "callout bad");
  staleBox.id = "stale";
  staleBox.hidden = true;
  page.appendChild(staleBox);
  const hint = f.el("div", null, "callout");
  hint.id = "hint";
  hint.hidden = true;
  page.appendChild(hint);
  const summary = section(page, "By cloud and region", "fleet");
  const charts = section(page, "Over time, per cloud", "fleet-charts");
  const grid = f.el("div", null, "grid");
  charts.s.appendChild(grid);
  const nodeSec = section(page, "Nodes", "fleet-nodes");

  // Per region, per cloud (the regions' buckets summed per layout) and the TTFT per cloud over time: one query.
  const pct = percentiles({ seconds: r.seconds, latency: ["ttft", "e2e"], by: ["cloud,region", "cloud", "cloud,t:ttft"], step: r.step,
    qs: [0.95], filters: filters }, "p95 ttft,e2e");
  // Spend per region and per cloud: one cost report read, two groupings.
  const withModel = filters.model ? ",model" : "";
  const cost = m.priced ? timedApi("/ui/cost.json?hours=" + Math.max(1, Math.ceil(r.seconds / 3600)) + "&by=" +
    encodeURIComponent("cloud,region" + withModel + ";cloud" + withModel), "cost").catch(() => ({ reports: [] }))
    : Promise.resolve({ reports: [] });
  const [reqs, lat, presence, accelRows, overT, costs, options, downs] = await Promise.all([
    query(requestsSQL(m.database, where, ["CloudProvider", "CloudRegion"], 0, withCost), "requests"),
    pct,
    query(nodesSQL(m.database, r, filters), "nodes"),
    query(acceleratorSQL(m.database, r, filters, r.step), "accelerators"),
    query(requestsSQL(m.database, where, ["CloudProvider"], r.step, false), "requests over time"),
    cost,
    query("SELECT groupUniqArray(CloudProvider) AS cloud, groupUniqArray(CloudRegion) AS region, groupUniqArray(Model) AS model FROM " +
      "`" + m.database.replace(/`/g, "``") + "`.infersight_requests_1m WHERE " + rollupWhere(r, {}), "filter options"),
    query(collectorsSQL(m.database, r, filters), "collectors down"),
  ]);
  if (ctx.stale()) return;
  const { nodes, accel } = mergeNodes(presence, accelRows);
  const accelT = accelRows.filter((x) => f.num(x.t) > 0);
  const opt = options[0] || {};
  const sorted = (a) => (a || []).filter((x) => x !== "").sort();
  const nodeClouds = nodes.map((n) => n.cloud).filter((x) => x);
  filterBar(page, params, { cloud: sorted(Array.from(new Set((opt.cloud || []).concat(nodeClouds)))), region: sorted(opt.region),
    model: sorted(opt.model) }, filterSlot);

  // Nodes: stale ones stand out; accelerators per host.
  const nowS = Date.now() / 1000;
  const acc = new Map(accel.map((a) => [a.host, a]));
  for (const n of nodes) {
    n.stale = nowS - f.num(n.last_seen) > STALE_SECONDS;
    const a = acc.get(n.host);
    n.devices = a ? f.num(a.devices) : 0;
    n.util = a ? f.num(a.util) : null;
    n.tensor = a ? f.num(a.tensor) : null;
  }
  const downBy = downsByHost(downs);
  for (const n of nodes) n.down = downBy.get(n.host) || [];
  const broken = nodes.filter((n) => n.down.length);
  if (broken.length) {
    const box = f.el("div", null, "callout bad");
    box.id = "collectors-down";
    box.textContent = broken.length + (broken.length === 1 ? " node has" : " nodes have") + " collectors or parts down: " +
      broken.map((n) => n.host + " (" + n.down.map(downText).join(", ") + ")").join("; ");
    staleBox.after(box);
  }
  const stale = nodes.filter((n) => n.stale);
  if (stale.length) {
    staleBox.hidden = false;
    staleBox.textContent = stale.length + (stale.length === 1 ? " node stopped reporting: " : " nodes stopped reporting: ") +
      stale.map((n) => n.host + " (" + [n.cloud, n.region].filter((x) => x).join("/") + ", last seen " + f.ago(n.last_seen, nowS) + ")").join("; ");
  }
  if (!reqs.length) {
    hint.hidden = false;
    hint.textContent = (nodes.length ? "No inference requests in the " + r.label + " yet — " + nodes.length +
      (nodes.length === 1 ? " node reports" : " nodes report") + " host and agent metrics (see Accelerators & nodes). " : "No data in the " + r.label + ". ") +
      "To see a simulated multi-cloud fleet, run: infersight demo";
  }

  // Per cloud/region rows and per-cloud subtotals.
  const key2 = (c, g) => c + "/" + g;
  const latBy = new Map(lat["cloud,region"].map((x) => [key2(x.cloud, x.region) + "/" + x.latency, x]));
  const latCloudBy = new Map(lat["cloud"].map((x) => [x.cloud + "/" + x.latency, x]));
  const [costRegion, costCloud] = [0, 1].map((i) => (costs.reports || [])[i] || { lines: [] });
  const costBy = new Map(costRegion.lines.map((l) => [key2(l.cloud, l.region), l]));
  const costCloudBy = new Map(costCloud.lines.map((l) => [l.cloud, l]));
  const nodeAgg = (list) => {
    const devs = list.reduce((s, n) => s + (n.devices || 0), 0);
    const w = (field) => {
      const have = list.filter((n) => n[field] !== null && n.devices);
      const d = have.reduce((s, n) => s + n.devices, 0);
      return d ? have.reduce((s, n) => s + n[field] * n.devices, 0) / d : null;
    };
    return { nodes: list.length, stale: list.filter((n) => n.stale).length, devices: devs, util: w("util"), tensor: w("tensor") };
  };
  const regions = new Map();
  for (const x of reqs) regions.set(key2(x.CloudProvider, x.CloudRegion), { cloud: x.CloudProvider, region: x.CloudRegion, req: x });
  for (const n of nodes) if (!regions.has(key2(n.cloud, n.region))) regions.set(key2(n.cloud, n.region), { cloud: n.cloud, region: n.region, req: null });
  const rows = [];
  const clouds = Array.from(new Set(Array.from(regions.values()).map((x) => x.cloud))).sort();
  const make = (cloud, region, reqRows, nodeList, latOf, costLine, subtotal) => {
    const s = reqRows.reduce((a, x) => { for (const k of ["requests", "bad", "input", "output", "reported_cost"]) a[k] += f.num(x[k]) || 0; return a; },
      { requests: 0, bad: 0, input: 0, output: 0, reported_cost: 0 });
    const tokens = s.input + s.output;
    let usd = null, source = "";
    if (costLine && f.num(costLine.usd_per_million_tokens) !== null) { usd = f.num(costLine.usd_per_million_tokens); source = "price catalog (cost report)"; }
    else if (s.reported_cost > 0 && tokens > 0) { usd = s.reported_cost / tokens * 1e6; source = "cost reported by the instrumentation"; }
    return Object.assign({ key: subtotal ? cloud + "/*" : cloud + "/" + region, cloud: cloud, region: subtotal ? "all regions" : region, subtotal: subtotal,
      rps: s.requests / r.seconds, requests: s.requests, error_ratio: s.requests ? s.bad / s.requests : null,
      tokens_per_s: s.output / r.seconds, ttft: latOf("ttft"), e2e: latOf("e2e"), usd: usd, usd_source: source }, nodeAgg(nodeList));
  };
  for (const cloud of clouds) {
    const mine = Array.from(regions.values()).filter((x) => x.cloud === cloud).sort((a, b) => a.region.localeCompare(b.region));
    for (const x of mine) {
      rows.push(make(cloud, x.region, x.req ? [x.req] : [], nodes.filter((n) => n.cloud === cloud && n.region === x.region),
        (k) => latBy.get(key2(cloud, x.region) + "/" + k) || null, costBy.get(key2(cloud, x.region)), false));
    }
    if (mine.length > 1) {
      rows.push(make(cloud, "", mine.map((x) => x.req).filter((x) => x), nodes.filter((n) => n.cloud === cloud),
        (k) => latCloudBy.get(cloud + "/" + k) || null, costCloudBy.get(cloud), true));
    }
  }
  const latCell = (k) => (row) => row[k] ? cellText(row[k].p95) : "–";
  const latTip = (k) => (row) => row[k] ? noteText(row[k].p95, "p95", row[k]) : "";
  const latValue = (k) => (row) => row[k] && row[k].p95 ? row[k].p95 : null;
  const columns = [
    ["cloud", "Cloud", (x) => f.link(x.cloud || "(unknown)", href("fleet", { range: ctx.rangeKey, cloud: x.cloud }))],
    ["region", "Region", (x) => x.region || "–"],
    ["nodes", "Nodes", (x) => x.nodes + (x.stale ? " (" + x.stale + " stale)" : ""), (x) => "num" + (x.stale ? " bad" : ""), null, "hosts reporting in the range; stale: silent for over 5 min"],
    ["devices", "Accel.", (x) => x.devices ? f.int(x.devices) : "–", "num", null, "GPUs and NeuronCores"],
    ["util", "Util / tensor", (x) => x.util === null ? "–" : f.percent(x.util, 0) + " / " + (x.tensor === null ? "–" : f.percent(x.tensor, 0)), "num", null,
      "mean engine utilisation vs tensor-pipe active (GPM) over the range"],
    ["rps", "Req/s", (x) => f.rate(x.rps, ""), "num", null, "mean requests per second over the range"],
    ["error_ratio", "Errors", (x) => x.error_ratio === null ? "–" : f.percent(x.error_ratio, 2), (x) => "num" + (x.error_ratio > 0.01 ? " bad" : ""), null, "failed ÷ all requests"],
    ["p95_ttft", "p95 TTFT", latCell("ttft"), "num", latTip("ttft"), "histogram_quantile over the buckets; ≈ where bucket layouts are mixed", latValue("ttft")],
    ["p95_e2e", "p95 e2e", latCell("e2e"), "num", latTip("e2e"), "histogram_quantile over the buckets; ≈ where bucket layouts are mixed", latValue("e2e")],
    ["tokens_per_s", "Tokens/s", (x) => f.rate(x.tokens_per_s, ""), "num", null, "generated tokens per second, mean over the range"],
    ["usd_per_1m_tokens", "$/1M tokens", (x) => f.usd(x.usd), "num", (x) => x.usd_source, "input + output tokens"],
  ];
  summary.s.appendChild(f.el("div", null, "scroll")).appendChild(f.table(columns, rows, (x) => x.key, { rowClass: (x) => x.subtotal ? "subtotal" : "" }));
  summary.status.textContent = rows.length ? clouds.length + " clouds, " + rows.filter((x) => !x.subtotal).length + " regions, " + r.label
    : "no nodes or requests in the " + r.label;

  // Charts per cloud.
  const xs = steps(r.seconds, r.step, nowS);
  const rps = pivot(overT, (x) => x.CloudProvider, (x) => f.num(x.requests) / r.step, xs);
  const err = pivot(overT, (x) => x.CloudProvider, (x) => f.num(x.requests) ? f.num(x.bad) / f.num(x.requests) : null, xs);
  const ttft = pivot(lat["cloud,t"], (x) => x.cloud, (x) => x.p95 ? f.num(x.p95.value) : null, xs);
  const per = f.duration(r.step) + " steps";
  chart(grid, { id: "fleet-rps", title: "Requests/s by cloud", note: per, unit: "1/s", fmt: (v) => f.rate(v, "/s"), x: xs, series: rps.series });
  chart(grid, { id: "fleet-errors", title: "Error ratio by cloud", note: per, unit: "1", fmt: (v) => f.percent(v, 1), x: xs, series: err.series });
  chart(grid, { id: "fleet-ttft", title: "p95 TTFT by cloud (from histogram buckets)", note: per, unit: "s", fmt: f.seconds, x: xs, series: ttft.series });
  const util = pivot(accelT, (x) => x.cloud + " util", (x) => f.num(x.util), xs);
  const tensor = pivot(accelT.filter((x) => f.num(x.tensor) !== null), (x) => x.cloud + " tensor", (x) => f.num(x.tensor), xs);
  chart(grid, { id: "fleet-accel", title: "Accelerator utilisation vs tensor-active by cloud", note: per, unit: "1", fmt: (v) => f.percent(v, 0),
    x: xs, series: util.series.concat(tensor.series), yRange: [0, 1] });
  charts.status.textContent = r.label + ", " + per + " (" + xs.length + " points)";

  // Nodes table.
  nodes.sort((a, b) => (b.stale - a.stale) || (b.down.length > 0) - (a.down.length > 0) ||
    (a.cloud || "").localeCompare(b.cloud || "") || a.host.localeCompare(b.host));
  const nodeCols = [
    ["host", "Host", (n) => f.link(n.host, href("nodes", { range: ctx.rangeKey, host: n.host }))],
    ["cloud", "Cloud", (n) => n.cloud || "–"],
    ["region", "Region", (n) => n.region || "–"],
    ["type", "Instance", (n) => n.host_type || "–"],
    ["devices", "Accel.", (n) => n.devices ? f.int(n.devices) : "–", "num"],
    ["util", "Util / tensor", (n) => n.util === null ? "–" : f.percent(n.util, 0) + " / " + (n.tensor === null ? "–" : f.percent(n.tensor, 0)), "num"],
    ["last_seen", "Last seen", (n) => f.ago(n.last_seen, nowS), (n) => n.stale ? "bad" : "", (n) => f.when(n.last_seen)],
    ["health", "Collectors", (n) => healthCell(n.down), (n) => n.down.length ? "bad" : "state-ok", (n) => healthTip(n.down),
      "infersight.collector.up and the per-part up gauges, latest in the last hour"],
  ];
  if (nodes.length) nodeSec.s.appendChild(f.el("div", null, "scroll")).appendChild(f.table(nodeCols, nodes, (n) => n.host, { rowClass: (n) => n.stale ? "stale" : "" }));
  nodeSec.status.textContent = nodes.length ? nodes.length + " nodes (" + stale.length + " stale), " + r.label : "no nodes reported in the " + r.label;
}
