-- The SLO alert log (infersight.slo.alert_log, written through infersight.slo.store): every firing and
-- resolved transition the engine makes, and each receiver's delivery of it. A row with Receiver '' is the
-- transition itself (Muted: silenced or inhibited when it happened); the others are one notification's
-- delivery to one receiver, replaced (version: Version) as its result comes in (pending, sent, failed).
-- Kept a year (the outbox it outlives is pruned after slo.outbox_retention_days).
-- Rendered by infersight.storage.schema.render.
CREATE TABLE IF NOT EXISTS {db}.`infersight_slo_alert_log{local}`{on_cluster} (
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
) ENGINE = {engine:Replacing:Version}
ORDER BY (Slo, At, Fingerprint, Event, Receiver, NotificationId)
TTL toDateTime(At) + toIntervalDay(365);
