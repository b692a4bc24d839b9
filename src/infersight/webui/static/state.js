// URL state: "#/view?range=6h&cloud=aws&…" holds the view, its range, filters and selection, so a
// link can be shared. Changing it (setParams/go) re-renders through the hashchange event.
export function current() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, qs] = h.split("?");
  const params = {};
  for (const [k, v] of new URLSearchParams(qs || "")) params[k] = v;
  return { view: path || "fleet", params: params };
}

export function href(view, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined) qs.set(k, v);
  const s = qs.toString();
  return "#/" + view + (s ? "?" + s : "");
}

export function go(view, params) {
  location.hash = href(view, params);
}

// Keep the view, change some parameters (an empty value removes one).
export function setParams(patch) {
  const s = current();
  go(s.view, Object.assign({}, s.params, patch));
}
