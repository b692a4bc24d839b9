// Latency percentiles as the page reads and shows them. The numbers come from the server's one
// implementation (GET /ui/percentiles.json, infersight.quantiles): over one bucket layout they are
// Prometheus' histogram_quantile over the same buckets, over mixed layouts an estimate with the interval
// the percentile is known to lie in. Nothing here computes a percentile.
import { api, timings } from "./api.js";
import { seconds as secondsText } from "./fmt.js";

// opts: {seconds, latency: ["ttft", ...], by: ["cloud,region", "cloud", "cloud,t:ttft"] (dimensions and t, the
// time bucket of `step`; ":kind+kind" answers only those kinds for it), step, qs: [0.95], filters: {cloud, model, ...}}.
// Returns {grouping name ("cloud,region"): [{...key, latency, count, layouts, p95: {value, lower, upper,
// estimate, open}}]}; t (a time bucket's start) is a number.
export async function percentiles(opts, label) {
  const by = opts.by;
  const params = new URLSearchParams({ seconds: String(opts.seconds), latency: opts.latency.join(","), by: by.join(";"),
    q: opts.qs.join(",") });
  if (opts.step) params.set("step", String(opts.step));
  for (const [k, v] of Object.entries(opts.filters || {})) if (v) params.set(k, v);
  const t0 = performance.now();
  const doc = await api("/ui/percentiles.json?" + params.toString());
  timings.push({ label: label || "percentiles", ms: performance.now() - t0, rows: doc.groups.length });
  const out = {};
  for (const g of by) out[g.split(":")[0]] = [];
  for (const x of doc.groups) out[x.by].push(Object.assign({}, x.key, { latency: x.latency, count: x.count, layouts: x.layouts }, pick(x)));
  return out;
}

function pick(x) {
  const o = {};
  for (const k of Object.keys(x)) if (/^p\d+$/.test(k)) o[k] = x[k];
  return o;
}

// What a cell shows: "383.0 ms" (histogram_quantile over one layout), "≈ 383.0 ms" (mixed layouts),
// "≥ 2.50 s" (the rank lies in the +Inf bucket: the largest finite bound, as Prometheus answers).
export function cellText(e, fmt) {
  if (!e) return "–";
  const f = fmt || secondsText;
  return (e.open ? "≥ " : e.estimate ? "≈ " : "") + f(e.value);
}

// What a cell says about itself (its title): "p95 383.0 ms: histogram_quantile over one bucket layout
// (1,000 observations), in the bucket (250.0 ms, 500.0 ms]" or "≈ 383.0 ms (between 250.0 ms and 500.0 ms):
// p95 estimated over 2 bucket layouts".
export function noteText(e, name, row, fmt) {
  if (!e) return "";
  const f = fmt || secondsText;
  const n = row && row.count !== undefined ? " (" + Number(row.count).toLocaleString("en-US") + " observations)" : "";
  if (e.open) {
    return (e.estimate ? "≈ " : "") + name + " above " + f(e.lower) + ": in the +Inf bucket" + (e.estimate ? " of mixed layouts" : "") +
      ", shown as the largest finite bound " + f(e.value) + " (as Prometheus' histogram_quantile answers)" + n;
  }
  if (e.estimate) {
    return "≈ " + f(e.value) + " (between " + f(e.lower) + " and " + f(e.upper) + "): " + name + " estimated over " +
      (row && row.layouts ? row.layouts + " " : "several ") + "bucket layouts" + n;
  }
  return name + " " + f(e.value) + ": histogram_quantile over one bucket layout" + n + ", in the bucket (" + f(e.lower) +
    ", " + f(e.upper) + "]";
}
