"""The writer inserts a flush's tables side by side on connections of their own, and a table that fails makes the
whole flush retry without storing the others twice."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from infersight.gateway import otlp
from infersight.gateway.rows import AttrSets, metrics_rows
from infersight.gateway.writer import BatchWriter, StorageDown
from infersight.storage.base import Unavailable
from test_gateway_errors import gauge_request

GAUGE, SUM = "otel_metrics_gauge", "otel_metrics_sum"


def _gauge_and_sum(n: int) -> Any:
    req = gauge_request(n, name="g")
    m = req.resource_metrics[0].scope_metrics[0].metrics.add(name="s")
    m.sum.aggregation_temporality, m.sum.is_monotonic = 2, True
    for i in range(n):
        dp = m.sum.data_points.add(time_unix_nano=1_700_000_000_000_000_000, as_int=i)
        dp.attributes.add(key="i").value.int_value = i
    body = req.SerializeToString()
    return metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), AttrSets())


def _count(store: Any, table: str) -> int:
    return int(store.query(f"SELECT count() AS n FROM `{store.database}`.`{table}`")[0]["n"])


class Rendezvous:
    """The real store; each metric table's insert waits (bounded) until the other one has started too."""

    def __init__(self, store: Any) -> None:
        self.store, self.database = store, store.database
        self.started = {GAUGE: threading.Event(), SUM: threading.Event()}
        self.met: dict[str, bool] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        if table in self.started:
            self.started[table].set()
            other = SUM if table == GAUGE else GAUGE
            self.met[table] = self.started[other].wait(10)
        self.store.insert_arrow(table, data, dedup_token)


class Peak:
    """The real store; counts the inserts running at once (each held 0.2 s so that overlapping ones would meet)."""

    def __init__(self, store: Any) -> None:
        self.store, self.database = store, store.database
        self.lock, self.running, self.peak = threading.Lock(), 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.2)
            self.store.insert_arrow(table, data, dedup_token)
        finally:
            with self.lock:
                self.running -= 1


class FailsOnce:
    """The real store, except that the first insert into `table` fails as if the store went away."""

    def __init__(self, store: Any, table: str) -> None:
        self.store, self.database, self.table = store, store.database, table
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> None:
        self.calls.append(table)
        if table == self.table and self.calls.count(table) == 1:
            raise Unavailable("connection reset (injected)")
        self.store.insert_arrow(table, data, dedup_token)


async def _write_one(storage: Any, n: int, **writer: Any) -> None:
    """One request of n gauge and n sum points through a fresh writer, until stored."""
    w = BatchWriter(storage, flush_rows=1, flush_interval_seconds=0.01, **writer)
    await w.start()
    try:
        res = _gauge_and_sum(n)
        await w.submit("k", "d", res.parts, res.rows)
    finally:
        await w.close()


async def test_a_flushs_tables_are_inserted_side_by_side(store):
    wrapped = Rendezvous(store)
    await _write_one(wrapped, 50)
    assert wrapped.met == {GAUGE: True, SUM: True}  # each insert saw the other one running
    assert (_count(store, GAUGE), _count(store, SUM)) == (50, 50)


async def test_one_after_the_other_when_told(store):
    wrapped = Peak(store)
    await _write_one(wrapped, 5, parallel_inserts=1)
    assert wrapped.peak == 1
    assert (_count(store, GAUGE), _count(store, SUM)) == (5, 5)


async def test_a_failed_table_retries_the_flush_and_the_other_is_stored_once(store):
    flaky = FailsOnce(store, SUM)
    w = BatchWriter(flaky, flush_rows=1, flush_interval_seconds=0.01, retry_seconds=0.05)
    await w.start()
    try:
        res = _gauge_and_sum(20)
        with pytest.raises(StorageDown):  # answered 503 at once; the rows stay queued and are retried
            await w.submit("k", "d", res.parts, res.rows)
        for _ in range(400):
            if _count(store, SUM) == 20:
                break
            await asyncio.sleep(0.05)
        await w.submit("k", "d", res.parts, res.rows)  # the client's re-send: acknowledged, not written again
    finally:
        await w.close()
    assert flaky.calls.count(SUM) == 2
    assert (_count(store, GAUGE), _count(store, SUM)) == (20, 20)
