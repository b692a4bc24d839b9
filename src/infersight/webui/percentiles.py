"""`/ui/percentiles.json`: latency percentiles per group of the latency rollup, by `infersight.quantiles`.

The page's one source of percentiles (the Fleet view's table and chart, the compare view's charts), so
they follow the same rules as every other reader: over one bucket layout Prometheus' `histogram_quantile`
(`estimate: false`), over mixed layouts an estimate with the interval it is known to lie in. Rows of
`infersight_latency_1m` are summed per (group, Kind, layout) in one query whose GROUPING SETS give every
grouping asked for at once (summing a layout's buckets is exact, so a cloud's sums are its regions' sums),
and the bounds of the layouts found are read in a second, small one (both as `infersight.rollup_quantiles` says);
the app rows that spans supersede are left out as every reader does (`rollups.latency_precedence`).

Parameters (all optional but `seconds`):

- `seconds`: the range, rows with `Minute >= now() - seconds` (the page's other queries use the same).
- `latency`: Kinds, comma-separated (`ttft,e2e`; default `ttft,tpot,e2e`).
- `by`: groupings separated by `;`, each comma-separated dimensions of `DIMENSIONS` and `t` (the time
  bucket of `step` seconds), optionally `:kinds` (`+`-separated) to answer only those Kinds for it, e.g.
  `cloud,region;cloud;cloud,t:ttft`. Default: one group over the whole range.
- `step`: seconds per time bucket (needed with `t`).
- `q`: quantiles, comma-separated (default `0.5,0.95`).
- `cloud`, `region`, `host`, `model`, `kind` (server kind or API provider), `tenant`: exact filters.

Answer: `{"seconds", "step", "quantiles", "method", "groups": [{"by": "cloud,region", "key": {"cloud": ...,
"region": ...}, "latency": "ttft", "count": n, "layouts": k, "p95": {value, lower, upper, estimate, open}}]}`
(`t` in `key` is the bucket's start, Unix seconds; groups without observations are left out).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infersight import quantiles, rollup_quantiles
from infersight.rollup_quantiles import SUMS, TABLE
from infersight.rollups import LATENCY_METRICS, SOURCE_APP, latency_precedence
from infersight.storage.literals import string_literal

DIMENSIONS = {"cloud": "CloudProvider", "region": "CloudRegion", "host": "HostName", "model": "Model",
              "kind": "ServerKind", "tenant": "Tenant"}
TIME = "t"
KINDS = tuple(dict.fromkeys(LATENCY_METRICS.values()))  # e2e, ttft, tpot, queue
DEFAULT_KINDS = ("ttft", "tpot", "e2e")
MAX_SECONDS = 31 * 86400
MAX_GROUPINGS = 4
MAX_QUANTILES = 4
MAX_POINTS = 1500  # time buckets over the range
MAX_FILTER_CHARS = 512


@dataclass(frozen=True)
class Grouping:
    dims: tuple[str, ...]  # DIMENSIONS keys and TIME, in the order asked
    kinds: tuple[str, ...]  # the Kinds answered for it

    @property
    def name(self) -> str:
        return ",".join(self.dims)


@dataclass(frozen=True)
class Ask:
    seconds: int
    step: int
    kinds: tuple[str, ...]
    groupings: tuple[Grouping, ...]
    qs: tuple[float, ...]
    filters: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The grouping columns of the query, every grouping's dimensions once (TIME last)."""
        dims = [d for d in DIMENSIONS if any(d in g.dims for g in self.groupings)]
        return (*dims, *([TIME] if any(TIME in g.dims for g in self.groupings) else []))


def _int(query: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = query.get(name, "")
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name}: an integer from {low} to {high}")
    return int(text)


def _kinds(text: str, name: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k for k in text.split(",") if k))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"{name}: latency kinds of {', '.join(KINDS)}; got {unknown or 'none'}")
    return kinds


def parse(query: Mapping[str, str]) -> Ask:
    """The request's parameters, or ValueError naming the one that is wrong."""
    seconds = _int(query, "seconds", 60, MAX_SECONDS)
    kinds = _kinds(query["latency"], "latency") if "latency" in query else DEFAULT_KINDS
    groupings: list[Grouping] = []
    for text in query.get("by", "").split(";") if query.get("by") else [""]:
        dims_text, _, only = text.partition(":")
        dims = tuple(d for d in dims_text.split(",") if d)
        unknown = [d for d in dims if d not in DIMENSIONS and d != TIME]
        if unknown or len(set(dims)) != len(dims):
            raise ValueError(f"by: groupings of {', '.join([*DIMENSIONS, TIME])} separated by ';' (each at most "
                             f"once); got {text!r}")
        mine = tuple(k for k in only.split("+") if k) if only else kinds
        if any(k not in kinds for k in mine) or not mine:
            raise ValueError(f"by: {text!r} asks for latency kinds {list(mine)}; the request reads {list(kinds)}")
        if any(set(g.dims) == set(dims) for g in groupings):
            raise ValueError(f"by: the grouping {dims_text!r} is given twice")
        groupings.append(Grouping(dims, mine))
    if len(groupings) > MAX_GROUPINGS:
        raise ValueError(f"by: at most {MAX_GROUPINGS} groupings")
    timed = any(TIME in g.dims for g in groupings)
    if query.get("step") and not timed:
        raise ValueError(f"step: only with a grouping by {TIME}")
    step = _int(query, "step", 60, seconds) if timed else 0
    if timed and seconds // step > MAX_POINTS:
        least = -(-seconds // MAX_POINTS)
        raise ValueError(f"step: at most {MAX_POINTS} time buckets over the range (step >= {least})")
    try:
        qs = tuple(dict.fromkeys(float(x) for x in query.get("q", "0.5,0.95").split(",")))
    except ValueError:
        qs = ()
    if not qs or len(qs) > MAX_QUANTILES or not all(0 < q <= 1 for q in qs):
        raise ValueError(f"q: 1 to {MAX_QUANTILES} quantiles in (0, 1], comma-separated")
    filters = []
    for name in DIMENSIONS:
        value = query.get(name, "")
        if len(value) > MAX_FILTER_CHARS:
            raise ValueError(f"{name}: at most {MAX_FILTER_CHARS} characters")
        if value:
            filters.append((name, value))
    return Ask(seconds, step, kinds, tuple(groupings), qs, tuple(filters))


def sql(database: str, ask: Ask) -> str:
    """One query: per (grouping set, Kind, layout) the summed non-zero buckets as (1-based positions, counts);
    and per layout (the set where `latency` is not grouped by) its first minute and Kind in the range.

    The sums are `rollup_quantiles.SUMS` per layout id; the bounds themselves are read only for each layout's
    first row (`rollup_quantiles.bounds`).
    """
    db = "`" + database.replace("`", "``") + "`"
    cols = ask.columns
    inner_cols = [f"{DIMENSIONS[c]} AS d_{c}" for c in cols if c != TIME]
    if TIME in cols:
        # Time buckets only for the Kinds a grouping by time answers: the others' rows stay one per group.
        timed = {k for g in ask.groupings if TIME in g.dims for k in g.kinds}
        bucket = f"toUnixTimestamp(toStartOfInterval(Minute, INTERVAL {ask.step} SECOND))"
        if timed != set(ask.kinds):
            bucket = f"if(Kind IN ({', '.join(string_literal(k) for k in sorted(timed))}), {bucket}, 0)"
        inner_cols.append(f"{bucket} AS d_{TIME}")
    keys = [f"d_{c}" for c in cols]
    where = [*_range(db, ask), *(f"{DIMENSIONS[k]} = {string_literal(v)}" for k, v in ask.filters)]
    inner = (f"SELECT {', '.join([*inner_cols, 'Kind AS latency'])}, Layout AS layout, min(Minute) AS first, "
             f"{SUMS} AS counts FROM {db}.`{TABLE}` "
             f"WHERE {' AND '.join(where)} GROUP BY {', '.join([*keys, 'latency', 'layout'])}")
    sets = [f"({', '.join([*(f'd_{d}' for d in g.dims), 'latency', 'layout'])})" for g in ask.groupings]
    sets.append("(layout)")
    return (f"SELECT {', '.join([*keys, 'latency'])}, toString(layout) AS layout, "
            f"GROUPING({', '.join([*keys, 'latency'])}) AS grouping, "
            "toUnixTimestamp(min(first)) AS first_minute, argMin(latency, first) AS first_kind, "
            f"sumMap(counts.1, counts.2) AS buckets FROM ({inner}) GROUP BY GROUPING SETS ({', '.join(sets)})")


def _range(db: str, ask: Ask) -> list[str]:
    """The rows read: the Kinds and range asked, app rows that spans supersede left out."""
    kinds = ", ".join(string_literal(k) for k in ask.kinds)
    # The span rows the precedence looks at: in the range widened by a minute, only where app rows are.
    near = f"Kind IN ({kinds}) AND Minute >= now() - INTERVAL {ask.seconds + 60} SECOND"
    lookup = (f"{near} AND (CloudProvider, CloudRegion, HostName, Model) IN (SELECT CloudProvider, CloudRegion, "
              f"HostName, Model FROM {db}.`{TABLE}` WHERE Source = {string_literal(SOURCE_APP)} AND {near})")
    return [f"Kind IN ({kinds})", f"Minute >= now() - INTERVAL {ask.seconds} SECOND",
            latency_precedence(db, lookup)]


def read(query: Callable[[str], list[dict[str, Any]]], database: str, ask: Ask) -> dict[str, Any]:
    """The answer document, from `query` (the store's): the sums, then the bounds of the layouts they hold."""
    rows = query(sql(database, ask))
    bit = 1 << 0  # GROUPING()'s last column is latency: set in the per-layout rows
    first = {r["layout"]: (r["first_kind"], int(r["first_minute"])) for r in rows if int(r["grouping"]) & bit}
    db = "`" + database.replace("`", "``") + "`"
    return document(ask, rows, rollup_quantiles.bounds(query, db, first))


def _finite(x: Any) -> Any:
    return x if not isinstance(x, float) or math.isfinite(x) else None


def answer(ask: Ask, rows: list[dict[str, Any]], bounds: Mapping[str, tuple[float, ...]]) -> list[dict[str, Any]]:
    """The groups: quantiles.summary over each group's layouts (`bounds`: layout id -> its bounds)."""
    cols = (*ask.columns, "latency")
    bit = {c: 1 << (len(cols) - 1 - i) for i, c in enumerate(cols)}  # GROUPING(): 1 where not grouped by
    masks = {sum(b for c, b in bit.items() if c != "latency" and c not in g.dims): g for g in ask.groupings}
    # Per group, per layout: its summed non-zero buckets (1-based position -> count).
    groups: dict[tuple, dict[str, dict[int, int]]] = {}
    for r in rows:
        g = masks.get(int(r["grouping"]))
        if g is None or r["latency"] not in g.kinds:
            continue
        key = (g.name, r["latency"], *(int(r["d_t"]) if d == TIME else r[f"d_{d}"] for d in g.dims))
        groups.setdefault(key, {})[r["layout"]] = rollup_quantiles.buckets(r["buckets"])
    out = []
    order = {g.name: i for i, g in enumerate(ask.groupings)}
    for key in sorted(groups, key=lambda k: (order[k[0]], *map(str, k[1:]))):
        s = rollup_quantiles.summary(groups[key], bounds, ask.qs)
        if s is None:
            continue
        name, kind, *values = key
        g = ask.groupings[order[name]]
        entry: dict[str, Any] = {"by": name, "key": dict(zip(g.dims, values, strict=True)), "latency": kind,
                                 "count": s["count"], "layouts": s["layouts"]}
        for q in ask.qs:
            e = s[f"p{round(q * 100)}"]
            entry[f"p{round(q * 100)}"] = None if e is None else {k: _finite(v) for k, v in e.items()}
        out.append(entry)
    return out


def document(ask: Ask, rows: list[dict[str, Any]], bounds: Mapping[str, tuple[float, ...]]) -> dict[str, Any]:
    return {"seconds": ask.seconds, "step": ask.step, "quantiles": list(ask.qs), "method": quantiles.METHOD,
            "groups": answer(ask, rows, bounds)}
