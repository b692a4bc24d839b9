"""Which component owns which of infersight's own tables (the OTel exporter's tables are `storage.schema`'s).

Kept apart from `components` so that the offline CLI, the tests and the benchmarks create the full
schema without loading the HTTP server (and the agent install, which has no server extra, imports it too).
"""
from __future__ import annotations

from infersight import accelerator_rollups, rollups
from infersight.gateway import store as gateway_store
from infersight.slo import store as slo_store
from infersight.storage.schema import DdlSource

# The rollups are views over what the receiver writes; the key table is its idempotency record.
RECEIVER_TABLES: tuple[DdlSource, ...] = (rollups.ddl, accelerator_rollups.ddl, gateway_store.ddl)
SLO_TABLES: tuple[DdlSource, ...] = (slo_store.ddl,)


def all_ddl() -> tuple[DdlSource, ...]:
    """Every component's tables in creation order: what `ensure_schema` creates for a full server."""
    return RECEIVER_TABLES + SLO_TABLES
