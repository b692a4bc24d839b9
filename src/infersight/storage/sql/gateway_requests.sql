-- The gateway's own tables (infersight.gateway.store): the journal of request keys and the tokens of
-- stored blocks. Rendered by infersight.storage.schema.render; {keep_days} comes from gateway.store.
CREATE TABLE IF NOT EXISTS {db}.`infersight_gateway_requests{local}`{on_cluster} (
    `Key` String,
    `Digest` String DEFAULT '',
    `Flush` String DEFAULT '',
    `Tables` Array(String),
    `Done` UInt8 DEFAULT 1,
    `Time` DateTime DEFAULT now()
) ENGINE = {engine:Replacing}
ORDER BY Key
TTL Time + toIntervalDay({keep_days})
SETTINGS non_replicated_deduplication_window = {dedup_window};

-- Databases created before the journal: their keys read as done, with any body matching.
ALTER TABLE {db}.`infersight_gateway_requests{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Done` UInt8 DEFAULT 1 AFTER `Key`;
ALTER TABLE {db}.`infersight_gateway_requests{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Tables` Array(String) AFTER `Key`;
ALTER TABLE {db}.`infersight_gateway_requests{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Flush` String DEFAULT '' AFTER `Key`;
ALTER TABLE {db}.`infersight_gateway_requests{local}`{on_cluster} ADD COLUMN IF NOT EXISTS `Digest` String DEFAULT '' AFTER `Key`;

CREATE TABLE IF NOT EXISTS {db}.`infersight_gateway_blocks{local}`{on_cluster} (
    `Token` String,
    `Time` DateTime DEFAULT now()
) ENGINE = {engine}
ORDER BY Token
TTL Time + toIntervalDay({keep_days})
SETTINGS non_replicated_deduplication_window = {dedup_window};
