-- Per-minute latency histograms in each source's own bucket layout (infersight.rollups). Rendered by
-- infersight.storage.schema.render; {tenant}, {server_kind}, {max_count}, {latency_metrics}, {kind_of_metric},
-- {span_bounds} and the {source_*} names are generated from infersight.rollups.
-- Scraped and app histograms keep their ExplicitBounds (rows are summed per layout, never re-bucketed);
-- spans (exact durations) are counted on the fine log-linear grid rollups.SPAN_BOUNDS.
CREATE TABLE IF NOT EXISTS {db}.`infersight_latency_1m{local}`{on_cluster} (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `Model` LowCardinality(String),
    `ServerKind` LowCardinality(String),
    `Tenant` LowCardinality(String),
    `Source` LowCardinality(String),
    `Kind` LowCardinality(String),
    `Bounds` Array(Float64),
    `BucketCounts` Array(UInt64),
    `Count` UInt64,
    `Sum` Float64,
    `Layout` UInt64 MATERIALIZED cityHash64(Bounds),
    `NonZeroBuckets` Array(UInt32) MATERIALIZED arrayFilter((i, c) -> c > 0, arrayEnumerate(BucketCounts), BucketCounts),
    `NonZeroCounts` Array(UInt64) MATERIALIZED arrayFilter(c -> c > 0, BucketCounts)
) ENGINE = {engine}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Kind, Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Databases created before the views deduplicated.
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} MODIFY SETTING non_replicated_deduplication_window = {dedup_window};

-- Databases created before rows said their source: their rows read Source = '' (counted like a server's).
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

-- Written at insert for the web UI's percentiles (webui.percentiles): the layout's id and the non-zero buckets
-- (1-based positions into BucketCounts, and their counts; a span row holds ~5 of its ~330 buckets). Rows of
-- databases created before them compute them when read.
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Layout` UInt64 MATERIALIZED cityHash64(Bounds);
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `NonZeroBuckets` Array(UInt32) MATERIALIZED arrayFilter((i, c) -> c > 0, arrayEnumerate(BucketCounts), BucketCounts);
ALTER TABLE {db}.`infersight_latency_1m{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `NonZeroCounts` Array(UInt64) MATERIALIZED arrayFilter(c -> c > 0, BucketCounts);

-- The views of databases created before the native layouts (they re-bucketed onto one fixed grid).
DROP VIEW IF EXISTS {db}.`infersight_latency_1m_metrics_mv{local}`{on_cluster};
DROP VIEW IF EXISTS {db}.`infersight_latency_1m_traces_mv{local}`{on_cluster};
DROP VIEW IF EXISTS {db}.`infersight_latency_1m_traces_ttft_mv{local}`{on_cluster};

-- Histograms of scraped servers (Source 'server': the inference collector sets the server kind) and of
-- instrumented applications (Source 'app', e.g. OpenLIT's gen_ai.server.* histograms): deltas, summed per
-- layout.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_histograms_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    Attributes['gen_ai.request.model'] AS Model, Attributes['{server_kind}'] AS ServerKind,
    if(Attributes['{tenant}'] != '', Attributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    if(Attributes['{server_kind}'] != '', '{source_server}', '{source_app}') AS Source,
    {kind_of_metric} AS Kind,
    ExplicitBounds AS Bounds,
    sumForEach(SourceCounts) AS BucketCounts,
    sum(SourceCount) AS Count, sum(SourceSum) AS Sum
FROM (SELECT *, BucketCounts AS SourceCounts, Count AS SourceCount, Sum AS SourceSum
      FROM {db}.`otel_metrics_histogram{local}`
      WHERE AggregationTemporality = 1 AND Attributes['{traffic}'] != '{traffic_probe}' AND MetricName IN ({latency_metrics}) AND Count > 0
        AND length(BucketCounts) = length(ExplicitBounds) + 1 AND Count <= {max_count}
        AND arrayAll(c -> c <= {max_count}, BucketCounts) AND isFinite(Sum) AND Sum >= 0
        AND arrayAll(b -> isFinite(b), ExplicitBounds) AND arraySort(arrayDistinct(ExplicitBounds)) = ExplicitBounds)
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;

-- Instrumented applications: a GenAI span's duration is an e2e latency (Source 'span', the fine grid).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_spans_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    '{source_span}' AS Source,
    'e2e' AS Kind,
    {span_bounds} AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(arrayFirstIndex(r -> r >= Duration / 1e9, Bounds) = 0, length(Bounds) + 1,
                                             arrayFirstIndex(r -> r >= Duration / 1e9, Bounds))),
                        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(Duration / 1e9) AS Sum
FROM {db}.`otel_traces{local}`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['{traffic}'] != '{traffic_probe}' AND isFinite(Duration / 1e9) AND Duration / 1e9 >= 0
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;

-- Instrumented applications: the span's time-to-first-token attribute, when set.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_latency_1m_spans_ttft_mv{local}`{on_cluster}
TO {db}.`infersight_latency_1m{local}` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    '{source_span}' AS Source,
    'ttft' AS Kind,
    {span_bounds} AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds) = 0,
        length(Bounds) + 1,
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds))),
        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token'])) AS Sum
FROM {db}.`otel_traces{local}`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['{traffic}'] != '{traffic_probe}'
  AND isFinite(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']))
  AND toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']) >= 0
  AND SpanAttributes['gen_ai.server.time_to_first_token'] != ''
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;
