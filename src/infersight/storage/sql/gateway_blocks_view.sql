-- One view per table the gateway writes (infersight.gateway.store, rendered once per {source}): the
-- token of each block stored, in the same insert as the rows.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`infersight_gateway_blocks_{short}_mv{local}`{on_cluster}
TO {db}.`infersight_gateway_blocks{local}` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM {db}.`{source}{local}` WHERE Token != '' LIMIT 1;
