"""Storage: embedded chDB by default, a ClickHouse server when configured."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infersight.config import StorageConfig
from infersight.storage.base import QueryError, Storage, StorageError
from infersight.storage.schema import DdlSource, SchemaMismatch, SchemaOptions, ensure_schema

__all__ = ["QueryError", "SchemaMismatch", "Storage", "StorageError", "open_storage", "schema_options"]


def open_storage(cfg: StorageConfig, data_dir: Path, ddl: Sequence[DdlSource] | None = None) -> Storage:
    """The configured store; with `ddl`, missing tables are created (see `ensure_schema`), else it is used as found."""
    if cfg.backend == "clickhouse":
        from infersight.storage.remote import ClickHouseStorage

        if cfg.clickhouse is None:
            raise ValueError("server.storage.clickhouse: required when backend is 'clickhouse'")
        ch = cfg.clickhouse
        store: Storage = ClickHouseStorage(ch.url, ch.user, ch.password.get_secret_value(),
                                           cfg.database, ch.verify_tls, cfg.cluster)
    else:
        from infersight.storage.embedded import EmbeddedStorage

        store = EmbeddedStorage(data_dir / "clickhouse", cfg.database)
    if ddl is not None:
        ensure_schema(store, schema_options(cfg), ddl)
    return store


def schema_options(cfg: StorageConfig) -> SchemaOptions:
    """Database, TTLs and cluster of the configured store."""
    return SchemaOptions(cfg.database, dict(cfg.ttl_days), cfg.cluster)
