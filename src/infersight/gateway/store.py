"""The gateway's own tables: a journal of request keys, and the deduplication tokens of stored blocks.

`infersight_gateway_requests`: each flush's request keys (with their bodies' digests, the flush id and
the tables their rows go to) are written before the rows (`Done` = 0) and again after them (`Done` =
1). A re-send of a done key is acknowledged without writing, also after a restart; a key reused for a
different body is detected (the digest differs).

`infersight_gateway_blocks`: views on every table the gateway writes record the token of each block
stored (`<flush>:<table>`), in the same insert as the rows. After a crash between a flush's rows and
its `Done` keys, they tell which tables of that flush hold the rows, so a re-send (in whatever flush it
lands) writes exactly what is missing.
"""
from __future__ import annotations

KEYS_TABLE = "infersight_gateway_requests"
BLOCKS_TABLE = "infersight_gateway_blocks"
KEEP_DAYS = 7
# The tables the gateway inserts into (rows.py builds them).
DATA_TABLES = ("otel_logs", "otel_traces", "otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram",
               "otel_metrics_exponential_histogram", "otel_metrics_summary")
_DEDUP = "non_replicated_deduplication_window = 1000"


def ddl(database: str) -> list[str]:
    db = f"`{database}`"
    out = [
        f"""CREATE TABLE IF NOT EXISTS {db}.`{KEYS_TABLE}` (
    `Key` String,
    `Digest` String DEFAULT '',
    `Flush` String DEFAULT '',
    `Tables` Array(String),
    `Done` UInt8 DEFAULT 1,
    `Time` DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY Key
TTL Time + toIntervalDay({KEEP_DAYS})
SETTINGS {_DEDUP}""",
        # Databases created before the journal: their keys read as done, with any body matching.
        *(f"ALTER TABLE {db}.`{KEYS_TABLE}` ADD COLUMN IF NOT EXISTS {col} AFTER `Key`" for col in (
            "`Done` UInt8 DEFAULT 1", "`Tables` Array(String)", "`Flush` String DEFAULT ''",
            "`Digest` String DEFAULT ''")),
        f"""CREATE TABLE IF NOT EXISTS {db}.`{BLOCKS_TABLE}` (
    `Token` String,
    `Time` DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY Token
TTL Time + toIntervalDay({KEEP_DAYS})
SETTINGS {_DEDUP}""",
    ]
    for table in DATA_TABLES:
        out.append(f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.`{BLOCKS_TABLE}_{table.removeprefix('otel_')}_mv`
TO {db}.`{BLOCKS_TABLE}` AS
SELECT getSetting('insert_deduplication_token') AS Token FROM {db}.`{table}` WHERE Token != '' LIMIT 1""")
    return out
