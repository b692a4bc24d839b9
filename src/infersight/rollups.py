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
# Same window as the source tables (storage.schema.DEDUP_WINDOW): a deduplicated source block is
# still pushed to the views, whose inserts are deduplicated by the target table.
_DEDUP = "non_replicated_deduplication_window = 1000"


def _dims() -> str:
    return ",\n    ".join(f"`{d}` LowCardinality(String)" for d in DIMENSIONS)


def _array(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def _bounds_for(kind_expr: str) -> str:
    arms = ", ".join(f"{kind_expr} = '{k}', CAST({_array(b)}, 'Array(Float64)')" for k, b in LATENCY_BOUNDS.items())
    return f"multiIf({arms}, CAST([], 'Array(Float64)'))"


def _bucket_index(value: str, bounds: str) -> str:
    """1-based rollup bucket for an upper bound / observation (len(bounds)+1 = the +Inf bucket)."""
    return (f"if(arrayFirstIndex(r -> r >= {value}, {bounds}) = 0, length({bounds}) + 1, "
            f"arrayFirstIndex(r -> r >= {value}, {bounds}))")


def _resource_dims(res: str) -> str:
    return (f"{res}['cloud.provider'] AS CloudProvider, {res}['cloud.region'] AS CloudRegion, "
            f"{res}['host.name'] AS HostName")


def _tenant(attrs: str, res: str) -> str:
    t = TENANT_ATTRIBUTE
    return f"if({attrs}['{t}'] != '', {attrs}['{t}'], {res}['{t}']) AS Tenant"


ROLLUP_TABLES = ("infersight_requests_1m", "infersight_latency_1m", "infersight_nodes_1m")
_GROUP = "Minute, " + ", ".join(DIMENSIONS)
_METRIC_DIMS = (f"{_resource_dims('ResourceAttributes')}, Attributes['gen_ai.request.model'] AS Model, "
                f"Attributes['infersight.server.kind'] AS ServerKind, {_tenant('Attributes', 'ResourceAttributes')}")
_SPAN_DIMS = (f"{_resource_dims('ResourceAttributes')}, SpanAttributes['gen_ai.request.model'] AS Model, "
              "if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'], "
              "SpanAttributes['gen_ai.system']) AS ServerKind, "
              f"{_tenant('SpanAttributes', 'ResourceAttributes')}")


def _count(cond: str) -> str:
    ok = f"isFinite(Value) AND Value >= 0 AND Value <= {MAX_ROLLUP_COUNT}"
    return f"toUInt64(round(sumIf(Value, {cond} AND {ok})))"


def _bounded(expr: str) -> str:
    """A span's token attribute as a count: 0 unless an integer in [0, MAX_ROLLUP_COUNT]."""
    return f"if(toUInt64OrZero({expr}) <= {MAX_ROLLUP_COUNT}, toUInt64OrZero({expr}), 0)"


def _latency_ok(seconds: str) -> str:
    return f"isFinite({seconds}) AND {seconds} >= 0"


def ddl(database: str) -> list[str]:
    db = f"`{database}`"
    key = ", ".join(DIMENSIONS)
    req, tok = (f"MetricName = '{n}'" for n in COUNTED_SUMS)
    latency_names = ", ".join(f"'{n}'" for n in LATENCY_METRICS)
    kind = "multiIf(" + ", ".join(f"MetricName = '{n}', '{k}'" for n, k in LATENCY_METRICS.items()) + ", '')"
    source_index = _bucket_index("u", "Bounds")
    cached = ("if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '', "
              "SpanAttributes['gen_ai.usage.cache_read.input_tokens'], "
              "SpanAttributes['gen_ai.usage.cache_read_input_tokens'])")
    cost = "toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12)"

    def span_latency(name: str, kind_name: str, seconds: str, where: str) -> str:
        bounds = _array(LATENCY_BOUNDS[kind_name])
        return f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`{name}` TO {db}.`infersight_latency_1m` AS
SELECT toStartOfMinute(Timestamp) AS Minute, {_SPAN_DIMS}, '{kind_name}' AS Kind,
    CAST({bounds}, 'Array(Float64)') AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = {_bucket_index(seconds, 'Bounds')}), range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum({seconds}) AS Sum
FROM {db}.`otel_traces`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND {_latency_ok(seconds)}{where}
GROUP BY {_GROUP}, Kind, Bounds"""

    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.`infersight_requests_1m` (
    `Minute` DateTime,
    {_dims()},
    `Requests` UInt64,
    `BadRequests` UInt64,
    `InputTokens` UInt64,
    `OutputTokens` UInt64,
    `CachedTokens` UInt64,
    `ReportedCostUSD` Decimal(38, 12)
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, {key})
SETTINGS {_DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.`infersight_latency_1m` (
    `Minute` DateTime,
    {_dims()},
    `Kind` LowCardinality(String),
    `Bounds` Array(Float64),
    `BucketCounts` Array(UInt64),
    `Count` UInt64,
    `Sum` Float64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(Minute)
ORDER BY (Kind, Minute, {key})
SETTINGS {_DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.`infersight_nodes_1m` (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `HostType` LowCardinality(String),
    `CapacityType` LowCardinality(String),
    `Samples` UInt64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType)
SETTINGS {_DEDUP}""",
        # Databases created before the views deduplicated.
        *(f"ALTER TABLE {db}.`{t}` MODIFY SETTING {_DEDUP}" for t in ROLLUP_TABLES),
        # Scraped servers: request and token deltas.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_requests_1m_metrics_mv`
TO {db}.`infersight_requests_1m` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, {_METRIC_DIMS},
    {_count(req)} AS Requests,
    {_count(req + " AND Attributes['infersight.request.outcome'] = 'bad'")} AS BadRequests,
    {_count(tok + " AND Attributes['gen_ai.token.type'] = 'input'")} AS InputTokens,
    {_count(tok + " AND Attributes['gen_ai.token.type'] = 'output'")} AS OutputTokens,
    {_count(tok + " AND Attributes['gen_ai.token.type'] = 'cached_input'")} AS CachedTokens,
    toDecimal128(0, 12) AS ReportedCostUSD
FROM {db}.`otel_metrics_sum`
WHERE AggregationTemporality = 1 AND ({req} OR {tok})
GROUP BY {_GROUP}""",
        # Scraped servers: latency histogram deltas, re-bucketed onto LATENCY_BOUNDS.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_metrics_mv`
TO {db}.`infersight_latency_1m` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, {_METRIC_DIMS}, {kind} AS Kind,
    {_bounds_for('Kind')} AS Bounds,
    sumForEach(arrayMap(j -> arraySum(arrayMap((c, t) -> if(t = j, c, 0), SourceCounts,
        arrayMap(u -> {source_index}, arrayPushBack(ExplicitBounds, inf)))), range(1, length(Bounds) + 2)))
        AS BucketCounts,
    sum(SourceCount) AS Count, sum(SourceSum) AS Sum
FROM (SELECT *, BucketCounts AS SourceCounts, Count AS SourceCount, Sum AS SourceSum
      FROM {db}.`otel_metrics_histogram`
      WHERE AggregationTemporality = 1 AND MetricName IN ({latency_names}) AND Count > 0
        AND length(BucketCounts) = length(ExplicitBounds) + 1 AND Count <= {MAX_ROLLUP_COUNT}
        AND arrayAll(c -> c <= {MAX_ROLLUP_COUNT}, BucketCounts) AND {_latency_ok('Sum')})
GROUP BY {_GROUP}, Kind, Bounds""",
        # Instrumented applications: one request per GenAI span.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_requests_1m_traces_mv`
TO {db}.`infersight_requests_1m` AS
SELECT toStartOfMinute(Timestamp) AS Minute, {_SPAN_DIMS},
    count() AS Requests,
    countIf(StatusCode = 'Error') AS BadRequests,
    sum({_bounded("SpanAttributes['gen_ai.usage.input_tokens']")}) AS InputTokens,
    sum({_bounded("SpanAttributes['gen_ai.usage.output_tokens']")}) AS OutputTokens,
    sum({_bounded(cached)}) AS CachedTokens,
    sum(if({cost} BETWEEN 0 AND {MAX_ROLLUP_COST_USD}, {cost}, toDecimal128(0, 12))) AS ReportedCostUSD
FROM {db}.`otel_traces`
WHERE SpanAttributes['gen_ai.request.model'] != ''
GROUP BY {_GROUP}""",
        span_latency("infersight_latency_1m_traces_mv", "e2e", "Duration / 1e9", ""),
        span_latency("infersight_latency_1m_traces_ttft_mv", "ttft",
                     "toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token'])",
                     "\n  AND SpanAttributes['gen_ai.server.time_to_first_token'] != ''"),
        # Node uptime: a minute counts when the agent reported any inference endpoint scrape.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_nodes_1m_mv` TO {db}.`infersight_nodes_1m` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, {_resource_dims('ResourceAttributes')},
    ResourceAttributes['host.type'] AS HostType, ResourceAttributes['{CAPACITY_ATTRIBUTE}'] AS CapacityType,
    count() AS Samples
FROM {db}.`otel_metrics_gauge`
WHERE MetricName = 'infersight.inference.endpoint.up'
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType""",
    ]
