"""The compare report: one model per cloud/region/deployment, from the rollups, the cost module, the SLO
engine's state and the probe metrics. The one implementation behind `infersight compare`,
GET /api/v1/compare, the routing hints and the web UI's compare view.

A deployment is where the model is served: (cloud.provider, cloud.region, kind), where kind is the server
kind of a self-hosted server (vllm, sglang, ...) or the API provider (`gen_ai.provider.name`: azure.ai.openai,
aws.bedrock, ...) of API traffic; its hosts are listed. Inputs:

- traffic: `infersight_requests_1m` (requests, bad requests, tokens) and `infersight_latency_1m` (TTFT, TPOT,
  e2e p50/p95 from the buckets by `infersight.quantiles`: Prometheus' histogram_quantile over one layout, an
  estimate with its interval over mixed layouts; read as `infersight.rollup_quantiles` says, like the web UI's
  percentiles), for [start, end), with the source precedence of docs/slo.md
  (`rollups.requests_precedence` / `latency_precedence`: an app's own metrics next to its spans count once);
- cost: `cost.report.build_report` grouped by cloud, region, kind and model (prices are `cost.catalog.Rate.cost`:
  list prices per token for API traffic, capacity prices per node-hour split over served tokens for
  self-hosted servers);
- SLO state: the engine's instances (`slo.views.instance_json`), the SLIs' filters and the alerts
  (`slo.views.alert_json`), as `SloState`;
- probes: `infersight.probe.requests` and the `gen_ai.client.*` histograms with `infersight.traffic=probe`,
  next to user traffic (never mixed into it).

`build` returns plain JSON data (numbers of money as exact decimal text, like the cost report); `reprice`
replaces only its cost part under another catalog (`compare --prices FILE` against a running server).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infersight import quantiles, rollup_quantiles
from infersight import semconv as sc
from infersight.cost.catalog import Catalog
from infersight.cost.derive import as_dict
from infersight.cost.report import build_report
from infersight.cost.usage import Source
from infersight.rollups import SELF_HOSTED_KINDS, latency_precedence, requests_precedence
from infersight.storage.literals import string_literal as _q

LATENCY_KINDS = ("ttft", "tpot", "e2e")
PROBE_HISTOGRAMS = {sc.CLIENT_TIME_TO_FIRST_CHUNK: "ttft", sc.CLIENT_TIME_PER_OUTPUT_CHUNK: "tpot",
                    sc.CLIENT_OPERATION_DURATION: "e2e"}
# Attributes an SLO instance may pin that say which deployment it is about.
PLACE = {sc.CLOUD_PROVIDER: "cloud", sc.CLOUD_REGION: "region", sc.SERVER_KIND: "kind"}
COST_BY = ("cloud", "region", "kind", "model")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SloState:
    """What the SLO engine knows now: instances as `instance_json` documents, each SLO's SLI filters, alerts as
    `alert_json` documents, and when it evaluated."""

    instances: Sequence[Mapping[str, Any]] = ()
    filters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    alerts: Sequence[Mapping[str, Any]] = ()
    evaluated_at: float | None = None
    source: str = "engine"


def _window(col: str, start: int, end: int) -> str:
    return f"{col} >= toDateTime({int(start)}) AND {col} < toDateTime({int(end)})"


def key_of(cloud: str, region: str, kind: str) -> str:
    return f"{cloud}/{region}/{kind}"


def hosting(kind: str) -> str:
    """`self-hosted` (a server infersight scrapes: capacity-priced) or `api` (a provider: list-priced)."""
    return "self-hosted" if kind in SELF_HOSTED_KINDS or kind in sc.SERVER_KINDS else "api"


# -- reads -------------------------------------------------------------------------------------------------
def _lookup(model: str, start: int, end: int) -> str:
    """The span rows the precedence looks at: this model, the window widened by a minute each side."""
    return f"Model = {_q(model)} AND {_window('Minute', start - 60, end + 60)}"


def traffic(src: Source, model: str, start: int, end: int) -> list[dict[str, Any]]:
    lookup = _lookup(model, start, end)
    return src.query(f"""SELECT CloudProvider AS cloud, CloudRegion AS region, ServerKind AS kind,
    arraySort(groupUniqArray(HostName)) AS hosts, sum(Requests) AS requests, sum(BadRequests) AS bad,
    sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CachedTokens) AS cached_tokens
FROM {{db}}.infersight_requests_1m
WHERE Model = {_q(model)} AND {_window('Minute', start, end)} AND {requests_precedence('{db}', lookup)}
GROUP BY cloud, region, kind ORDER BY cloud, region, kind""")


def latency(src: Source, model: str, start: int, end: int) -> list[dict[str, Any]]:
    """Per deployment, Kind and layout: the summed non-zero buckets and the layout's first minute."""
    kinds = ", ".join(_q(k) for k in LATENCY_KINDS)
    lookup = f"Kind IN ({kinds}) AND {_lookup(model, start, end)}"
    return src.query(f"""SELECT CloudProvider AS cloud, CloudRegion AS region, ServerKind AS kind, Kind AS latency,
    toString(Layout) AS layout, toUnixTimestamp(min(Minute)) AS first_minute,
    {rollup_quantiles.SUMS} AS buckets
FROM {{db}}.{rollup_quantiles.TABLE}
WHERE Model = {_q(model)} AND Kind IN ({kinds}) AND {_window('Minute', start, end)}
    AND {latency_precedence('{db}', lookup)}
GROUP BY cloud, region, kind, latency, Layout ORDER BY cloud, region, kind, latency""")


def latency_summaries(src: Source, model: str, start: int, end: int) -> dict[tuple[str, str, str, str], Any]:
    """(cloud, region, kind, latency Kind) -> its `quantiles.summary`, the bounds read once per layout."""
    groups: dict[tuple[str, str, str, str], dict[str, dict[int, int]]] = defaultdict(dict)
    first: dict[str, tuple[str, int]] = {}
    for r in latency(src, model, start, end):
        groups[(r["cloud"], r["region"], r["kind"], r["latency"])][r["layout"]] = rollup_quantiles.buckets(
            r["buckets"])
        first.setdefault(r["layout"], (r["latency"], int(r["first_minute"])))  # any row of it has its bounds
    bounds = rollup_quantiles.bounds(src.query, "{db}", first)
    return {k: rollup_quantiles.summary(g, bounds) for k, g in groups.items()}


def _probe_place() -> str:
    def attr(name: str) -> str:
        return f"if(Attributes['{name}'] != '', Attributes['{name}'], ResourceAttributes['{name}'])"
    return (f"{attr(sc.CLOUD_PROVIDER)} AS cloud, {attr(sc.CLOUD_REGION)} AS region, "
            f"Attributes['{sc.PROVIDER_NAME}'] AS kind")


def _probe_where(model: str, start: int, end: int) -> str:
    return (f"Attributes['{sc.TRAFFIC}'] = {_q(sc.TRAFFIC_PROBE)} AND Attributes['{sc.MODEL}'] = {_q(model)} "
            f"AND {_window('TimeUnix', start, end)}")


def probe_counts(src: Source, model: str, start: int, end: int) -> list[dict[str, Any]]:
    return src.query(f"""SELECT {_probe_place()}, Attributes['{sc.OUTCOME}'] AS outcome,
    Attributes['{sc.ERROR_TYPE}'] AS error_type, toUInt64(round(sum(Value))) AS n,
    arraySort(groupUniqArray(Attributes['{sc.PROBE_ENDPOINT}'])) AS endpoints
FROM {{db}}.otel_metrics_sum
WHERE MetricName = {_q(sc.PROBE_REQUESTS)} AND {_probe_where(model, start, end)}
GROUP BY cloud, region, kind, outcome, error_type ORDER BY cloud, region, kind, outcome, error_type""")


def probe_latency(src: Source, model: str, start: int, end: int) -> list[dict[str, Any]]:
    names = ", ".join(_q(n) for n in PROBE_HISTOGRAMS)
    return src.query(f"""SELECT {_probe_place()}, MetricName AS metric, ExplicitBounds AS bounds,
    sumForEach(BucketCounts) AS counts
FROM {{db}}.otel_metrics_histogram
WHERE MetricName IN ({names}) AND {_probe_where(model, start, end)}
GROUP BY cloud, region, kind, metric, bounds ORDER BY cloud, region, kind, metric""")


# -- SLO state per deployment ------------------------------------------------------------------------------
def pinned(instance: Mapping[str, Any], filters: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """What an instance is about: its group plus its SLI's filters."""
    return {**dict(filters.get(instance["slo"], {})), **dict(instance.get("group") or {})}


def applies(pins: Mapping[str, str], model: str, dep: Mapping[str, Any]) -> bool:
    """An instance is about a deployment when it pins its place (cloud, region, kind or one of its hosts),
    contradicts none of it, and pins this model or no model. Fleet-wide and per-model-only instances are
    about no single deployment (the report lists them under `model_slos`)."""
    if pins.get(sc.MODEL, model) != model:
        return False
    placed = False
    for attr, name in PLACE.items():
        if attr in pins:
            if pins[attr] != dep[name]:
                return False
            placed = True
    if sc.HOST_NAME in pins:
        if pins[sc.HOST_NAME] not in dep["hosts"]:
            return False
        placed = True
    return placed


def _alert_matches(alert: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
    from infersight.slo.alerts import label_name

    labels = alert.get("labels") or {}
    return labels.get("slo") == instance["slo"] and all(
        labels.get(label_name(a)) == v for a, v in (instance.get("group") or {}).items())


def _instance_view(inst: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    active = [t for t in inst.get("tiers") or () if t.get("active")]
    firing = [a for a in alerts if a.get("state") == "firing" and _alert_matches(a, inst)]
    return {
        "slo": inst["slo"], "group": inst.get("group") or {}, "state": inst["state"], "sli": inst.get("sli"),
        "sli_text": inst.get("sli_text"), "unit": inst.get("unit"), "objective_percent": inst.get("objective_percent"),
        "budget_remaining": inst.get("budget_remaining"), "budget_left_text": inst.get("budget_left_text"),
        "active_tiers": [{"slo": inst["slo"], "tier": t["name"], "severity": t["severity"], "factor": t["factor"],
                          "burn_rate_long": t["burn_rate_long"], "burn_rate_short": t["burn_rate_short"]}
                         for t in active],
        "firing": [{"alertname": a["labels"].get("alertname"), "tier": a["labels"].get("tier"),
                    "severity": a["labels"].get("severity"), "silenced": a.get("silenced", False)} for a in firing],
    }


def _factor(t: Mapping[str, Any]) -> float:
    from fractions import Fraction

    return float(Fraction(str(t["factor"])))


def slo_summary(views: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A deployment's SLO state: meets its SLOs now unless an instance is exhausted or burning (a tier active)
    or a page fires; budget left is the smallest of its instances'; the fastest burning tier is the active
    tier with the largest factor."""
    tiers = [t for v in views for t in v["active_tiers"]]
    fastest = max(tiers, key=lambda t: (_factor(t), t["burn_rate_long"] or 0), default=None)
    budgets = [v["budget_remaining"] for v in views if v["budget_remaining"] is not None]
    page = any(a["severity"] == "page" for v in views for a in v["firing"])
    exhausted = any(v["state"] == "exhausted" for v in views)
    return {
        "meets": not (tiers or exhausted or page),
        "exhausted": exhausted, "page_firing": page,
        "budget_remaining": min(budgets) if budgets else None,
        "fastest_burning_tier": fastest,
        "states": dict(sorted(_count(v["state"] for v in views).items())),
        "instances": list(views),
    }


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(out)


# -- assembly ------------------------------------------------------------------------------------------------
def _empty(cloud: str, region: str, kind: str) -> dict[str, Any]:
    host = hosting(kind)
    return {"key": key_of(cloud, region, kind), "cloud": cloud, "region": region, "kind": kind, "hosting": host,
            "hosts": [], "requests": 0, "bad_requests": 0, "error_ratio": None,
            "tokens": {"input": 0, "output": 0, "cached": 0, "total": 0},
            "latency": dict.fromkeys(LATENCY_KINDS), "cost": None, "slo": None, "probe": None}


def cost_part(src: Source, catalog: Catalog | None, model: str, start: int, end: int,
              default_capacity_type: str) -> dict[str, dict[str, Any]] | None:
    """Per deployment key, the cost report's line for this model (None without a catalog)."""
    if catalog is None:
        return None
    report = build_report(src, catalog, start, end, COST_BY, default_capacity_type, model)
    out = {}
    for ln in report.lines:
        d = as_dict(report, ln)
        out[key_of(d["cloud"], d["region"], d["kind"])] = d
    return out


def _cost_view(dep: Mapping[str, Any], line: Mapping[str, Any] | None, priced: bool) -> dict[str, Any]:
    basis = "capacity" if dep["hosting"] == "self-hosted" else "list"
    if line is None:
        return {"pricing": basis, "usd_per_million_tokens": None, "usd_per_million_output_tokens": None,
                "spend_usd": None, "unpriced": [] if priced else ["no price catalog configured"]}
    return {"pricing": basis, "usd_per_million_tokens": line["usd_per_million_tokens"],
            "usd_per_million_output_tokens": line["usd_per_million_output_tokens"],
            "spend_usd": line["spend_usd"], "node_hours": line["node_hours"],
            "unpriced_requests": line["unpriced_requests"], "unpriced_tokens": line["unpriced_tokens"],
            "unpriced": line["unpriced"]}


def build(src: Source, model: str, start: int, end: int, catalog: Catalog | None, slo: SloState | None,
          default_capacity_type: str = "on_demand", catalog_source: str = "server") -> dict[str, Any]:
    """The compare document of `model` over [start, end) (see docs/routing.md for every field)."""
    deps: dict[str, dict[str, Any]] = {}

    def dep(cloud: str, region: str, kind: str) -> dict[str, Any]:
        k = key_of(cloud, region, kind)
        if k not in deps:
            deps[k] = _empty(cloud, region, kind)
        return deps[k]

    for r in traffic(src, model, start, end):
        d = dep(r["cloud"], r["region"], r["kind"])
        d["hosts"] = sorted(h for h in r["hosts"] if h)
        d["requests"], d["bad_requests"] = int(r["requests"]), int(r["bad"])
        d["error_ratio"] = d["bad_requests"] / d["requests"] if d["requests"] else None
        tok = {"input": int(r["input_tokens"]), "output": int(r["output_tokens"]), "cached": int(r["cached_tokens"])}
        d["tokens"] = {**tok, "total": tok["input"] + tok["output"]}
    for (cloud, region, kind, lat), s in latency_summaries(src, model, start, end).items():
        dep(cloud, region, kind)["latency"][lat] = s

    probes: dict[str, dict[str, Any]] = {}
    for r in probe_counts(src, model, start, end):
        d = dep(r["cloud"], r["region"], r["kind"])
        p = probes.setdefault(d["key"], {"requests": 0, "failed": 0, "errors": {}, "endpoints": set()})
        n = int(r["n"])
        p["requests"] += n
        if r["outcome"] != "good":
            p["failed"] += n
            et = r["error_type"] or "unknown"
            p["errors"][et] = p["errors"].get(et, 0) + n
        p["endpoints"].update(e for e in r["endpoints"] if e)
    probe_layouts: dict[tuple[str, str], list] = defaultdict(list)
    for r in probe_latency(src, model, start, end):
        d = dep(r["cloud"], r["region"], r["kind"])
        probes.setdefault(d["key"], {"requests": 0, "failed": 0, "errors": {}, "endpoints": set()})
        probe_layouts[(d["key"], PROBE_HISTOGRAMS[r["metric"]])].append(
            (r["bounds"], [int(n) for n in r["counts"]]))
    for k, p in probes.items():
        deps[k]["probe"] = {
            "requests": p["requests"], "failed": p["failed"],
            "error_ratio": p["failed"] / p["requests"] if p["requests"] else None,
            "errors": dict(sorted(p["errors"].items())), "endpoints": sorted(p["endpoints"]),
            "latency": {kind: quantiles.summary(probe_layouts.get((k, kind), ())) for kind in LATENCY_KINDS},
        }

    lines = cost_part(src, catalog, model, start, end, default_capacity_type)
    for line in (lines or {}).values():
        if line["requests"] or line["spend_usd"] not in (None, "0"):
            dep(line["cloud"], line["region"], line["kind"])

    model_slos: list[dict[str, Any]] = []
    if slo is not None:
        views = [(pinned(i, slo.filters), _instance_view(i, slo.alerts)) for i in slo.instances]
        for d in deps.values():
            d["slo"] = slo_summary([v for pins, v in views if applies(pins, model, d)])
        model_slos = [v for pins, v in views if pins.get(sc.MODEL) == model and not any(
            a in pins for a in (*PLACE, sc.HOST_NAME))]

    for d in deps.values():
        d["cost"] = _cost_view(d, None if lines is None else lines.get(d["key"]), lines is not None)
    ordered = [deps[k] for k in sorted(deps)]
    return {
        "schema_version": SCHEMA_VERSION, "model": model, "start": int(start), "end": int(end),
        "since_seconds": int(end) - int(start),
        "catalog": catalog_source if catalog is not None else None,
        "slo_evaluated_at": None if slo is None else slo.evaluated_at,
        "slo_source": None if slo is None else slo.source,
        "percentiles": {"quantiles": list(quantiles.QUANTILES), "method": quantiles.METHOD},
        "deployments": ordered, "model_slos": model_slos,
    }


def reprice(doc: Mapping[str, Any], src: Source, catalog: Catalog, default_capacity_type: str,
            catalog_source: str) -> dict[str, Any]:
    """The same document with its cost part computed under `catalog` (traffic, SLO state, probes unchanged)."""
    lines = cost_part(src, catalog, doc["model"], doc["start"], doc["end"], default_capacity_type) or {}
    out = dict(doc)
    deps = []
    for d in doc["deployments"]:
        d = dict(d)
        d["cost"] = _cost_view(d, lines.get(d["key"]), True)
        deps.append(d)
    out["deployments"] = deps
    out["catalog"] = catalog_source
    return out
