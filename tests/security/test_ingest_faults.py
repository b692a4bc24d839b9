"""Ingest faults: poison values, views that throw, re-sends in other flushes, reused keys, attribute memory.

Real components throughout: the gateway app on aiohttp's test server, the embedded chDB store with the
full schema and its rollup views, the protobuf OTLP messages the SDK exporters send.
"""
from __future__ import annotations

import asyncio
import math
import tracemalloc

import pyarrow as pa
import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from infersight.config import ServerConfig
from infersight.gateway import otlp
from infersight.gateway.app import create_app
from infersight.gateway.rows import AttrSets, metrics_rows, to_arrow
from infersight.gateway.store import BLOCKS_TABLE, KEYS_TABLE
from infersight.rollups import MAX_ROLLUP_COUNT

PB = {"Content-Type": "application/x-protobuf"}
T = 1_767_225_605_000_000_000  # 2026-01-01 00:00:05
REQUESTS, TOKENS, UP = "infersight.inference.requests", "gen_ai.client.token.usage", "infersight.inference.endpoint.up"


@pytest.fixture
async def make_client(store):
    clients = []

    async def make(**cfg):
        cfg.setdefault("flush_interval_seconds", 0.02)
        server = TestServer(create_app(ServerConfig(**cfg), store))
        c = TestClient(server)
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def metrics(host: str, deltas: dict[str, list[float | int]], up: bool = True) -> ExportMetricsServiceRequest:
    """An agent's request: delta sums (name -> point values) of one model, plus its endpoint-up gauge."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (("service.name", "infersight-agent"), ("host.name", host), ("cloud.provider", "aws")):
        rm.resource.attributes.add(key=k).value.string_value = v
    sm = rm.scope_metrics.add()
    for name, values in deltas.items():
        s = sm.metrics.add(name=name).sum
        s.aggregation_temporality, s.is_monotonic = 1, True
        for i, v in enumerate(values):
            dp = s.data_points.add(time_unix_nano=T, start_time_unix_nano=T - 10**10)
            if isinstance(v, int):
                dp.as_int = v
            else:
                dp.as_double = v
            for k, a in (("gen_ai.request.model", "m"), ("gen_ai.token.type", "input"), ("i", str(i))):
                dp.attributes.add(key=k).value.string_value = a
    if up:
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
        "input_tokens_1m": one(store, f"SELECT sum(InputTokens) AS n FROM {{db}}.infersight_requests_1m "
                                      f"WHERE HostName = '{host}'"),
        "nodes_1m": one(store, f"SELECT sum(Samples) AS n FROM {{db}}.infersight_nodes_1m WHERE HostName = '{host}'"),
    }


async def post(client, req: ExportMetricsServiceRequest, key: str | None = None):
    headers = {**PB, "Idempotency-Key": key} if key else PB
    return await client.post("/v1/metrics", data=req.SerializeToString(), headers=headers)


async def message(resp) -> str:
    st = status_pb2.Status()
    st.ParseFromString(await resp.read())
    return st.message


async def test_poison_delta_points_are_rejected_and_ingest_keeps_flowing(make_client, store):
    """NaN, ±Inf and counts whose sum overflows UInt64 are refused at the gateway (partial success)."""
    client = await make_client()
    poison = metrics("gpu-p", {REQUESTS: [math.nan, math.inf, -math.inf, 1e30, 3.0],
                               TOKENS: [2**62, 2**63 - 1, 10]})
    resp = await post(client, poison)
    assert resp.status == 200
    out = ExportMetricsServiceResponse.FromString(await resp.read())
    assert out.partial_success.rejected_data_points == 6
    assert f"delta sum '{REQUESTS}'" in out.partial_success.error_message
    assert f"delta sum '{TOKENS}'" in out.partial_success.error_message
    assert "finite count" in out.partial_success.error_message
    assert (await client.get("/readyz")).status == 200
    assert stored(store, "gpu-p") == {"sum_rows": 2, "gauge_rows": 1, "requests_1m": 3, "input_tokens_1m": 10,
                                      "nodes_1m": 1}
    # Every other client is still served.
    resp = await post(client, metrics("gpu-ok", {REQUESTS: [5.0]}))
    assert resp.status == 200
    assert stored(store, "gpu-ok")["requests_1m"] == 5


def test_views_never_throw_or_store_saturated_values(store):
    """Rows written by anything else (another exporter, an old gateway) cannot break or poison the rollups."""
    db = store.database
    res = {"host.name": "gpu-v"}
    vals = [math.nan, math.inf, -math.inf, 1e30, -5.0, float(MAX_ROLLUP_COUNT) + 1, 7.0]
    n = len(vals)
    store.insert_arrow("otel_metrics_sum", pa.table({
        "ResourceAttributes": pa.array([res] * n * 2, otlp_map()),
        "MetricName": [REQUESTS] * n + [TOKENS] * n,
        "Attributes": pa.array([{"gen_ai.request.model": "m", "gen_ai.token.type": "output"}] * n * 2, otlp_map()),
        "TimeUnix": pa.array([T // 10**9] * n * 2, pa.uint32()),
        "Value": vals * 2, "AggregationTemporality": pa.array([1] * n * 2, pa.int32())}))
    big = 2**64 - 1
    store.insert_arrow("otel_metrics_histogram", pa.table({
        "ResourceAttributes": pa.array([res] * 3, otlp_map()),
        "MetricName": ["gen_ai.server.request.duration"] * 3,
        "Attributes": pa.array([{"gen_ai.request.model": "m"}] * 3, otlp_map()),
        "TimeUnix": pa.array([T // 10**9] * 3, pa.uint32()),
        "Count": pa.array([big, 2, 2], pa.uint64()), "Sum": [1.0, math.nan, 3.0],
        "BucketCounts": pa.array([[big, 0], [1, 1], [1, 1]], pa.list_(pa.uint64())),
        "ExplicitBounds": [[1.0], [1.0], [1.0]], "AggregationTemporality": pa.array([1] * 3, pa.int32())}))
    attrs = [{"gen_ai.usage.input_tokens": t, "gen_ai.usage.cost": c, "gen_ai.server.time_to_first_token": f}
             for t, c, f in (("-5", "99999999999999999999999999", "nan"), ("1e30", "-3", "inf"),
                             ("18446744073709551615", "99999999999999999999999999", "-1"), ("12", "0.5", "0.2"))]
    store.insert_arrow("otel_traces", pa.table({
        "Timestamp": pa.array([T] * 4, pa.timestamp("ns", tz="UTC")),
        "TraceId": ["0af7651916cd43dd8448eb211c80319c"] * 4, "SpanId": ["b7ad6b7169203331"] * 4,
        "ResourceAttributes": pa.array([res] * 4, otlp_map()),
        "SpanAttributes": pa.array([{"gen_ai.request.model": "m", **a} for a in attrs], otlp_map()),
        "Duration": pa.array([10**9] * 4, pa.uint64())}))
    req = store.query(f"SELECT toString(sum(Requests)) AS r, toString(sum(InputTokens)) AS i, "
                      f"toString(sum(OutputTokens)) AS o, toString(sum(ReportedCostUSD)) AS c "
                      f"FROM `{db}`.infersight_requests_1m WHERE HostName = 'gpu-v'")
    # 7 scraped requests + 4 spans; only the span with 12 input tokens and the 7 output tokens count.
    assert req == [{"r": "11", "i": "12", "o": "7", "c": "0.5"}]
    lat = store.query(f"SELECT Kind, toString(sum(Count)) AS n, sum(Sum) AS s FROM `{db}`.infersight_latency_1m "
                      f"WHERE HostName = 'gpu-v' GROUP BY Kind ORDER BY Kind")
    assert lat == [{"Kind": "e2e", "n": "6", "s": 7}, {"Kind": "ttft", "n": "1", "s": 0.2}]


def otlp_map() -> pa.DataType:
    return pa.map_(pa.string(), pa.string())


async def test_poison_request_among_valid_ones_in_one_flush(make_client, store):
    """2 valid requests and 1 with only poison points share a flush: the valid ones are stored once (base and
    rollup), the poison points are refused by a partial success and stored nowhere."""
    client = await make_client(flush_interval_seconds=0.3)
    reqs = [metrics("gpu-a", {REQUESTS: [1.0]}), metrics("gpu-bad", {REQUESTS: [math.nan, 1e300]}, up=False),
            metrics("gpu-b", {REQUESTS: [2.0]})]
    results = await asyncio.gather(*(post(client, r, f"k-{i}") for i, r in enumerate(reqs)))
    assert [r.status for r in results] == [200, 200, 200]
    rejected = [ExportMetricsServiceResponse.FromString(await r.read()).partial_success.rejected_data_points
                for r in results]
    assert rejected == [0, 2, 0]
    for host, n in (("gpu-a", 1), ("gpu-b", 2)):
        assert stored(store, host) == {"sum_rows": 1, "gauge_rows": 1, "requests_1m": n, "input_tokens_1m": 0,
                                       "nodes_1m": 1}
    assert stored(store, "gpu-bad") == {"sum_rows": 0, "gauge_rows": 0, "requests_1m": 0, "input_tokens_1m": 0,
                                        "nodes_1m": 0}


async def test_rows_the_store_rejects_refuse_only_their_request_and_others_are_stored_once(make_client, store):
    """A store-side rejection (here a constraint) in a flush of 3: only that request is refused, at once, and
    not stored; the others are stored exactly once, base and rollup; nothing is retried, /readyz stays 200."""
    db = store.database
    store.execute(f"ALTER TABLE `{db}`.otel_metrics_sum ADD CONSTRAINT small CHECK Value < 100")
    client = await make_client(flush_interval_seconds=0.3)
    reqs = [metrics("gpu-a", {REQUESTS: [1.0]}), metrics("gpu-bad", {REQUESTS: [500.0]}, up=False),
            metrics("gpu-b", {REQUESTS: [2.0]})]
    results = await asyncio.gather(*(post(client, r, f"k-{i}") for i, r in enumerate(reqs)))
    assert [r.status for r in results] == [200, 500, 200]
    assert "rows refused by the store" in await message(results[1])
    assert (await client.get("/readyz")).status == 200
    for host, n in (("gpu-a", 1), ("gpu-b", 2)):
        assert stored(store, host) == {"sum_rows": 1, "gauge_rows": 1, "requests_1m": n, "input_tokens_1m": 0,
                                       "nodes_1m": 1}
    assert stored(store, "gpu-bad")["sum_rows"] == 0
    assert (await post(client, reqs[0], "k-0")).status == 200
    assert (await post(client, metrics("gpu-c", {REQUESTS: [3.0]}))).status == 200
    assert stored(store, "gpu-a")["sum_rows"] == 1 and stored(store, "gpu-c")["requests_1m"] == 3


async def test_a_view_that_throws_after_the_rows_are_stored_blocks_nothing(make_client, store):
    """An operator's own view that cannot convert a value fails after ClickHouse stored the source block: the
    rows are stored once, nothing is retried or written twice, and ingest keeps flowing."""
    db = store.database
    store.execute(f"CREATE TABLE `{db}`.ops_up (Host String, V UInt64) ENGINE = MergeTree ORDER BY Host")
    store.execute(f"CREATE MATERIALIZED VIEW `{db}`.ops_up_mv TO `{db}`.ops_up AS SELECT "
                  f"ResourceAttributes['host.name'] AS Host, toUInt64(Value) AS V FROM `{db}`.otel_metrics_gauge")
    client = await make_client(flush_interval_seconds=0.3)
    bad = metrics("gpu-bad", {REQUESTS: [4.0]}, up=False)
    bad.resource_metrics[0].scope_metrics[0].metrics.add(name="g").gauge.data_points.add(time_unix_nano=T,
                                                                                      as_double=math.nan)
    reqs = [metrics("gpu-a", {REQUESTS: [1.0]}), bad, metrics("gpu-b", {REQUESTS: [2.0]})]
    results = await asyncio.gather(*(post(client, r, f"k-{i}") for i, r in enumerate(reqs)))
    assert [r.status for r in results] == [200, 200, 200]
    assert (await client.get("/readyz")).status == 200
    for host, n in (("gpu-a", 1), ("gpu-b", 2), ("gpu-bad", 4)):
        assert stored(store, host)["sum_rows"] == 1 and stored(store, host)["requests_1m"] == n
        assert stored(store, host)["gauge_rows"] == 1
    assert (await post(client, bad, "k-1")).status == 200
    assert stored(store, "gpu-bad")["gauge_rows"] == 1
    assert (await post(client, metrics("gpu-c", {REQUESTS: [3.0]}))).status == 200


def crash_after_rows_before_done(store) -> None:
    """The journal as a crash leaves it: every key being written (pending), none marked stored."""
    store.execute(f"ALTER TABLE `{store.database}`.`{KEYS_TABLE}` UPDATE Done = 0 WHERE 1",
                  {"mutations_sync": 2})


async def test_resend_in_another_flush_after_a_crash_is_stored_once(make_client, store):
    """A crash after a request's rows and before its key: the re-send lands in a flush with other requests,
    in a restarted gateway that does not know the key; rows and rollups still count it once."""
    client = await make_client()
    first = metrics("gpu-r", {REQUESTS: [7.0], TOKENS: [100]})
    assert (await post(client, first, "batch-1")).status == 200
    await client.close()
    want = {"sum_rows": 2, "gauge_rows": 1, "requests_1m": 7, "input_tokens_1m": 100, "nodes_1m": 1}
    assert stored(store, "gpu-r") == want
    for attempt in range(2):
        crash_after_rows_before_done(store)
        client = await make_client(flush_interval_seconds=0.3)
        other = metrics(f"gpu-o{attempt}", {REQUESTS: [1.0]})
        # Alone in its flush the first time, sharing it with another request the second time.
        sends = [post(client, first, "batch-1")] + ([post(client, other)] if attempt else [])
        assert [r.status for r in await asyncio.gather(*sends)] == [200] * len(sends)
        await client.close()
        assert stored(store, "gpu-r") == want
    assert stored(store, "gpu-o1")["requests_1m"] == 1
    # A crash in the middle of a flush: its sums were stored, its gauges not yet.
    second = metrics("gpu-s", {REQUESTS: [2.0]})
    client = await make_client()
    assert (await post(client, second, "batch-2")).status == 200
    await client.close()
    db = store.database
    crash_after_rows_before_done(store)
    store.execute(f"DELETE FROM `{db}`.otel_metrics_gauge WHERE ResourceAttributes['host.name'] = 'gpu-s'")
    store.execute(f"DELETE FROM `{db}`.infersight_nodes_1m WHERE HostName = 'gpu-s'")
    store.execute(f"DELETE FROM `{db}`.`{BLOCKS_TABLE}` WHERE endsWith(Token, ':otel_metrics_gauge')")
    client = await make_client()
    assert (await post(client, second, "batch-2")).status == 200
    assert stored(store, "gpu-s") == {"sum_rows": 1, "gauge_rows": 1, "requests_1m": 2, "input_tokens_1m": 0,
                                      "nodes_1m": 1}


async def test_reused_key_with_a_different_body_is_refused(make_client, store):
    client = await make_client()
    a, b = metrics("gpu-k", {REQUESTS: [1.0]}), metrics("gpu-k", {REQUESTS: [2.0]})
    assert (await post(client, a, "key-1")).status == 200
    resp = await post(client, b, "key-1")
    assert resp.status == 400
    assert "'key-1' was already used for a different request body" in await message(resp)
    assert (await post(client, a, "key-1")).status == 200  # a true re-send is still acknowledged
    # In flight too: the second body under the same key is refused while the first is queued.
    slow = await make_client(flush_interval_seconds=0.3)
    results = await asyncio.gather(post(slow, a, "key-2"), post(slow, b, "key-2"))
    assert [r.status for r in results] == [200, 400]
    await slow.close()
    await client.close()
    # The digest survives a restart.
    client = await make_client()
    assert (await post(client, b, "key-1")).status == 400
    assert (await post(client, a, "key-1")).status == 200
    assert stored(store, "gpu-k")["requests_1m"] == 2  # key-1 and key-2, body a each


def _wide(i: int, size: int) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="blob").value.string_value = f"{i:08d}" + "x" * size
    dp = rm.scope_metrics.add().metrics.add(name="g").gauge.data_points.add(time_unix_nano=T, as_int=i)
    dp.attributes.add(key="i").value.int_value = i
    return req


def test_attribute_cache_is_bounded_by_bytes_and_stays_correct():
    """200 requests with a distinct 256 KiB attribute each: the cache holds about its bound, not 50+ MiB."""
    size, bound = 256 * 1024, 2 * 1024 * 1024
    sets = AttrSets(max_bytes=bound)
    parts, held = [], []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(200):
        body = _wide(i, size).SerializeToString()
        res = metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), sets)
        held.append(sets.held_bytes)
        if i % 50 == 0 or i == 199:
            parts.append(res.parts["otel_metrics_gauge"])
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    one_request = 2 * size + AttrSets.SET_OVERHEAD_BYTES * 3
    assert max(held) <= bound + one_request
    # Memory really held: the cache plus the generations the five kept parts refer to (one bound each).
    assert grown < (len(parts) + 2) * (bound + one_request) * 2, grown
    # Rows built from parts of evicted and current generations still carry their own attributes.
    table = to_arrow(parts)
    got = sorted((r["Value"], r["ResourceAttributes"][0][1][:8]) for r in table.select(
        ["Value", "ResourceAttributes"]).to_pylist())
    assert got == [(float(i), f"{i:08d}") for i in (0, 50, 100, 150, 199)]


def test_attribute_cache_bytes_is_a_documented_server_option():
    assert ServerConfig().attribute_cache_bytes == 64 * 1024 * 1024
    with pytest.raises(ValueError):
        ServerConfig(attribute_cache_bytes=-1)


async def test_idempotency_keys_are_scoped_per_client(make_client, store):
    """Two agents (tokens) that happen to pick the same key each get their batch stored, and neither can
    make the gateway drop the other's batch; a client reusing its own key for another body is refused."""
    tokens = [{"name": n, "token": f"secret-{n}-0123456789abcdef", "scopes": ["ingest", "read"]}
              for n in ("node-a", "node-b")]
    client = await make_client(tokens=tokens)

    async def send(who: str, host: str, value: float):
        headers = {**PB, "Idempotency-Key": "batch-1", "Authorization": f"Bearer secret-{who}-0123456789abcdef"}
        return await client.post("/v1/metrics", data=metrics(host, {REQUESTS: [value]}).SerializeToString(),
                                 headers=headers)

    assert (await send("node-a", "gpu-a", 1.0)).status == 200
    assert (await send("node-b", "gpu-b", 2.0)).status == 200
    assert (await send("node-a", "gpu-a", 5.0)).status == 400
    assert stored(store, "gpu-a")["requests_1m"] == 1
    assert stored(store, "gpu-b")["requests_1m"] == 2
