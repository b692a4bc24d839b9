-- Minutes in which a node's agent scraped an inference server (infersight.rollups): node uptime for
-- capacity cost. Rendered by infersight.storage.schema.render; {capacity} comes from infersight.rollups.
CREATE TABLE IF NOT EXISTS {db}.`infersight_nodes_1m{local}`{on_cluster} (
    `Minute` DateTime,
    `CloudProvider` LowCardinality(String),
    `CloudRegion` LowCardinality(String),
    `HostName` LowCardinality(String),
    `HostType` LowCardinality(String),
    `CapacityType` LowCardinality(String),
    `Samples` UInt64
) ENGINE = {engine:Summing}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Databases created before the views deduplicated.
ALTER TABLE {db}.`infersight_nodes_1m{local}`{on_cluster} MODIFY SETTING non_replicated_deduplication_window = {dedup_window};

-- A minute counts when the agent reported any inference endpoint scrape.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_nodes_1m_mv{local}`{on_cluster}
TO {db}.`infersight_nodes_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, ResourceAttributes['{capacity}'] AS CapacityType,
    count() AS Samples
FROM {db}.`otel_metrics_gauge{local}`
WHERE MetricName = 'infersight.inference.endpoint.up'
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, CapacityType;
