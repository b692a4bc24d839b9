"""OTLP/gRPC receiver: the official OTel SDK gRPC exporters and the agent's gRPC sender against a real server
(grpc.aio in the app's loop, the HTTP receiver's code path, chDB); auth, limits and status codes per OTLP."""
from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from aiohttp.test_utils import TestServer
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from infersight.config import ServerConfig, TokenConfig
from infersight.gateway import grpc as otlp_grpc
from infersight.gateway.app import WRITER, create_app

TOKEN = "ingest-secret"
READER = "read-secret"


def _cfg(**kw) -> ServerConfig:
    base = {"flush_interval_seconds": 0.05, "grpc_listen": "127.0.0.1:0",
            "tokens": (TokenConfig(name="agent", scopes=("ingest",), token=TOKEN),
                       TokenConfig(name="grafana", scopes=("read",), token=READER))}
    base.update(kw)
    return ServerConfig(**base)


async def _serve(store, cfg: ServerConfig):
    app = create_app(cfg, store)
    otlp_grpc.attach(app, cfg)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, f"127.0.0.1:{app[otlp_grpc.GRPC].port}"


@pytest.fixture
async def served(store):
    server, target = await _serve(store, _cfg())
    yield target, store
    await server.close()


def _gauge_request(n: int = 3, name: str = "g") -> msvc.ExportMetricsServiceRequest:
    req = msvc.ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add()
    m.name = name
    for i in range(n):
        p = m.gauge.data_points.add()
        p.time_unix_nano = 1_700_000_000_000_000_000 + i
        p.as_double = float(i)
    return req


def _call(target: str, method: str, body: bytes, metadata=(), compression=None):
    with grpc.insecure_channel(target) as ch:
        fn = ch.unary_unary(method)
        return fn(body, metadata=metadata, timeout=10, compression=compression)


METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _sdk_export(target: str) -> None:
    """The OTel Python SDK's gRPC exporters, one of each signal."""
    import logging

    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    headers = {"authorization": f"Bearer {TOKEN}"}
    kw = {"endpoint": f"http://{target}", "insecure": True, "headers": headers}
    resource = Resource.create({"service.name": "grpc-sdk"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(**kw), export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(**kw)))
    loggers = LoggerProvider(resource=resource)
    loggers.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(**kw)))
    pylog = logging.getLogger("grpc-sdk-logger")
    pylog.propagate = False
    pylog.addHandler(LoggingHandler(logger_provider=loggers))
    meters.get_meter("m").create_counter("grpc_requests").add(7, {"route": "/x"})
    with tracers.get_tracer("t").start_as_current_span("grpc-span"):
        pylog.warning("over grpc")
    meters.shutdown()
    tracers.shutdown()
    loggers.shutdown()
    pylog.handlers.clear()


async def _until(fn, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(fn)
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_sdk_grpc_exporters_store_every_signal(served):
    target, store = served
    await asyncio.to_thread(_sdk_export, target)
    db = store.database
    rows = await _until(lambda: store.query(f"SELECT MetricName, Value, Attributes FROM `{db}`.otel_metrics_sum"))
    assert rows == [{"MetricName": "grpc_requests", "Value": 7, "Attributes": {"route": "/x"}}]
    spans = await _until(lambda: store.query(f"SELECT SpanName, ServiceName FROM `{db}`.otel_traces"))
    assert spans == [{"SpanName": "grpc-span", "ServiceName": "grpc-sdk"}]
    logs = await _until(lambda: store.query(f"SELECT Body, TraceId != '' AS linked FROM `{db}`.otel_logs"))
    assert logs == [{"Body": "over grpc", "linked": 1}]


async def test_agent_grpc_sender_delivers_and_is_idempotent(served):
    from infersight.exporters.senders import GrpcSender

    target, store = served
    sender = GrpcSender(f"http://{target}", {"Authorization": f"Bearer {TOKEN}"}, 5)
    payload = _gauge_request(3, "agent_gauge").SerializeToString()
    try:
        first = await asyncio.to_thread(sender.send, payload, "key-1")
        again = await asyncio.to_thread(sender.send, payload, "key-1")  # a re-send after a lost answer
        other = await asyncio.to_thread(sender.send, _gauge_request(2, "x").SerializeToString(), "key-1")
    finally:
        sender.close()
    assert (first.outcome, again.outcome) == ("ok", "ok")
    assert other.outcome == "reject" and other.reason == "grpc_INVALID_ARGUMENT"  # key reused for another body
    n = store.query(f"SELECT count() AS n FROM `{store.database}`.otel_metrics_gauge WHERE MetricName = 'agent_gauge'")
    assert n == [{"n": 3}]


async def test_auth_in_metadata(served):
    target, _ = served
    body = _gauge_request().SerializeToString()
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                           ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
                           ((("authorization", f"Bearer {READER}"),), grpc.StatusCode.PERMISSION_DENIED)):
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(_call, target, METRICS, body, metadata)
        assert err.value.code() == code, metadata
    assert "ingest" in (err.value.details() or "")
    await asyncio.to_thread(_call, target, METRICS, body, AUTH)


async def test_invalid_request_and_partial_success(served):
    target, _ = served
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(_call, target, METRICS, b"\xff\xff\xff", AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf" in err.value.details()
    req = tsvc.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="ok", start_time_unix_nano=1,
                     end_time_unix_nano=2, kind=trace_pb2.Span.SPAN_KIND_SERVER)
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x03" * 8, name="no-trace-id")
    assert good.name == "ok"
    raw = await asyncio.to_thread(_call, target, TRACES, req.SerializeToString(), AUTH, grpc.Compression.Gzip)
    resp = tsvc.ExportTraceServiceResponse.FromString(raw)
    assert resp.partial_success.rejected_spans == 1
    assert "trace_id" in resp.partial_success.error_message


async def test_size_limit_and_backpressure_status_codes(store):
    server, target = await _serve(store, _cfg(max_body_bytes=4096, max_queue_rows=2, flush_interval_seconds=30))
    try:
        big = metrics_pb2.Metric(name="x" * 10_000)
        req = msvc.ExportMetricsServiceRequest()
        req.resource_metrics.add().scope_metrics.add().metrics.append(big)
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(_call, target, METRICS, req.SerializeToString(), AUTH)
        # Too large for good: RESOURCE_EXHAUSTED without RetryInfo (not retryable, per the OTLP spec).
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not any(k == "google.rpc.retryinfo-bin" for k, _ in err.value.trailing_metadata() or ())
        # Queue of 2 rows: 3 points are refused with RetryInfo (the client slows down and retries).
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(_call, target, METRICS, _gauge_request(3).SerializeToString(), AUTH)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = dict(err.value.trailing_metadata())["grpc-status-details-bin"]
        st = status_pb2.Status.FromString(details)
        info = error_details_pb2.RetryInfo()
        assert st.details[0].Unpack(info) and info.retry_delay.seconds == 1
        assert st.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    finally:
        await server.close()


async def test_store_down_is_unavailable_with_retry_info(store):
    server, target = await _serve(store, _cfg())
    try:
        server.app[WRITER].drain()  # shutting down: new requests are UNAVAILABLE, retried elsewhere/later
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(_call, target, METRICS, _gauge_request(1).SerializeToString(), AUTH)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "google.rpc.retryinfo-bin" in dict(err.value.trailing_metadata())
    finally:
        await server.close()


def test_off_loopback_needs_a_token():
    from infersight.config import ConfigError

    with pytest.raises(ConfigError, match="server.grpc_listen"):
        otlp_grpc.check_listen(ServerConfig(grpc_listen="0.0.0.0:4317"))
    with pytest.raises(ConfigError, match="server.grpc_listen: 'nope'"):
        otlp_grpc.check_listen(ServerConfig(grpc_listen="nope"))
    otlp_grpc.check_listen(ServerConfig(grpc_listen=None))


async def test_default_port_taken_is_a_warning_explicit_is_an_error(store, caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        from infersight.config import ConfigError

        cfg = _cfg(grpc_listen=f"127.0.0.1:{taken}")
        app = create_app(cfg, store)
        otlp_grpc.attach(app, cfg)
        server = TestServer(app, host="127.0.0.1")
        with pytest.raises(ConfigError, match="server.grpc_listen: cannot listen"):
            await server.start_server()
        await server.close()
