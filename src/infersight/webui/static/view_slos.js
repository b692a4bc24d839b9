// SLOs: the list sorted by budget left (window data coverage beside it) and the detail page of one
// instance: budget (money as money), the burn-down over the window, burn rate per tier over time
// against its threshold, and the alert history of that SLO.
import { api, timedApi } from "./api.js";
import { chart } from "./charts.js";
import * as f from "./fmt.js";
import { href } from "./state.js";
import { historyTable } from "./view_alerts.js";

function groupText(g) {
  return f.labels(g) || "(whole SLO)";
}

function coverageText(c) {
  if (!c) return "–";
  return f.percent(c.fraction, 0) + " (" + f.int(c.minutes_with_data) + " of " + f.int(c.window_minutes) + " min)";
}

function coverageTip(c) {
  if (!c) return "";
  return "minutes with data in the budget window; first data " + (c.first_data_at ? f.when(c.first_data_at) : "never") +
    ", last " + (c.last_data_at ? f.when(c.last_data_at) : "never") + "; since first data " + f.percent(c.observed_fraction, 0);
}

// "$0.84 of $1.00" for a USD budget, "12 of 40 bad events allowed" for a ratio.
export function spentText(i) {
  const b = i.budget || {};
  if (b.unit === "USD") return f.usd(b.spent) + " of " + f.usd(b.value);
  if (b.unit === "USD/1M tokens") return (i.sli_text || f.usd(i.sli)) + " (target " + f.usd(b.value) + ")";
  if (b.spent === null || b.spent === undefined) return "–";
  const allowed = f.num(i.events) * f.num(b.value);
  return f.int(b.spent) + " bad events of " + Number(allowed.toPrecision(3)).toLocaleString("en-US") + " allowed";
}

function budgetLeft(i) {
  return i.budget_left_text || f.percent(i.budget_remaining, 1);
}

export async function render(page, params, ctx) {
  if (ctx.view === "slo") return detail(page, params, ctx);
  const head = f.el("div", null, "view-head");
  head.appendChild(f.el("h2", "Service level objectives"));
  page.appendChild(head);
  const status = f.el("p", "loading…", "status");
  status.id = "slo-status";
  page.appendChild(status);
  let data;
  try {
    data = await api("/api/v1/slos");
  } catch (err) {
    status.textContent = ctx.explain(err, "SLOs");
    status.classList.add("error");
    return;
  }
  let instances = (data.instances || []).slice();
  if (params.model) instances = instances.filter((i) => (i.group || {})["gen_ai.request.model"] === params.model);
  instances.sort((a, b) => (a.budget_remaining ?? Infinity) - (b.budget_remaining ?? Infinity) || a.slo.localeCompare(b.slo));
  const slos = data.slos || [];
  status.textContent = instances.length ? instances.length + " SLO instances of " + slos.length + " SLOs, lowest budget first" +
    (data.evaluated_at ? " · evaluated " + f.ago(data.evaluated_at) : "") + (params.model ? " · model " + params.model : "")
    : (slos.length ? slos.length + " SLOs, not evaluated yet" : "no SLOs configured (slo.paths)");
  const columns = [
    ["slo", "SLO", (i) => f.link(i.slo, href("slo", { range: ctx.rangeKey, name: i.slo, group: JSON.stringify(i.group || {}) }))],
    ["group", "Group", (i) => groupText(i.group), "wrap"],
    ["state", "State", (i) => i.state, (i) => "state-" + i.state],
    ["sli", "SLI", (i) => i.sli_text || "–", "num", (i) => "unit: " + i.unit],
    ["objective", "Objective", (i) => i.objective_percent === null ? "–" : i.objective_percent + "%", "num"],
    ["window", "Window", (i) => i.window],
    ["budget_left", "Budget left", (i) => budgetLeft(i), (i) => "num" + (i.budget_remaining !== null && i.budget_remaining < 0 ? " bad" : ""), (i) => spentText(i)],
    ["coverage", "Data coverage", (i) => coverageText(i.coverage), (i) => "num" + (i.coverage && i.coverage.fraction < 0.5 ? " warn" : ""), (i) => coverageTip(i.coverage)],
    ["burning", "Burning tiers", (i) => (i.tiers || []).filter((t) => t.active).map((t) => t.name + " (" + t.severity + ")").join(", ") || "–", "wrap"],
  ];
  if (instances.length) page.appendChild(f.el("div", null, "scroll")).appendChild(f.table(columns, instances, (i) => i.slo + " " + f.labels(i.group)));
}

// Groups compare by label name (an alert's labels spell cloud.provider as cloud_provider).
function labelName(k) {
  return k.replace(/[^A-Za-z0-9_]/g, "_");
}
function sameGroup(a, b) {
  const norm = (g) => f.labels(Object.fromEntries(Object.entries(g || {}).map(([k, v]) => [labelName(k), v])));
  return norm(a) === norm(b);
}
// An alert of the instance: every group label of the instance is one of the alert's labels (alerts
// also carry the SLO's own labels, e.g. team).
function alertOf(alertLabels, group) {
  return Object.entries(group || {}).every(([k, v]) => alertLabels[labelName(k)] === v);
}

async function detail(page, params, ctx) {
  const name = params.name;
  let group = {};
  try { group = JSON.parse(params.group || "{}"); } catch (e) { group = {}; }
  const head = f.el("div", null, "view-head");
  head.appendChild(f.link("← all SLOs", href("slos", { range: ctx.rangeKey })));
  head.appendChild(f.el("h2", "SLO " + name));
  head.appendChild(f.el("p", groupText(group), "status"));
  page.appendChild(head);
  // The history's last instant is the live evaluation: its instances are what /api/v1/slos/status lists.
  const [history, alerts] = await Promise.all([
    timedApi("/ui/slo_history.json?slo=" + encodeURIComponent(name) + "&points=24" +
      (params.span === "window" ? "" : "&seconds=" + ctx.range.seconds), "slo history"),
    api("/api/v1/alerts").catch(() => ({ alerts: [] })),
  ]);
  if (ctx.stale()) return;
  // The URL names the instance by its group, or (from an alert) by the alert's labels.
  const sane = Object.fromEntries(Object.entries(group).map(([k, v]) => [labelName(k), v]));
  const pick = (list, ok) => list.find((x) => ok(x) && sameGroup(x.group, group)) || list.find((x) => ok(x) && alertOf(sane, x.group));
  const inst = pick(history.instances || [], (i) => i.slo === name);
  const card = f.el("div", null, "cards");
  card.id = "slo-card";
  const item = (id, label, value, cls, tip) => {
    const d = f.el("div", null, "card " + (cls || ""));
    d.appendChild(f.el("span", label, "card-label"));
    const v = f.el("span", value, "card-value");
    v.id = id;
    if (tip) v.title = tip;
    d.appendChild(v);
    card.appendChild(d);
  };
  if (inst) {
    item("slo-state", "State", inst.state, "state-" + inst.state);
    item("slo-sli", "SLI (" + inst.window + ")", inst.sli_text || "–");
    item("slo-budget-left", "Budget left", budgetLeft(inst), inst.budget_remaining < 0 ? "bad" : "");
    item("slo-budget-spent", inst.unit === "USD" ? "Spent of budget" : "Budget used", spentText(inst));
    item("slo-coverage", "Window data coverage", coverageText(inst.coverage), "", coverageTip(inst.coverage));
    item("slo-objective", "Objective", (inst.objective_percent === null ? "–" : inst.objective_percent + "%") + " · " + inst.window);
  } else {
    card.appendChild(f.el("p", "no such SLO instance in the live status", "status error"));
  }
  page.appendChild(card);
  page.dataset.budgetRemaining = inst ? String(inst.budget_remaining) : "";

  const g = pick(history.groups || [], () => true);
  if (inst) group = inst.group;
  const xs = history.at || [];
  const grid = f.el("div", null, "grid");
  page.appendChild(grid);
  const whole = history.span_seconds >= history.period_seconds;
  const spanNote = f.el("p", (whole ? "the whole budget window (" + history.window + ")" : ctx.range.label) +
    " at " + xs.length + " instants, " + f.duration(history.span_seconds / Math.max(1, xs.length - 1)) +
    " apart; each a point-in-time evaluation by the SLO engine (as slo status --at) ", "status");
  spanNote.appendChild(whole ? f.link("show the " + ctx.range.label, href("slo", Object.assign({}, params, { span: "" })))
    : f.link("show the whole " + history.window + " window", href("slo", Object.assign({}, params, { span: "window" }))));
  page.appendChild(spanNote);
  const stepNote = whole ? history.window : ctx.range.label;
  chart(grid, { id: "slo-burndown", title: "Error budget left", note: stepNote, unit: "1",
    fmt: (v) => f.percent(v, Math.abs(v) >= 10 ? 0 : 1), x: xs,
    series: [{ label: "budget left", values: g ? g.budget_remaining : [] }], thresholds: [{ label: "budget exhausted", value: 0 }] });
  for (const t of history.tiers || []) {
    const s = g && g.tiers[t.name];
    chart(grid, { id: "slo-burn-" + t.name, title: "Burn rate, tier " + t.name + " (" + t.severity + ")",
      note: "fires when both windows burn over " + Number(t.factor.toPrecision(4)) + "×", unit: "×",
      fmt: (v) => Number(v).toPrecision(3) + "×", x: xs,
      series: [{ label: t.long_window + " window", values: s ? s.long : [] }, { label: t.short_window + " window", values: s ? s.short : [] }],
      thresholds: [{ label: "threshold " + Number(t.factor.toPrecision(4)) + "×", value: t.factor }] });
  }

  // Alert history: the engine's alerts of this SLO and group (firing, pending and recently resolved),
  // the alert log's transitions of this instance over the span shown (and whom each was sent to),
  // then the periods the evaluation history shows each tier over its threshold in both windows.
  const sec = f.el("section");
  sec.id = "slo-alerts";
  sec.appendChild(f.el("h2", "Alert history"));
  page.appendChild(sec);
  const mine = (alerts.alerts || []).filter((a) => a.labels.slo === name && alertOf(a.labels, group));
  const cols = [
    ["tier", "Tier", (a) => a.labels.tier || "–"],
    ["severity", "Severity", (a) => a.labels.severity || "–"],
    ["state", "State", (a) => a.state + (a.silenced ? " (silenced)" : "") + (a.inhibited ? " (inhibited)" : ""), (a) => "state-" + a.state],
    ["since", "Started", (a) => f.when(a.startsAt || a.activeAt), null, (a) => a.startsAt],
    ["ended", "Ended", (a) => a.state === "resolved" ? f.when(a.endsAt) : "–"],
    ["summary", "Summary", (a) => (a.annotations && a.annotations.summary) || "", "wrap"],
  ];
  sec.appendChild(f.el("p", mine.length ? mine.length + " alerts the engine holds for this SLO" : "the engine holds no alerts for this SLO", "status"));
  if (mine.length) sec.appendChild(f.el("div", null, "scroll")).appendChild(f.table(cols, mine, (a) => a.fingerprint));
  const since = Math.max(60, Math.min(365 * 86400, Math.round(history.span_seconds || ctx.range.seconds)));
  const logged = await api("/api/v1/alerts/history?slo=" + encodeURIComponent(name) + "&limit=200&since_seconds=" + since)
    .catch((err) => ({ error: ctx.explain(err, "alert log") }));
  if (ctx.stale()) return;
  const transitions = (logged.entries || []).filter((e) => alertOf(e.labels, group));
  const logNote = f.el("p", logged.error ? logged.error : transitions.length ? transitions.length +
    " transitions in the alert log over the " + f.duration(since) + " shown, newest first" : "no transitions in the alert log over the " +
    f.duration(since) + " shown", "status" + (logged.error ? " error" : ""));
  logNote.id = "slo-alert-log";
  sec.appendChild(logNote);
  if (transitions.length) sec.appendChild(f.el("div", null, "scroll")).appendChild(historyTable(transitions, ctx, false));
  const periods = [];
  for (const t of history.tiers || []) {
    const s = g && g.tiers[t.name];
    if (!s) continue;
    let start = null;
    xs.forEach((at, i) => {
      const over = s.long[i] !== null && s.short[i] !== null && s.long[i] > t.factor && s.short[i] > t.factor;
      if (over && start === null) start = at;
      if ((!over || i === xs.length - 1) && start !== null) { periods.push({ tier: t.name, severity: t.severity, from: start, to: over ? null : at }); start = null; }
    });
  }
  sec.appendChild(f.el("p", periods.length ? "tiers over their threshold at the sampled instants (≈, " + f.duration((xs[1] - xs[0]) || 60) + " apart):"
    : "no tier over its threshold at the sampled instants", "status"));
  if (periods.length) {
    sec.appendChild(f.table([
      ["tier", "Tier", (p) => p.tier], ["severity", "Severity", (p) => p.severity],
      ["from", "From ≈", (p) => f.when(p.from)], ["to", "To ≈", (p) => p.to === null ? "still over" : f.when(p.to)],
    ], periods, (p) => p.tier + " " + p.from));
  }
}
