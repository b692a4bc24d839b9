// Accelerators and nodes: every host with last seen, CPU and memory (host collector), accelerators
// and agent health (spool, dropped points, export errors); for the selected host its timelines per
// GPU/NeuronCore (utilisation, SM/tensor/DRAM activity, power, temperature, memory) and device health
// (state and XIDs).
import { meta, query } from "./api.js";
import { chart, pivot, steps } from "./charts.js";
import * as f from "./fmt.js";
import { DEVICE_GAUGES, acceleratorSQL, agentSQL, collectorsSQL, deviceHealthSQL, deviceSQL, hostSQL, nodesSQL } from "./sql.js";
import { href } from "./state.js";
import { STALE_SECONDS, downsByHost, filterBar, healthCell, healthTip, mergeNodes } from "./view_fleet.js";

export async function render(page, params, ctx) {
  const m = await meta();
  const r = ctx.range;
  const filters = { cloud: params.cloud, region: params.region };
  const head = f.el("div", null, "view-head");
  head.appendChild(f.el("h2", "Accelerators and nodes"));
  head.appendChild(f.el("p", r.label + " · CPU and memory from the host collector, means per host over the range", "status"));
  page.appendChild(head);
  const [presence, accelRows, host, agent, downs] = await Promise.all([
    query(nodesSQL(m.database, r, filters), "nodes"),
    query(acceleratorSQL(m.database, r, filters, 0), "accelerators"),
    query(hostSQL(m.database, r, filters, 0), "host"),
    query(agentSQL(m.database, r, filters), "agent health"),
    query(collectorsSQL(m.database, r, filters), "collectors down"),
  ]);
  if (ctx.stale()) return;
  const { nodes, accel } = mergeNodes(presence, accelRows);
  filterBar(page, params, { cloud: Array.from(new Set(nodes.map((n) => n.cloud).filter((x) => x))).sort(),
    region: Array.from(new Set(nodes.map((n) => n.region).filter((x) => x))).sort() });
  const nowS = Date.now() / 1000;
  const A = new Map(accel.map((x) => [x.host, x]));
  const H = new Map();
  for (const x of host) H.set(x.host, x);  // one row per host over the whole range
  const G = new Map(agent.map((x) => [x.host, x]));
  const D = downsByHost(downs);
  const status = f.el("p", null, "status");
  status.id = "nodes-status";
  page.appendChild(status);
  status.textContent = nodes.length ? nodes.length + " nodes, " + r.label : "no node reported in the " + r.label + " — is an agent running? (make run starts one; infersight demo simulates a fleet)";
  const agentCell = (n, col, fmt) => {
    const a = G.get(n.host);
    // A counter the agent has not reported has not counted anything yet (it appears with its first increment).
    return a ? fmt(f.num(a["has_" + col]) ? a[col] : 0) : "–";
  };
  const cols = [
    ["host", "Host", (n) => f.link(n.host, href("nodes", Object.assign({}, params, { range: ctx.rangeKey, host: n.host })))],
    ["where", "Cloud / region", (n) => [n.cloud, n.region].filter((x) => x).join(" / ") || "–"],
    ["type", "Instance", (n) => n.host_type || "–"],
    ["last_seen", "Last seen", (n) => f.ago(n.last_seen, nowS), (n) => nowS - n.last_seen > STALE_SECONDS ? "bad" : "", (n) => f.when(n.last_seen)],
    ["cpu", "CPU", (n) => H.has(n.host) ? f.percent(H.get(n.host).cpu, 0) : "–", "num", null, "busy share of all CPUs (1 − idle), mean"],
    ["memory", "Memory", (n) => H.has(n.host) ? f.percent(H.get(n.host).memory, 0) : "–", "num", null, "used share of physical memory, mean"],
    ["devices", "Accel.", (n) => A.has(n.host) ? f.int(A.get(n.host).devices) : "–", "num"],
    ["util", "Util / tensor", (n) => A.has(n.host) ? f.percent(A.get(n.host).util, 0) + " / " + f.percent(A.get(n.host).tensor, 0) : "–", "num"],
    ["health", "Collectors", (n) => healthCell(D.get(n.host) || []), (n) => D.has(n.host) ? "bad" : "state-ok",
      (n) => healthTip(D.get(n.host) || []), "infersight.collector.up and the per-part up gauges, latest in the last hour"],
    ["spool", "Spool", (n) => agentCell(n, "spool_bytes", f.bytes), "num", null, "bytes waiting in the agent's spool (latest)"],
    ["dropped", "Dropped pts", (n) => agentCell(n, "dropped_points", f.int), (n) => "num" + (G.has(n.host) && f.num(G.get(n.host).dropped_points) > 0 ? " bad" : ""), null, "points the spool dropped since the agent started"],
    ["export_errors", "Export errors", (n) => agentCell(n, "export_failures", f.int), (n) => "num" + (G.has(n.host) && f.num(G.get(n.host).export_failures) > 0 ? " warn" : ""), null, "failed export attempts since the agent started"],
  ];
  if (nodes.length) page.appendChild(f.el("div", null, "scroll")).appendChild(f.table(cols, nodes, (n) => n.host,
    { rowClass: (n) => (n.host === params.host ? "selected" : "") }));
  const selected = params.host || (nodes.length === 1 ? nodes[0].host : "");
  if (!selected) {
    page.appendChild(f.el("p", "pick a host for its per-device timelines", "status"));
    return;
  }
  await hostDetail(page, m, r, selected, nowS, ctx);
}

async function hostDetail(page, m, r, host, nowS, ctx) {
  const sec = f.el("section");
  sec.id = "host-detail";
  sec.appendChild(f.el("h2", "Host " + host));
  page.appendChild(sec);
  const [dev, health, hostT] = await Promise.all([
    query(deviceSQL(m.database, r, host, r.step), "devices over time"),
    query(deviceHealthSQL(m.database, r, host), "device health"),
    query(hostSQL(m.database, r, { host: host }, r.step), "host over time"),
  ]);
  if (ctx.stale()) return;
  const xs = steps(r.seconds, r.step, nowS);
  const per = f.duration(r.step) + " means";
  const grid = f.el("div", null, "grid");
  sec.appendChild(grid);
  if (hostT.length) {
    const cpu = pivot(hostT, () => "CPU busy", (x) => f.num(x.cpu), xs).series;
    const mem = pivot(hostT, () => "memory used", (x) => f.num(x.memory), xs).series;
    chart(grid, { id: "host-cpu-memory", title: "CPU and memory", note: per, unit: "1", fmt: (v) => f.percent(v, 0), x: xs, series: cpu.concat(mem), yRange: [0, 1] });
  }
  const fmtOf = (unit) => unit === "1" ? (v) => f.percent(v, 0) : unit === "W" ? (v) => f.rate(v, "W") : (v) => f.rate(v, unit);
  for (const [name, title, unit] of DEVICE_GAUGES) {
    const rows = dev.filter((x) => x.metric === name);
    if (!rows.length) continue;
    const s = pivot(rows, (x) => x.device, (x) => f.num(x.v), xs).series;
    chart(grid, { id: "dev-" + name.replace(/[^a-z0-9]+/g, "-"), title: title + " per device", note: per, unit: unit, fmt: fmtOf(unit), x: xs, series: s,
      yRange: unit === "1" ? [0, 1] : undefined });
  }
  const hs = f.el("section");
  hs.id = "device-health";
  hs.appendChild(f.el("h3", "Device health"));
  hs.appendChild(f.el("p", health.length ? "latest hw.status state and XID errors in the " + r.label : "no hw.status from this host", "status"));
  if (health.length) {
    hs.appendChild(f.table([
      ["device", "Device", (x) => x.device],
      ["state", "State", (x) => x.state || "–", (x) => x.state && x.state !== "ok" ? "bad" : "state-ok"],
      ["xid", "XID errors", (x) => f.int(x.xid), (x) => "num" + (f.num(x.xid) > 0 ? " bad" : "")],
      ["codes", "XID codes", (x) => (x.codes || []).filter((c) => c).join(", ") || "–"],
      ["last", "Reported", (x) => f.ago(x.last, nowS)],
    ], health, (x) => x.device, { rowClass: (x) => x.state && x.state !== "ok" ? "stale" : "" }));
  }
  sec.appendChild(hs);
}
