// SQL for the query API (POST /api/v1/query: one sandboxed SELECT over the telemetry database).
// The rollups are described in docs/ROLLUPS.md; raw metrics follow the OTel ClickHouse schema.

export function ident(name) {
  return "`" + String(name).replace(/`/g, "``") + "`";
}

export function str(v) {
  return "'" + String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
}

export function table(db, name) {
  return ident(db) + "." + ident(name);
}

// Ranges the page offers (URL ?range=), their chart step (about 60-170 points) and hours for cost.json.
export const RANGES = {
  "1h": { seconds: 3600, step: 60, label: "last 1 h" },
  "6h": { seconds: 6 * 3600, step: 300, label: "last 6 h" },
  "24h": { seconds: 86400, step: 900, label: "last 24 h" },
  "7d": { seconds: 7 * 86400, step: 3600, label: "last 7 days" },
};

export function range(key) {
  return RANGES[key] || RANGES["6h"];
}

// The range a view reads, with `rollup`: whether accelerator and node data come from the per-minute rollup
// infersight_accelerators_1m (ranges over an hour) or the raw gauges (the last hour, at the points' own
// times). `?source=raw` in the address forces the raw tables (bench/ui.py compares both).
export function rangeOf(key, params) {
  const r = RANGES[key] || RANGES["6h"];
  return Object.assign({}, r, { key: key, rollup: r.seconds > 3600 && (params || {}).source !== "raw" });
}
const ACCEL = "infersight_accelerators_1m";
// Conditions on the rollup's rows over the range (the minute the range starts in included) and filters.
const ACCEL_DIMS = { cloud: "CloudProvider", region: "CloudRegion", host: "HostName" };
function accelWhere(r, filters) {
  const parts = ["Minute >= toStartOfMinute(now() - INTERVAL " + r.seconds + " SECOND)"];
  for (const [k, col] of Object.entries(ACCEL_DIMS)) {
    if (filters && filters[k]) parts.push(col + " = " + str(filters[k]));
  }
  return parts.join(" AND ");
}

// Filters of the rollups' dimensions: {cloud, region, model, host} → SQL condition.
const ROLLUP_DIMS = { cloud: "CloudProvider", region: "CloudRegion", model: "Model", host: "HostName", kind: "ServerKind" };
export function rollupWhere(r, filters, minute) {
  const parts = [(minute || "Minute") + " >= now() - INTERVAL " + r.seconds + " SECOND"];
  for (const [k, col] of Object.entries(ROLLUP_DIMS)) {
    if (filters && filters[k]) parts.push(col + " = " + str(filters[k]));
  }
  return parts.join(" AND ");
}

const RES_DIMS = { cloud: "cloud.provider", region: "cloud.region", host: "host.name" };
export function resourceWhere(r, filters) {
  const parts = ["TimeUnix >= now() - INTERVAL " + r.seconds + " SECOND"];
  for (const [k, attr] of Object.entries(RES_DIMS)) {
    if (filters && filters[k]) parts.push("ResourceAttributes[" + str(attr) + "] = " + str(filters[k]));
  }
  return parts.join(" AND ");
}

export function bucket(column, step) {
  return "toUnixTimestamp(toStartOfInterval(" + column + ", INTERVAL " + step + " SECOND))";
}

// ---------------------------------------------------------------------------------------------------
// Percentiles are not computed here: the page reads them from /ui/percentiles.json (percentiles.js), which
// answers with infersight.quantiles, the one implementation.

// ---------------------------------------------------------------------------------------------------
// Requests per group (and optionally per time bucket) from infersight_requests_1m.
export function requestsSQL(db, where, dims, step, withCost) {
  const keys = dims.slice();
  const cols = dims.slice();
  if (step) { cols.push(bucket("Minute", step) + " AS t"); keys.push("t"); }
  return "SELECT " + cols.join(", ") + (cols.length ? ", " : "") + "sum(Requests) AS requests, sum(BadRequests) AS bad, " +
    "sum(InputTokens) AS input, sum(OutputTokens) AS output, sum(CachedTokens) AS cached" +
    (withCost ? ", toFloat64(sum(ReportedCostUSD)) AS reported_cost" : "") + " FROM " +
    table(db, "infersight_requests_1m") + " WHERE " + where +
    (keys.length ? " GROUP BY " + keys.join(", ") + " ORDER BY " + keys.join(", ") : "");
}

// Hosts seen through their light, per-host series: host collector, inference scrapes, agent self
// metrics, collector and part up gauges (a node whose collectors all fail still reports those); GPU and
// NeuronCore hosts are also seen by acceleratorSQL, which reads their devices anyway.
const GAUGE_PRESENCE = ["system.cpu.utilization", "system.memory.utilization", "infersight.inference.endpoint.up",
  "infersight.collector.up", "infersight.gpu.reachable", "infersight.neuron.monitor.up", "infersight.probe.up"];
const SUM_PRESENCE = ["infersight.agent.points.exported"];
export function nodesSQL(db, r, filters) {
  if (r.rollup) {
    return "SELECT HostName AS host, any(CloudProvider) AS cloud, any(CloudRegion) AS region, max(HostType) AS host_type, " +
      "toUnixTimestamp(max(LastSeen)) AS last_seen FROM " + table(db, ACCEL) + " WHERE Device = '' AND " + accelWhere(r, filters) +
      " AND HostName != '' GROUP BY host ORDER BY cloud, region, host";
  }
  const w = resourceWhere(r, filters);
  const sel = (tbl, names) => "SELECT ResourceAttributes['host.name'] AS host, " +
    "ResourceAttributes['cloud.provider'] AS cloud, ResourceAttributes['cloud.region'] AS region, " +
    "ResourceAttributes['host.type'] AS host_type, max(TimeUnix) AS last FROM " + table(db, tbl) +
    " WHERE MetricName IN (" + names.map(str).join(", ") + ") AND " + w + " GROUP BY host, cloud, region, host_type";
  return "SELECT host, any(cloud) AS cloud, any(region) AS region, max(host_type) AS host_type, " +
    "toUnixTimestamp(max(last)) AS last_seen FROM (" + sel("otel_metrics_gauge", GAUGE_PRESENCE) + " UNION ALL " +
    sel("otel_metrics_sum", SUM_PRESENCE) + ") WHERE host != '' GROUP BY host ORDER BY cloud, region, host";
}

// Accelerator activity in one scan of the device gauges: GPUs (engine utilisation, GPM tensor pipe)
// and NeuronCores, per host over the range (rows with t = 0: devices, util, tensor, where it runs and
// when it was last seen) and, with `step`, per cloud and time bucket (t > 0, host empty).
export function acceleratorSQL(db, r, filters, step) {
  if (r.rollup) {
    const groups = step ? "GROUPING SETS ((host, cloud, region, host_type), (t, cloud))" : "host, cloud, region, host_type";
    return "SELECT HostName AS host, CloudProvider AS cloud, CloudRegion AS region, HostType AS host_type, " +
      (step ? bucket("Minute", step) : "0") + " AS t, uniqExactIf(Device, UtilCount + NeuronCount > 0) AS devices, " +
      "sum(UtilSum + NeuronSum) / sum(UtilCount + NeuronCount) AS util, " +
      "if(sum(TensorCount) > 0, sum(TensorSum) / sum(TensorCount), NULL) AS tensor, toUnixTimestamp(max(LastSeen)) AS last_seen " +
      "FROM " + table(db, ACCEL) + " WHERE Device != '' AND UtilCount + NeuronCount + TensorCount > 0 AND " + accelWhere(r, filters) +
      " GROUP BY " + groups + " ORDER BY t, host";
  }
  const w = resourceWhere(r, filters);
  const tensor = "MetricName = 'infersight.gpu.pipe.utilization'";
  const sets = step ? "GROUPING SETS ((host, cloud, region, host_type), (t, cloud))" : "host, cloud, region, host_type";
  return "SELECT ResourceAttributes['host.name'] AS host, ResourceAttributes['cloud.provider'] AS cloud, " +
    "ResourceAttributes['cloud.region'] AS region, ResourceAttributes['host.type'] AS host_type, " +
    (step ? bucket("TimeUnix", step) : "0") + " AS t, " +
    "uniqExactIf(concat(MetricName, Attributes['hw.id'], Attributes['infersight.neuron.core']), NOT " + tensor + ") AS devices, " +
    "avgIf(Value, NOT " + tensor + ") AS util, if(countIf(" + tensor + ") > 0, avgIf(Value, " + tensor + "), NULL) AS tensor, " +
    "toUnixTimestamp(max(TimeUnix)) AS last_seen FROM " + table(db, "otel_metrics_gauge") +
    " WHERE ((MetricName = 'hw.gpu.utilization' AND Attributes['hw.gpu.task'] IN ('', 'general')) OR " +
    "MetricName = 'infersight.neuron.core.utilization' OR (" + tensor + " AND Attributes['infersight.gpu.pipe'] = 'tensor')) AND " + w +
    " GROUP BY " + sets + " ORDER BY t, host";
}

// Host CPU and memory from the host collector (docs/collectors/host.md), latest and per bucket.
export function hostSQL(db, r, filters, step) {
  if (r.rollup) {
    return "SELECT HostName AS host, " + (step ? bucket("Minute", step) : "0") + " AS t, " +
      "1 - sum(CpuIdleSum) / sum(CpuIdleCount) * if(sum(CpuIdleCount) > 0, 1, nan) AS cpu, sum(MemorySum) / sum(MemoryCount) AS memory " +
      "FROM " + table(db, ACCEL) + " WHERE Device = '' AND CpuIdleCount + MemoryCount > 0 AND " + accelWhere(r, filters) +
      " GROUP BY host, t ORDER BY host, t";
  }
  const w = resourceWhere(r, filters);
  return "SELECT ResourceAttributes['host.name'] AS host, " + (step ? bucket("TimeUnix", step) : "0") + " AS t, " +
    "1 - avgIf(Value, MetricName = 'system.cpu.utilization' AND Attributes['cpu.mode'] = 'idle') * " +
    "if(countIf(MetricName = 'system.cpu.utilization' AND Attributes['cpu.mode'] = 'idle') > 0, 1, nan) AS cpu, " +
    "avgIf(Value, MetricName = 'system.memory.utilization' AND Attributes['system.memory.state'] = 'used') AS memory " +
    "FROM " + table(db, "otel_metrics_gauge") + " WHERE MetricName IN ('system.cpu.utilization', " +
    "'system.memory.utilization') AND " + w + " GROUP BY host, t ORDER BY host, t";
}

// Per device timelines of one host: every accelerator gauge the collectors send, averaged per bucket
// (metric, title, unit, extra condition on the raw gauge, the rollup's <column>Sum/<column>Count).
export const DEVICE_GAUGES = [
  ["hw.gpu.utilization", "Engine utilisation", "1", "Attributes['hw.gpu.task'] IN ('', 'general')", "Util"],
  ["infersight.gpu.sm.activity", "SM activity", "1", "", "Sm"],
  ["infersight.gpu.pipe.utilization", "Tensor pipe active", "1", "Attributes['infersight.gpu.pipe'] = 'tensor'", "Tensor"],
  ["infersight.gpu.dram.activity", "DRAM activity", "1", "", "Dram"],
  ["hw.power", "Power", "W", "", "Power"],
  ["hw.temperature", "Temperature", "°C", "Attributes['hw.sensor_location'] IN ('', 'gpu')", "Temp"],
  ["hw.gpu.memory.utilization", "Memory used", "1", "", "MemUtil"],
  ["infersight.neuron.core.utilization", "NeuronCore utilisation", "1", "", "Neuron"],
];
export function deviceSQL(db, r, host, step) {
  if (r.rollup) {
    const cols = DEVICE_GAUGES.map(([name, , , , c]) => "(" + str(name) + ", " + c + "Sum, " + c + "Count)").join(", ");
    return "SELECT g.1 AS metric, Device AS device, " + bucket("Minute", step) + " AS t, sum(g.2) / sum(g.3) AS v FROM " +
      table(db, ACCEL) + " ARRAY JOIN [" + cols + "] AS g WHERE Device != '' AND g.3 > 0 AND " + accelWhere(r, { host: host }) +
      " GROUP BY metric, device, t ORDER BY metric, device, t";
  }
  const cond = DEVICE_GAUGES.map(([name, , , extra]) => "(MetricName = " + str(name) + (extra ? " AND " + extra : "") + ")");
  return "SELECT MetricName AS metric, if(Attributes['hw.id'] != '', Attributes['hw.id'], " +
    "concat('nc', Attributes['infersight.neuron.core'])) AS device, " + bucket("TimeUnix", step) + " AS t, avg(Value) AS v " +
    "FROM " + table(db, "otel_metrics_gauge") + " WHERE (" + cond.join(" OR ") + ") AND " +
    resourceWhere(r, { host: host }) + " GROUP BY metric, device, t ORDER BY metric, device, t";
}

// Health per device of one host: latest hw.status state, XIDs in the range (delta or cumulative counters).
// From the rollup: the latest state at its time; XIDs per series: delta counts plus, for cumulative
// counters, max − min over the range (and the first value when the counter started in it; resets inside
// the range are not seen there, the raw query counts them).
export function deviceHealthSQL(db, r, host) {
  if (r.rollup) {
    const a = table(db, ACCEL);
    const w = accelWhere(r, { host: host });
    const status = "SELECT Device AS device, argMax(State, StatusTime) AS state, toUnixTimestamp(max(StatusTime)) AS last FROM " + a +
      " WHERE State != '' AND Device != '' AND " + w + " GROUP BY device";
    const inc = "sum(XidDelta) + if(sum(XidSamples) > 0, maxIf(XidMax, XidSamples > 0) - minIf(XidMin, XidSamples > 0) + " +
      "if(minIf(XidStart, XidSamples > 0) >= now() - INTERVAL " + r.seconds + " SECOND, minIf(XidMin, XidSamples > 0), 0), 0)";
    const xid = "SELECT device, sum(inc) AS xid, groupUniqArrayIf(code, inc > 0) AS codes FROM (SELECT Device AS device, XidSeries AS code, " +
      inc + " AS inc FROM " + a + " WHERE XidSeries != '' AND " + w + " GROUP BY device, code) GROUP BY device";
    return "SELECT st.device AS device, st.state AS state, st.last AS last, if(x.found = 1, x.xid, 0) AS xid, " +
      "if(x.found = 1, x.codes, []) AS codes FROM (" + status + ") AS st LEFT JOIN (SELECT *, 1 AS found FROM (" + xid +
      ")) AS x USING (device) ORDER BY device";
  }
  const s = table(db, "otel_metrics_sum");
  const w = resourceWhere(r, { host: host });
  const status = "SELECT Attributes['hw.id'] AS device, argMax(Attributes['hw.state'], TimeUnix) AS state, " +
    "toUnixTimestamp(max(TimeUnix)) AS last FROM " + s + " WHERE MetricName = 'hw.status' AND Value = 1 AND " + w +
    " GROUP BY device";
  const xid = "SELECT device, sum(inc) AS xid, groupUniqArrayIf(code, inc > 0) AS codes FROM (SELECT Attributes['hw.id'] AS device, " +
    "Attributes['hw.gpu.xid'] AS code, if(AggregationTemporality = 1, Value, if(row_number() OVER w = 1, " +
    "if(StartTimeUnix >= now() - INTERVAL " + r.seconds + " SECOND, Value, 0), if(Value >= lagInFrame(Value) OVER w, " +
    "Value - lagInFrame(Value) OVER w, Value))) AS inc FROM " + s + " WHERE MetricName = 'hw.errors' AND " +
    "Attributes['error.type'] = 'xid' AND " + w + " WINDOW w AS (PARTITION BY ResourceAttributes, Attributes " +
    "ORDER BY TimeUnix ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) GROUP BY device";
  return "SELECT st.device AS device, st.state AS state, st.last AS last, if(x.found = 1, x.xid, 0) AS xid, " +
    "if(x.found = 1, x.codes, []) AS codes FROM (" + status + ") AS st LEFT JOIN (SELECT *, 1 AS found FROM (" + xid +
    ")) AS x USING (device) ORDER BY device";
}

// Agent health (docs/agent.md, infersight.agent.*): latest value per host of the cumulative counters.
export const AGENT_METRICS = [
  ["infersight.agent.spool.size", "spool_bytes"],
  ["infersight.agent.spool.batches", "spool_batches"],
  ["infersight.agent.spool.dropped_points", "dropped_points"],
  ["infersight.agent.export.failures", "export_failures"],
  ["infersight.agent.export.rejected_points", "rejected_points"],
  ["infersight.agent.collection.errors", "collection_errors"],
  ["infersight.agent.points.exported", "exported_points"],
];
export function agentSQL(db, r, filters) {
  const per = "SELECT ResourceAttributes['host.name'] AS host, MetricName AS metric, Attributes AS a, " +
    "argMax(Value, TimeUnix) AS v, max(TimeUnix) AS last FROM " + table(db, "otel_metrics_sum") +
    " WHERE MetricName IN (" + AGENT_METRICS.map((m) => str(m[0])).join(", ") + ") AND " + resourceWhere(r, filters) +
    " GROUP BY host, metric, a";
  return "SELECT host, toUnixTimestamp(max(last)) AS last_report, " +
    AGENT_METRICS.map(([m, n]) => "sumIf(v, metric = " + str(m) + ") AS " + n + ", countIf(metric = " + str(m) + ") AS has_" + n).join(", ") +
    " FROM (" + per + ") GROUP BY host ORDER BY host";
}

// Collectors and parts that are down now (issue "collectors that fail loudly", docs/agent.md): the latest
// infersight.collector.up per collector and the per-part up gauges (a GPU NVML lost, an inference endpoint,
// neuron-monitor, a probe endpoint) at 0 in the last hour of the range, with the collector's reason: the
// error.type of infersight.agent.collection.errors that counted last. Rows: host, metric, name (collector),
// type, part, reason, since (first point of the range at the latest count), last.
export const PART_GAUGES = ["infersight.gpu.reachable", "infersight.inference.endpoint.up", "infersight.neuron.monitor.up",
  "infersight.probe.up"];
export function collectorsSQL(db, r, filters) {
  const recent = { seconds: Math.min(r.seconds, 3600) };
  const w = resourceWhere(recent, filters);
  const downs = "SELECT ResourceAttributes['host.name'] AS host, MetricName AS metric, Attributes['collector.name'] AS name, " +
    "Attributes['collector.type'] AS type, multiIf(Attributes['hw.id'] != '', Attributes['hw.id'], " +
    "Attributes['infersight.probe.endpoint'] != '', Attributes['infersight.probe.endpoint'], Attributes['server.address']) AS part, " +
    "argMax(Value, TimeUnix) AS up, toUnixTimestamp(max(TimeUnix)) AS last FROM " + table(db, "otel_metrics_gauge") +
    " WHERE MetricName IN (" + ["infersight.collector.up"].concat(PART_GAUGES).map(str).join(", ") + ") AND " + w +
    " GROUP BY host, metric, name, type, part HAVING up < 1";
  const reasons = "SELECT host, name, argMax(reason, changed) AS reason FROM (SELECT ResourceAttributes['host.name'] AS host, " +
    "Attributes['collector.name'] AS name, Attributes['error.type'] AS reason, argMin(TimeUnix, (-Value, TimeUnix)) AS changed FROM " +
    table(db, "otel_metrics_sum") + " WHERE MetricName = 'infersight.agent.collection.errors' AND " + w +
    " GROUP BY host, name, reason) GROUP BY host, name";
  return "SELECT d.host AS host, d.metric AS metric, d.name AS name, d.type AS type, d.part AS part, " +
    "if(d.metric = 'infersight.collector.up', x.reason, '') AS reason, d.last AS last FROM (" + downs + ") AS d " +
    "LEFT JOIN (" + reasons + ") AS x ON d.host = x.host AND d.name = x.name ORDER BY host, metric, name, part";
}

// What a down row says: "collector down: nvml_init", "GPU GPU-… unreachable", "endpoint 10.0.0.7:8000 down", …
export function downText(x) {
  if (x.metric === "infersight.collector.up") return "collector down: " + (x.reason || "unknown");
  if (x.metric === "infersight.gpu.reachable") return "GPU " + x.part + " unreachable";
  if (x.metric === "infersight.inference.endpoint.up") return "endpoint " + (x.part || "?") + " down";
  if (x.metric === "infersight.neuron.monitor.up") return "neuron-monitor down";
  return "probe " + (x.part || "?") + " down";
}
