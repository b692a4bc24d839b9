"""The gateway's own table: idempotency keys of requests already written.

With it a client's re-send of a request whose rows are stored (the agent's spool after an unclear
failure, even across a gateway restart) is acknowledged without writing the rows again.
"""
from __future__ import annotations

KEYS_TABLE = "infersight_gateway_requests"
KEEP_DAYS = 7


def ddl(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS `{database}`.`{KEYS_TABLE}` (
    `Key` String,
    `Time` DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY Key
TTL Time + toIntervalDay({KEEP_DAYS})
SETTINGS non_replicated_deduplication_window = 1000"""
    ]
