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

from infersight.storage.schema import SchemaOptions, render
from infersight.storage.tables import STRING, Table, array

KEYS_TABLE = "infersight_gateway_requests"
BLOCKS_TABLE = "infersight_gateway_blocks"
KEEP_DAYS = 7
KEYS = Table(KEYS_TABLE, (("Key", STRING), ("Digest", STRING), ("Flush", STRING), ("Tables", array(STRING)),
                          ("Done", "UInt8"), ("Time", "DateTime")))
BLOCKS = Table(BLOCKS_TABLE, (("Token", STRING), ("Time", "DateTime")))
TABLES = (KEYS, BLOCKS)
# The tables the gateway inserts into (gateway.rows builds them).
DATA_TABLES = ("otel_logs", "otel_traces", "otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram",
               "otel_metrics_exponential_histogram", "otel_metrics_summary")


def ddl(opts: SchemaOptions) -> list[str]:
    """The journal and block tables, and one block view per data table (`storage/sql/gateway_*.sql`)."""
    return [*render("gateway_requests", opts, keep_days=KEEP_DAYS),
            *(stmt for table in DATA_TABLES
              for stmt in render("gateway_blocks_view", opts, source=table, short=table.removeprefix("otel_")))]
