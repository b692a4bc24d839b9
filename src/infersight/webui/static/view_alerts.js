// Alerts: firing, pending, silenced and inhibited apart (a silenced or inhibited alert is not
// "active"), recently resolved ones as history, and silences: create and expire.
import { api } from "./api.js";
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
  ["resolved", "Resolved (history)", "recently resolved alerts the engine still holds"],
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
  let alerts, silences;
  try {
    [alerts, silences] = await Promise.all([api("/api/v1/alerts"), api("/api/v1/silences")]);
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
  silencesSection(page, silences.silences || [], ctx);
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
