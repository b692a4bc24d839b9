// infersight web UI: the fleet from the request rollups (POST /api/v1/query), SLOs and alerts.
// Plain browser JavaScript, no build step. Every value reaches the page through textContent.
"use strict";

const TOKEN_KEY = "infersight.token";
const REFRESH_MS = 30000;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  return headers;
}

async function api(path, body) {
  const init = body === undefined
    ? { headers: authHeaders({ Accept: "application/json" }) }
    : { method: "POST", headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
        body: JSON.stringify(body) };
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    throw new ApiError(resp.status, (data && (data.error || data.message)) || text || resp.statusText);
  }
  return data;
}

async function query(sql) {
  return (await api("/api/v1/query", { sql: sql })).rows;
}

// ------------------------------------------------------------------ SQL (same rules as dashboards/build.py)

function ident(name) {
  return "`" + String(name).replace(/`/g, "``") + "`";
}

const DIMS = "CloudProvider, CloudRegion, Model";

// p95 (or any q) from the mergeable per-minute histograms, per cloud/region/model: rows summed per bucket
// layout, then per upper bound (layouts merge into the union of their bounds), linear interpolation
// inside the bucket, the +Inf bucket answers the largest finite bound.
function quantileSQL(db, kind, q, hours) {
  return "SELECT " + DIMS + ", 1 AS found, " +
    "if(i = length(b), b[i - 1], if(i = 1, 0, b[i - 1]) + (b[i] - if(i = 1, 0, b[i - 1])) * " +
    "(" + q + " * total - if(i = 1, 0, cum[i - 1])) / c[i]) AS value " +
    "FROM (SELECT " + DIMS + ", arraySort(groupArray((bound, n))) AS pairs, pairs.1 AS b, pairs.2 AS c, " +
    "arrayCumSum(c) AS cum, cum[-1] AS total, arrayFirstIndex(x -> x >= " + q + " * total, cum) AS i " +
    "FROM (SELECT " + DIMS + ", bound, sum(n) AS n FROM (SELECT " + DIMS + ", Bounds, " +
    "sumForEach(BucketCounts) AS counts FROM " + ident(db) + ".infersight_latency_1m " +
    "WHERE Minute >= now() - INTERVAL " + hours + " HOUR AND Kind = '" + kind + "' GROUP BY " + DIMS + ", Bounds) " +
    "ARRAY JOIN arrayPushBack(Bounds, inf) AS bound, counts AS n " +
    "GROUP BY " + DIMS + ", bound) GROUP BY " + DIMS + ") WHERE total > 0";
}

function fleetSQL(db, hours, withCost) {
  const cost = withCost ? ", toFloat64(sum(ReportedCostUSD)) AS cost" : "";
  return "SELECT r.CloudProvider AS cloud, r.CloudRegion AS region, r.Model AS model, r.requests AS requests, " +
    "r.bad AS bad, r.input AS input, r.output AS output" + (withCost ? ", r.cost AS cost" : "") + ", " +
    "if(t.found = 1, t.value, NULL) AS p95_ttft, if(e.found = 1, e.value, NULL) AS p95_e2e " +
    "FROM (SELECT " + DIMS + ", sum(Requests) AS requests, sum(BadRequests) AS bad, sum(InputTokens) AS input, " +
    "sum(OutputTokens) AS output" + cost + " FROM " + ident(db) + ".infersight_requests_1m " +
    "WHERE Minute >= now() - INTERVAL " + hours + " HOUR GROUP BY " + DIMS + ") AS r " +
    "LEFT JOIN (" + quantileSQL(db, "ttft", 0.95, hours) + ") AS t USING (" + DIMS + ") " +
    "LEFT JOIN (" + quantileSQL(db, "e2e", 0.95, hours) + ") AS e USING (" + DIMS + ") " +
    "ORDER BY requests DESC, cloud, region, model";
}

// GPUs (NVML engine utilisation, compute task) and NeuronCores per host, as the Grafana accelerator
// dashboard reads them: mean utilisation over the range, latest power, devices not ok, XID errors.
function acceleratorSQL(db, hours) {
  const g = ident(db) + ".otel_metrics_gauge", s = ident(db) + ".otel_metrics_sum";
  const since = "TimeUnix >= now() - INTERVAL " + hours + " HOUR";
  const host = "ResourceAttributes['host.name']";
  const util = "SELECT " + host + " AS host, ResourceAttributes['cloud.provider'] AS cloud, " +
    "concat('gpu ', Attributes['hw.id']) AS dev, Value FROM " + g + " WHERE MetricName = 'hw.gpu.utilization' " +
    "AND Attributes['hw.gpu.task'] IN ('', 'general') AND " + since + " UNION ALL SELECT " + host + ", " +
    "ResourceAttributes['cloud.provider'], concat('nc ', Attributes['infersight.neuron.core']), Value FROM " + g +
    " WHERE MetricName = 'infersight.neuron.core.utilization' AND " + since;
  const power = "SELECT host, sum(v) AS watts FROM (SELECT " + host + " AS host, argMax(Value, TimeUnix) AS v " +
    "FROM " + g + " WHERE MetricName = 'hw.power' AND " + since + " GROUP BY host, Attributes) GROUP BY host";
  const status = "SELECT host, countIf(state != 'ok') AS not_ok FROM (SELECT " + host + " AS host, " +
    "Attributes['hw.id'] AS id, argMax(Attributes['hw.state'], TimeUnix) AS state FROM " + s +
    " WHERE MetricName = 'hw.status' AND Value = 1 AND " + since + " GROUP BY host, id) GROUP BY host";
  // Cumulative counter: each step from the series' previous point, a drop being a reset; the first
  // point counts in full when the series started inside the range.
  const xid = "SELECT host, sum(inc) AS xid FROM (SELECT " + host + " AS host, " +
    "if(AggregationTemporality = 1, Value, if(row_number() OVER w = 1, if(StartTimeUnix >= now() - INTERVAL " +
    hours + " HOUR, Value, 0), if(Value >= lagInFrame(Value) OVER w, Value - lagInFrame(Value) OVER w, Value))) " +
    "AS inc FROM " + s + " WHERE MetricName = 'hw.errors' AND " +
    "Attributes['error.type'] = 'xid' AND " + since + " WINDOW w AS (PARTITION BY ResourceAttributes, Attributes " +
    "ORDER BY TimeUnix ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) GROUP BY host";
  return "SELECT u.host AS host, u.cloud AS cloud, u.devices AS devices, u.util AS util, " +
    "if(p.found = 1, p.watts, NULL) AS watts, if(st.found = 1, st.not_ok, NULL) AS not_ok, " +
    "if(x.found = 1, x.xid, 0) AS xid " +
    "FROM (SELECT host, any(cloud) AS cloud, uniqExact(dev) AS devices, avg(Value) AS util FROM (" + util + ") " +
    "GROUP BY host) AS u " +
    "LEFT JOIN (SELECT *, 1 AS found FROM (" + power + ")) AS p USING (host) " +
    "LEFT JOIN (SELECT *, 1 AS found FROM (" + status + ")) AS st USING (host) " +
    "LEFT JOIN (SELECT *, 1 AS found FROM (" + xid + ")) AS x USING (host) " +
    "ORDER BY not_ok DESC, xid DESC, host";
}

// ------------------------------------------------------------------ formatting

function num(v) {
  return v === null || v === undefined || v === "" ? null : Number(v);
}

function fmtInt(v) {
  const n = num(v);
  return n === null ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: 0 });
}

function fmtPercent(v, digits) {
  const n = num(v);
  return n === null || !isFinite(n) ? "–" : (n * 100).toFixed(digits) + "%";
}

function fmtSeconds(v) {
  const n = num(v);
  if (n === null || !isFinite(n)) return "–";
  return n < 1 ? (n * 1000).toFixed(1) + " ms" : n.toFixed(2) + " s";
}

function fmtUsd(v) {
  const n = num(v);
  return n === null || !isFinite(n) ? "unpriced" : "$" + n.toFixed(n < 1 ? 4 : 2);
}

function fmtNumber(v) {
  const n = num(v);
  return n === null || !isFinite(n) ? "–" : String(Number(n.toPrecision(6)));
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function setStatus(id, text, isError) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("error", Boolean(isError));
}

function explain(err, what) {
  if (err instanceof ApiError && err.status === 401) {
    const banner = document.getElementById("banner");
    banner.textContent = "This server needs a bearer token: enter it above.";
    banner.hidden = false;
    return what + ": unauthorised (401)";
  }
  if (err instanceof ApiError && err.status === 404) return what + ": not available on this server (404)";
  if (err instanceof ApiError) return what + ": error " + err.status + ": " + err.message;
  return what + ": " + err.message;
}

// ------------------------------------------------------------------ sections

let meta = null;

async function loadFleet(hours) {
  if (meta === null) meta = await api("/ui/meta.json");
  const withCost = meta.request_columns.indexOf("ReportedCostUSD") >= 0;
  document.getElementById("cost-head").hidden = !(withCost || meta.priced);
  const [rows, priced] = await Promise.all([
    query(fleetSQL(meta.database, hours, withCost)),
    meta.priced ? api("/ui/cost.json?hours=" + hours) : Promise.resolve({ lines: [] }),
  ]);
  const catalog = {};
  for (const line of priced.lines) catalog[line.cloud + "/" + line.region + "/" + line.model] = line;
  const body = document.querySelector("#fleet tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr");
    tr.dataset.key = r.cloud + "/" + r.region + "/" + r.model;
    const requests = num(r.requests);
    const tokens = num(r.input) + num(r.output);
    const cells = [
      ["cloud", r.cloud], ["region", r.region], ["model", r.model],
      ["requests", fmtInt(r.requests), "num"],
      ["error_ratio", requests ? fmtPercent(num(r.bad) / requests, 2) : "–", "num"],
      ["p95_ttft", fmtSeconds(r.p95_ttft), "num"],
      ["p95_e2e", fmtSeconds(r.p95_e2e), "num"],
      ["input_tokens", fmtInt(r.input), "num"],
      ["output_tokens", fmtInt(r.output), "num"],
    ];
    if (withCost || meta.priced) {
      // The price catalog's figure (cost module) first, else the cost the application reported;
      // zero reported spend means nothing was priced: say so rather than show $0.
      const line = catalog[tr.dataset.key];
      const cost = num(r.cost);
      const usd = line && line.usd_per_million_tokens !== null ? num(line.usd_per_million_tokens)
        : (cost > 0 && tokens > 0 ? cost / tokens * 1e6 : null);
      cells.push(["usd_per_1m_tokens", fmtUsd(usd), "num"]);
    }
    for (const [col, text, cls] of cells) {
      const td = el("td", text, cls);
      td.dataset.col = col;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  setStatus("fleet-status", rows.length ? rows.length + " series, last " + hours + " h"
    : "no requests in the last " + hours + " h");
}

function fmtLabels(obj, skip) {
  return Object.keys(obj || {}).filter((k) => !skip || skip.indexOf(k) < 0).sort()
    .map((k) => k + "=" + obj[k]).join(", ");
}

function renderTable(containerId, columns, rows, keyOf) {
  const table = el("table");
  const head = el("tr");
  for (const [, title] of columns) head.appendChild(el("th", title));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const row of rows) {
    const tr = el("tr");
    tr.dataset.key = keyOf(row);
    for (const [col, , format, cls] of columns) {
      const text = format(row);
      const td = el("td", text, typeof cls === "function" ? cls(row) : cls);
      td.dataset.col = col;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  document.getElementById(containerId).replaceChildren(table);
}

// GET /api/v1/slos: one row per SLO instance (SLO × group value).
const SLO_COLUMNS = [
  ["slo", "SLO", (r) => r.slo],
  ["group", "Group", (r) => fmtLabels(r.group), "wrap"],
  ["state", "State", (r) => r.state, (r) => "state-" + r.state],
  ["sli", "SLI", (r) => r.sli === null ? "no data" : (r.sli >= 0 && r.sli <= 1 ? fmtPercent(r.sli, 3) : fmtNumber(r.sli))],
  ["objective", "Objective", (r) => r.objective_percent === null ? "–" : r.objective_percent + "%", "num"],
  ["window", "Window", (r) => r.window],
  ["budget_remaining", "Budget left", (r) => fmtPercent(r.budget_remaining, 1), "num"],
  ["burn_rates", "Burn rate", (r) => Object.keys(r.burn_rates || {})
    .map((w) => w + " " + (r.burn_rates[w] === null ? "–" : Number(r.burn_rates[w]).toFixed(1) + "×")).join(", "),
   "wrap"],
  ["burning_tiers", "Burning tiers", (r) => (r.tiers || []).filter((t) => t.active)
    .map((t) => t.name + " (" + t.severity + ")").join(", ") || "–", "wrap"],
];

// GET /api/v1/alerts: one row per alert (SLO instance × tier); the tier's own labels get their columns.
const TIER_LABELS = ["slo", "alertname", "severity", "tier", "long_window", "short_window", "burn_rate_threshold"];
const ALERT_COLUMNS = [
  ["slo", "SLO", (a) => a.labels.slo || a.labels.alertname || "–"],
  ["tier", "Tier", (a) => a.labels.tier || "–"],
  ["severity", "Severity", (a) => a.labels.severity || "–"],
  ["state", "State", (a) => a.state + (a.silenced ? " (silenced)" : "") + (a.inhibited ? " (inhibited)" : ""),
   (a) => "state-" + a.state + (a.silenced || a.inhibited ? " muted" : "")],
  ["group", "Group", (a) => fmtLabels(a.labels, TIER_LABELS), "wrap"],
  ["since", "Since", (a) => a.startsAt || a.activeAt || "–"],
  ["summary", "Summary", (a) => (a.annotations && (a.annotations.summary || a.annotations.description)) || "", "wrap"],
];
const SEVERITY_ORDER = ["page", "critical", "ticket", "warning"];

function alertRank(a) {
  const live = a.state === "firing" && !a.silenced && !a.inhibited ? 0 : a.state === "pending" ? 1 : 2;
  const sev = SEVERITY_ORDER.indexOf(a.labels.severity);
  return live * 10 + (sev < 0 ? 9 : sev);
}

async function loadSlos() {
  const data = await api("/api/v1/slos");
  const instances = (data && data.instances) || [];
  const keyOf = (r) => r.slo + " " + fmtLabels(r.group);
  if (instances.length) renderTable("slos", SLO_COLUMNS, instances, keyOf);
  else document.getElementById("slos").replaceChildren();
  const slos = (data && data.slos) || [];
  setStatus("slo-status", instances.length ? instances.length + " SLO instances of " + slos.length + " SLOs"
    : (slos.length ? slos.length + " SLOs, not evaluated yet" : "no SLOs configured"));
}

async function loadAlerts() {
  const alerts = (((await api("/api/v1/alerts")) || {}).alerts || []).slice()
    .sort((x, y) => alertRank(x) - alertRank(y));
  const active = alerts.filter((a) => a.state !== "resolved" && a.state !== "inactive");
  if (alerts.length) renderTable("alerts", ALERT_COLUMNS, alerts, (a) => a.fingerprint);
  else document.getElementById("alerts").replaceChildren();
  setStatus("alert-status", alerts.length ? active.length + " active of " + alerts.length + " alerts" : "no alerts");
}

const ACCEL_COLUMNS = [
  ["host", "Host", (r) => r.host],
  ["cloud", "Cloud", (r) => r.cloud || "–"],
  ["devices", "Devices", (r) => fmtInt(r.devices), "num"],
  ["utilization", "Mean utilisation", (r) => fmtPercent(r.util, 1), "num"],
  ["power", "Power now", (r) => num(r.watts) === null ? "–" : fmtInt(r.watts) + " W", "num"],
  ["not_ok", "Not ok", (r) => fmtInt(r.not_ok), (r) => "num" + (num(r.not_ok) > 0 ? " bad" : "")],
  ["xid", "XID errors", (r) => fmtInt(r.xid), (r) => "num" + (num(r.xid) > 0 ? " bad" : "")],
];

async function loadAccelerators(hours) {
  if (meta === null) meta = await api("/ui/meta.json");
  const rows = await query(acceleratorSQL(meta.database, hours));
  if (rows.length) renderTable("accelerators", ACCEL_COLUMNS, rows, (r) => r.host);
  else document.getElementById("accelerators").replaceChildren();
  setStatus("accel-status", rows.length ? rows.length + " hosts, last " + hours + " h"
    : "no accelerator metrics in the last " + hours + " h");
}

async function refresh() {
  document.getElementById("banner").hidden = true;
  const hours = Number(document.getElementById("range").value);
  const jobs = [
    loadFleet(hours).catch((e) => setStatus("fleet-status", explain(e, "fleet"), true)),
    loadSlos().catch((e) => setStatus("slo-status", explain(e, "SLOs"), true)),
    loadAlerts().catch((e) => setStatus("alert-status", explain(e, "alerts"), true)),
    loadAccelerators(hours).catch((e) => setStatus("accel-status", explain(e, "accelerators"), true)),
  ];
  await Promise.all(jobs);
}

document.getElementById("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  meta = null;
  refresh();
});
document.getElementById("refresh").addEventListener("click", refresh);
document.getElementById("range").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
