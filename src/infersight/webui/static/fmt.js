// Formatting for people: every number says what it is. Values reach the page through textContent only.
export function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return isFinite(n) ? n : null;
}

export function int(v) {
  const n = num(v);
  return n === null ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: 0 });
}

export function percent(v, digits) {
  const n = num(v);
  return n === null ? "–" : (n * 100).toFixed(digits === undefined ? 1 : digits) + "%";
}

export function seconds(v) {
  const n = num(v);
  if (n === null) return "–";
  if (n < 1) return (n * 1000).toFixed(n < 0.01 ? 2 : 1) + " ms";
  if (n < 120) return n.toFixed(2) + " s";
  return duration(n);
}

export function rate(v, unit) {
  const n = num(v);
  if (n === null) return "–";
  const digits = n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) + " " + unit;
}

// USD: cents from $1 up, 4 significant digits below (as the SLO views print money).
export function usd(v) {
  const n = num(v);
  if (n === null) return "unpriced";
  const a = Math.abs(n), sign = n < 0 ? "-" : "";
  if (a >= 1 || a === 0) return sign + "$" + a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return sign + "$" + Number(a.toPrecision(4));
}

export function bytes(v) {
  const n = num(v);
  if (n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let x = n, i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return x.toFixed(i ? 1 : 0) + " " + units[i];
}

export function duration(s) {
  const n = num(s);
  if (n === null) return "–";
  const a = Math.abs(n);
  if (a < 90) return Math.round(a) + " s";
  if (a < 5400) return Math.round(a / 60) + " min";
  if (a < 172800) return (a / 3600).toFixed(a < 36000 ? 1 : 0) + " h";
  return (a / 86400).toFixed(1) + " d";
}

// "3 min ago" for a Unix time (seconds) or an ISO string.
export function ago(t, now) {
  const s = typeof t === "string" ? Date.parse(t) / 1000 : num(t);
  if (s === null || !isFinite(s)) return "never";
  const d = (now === undefined ? Date.now() / 1000 : now) - s;
  return d < 0 ? "in " + duration(-d) : duration(d) + " ago";
}

// Local date and time, to the minute: "Mon 12 May, 14:05".
export function when(t) {
  const s = typeof t === "string" ? Date.parse(t) : num(t) * 1000;
  if (!isFinite(s)) return "–";
  return new Date(s).toLocaleString("en-GB", { weekday: "short", day: "numeric", month: "short",
    hour: "2-digit", minute: "2-digit" });
}

export function labels(obj, skip) {
  return Object.keys(obj || {}).filter((k) => !skip || skip.indexOf(k) < 0).sort()
    .map((k) => k + "=" + obj[k]).join(", ");
}

export function el(tag, text, className, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// A table: columns are [key, title, format(row) -> text, class or (row) -> class, title(row)?, header
// title?, value(row)?]. Each row gets data-key, each cell data-col (what the tests and the links read)
// and, with value(row), data-value: the unformatted number or text the cell shows (JSON).
export function table(columns, rows, keyOf, opts) {
  const t = el("table", null, "data");
  const head = el("tr");
  for (const c of columns) {
    const th = el("th", c[1], typeof c[3] === "string" ? c[3] : "");
    if (c[5]) th.title = c[5];
    head.appendChild(th);
  }
  t.appendChild(el("thead")).appendChild(head);
  const body = t.appendChild(el("tbody"));
  for (const row of rows) {
    const tr = el("tr", null, opts && opts.rowClass ? opts.rowClass(row) : "");
    tr.dataset.key = keyOf(row);
    for (const c of columns) {
      const td = el("td", null, typeof c[3] === "function" ? c[3](row) : c[3]);
      const v = c[2](row);
      if (v instanceof Node) td.appendChild(v); else td.textContent = v;
      if (c[4]) { const tip = c[4](row); if (tip) td.title = tip; }
      if (c[6]) { const raw = c[6](row); td.dataset.value = JSON.stringify(raw === undefined ? null : raw); }
      td.dataset.col = c[0];
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  return t;
}

export function link(text, href) {
  const a = el("a", text);
  a.href = href;
  return a;
}
