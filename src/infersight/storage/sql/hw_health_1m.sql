-- Accelerator health per minute, device and XID series (infersight.slo.store). Rendered by
-- infersight.storage.schema.render; {resource_dims} and {resource_columns} come from
-- infersight.slo.dimensions.HEALTH_COLUMNS (the resource attributes and their columns).
-- Readers aggregate (max/sum/min): rows of one minute and device may be split across inserts.
-- Only XIDs make a minute bad here (ECC and other hardware faults reach hw.status through the
-- collectors). Cumulative XID counters are kept per code (HwSeries) so readers compare each series
-- with itself; infersight.gpu.xid.last > 0 also counts as an XID in that minute. Values that are not
-- finite are left out: a NaN would make every reader's sum NaN.
CREATE TABLE IF NOT EXISTS {db}.`infersight_hw_health_1m{local}`{on_cluster} (
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
) ENGINE = {engine}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, HwId)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- A deduplicated re-insert of a request must not count twice (databases created without it).
ALTER TABLE {db}.`infersight_hw_health_1m{local}`{on_cluster} MODIFY SETTING non_replicated_deduplication_window = {dedup_window};

-- Delta XID counts come from sums; cumulative counters and hw.status from sums or gauges.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_hw_health_1m_sum_mv{local}`{on_cluster}
TO {db}.`infersight_hw_health_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, {resource_dims}, Attributes['hw.type'] AS HwType, Attributes['hw.id'] AS HwId,
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
FROM {db}.`otel_metrics_sum{local}`
WHERE MetricName IN ('hw.status', 'hw.errors', 'infersight.gpu.xid.last')
GROUP BY Minute, {resource_columns}, HwType, HwId, HwSeries;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_hw_health_1m_gauge_mv{local}`{on_cluster}
TO {db}.`infersight_hw_health_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, {resource_dims}, Attributes['hw.type'] AS HwType, Attributes['hw.id'] AS HwId,
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
FROM {db}.`otel_metrics_gauge{local}`
WHERE MetricName IN ('hw.status', 'hw.errors', 'infersight.gpu.xid.last')
GROUP BY Minute, {resource_columns}, HwType, HwId, HwSeries;
