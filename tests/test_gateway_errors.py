"""Bad input, auth, partial success, idempotency, back-pressure and storage failure."""
from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from infersight.config import ServerConfig
from infersight.gateway import otlp
from infersight.gateway.app import WRITER, create_app

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def gauge_request(n: int = 3, name: str = "g") -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    m = rm.scope_metrics.add().metrics.add(name=name)
    for i in range(n):
        dp = m.gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000, as_int=i)
        dp.attributes.add(key="i").value.int_value = i
    return req


@pytest.fixture
async def make_client(store):
    clients = []

    async def make(**cfg):
        cfg.setdefault("flush_interval_seconds", 0.02)
        server = TestServer(create_app(ServerConfig(**cfg), store))
        await server.start_server()
        c = TestClient(server)
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(make_client):
    c = await make_client()
    yield c
    await c.close()


def count(store, table: str = "otel_metrics_gauge") -> int:
    return int(store.query(f"SELECT count() AS n FROM `{store.database}`.`{table}`")[0]["n"])


async def status_of(resp, protobuf: bool) -> str:
    raw = await resp.read()
    st = status_pb2.Status()
    if protobuf:
        st.ParseFromString(raw)
    else:
        json_format.Parse(raw, st)
    return st.message


async def still_serving(client, store) -> None:
    before = count(store)
    resp = await client.post("/v1/metrics", data=gauge_request(2, "alive").SerializeToString(), headers=PB)
    assert resp.status == 200
    assert count(store) == before + 2


async def test_malformed_bodies_get_400_and_server_keeps_serving(client, store):
    body = gauge_request().SerializeToString()
    cases = [
        (body[: len(body) // 2], PB, "invalid protobuf ExportMetricsServiceRequest"),
        (b"{not json", JS, "invalid JSON"),
        (b'["a list"]', JS, "top level must be an object"),
        (b'{"resourceMetrics": "nope"}', JS, "invalid OTLP JSON"),
        (json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x", "gauge": {
            "dataPoints": [{"timeUnixNano": "not-a-number", "asDouble": 1}]}}]}]}]}).encode(), JS,
         "invalid OTLP JSON"),
        (b"\x1f\x8b\x08\x00garbage", {**PB, "Content-Encoding": "gzip"}, "invalid gzip body"),
        (gzip.compress(body)[:-12], {**PB, "Content-Encoding": "gzip"}, "invalid gzip body"),
        (body, {**PB, "Content-Encoding": "br"}, "unsupported Content-Encoding"),
    ]
    # Well-formed outside, but a point's attribute is not a KeyValue (string with invalid UTF-8).
    bad = otlp.MetricsShadow()
    dp = bad.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add()
    dp.attributes.append(b"\x0a\x02\xff\xfe")
    cases.append((bad.SerializeToString(), PB, "invalid ExportMetricsServiceRequest: attributes"))
    for data, headers, message in cases:
        resp = await client.post("/v1/metrics", data=data, headers=headers)
        assert resp.status == 400, (message, await resp.text())
        assert message in await status_of(resp, headers["Content-Type"] == PB["Content-Type"])
    resp = await client.post("/v1/traces", data=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz", "spanId": "0102030405060708"}]}]}]}), headers=JS)
    assert resp.status == 400
    assert "traceId: 'zz' is not a hex string" in await status_of(resp, False)
    assert count(store) == 0
    await still_serving(client, store)


async def test_wrong_content_type_gets_415(client, store):
    resp = await client.post("/v1/metrics", data=b"x=1", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert "unsupported Content-Type 'text/plain'" in await status_of(resp, False)
    resp = await client.post("/v1/logs", data=b"")
    assert resp.status == 415
    await still_serving(client, store)


async def test_oversize_and_gzip_bomb_get_413(make_client, store):
    limit = 1024 * 1024
    client = await make_client(max_body_bytes=limit)
    resp = await client.post("/v1/metrics", data=b"\x00" * (limit + 1), headers=PB)
    assert resp.status == 413
    assert f"exceeds {limit} bytes" in await status_of(resp, True)
    # 64 MiB of zeros compress to ~64 KiB: decompression must stop at the limit.
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < limit // 8  # small on the wire: only decompression can exceed the limit
    resp = await client.post("/v1/metrics", data=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert "server.max_body_bytes" in await status_of(resp, True)
    # A gzip body under the limit is fine.
    ok = gzip.compress(gauge_request(4).SerializeToString())
    resp = await client.post("/v1/metrics", data=ok, headers={**PB, "Content-Encoding": "gzip"})
    assert resp.status == 200
    assert count(store) == 4
    await client.close()


async def test_bearer_token(make_client, store):
    client = await make_client(auth_token="s3cret")
    body = gauge_request(1).SerializeToString()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        resp = await client.post("/v1/metrics", data=body, headers={**PB, **headers})
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in await status_of(resp, True)
    resp = await client.post("/api/v1/query", data="SELECT 1")
    assert resp.status == 401
    assert (await client.get("/healthz")).status == 200
    # The web UI's page and assets load without a token; nothing else under them does.
    assert (await client.get("/ui/static/../../api/v1/query")).status in (401, 404)
    assert (await client.post("/ui/static/x/../../../v1/metrics", data=body, headers=PB)).status in (401, 404)
    resp = await client.post("/v1/metrics", data=body, headers={**PB, "Authorization": "Bearer s3cret"})
    assert resp.status == 200
    assert count(store) == 1
    await client.close()


async def test_partial_success_reports_rejected_items(client, store):
    req = gauge_request(2)
    sm = req.resource_metrics[0].scope_metrics[0]
    sm.metrics.add(name="no.data")
    h = sm.metrics.add(name="bad.hist").histogram
    h.data_points.add(time_unix_nano=1, count=1, bucket_counts=[1, 0, 0], explicit_bounds=[1.0])
    h.data_points.add(time_unix_nano=1, count=1, bucket_counts=[1, 0], explicit_bounds=[1.0])
    resp = await client.post("/v1/metrics", data=req.SerializeToString(), headers=PB)
    assert resp.status == 200
    out = ExportMetricsServiceResponse.FromString(await resp.read())
    assert out.partial_success.rejected_data_points == 2
    assert "metric 'no.data' has no data" in out.partial_success.error_message
    assert "histogram 'bad.hist'" in out.partial_success.error_message
    assert count(store) == 2
    assert count(store, "otel_metrics_histogram") == 1

    spans = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0102", "spanId": "0102030405060708", "name": "short-id"},
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "ok"}]}]}]}
    resp = await client.post("/v1/traces", data=json.dumps(spans), headers=JS)
    assert resp.status == 200
    out = json_format.Parse(await resp.read(), ExportTraceServiceResponse())
    assert out.partial_success.rejected_spans == 1
    assert "short-id" in out.partial_success.error_message
    assert json.loads(await resp.read()) == {"partialSuccess": {
        "rejectedSpans": "1", "errorMessage": out.partial_success.error_message}}
    assert count(store, "otel_traces") == 1

    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"traceId": "01", "body": {"stringValue": "bad"}}, {"body": {"stringValue": "good"}}]}]}]}
    resp = await client.post("/v1/logs", data=json.dumps(logs), headers=JS)
    out = json_format.Parse(await resp.read(), ExportLogsServiceResponse())
    assert out.partial_success.rejected_log_records == 1
    assert store.query(f"SELECT Body FROM `{store.database}`.otel_logs") == [{"Body": "good"}]


async def test_same_request_twice_is_written_once(make_client, store):
    client = await make_client()
    body = gauge_request(3).SerializeToString()
    key = {"Idempotency-Key": "batch-0001"}
    for _ in range(2):
        resp = await client.post("/v1/metrics", data=body, headers={**PB, **key})
        assert resp.status == 200
    assert count(store) == 3
    # Without a key the content hash identifies the request.
    other = gauge_request(5, "other").SerializeToString()
    results = await asyncio.gather(*(client.post("/v1/metrics", data=other, headers=PB) for _ in range(3)))
    assert [r.status for r in results] == [200, 200, 200]
    assert count(store) == 8
    await client.close()
    # The keys are stored: a re-send to a restarted gateway is acknowledged without writing.
    client = await make_client()
    resp = await client.post("/v1/metrics", data=body, headers={**PB, **key})
    assert resp.status == 200
    assert count(store) == 8
    resp = await client.post("/v1/metrics", data=body, headers={**PB, "Idempotency-Key": "batch-0002"})
    assert resp.status == 200
    assert count(store) == 11
    await client.close()


async def test_full_queue_gets_429(make_client, store):
    client = await make_client(max_queue_rows=5, flush_interval_seconds=0.5)
    first = asyncio.ensure_future(client.post("/v1/metrics", data=gauge_request(4).SerializeToString(),
                                              headers=PB))
    await asyncio.sleep(0.1)
    resp = await client.post("/v1/metrics", data=gauge_request(4, "more").SerializeToString(), headers=PB)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert "write queue full" in await status_of(resp, True)
    assert (await first).status == 200
    assert count(store) == 4
    await client.close()


async def test_storage_down_gets_503_and_nothing_is_lost(make_client, store):
    client = await make_client()
    client.server.app[WRITER].retry_seconds = 0.1
    db = store.database
    store.execute(f"DETACH TABLE `{db}`.otel_metrics_gauge")
    body = gauge_request(3).SerializeToString()
    key = {**PB, "Idempotency-Key": "k-down"}
    resp = await client.post("/v1/metrics", data=body, headers=key)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert "storage unavailable" in await status_of(resp, True)
    assert (await client.get("/readyz")).status == 503
    # While down, new work is refused at once; a re-send of the failed request waits for its retry.
    resp = await client.post("/v1/metrics", data=gauge_request(1, "new").SerializeToString(), headers=PB)
    assert resp.status == 503
    store.execute(f"ATTACH TABLE `{db}`.otel_metrics_gauge")
    resp = await client.post("/v1/metrics", data=body, headers=key)
    assert resp.status == 200
    assert (await client.get("/readyz")).status == 200
    resp = await client.post("/v1/metrics", data=body, headers=key)
    assert resp.status == 200
    assert store.query(f"SELECT MetricName, count() AS n FROM `{db}`.otel_metrics_gauge GROUP BY 1") == [
        {"MetricName": "g", "n": 3}]
    await client.close()


async def test_rows_the_store_refuses_fail_only_their_request(make_client, store):
    """A constraint violation is not an outage: the other requests of the flush are written."""
    client = await make_client(flush_interval_seconds=0.3)
    store.execute(f"ALTER TABLE `{store.database}`.otel_metrics_gauge ADD CONSTRAINT small CHECK Value < 100")

    def req(name: str, value: int) -> bytes:
        r = gauge_request(1, name)
        r.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_int = value
        return r.SerializeToString()

    bodies = [req("a", 1), req("big", 500), req("b", 2)]
    results = await asyncio.gather(*(client.post("/v1/metrics", data=b, headers=PB) for b in bodies))
    assert [r.status for r in results] == [200, 500, 200]
    assert "VIOLATED_CONSTRAINT" in await status_of(results[1], True)
    assert store.query(f"SELECT MetricName FROM `{store.database}`.otel_metrics_gauge ORDER BY 1") == [
        {"MetricName": "a"}, {"MetricName": "b"}]
    assert (await client.get("/readyz")).status == 200
    await still_serving(client, store)

