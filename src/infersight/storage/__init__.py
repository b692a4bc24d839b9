"""Storage: embedded chDB by default, a ClickHouse server when configured."""
from __future__ import annotations

from pathlib import Path

from infersight.config import StorageConfig
from infersight.storage.base import QueryError, Storage, StorageError
from infersight.storage.schema import SchemaMismatch, SchemaOptions, ensure_schema

__all__ = ["QueryError", "SchemaMismatch", "Storage", "StorageError", "open_storage"]


def open_storage(cfg: StorageConfig, data_dir: Path, create_schema: bool = True) -> Storage:
    if cfg.backend == "clickhouse":
        from infersight.storage.remote import ClickHouseStorage

        if cfg.clickhouse is None:
            raise ValueError("server.storage.clickhouse: required when backend is 'clickhouse'")
        ch = cfg.clickhouse
        store: Storage = ClickHouseStorage(ch.url, ch.user, ch.password.get_secret_value(),
                                           cfg.database, ch.verify_tls)
    else:
        from infersight.storage.embedded import EmbeddedStorage

        store = EmbeddedStorage(data_dir / "clickhouse", cfg.database)
    if create_schema:
        ensure_schema(store, SchemaOptions(cfg.database, dict(cfg.ttl_days), cfg.cluster))
    return store
