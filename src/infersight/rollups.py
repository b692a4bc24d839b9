"""Per-minute request rollups: what the SLO engine, cost reports and dashboards query.

Tables (columns documented in docs/ROLLUPS.md):
- `infersight_requests_1m` (SummingMergeTree): `Minute`, the dimensions `CloudProvider`,
  `CloudRegion`, `HostName`, `Model`, `ServerKind`, `Tenant`, and `Requests`, `BadRequests`,
  `Source` (`server`, `app`, `span`), `Requests`, `BadRequests`, `InputTokens` (all input, cached
  included), `OutputTokens`, `CachedTokens` (the cached subset of input), `ReportedCostUSD` (cost the
  instrumentation itself reported, `gen_ai.usage.cost`).
- `infersight_latency_1m` (MergeTree): the same dimensions, `Source` (`server`, `app`, `span`), `Kind`
  (`e2e`, `ttft`, `tpot`, `queue`), `Bounds` (the source's own bucket upper bounds, seconds: a scraped
  or app histogram's `ExplicitBounds`, `SPAN_BOUNDS` for spans), `BucketCounts` (len(Bounds)+1,
  non-cumulative), `Count`, `Sum` (seconds).
- `infersight_nodes_1m` (SummingMergeTree): minutes in which a node's agent scraped an inference
  server (`Samples` > 0), with `HostType` and `CapacityType`: node uptime for capacity cost.

Readers always aggregate (`sum`, `sumForEach`): rows of one minute may be split across inserts.

Materialized views fill them from what the gateway writes: DELTA sums/histograms of the
`inference` collector (a view sees one insert block, never previous values, so the agent sends
deltas) and GenAI spans (`gen_ai.request.model` set) from instrumented applications. Histograms keep
their native bounds (rows are summed per layout, never re-bucketed), so a percentile over one layout is
Prometheus' `histogram_quantile` over it (`infersight.quantiles`, the one implementation); span
durations are counted on `SPAN_BOUNDS`, a log-linear grid with buckets at most 5 % wide from 1 ms.
Where an application sends histograms and spans of the same requests, readers count the spans
(`latency_precedence`, docs/slo.md).

The views never throw and never store saturated values: a view that throws fails the whole insert
after its source rows are committed. Only finite counts in [0, MAX_ROLLUP_COUNT] are summed (the
gateway rejects other delta points of the rolled-up metrics, with a partial success), span token
attributes outside that range and costs outside [0, MAX_ROLLUP_COST_USD] count as 0, and latencies
that are not finite and >= 0 are left out. The rollup tables deduplicate blocks like the source
tables, so a deduplicated re-insert of a request is not counted twice.
"""
from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from infersight import semconv as sc
from infersight.storage.schema import SchemaOptions, render
from infersight.storage.tables import LOW, Table, array

DIMENSIONS = ("CloudProvider", "CloudRegion", "HostName", "Model", "ServerKind", "Tenant")

# The fixed grid the rollup re-bucketed onto before it kept native layouts: the union of vLLM (V0 and V1),
# SGLang and common SLO thresholds per Kind. The rollup no longer uses it; the demo's simulated servers
# expose it as their layout. Every value is in SPAN_BOUNDS.
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


def _span_bounds() -> tuple[float, ...]:
    """Bucket bounds for exact durations: per decade from 1 ms, mantissas 1-2 by 0.05, 2-5 by 0.1, 5-10 by
    0.25 (every bucket at most 5 % of its lower bound wide, every "round" threshold a boundary), to 10^4 s,
    plus the few LATENCY_BOUNDS values between grid points (640, 960, 1920, 2560, 7680)."""
    tenths = [*range(100, 200, 5), *range(200, 500, 10), *range(500, 1000, 25)]  # mantissa x 100
    grid = {float(Decimal(m) / 100 * Decimal(10) ** e) for e in range(-3, 4) for m in tenths}
    grid.add(1e4)
    grid.update(v for bounds in LATENCY_BOUNDS.values() for v in bounds)
    return tuple(sorted(grid))


# Bucket upper bounds (seconds) of the span rows: every Kind spans feed (e2e, ttft).
SPAN_BOUNDS = _span_bounds()
# Where a latency or request row came from (the `Source` column).
SOURCE_SERVER = "server"  # scraped by the inference collector (the metric carries infersight.server.kind)
SOURCE_APP = "app"  # a metric of an instrumented application (no server kind), e.g. OpenLIT's histograms
SOURCE_SPAN = "span"  # GenAI spans
# Precedence (docs/slo.md): an app row is left out where spans of the same (or an adjacent) minute, place,
# host, model (and latency Kind) exist: the app measured the same requests as its spans, more coarsely.
PRECEDENCE_KEY = ("Minute", "CloudProvider", "CloudRegion", "HostName", "Model")

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
_DIMS = (*((d, LOW) for d in DIMENSIONS), ("Source", LOW))
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
    # Probe points (semconv.TRAFFIC = probe) are synthetic: the request rollups count user traffic only.
    sources = {"source_server": SOURCE_SERVER, "source_app": SOURCE_APP, "source_span": SOURCE_SPAN,
               "traffic": sc.TRAFFIC, "traffic_probe": sc.TRAFFIC_PROBE}
    return [
        *render("rollup_requests_1m", opts, tenant=TENANT_ATTRIBUTE, server_kind=sc.SERVER_KIND,
                requests_metric=requests_metric, tokens_metric=tokens_metric, max_count=MAX_ROLLUP_COUNT,
                max_cost=MAX_ROLLUP_COST_USD, **sources),
        *render("rollup_latency_1m", opts, tenant=TENANT_ATTRIBUTE, server_kind=sc.SERVER_KIND,
                max_count=MAX_ROLLUP_COUNT, latency_metrics=", ".join(f"'{n}'" for n in LATENCY_METRICS),
                kind_of_metric=kind, span_bounds=_array(SPAN_BOUNDS), **sources),
        *render("rollup_nodes_1m", opts, capacity=CAPACITY_ATTRIBUTE),
    ]


def _precedence(db: str, table: str, key: tuple[str, ...], lookup: str) -> str:
    cols = ", ".join(key[1:])
    return (f"(Source != '{SOURCE_APP}' OR (Minute, {cols}) NOT IN (SELECT arrayJoin([Minute - 60, Minute, "
            f"Minute + 60]) AS m, {cols} FROM {db}.`{table}` WHERE Source = '{SOURCE_SPAN}' AND ({lookup})))")


def latency_precedence(db: str, lookup: str) -> str:
    """A condition on `infersight_latency_1m` rows: true for the rows a reader counts (docs/slo.md).

    Server and span rows always count. An app row (`Source = 'app'`: an instrumented application's own
    `gen_ai.server.*` histograms) is left out where span rows of the same `PRECEDENCE_KEY` and Kind exist
    in its minute or the one before or after (an SDK exports a delta every 60 s by default, so the spans of
    the requests it covers started up to a minute earlier). `lookup` bounds the span rows looked at: the
    reader's own Kind condition and time range on the table, widened by a minute each side (columns
    unqualified). Rows written before the Source column (`Source = ''`) count like a server's.
    """
    return _precedence(db, LATENCY.name, (*PRECEDENCE_KEY, "Kind"), lookup)


def requests_precedence(db: str, lookup: str) -> str:
    """The same precedence on `infersight_requests_1m` rows (an app's own request/token sums next to its spans)."""
    return _precedence(db, REQUESTS.name, PRECEDENCE_KEY, lookup)


def threshold_problem(kind: str, threshold: float) -> str | None:
    """Why `threshold` cannot be an exact latency SLO threshold of `kind`, or None.

    It must be a boundary of the span grid (spans are counted on it). Server and app histograms keep their
    own bounds, unknown before their data arrives: the latency SLI checks the layouts it reads and says
    which lack the threshold.
    """
    if threshold in SPAN_BOUNDS:
        return None
    i = bisect_left(SPAN_BOUNDS, threshold)
    near = ", ".join(repr(b) for b in SPAN_BOUNDS[max(i - 1, 0):i + 1])
    return (f"is not a bucket boundary of the {kind} latency rollup's span grid (70 per decade from 1 ms: "
            f"mantissas 1-2 by 0.05, 2-5 by 0.1, 5-10 by 0.25); nearest boundaries: {near}")
