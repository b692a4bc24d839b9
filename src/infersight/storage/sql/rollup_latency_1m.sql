-- Per-minute latency histograms on fixed bounds (infersight.rollups). Rendered by infersight.storage.schema.render;
-- {tenant}, {max_count}, {latency_metrics}, {kind_of_metric}, {bounds_of_kind}, {e2e_bounds} and
-- {ttft_bounds} are generated from infersight.rollups (LATENCY_METRICS, LATENCY_BOUNDS).
-- A source bucket is counted in the first rollup bucket whose bound is >= its own upper bound.
CREATE TABLE IF NOT EXISTS {db}.`infersight_latency_1m{local}`{on_cluster} (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `Model` LowCardinality(String),
    `ServerKind` LowCardinality(String),
    `Tenant` LowCardinality(String),
    `Kind` LowCardinality(String),
    `Bounds` Array(Float64),
    `BucketCounts` Array(UInt64),
    `Count` UInt64,
    `Sum` Float64
) ENGINE = {engine}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Kind, Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Databases created before the views deduplicated.
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} MODIFY SETTING non_replicated_deduplication_window = {dedup_window};

-- Scraped servers: latency histogram deltas, re-bucketed onto the fixed bounds.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_metrics_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    Attributes['gen_ai.request.model'] AS Model, Attributes['infersight.server.kind'] AS ServerKind,
    if(Attributes['{tenant}'] != '', Attributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    {kind_of_metric} AS Kind,
    {bounds_of_kind} AS Bounds,
    sumForEach(arrayMap(j -> arraySum(arrayMap((c, t) -> if(t = j, c, 0), SourceCounts,
        arrayMap(u -> if(arrayFirstIndex(r -> r >= u, Bounds) = 0, length(Bounds) + 1, arrayFirstIndex(r -> r >= u, Bounds)),
                 arrayPushBack(ExplicitBounds, inf)))), range(1, length(Bounds) + 2)))
        AS BucketCounts,
    sum(SourceCount) AS Count, sum(SourceSum) AS Sum
FROM (SELECT *, BucketCounts AS SourceCounts, Count AS SourceCount, Sum AS SourceSum
      FROM {db}.`otel_metrics_histogram{local}`
      WHERE AggregationTemporality = 1 AND MetricName IN ({latency_metrics}) AND Count > 0
        AND length(BucketCounts) = length(ExplicitBounds) + 1 AND Count <= {max_count}
        AND arrayAll(c -> c <= {max_count}, BucketCounts) AND isFinite(Sum) AND Sum >= 0)
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Kind, Bounds;

-- Instrumented applications: a GenAI span's duration is an e2e latency.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_traces_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    'e2e' AS Kind,
    {e2e_bounds} AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(arrayFirstIndex(r -> r >= Duration / 1e9, Bounds) = 0, length(Bounds) + 1,
                                             arrayFirstIndex(r -> r >= Duration / 1e9, Bounds))),
                        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(Duration / 1e9) AS Sum
FROM {db}.`otel_traces{local}`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND isFinite(Duration / 1e9) AND Duration / 1e9 >= 0
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Kind, Bounds;

-- Instrumented applications: the span's time-to-first-token attribute, when set.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_traces_ttft_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    'ttft' AS Kind,
    {ttft_bounds} AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds) = 0,
        length(Bounds) + 1,
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds))),
        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token'])) AS Sum
FROM {db}.`otel_traces{local}`
WHERE SpanAttributes['gen_ai.request.model'] != ''
  AND isFinite(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']))
  AND toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']) >= 0
  AND SpanAttributes['gen_ai.server.time_to_first_token'] != ''
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Kind, Bounds;
