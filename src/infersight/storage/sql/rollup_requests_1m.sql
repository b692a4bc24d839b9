-- Per-minute request and token counts (infersight.rollups). Rendered by infersight.storage.schema.render;
-- {tenant}, {server_kind}, {requests_metric}, {tokens_metric}, {max_count}, {max_cost} and the {source_*} names
-- come from infersight.rollups.
CREATE TABLE IF NOT EXISTS {db}.`infersight_requests_1m{local}`{on_cluster} (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `Model` LowCardinality(String),
    `ServerKind` LowCardinality(String),
    `Tenant` LowCardinality(String),
    `Source` LowCardinality(String),
    `Requests` UInt64,
    `BadRequests` UInt64,
    `InputTokens` UInt64,
    `OutputTokens` UInt64,
    `CachedTokens` UInt64,
    `ReportedCostUSD` Decimal(38, 12)
) ENGINE = {engine:Summing}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Databases created before the views deduplicated.
ALTER TABLE {db}.`infersight_requests_1m{local}`{on_cluster} MODIFY SETTING non_replicated_deduplication_window = {dedup_window};

-- Databases created before rows said their source: old rows read Source = ''. Source is not in such a
-- database's sorting key (ClickHouse adds a column to it only together with a new column), so a merge may
-- keep either source of two rows with the same dimensions; databases created since have it in the key.
ALTER TABLE {db}.`infersight_requests_1m{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

-- The views of databases created before the Source column.
DROP VIEW IF EXISTS {db}.`infersight_requests_1m_metrics_mv{local}`{on_cluster};
DROP VIEW IF EXISTS {db}.`infersight_requests_1m_traces_mv{local}`{on_cluster};

-- Request and token deltas of scraped servers (Source 'server': the inference collector sets the server
-- kind) or of applications (Source 'app'); finite counts in [0, max_count] only.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_requests_1m_sums_mv{local}`{on_cluster}
TO {db}.`infersight_requests_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    Attributes['gen_ai.request.model'] AS Model, Attributes['{server_kind}'] AS ServerKind,
    if(Attributes['{tenant}'] != '', Attributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    if(Attributes['{server_kind}'] != '', '{source_server}', '{source_app}') AS Source,
    toUInt64(round(sumIf(Value, MetricName = '{requests_metric}'
        AND isFinite(Value) AND Value >= 0 AND Value <= {max_count}))) AS Requests,
    toUInt64(round(sumIf(Value, MetricName = '{requests_metric}' AND Attributes['infersight.request.outcome'] = 'bad'
        AND isFinite(Value) AND Value >= 0 AND Value <= {max_count}))) AS BadRequests,
    toUInt64(round(sumIf(Value, MetricName = '{tokens_metric}' AND Attributes['gen_ai.token.type'] = 'input'
        AND isFinite(Value) AND Value >= 0 AND Value <= {max_count}))) AS InputTokens,
    toUInt64(round(sumIf(Value, MetricName = '{tokens_metric}' AND Attributes['gen_ai.token.type'] = 'output'
        AND isFinite(Value) AND Value >= 0 AND Value <= {max_count}))) AS OutputTokens,
    toUInt64(round(sumIf(Value, MetricName = '{tokens_metric}' AND Attributes['gen_ai.token.type'] = 'cached_input'
        AND isFinite(Value) AND Value >= 0 AND Value <= {max_count}))) AS CachedTokens,
    toDecimal128(0, 12) AS ReportedCostUSD
FROM {db}.`otel_metrics_sum{local}`
WHERE AggregationTemporality = 1 AND Attributes['{traffic}'] != '{traffic_probe}' AND (MetricName = '{requests_metric}' OR MetricName = '{tokens_metric}')
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source;

-- Instrumented applications: one request per GenAI span (Source 'span'); token attributes outside
-- [0, max_count] and costs outside [0, max_cost] count as 0.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_requests_1m_spans_mv{local}`{on_cluster}
TO {db}.`infersight_requests_1m{local}` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS Tenant,
    '{source_span}' AS Source,
    count() AS Requests,
    countIf(StatusCode = 'Error') AS BadRequests,
    sum(if(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) <= {max_count},
           toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']), 0)) AS InputTokens,
    sum(if(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) <= {max_count},
           toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']), 0)) AS OutputTokens,
    sum(if(toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '',
                             SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
                             SpanAttributes['gen_ai.usage.cache_read_input_tokens'])) <= {max_count},
           toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '',
                             SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
                             SpanAttributes['gen_ai.usage.cache_read_input_tokens'])), 0)) AS CachedTokens,
    sum(if(toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12) BETWEEN 0 AND {max_cost},
           toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12), toDecimal128(0, 12))) AS ReportedCostUSD
FROM {db}.`otel_traces{local}`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['{traffic}'] != '{traffic_probe}'
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source;
