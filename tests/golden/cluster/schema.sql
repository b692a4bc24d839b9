-- infersight's schema on ClickHouse cluster `infersight` (2 shards x 2 replicas, docs/deploy.md),
-- as `infersight server` runs it with storage.cluster set (storage.schema.cluster_ddl).
-- Regenerate: UPDATE_GOLDEN=1 pytest tests/test_cluster_ddl.py

CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `infersight`;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_schema_local` ON CLUSTER `infersight` (Component String, Version UInt32, AppliedAt DateTime DEFAULT now()) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY Component;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_schema` ON CLUSTER `infersight` AS `otel`.`infersight_schema_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_schema_local`, cityHash64(Component));

CREATE TABLE IF NOT EXISTS `otel`.`otel_logs_local` ON CLUSTER `infersight` (
    `Timestamp` DateTime64(9) COMMENT 'Event timestamp with nanosecond precision' CODEC(Delta(8), ZSTD(1)),
    `TraceId` String COMMENT 'W3C trace identifier' CODEC(ZSTD(1)),
    `SpanId` String COMMENT 'W3C span identifier' CODEC(ZSTD(1)),
    `TraceFlags` UInt8 COMMENT 'W3C trace flags',
    `SeverityText` LowCardinality(String) COMMENT 'Log severity as text' CODEC(ZSTD(1)),
    `SeverityNumber` UInt8 COMMENT 'Log severity as number (1-24)',
    `ServiceName` LowCardinality(String) COMMENT 'Service that emitted the log' CODEC(ZSTD(1)),
    `Body` String COMMENT 'Log message body' CODEC(ZSTD(1)),
    `ResourceSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the resource' CODEC(ZSTD(1)),
    `ResourceAttributes` Map(LowCardinality(String), String) COMMENT 'Resource attributes as key-value pairs' CODEC(ZSTD(1)),
    `ScopeSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the instrumentation scope' CODEC(ZSTD(1)),
    `ScopeName` String COMMENT 'Instrumentation scope name' CODEC(ZSTD(1)),
    `ScopeVersion` LowCardinality(String) COMMENT 'Instrumentation scope version' CODEC(ZSTD(1)),
    `ScopeAttributes` Map(LowCardinality(String), String) COMMENT 'Instrumentation scope attributes' CODEC(ZSTD(1)),
    `LogAttributes` Map(LowCardinality(String), String) COMMENT 'Log record attributes' CODEC(ZSTD(1)),
    `EventName` String COMMENT 'Event name for log records representing events' CODEC(ZSTD(1)),
    `__otel_materialized_k8s.cluster.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.cluster.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.container.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.container.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.deployment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.deployment.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.namespace.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.namespace.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.node.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.node.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.uid` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.uid'] CODEC(ZSTD(1)),
    `__otel_materialized_deployment.environment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['deployment.environment.name'] CODEC(ZSTD(1)),

    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8

) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_logs` ON CLUSTER `infersight` AS `otel`.`otel_logs_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_logs_local`, cityHash64(ResourceAttributes['host.name']));

CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_local` ON CLUSTER `infersight` (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),

    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,

    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `infersight` AS `otel`.`otel_traces_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_traces_local`, cityHash64(TraceId));

CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_local` ON CLUSTER `infersight` (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_trace_id_ts` ON CLUSTER `infersight` AS `otel`.`otel_traces_trace_id_ts_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_traces_trace_id_ts_local`, cityHash64(TraceId));

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_mv_local` ON CLUSTER `infersight` TO `otel`.`otel_traces_trace_id_ts_local`
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) AS Start,
    max(toDateTime(Timestamp)) AS End
FROM `otel`.`otel_traces_local`
WHERE TraceId != ''
GROUP BY TraceId;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_gauge_local` ON CLUSTER `infersight` (
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime,
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
    ) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    
    PARTITION BY toDate(TimeUnix)
    ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_gauge` ON CLUSTER `infersight` AS `otel`.`otel_metrics_gauge_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_metrics_gauge_local`, cityHash64(ResourceAttributes['host.name']));

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_sum_local` ON CLUSTER `infersight` (
                                     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32  CODEC(ZSTD(1)),
    Exemplars Nested (
                         FilteredAttributes Map(LowCardinality(String), String),
    TimeUnix DateTime,
    Value Float64,
    SpanId String,
    TraceId String
    ) CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
    ) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    
    PARTITION BY toDate(TimeUnix)
    ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_sum` ON CLUSTER `infersight` AS `otel`.`otel_metrics_sum_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_metrics_sum_local`, cityHash64(ResourceAttributes['host.name']));

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_histogram_local` ON CLUSTER `infersight` (
                                     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),
    Exemplars Nested (
                         FilteredAttributes Map(LowCardinality(String), String),
    TimeUnix DateTime,
    Value Float64,
    SpanId String,
    TraceId String
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
    ) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    
    PARTITION BY toDate(TimeUnix)
    ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_histogram` ON CLUSTER `infersight` AS `otel`.`otel_metrics_histogram_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_metrics_histogram_local`, cityHash64(ResourceAttributes['host.name']));

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_exponential_histogram_local` ON CLUSTER `infersight` (
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime,
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),
    Flags UInt32  CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
    ) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    
    PARTITION BY toDate(TimeUnix)
    ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_exponential_histogram` ON CLUSTER `infersight` AS `otel`.`otel_metrics_exponential_histogram_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_metrics_exponential_histogram_local`, cityHash64(ResourceAttributes['host.name']));

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_summary_local` ON CLUSTER `infersight` (
                                     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName LowCardinality(String) CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime CODEC(Delta, ZSTD(1)),
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested(
                               Quantile Float64,
                               Value Float64
                           ) CODEC(ZSTD(1)),
    Flags UInt32  CODEC(ZSTD(1)),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1
    ) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    
    PARTITION BY toDate(TimeUnix)
    ORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_summary` ON CLUSTER `infersight` AS `otel`.`otel_metrics_summary_local`
ENGINE = Distributed(`infersight`, `otel`, `otel_metrics_summary_local`, cityHash64(ResourceAttributes['host.name']));

ALTER TABLE `otel`.`otel_logs_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_traces_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_traces_trace_id_ts_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_metrics_gauge_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_metrics_sum_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_metrics_histogram_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_metrics_exponential_histogram_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

ALTER TABLE `otel`.`otel_metrics_summary_local` ON CLUSTER `infersight` MODIFY SETTING merge_selector_base = 20;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_requests_1m_local` ON CLUSTER `infersight` (
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
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_requests_1m` ON CLUSTER `infersight` AS `otel`.`infersight_requests_1m_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_requests_1m_local`, cityHash64(HostName));

ALTER TABLE `otel`.`infersight_requests_1m_local` ON CLUSTER `infersight` MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE `otel`.`infersight_requests_1m_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

ALTER TABLE `otel`.`infersight_requests_1m` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

DROP VIEW IF EXISTS `otel`.`infersight_requests_1m_metrics_mv_local` ON CLUSTER `infersight`;

DROP VIEW IF EXISTS `otel`.`infersight_requests_1m_traces_mv_local` ON CLUSTER `infersight`;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_requests_1m_sums_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_requests_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    Attributes['gen_ai.request.model'] AS Model, Attributes['infersight.server.kind'] AS ServerKind,
    if(Attributes['infersight.tenant'] != '', Attributes['infersight.tenant'], ResourceAttributes['infersight.tenant']) AS Tenant,
    if(Attributes['infersight.server.kind'] != '', 'server', 'app') AS Source,
    toUInt64(round(sumIf(Value, MetricName = 'infersight.inference.requests'
        AND isFinite(Value) AND Value >= 0 AND Value <= 4294967296))) AS Requests,
    toUInt64(round(sumIf(Value, MetricName = 'infersight.inference.requests' AND Attributes['infersight.request.outcome'] = 'bad'
        AND isFinite(Value) AND Value >= 0 AND Value <= 4294967296))) AS BadRequests,
    toUInt64(round(sumIf(Value, MetricName = 'gen_ai.client.token.usage' AND Attributes['gen_ai.token.type'] = 'input'
        AND isFinite(Value) AND Value >= 0 AND Value <= 4294967296))) AS InputTokens,
    toUInt64(round(sumIf(Value, MetricName = 'gen_ai.client.token.usage' AND Attributes['gen_ai.token.type'] = 'output'
        AND isFinite(Value) AND Value >= 0 AND Value <= 4294967296))) AS OutputTokens,
    toUInt64(round(sumIf(Value, MetricName = 'gen_ai.client.token.usage' AND Attributes['gen_ai.token.type'] = 'cached_input'
        AND isFinite(Value) AND Value >= 0 AND Value <= 4294967296))) AS CachedTokens,
    toDecimal128(0, 12) AS ReportedCostUSD
FROM `otel`.`otel_metrics_sum_local`
WHERE AggregationTemporality = 1 AND Attributes['infersight.traffic'] != 'probe' AND (MetricName = 'infersight.inference.requests' OR MetricName = 'gen_ai.client.token.usage')
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_requests_1m_spans_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_requests_1m_local` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['infersight.tenant'] != '', SpanAttributes['infersight.tenant'], ResourceAttributes['infersight.tenant']) AS Tenant,
    'span' AS Source,
    count() AS Requests,
    countIf(StatusCode = 'Error') AS BadRequests,
    sum(if(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) <= 4294967296,
           toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']), 0)) AS InputTokens,
    sum(if(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) <= 4294967296,
           toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']), 0)) AS OutputTokens,
    sum(if(toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '',
                             SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
                             SpanAttributes['gen_ai.usage.cache_read_input_tokens'])) <= 4294967296,
           toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '',
                             SpanAttributes['gen_ai.usage.cache_read.input_tokens'],
                             SpanAttributes['gen_ai.usage.cache_read_input_tokens'])), 0)) AS CachedTokens,
    sum(if(toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12) BETWEEN 0 AND 1000000,
           toDecimal128OrZero(SpanAttributes['gen_ai.usage.cost'], 12), toDecimal128(0, 12))) AS ReportedCostUSD
FROM `otel`.`otel_traces_local`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['infersight.traffic'] != 'probe'
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` (
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
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(Minute)
ORDER BY (Kind, Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_latency_1m` ON CLUSTER `infersight` AS `otel`.`infersight_latency_1m_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_latency_1m_local`, cityHash64(HostName));

ALTER TABLE `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

ALTER TABLE `otel`.`infersight_latency_1m` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Source` LowCardinality(String) AFTER `Tenant`;

ALTER TABLE `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Layout` UInt64 MATERIALIZED cityHash64(Bounds);

ALTER TABLE `otel`.`infersight_latency_1m` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Layout` UInt64 MATERIALIZED cityHash64(Bounds);

ALTER TABLE `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `NonZeroBuckets` Array(UInt32) MATERIALIZED arrayFilter((i, c) -> c > 0, arrayEnumerate(BucketCounts), BucketCounts);

ALTER TABLE `otel`.`infersight_latency_1m` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `NonZeroBuckets` Array(UInt32) MATERIALIZED arrayFilter((i, c) -> c > 0, arrayEnumerate(BucketCounts), BucketCounts);

ALTER TABLE `otel`.`infersight_latency_1m_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `NonZeroCounts` Array(UInt64) MATERIALIZED arrayFilter(c -> c > 0, BucketCounts);

ALTER TABLE `otel`.`infersight_latency_1m` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `NonZeroCounts` Array(UInt64) MATERIALIZED arrayFilter(c -> c > 0, BucketCounts);

DROP VIEW IF EXISTS `otel`.`infersight_latency_1m_metrics_mv_local` ON CLUSTER `infersight`;

DROP VIEW IF EXISTS `otel`.`infersight_latency_1m_traces_mv_local` ON CLUSTER `infersight`;

DROP VIEW IF EXISTS `otel`.`infersight_latency_1m_traces_ttft_mv_local` ON CLUSTER `infersight`;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_latency_1m_histograms_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_latency_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    Attributes['gen_ai.request.model'] AS Model, Attributes['infersight.server.kind'] AS ServerKind,
    if(Attributes['infersight.tenant'] != '', Attributes['infersight.tenant'], ResourceAttributes['infersight.tenant']) AS Tenant,
    if(Attributes['infersight.server.kind'] != '', 'server', 'app') AS Source,
    multiIf(MetricName = 'gen_ai.server.request.duration', 'e2e', MetricName = 'gen_ai.server.time_to_first_token', 'ttft', MetricName = 'gen_ai.server.time_per_output_token', 'tpot', MetricName = 'infersight.inference.request.queue_time', 'queue', '') AS Kind,
    ExplicitBounds AS Bounds,
    sumForEach(SourceCounts) AS BucketCounts,
    sum(SourceCount) AS Count, sum(SourceSum) AS Sum
FROM (SELECT *, BucketCounts AS SourceCounts, Count AS SourceCount, Sum AS SourceSum
      FROM `otel`.`otel_metrics_histogram_local`
      WHERE AggregationTemporality = 1 AND Attributes['infersight.traffic'] != 'probe' AND MetricName IN ('gen_ai.server.request.duration', 'gen_ai.server.time_to_first_token', 'gen_ai.server.time_per_output_token', 'infersight.inference.request.queue_time') AND Count > 0
        AND length(BucketCounts) = length(ExplicitBounds) + 1 AND Count <= 4294967296
        AND arrayAll(c -> c <= 4294967296, BucketCounts) AND isFinite(Sum) AND Sum >= 0
        AND arrayAll(b -> isFinite(b), ExplicitBounds) AND arraySort(arrayDistinct(ExplicitBounds)) = ExplicitBounds)
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_latency_1m_spans_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_latency_1m_local` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['infersight.tenant'] != '', SpanAttributes['infersight.tenant'], ResourceAttributes['infersight.tenant']) AS Tenant,
    'span' AS Source,
    'e2e' AS Kind,
    CAST([0.001, 0.00105, 0.0011, 0.00115, 0.0012, 0.00125, 0.0013, 0.00135, 0.0014, 0.00145, 0.0015, 0.00155, 0.0016, 0.00165, 0.0017, 0.00175, 0.0018, 0.00185, 0.0019, 0.00195, 0.002, 0.0021, 0.0022, 0.0023, 0.0024, 0.0025, 0.0026, 0.0027, 0.0028, 0.0029, 0.003, 0.0031, 0.0032, 0.0033, 0.0034, 0.0035, 0.0036, 0.0037, 0.0038, 0.0039, 0.004, 0.0041, 0.0042, 0.0043, 0.0044, 0.0045, 0.0046, 0.0047, 0.0048, 0.0049, 0.005, 0.00525, 0.0055, 0.00575, 0.006, 0.00625, 0.0065, 0.00675, 0.007, 0.00725, 0.0075, 0.00775, 0.008, 0.00825, 0.0085, 0.00875, 0.009, 0.00925, 0.0095, 0.00975, 0.01, 0.0105, 0.011, 0.0115, 0.012, 0.0125, 0.013, 0.0135, 0.014, 0.0145, 0.015, 0.0155, 0.016, 0.0165, 0.017, 0.0175, 0.018, 0.0185, 0.019, 0.0195, 0.02, 0.021, 0.022, 0.023, 0.024, 0.025, 0.026, 0.027, 0.028, 0.029, 0.03, 0.031, 0.032, 0.033, 0.034, 0.035, 0.036, 0.037, 0.038, 0.039, 0.04, 0.041, 0.042, 0.043, 0.044, 0.045, 0.046, 0.047, 0.048, 0.049, 0.05, 0.0525, 0.055, 0.0575, 0.06, 0.0625, 0.065, 0.0675, 0.07, 0.0725, 0.075, 0.0775, 0.08, 0.0825, 0.085, 0.0875, 0.09, 0.0925, 0.095, 0.0975, 0.1, 0.105, 0.11, 0.115, 0.12, 0.125, 0.13, 0.135, 0.14, 0.145, 0.15, 0.155, 0.16, 0.165, 0.17, 0.175, 0.18, 0.185, 0.19, 0.195, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.28, 0.29, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38, 0.39, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.5, 0.525, 0.55, 0.575, 0.6, 0.625, 0.65, 0.675, 0.7, 0.725, 0.75, 0.775, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5, 1.55, 1.6, 1.65, 1.7, 1.75, 1.8, 1.85, 1.9, 1.95, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.25, 5.5, 5.75, 6.0, 6.25, 6.5, 6.75, 7.0, 7.25, 7.5, 7.75, 8.0, 8.25, 8.5, 8.75, 9.0, 9.25, 9.5, 9.75, 10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0, 15.5, 16.0, 16.5, 17.0, 17.5, 18.0, 18.5, 19.0, 19.5, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 52.5, 55.0, 57.5, 60.0, 62.5, 65.0, 67.5, 70.0, 72.5, 75.0, 77.5, 80.0, 82.5, 85.0, 87.5, 90.0, 92.5, 95.0, 97.5, 100.0, 105.0, 110.0, 115.0, 120.0, 125.0, 130.0, 135.0, 140.0, 145.0, 150.0, 155.0, 160.0, 165.0, 170.0, 175.0, 180.0, 185.0, 190.0, 195.0, 200.0, 210.0, 220.0, 230.0, 240.0, 250.0, 260.0, 270.0, 280.0, 290.0, 300.0, 310.0, 320.0, 330.0, 340.0, 350.0, 360.0, 370.0, 380.0, 390.0, 400.0, 410.0, 420.0, 430.0, 440.0, 450.0, 460.0, 470.0, 480.0, 490.0, 500.0, 525.0, 550.0, 575.0, 600.0, 625.0, 640.0, 650.0, 675.0, 700.0, 725.0, 750.0, 775.0, 800.0, 825.0, 850.0, 875.0, 900.0, 925.0, 950.0, 960.0, 975.0, 1000.0, 1050.0, 1100.0, 1150.0, 1200.0, 1250.0, 1300.0, 1350.0, 1400.0, 1450.0, 1500.0, 1550.0, 1600.0, 1650.0, 1700.0, 1750.0, 1800.0, 1850.0, 1900.0, 1920.0, 1950.0, 2000.0, 2100.0, 2200.0, 2300.0, 2400.0, 2500.0, 2560.0, 2600.0, 2700.0, 2800.0, 2900.0, 3000.0, 3100.0, 3200.0, 3300.0, 3400.0, 3500.0, 3600.0, 3700.0, 3800.0, 3900.0, 4000.0, 4100.0, 4200.0, 4300.0, 4400.0, 4500.0, 4600.0, 4700.0, 4800.0, 4900.0, 5000.0, 5250.0, 5500.0, 5750.0, 6000.0, 6250.0, 6500.0, 6750.0, 7000.0, 7250.0, 7500.0, 7680.0, 7750.0, 8000.0, 8250.0, 8500.0, 8750.0, 9000.0, 9250.0, 9500.0, 9750.0, 10000.0], 'Array(Float64)') AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(arrayFirstIndex(r -> r >= Duration / 1e9, Bounds) = 0, length(Bounds) + 1,
                                             arrayFirstIndex(r -> r >= Duration / 1e9, Bounds))),
                        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(Duration / 1e9) AS Sum
FROM `otel`.`otel_traces_local`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['infersight.traffic'] != 'probe' AND isFinite(Duration / 1e9) AND Duration / 1e9 >= 0
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_latency_1m_spans_ttft_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_latency_1m_local` AS
SELECT toStartOfMinute(Timestamp) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    SpanAttributes['gen_ai.request.model'] AS Model,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS ServerKind,
    if(SpanAttributes['infersight.tenant'] != '', SpanAttributes['infersight.tenant'], ResourceAttributes['infersight.tenant']) AS Tenant,
    'span' AS Source,
    'ttft' AS Kind,
    CAST([0.001, 0.00105, 0.0011, 0.00115, 0.0012, 0.00125, 0.0013, 0.00135, 0.0014, 0.00145, 0.0015, 0.00155, 0.0016, 0.00165, 0.0017, 0.00175, 0.0018, 0.00185, 0.0019, 0.00195, 0.002, 0.0021, 0.0022, 0.0023, 0.0024, 0.0025, 0.0026, 0.0027, 0.0028, 0.0029, 0.003, 0.0031, 0.0032, 0.0033, 0.0034, 0.0035, 0.0036, 0.0037, 0.0038, 0.0039, 0.004, 0.0041, 0.0042, 0.0043, 0.0044, 0.0045, 0.0046, 0.0047, 0.0048, 0.0049, 0.005, 0.00525, 0.0055, 0.00575, 0.006, 0.00625, 0.0065, 0.00675, 0.007, 0.00725, 0.0075, 0.00775, 0.008, 0.00825, 0.0085, 0.00875, 0.009, 0.00925, 0.0095, 0.00975, 0.01, 0.0105, 0.011, 0.0115, 0.012, 0.0125, 0.013, 0.0135, 0.014, 0.0145, 0.015, 0.0155, 0.016, 0.0165, 0.017, 0.0175, 0.018, 0.0185, 0.019, 0.0195, 0.02, 0.021, 0.022, 0.023, 0.024, 0.025, 0.026, 0.027, 0.028, 0.029, 0.03, 0.031, 0.032, 0.033, 0.034, 0.035, 0.036, 0.037, 0.038, 0.039, 0.04, 0.041, 0.042, 0.043, 0.044, 0.045, 0.046, 0.047, 0.048, 0.049, 0.05, 0.0525, 0.055, 0.0575, 0.06, 0.0625, 0.065, 0.0675, 0.07, 0.0725, 0.075, 0.0775, 0.08, 0.0825, 0.085, 0.0875, 0.09, 0.0925, 0.095, 0.0975, 0.1, 0.105, 0.11, 0.115, 0.12, 0.125, 0.13, 0.135, 0.14, 0.145, 0.15, 0.155, 0.16, 0.165, 0.17, 0.175, 0.18, 0.185, 0.19, 0.195, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.28, 0.29, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38, 0.39, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.5, 0.525, 0.55, 0.575, 0.6, 0.625, 0.65, 0.675, 0.7, 0.725, 0.75, 0.775, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5, 1.55, 1.6, 1.65, 1.7, 1.75, 1.8, 1.85, 1.9, 1.95, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.25, 5.5, 5.75, 6.0, 6.25, 6.5, 6.75, 7.0, 7.25, 7.5, 7.75, 8.0, 8.25, 8.5, 8.75, 9.0, 9.25, 9.5, 9.75, 10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0, 15.5, 16.0, 16.5, 17.0, 17.5, 18.0, 18.5, 19.0, 19.5, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 52.5, 55.0, 57.5, 60.0, 62.5, 65.0, 67.5, 70.0, 72.5, 75.0, 77.5, 80.0, 82.5, 85.0, 87.5, 90.0, 92.5, 95.0, 97.5, 100.0, 105.0, 110.0, 115.0, 120.0, 125.0, 130.0, 135.0, 140.0, 145.0, 150.0, 155.0, 160.0, 165.0, 170.0, 175.0, 180.0, 185.0, 190.0, 195.0, 200.0, 210.0, 220.0, 230.0, 240.0, 250.0, 260.0, 270.0, 280.0, 290.0, 300.0, 310.0, 320.0, 330.0, 340.0, 350.0, 360.0, 370.0, 380.0, 390.0, 400.0, 410.0, 420.0, 430.0, 440.0, 450.0, 460.0, 470.0, 480.0, 490.0, 500.0, 525.0, 550.0, 575.0, 600.0, 625.0, 640.0, 650.0, 675.0, 700.0, 725.0, 750.0, 775.0, 800.0, 825.0, 850.0, 875.0, 900.0, 925.0, 950.0, 960.0, 975.0, 1000.0, 1050.0, 1100.0, 1150.0, 1200.0, 1250.0, 1300.0, 1350.0, 1400.0, 1450.0, 1500.0, 1550.0, 1600.0, 1650.0, 1700.0, 1750.0, 1800.0, 1850.0, 1900.0, 1920.0, 1950.0, 2000.0, 2100.0, 2200.0, 2300.0, 2400.0, 2500.0, 2560.0, 2600.0, 2700.0, 2800.0, 2900.0, 3000.0, 3100.0, 3200.0, 3300.0, 3400.0, 3500.0, 3600.0, 3700.0, 3800.0, 3900.0, 4000.0, 4100.0, 4200.0, 4300.0, 4400.0, 4500.0, 4600.0, 4700.0, 4800.0, 4900.0, 5000.0, 5250.0, 5500.0, 5750.0, 6000.0, 6250.0, 6500.0, 6750.0, 7000.0, 7250.0, 7500.0, 7680.0, 7750.0, 8000.0, 8250.0, 8500.0, 8750.0, 9000.0, 9250.0, 9500.0, 9750.0, 10000.0], 'Array(Float64)') AS Bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds) = 0,
        length(Bounds) + 1,
        arrayFirstIndex(r -> r >= toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']), Bounds))),
        range(1, length(Bounds) + 2)))
        AS BucketCounts,
    count() AS Count, sum(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token'])) AS Sum
FROM `otel`.`otel_traces_local`
WHERE SpanAttributes['gen_ai.request.model'] != '' AND SpanAttributes['infersight.traffic'] != 'probe'
  AND isFinite(toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']))
  AND toFloat64OrZero(SpanAttributes['gen_ai.server.time_to_first_token']) >= 0
  AND SpanAttributes['gen_ai.server.time_to_first_token'] != ''
GROUP BY Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Source, Kind, Bounds;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_nodes_1m_local` ON CLUSTER `infersight` (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `HostType` LowCardinality(String),
    `CapacityType` LowCardinality(String),
    `Samples` UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_nodes_1m` ON CLUSTER `infersight` AS `otel`.`infersight_nodes_1m_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_nodes_1m_local`, cityHash64(HostName));

ALTER TABLE `otel`.`infersight_nodes_1m_local` ON CLUSTER `infersight` MODIFY SETTING non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_nodes_1m_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_nodes_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, ResourceAttributes['infersight.capacity_type'] AS CapacityType,
    count() AS Samples
FROM `otel`.`otel_metrics_gauge_local`
WHERE MetricName = 'infersight.inference.endpoint.up'
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_accelerators_1m_local` ON CLUSTER `infersight` (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `HostType` LowCardinality(String),
    `Device` String,
    `XidSeries` String,
    `Samples` UInt64,
    `LastSeen` DateTime,
    `UtilSum` Float64,
    `UtilCount` UInt64,
    `NeuronSum` Float64,
    `NeuronCount` UInt64,
    `TensorSum` Float64,
    `TensorCount` UInt64,
    `SmSum` Float64,
    `SmCount` UInt64,
    `DramSum` Float64,
    `DramCount` UInt64,
    `PowerSum` Float64,
    `PowerCount` UInt64,
    `TempSum` Float64,
    `TempCount` UInt64,
    `TempMax` Float64,
    `MemUtilSum` Float64,
    `MemUtilCount` UInt64,
    `MemUsedSum` Float64,
    `MemUsedCount` UInt64,
    `MemLimitMax` Float64,
    `Reachable` UInt64,
    `Unreachable` UInt64,
    `StatusTime` DateTime,
    `State` LowCardinality(String),
    `XidDelta` Float64,
    `XidSamples` UInt64,
    `XidMax` Float64,
    `XidMin` Float64,
    `XidStart` DateTime,
    `CpuIdleSum` Float64,
    `CpuIdleCount` UInt64,
    `MemorySum` Float64,
    `MemoryCount` UInt64
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, HostName, Device, XidSeries)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_accelerators_1m` ON CLUSTER `infersight` AS `otel`.`infersight_accelerators_1m_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_accelerators_1m_local`, cityHash64(HostName));

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_accelerators_1m_gauge_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_accelerators_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, if(Attributes['hw.id'] != '', Attributes['hw.id'], if(Attributes['infersight.neuron.core'] != '', concat('nc', Attributes['infersight.neuron.core']), '')) AS Device,
    if(MetricName = 'hw.errors', Attributes['hw.gpu.xid'], '') AS XidSeries,
    count() AS Samples, toDateTime(max(TimeUnix)) AS LastSeen,
    sumIf(Value, (MetricName = 'hw.gpu.utilization' AND Attributes['hw.gpu.task'] IN ('', 'general')) AND isFinite(Value)) AS UtilSum, countIf((MetricName = 'hw.gpu.utilization' AND Attributes['hw.gpu.task'] IN ('', 'general')) AND isFinite(Value)) AS UtilCount,
    sumIf(Value, MetricName = 'infersight.neuron.core.utilization' AND isFinite(Value)) AS NeuronSum,
    countIf(MetricName = 'infersight.neuron.core.utilization' AND isFinite(Value)) AS NeuronCount,
    sumIf(Value, (MetricName = 'infersight.gpu.pipe.utilization' AND Attributes['infersight.gpu.pipe'] = 'tensor') AND isFinite(Value)) AS TensorSum, countIf((MetricName = 'infersight.gpu.pipe.utilization' AND Attributes['infersight.gpu.pipe'] = 'tensor') AND isFinite(Value)) AS TensorCount,
    sumIf(Value, MetricName = 'infersight.gpu.sm.activity' AND isFinite(Value)) AS SmSum,
    countIf(MetricName = 'infersight.gpu.sm.activity' AND isFinite(Value)) AS SmCount,
    sumIf(Value, MetricName = 'infersight.gpu.dram.activity' AND isFinite(Value)) AS DramSum,
    countIf(MetricName = 'infersight.gpu.dram.activity' AND isFinite(Value)) AS DramCount,
    sumIf(Value, MetricName = 'hw.power' AND isFinite(Value)) AS PowerSum,
    countIf(MetricName = 'hw.power' AND isFinite(Value)) AS PowerCount,
    sumIf(Value, (MetricName = 'hw.temperature' AND Attributes['hw.sensor_location'] IN ('', 'gpu')) AND isFinite(Value)) AS TempSum, countIf((MetricName = 'hw.temperature' AND Attributes['hw.sensor_location'] IN ('', 'gpu')) AND isFinite(Value)) AS TempCount,
    if(TempCount > 0, maxIf(Value, (MetricName = 'hw.temperature' AND Attributes['hw.sensor_location'] IN ('', 'gpu')) AND isFinite(Value)), -inf) AS TempMax,
    sumIf(Value, MetricName = 'hw.gpu.memory.utilization' AND isFinite(Value)) AS MemUtilSum,
    countIf(MetricName = 'hw.gpu.memory.utilization' AND isFinite(Value)) AS MemUtilCount,
    0 AS MemUsedSum, toUInt64(0) AS MemUsedCount, -inf AS MemLimitMax,
    countIf(MetricName = 'infersight.gpu.reachable' AND Value > 0) AS Reachable,
    countIf(MetricName = 'infersight.gpu.reachable' AND Value = 0) AS Unreachable,
    toDateTime(maxIf(TimeUnix, MetricName = 'hw.status' AND Value > 0)) AS StatusTime,
    argMaxIf(Attributes['hw.state'], TimeUnix, MetricName = 'hw.status' AND Value > 0) AS State,
    0 AS XidDelta,
    countIf((MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value)) AS XidSamples,
    if(XidSamples > 0, maxIf(Value, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value)), -inf) AS XidMax,
    if(XidSamples > 0, minIf(Value, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value)), inf) AS XidMin,
    toDateTime(if(XidSamples > 0, minIf(StartTimeUnix, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value)), toDateTime64(0, 9))) AS XidStart,
    sumIf(Value, (MetricName = 'system.cpu.utilization' AND Attributes['cpu.mode'] = 'idle') AND isFinite(Value)) AS CpuIdleSum, countIf((MetricName = 'system.cpu.utilization' AND Attributes['cpu.mode'] = 'idle') AND isFinite(Value)) AS CpuIdleCount,
    sumIf(Value, (MetricName = 'system.memory.utilization' AND Attributes['system.memory.state'] = 'used') AND isFinite(Value)) AS MemorySum, countIf((MetricName = 'system.memory.utilization' AND Attributes['system.memory.state'] = 'used') AND isFinite(Value)) AS MemoryCount
FROM `otel`.`otel_metrics_gauge_local`
WHERE MetricName IN ('hw.gpu.utilization', 'infersight.neuron.core.utilization', 'infersight.gpu.pipe.utilization', 'infersight.gpu.sm.activity', 'infersight.gpu.dram.activity', 'hw.power', 'hw.temperature', 'hw.gpu.memory.utilization', 'infersight.gpu.reachable', 'hw.status', 'hw.errors', 'system.cpu.utilization', 'system.memory.utilization', 'infersight.collector.up', 'infersight.inference.endpoint.up', 'infersight.neuron.monitor.up', 'infersight.probe.up')
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, Device, XidSeries;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_accelerators_1m_sum_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_accelerators_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, if(Attributes['hw.id'] != '', Attributes['hw.id'], if(Attributes['infersight.neuron.core'] != '', concat('nc', Attributes['infersight.neuron.core']), '')) AS Device,
    if(MetricName = 'hw.errors', Attributes['hw.gpu.xid'], '') AS XidSeries,
    count() AS Samples, toDateTime(max(TimeUnix)) AS LastSeen,
    0 AS UtilSum, toUInt64(0) AS UtilCount, 0 AS NeuronSum, toUInt64(0) AS NeuronCount, 0 AS TensorSum, toUInt64(0) AS TensorCount, 0 AS SmSum,
    toUInt64(0) AS SmCount, 0 AS DramSum, toUInt64(0) AS DramCount, 0 AS PowerSum, toUInt64(0) AS PowerCount,
    0 AS TempSum, toUInt64(0) AS TempCount, -inf AS TempMax, 0 AS MemUtilSum, toUInt64(0) AS MemUtilCount,
    sumIf(Value, MetricName = 'hw.gpu.memory.usage' AND isFinite(Value)) AS MemUsedSum,
    countIf(MetricName = 'hw.gpu.memory.usage' AND isFinite(Value)) AS MemUsedCount,
    if(countIf(MetricName = 'hw.gpu.memory.limit' AND isFinite(Value)) > 0,
       maxIf(Value, MetricName = 'hw.gpu.memory.limit' AND isFinite(Value)), -inf) AS MemLimitMax,
    toUInt64(0) AS Reachable, toUInt64(0) AS Unreachable,
    toDateTime(maxIf(TimeUnix, MetricName = 'hw.status' AND Value > 0)) AS StatusTime,
    argMaxIf(Attributes['hw.state'], TimeUnix, MetricName = 'hw.status' AND Value > 0) AS State,
    sumIf(Value, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value) AND AggregationTemporality = 1) AS XidDelta,
    countIf((MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value) AND AggregationTemporality != 1) AS XidSamples,
    if(XidSamples > 0, maxIf(Value, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value) AND AggregationTemporality != 1), -inf) AS XidMax,
    if(XidSamples > 0, minIf(Value, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value) AND AggregationTemporality != 1), inf) AS XidMin,
    toDateTime(if(XidSamples > 0, minIf(StartTimeUnix, (MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid') AND isFinite(Value) AND AggregationTemporality != 1),
                  toDateTime64(0, 9))) AS XidStart,
    0 AS CpuIdleSum, toUInt64(0) AS CpuIdleCount, 0 AS MemorySum, toUInt64(0) AS MemoryCount
FROM `otel`.`otel_metrics_sum_local`
WHERE MetricName IN ('hw.gpu.memory.usage', 'hw.gpu.memory.limit', 'hw.status', 'hw.errors', 'infersight.agent.points.exported')
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, Device, XidSeries;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_gateway_requests_local` ON CLUSTER `infersight` (
    `Key` String,
    `Digest` String DEFAULT '',
    `Flush` String DEFAULT '',
    `Tables` Array(String),
    `Done` UInt8 DEFAULT 1,
    `Time` DateTime DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY Key
TTL Time + toIntervalDay(7)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_gateway_requests` ON CLUSTER `infersight` AS `otel`.`infersight_gateway_requests_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_gateway_requests_local`, cityHash64(Key));

ALTER TABLE `otel`.`infersight_gateway_requests_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Done` UInt8 DEFAULT 1 AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Done` UInt8 DEFAULT 1 AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Tables` Array(String) AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Tables` Array(String) AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Flush` String DEFAULT '' AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Flush` String DEFAULT '' AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests_local` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Digest` String DEFAULT '' AFTER `Key`;

ALTER TABLE `otel`.`infersight_gateway_requests` ON CLUSTER `infersight` ADD COLUMN IF NOT EXISTS `Digest` String DEFAULT '' AFTER `Key`;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_gateway_blocks_local` ON CLUSTER `infersight` (
    `Token` String,
    `Time` DateTime DEFAULT now()
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY Token
TTL Time + toIntervalDay(7)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_gateway_blocks` ON CLUSTER `infersight` AS `otel`.`infersight_gateway_blocks_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_gateway_blocks_local`, cityHash64(Token));

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_logs_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_logs_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_traces_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_traces_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_metrics_gauge_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_metrics_gauge_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_metrics_sum_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_metrics_sum_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_metrics_histogram_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_metrics_histogram_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_metrics_exponential_histogram_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_metrics_exponential_histogram_local` WHERE Token != '' LIMIT 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_gateway_blocks_metrics_summary_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_gateway_blocks_local` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM `otel`.`otel_metrics_summary_local` WHERE Token != '' LIMIT 1;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_hw_health_1m_local` ON CLUSTER `infersight` (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `AvailabilityZone` LowCardinality(String),
    `HostName` LowCardinality(String),
    `HostType` LowCardinality(String),
    `ServiceName` LowCardinality(String),
    `HwType` LowCardinality(String),
    `HwId` String,
    `HwSeries` String,
    `StatusSamples` UInt64,
    `BadStatus` UInt8,
    `ErrorsDelta` Float64,
    `ErrorsSamples` UInt64,
    `ErrorsMax` Float64,
    `ErrorsMin` Float64
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, HwId)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_hw_health_1m` ON CLUSTER `infersight` AS `otel`.`infersight_hw_health_1m_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_hw_health_1m_local`, cityHash64(HostName));

ALTER TABLE `otel`.`infersight_hw_health_1m_local` ON CLUSTER `infersight` MODIFY SETTING non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_hw_health_1m_sum_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_hw_health_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider, ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['cloud.availability_zone'] AS AvailabilityZone, ResourceAttributes['host.name'] AS HostName, ResourceAttributes['host.type'] AS HostType, ResourceAttributes['service.name'] AS ServiceName, Attributes['hw.type'] AS HwType, Attributes['hw.id'] AS HwId,
    if(MetricName = 'hw.errors', Attributes['hw.gpu.xid'], '') AS HwSeries,
    countIf(MetricName = 'hw.status') AS StatusSamples,
    toUInt8(maxIf(Value > 0 AND Attributes['hw.state'] NOT IN ('ok', ''), MetricName = 'hw.status')) AS BadStatus,
    sumIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value) AND AggregationTemporality = 1)
        + countIf(MetricName = 'infersight.gpu.xid.last' AND Value > 0) AS ErrorsDelta,
    countIf(MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value) AND AggregationTemporality != 1) AS ErrorsSamples,
    if(ErrorsSamples > 0, maxIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value)
                                       AND AggregationTemporality != 1), -inf) AS ErrorsMax,
    if(ErrorsSamples > 0, minIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value)
                                       AND AggregationTemporality != 1), inf) AS ErrorsMin
FROM `otel`.`otel_metrics_sum_local`
WHERE MetricName IN ('hw.status', 'hw.errors', 'infersight.gpu.xid.last')
GROUP BY Minute, CloudProvider, CloudRegion, AvailabilityZone, HostName, HostType, ServiceName, HwType, HwId, HwSeries;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`infersight_hw_health_1m_gauge_mv_local` ON CLUSTER `infersight`
TO `otel`.`infersight_hw_health_1m_local` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider, ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['cloud.availability_zone'] AS AvailabilityZone, ResourceAttributes['host.name'] AS HostName, ResourceAttributes['host.type'] AS HostType, ResourceAttributes['service.name'] AS ServiceName, Attributes['hw.type'] AS HwType, Attributes['hw.id'] AS HwId,
    if(MetricName = 'hw.errors', Attributes['hw.gpu.xid'], '') AS HwSeries,
    countIf(MetricName = 'hw.status') AS StatusSamples,
    toUInt8(maxIf(Value > 0 AND Attributes['hw.state'] NOT IN ('ok', ''), MetricName = 'hw.status')) AS BadStatus,
    sumIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value) AND 0 = 1)
        + countIf(MetricName = 'infersight.gpu.xid.last' AND Value > 0) AS ErrorsDelta,
    countIf(MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value) AND 0 != 1) AS ErrorsSamples,
    if(ErrorsSamples > 0, maxIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value)
                                       AND 0 != 1), -inf) AS ErrorsMax,
    if(ErrorsSamples > 0, minIf(Value, MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid' AND isFinite(Value)
                                       AND 0 != 1), inf) AS ErrorsMin
FROM `otel`.`otel_metrics_gauge_local`
WHERE MetricName IN ('hw.status', 'hw.errors', 'infersight.gpu.xid.last')
GROUP BY Minute, CloudProvider, CloudRegion, AvailabilityZone, HostName, HostType, ServiceName, HwType, HwId, HwSeries;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_alerts_local` ON CLUSTER `infersight` (
    `Fingerprint` String,
    `Labels` String,
    `Annotations` String,
    `State` LowCardinality(String),
    `ActiveAt` DateTime64(3),
    `StartsAt` DateTime64(3),
    `EndsAt` DateTime64(3),
    `Deleted` UInt8,
    `Version` UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Version)
ORDER BY Fingerprint;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_alerts` ON CLUSTER `infersight` AS `otel`.`infersight_slo_alerts_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_slo_alerts_local`, cityHash64(Fingerprint));

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_notifications_local` ON CLUSTER `infersight` (
    `Id` String,
    `GroupKey` String,
    `Receiver` LowCardinality(String),
    `CreatedAt` DateTime64(3),
    `Firing` Array(String),
    `Resolved` Array(String),
    `Body` String,
    `Status` LowCardinality(String),
    `Attempts` UInt32,
    `NextAttemptAt` DateTime64(3),
    `LastError` String,
    `Version` UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Version)
ORDER BY Id;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_notifications` ON CLUSTER `infersight` AS `otel`.`infersight_slo_notifications_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_slo_notifications_local`, cityHash64(Id));

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_silences_local` ON CLUSTER `infersight` (
    `Id` String,
    `Matchers` String,
    `StartsAt` DateTime64(3),
    `EndsAt` DateTime64(3),
    `CreatedBy` String,
    `Comment` String,
    `Version` UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Version)
ORDER BY Id;

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_silences` ON CLUSTER `infersight` AS `otel`.`infersight_slo_silences_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_slo_silences_local`, cityHash64(Id));

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_lease_local` ON CLUSTER `infersight` (
    `Name` LowCardinality(String),
    `Term` UInt64,
    `Holder` String,
    `ClaimedAt` DateTime64(3),
    `Renewal` UInt64,
    `Time` DateTime DEFAULT now()
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Renewal)
ORDER BY (Name, Term, Holder)
TTL Time + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_lease` ON CLUSTER `infersight` AS `otel`.`infersight_slo_lease_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_slo_lease_local`, cityHash64(Name));

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_alert_log_local` ON CLUSTER `infersight` (
    `Slo` LowCardinality(String),
    `At` DateTime64(3),
    `Fingerprint` String,
    `Event` LowCardinality(String),
    `Receiver` LowCardinality(String),
    `NotificationId` String,
    `AlertName` LowCardinality(String),
    `Tier` LowCardinality(String),
    `Severity` LowCardinality(String),
    `Labels` String,
    `Summary` String,
    `StartsAt` DateTime64(3),
    `EndsAt` DateTime64(3),
    `Muted` LowCardinality(String),
    `Delivery` LowCardinality(String),
    `Attempts` UInt32,
    `Error` String,
    `Version` UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Version)
ORDER BY (Slo, At, Fingerprint, Event, Receiver, NotificationId)
TTL toDateTime(At) + toIntervalDay(365);

CREATE TABLE IF NOT EXISTS `otel`.`infersight_slo_alert_log` ON CLUSTER `infersight` AS `otel`.`infersight_slo_alert_log_local`
ENGINE = Distributed(`infersight`, `otel`, `infersight_slo_alert_log_local`, cityHash64(Fingerprint));
