// Alerts: firing, pending, silenced and inhibited apart (a silenced or inhibited alert is not
// "active"), recently resolved ones, the history from the alert log (every firing and resolved
// transition and whom it was sent to), what the demo's webhook sink received, and silences.
import { api, meta } from "./api.js";
import * as f from "./fmt.js";
import { href } from "./state.js";

const TIER_LABELS = ["slo", "alertname", "severity", "tier", "long_window", "short_window", "burn_rate_threshold"];
const SEVERITY_ORDER = ["page", "critical", "ticket", "warning"];

// Which box an alert goes in: silenced and inhibited first (they do not notify), then its state.
export function bucketOf(a) {
  if (a.state === "resolved" || a.state === "inactive") return "resolved";
  if (a.silenced) return "silenced";
  if (a.inhibited) return "inhibited";
  return a.state === "firing" ? "firing" : "pending";
}

const BOXES = [
  ["firing", "Firing", "notifying now"],
  ["pending", "Pending", "over the threshold, waiting for the tier's for: duration"],
  ["silenced", "Silenced", "firing or pending, matched by a silence: no notifications"],
  ["inhibited", "Inhibited", "a faster tier of the same SLO fires: no notifications for this one"],
  ["resolved", "Resolved (recent)", "recently resolved alerts the engine still holds (all of them: History below)"],
];

function rank(a) {
  const sev = SEVERITY_ORDER.indexOf(a.labels.severity);
  return (sev < 0 ? 9 : sev);
}

export async function render(page, params, ctx) {
  const head = f.el("div", null, "view-head");
  head.appendChild(f.el("h2", "Alerts"));
  page.appendChild(head);
  const status = f.el("p", "loading…", "status");
  status.id = "alert-status";
  page.appendChild(status);
  let alerts, silences, history, info;
  try {
    [alerts, silences, history, info] = await Promise.all([api("/api/v1/alerts"), api("/api/v1/silences"),
      api("/api/v1/alerts/history?limit=" + HISTORY_LIMIT + "&since_seconds=" + historySeconds(ctx)), meta()]);
  } catch (err) {
    status.textContent = ctx.explain(err, "alerts");
    status.classList.add("error");
    return;
  }
  const list = (alerts.alerts || []).slice().sort((x, y) => rank(x) - rank(y) || String(x.startsAt).localeCompare(String(y.startsAt)));
  const by = Object.fromEntries(BOXES.map(([k]) => [k, []]));
  for (const a of list) by[bucketOf(a)].push(a);
  status.textContent = list.length ? BOXES.map(([k, title]) => by[k].length + " " + title.split(" ")[0].toLowerCase()).join(", ") : "no alerts";
  const counts = f.el("div", null, "cards");
  counts.id = "alert-counts";
  for (const [k, title, tip] of BOXES) {
    const c = f.el("div", null, "card " + (k === "firing" && by[k].length ? "bad" : ""));
    c.title = tip;
    c.appendChild(f.el("span", title, "card-label"));
    const v = f.el("span", String(by[k].length), "card-value");
    v.id = "count-" + k;
    c.appendChild(v);
    counts.appendChild(c);
  }
  page.appendChild(counts);
  const columns = [
    ["slo", "SLO", (a) => a.labels.slo ? f.link(a.labels.slo, href("slo", { range: ctx.rangeKey, name: a.labels.slo, group: JSON.stringify(groupOf(a)) })) : (a.labels.alertname || "–")],
    ["tier", "Tier", (a) => a.labels.tier || "–"],
    ["severity", "Severity", (a) => a.labels.severity || "–"],
    ["group", "Group", (a) => f.labels(a.labels, TIER_LABELS), "wrap"],
    ["since", "Since", (a) => f.ago(a.startsAt || a.activeAt), null, (a) => f.when(a.startsAt || a.activeAt)],
    ["summary", "Summary", (a) => (a.annotations && (a.annotations.summary || a.annotations.description)) || "", "wrap"],
    ["action", "", (a) => silenceButton(a, page)],
  ];
  for (const [k, title, tip] of BOXES) {
    const sec = f.el("section");
    sec.id = "alerts-" + k;
    sec.appendChild(f.el("h3", title + " (" + by[k].length + ")"));
    sec.appendChild(f.el("p", tip, "status"));
    if (by[k].length) {
      const cols = k === "resolved" ? columns.slice(0, 4).concat([["ended", "Ended", (a) => f.ago(a.endsAt), null, (a) => f.when(a.endsAt)]]) : columns;
      sec.appendChild(f.el("div", null, "scroll")).appendChild(f.table(cols, by[k], (a) => a.fingerprint, { rowClass: () => "state-row-" + k }));
    }
    page.appendChild(sec);
  }
  const hist = f.el("section");
  hist.id = "alerts-history";
  hist.appendChild(f.el("h3", "History (" + history.count + ")"));
  hist.appendChild(f.el("p", "the alert log: every firing and resolved transition over the " + ctx.range.label +
    (history.count >= HISTORY_LIMIT ? " (the newest " + HISTORY_LIMIT + ")" : "") + ", newest first, and whom it was sent to", "status"));
  if (history.entries.length) hist.appendChild(f.el("div", null, "scroll")).appendChild(historyTable(history.entries, ctx, true));
  page.appendChild(hist);
  if (info.demo_sink) await sinkSection(page, info.demo_sink, ctx);
  silencesSection(page, silences.silences || [], ctx);
}

const HISTORY_LIMIT = 200;
const MAX_HISTORY_SECONDS = 365 * 86400;

function historySeconds(ctx) {
  return Math.max(60, Math.min(MAX_HISTORY_SECONDS, Math.round(ctx.range.seconds)));
}

// Whom a transition was sent to: each receiver's delivery result, or why nobody was told.
export function sentTo(e) {
  if (e.deliveries.length) {
    return e.deliveries.map((d) => d.receiver + ": " + d.status + (d.attempts > 1 ? " (" + d.attempts + " attempts)" : "") +
      (d.error ? " – " + d.error : "")).join("; ");
  }
  if (e.muted) return "not sent: " + e.muted;
  return "not sent (no notification: waiting for its group, or no route)";
}

// The alert log's entries (GET /api/v1/alerts/history) as a table; `withSlo`: the SLO and group columns too.
export function historyTable(entries, ctx, withSlo) {
  const cols = [
    ["at", "When", (e) => f.when(e.at), null, (e) => f.ago(e.at)],
    ["event", "Event", (e) => e.event, (e) => "state-" + e.event],
  ];
  if (withSlo) {
    cols.push(["slo", "SLO", (e) => e.slo ? f.link(e.slo, href("slo", { range: ctx.rangeKey, name: e.slo, group: JSON.stringify(groupOf(e)) })) : (e.alertname || "–")]);
  }
  cols.push(["tier", "Tier", (e) => e.tier || "–"], ["severity", "Severity", (e) => e.severity || "–"]);
  if (withSlo) cols.push(["group", "Group", (e) => f.labels(e.labels, TIER_LABELS), "wrap"]);
  cols.push(["sent", "Sent to", sentTo, (e) => "wrap" + (e.deliveries.some((d) => d.status === "failed") ? " bad" : "")],
    ["summary", "Summary", (e) => e.summary || "", "wrap"]);
  return f.table(cols, entries, (e) => e.fingerprint + " " + e.event + " " + e.at);
}

// What the demo's local webhook receiver got (the server runs as `infersight demo`): the payloads as a
// real receiver would have them, newest first.
async function sinkSection(page, path, ctx) {
  const sec = f.el("section");
  sec.id = "demo-sink";
  sec.appendChild(f.el("h3", "Received by the demo webhook sink"));
  page.appendChild(sec);
  let data;
  try {
    data = await api(path);
  } catch (err) {
    sec.appendChild(f.el("p", ctx.explain(err, "the demo sink"), "status error"));
    return;
  }
  const items = data.notifications || [];
  sec.appendChild(f.el("p", data.count + " notifications (Alertmanager webhook v4) the demo's loopback receiver got" +
    (items.length < data.count ? ", the newest " + items.length + " below" : ""), "status"));
  if (!items.length) return;
  const alertsText = (p) => (p.alerts || []).map((a) => (a.labels.tier || a.labels.alertname) + " " + a.status).join(", ");
  sec.appendChild(f.el("div", null, "scroll")).appendChild(f.table([
    ["received", "Received", (n) => f.when(n.receivedAt), null, (n) => f.ago(n.receivedAt)],
    ["status", "Status", (n) => n.payload.status, (n) => "state-" + n.payload.status],
    ["receiver", "Receiver", (n) => n.payload.receiver || "–"],
    ["group", "Group", (n) => f.labels(n.payload.groupLabels), "wrap"],
    ["alerts", "Alerts", (n) => alertsText(n.payload), "wrap"],
  ], items, (n) => n.receivedAt + " " + n.payload.groupKey));
}

// The group labels of an alert (the SLO's group_by attributes as label names: dots become "_");
// the SLO detail page matches them to its instance by those label names.
export function groupOf(a) {
  const g = {};
  for (const [k, v] of Object.entries(a.labels)) if (TIER_LABELS.indexOf(k) < 0) g[k] = v;
  return g;
}

function silenceButton(a, page) {
  if (a.state === "resolved") return "";
  const b = f.el("button", "Silence…", "small");
  b.type = "button";
  b.addEventListener("click", () => {
    const form = page.querySelector("#silence-form");
    form.querySelector("[name=matchers]").value = ["slo", "tier"].filter((k) => a.labels[k])
      .map((k) => k + "=" + a.labels[k]).concat(Object.entries(a.labels).filter(([k]) => TIER_LABELS.indexOf(k) < 0)
        .map(([k, v]) => k + "=" + v)).join(", ");
    form.scrollIntoView();
    form.querySelector("[name=comment]").focus();
  });
  return b;
}

// "slo=chat, tier=page-fast, model=~llama.*" → Alertmanager matchers (=~ is a regex, != negates).
export function parseMatchers(text) {
  const out = [];
  for (const part of text.split(",").map((s) => s.trim()).filter((s) => s)) {
    const m = part.match(/^([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*)$/);
    if (!m) throw new Error("matcher " + JSON.stringify(part) + ": write name=value, name!=value, name=~regex or name!~regex");
    out.push({ name: m[1], value: m[3].replace(/^"(.*)"$/, "$1"), isRegex: m[2].indexOf("~") >= 0, isEqual: m[2][0] !== "!" });
  }
  if (!out.length) throw new Error("a silence needs at least one matcher");
  return out;
}

function matcherText(m) {
  return m.name + (m.isEqual === false ? "!" : "=") + (m.isRegex ? "~" : "") + m.value;
}

function silencesSection(page, silences, ctx) {
  const sec = f.el("section");
  sec.id = "silences";
  sec.appendChild(f.el("h3", "Silences"));
  const active = silences.filter((s) => s.status.state !== "expired");
  sec.appendChild(f.el("p", active.length + " active or pending, " + (silences.length - active.length) + " expired", "status"));
  const cols = [
    ["matchers", "Matchers", (s) => s.matchers.map(matcherText).join(", "), "wrap"],
    ["state", "State", (s) => s.status.state, (s) => "state-" + s.status.state],
    ["starts", "Starts", (s) => f.when(s.startsAt)],
    ["ends", "Ends", (s) => f.when(s.endsAt) + " (" + f.ago(s.endsAt) + ")"],
    ["by", "By", (s) => s.createdBy || "–"],
    ["comment", "Comment", (s) => s.comment || "", "wrap"],
    ["action", "", (s) => {
      if (s.status.state === "expired") return "";
      const b = f.el("button", "Expire", "small");
      b.type = "button";
      b.addEventListener("click", async () => {
        b.disabled = true;
        try { await api("/api/v1/silences/" + encodeURIComponent(s.id), "DELETE"); window.dispatchEvent(new HashChangeEvent("hashchange")); }
        catch (err) { b.disabled = false; msg.textContent = ctx.explain(err, "expire"); msg.className = "status error"; }
      });
      return b;
    }],
  ];
  if (silences.length) sec.appendChild(f.el("div", null, "scroll")).appendChild(f.table(cols, silences, (s) => s.id));
  const form = f.el("form", null, "silence-form");
  form.id = "silence-form";
  const field = (label, name, attrs) => {
    const l = f.el("label", label + " ");
    const i = f.el("input", null, null, Object.assign({ name: name }, attrs));
    l.appendChild(i);
    form.appendChild(l);
    return i;
  };
  form.appendChild(f.el("h4", "New silence"));
  field("Matchers", "matchers", { placeholder: "slo=chat-availability, tier=page-fast", size: "40", required: "" });
  field("For", "duration", { value: "2h", size: "5", title: "e.g. 30m, 2h, 1d" });
  field("By", "createdBy", { placeholder: "you", size: "10" });
  field("Comment", "comment", { placeholder: "why", size: "24" });
  const submit = f.el("button", "Create silence");
  submit.type = "submit";
  form.appendChild(submit);
  const msg = f.el("p", "", "status");
  msg.id = "silence-message";
  form.appendChild(msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (n) => form.querySelector("[name=" + n + "]").value.trim();
    try {
      const body = { matchers: parseMatchers(v("matchers")), duration: v("duration") || "2h", createdBy: v("createdBy"), comment: v("comment") };
      submit.disabled = true;
      const made = await api("/api/v1/silences", "POST", body);
      msg.textContent = "silence " + made.silenceID + " created, until " + f.when(made.endsAt);
      msg.className = "status";
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      submit.disabled = false;
      msg.textContent = ctx.explain(err, "silence");
      msg.className = "status error";
    }
  });
  sec.appendChild(form);
  page.appendChild(sec);
}
