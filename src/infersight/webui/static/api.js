// The server's APIs as the page uses them: bearer token from sessionStorage, JSON in and out.
// State-changing calls send Content-Type: application/json (the server's CSRF rule, docs/security.md).
export const TOKEN_KEY = "infersight.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

export async function api(path, method, body) {
  // Every state change (POST, DELETE) is JSON, body or not: the server refuses others (415).
  const changes = (method || "GET") !== "GET";
  const init = { method: method || "GET", headers: headers(changes ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) throw new ApiError(resp.status, (data && (data.error || data.message)) || text || resp.statusText);
  return data;
}

// Timings of the queries the current view ran (shown in its footer, read by bench/ui.py's browser run).
export const timings = [];

// The query API runs server.query.max_concurrent_queries (2 by default) at once and answers 429
// beyond: the page keeps to two in flight and retries a 429 after its Retry-After.
const MAX_IN_FLIGHT = 2;
let inFlight = 0;
const waiting = [];
async function slot() {
  if (inFlight < MAX_IN_FLIGHT) { inFlight++; return; }
  await new Promise((resolve) => waiting.push(resolve));
}
function release() {
  const next = waiting.shift();
  if (next) next(); else inFlight--;
}

// POST /api/v1/query: one sandboxed SELECT; rows as objects.
export async function query(sql, label) {
  await slot();
  const t0 = performance.now();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const data = await api("/api/v1/query", "POST", { sql: sql });
        timings.push({ label: label || "query", ms: performance.now() - t0, rows: data.rows.length });
        return data.rows;
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 429 || attempt >= 5) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
      }
    }
  } finally {
    release();
  }
}

// GET one of the UI's own JSON documents, timed like a query (the view's footer, bench/ui.py).
export async function timedApi(path, label) {
  const t0 = performance.now();
  const data = await api(path);
  timings.push({ label: label, ms: performance.now() - t0, rows: 0 });
  return data;
}

let metaCache = null;
export async function meta() {
  if (metaCache === null) metaCache = await api("/ui/meta.json");
  return metaCache;
}
export function resetMeta() { metaCache = null; }
