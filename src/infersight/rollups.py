"""Per-minute request rollups: what the SLO engine, cost reports and dashboards query.

Readers always aggregate (`sum`, `sumForEach`): rows of one minute may be split across inserts.
"""
from __future__ import annotations

DIMENSIONS = ("CloudProvider", "CloudRegion", "HostName", "Model", "ServerKind", "Tenant")


def _dims() -> str:
    return ",\n    ".join(f"`{d}` LowCardinality(String)" for d in DIMENSIONS)


def ddl(database: str) -> list[str]:
    db = f"`{database}`"
    key = ", ".join(DIMENSIONS)
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.`infersight_requests_1m` (
    `Minute` DateTime,
    {_dims()},
    `Requests` UInt64,
    `BadRequests` UInt64,
    `InputTokens` UInt64,
    `OutputTokens` UInt64,
    `CachedTokens` UInt64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, {key})""",
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
ORDER BY (Kind, Minute, {key})""",
    ]
