"""Points → OTLP protobuf (checked against the OTel SDK encoder), and the gRPC sender against a real gRPC server."""
from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from infersight.agent.loop import ScopedPoints
from infersight.collectors.base import MetricSpec, Point
from infersight.exporters.encode import encode, to_metrics_data
from infersight.exporters.senders import GrpcSender

GAUGE = MetricSpec("system.cpu.utilization", "gauge", "1", "cpu", ("cpu.mode",))
COUNTER = MetricSpec("system.network.io", "counter", "By", "net", ("network.io.direction",))
UPDOWN = MetricSpec("system.memory.usage", "updowncounter", "By", "mem", ("system.memory.state",))


def decode(payload: bytes) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest.FromString(payload)


def test_kinds_values_and_resource_survive_encoding():
    hist = Point("infersight.test.latency", "histogram", 3.5, unit="s", attributes={"k": "v"},
                 bounds=(0.1, 1.0), bucket_counts=(1, 2, 0), count=3, temporality="delta", time_ns=50,
                 start_time_ns=40)
    points = [GAUGE.point(0.25, {"cpu.mode": "user"}, time_ns=100),
              COUNTER.point(1234, {"network.io.direction": "receive"}, time_ns=100),
              UPDOWN.point(2048, {"system.memory.state": "used"}, time_ns=100), hist]
    req = decode(encode(to_metrics_data([ScopedPoints("infersight.host", points)],
                                        {"service.name": "svc", "host.name": "h1"}, default_start_ns=7)))
    (rm,) = req.resource_metrics
    assert {kv.key: kv.value.string_value for kv in rm.resource.attributes} == {"service.name": "svc",
                                                                                "host.name": "h1"}
    (sm,) = rm.scope_metrics
    assert sm.scope.name == "infersight.host"
    m = {x.name: x for x in sm.metrics}
    g = m["system.cpu.utilization"]
    assert g.unit == "1" and g.gauge.data_points[0].as_double == 0.25
    assert g.gauge.data_points[0].time_unix_nano == 100
    s = m["system.network.io"].sum
    assert s.is_monotonic and s.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert s.data_points[0].as_int == 1234 and s.data_points[0].start_time_unix_nano == 7
    assert not m["system.memory.usage"].sum.is_monotonic
    h = m["infersight.test.latency"].histogram
    assert h.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    dp = h.data_points[0]
    assert (dp.count, dp.sum, list(dp.bucket_counts), list(dp.explicit_bounds)) == (3, 3.5, [1, 2, 0], [0.1, 1.0])
    assert dp.start_time_unix_nano == 40 and not dp.HasField("min")


def test_points_of_one_metric_share_one_metric_and_scopes_stay_apart():
    a = [GAUGE.point(0.1, {"cpu.mode": "user"}), GAUGE.point(0.2, {"cpu.mode": "system"})]
    b = [COUNTER.point(1, {"network.io.direction": "transmit"})]
    req = decode(encode(to_metrics_data([ScopedPoints("a", a), ScopedPoints("b", b), ScopedPoints("c", [])],
                                        {}, 1, now_ns=99)))
    scopes = req.resource_metrics[0].scope_metrics
    assert [s.scope.name for s in scopes] == ["a", "b"]
    assert len(scopes[0].metrics) == 1 and len(scopes[0].metrics[0].gauge.data_points) == 2
    assert scopes[0].metrics[0].gauge.data_points[1].time_unix_nano == 99


def test_repeated_scope_keeps_every_point():
    """Two collects of one collector in one batch: the SDK encoder would keep only the last scope."""
    first = [GAUGE.point(0.1, {"cpu.mode": "user"}, time_ns=1)]
    second = [GAUGE.point(0.2, {"cpu.mode": "user"}, time_ns=2)]
    req = decode(encode(to_metrics_data([ScopedPoints("a", first), ScopedPoints("a", second)], {}, 1)))
    (scope,) = req.resource_metrics[0].scope_metrics
    assert [dp.as_double for dp in scope.metrics[0].gauge.data_points] == [0.1, 0.2]


class _Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, code: grpc.StatusCode | None) -> None:
        self.code = code
        self.calls: list[tuple[dict, ExportMetricsServiceRequest]] = []

    def Export(self, request, context):
        self.calls.append((dict(context.invocation_metadata()), request))
        if self.code is not None:
            context.abort(self.code, "scripted failure")
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def grpc_server(port):
    def start(code):
        servicer = _Servicer(code)
        server = grpc.server(futures.ThreadPoolExecutor(2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        started.append(server)
        return servicer
    started: list = []
    yield start
    for s in started:
        s.stop(None)


@pytest.mark.parametrize(("code", "outcome"), [(None, "ok"), (grpc.StatusCode.UNAVAILABLE, "retry"),
                                               (grpc.StatusCode.RESOURCE_EXHAUSTED, "reject"),
                                               (grpc.StatusCode.UNAUTHENTICATED, "auth"),
                                               (grpc.StatusCode.INTERNAL, "reject"),
                                               (grpc.StatusCode.INVALID_ARGUMENT, "reject")])
def test_grpc_sender_sends_key_and_headers_and_classifies(grpc_server, port, code, outcome):
    servicer = grpc_server(code)
    payload = encode(to_metrics_data([ScopedPoints("s", [GAUGE.point(0.5, {"cpu.mode": "idle"})])], {}, 1))
    sender = GrpcSender(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t0k"}, timeout_seconds=5)
    try:
        result = sender.send(payload, "0b7c9e8e-1111-2222-3333-444455556666")
    finally:
        sender.close()
    assert result.outcome == outcome
    if code is not None:
        assert result.reason == f"grpc_{code.name}"
    (metadata, request), = servicer.calls
    assert metadata["idempotency-key"] == "0b7c9e8e-1111-2222-3333-444455556666"
    assert metadata["authorization"] == "Bearer t0k"
    assert request.SerializeToString() == payload


def test_grpc_sender_unreachable_is_retryable(port):
    sender = GrpcSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=1)
    try:
        assert sender.send(b"", "k").outcome == "retry"
    finally:
        sender.close()


class _ThrottlingServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """RESOURCE_EXHAUSTED with `google.rpc.RetryInfo` in the status details, as the OTLP spec asks a throttling
    server to send it."""

    def Export(self, request, context):
        from google.protobuf import any_pb2, duration_pb2
        from google.rpc import error_details_pb2, status_pb2

        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)))
        status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down",
                                   details=[detail])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")


def test_grpc_resource_exhausted_with_retry_info_is_retried_after_its_delay(port):
    server = grpc.server(futures.ThreadPoolExecutor(2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_ThrottlingServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    sender = GrpcSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=5)
    try:
        result = sender.send(encode(to_metrics_data([], {}, 1)), "k")
    finally:
        sender.close()
        server.stop(None)
    assert (result.outcome, result.reason, result.retry_after_seconds) == ("retry", "grpc_RESOURCE_EXHAUSTED", 1.5)


def _sdk_reference(batches, resource, default_start_ns, now_ns) -> bytes:
    """The same points through the OTel SDK's data model and its own `metrics_encoder` (what the agent did
    before it filled in the opentelemetry-proto messages itself)."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import export as sdk
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from infersight import __version__

    temporality = {"cumulative": sdk.AggregationTemporality.CUMULATIVE, "delta": sdk.AggregationTemporality.DELTA}
    by_scope: dict = {}
    for b in batches:
        grouped = by_scope.setdefault(b.scope, {})
        for p in b.points:
            grouped.setdefault((p.name, p.kind, p.unit, p.description, p.temporality), []).append(p)

    def metric(key, pts):
        name, kind, unit, description, temp = key
        if kind == "histogram":
            data = sdk.Histogram([sdk.HistogramDataPoint(
                dict(p.attributes), p.start_time_ns or default_start_ns, p.time_ns or now_ns, p.count, p.value,
                list(p.bucket_counts), list(p.bounds), None, None) for p in pts], temporality[temp])
        else:
            dps = [sdk.NumberDataPoint(dict(p.attributes),
                                       0 if kind == "gauge" else p.start_time_ns or default_start_ns,
                                       p.time_ns or now_ns, p.value) for p in pts]
            data = (sdk.Gauge(dps) if kind == "gauge"
                    else sdk.Sum(dps, temporality[temp], is_monotonic=kind == "counter"))
        return sdk.Metric(name=name, description=description, unit=unit, data=data)

    scopes = [sdk.ScopeMetrics(InstrumentationScope(s, __version__), [metric(k, v) for k, v in g.items()], "")
              for s, g in by_scope.items() if g]
    data = sdk.MetricsData([sdk.ResourceMetrics(Resource(dict(resource)), scopes, "")])
    return encode_metrics(data).SerializeToString()


def test_bytes_are_those_of_the_sdk_encoder():
    """Real host points, every kind, typed and list attributes, a repeated and an empty scope: the request is
    byte for byte what the OTel SDK's encoder makes of the same points through its data model."""
    import psutil

    from infersight.collectors.host import HostCollector

    host = HostCollector(psutil, ["python3", "python"])
    host.collect()
    points = host.collect()
    hist = Point("infersight.test.latency", "histogram", 3.5, unit="s",
                 attributes={"k": "v", "n": 3, "ok": True, "f": 1.5, "tags": ("a", "b")},
                 bounds=(0.1, 1.0), bucket_counts=(1, 2, 0), count=3, temporality="delta", time_ns=50)
    batches = [ScopedPoints("infersight.collector.host", points), ScopedPoints("h", [hist]),
               ScopedPoints("infersight.collector.host", points[:3]), ScopedPoints("e", [])]
    resource = {"service.name": "svc", "host.name": "h1", "cloud.region": "us-east-2"}
    ours = encode(to_metrics_data(batches, resource, default_start_ns=7, now_ns=99))
    assert ours == _sdk_reference(batches, resource, 7, 99)
    assert len(decode(ours).resource_metrics[0].scope_metrics) == 2


def test_an_attribute_of_no_otlp_type_is_dropped_and_the_point_kept(caplog):
    point = GAUGE.point(0.5, {"cpu.mode": "idle", "bad": object()})
    req = decode(encode(to_metrics_data([ScopedPoints("s", [point])], {}, 1)))
    (dp,) = req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    assert [kv.key for kv in dp.attributes] == ["cpu.mode"] and dp.as_double == 0.5
    assert "attribute bad dropped" in caplog.text


def test_bytes_of_edge_values_are_those_of_the_sdk_encoder():
    """Values the wire writer special-cases: negative and zero ints (ten-byte varints, oneof zeros), bool, bytes,
    nested lists and maps, empty strings, an empty resource, a histogram without count or start."""
    attrs = {"neg": -5, "zero": 0, "no": False, "empty": "", "raw": b"\x00\xff", "big": 2**62,
             "nested": ("a", 1, 2.5), "map": {"k": "v", "n": -1}}
    points = [GAUGE.point(0, attrs, time_ns=100), GAUGE.point(-3, {}, time_ns=100),
              COUNTER.point(0.0, {"network.io.direction": ""}, time_ns=5, start_time_ns=0),
              UPDOWN.point(7, {}, time_ns=6),
              Point("infersight.test.h", "histogram", 0.0, bounds=(), bucket_counts=(0,), count=0, time_ns=9,
                    temporality="delta")]
    batches = [ScopedPoints("s", points)]
    assert encode(to_metrics_data(batches, {}, default_start_ns=0, now_ns=1)) == _sdk_reference(batches, {}, 0, 1)


def test_points_without_a_time_get_their_batch_time_else_now():
    """The agent stamps each collection once (ScopedPoints.time_ns) instead of copying every point."""
    first = ScopedPoints("s", [GAUGE.point(0.1, {"cpu.mode": "user"})], time_ns=1_000)
    second = ScopedPoints("s", [GAUGE.point(0.2, {"cpu.mode": "user"}), GAUGE.point(0.3, {}, time_ns=5)], 2_000)
    unstamped = ScopedPoints("s", [GAUGE.point(0.4, {})])
    req = decode(encode(to_metrics_data([first, second, unstamped], {}, 1, now_ns=9_000)))
    (metric,) = req.resource_metrics[0].scope_metrics[0].metrics
    assert [(dp.as_double, dp.time_unix_nano) for dp in metric.gauge.data_points] == [
        (0.1, 1_000), (0.2, 2_000), (0.3, 5), (0.4, 9_000)]
