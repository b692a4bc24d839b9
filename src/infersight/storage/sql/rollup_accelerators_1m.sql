-- Accelerators and nodes per minute, host and device (infersight.accelerator_rollups): what the web UI's
-- Fleet and Nodes views read for ranges over an hour instead of the raw gauges. Rendered by
-- infersight.storage.schema.render; {device}, {gauge_metrics}, {sum_metrics}, {util}, {neuron}, {tensor},
-- {temp}, {xid}, {cpu_idle}, {mem_used} come from infersight.accelerator_rollups.
-- Device: a GPU's hw.id, 'nc<core>' for a NeuronCore, '' for the host's own series (CPU, memory, the
-- agent's and collectors' health). Readers aggregate (sum of *Sum ÷ sum of *Count, max, argMax):
-- rows of one minute and device may be split across inserts and across the two views. Values that are
-- not finite are left out (a NaN would make every reader's sum NaN).
CREATE TABLE IF NOT EXISTS {db}.`infersight_accelerators_1m{local}`{on_cluster} (
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
) ENGINE = {engine}
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, HostName, Device, XidSeries)
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Device gauges, the host collector's CPU and memory, and the presence series (agent, collectors, endpoints).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_accelerators_1m_gauge_mv{local}`{on_cluster}
TO {db}.`infersight_accelerators_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, {device} AS Device,
    if(MetricName = 'hw.errors', Attributes['hw.gpu.xid'], '') AS XidSeries,
    count() AS Samples, toDateTime(max(TimeUnix)) AS LastSeen,
    sumIf(Value, {util} AND isFinite(Value)) AS UtilSum, countIf({util} AND isFinite(Value)) AS UtilCount,
    sumIf(Value, MetricName = '{neuron}' AND isFinite(Value)) AS NeuronSum,
    countIf(MetricName = '{neuron}' AND isFinite(Value)) AS NeuronCount,
    sumIf(Value, {tensor} AND isFinite(Value)) AS TensorSum, countIf({tensor} AND isFinite(Value)) AS TensorCount,
    sumIf(Value, MetricName = 'infersight.gpu.sm.activity' AND isFinite(Value)) AS SmSum,
    countIf(MetricName = 'infersight.gpu.sm.activity' AND isFinite(Value)) AS SmCount,
    sumIf(Value, MetricName = 'infersight.gpu.dram.activity' AND isFinite(Value)) AS DramSum,
    countIf(MetricName = 'infersight.gpu.dram.activity' AND isFinite(Value)) AS DramCount,
    sumIf(Value, MetricName = 'hw.power' AND isFinite(Value)) AS PowerSum,
    countIf(MetricName = 'hw.power' AND isFinite(Value)) AS PowerCount,
    sumIf(Value, {temp} AND isFinite(Value)) AS TempSum, countIf({temp} AND isFinite(Value)) AS TempCount,
    if(TempCount > 0, maxIf(Value, {temp} AND isFinite(Value)), -inf) AS TempMax,
    sumIf(Value, MetricName = 'hw.gpu.memory.utilization' AND isFinite(Value)) AS MemUtilSum,
    countIf(MetricName = 'hw.gpu.memory.utilization' AND isFinite(Value)) AS MemUtilCount,
    0 AS MemUsedSum, toUInt64(0) AS MemUsedCount, -inf AS MemLimitMax,
    countIf(MetricName = 'infersight.gpu.reachable' AND Value > 0) AS Reachable,
    countIf(MetricName = 'infersight.gpu.reachable' AND Value = 0) AS Unreachable,
    toDateTime(maxIf(TimeUnix, MetricName = 'hw.status' AND Value > 0)) AS StatusTime,
    argMaxIf(Attributes['hw.state'], TimeUnix, MetricName = 'hw.status' AND Value > 0) AS State,
    0 AS XidDelta,
    countIf({xid} AND isFinite(Value)) AS XidSamples,
    if(XidSamples > 0, maxIf(Value, {xid} AND isFinite(Value)), -inf) AS XidMax,
    if(XidSamples > 0, minIf(Value, {xid} AND isFinite(Value)), inf) AS XidMin,
    toDateTime(if(XidSamples > 0, minIf(StartTimeUnix, {xid} AND isFinite(Value)), toDateTime64(0, 9))) AS XidStart,
    sumIf(Value, {cpu_idle} AND isFinite(Value)) AS CpuIdleSum, countIf({cpu_idle} AND isFinite(Value)) AS CpuIdleCount,
    sumIf(Value, {mem_used} AND isFinite(Value)) AS MemorySum, countIf({mem_used} AND isFinite(Value)) AS MemoryCount
FROM {db}.`otel_metrics_gauge{local}`
WHERE MetricName IN ({gauge_metrics})
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, Device, XidSeries;

-- Device memory (updowncounters), hw.status and XID counters sent as sums, and the agent's export counter
-- (presence of a node whose collectors send nothing).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_accelerators_1m_sum_mv{local}`{on_cluster}
TO {db}.`infersight_accelerators_1m{local}` AS
SELECT toStartOfMinute(TimeUnix) AS Minute, ResourceAttributes['cloud.provider'] AS CloudProvider,
    ResourceAttributes['cloud.region'] AS CloudRegion, ResourceAttributes['host.name'] AS HostName,
    ResourceAttributes['host.type'] AS HostType, {device} AS Device,
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
    sumIf(Value, {xid} AND isFinite(Value) AND AggregationTemporality = 1) AS XidDelta,
    countIf({xid} AND isFinite(Value) AND AggregationTemporality != 1) AS XidSamples,
    if(XidSamples > 0, maxIf(Value, {xid} AND isFinite(Value) AND AggregationTemporality != 1), -inf) AS XidMax,
    if(XidSamples > 0, minIf(Value, {xid} AND isFinite(Value) AND AggregationTemporality != 1), inf) AS XidMin,
    toDateTime(if(XidSamples > 0, minIf(StartTimeUnix, {xid} AND isFinite(Value) AND AggregationTemporality != 1),
                  toDateTime64(0, 9))) AS XidStart,
    0 AS CpuIdleSum, toUInt64(0) AS CpuIdleCount, 0 AS MemorySum, toUInt64(0) AS MemoryCount
FROM {db}.`otel_metrics_sum{local}`
WHERE MetricName IN ({sum_metrics})
GROUP BY Minute, CloudProvider, CloudRegion, HostName, HostType, Device, XidSeries;
