-- SLO alert state (infersight.slo.store): alerts, the notification outbox and silences. Each is a
-- ReplacingMergeTree keyed by id with a version column, read with FINAL: an update is an insert.
-- Rendered by infersight.storage.schema.render.
CREATE TABLE IF NOT EXISTS {db}.`infersight_slo_alerts{local}`{on_cluster} (
    `Fingerprint` String,
    `Labels` String,
    `Annotations` String,
    `State` LowCardinality(String),
    `ActiveAt` DateTime64(3),
    `StartsAt` DateTime64(3),
    `EndsAt` DateTime64(3),
    `Deleted` UInt8,
    `Version` UInt64
) ENGINE = {engine:Replacing:Version}
ORDER BY Fingerprint;

CREATE TABLE IF NOT EXISTS {db}.`infersight_slo_notifications{local}`{on_cluster} (
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
) ENGINE = {engine:Replacing:Version}
ORDER BY Id;

CREATE TABLE IF NOT EXISTS {db}.`infersight_slo_silences{local}`{on_cluster} (
    `Id` String,
    `Matchers` String,
    `StartsAt` DateTime64(3),
    `EndsAt` DateTime64(3),
    `CreatedBy` String,
    `Comment` String,
    `Version` UInt64
) ENGINE = {engine:Replacing:Version}
ORDER BY Id;
