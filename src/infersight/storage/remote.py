"""A ClickHouse server or cluster through clickhouse-connect (HTTP), same SQL as embedded."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from infersight.storage.base import Unavailable
from infersight.storage.errors import classify

# On a cluster, every query of this connection: an insert into a Distributed table returns only once
# each shard stored its rows (acknowledged means stored, as on one node), and a retried block is
# dropped by the views' target tables too, not only by the table inserted into.
CLUSTER_SETTINGS = {"distributed_foreground_insert": 1, "deduplicate_blocks_in_dependent_materialized_views": 1}


class ClickHouseStorage:
    def __init__(self, url: str, user: str = "default", password: str = "", database: str = "otel",
                 verify_tls: bool = True, cluster: str | None = None) -> None:
        import clickhouse_connect

        u = urlparse(url)
        self.database = database
        self.cluster = cluster  # the tables are Distributed fronts over `<table>_local` (storage.schema)
        try:
            self._client = clickhouse_connect.get_client(
                host=u.hostname or "127.0.0.1", port=u.port or (8443 if u.scheme == "https" else 8123),
                username=user, password=password, secure=u.scheme == "https", verify=verify_tls,
                autogenerate_session_id=False, settings=dict(CLUSTER_SETTINGS) if cluster else None)
        except Exception as err:
            raise Unavailable(f"cannot connect to ClickHouse at {url}: {err}") from err

    def execute(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, settings=settings)
        except Exception as err:  # noqa: BLE001 -- the client raises its own types; classify() maps codes
            raise classify(str(err)) from None

    def query(self, sql: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            res = self._client.query(sql, settings=settings)
        except Exception as err:  # noqa: BLE001 -- the client raises its own types; classify() maps codes
            raise classify(str(err)) from None
        return list(res.named_results())

    def query_raw(self, sql: str, fmt: str, settings: dict[str, Any] | None = None) -> bytes:
        """The result in ClickHouse's output format `fmt`, as bytes."""
        try:
            return self._client.raw_query(sql, settings=settings, fmt=fmt)
        except Exception as err:  # noqa: BLE001 -- the client raises its own types; classify() maps codes
            raise classify(str(err)) from None

    def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        """Safe from several threads at once: no session id, and the client's HTTP pool gives each its connection."""
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        try:
            self._client.insert_arrow(table, data, database=self.database, settings=settings)
        except Exception as err:  # noqa: BLE001 -- the client raises its own types; classify() maps codes
            raise classify(str(err)) from None

    def ping(self) -> None:
        """The server's /ping: no query, so it never queues behind running ones."""
        if not self._client.ping():
            raise Unavailable("ClickHouse does not answer /ping")

    def close(self) -> None:
        self._client.close()
