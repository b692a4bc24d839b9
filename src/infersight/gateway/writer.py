"""Batched, idempotent writes: one insert per table per flush, acknowledged only when stored.

Retries never duplicate rows:
- a flush's composition is fixed once it is attempted; each table's insert carries a
  deduplication token derived from the flush's request keys, so retrying a flush that failed
  half-way is deduplicated by the table (`non_replicated_deduplication_window`);
- after the data, the flush's request keys are stored (`infersight_gateway_requests`); a later
  re-send of one of them is acknowledged without writing, also after a restart;
- a re-send of a request still queued or in a failed flush waits for that flush instead of adding
  its rows again.
When the store rejects the rows themselves (a constraint, a type error) and nothing of the flush
was written yet, its requests are written one by one, so only the offending one is refused (500).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from infersight.gateway.rows import MetricRows, combine
from infersight.gateway.store import KEYS_TABLE
from infersight.storage.base import Storage, StorageError

log = logging.getLogger(__name__)
Part = pa.Table | MetricRows
# ClickHouse errors about the rows themselves (not the store being unavailable): retrying the
# same rows cannot succeed, so the request causing them is isolated and refused.
DATA_ERROR_CODES = (6, 27, 38, 41, 53, 69, 70, 469, 800, 1002)


def is_data_error(message: str) -> bool:
    return any(f"Code: {c}." in message for c in DATA_ERROR_CODES)


class QueueFull(Exception):
    """More rows are waiting than `server.max_queue_rows`: answer 429."""


class WriteFailed(Exception):
    """These rows can never be written (refused by the store, or a gateway bug): answer 500."""


class StorageDown(Exception):
    """The store failed the last write: answer 503; the rows are kept and retried."""


@dataclass
class _Entry:
    key: str
    tables: dict[str, Part]
    rows: int
    future: asyncio.Future


@dataclass
class _Flush:
    entries: list[_Entry]
    done: set[str] = field(default_factory=set)
    built: dict[str, pa.Table] = field(default_factory=dict)  # reused when the flush is retried

    @property
    def token(self) -> str:
        h = hashlib.sha256()
        for k in sorted(e.key for e in self.entries):
            h.update(k.encode())
            h.update(b"\n")
        return h.hexdigest()

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entries)


class BatchWriter:
    def __init__(self, storage: Storage, flush_rows: int = 10_000, flush_interval_seconds: float = 1.0,
                 max_queue_rows: int = 1_000_000, retry_seconds: float = 1.0,
                 remember_keys: int = 200_000) -> None:
        self.storage = storage
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval_seconds
        self.max_queue_rows = max_queue_rows
        self.retry_seconds = retry_seconds
        self.remember_keys = remember_keys
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._queued_rows = 0  # pending + being written + kept for retry
        self._by_key: dict[str, _Entry] = {}
        self._written: OrderedDict[str, None] = OrderedDict()
        self._retry: _Flush | None = None
        self._isolate: list[_Entry] = []  # entries of a rejected flush, written one at a time
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="infersight-writer")
        self.last_error: str | None = None
        self.flushes = 0

    @property
    def down(self) -> bool:
        return self._retry is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._pool, self.storage.query, (
            f"SELECT Key FROM `{self.storage.database}`.`{KEYS_TABLE}` "
            f"ORDER BY Time DESC LIMIT {int(self.remember_keys)}"))
        for r in reversed(rows):
            self._written[r["Key"]] = None
        self._task = asyncio.create_task(self._run(), name="infersight-writer")
        self._task.add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("writer stopped", exc_info=task.exception())

    def known(self, key: str) -> bool:
        """True when the request with this key is already stored."""
        return key in self._written

    async def submit(self, key: str, tables: dict[str, Part], rows: int) -> None:
        """Queue a request's rows and wait until they are stored (or raise)."""
        if key in self._written:
            return
        entry = self._by_key.get(key)
        if entry is None:
            if self._stopping:
                raise StorageDown("server is shutting down")
            if self.down:
                raise StorageDown(f"storage unavailable: {self.last_error}")
            if self._queued_rows + rows > self.max_queue_rows:
                raise QueueFull(f"write queue full ({self._queued_rows} rows waiting)")
            entry = _Entry(key, tables, rows, asyncio.get_running_loop().create_future())
            self._by_key[key] = entry
            self._pending.append(entry)
            self._pending_rows += rows
            self._queued_rows += rows
            if len(self._pending) == 1 or self._pending_rows >= self.flush_rows:
                self._wake.set()  # start the interval timer, or flush now
        await asyncio.shield(entry.future)

    def drain(self) -> None:
        """Stop taking new requests and flush what is queued now (before in-flight ones finish)."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued (one last attempt), then stop."""
        self.drain()
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._retry is not None:
                batch = self._retry
            elif self._isolate:
                batch = _Flush([self._isolate.pop(0)])
            else:
                if not self._pending:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                deadline = loop.time() + self.flush_interval
                while self._pending_rows < self.flush_rows and not self._stopping:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
                    except asyncio.TimeoutError:
                        break
                batch = _Flush(self._pending)
                self._pending, self._pending_rows = [], 0
            try:
                await loop.run_in_executor(self._pool, self._write, batch)
            except StorageError as err:
                if is_data_error(str(err)) and not batch.done:
                    if len(batch.entries) > 1:
                        log.warning("store rejected %d rows; writing their requests one by one: %s",
                                    batch.rows, err)
                        self._retry = None
                        self._isolate = batch.entries + self._isolate
                    else:
                        log.error("store rejected the rows of one request: %s", err)
                        self._dropped(batch, err)
                    continue
                self._failed(batch, str(err))
                if self._stopping:
                    self._give_up(batch)
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), self.retry_seconds)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                continue
            except Exception as err:  # a bug turning rows into Arrow: not retried, never hangs
                log.exception("cannot write %d rows", batch.rows)
                self._dropped(batch, err)
                continue
            self._stored(batch)

    def _write(self, batch: _Flush) -> None:
        """In the writer thread: every table once, then the keys, all with dedup tokens."""
        token = batch.token
        names = sorted({n for e in batch.entries for n in e.tables})
        for name in names:
            if name in batch.done:
                continue
            table = batch.built.get(name)
            if table is None:
                table = batch.built[name] = combine([e.tables[name] for e in batch.entries
                                                     if name in e.tables])
            self.storage.insert_arrow(name, table, f"{token}:{name}")
            batch.done.add(name)
        keys = pa.table({"Key": pa.array([e.key for e in batch.entries], pa.string())})
        self.storage.insert_arrow(KEYS_TABLE, keys, f"{token}:keys")

    def _failed(self, batch: _Flush, error: str) -> None:
        log.warning("write of %d rows failed (will retry): %s", batch.rows, error)
        self.last_error = error
        self._retry = batch
        loop = asyncio.get_running_loop()
        # Requests queued behind the failed flush are answered too, rather than left hanging;
        # their rows stay queued and are written once the store is back.
        for e in batch.entries + self._isolate + self._pending:
            if not e.future.done():
                e.future.set_exception(StorageDown(f"storage unavailable: {error}"))
                e.future.exception()  # retrieved: no "never retrieved" warning without waiters
            e.future = loop.create_future()

    def _dropped(self, batch: _Flush, err: Exception) -> None:
        self._retry = None
        for e in batch.entries:
            self._by_key.pop(e.key, None)
            self._queued_rows -= e.rows
            if not e.future.done():
                e.future.set_exception(WriteFailed(f"rows refused by the store: {err}"))
                e.future.exception()

    def _give_up(self, batch: _Flush) -> None:
        entries = batch.entries + self._isolate + self._pending
        self._pending, self._isolate = [], []
        log.error("shutting down with %d unwritten rows (never acknowledged)",
                  sum(e.rows for e in entries))
        for e in entries:
            self._by_key.pop(e.key, None)
            if not e.future.done():
                e.future.set_exception(StorageDown("server is shutting down"))
                e.future.exception()

    def _stored(self, batch: _Flush) -> None:
        self._retry = None
        self.last_error = None
        self.flushes += 1
        log.debug("flush %d: stored %d rows of %d requests", self.flushes, batch.rows, len(batch.entries))
        for e in batch.entries:
            self._by_key.pop(e.key, None)
            self._written[e.key] = None
            self._queued_rows -= e.rows
            if not e.future.done():
                e.future.set_result(None)
        while len(self._written) > self.remember_keys:
            self._written.popitem(last=False)
