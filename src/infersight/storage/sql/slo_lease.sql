-- The SLO engine's leader lease (infersight.slo.lease): one row per (lease, term, claimant), replaced by
-- the holder's renewals (version: Renewal). The holder of a term is its earliest claimant (ClaimedAt,
-- then Holder); the highest term wins. Rendered by infersight.storage.schema.render.
CREATE TABLE IF NOT EXISTS {db}.`infersight_slo_lease{local}`{on_cluster} (
    `Name` LowCardinality(String),
    `Term` UInt64,
    `Holder` String,
    `ClaimedAt` DateTime64(3),
    `Renewal` UInt64,
    `Time` DateTime DEFAULT now()
) ENGINE = {engine:Replacing:Renewal}
ORDER BY (Name, Term, Holder)
TTL Time + toIntervalDay(30);
