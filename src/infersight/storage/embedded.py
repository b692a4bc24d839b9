"""Embedded ClickHouse through chDB: one process owns the data directory."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from infersight.storage.base import QueryError, StorageError


def _settings_clause(settings: dict[str, Any] | None) -> str:
    if not settings:
        return ""
    parts = []
    for k, v in settings.items():
        if not k.replace("_", "").isalnum():
            raise QueryError(f"invalid setting name {k!r}")
        parts.append(f"{k} = {json.dumps(v) if isinstance(v, str) else v}".replace('"', "'"))
    return " SETTINGS " + ", ".join(parts)


class _Shared:
    """chDB allows one data path per process; every EmbeddedStorage on it shares one session."""

    def __init__(self, path: str) -> None:
        from chdb import session

        self.session = session.Session(path)
        self.lock = threading.Lock()
        self.refs = 0


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()


class EmbeddedStorage:
    """chDB on `data_dir`. Calls are serialised: chDB sessions are not thread-safe.

    Several instances (e.g. one per database in tests) may share a path within a process.
    """

    def __init__(self, data_dir: str | Path, database: str = "otel") -> None:
        self.database = database
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = str(self.data_dir)
        with _SHARED_LOCK:
            shared = _SHARED.get(key)
            if shared is None:
                try:
                    shared = _SHARED[key] = _Shared(key)
                except Exception as err:  # another path already open in this process, or locked
                    raise StorageError(f"cannot open embedded store at {key}: {err}") from err
            shared.refs += 1
        self._shared = shared
        self._lock = shared.lock
        self._session = shared.session
        self._closed = False

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt)
            except Exception as err:
                msg = str(err)
                # chDB keeps a failed query's partial output and prepends it to the next result.
                try:
                    self._session.query("SELECT 1", "CSV")
                except Exception:  # noqa: BLE001 -- draining is best effort
                    pass
                if "Code: 62." in msg or "Code: 47." in msg or "Code: 60." in msg or "Code: 164." in msg:
                    raise QueryError(msg) from None
                raise StorageError(msg) from None

    def execute(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        self._run(sql + _settings_clause(settings))

    def query(self, sql: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        res = self._run(sql + _settings_clause(settings), "JSON")
        raw = res.bytes() if hasattr(res, "bytes") else bytes(res)
        if not raw.strip():
            return []
        return json.loads(raw)["data"]

    def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        cols = ", ".join(f"`{c}`" for c in data.column_names)
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        target = table if "." in table else f"`{self.database}`.`{table}`"
        with self._lock:
            try:
                arrow_data = data  # noqa: F841 -- chDB resolves Python(name) in the calling frame
                self._session.query(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM Python(arrow_data)"
                                    + _settings_clause(settings))
            except Exception as err:
                raise StorageError(str(err)) from None

    def close(self) -> None:
        with _SHARED_LOCK:
            if self._closed:
                return
            self._closed = True
            self._shared.refs -= 1
            if self._shared.refs == 0:
                with self._lock:
                    self._session.close()
                _SHARED.pop(str(self.data_dir), None)
