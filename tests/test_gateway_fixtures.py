"""The OTLP example payloads (opentelemetry-proto/examples) via JSON and via protobuf → exact rows."""
from __future__ import annotations

import base64
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format

from infersight.config import ServerConfig
from infersight.gateway.app import create_app
from infersight.gateway.otlp import SIGNALS
from support.paths import FIXTURES

OTLP = FIXTURES / "otlp"
T = "2018-12-13 14:51:00"


@pytest.fixture
async def client(store):
    app = create_app(ServerConfig(flush_interval_seconds=0.02), store)
    server = TestServer(app)
    await server.start_server()
    async with TestClient(server) as c:
        yield c


def to_protobuf(signal: str, path) -> bytes:
    """OTLP JSON → protobuf bytes, converting hex ids the way the spec's JSON mapping differs."""
    def ids(node):
        if isinstance(node, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode()
                        if k in ("traceId", "spanId", "parentSpanId") else ids(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [ids(v) for v in node]
        return node
    msg = json_format.ParseDict(ids(json.loads(path.read_text())), SIGNALS[signal].request())
    return msg.SerializeToString()


async def post(client, signal: str, fixture: str, encoding: str):
    path = OTLP / fixture
    if encoding == "json":
        body, ctype = path.read_bytes(), "application/json"
    else:
        body, ctype = to_protobuf(signal, path), "application/x-protobuf"
    resp = await client.post(f"/v1/{signal}", data=body, headers={"Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith(ctype)
    raw = await resp.read()
    out = SIGNALS[signal].response()
    if encoding == "json":
        json_format.Parse(raw, out)
    else:
        out.ParseFromString(raw)
    assert not out.HasField("partial_success")


COMMON = ("ServiceName, ResourceAttributes, ScopeName, ScopeVersion, ScopeAttributes, "
          "toString(StartTimeUnix) AS Start, toString(TimeUnix) AS Time, MetricDescription, MetricUnit, "
          "Attributes, length(Exemplars.Value) AS Exemplars")
RES = {"service.name": "my.service"}
SCOPE = {"ServiceName": "my.service", "ResourceAttributes": RES, "ScopeName": "my.library",
         "ScopeVersion": "1.0.0", "ScopeAttributes": {"my.scope.attribute": "some scope attribute"},
         "MetricUnit": "1", "Exemplars": 0, "Time": T}


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_metrics_example(client, store, encoding):
    await post(client, "metrics", "metrics.json", encoding)
    db = store.database
    q = store.query
    assert q(f"SELECT {COMMON}, Value, Flags, AggregationTemporality, IsMonotonic, MetricName "
             f"FROM `{db}`.otel_metrics_sum") == [{
        **SCOPE, "Start": T, "MetricDescription": "I am a Counter",
        "Attributes": {"my.counter.attr": "some value"}, "Value": 5, "Flags": 0,
        "AggregationTemporality": 1, "IsMonotonic": True, "MetricName": "my.counter"}]
    assert q(f"SELECT {COMMON}, Value, MetricName FROM `{db}`.otel_metrics_gauge") == [{
        **SCOPE, "Start": "1970-01-01 00:00:00", "MetricDescription": "I am a Gauge",
        "Attributes": {"my.gauge.attr": "some value"}, "Value": 10, "MetricName": "my.gauge"}]
    assert q(f"SELECT {COMMON}, toString(Count) AS Count, Sum, BucketCounts, ExplicitBounds, Min, Max, "
             f"AggregationTemporality, MetricName FROM `{db}`.otel_metrics_histogram") == [{
        **SCOPE, "Start": T, "MetricDescription": "I am a Histogram",
        "Attributes": {"my.histogram.attr": "some value"}, "Count": "2", "Sum": 2,
        "BucketCounts": [1, 1], "ExplicitBounds": [1], "Min": 0, "Max": 2,
        "AggregationTemporality": 1, "MetricName": "my.histogram"}]
    assert q(f"SELECT {COMMON}, toString(Count) AS Count, Sum, Scale, toString(ZeroCount) AS ZeroCount, "
             f"PositiveOffset, PositiveBucketCounts, NegativeOffset, NegativeBucketCounts, Min, Max, "
             f"AggregationTemporality, MetricName FROM `{db}`.otel_metrics_exponential_histogram") == [{
        **SCOPE, "Start": T, "MetricDescription": "I am an Exponential Histogram",
        "Attributes": {"my.exponential.histogram.attr": "some value"}, "Count": "3", "Sum": 10,
        "Scale": 0, "ZeroCount": "1", "PositiveOffset": 1, "PositiveBucketCounts": [0, 2],
        "NegativeOffset": 0, "NegativeBucketCounts": [], "Min": 0, "Max": 5,
        "AggregationTemporality": 1, "MetricName": "my.exponential.histogram"}]
    assert q(f"SELECT count() AS n FROM `{db}`.otel_metrics_summary") == [{"n": 0}]


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_trace_example(client, store, encoding):
    await post(client, "traces", "trace.json", encoding)
    db = store.database
    assert store.query(
        "SELECT toString(Timestamp) AS ts, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, "
        "ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, toString(Duration) AS d, "
        "StatusCode, StatusMessage, Events.Name AS ev, Links.TraceId AS links "
        f"FROM `{db}`.otel_traces") == [{
            "ts": "2018-12-13 14:51:00.000000000", "TraceId": "5b8efff798038103d269b633813fc60c",
            "SpanId": "eee19b7ec3c1b174", "ParentSpanId": "eee19b7ec3c1b173", "TraceState": "",
            "SpanName": "I'm a server span", "SpanKind": "Server", "ServiceName": "my.service",
            "ResourceAttributes": RES, "ScopeName": "my.library", "ScopeVersion": "1.0.0",
            "SpanAttributes": {"my.span.attr": "some value"}, "d": "1000000000", "StatusCode": "Unset",
            "StatusMessage": "", "ev": [], "links": []}]
    # The exporter's lookup table is filled by its materialized view.
    assert store.query(f"SELECT TraceId, toString(Start) s, toString(End) e "
                       f"FROM `{db}`.otel_traces_trace_id_ts") == [
        {"TraceId": "5b8efff798038103d269b633813fc60c", "s": T, "e": T}]


LOG_COLS = ("toString(Timestamp) AS ts, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, "
            "ServiceName, Body, ResourceAttributes, ScopeName, ScopeVersion, ScopeAttributes, "
            "LogAttributes, EventName")


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_logs_example(client, store, encoding):
    await post(client, "logs", "logs.json", encoding)
    assert store.query(f"SELECT {LOG_COLS} FROM `{store.database}`.otel_logs") == [{
        "ts": "2018-12-13 14:51:00.300000000", "TraceId": "5b8efff798038103d269b633813fc60c",
        "SpanId": "eee19b7ec3c1b174", "TraceFlags": 0, "SeverityText": "Information",
        "SeverityNumber": 10, "ServiceName": "my.service", "Body": "Example log record",
        "ResourceAttributes": RES, "ScopeName": "my.library", "ScopeVersion": "1.0.0",
        "ScopeAttributes": {"my.scope.attribute": "some scope attribute"},
        # Non-string values stringified as pcommon's Value.AsString() does.
        "LogAttributes": {"string.attribute": "some string", "boolean.attribute": "true",
                          "int.attribute": "10", "double.attribute": "637.704",
                          "array.attribute": '["many","values"]',
                          "map.attribute": '{"some.map.key":"some value"}'},
        "EventName": ""}]


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_events_example(client, store, encoding):
    await post(client, "logs", "events.json", encoding)
    assert store.query(f"SELECT {LOG_COLS} FROM `{store.database}`.otel_logs") == [{
        "ts": "2018-12-13 14:51:00.300000000", "TraceId": "", "SpanId": "", "TraceFlags": 0,
        "SeverityText": "test severity text", "SeverityNumber": 9, "ServiceName": "my.service",
        # A map body as JSON with sorted keys, like Go's encoding/json of AsRaw().
        "Body": '{"referrer":"https://wwww.google.com","title":"Free Online GUID Generator",'
                '"type":0,"url":"https://www.guidgenerator.com/online-guid-generator.aspx"}',
        "ResourceAttributes": RES, "ScopeName": "my.library", "ScopeVersion": "1.0.0",
        "ScopeAttributes": {"my.scope.attribute": "some scope attribute"},
        "LogAttributes": {"event.attribute": "some event attribute"},
        "EventName": "browser.page_view"}]
