-- On a cluster: the table readers and writers use, in front of `<table>_local` on every shard
-- (infersight.storage.schema.distributed). Reads see all shards; an insert goes to the shard of
-- {sharding_key} (schema.SHARDING_KEYS: a function of the row, so a retried block splits the same way).
CREATE TABLE IF NOT EXISTS {db}.`{table}`{on_cluster} AS {db}.`{table}_local`
ENGINE = Distributed({cluster}, {db}, `{table}_local`, {sharding_key});
