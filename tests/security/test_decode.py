"""Client errors in OTLP bodies are 400 (or partial success), never 5xx, and the shadow metrics
decoder rejects exactly what the standard opentelemetry-proto decoder rejects."""
from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from infersight.config import ServerConfig
from infersight.gateway import otlp
from infersight.gateway.app import create_app

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
TRACE, SPAN = "0102030405060708090a0b0c0d0e0f10", "0102030405060708"
BIG = 2**63  # one past DateTime64(9)'s range


@pytest.fixture
async def client(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.02), store))
    async with TestClient(server) as c:
        yield c


def count(store, table: str) -> int:
    return int(store.query(f"SELECT count() AS n FROM `{store.database}`.`{table}`")[0]["n"])


async def message(resp) -> str:
    raw = await resp.read()
    st = status_pb2.Status()
    if resp.content_type == PB["Content-Type"]:
        st.ParseFromString(raw)
    else:
        json_format.Parse(raw, st)
    return st.message


def spans(*extra: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": SPAN, "name": "ok"}, *extra]}]}]}).encode()


def logs(*extra: dict) -> bytes:
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "ok"}}, *extra]}]}]}).encode()


JSON_400 = [
    ("metrics", b'{"resourceMetrics":' + b"[" * 900 + b"]" * 900 + b"}", "invalid OTLP JSON"),
    ("logs", b'{"resourceLogs":' + b'[{"a":' * 900 + b"1}]" * 900 + b"}", "nested too deeply"),
    ("traces", b'{"x":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ("traces", spans().replace(b'"name": "ok"', b'"name": "ok", "kind": -1e400'), "invalid OTLP JSON"),
    ("logs", logs().replace(b'"body"', b'"severityNumber": 1e400, "body"'), "invalid OTLP JSON"),
    ("metrics", b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"s","sum":'
                b'{"aggregationTemporality":-1e400}}]}]}]}', "invalid OTLP JSON"),
    ("traces", spans().replace(b'"name": "ok"', b'"name": "ok", "kind": NaN'), "NaN is not JSON"),
    ("logs", b'{"resourceLogs": [], "resourceLogs": []}', "key 'resourceLogs' repeated"),
    # Lone surrogates where upb looks a name up (enum, field, list element): SystemError, was 500.
    ("traces", spans({"traceId": TRACE, "spanId": SPAN, "kind": "\ud800"}), "lone surrogate"),
    ("logs", logs({"\udc00x": 1}), "lone surrogate"),
    ("metrics", b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":'
                b'[{"attributes":["\\ud800"]}]}}]}]}]}', "lone surrogate"),
]
# Edge cases that were already 400 before the fixes above: kept so that they stay so.
JSON_400_HELD = [
    ("traces", spans({"traceId": "AQIDBAUGBwgJCgsMDQ4PEA==", "spanId": SPAN}), "is not a hex string"),
    ("traces", spans({"traceId": 5, "spanId": SPAN}), "invalid OTLP JSON"),
    ("metrics", b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":'
                b'[{"asInt":"9223372036854775808"}]}}]}]}]}', "invalid OTLP JSON"),
    ("metrics", b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":'
                b'[{"asInt":"12abc"}]}}]}]}]}', "invalid OTLP JSON"),
    ("logs", b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"\xff"}}]}]}]}', "invalid JSON"),
    ("logs", logs({"body": {"stringValue": "\ud800"}}), "surrogate"),
    ("logs", b'["resourceLogs"]', "top level must be an object"),
    ("logs", b'{"resourceLogs":[null]}', "invalid OTLP JSON"),
    ("logs", b'{"a":' + b"1" * 5000 + b"}", "invalid JSON"),
]


@pytest.mark.parametrize("signal,body,why", JSON_400 + JSON_400_HELD, ids=range(len(JSON_400 + JSON_400_HELD)))
async def test_bad_json_is_400_with_a_message(client, signal, body, why):
    resp = await client.post(f"/v1/{signal}", data=body, headers=JS)
    assert resp.status == 400, await resp.text()
    text = await message(resp)
    assert why in text
    assert len(text) < 1000  # the error names the problem without echoing the body


@pytest.mark.parametrize("bad", [
    {"traceId": TRACE, "spanId": SPAN, "name": "bad", "startTimeUnixNano": str(BIG)},
    {"traceId": TRACE, "spanId": SPAN, "name": "bad", "startTimeUnixNano": 1e19},
    {"traceId": TRACE, "spanId": SPAN, "name": "bad", "startTimeUnixNano": str(2**64 - 1), "endTimeUnixNano": "1"},
    {"traceId": TRACE, "spanId": SPAN, "name": "bad", "events": [{"timeUnixNano": str(2**64 - 1)}]},
])
async def test_span_time_past_2262_is_rejected_not_500(client, store, bad):
    resp = await client.post("/v1/traces", data=spans(bad), headers=JS)
    assert resp.status == 200, await resp.text()
    out = json.loads(await resp.read())["partialSuccess"]
    assert out["rejectedSpans"] == "1"
    assert "at most 9223372036854775807 ns" in out["errorMessage"]
    assert count(store, "otel_traces") == 1


@pytest.mark.parametrize("bad", [{"timeUnixNano": str(BIG)}, {"observedTimeUnixNano": str(2**64 - 1)}])
async def test_log_time_past_2262_is_rejected_not_500(client, store, bad):
    resp = await client.post("/v1/logs", data=logs({"body": {"stringValue": "bad"}, **bad}), headers=JS)
    assert resp.status == 200, await resp.text()
    out = json.loads(await resp.read())["partialSuccess"]
    assert out["rejectedLogRecords"] == "1"
    assert "at most 9223372036854775807 ns" in out["errorMessage"]
    assert store.query(f"SELECT Body FROM `{store.database}`.otel_logs") == [{"Body": "ok"}]


@pytest.mark.parametrize("bad", [
    {"traceId": "0" * 32, "spanId": SPAN, "name": "zero-trace"},
    {"traceId": TRACE, "spanId": "0" * 16, "name": "zero-span"},
    {"traceId": TRACE, "spanId": SPAN, "name": "bad-link", "links": [{"traceId": "0" * 32, "spanId": SPAN}]},
])
async def test_span_ids_must_be_non_zero_and_sized(client, store, bad):
    resp = await client.post("/v1/traces", data=spans(bad), headers=JS)
    assert resp.status == 200
    out = json.loads(await resp.read())["partialSuccess"]
    assert out["rejectedSpans"] == "1"
    assert bad["name"] in out["errorMessage"] and "non-zero" in out["errorMessage"]
    assert store.query(f"SELECT TraceId, SpanId FROM `{store.database}`.otel_traces") == [
        {"TraceId": TRACE, "SpanId": SPAN}]


async def test_log_and_exemplar_ids_are_optional_but_sized(client, store):
    resp = await client.post("/v1/logs", data=logs({"traceId": "0" * 32, "spanId": "0" * 16,
                                                    "body": {"stringValue": "zero"}}), headers=JS)
    assert resp.status == 200 and json.loads(await resp.read()) == {}
    assert store.query(f"SELECT TraceId, SpanId FROM `{store.database}`.otel_logs WHERE Body = 'zero'") == [
        {"TraceId": "", "SpanId": ""}]

    def gauge(span_id: bytes) -> bytes:
        req = ExportMetricsServiceRequest()
        dp = req.resource_metrics.add().scope_metrics.add().metrics.add(name="g").gauge.data_points.add(as_int=1)
        dp.exemplars.add(as_int=1, span_id=span_id, trace_id=bytes(16))
        return req.SerializeToString()

    resp = await client.post("/v1/metrics", data=gauge(b"\x01" * 7), headers=PB)
    assert resp.status == 400
    assert "exemplar span_id must be 8 bytes or empty, not 7" in await message(resp)
    resp = await client.post("/v1/metrics", data=gauge(bytes(8)), headers=PB)
    assert resp.status == 200
    assert store.query(f"SELECT Exemplars.SpanId AS s, Exemplars.TraceId AS t FROM `{store.database}`."
                       "otel_metrics_gauge") == [{"s": [""], "t": [""]}]


# ---------------------------------------------------------------- shadow decoder vs standard decoder

def _nested(depth: int) -> bytes:
    kv = KeyValue(key="a")
    cur = kv.value
    for _ in range(depth):
        cur = cur.kvlist_value.values.add(key="a").value
    cur.string_value = "x"
    return kv.SerializeToString()


def _shadow_request(attr: bytes, name: str = "m", kind: str = "gauge") -> bytes:
    req = otlp.MetricsShadow()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name=name)
    if kind == "gauge":
        m.gauge.data_points.add(as_int=1).attributes.append(attr)
    else:  # a histogram point the row builder rejects (bucket_counts needs len(explicit_bounds)+1)
        m.histogram.data_points.add(count=1, bucket_counts=[1, 1, 1], explicit_bounds=[1.0]).attributes.append(attr)
    return req.SerializeToString()


def _gauge_point(point: bytes) -> bytes:
    """A request around one NumberDataPoint's bytes (every length here is below 128)."""
    for field in (1, 5, 2, 2, 1):  # data_points, gauge, metrics, scope_metrics, resource_metrics
        assert len(point) < 128
        point = bytes([field << 3 | 2, len(point)]) + point
    return point


BAD_ATTR = b"\x0a\x02\xff\xfe"  # KeyValue.key that is not UTF-8
# Bodies that ExportMetricsServiceRequest.FromString rejects and the shadow decode + row building
# accepted (found by tests/security/test_fuzz.py's differential mode and by hand).
DIVERGENT = {
    "attribute nested past the decoder's depth limit, counted from the root": _shadow_request(_nested(32)),
    "invalid attribute of a metric with an empty name": _shadow_request(BAD_ATTR, name=""),
    "invalid attribute of a rejected histogram point": _shadow_request(BAD_ATTR, kind="histogram"),
    "invalid exemplar hidden by an empty one after it": _gauge_point(
        NumberDataPoint(as_int=1).SerializeToString() + b"\x2a\x06\x3a\x04" + BAD_ATTR + b"\x2a\x00"),
}


def test_divergent_bodies_are_invalid_for_the_standard_decoder():
    for body in DIVERGENT.values():
        with pytest.raises(DecodeError):
            ExportMetricsServiceRequest.FromString(body)
    ExportMetricsServiceRequest.FromString(_shadow_request(_nested(31)))  # the limit is exact


@pytest.mark.parametrize("why", list(DIVERGENT))
async def test_shadow_decoder_rejects_what_the_standard_decoder_rejects(client, store, why):
    resp = await client.post("/v1/metrics", data=DIVERGENT[why], headers=PB)
    assert resp.status == 400, why
    assert "invalid" in await message(resp)
    resp = await client.post("/v1/metrics", data=_shadow_request(_nested(31)), headers=PB)
    assert resp.status == 200
    assert count(store, "otel_metrics_gauge") == 1
