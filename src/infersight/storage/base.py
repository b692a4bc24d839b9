"""One storage interface with two backends that run the same SQL."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


class StorageError(Exception):
    """The store refused or failed an operation (retryable unless a subclass says otherwise)."""


class Unavailable(StorageError):
    """The store is down, full or broken: retry later."""


class QueryError(StorageError):
    """The SQL itself is wrong or not allowed; not retryable."""


class LimitExceeded(QueryError):
    """A bound on the query (memory, result size) stopped it; the same query fails again."""


class Timeout(LimitExceeded):
    """The query ran past its time limit."""


class DataError(StorageError):
    """The store refused the rows themselves (a constraint, a value it cannot convert): retrying cannot help."""


class Storage(Protocol):
    database: str

    def execute(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... VALUES)."""

    def query(self, sql: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return rows as dicts (JSON types: 64-bit ints may be strings)."""

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Insert an Arrow table whose column names match `table`; idempotent per dedup_token. Several threads may
        insert at once (the writer inserts a flush's tables side by side)."""

    def ping(self) -> None:
        """Raise Unavailable unless the store answers; never waits behind running queries."""

    def close(self) -> None: ...
