// infersight web UI: a single page with five views, its state in the URL hash (state.js). Plain ES
// modules, no build step; every value reaches the page through textContent.
import { ApiError, TOKEN_KEY, resetMeta, timings } from "./api.js";
import { clear } from "./charts.js";
import { el } from "./fmt.js";
import { RANGES, rangeOf } from "./sql.js";
import { current, setParams } from "./state.js";
import * as fleet from "./view_fleet.js";
import * as compare from "./view_compare.js";
import * as slos from "./view_slos.js";
import * as alerts from "./view_alerts.js";
import * as nodes from "./view_nodes.js";

const VIEWS = { fleet: fleet, compare: compare, slos: slos, slo: slos, alerts: alerts, nodes: nodes };
const REFRESH_MS = 60000;
window.infersightTimings = timings;  // per query of the current view: label, ms, rows (bench/ui.py reads it)

export function explain(err, what) {
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

let generation = 0;

async function render() {
  const gen = ++generation;
  const state = current();
  const view = VIEWS[state.view] || fleet;
  const rangeKey = RANGES[state.params.range] ? state.params.range : "6h";
  document.getElementById("range").value = rangeKey;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === state.view || (state.view === "slo" && a.dataset.view === "slos"));
    // The range travels with the navigation.
    a.href = "#/" + a.dataset.view + "?range=" + rangeKey;
  }
  document.getElementById("banner").hidden = true;
  clear();
  timings.length = 0;
  const main = document.getElementById("view");
  const page = el("div", null, "page");
  page.dataset.view = state.view;
  main.replaceChildren(page);
  document.body.dataset.ready = "loading";
  const t0 = performance.now();
  try {
    await view.render(page, state.params, { range: rangeOf(rangeKey, state.params), rangeKey: rangeKey, view: state.view, explain: explain,
      stale: () => gen !== generation });
  } catch (err) {
    page.appendChild(el("p", explain(err, state.view), "status error"));
  }
  if (gen !== generation) return;
  const ms = performance.now() - t0;
  document.getElementById("footer").textContent = "view loaded in " + Math.round(ms) + " ms (" + timings.length +
    " queries, slowest " + Math.round(Math.max(0, ...timings.map((t) => t.ms))) + " ms) · times in your time zone";
  document.body.dataset.ready = "ready";
  document.body.dataset.loadMs = String(Math.round(ms));
}

document.getElementById("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  resetMeta();
  render();
});
document.getElementById("refresh").addEventListener("click", render);
document.getElementById("range").addEventListener("change", (ev) => setParams({ range: ev.target.value }));
window.addEventListener("hashchange", render);
render();
setInterval(() => {
  const typing = document.activeElement && ["INPUT", "SELECT", "TEXTAREA"].indexOf(document.activeElement.tagName) >= 0;
  if (!document.hidden && !typing && document.body.dataset.ready === "ready") render();
}, REFRESH_MS);
