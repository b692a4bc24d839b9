"""Batched, idempotent writes: one insert per table per flush, acknowledged only when stored.

The unit of deduplication is the request, whichever flush it lands in:
- a flush gets an id when it is first attempted; each table's insert carries the token
  `<flush>:<table>`, so retrying a flush that failed half-way is deduplicated by the table
  (`non_replicated_deduplication_window`, also on the rollups the views fill);
- before the rows, the flush's request keys are journaled as pending, with the flush id and their
  tables; after the rows, as done (`infersight_gateway_requests`). A re-send of a done key is
  acknowledged without writing, also after a restart;
- after a crash between the two, views have recorded which blocks of the flush were stored
  (`infersight_gateway_blocks`): a re-send of a pending key writes only its rows the store lacks;
- a re-send of a request still queued or in a failed flush waits for that flush.

Gateways are stateless: several processes may write into one store. Keys this process does not hold
in memory are looked up in the journal when their flush is first attempted, in one query for all of
them (and one more for the block markers when some are pending): a key another gateway stored is
acknowledged without writing (400 when the body differs); a key another gateway journaled within
`in_flight_seconds` and has not finished is answered 503 (retry: it is being written there); an older
pending one, or one of this process's own earlier flushes, is a crash leftover: only its missing
tables are written. Flush ids start with the writer's id, which tells its own journal rows apart.
Two gateways taking the same new key in the same instant can both write it (no lock in the store).
One insert per request and table would make each request its own block too, but a part costs
about 25 ms in chDB whatever its size: ingest ran 9x slower (bench/ingest.py).

Insert size adapts to the load (bench/ingest.py measures it): an insert into the exporter tables
costs a fixed ~60 ms (parts, indexes, the views) plus ~2.5 us a row, so 10k-row inserts run at
about a third of the rate of 100k-row ones. A flush starts once the queue holds its target, the
arrival rate over half the flush interval within [flush_rows, flush_max_rows] (deep queue: big
inserts), or once requests stop arriving for `linger` with at least flush_rows queued (clients
waiting on their acknowledgements: no stall), or `flush_interval` after its oldest row (idle: small
and prompt). A flush takes at most flush_max_rows; the rest waits for the next one.

When the store rejects rows themselves (a constraint, a type error), retrying cannot succeed: that
table's rows are written request by request (tokens `<flush>:<table>:<key>`, nothing of the
combined block was stored) and only the offending request is refused (500), at once. A view that
throws after the source block is stored ("while pushing to view") does not refuse the requests
(their rows are stored; that view misses the block) and is logged; the shipped views never throw.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from infersight.gateway.rows import Part, to_arrow
from infersight.gateway.rows.attrs import arrow_type
from infersight.gateway.store import BLOCKS_TABLE, KEYS, KEYS_TABLE
from infersight.storage.base import DataError, Storage, StorageError
from infersight.storage.literals import string_literal

log = logging.getLogger(__name__)
VIEW_ERROR = "while pushing to view"  # in a DataError: the source block was stored before the view threw


class QueueFull(Exception):
    """More rows are waiting than `server.max_queue_rows`: answer 429."""


class WriteFailed(Exception):
    """These rows can never be written (refused by the store, or a gateway bug): answer 500."""


class KeyConflict(Exception):
    """The idempotency key was already used for a different body: answer 400."""


class StorageDown(Exception):
    """The store failed the last write: answer 503; the rows are kept and retried."""


class BeingWritten(StorageDown):
    """Another gateway journaled this key moments ago and has not stored it yet: answer 503 (retry)."""


@dataclass
class _Entry:
    key: str
    digest: str  # of the request's body: a key reused for another body is refused
    tables: dict[str, Part]
    rows: int
    future: asyncio.Future
    arrived: float = 0.0  # loop time when queued: the flush deadline counts from the oldest
    done: set[str] = field(default_factory=set)  # tables already holding this request's rows
    refused: Exception | None = None  # the store rejected its rows (or a bug): never retried
    looked_up: bool = False  # its key's journal state is known (looked up, or from the start-up load)
    elsewhere: bool = False  # another gateway stored it: nothing to write


@dataclass
class _Flush:
    entries: list[_Entry]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the writer's id, then a fresh one
    journaled: bool = False
    built: dict[str, tuple[list[str], pa.Table]] = field(default_factory=dict)  # reused on retries

    @property
    def live(self) -> list[_Entry]:
        return [e for e in self.entries if e.refused is None]

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entries)


class BatchWriter:
    def __init__(self, storage: Storage, flush_rows: int = 10_000, flush_interval_seconds: float = 1.0,
                 max_queue_rows: int = 1_000_000, retry_seconds: float = 1.0,
                 remember_keys: int = 200_000, flush_max_rows: int = 200_000,
                 flush_linger_seconds: float = 0.005, in_flight_seconds: float = 30.0,
                 parallel_inserts: int = 4) -> None:
        self.storage = storage
        self.id = uuid.uuid4().hex[:8]  # starts each flush id: this process's own journal rows
        self.in_flight_seconds = in_flight_seconds
        self.flush_rows = flush_rows
        self.flush_max_rows = max(flush_rows, flush_max_rows)
        self.flush_interval = flush_interval_seconds
        self.linger = flush_linger_seconds
        self.target_rows = flush_rows  # rows that start a flush now (adapts to the arrival rate)
        self._arrived_rows = 0  # since the last flush started, for the rate
        self._rate_since = 0.0
        self._last_arrival = 0.0
        self.max_queue_rows = max_queue_rows
        self.retry_seconds = retry_seconds
        self.remember_keys = remember_keys
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._queued_rows = 0  # pending + being written + kept for retry
        self._by_key: dict[str, _Entry] = {}
        self._written: OrderedDict[str, str] = OrderedDict()  # key -> body digest
        self._partial: dict[str, tuple[str, set[str]]] = {}  # pending after a crash: digest, tables stored
        self._retry: _Flush | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="infersight-writer")
        # A flush's tables inserted side by side (1: one after the other).
        self._inserts = (ThreadPoolExecutor(parallel_inserts, thread_name_prefix="infersight-insert")
                         if parallel_inserts > 1 else None)
        self.last_error: str | None = None
        self.flushes = 0
        # (outcome "stored" | "failed" | "dropped", rows, seconds) after each flush attempt: the server's metrics.
        self.flush_observers: list[Callable[[str, int, float], None]] = []

    @property
    def queued_rows(self) -> int:
        """Rows waiting: queued, being written, or kept for a retry."""
        return self._queued_rows

    def _observe(self, outcome: str, rows: int, seconds: float) -> None:
        for observer in self.flush_observers:
            observer(outcome, rows, seconds)

    @property
    def down(self) -> bool:
        return self._retry is not None

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load)
        self._task = asyncio.create_task(self._run(), name="infersight-writer")
        self._task.add_done_callback(self._crashed)

    def _load(self) -> None:
        """The journal's latest keys; keys of a flush interrupted by a crash are resolved by its blocks."""
        db = f"`{self.storage.database}`"
        rows = self.storage.query(
            f"SELECT Key, argMax(Digest, Done) AS D, argMax(Flush, Done) AS F, argMax(Tables, Done) AS T, "
            f"max(Done) AS Stored FROM {db}.`{KEYS_TABLE}` "
            f"GROUP BY Key ORDER BY max(Time) DESC LIMIT {int(self.remember_keys)}")
        pending = [r for r in rows if not int(r["Stored"])]
        tokens: set[str] = set()
        if pending:
            flushes = ", ".join(sorted({f"'{r['F']}'" for r in pending if r["F"].isalnum()})) or "''"
            tokens = {r["Token"] for r in self.storage.query(
                f"SELECT DISTINCT Token FROM {db}.`{BLOCKS_TABLE}` "
                f"WHERE splitByChar(':', Token)[1] IN ({flushes})")}
        for r in reversed(rows):
            key, digest, flush, tables = r["Key"], r["D"], r["F"], set(r["T"])
            stored = {t for t in tables if f"{flush}:{t}" in tokens or f"{flush}:{t}:{key}" in tokens}
            if int(r["Stored"]) or stored >= tables:
                self._written[key] = digest
            else:
                self._partial[key] = (digest, stored)
        if pending:
            log.warning("%d requests were being written when the gateway stopped; %d of them are "
                        "stored, the others are written when re-sent", len(pending),
                        len(pending) - sum(1 for r in pending if r["Key"] in self._partial))

    def _crashed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("writer stopped", exc_info=task.exception())

    def known(self, key: str, digest: str) -> bool:
        """True when the request with this key is already stored (KeyConflict: with another body)."""
        stored = self._written.get(key)
        if stored is None:
            return False
        self._check(key, stored, digest)
        return True

    @staticmethod
    def _check(key: str, stored: str, digest: str) -> None:
        if stored and stored != digest:
            raise KeyConflict(f"idempotency key {key.rsplit(':key:', 1)[-1]!r} was already used for a "
                              "different request body; use a new key for new data")

    async def submit(self, key: str, digest: str, tables: dict[str, Part], rows: int) -> None:
        """Queue a request's rows and wait until they are stored (or raise)."""
        if self.known(key, digest):
            return
        entry = self._by_key.get(key)
        if entry is not None:
            self._check(key, entry.digest, digest)
        else:
            if self._stopping:
                raise StorageDown("server is shutting down")
            if self.down:
                raise StorageDown(f"storage unavailable: {self.last_error}")
            if self._queued_rows + rows > self.max_queue_rows:
                raise QueueFull(f"write queue full ({self._queued_rows} rows waiting)")
            loop = asyncio.get_running_loop()
            now = loop.time()
            entry = _Entry(key, digest, tables, rows, loop.create_future(), now)
            partial = self._partial.pop(key, None)
            if partial is not None:
                self._check(key, partial[0], digest)
                entry.done = set(partial[1])
                entry.looked_up = True
            self._by_key[key] = entry
            self._pending.append(entry)
            self._pending_rows += rows
            self._queued_rows += rows
            self._arrived_rows += rows
            self._last_arrival = now
            if len(self._pending) == 1 or self._pending_rows >= self.target_rows:
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
        if self._inserts is not None:
            self._inserts.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._retry is not None:
                batch = self._retry
            else:
                if not self._pending:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._fill(loop)
                batch = self._take()
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self._pool, self._write, batch)
            except StorageError as err:
                self._observe("failed", batch.rows, time.perf_counter() - started)
                self._failed(batch, str(err))
                if self._stopping:
                    self._give_up(batch)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.retry_seconds)
                self._wake.clear()
                continue
            except Exception as err:  # a bug turning rows into Arrow: not retried, never hangs
                log.exception("cannot write %d rows", batch.rows)
                self._observe("dropped", batch.rows, time.perf_counter() - started)
                self._dropped(batch.entries, err)
                continue
            self._observe("stored", batch.rows, time.perf_counter() - started)
            self._stored(batch)

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the queue holds the target, requests pause with flush_rows queued, or the deadline."""
        deadline = self._pending[0].arrived + self.flush_interval
        while self._pending_rows < self.target_rows and not self._stopping:
            now = loop.time()
            timeout = deadline - now
            if self._pending_rows >= self.flush_rows:
                timeout = min(timeout, self._last_arrival + self.linger - now)
            if timeout <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _take(self) -> _Flush:
        """Up to flush_max_rows of the oldest queued requests (at least one); sets the next target."""
        now = asyncio.get_running_loop().time()
        if self._rate_since:
            rate = self._arrived_rows / max(now - self._rate_since, 1e-3)
            self.target_rows = int(min(self.flush_max_rows, max(self.flush_rows, rate * self.flush_interval / 2)))
        self._arrived_rows, self._rate_since = 0, now
        n = rows = 0
        for e in self._pending:
            if n and rows + e.rows > self.flush_max_rows:
                break
            n, rows = n + 1, rows + e.rows
        entries, self._pending = self._pending[:n], self._pending[n:]
        self._pending_rows -= rows
        return _Flush(entries, self.id + uuid.uuid4().hex)

    def _write(self, batch: _Flush) -> None:
        """In the writer thread: journal the keys, every table once, then mark the keys done."""
        if not batch.journaled:
            self._look_up(batch)
            self._journal(batch, [e for e in batch.live if not e.elsewhere], done=False)
            batch.journaled = True
        work = [(name, entries) for name in sorted({n for e in batch.live for n in e.tables})
                if (entries := [e for e in batch.live if name in e.tables and name not in e.done])]
        # The tables side by side, each on a connection of its own: every insert ends before the flush does,
        # so a retry never overlaps the attempt it repeats.
        if len(work) > 1 and self._inserts is not None:
            futures = [self._inserts.submit(self._insert, batch, name, entries) for name, entries in work]
            outcomes = [f.exception() for f in futures]
        else:
            outcomes = []
            for name, entries in work:
                try:
                    self._insert(batch, name, entries)
                except Exception as err:  # noqa: BLE001 (re-raised below, after the tables before it are marked)
                    outcomes.append(err)
                    break
                outcomes.append(None)
        for (name, entries), error in zip(work, outcomes, strict=False):
            if error is None:
                for e in entries:
                    if e.refused is None:
                        e.done.add(name)
        if error := next((o for o in outcomes if o is not None), None):
            raise error
        live = [e for e in batch.live if not e.elsewhere]
        if live:
            self._journal(batch, live, done=True)

    def _insert(self, batch: _Flush, name: str, entries: list[_Entry]) -> None:
        """One table's rows of the flush (built once, reused on retries); rows the store refuses are written
        request by request so that only the offending request is refused."""
        entries = [e for e in entries if e.refused is None]  # refused by a table written before this one
        if not entries:
            return
        keys = [e.key for e in entries]
        cached = batch.built.get(name)
        if cached is None or cached[0] != keys:
            cached = batch.built[name] = (keys, to_arrow([e.tables[name] for e in entries]))
        table = cached[1]
        try:
            self.storage.insert_arrow(name, table, f"{batch.id}:{name}")
        except DataError as err:
            if VIEW_ERROR in str(err):
                log.error("a view failed on %d rows stored in %s (the view misses them): %s",
                          table.num_rows, name, err)
            else:
                self._one_by_one(batch, name, entries, err)

    def _look_up(self, batch: _Flush) -> None:
        """The journal's state of the flush's keys this process does not know, one query for all (gateways
        share the store): stored elsewhere, being written elsewhere, or left pending by a crash."""
        todo = {e.key: e for e in batch.live if not e.looked_up}
        if not todo:
            return
        db = f"`{self.storage.database}`"
        rows = self.storage.query(
            f"SELECT Key, argMax(Digest, Done) AS D, argMax(Flush, Done) AS F, argMax(Tables, Done) AS T, "
            f"max(Done) AS Stored, dateDiff('second', max(Time), now()) AS Age FROM {db}.`{KEYS_TABLE}` "
            f"WHERE Key IN ({', '.join(string_literal(k) for k in todo)}) GROUP BY Key")
        pending = [r for r in rows if not int(r["Stored"]) and r["F"].isalnum()]
        tokens: set[str] = set()
        if pending:
            like = " OR ".join(sorted({f"Token LIKE '{r['F']}:%'" for r in pending}))
            tokens = {r["Token"] for r in self.storage.query(
                f"SELECT DISTINCT Token FROM {db}.`{BLOCKS_TABLE}` WHERE {like}")}
        for e in todo.values():
            e.looked_up = True
        for r in rows:
            e = todo[r["Key"]]
            try:
                self._check(e.key, r["D"], e.digest)
            except KeyConflict as err:
                e.refused = err
                continue
            flush, tables = r["F"], set(r["T"])
            stored = {t for t in tables if f"{flush}:{t}" in tokens or f"{flush}:{t}:{e.key}" in tokens}
            if int(r["Stored"]) or (tables and stored >= tables):
                e.elsewhere = True
                e.done = set(e.tables)
            elif not flush.startswith(self.id) and int(r["Age"]) < self.in_flight_seconds:
                e.refused = BeingWritten(f"request {e.key.rsplit(':key:', 1)[-1]!r} is being written by "
                                         "another gateway; retry")
            else:  # a crash left it pending (or an earlier flush of ours failed): write what is missing
                e.done = stored

    def _one_by_one(self, batch: _Flush, name: str, entries: list[_Entry], err: DataError) -> None:
        log.warning("store rejected %d rows in %s; writing their requests one by one: %s",
                    sum(e.tables[name].num_rows for e in entries), name, err)
        for e in entries:
            try:
                self.storage.insert_arrow(name, to_arrow([e.tables[name]]), f"{batch.id}:{name}:{e.key}")
            except DataError as one:
                log.error("store rejected the rows of request %s in %s: %s", e.key, name, one)
                e.refused = one
            except Exception as bug:  # a bug turning rows into Arrow: not retried, never hangs
                log.exception("cannot write the rows of request %s in %s", e.key, name)
                e.refused = bug
            else:
                e.done.add(name)  # a retry after a later failure skips it

    def _journal(self, batch: _Flush, entries: list[_Entry], done: bool) -> None:
        values = {"Key": [e.key for e in entries], "Digest": [e.digest for e in entries],
                  "Flush": [batch.id] * len(entries), "Tables": [sorted(e.tables) for e in entries],
                  "Done": [int(done)] * len(entries)}  # Time: its default
        keys = pa.table({k: pa.array(v, arrow_type(KEYS.types[k])) for k, v in values.items()})
        self.storage.insert_arrow(KEYS_TABLE, keys, f"{batch.id}:keys:{int(done)}")

    def _failed(self, batch: _Flush, error: str) -> None:
        log.warning("write of %d rows failed (will retry): %s", batch.rows, error)
        self.last_error = error
        self._retry = batch
        loop = asyncio.get_running_loop()
        # Requests queued behind the failed flush are answered too, rather than left hanging;
        # their rows stay queued and are written once the store is back.
        for e in batch.entries + self._pending:
            if not e.future.done():
                e.future.set_exception(StorageDown(f"storage unavailable: {error}"))
                e.future.exception()  # retrieved: no "never retrieved" warning without waiters
            e.future = loop.create_future()

    def _dropped(self, entries: list[_Entry], err: Exception) -> None:
        for e in entries:
            self._by_key.pop(e.key, None)
            self._queued_rows -= e.rows
            if not e.future.done():
                answer = err if isinstance(err, (KeyConflict, StorageDown)) else WriteFailed(
                    f"rows refused by the store: {err}")
                e.future.set_exception(answer)
                e.future.exception()

    def _give_up(self, batch: _Flush) -> None:
        entries = batch.entries + self._pending
        self._pending, self._pending_rows = [], 0
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
            if e.refused is not None:
                self._dropped([e], e.refused)
                continue
            self._by_key.pop(e.key, None)
            self._written[e.key] = e.digest
            self._queued_rows -= e.rows
            if not e.future.done():
                e.future.set_result(None)
        while len(self._written) > self.remember_keys:
            self._written.popitem(last=False)
