"""Stateless gateways: two gateways (two apps, each with its own writer and memory) on one store.

A re-send that reaches the other gateway is stored once (base tables and rollups), a key reused for
another body is refused by either, a key the other gateway is writing right now is answered 503, and a
crash leftover is completed by whichever gateway gets the re-send. Real components: the gateway apps on
aiohttp's test server, the embedded chDB store with the full schema and its rollup views.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.config import ServerConfig
from infersight.gateway.app import WRITER, create_app
from infersight.gateway.store import BLOCKS_TABLE, KEYS_TABLE

PB = {"Content-Type": "application/x-protobuf"}
T = 1_767_225_605_000_000_000  # 2026-01-01 00:00:05
REQUESTS, UP = "infersight.inference.requests", "infersight.inference.endpoint.up"


class CountingStore:
    """The real store, counting the journal look-ups (queries of the keys table) it is asked for."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.database = store.database
        self.lookups = 0

    def query(self, sql: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if KEYS_TABLE in sql and "WHERE Key IN" in sql:
            self.lookups += 1
        return self._store.query(sql, settings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
async def gateway(store):
    clients: list[TestClient] = []

    async def make(storage: Any = None, **cfg: Any) -> TestClient:
        cfg.setdefault("flush_interval_seconds", 0.02)
        c = TestClient(TestServer(create_app(ServerConfig(**cfg), storage or store)))
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def request(host: str, requests: float) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (("service.name", "infersight-agent"), ("host.name", host)):
        rm.resource.attributes.add(key=k).value.string_value = v
    sm = rm.scope_metrics.add()
    s = sm.metrics.add(name=REQUESTS).sum
    s.aggregation_temporality, s.is_monotonic = 1, True
    dp = s.data_points.add(time_unix_nano=T, start_time_unix_nano=T - 10**10, as_double=requests)
    dp.attributes.add(key="gen_ai.request.model").value.string_value = "m"
    sm.metrics.add(name=UP).gauge.data_points.add(time_unix_nano=T, as_int=1)
    return req


def one(store, sql: str) -> int:
    return int(store.query(sql.replace("{db}", f"`{store.database}`"))[0]["n"])


def stored(store, host: str) -> dict[str, int]:
    """Rows of a host in the base tables and in the rollups its points feed."""
    where = f"ResourceAttributes['host.name'] = '{host}'"
    return {
        "sum_rows": one(store, f"SELECT count() AS n FROM {{db}}.otel_metrics_sum WHERE {where}"),
        "gauge_rows": one(store, f"SELECT count() AS n FROM {{db}}.otel_metrics_gauge WHERE {where}"),
        "requests_1m": one(store, f"SELECT sum(Requests) AS n FROM {{db}}.infersight_requests_1m "
                                  f"WHERE HostName = '{host}'"),
        "nodes_1m": one(store, f"SELECT sum(Samples) AS n FROM {{db}}.infersight_nodes_1m WHERE HostName = '{host}'"),
    }


async def post(client: TestClient, req: ExportMetricsServiceRequest, key: str | None = None):
    headers = {**PB, "Idempotency-Key": key} if key else PB
    return await client.post("/v1/metrics", data=req.SerializeToString(), headers=headers)


async def message(resp) -> str:
    st = status_pb2.Status()
    st.ParseFromString(await resp.read())
    return st.message


ONCE = {"sum_rows": 1, "gauge_rows": 1, "requests_1m": 3, "nodes_1m": 1}


@pytest.mark.parametrize("key", ["batch-1", None], ids=["idempotency-key", "body-digest"])
async def test_a_resend_to_another_gateway_is_stored_once(gateway, store, key):
    a, b = await gateway(), await gateway()
    assert a.app[WRITER] is not b.app[WRITER]
    req = request("gpu-a", 3.0)
    assert (await post(a, req, key)).status == 200
    assert stored(store, "gpu-a") == ONCE
    assert (await post(b, req, key)).status == 200  # B never saw it: looked up in the journal
    assert (await post(b, req, key)).status == 200  # now from B's memory
    assert stored(store, "gpu-a") == ONCE
    # B's acknowledgement wrote nothing: no journal rows of its own for the key.
    assert one(store, f"SELECT countDistinct(Flush) AS n FROM {{db}}.`{KEYS_TABLE}`") == 1


async def test_a_reused_key_with_another_body_is_refused_by_the_other_gateway(gateway, store):
    a, b = await gateway(), await gateway()
    first, other = request("gpu-k", 3.0), request("gpu-k", 5.0)
    assert (await post(a, first, "key-1")).status == 200
    resp = await post(b, other, "key-1")
    assert resp.status == 400
    assert "'key-1' was already used for a different request body" in await message(resp)
    assert (await post(b, first, "key-1")).status == 200  # the true re-send is acknowledged
    assert (await post(b, other, "key-1")).status == 400  # and refused again, now from B's memory
    assert stored(store, "gpu-k") == ONCE


async def test_one_lookup_per_flush_for_all_unknown_keys(gateway, store):
    counting = CountingStore(store)
    b = await gateway(counting, flush_interval_seconds=0.5, flush_rows=1_000)
    resps = await asyncio.gather(*(post(b, request(f"gpu-n{i}", 1.0), f"n-{i}") for i in range(12)))
    assert [r.status for r in resps] == [200] * 12
    assert b.app[WRITER].flushes == 1
    assert counting.lookups == 1


def crash_after_rows_before_done(store) -> None:
    """The journal as a crash (or a flush still being written) leaves it: keys pending, none stored."""
    store.execute(f"ALTER TABLE `{store.database}`.`{KEYS_TABLE}` UPDATE Done = 0 WHERE 1",
                  {"mutations_sync": 2})


async def test_a_key_the_other_gateway_is_writing_is_answered_503_then_completed(gateway, store):
    a, b = await gateway(), await gateway()
    req = request("gpu-p", 3.0)
    assert (await post(a, req, "batch-p")).status == 200
    # As if A were between its sums and its gauges (or had crashed there).
    crash_after_rows_before_done(store)
    db = store.database
    store.execute(f"DELETE FROM `{db}`.otel_metrics_gauge WHERE ResourceAttributes['host.name'] = 'gpu-p'")
    store.execute(f"DELETE FROM `{db}`.infersight_nodes_1m WHERE HostName = 'gpu-p'")
    store.execute(f"DELETE FROM `{db}`.`{BLOCKS_TABLE}` WHERE endsWith(Token, ':otel_metrics_gauge')")
    resp = await post(b, req, "batch-p")
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "being written by another gateway" in await message(resp)
    assert stored(store, "gpu-p")["sum_rows"] == 1
    # Past the in-flight window the pending key is a crash leftover: B writes only the missing table.
    b.app[WRITER].in_flight_seconds = 0
    assert (await post(b, req, "batch-p")).status == 200
    assert stored(store, "gpu-p") == ONCE
    assert (await post(a, req, "batch-p")).status == 200  # A: the key from its memory, nothing written
    assert stored(store, "gpu-p") == ONCE


async def test_a_pending_key_of_a_finished_flush_elsewhere_is_acknowledged(gateway, store):
    """Every block of the other gateway's flush is stored, its Done row missing: nothing to write."""
    a, b = await gateway(), await gateway()
    req = request("gpu-d", 3.0)
    assert (await post(a, req, "batch-d")).status == 200
    crash_after_rows_before_done(store)
    assert (await post(b, req, "batch-d")).status == 200
    assert stored(store, "gpu-d") == ONCE
