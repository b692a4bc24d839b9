"""The real OpenTelemetry Python SDK exporting over OTLP/HTTP to a real gateway; rows checked in chDB."""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import TestServer

from infersight.config import ServerConfig
from infersight.gateway.app import create_app


@pytest.fixture
async def gateway_url(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.05), store), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def emit_with_sdk(url: str) -> dict[str, str]:
    """Runs in a thread: the SDK exporters are synchronous HTTP clients."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    resource = Resource.create({"service.name": "sdk-test", "host.name": "node-1"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{url}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader], views=[
        View(instrument_name="tokens", aggregation=ExponentialBucketHistogramAggregation())])
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    loggers = LoggerProvider(resource=resource)
    loggers.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    pylog = logging.getLogger("sdk-test-logger")
    pylog.propagate = False
    pylog.addHandler(LoggingHandler(logger_provider=loggers))

    meter = meters.get_meter("test.meter", "1.2.3")
    tracer = tracers.get_tracer("test.tracer", "0.1")
    requests = meter.create_counter("requests", unit="1", description="requests served")
    inflight = meter.create_up_down_counter("inflight")
    temperature = meter.create_gauge("temperature", unit="Cel")
    latency = meter.create_histogram("latency", unit="s", explicit_bucket_boundaries_advisory=[0.1, 1.0])
    tokens = meter.create_histogram("tokens")

    requests.add(3, {"route": "/a"})
    requests.add(2, {"route": "/a"})
    inflight.add(4)
    inflight.add(-1)
    temperature.set(21.5, {"gpu": 0})
    for t in (1, 2, 4):
        tokens.record(t)
    other = tracer.start_span("background")
    other.end()
    with tracer.start_as_current_span("handle", kind=SpanKind.SERVER,
                                      attributes={"http.route": "/a", "retries": 2}) as parent:
        parent.add_event("cache.miss", {"key": "k1"})
        for v in (0.05, 0.5, 2.0):
            latency.record(v)  # inside a sampled span: becomes an exemplar
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT,
                                          links=[Link(other.get_span_context(), {"why": "batch"})]) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
            pylog.warning("disk %s", "full", extra={"disk": "sda"})
    ids = {"trace": format(parent.get_span_context().trace_id, "032x"),
           "parent": format(parent.get_span_context().span_id, "016x"),
           "child": format(child.get_span_context().span_id, "016x"),
           "other_trace": format(other.get_span_context().trace_id, "032x"),
           "other_span": format(other.get_span_context().span_id, "016x"),
           "flags": int(child.get_span_context().trace_flags)}
    meters.shutdown()  # collects and exports once
    tracers.shutdown()
    loggers.shutdown()
    return ids


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
async def test_sdk_metrics_traces_logs(gateway_url, store):
    ids = await asyncio.to_thread(emit_with_sdk, gateway_url)
    db = store.database
    q = store.query
    res = {"service.name": "sdk-test", "host.name": "node-1"}

    sums = q(f"SELECT MetricName, MetricUnit, MetricDescription, Attributes, Value, IsMonotonic, "
             f"AggregationTemporality, ServiceName, ScopeName, ScopeVersion "
             f"FROM `{db}`.otel_metrics_sum ORDER BY MetricName")
    assert sums == [
        {"MetricName": "inflight", "MetricUnit": "", "MetricDescription": "", "Attributes": {},
         "Value": 3, "IsMonotonic": False, "AggregationTemporality": 2, "ServiceName": "sdk-test",
         "ScopeName": "test.meter", "ScopeVersion": "1.2.3"},
        {"MetricName": "requests", "MetricUnit": "1", "MetricDescription": "requests served",
         "Attributes": {"route": "/a"}, "Value": 5, "IsMonotonic": True, "AggregationTemporality": 2,
         "ServiceName": "sdk-test", "ScopeName": "test.meter", "ScopeVersion": "1.2.3"}]
    assert all(r["ResourceAttributes"].items() >= res.items()
               for r in q(f"SELECT ResourceAttributes FROM `{db}`.otel_metrics_sum"))

    assert q(f"SELECT MetricName, MetricUnit, Attributes, Value FROM `{db}`.otel_metrics_gauge") == [
        {"MetricName": "temperature", "MetricUnit": "Cel", "Attributes": {"gpu": "0"}, "Value": 21.5}]

    hist = q(f"SELECT MetricName, toUInt32(Count) AS Count, Sum, BucketCounts, ExplicitBounds, Min, Max, "
             f"AggregationTemporality, Exemplars.TraceId AS et, Exemplars.SpanId AS es, "
             f"Exemplars.Value AS ev FROM `{db}`.otel_metrics_histogram")
    assert len(hist) == 1
    h = hist[0]
    assert (h["MetricName"], h["Count"], h["BucketCounts"], h["ExplicitBounds"], h["Min"], h["Max"],
            h["AggregationTemporality"]) == ("latency", 3, [1, 1, 1], [0.1, 1.0], 0.05, 2.0, 2)
    assert h["Sum"] == pytest.approx(2.55)
    assert h["et"] and set(h["et"]) == {ids["trace"]} and set(h["es"]) == {ids["parent"]}
    assert set(h["ev"]) <= {0.05, 0.5, 2.0}

    exp = q(f"SELECT MetricName, toUInt32(Count) AS Count, Sum, Min, Max, Scale, "
            f"toUInt32(ZeroCount + arraySum(PositiveBucketCounts) + arraySum(NegativeBucketCounts)) AS b, "
            f"PositiveOffset FROM `{db}`.otel_metrics_exponential_histogram")
    assert len(exp) == 1
    e = exp[0]
    assert (e["MetricName"], e["Count"], e["Sum"], e["Min"], e["Max"], e["b"]) == ("tokens", 3, 7, 1, 4, 3)
    assert e["Scale"] <= 20

    spans = q(f"SELECT SpanName, SpanKind, TraceId, SpanId, ParentSpanId, SpanAttributes, StatusCode, "
              f"StatusMessage, Events.Name AS en, Events.Attributes AS ea, Links.TraceId AS lt, "
              f"Links.SpanId AS ls, Links.Attributes AS la, Duration > 0 AS took, ServiceName, ScopeName, "
              f"ScopeVersion FROM `{db}`.otel_traces ORDER BY SpanName")
    assert [s["SpanName"] for s in spans] == ["background", "db", "handle"]
    _, db_span, handle = spans
    assert handle == {
        "SpanName": "handle", "SpanKind": "Server", "TraceId": ids["trace"], "SpanId": ids["parent"],
        "ParentSpanId": "", "SpanAttributes": {"http.route": "/a", "retries": "2"}, "StatusCode": "Unset",
        "StatusMessage": "", "en": ["cache.miss"], "ea": [{"key": "k1"}], "lt": [], "ls": [], "la": [],
        "took": 1, "ServiceName": "sdk-test", "ScopeName": "test.tracer", "ScopeVersion": "0.1"}
    assert db_span == {
        "SpanName": "db", "SpanKind": "Client", "TraceId": ids["trace"], "SpanId": ids["child"],
        "ParentSpanId": ids["parent"], "SpanAttributes": {}, "StatusCode": "Error",
        "StatusMessage": "boom", "en": [], "ea": [], "lt": [ids["other_trace"]], "ls": [ids["other_span"]],
        "la": [{"why": "batch"}], "took": 1, "ServiceName": "sdk-test", "ScopeName": "test.tracer",
        "ScopeVersion": "0.1"}
    assert q(f"SELECT uniqExact(TraceId) AS n FROM `{db}`.otel_traces_trace_id_ts WHERE TraceId = '{ids['trace']}'") \
        == [{"n": 1}]

    logs = q(f"SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, TraceFlags, ServiceName, "
             f"LogAttributes, ScopeName FROM `{db}`.otel_logs")
    assert len(logs) == 1
    log = logs[0]
    assert (log["Body"], log["SeverityText"], log["SeverityNumber"], log["TraceId"], log["SpanId"],
            log["TraceFlags"], log["ServiceName"], log["ScopeName"]) == (
        "disk full", "WARN", 13, ids["trace"], ids["child"], ids["flags"], "sdk-test", "sdk-test-logger")
    assert log["LogAttributes"]["disk"] == "sda"
