"""Per-minute request rollups: what the SLO engine, cost reports and dashboards query.

Tables (columns documented in docs/ROLLUPS.md):
- `infersight_requests_1m` (SummingMergeTree): `Minute`, the dimensions `CloudProvider`,
  `CloudRegion`, `HostName`, `Model`, `ServerKind`, `Tenant`, and `Requests`, `BadRequests`,
  `InputTokens` (all input, cached included), `OutputTokens`, `CachedTokens` (the cached subset
  of input), `ReportedCostUSD` (cost the instrumentation itself reported, `gen_ai.usage.cost`).
- `infersight_latency_1m` (MergeTree): the same dimensions, `Kind` (`e2e`, `ttft`, `tpot`,
  `queue`), `Bounds` (always `LATENCY_BOUNDS[Kind]`, seconds), `BucketCounts`
  (len(Bounds)+1, non-cumulative), `Count`, `Sum` (seconds).
- `infersight_nodes_1m` (SummingMergeTree): minutes in which a node's agent scraped an inference
  server (`Samples` > 0), with `HostType` and `CapacityType`: node uptime for capacity cost.

Readers always aggregate (`sum`, `sumForEach`): rows of one minute may be split across inserts.

Materialized views fill them from what the gateway writes: DELTA sums/histograms of the
`inference` collector (a view sees one insert block, never previous values, so the agent sends
deltas) and GenAI spans (`gen_ai.request.model` set) from instrumented applications. Server
histograms are re-bucketed onto the fixed bounds: each source bucket is counted in the first
rollup bucket whose bound is >= its own upper bound, exact when the source bound is one of ours
and never optimistic (a request is never counted faster than it may have been).

The views never throw and never store saturated values: a view that throws fails the whole insert
after its source rows are committed. Only finite counts in [0, MAX_ROLLUP_COUNT] are summed (the
gateway rejects other delta points of the rolled-up metrics, with a partial success), span token
attributes outside that range and costs outside [0, MAX_ROLLUP_COST_USD] count as 0, and latencies
that are not finite and >= 0 are left out. The rollup tables deduplicate blocks like the source
tables, so a deduplicated re-insert of a request is not counted twice.
"""
from __future__ import annotations

from infersight.storage.schema import SchemaOptions, render
from infersight.storage.tables import LOW, Table, array

DIMENSIONS = ("CloudProvider", "CloudRegion", "HostName", "Model", "ServerKind", "Tenant")

# Fixed rollup bucket upper bounds (seconds) per latency Kind: the union of vLLM (V0 and V1),
# SGLang and common SLO thresholds. Only these values can be latency SLO thresholds.
LATENCY_BOUNDS: dict[str, tuple[float, ...]] = {
    "e2e": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
            30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
    "ttft": (0.001, 0.005, 0.01, 0.02, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
             1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
    "tpot": (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
             0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0),
    "queue": (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
              40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
}
# Normalised metric name (collectors.inference.model) → latency Kind.
LATENCY_METRICS = {
    "gen_ai.server.request.duration": "e2e",
    "gen_ai.server.time_to_first_token": "ttft",
    "gen_ai.server.time_per_output_token": "tpot",
    "infersight.inference.request.queue_time": "queue",
}
# Attribute (span/metric, else resource) naming the tenant; the collector sets it from config.
TENANT_ATTRIBUTE = "infersight.tenant"
# Resource attribute with the node's purchase option: on_demand, reserved or spot.
CAPACITY_ATTRIBUTE = "infersight.capacity_type"
SELF_HOSTED_KINDS = ("vllm", "tgi", "triton", "sglang")
# Largest count one point (delta sum, histogram count or bucket, span token attribute) may add: with
# it a 1M-row insert block sums below 2^52 (exact in Float64) and a UInt64 rollup column stays 4096
# full blocks per minute and series away from overflow. 2^32 requests or tokens in one point is
# far beyond any real server's scrape interval.
MAX_ROLLUP_COUNT = 2**32
MAX_ROLLUP_COST_USD = 1_000_000  # per span
# Delta sums the requests rollup counts (the gateway checks their points against MAX_ROLLUP_COUNT).
COUNTED_SUMS = ("infersight.inference.requests", "gen_ai.client.token.usage")
# The rollup tables' columns (DDL: storage/sql/rollup_*.sql). They deduplicate blocks with the source
# tables' window (storage.schema.DEDUP_WINDOW): a deduplicated source block is still pushed to the
# views, whose inserts are then deduplicated by the target table.
_DIMS = tuple((d, LOW) for d in DIMENSIONS)
REQUESTS = Table("infersight_requests_1m", (("Minute", "DateTime"), *_DIMS, *((c, "UInt64") for c in (
    "Requests", "BadRequests", "InputTokens", "OutputTokens", "CachedTokens")), ("ReportedCostUSD", "Decimal(38, 12)")))
LATENCY = Table("infersight_latency_1m", (("Minute", "DateTime"), *_DIMS, ("Kind", LOW), ("Bounds", array("Float64")),
                                          ("BucketCounts", array("UInt64")), ("Count", "UInt64"), ("Sum", "Float64")))
NODES = Table("infersight_nodes_1m", (("Minute", "DateTime"), *((c, LOW) for c in (
    "CloudProvider", "CloudRegion", "HostName", "HostType", "CapacityType")), ("Samples", "UInt64")))
TABLES = (REQUESTS, LATENCY, NODES)


def _array(values: tuple[float, ...]) -> str:
    return "CAST([" + ", ".join(repr(float(v)) for v in values) + "], 'Array(Float64)')"


def ddl(opts: SchemaOptions) -> list[str]:
    """The rollup tables and their views (`storage/sql/rollup_*.sql`), with the constants above filled in."""
    requests_metric, tokens_metric = COUNTED_SUMS
    kind = "multiIf(" + ", ".join(f"MetricName = '{n}', '{k}'" for n, k in LATENCY_METRICS.items()) + ", '')"
    bounds = ", ".join(f"Kind = '{k}', {_array(b)}" for k, b in LATENCY_BOUNDS.items())
    return [
        *render("rollup_requests_1m", opts, tenant=TENANT_ATTRIBUTE, requests_metric=requests_metric,
                tokens_metric=tokens_metric, max_count=MAX_ROLLUP_COUNT, max_cost=MAX_ROLLUP_COST_USD),
        *render("rollup_latency_1m", opts, tenant=TENANT_ATTRIBUTE, max_count=MAX_ROLLUP_COUNT,
                latency_metrics=", ".join(f"'{n}'" for n in LATENCY_METRICS), kind_of_metric=kind,
                bounds_of_kind=f"multiIf({bounds}, CAST([], 'Array(Float64)'))",
                e2e_bounds=_array(LATENCY_BOUNDS["e2e"]), ttft_bounds=_array(LATENCY_BOUNDS["ttft"])),
        *render("rollup_nodes_1m", opts, capacity=CAPACITY_ATTRIBUTE),
    ]
