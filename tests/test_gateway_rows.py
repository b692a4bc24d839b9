"""Summary, exemplars, int values and attribute stringification as the ClickHouse exporter stores them."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from infersight.config import ServerConfig
from infersight.gateway.app import create_app
from infersight.gateway.rows import as_string, go_float

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


@pytest.mark.parametrize("value, text", [
    (5.0, "5"), (0.1, "0.1"), (-2.5, "-2.5"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
    (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (123456789.125, "123456789.125"), (0.0, "0"),
    (float("nan"), "json: unsupported value: NaN"), (float("-inf"), "json: unsupported value: -Inf")])
def test_doubles_format_like_pcommon(value, text):
    assert go_float(value) == text


def test_any_value_as_string():
    v = AnyValue()
    v.kvlist_value.values.add(key="z").value.int_value = 1
    inner = v.kvlist_value.values.add(key="a").value.array_value.values
    inner.add().double_value = 2.0
    inner.add().bytes_value = b"\x00\xff"
    inner.add().bool_value = False
    inner.add().string_value = 'q"<'
    assert as_string(v) == '{"a":[2,"AP8=",false,"q\\"\\u003c"],"z":1}'
    assert as_string(AnyValue(bytes_value=b"hi")) == "aGk="
    assert as_string(AnyValue(int_value=-7)) == "-7"
    assert as_string(AnyValue(bool_value=True)) == "true"
    assert as_string(AnyValue()) == ""


@pytest.fixture
async def client(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.02), store))
    await server.start_server()
    async with TestClient(server) as c:
        yield c


async def test_summary_exemplars_and_int_values(client, store):
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rm.resource.attributes.add(key="service.name").value.string_value = "rows"
    rm.resource.attributes.add(key="host.cpus").value.int_value = 96
    sm = rm.scope_metrics.add(schema_url="scope-schema")
    sm.scope.name = "s"
    sm.scope.dropped_attributes_count = 2
    t = 1_767_225_600_123_456_789
    summ = sm.metrics.add(name="rpc.duration", unit="ms").summary
    dp = summ.data_points.add(time_unix_nano=t, start_time_unix_nano=t - 10**9, count=4, sum=10.5, flags=1)
    dp.quantile_values.add(quantile=0.5, value=2.0)
    dp.quantile_values.add(quantile=0.99, value=7.5)
    dp.attributes.add(key="ok").value.bool_value = True
    s = sm.metrics.add(name="tokens").sum
    s.is_monotonic, s.aggregation_temporality = True, 1
    dp = s.data_points.add(time_unix_nano=t, as_int=9_007_199_254_740_993)
    ex = dp.exemplars.add(time_unix_nano=t, as_int=3, trace_id=TRACE, span_id=SPAN)
    ex.filtered_attributes.add(key="user").value.string_value = "u1"
    dp.exemplars.add(time_unix_nano=t, as_double=0.25)
    s.data_points.add(time_unix_nano=t, as_double=1.5)
    eh = sm.metrics.add(name="sizes").exponential_histogram
    dp = eh.data_points.add(time_unix_nano=t, count=5, sum=-3.0, scale=3, zero_count=1, min=-4, max=1)
    dp.negative.offset, dp.positive.offset = -2, 4
    dp.negative.bucket_counts.extend([1, 2])
    dp.positive.bucket_counts.extend([1])
    dp.exemplars.add(time_unix_nano=t, as_double=-4, span_id=SPAN, trace_id=TRACE)

    resp = await client.post("/v1/metrics", data=req.SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"})
    assert resp.status == 200
    db = store.database
    common = ("ResourceAttributes, ResourceSchemaUrl, ScopeSchemaUrl, ScopeDroppedAttrCount, ServiceName, "
              "toString(TimeUnix) AS Time, toString(StartTimeUnix) AS Start, Flags")
    res = {"ResourceAttributes": {"service.name": "rows", "host.cpus": "96"},
           "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.26.0", "ScopeSchemaUrl": "scope-schema",
           "ScopeDroppedAttrCount": 2, "ServiceName": "rows", "Time": "2026-01-01 00:00:00"}
    assert store.query(f"SELECT {common}, MetricName, MetricUnit, Attributes, toString(Count) AS Count, Sum, "
                       f"ValueAtQuantiles.Quantile AS q, ValueAtQuantiles.Value AS v "
                       f"FROM `{db}`.otel_metrics_summary") == [{
        **res, "Start": "2025-12-31 23:59:59", "Flags": 1, "MetricName": "rpc.duration", "MetricUnit": "ms",
        "Attributes": {"ok": "true"}, "Count": "4", "Sum": 10.5, "q": [0.5, 0.99], "v": [2, 7.5]}]
    assert store.query(
        f"SELECT {common}, Value, Exemplars.FilteredAttributes AS ea, "
        f"arrayMap(x -> toString(x), Exemplars.TimeUnix) AS et, Exemplars.Value AS ev, "
        f"Exemplars.TraceId AS tid, Exemplars.SpanId AS sid, AggregationTemporality, IsMonotonic "
        f"FROM `{db}`.otel_metrics_sum ORDER BY Value") == [
        {**res, "Start": "1970-01-01 00:00:00", "Flags": 0, "Value": 1.5, "ea": [], "et": [], "ev": [],
         "tid": [], "sid": [], "AggregationTemporality": 1, "IsMonotonic": True},
        # Int values are widened to Float64, as the exporter does.
        {**res, "Start": "1970-01-01 00:00:00", "Flags": 0, "Value": 9007199254740992, "ea": [{"user": "u1"}, {}],
         "et": ["2026-01-01 00:00:00"] * 2, "ev": [3, 0.25], "tid": [TRACE.hex(), ""], "sid": [SPAN.hex(), ""],
         "AggregationTemporality": 1, "IsMonotonic": True}]
    assert store.query(
        f"SELECT toString(Count) AS c, Sum, Scale, toString(ZeroCount) AS z, PositiveOffset, "
        f"PositiveBucketCounts AS pb, NegativeOffset, NegativeBucketCounts AS nb, Min, Max, "
        f"AggregationTemporality, Exemplars.Value AS ev, Exemplars.TraceId AS tid "
        f"FROM `{db}`.otel_metrics_exponential_histogram") == [{
        "c": "5", "Sum": -3, "Scale": 3, "z": "1", "PositiveOffset": 4, "pb": [1], "NegativeOffset": -2,
        "nb": [1, 2], "Min": -4, "Max": 1, "AggregationTemporality": 0, "ev": [-4], "tid": [TRACE.hex()]}]


def _gauge(value: float, attr: str) -> bytes:
    req = ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name=f"g.{attr}")
    dp = m.gauge.data_points.add(time_unix_nano=10**18, as_double=value)
    dp.attributes.add(key="k").value.string_value = attr
    return req.SerializeToString()


def test_parts_from_several_requests_and_attribute_generations_combine():
    from infersight.gateway import otlp
    from infersight.gateway.rows import AttrSets, metrics_rows, to_arrow

    sets = AttrSets(limit=1)  # forces a new generation for every request
    parts = [metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], _gauge(i, f"v{i}"), otlp.PROTOBUF), sets)
             .parts["otel_metrics_gauge"] for i in range(3)]
    assert len({p.gen for p in parts}) == 3
    table = to_arrow(parts)
    assert table.column("MetricName").to_pylist() == ["g.v0", "g.v1", "g.v2"]
    assert table.column("Attributes").to_pylist() == [[("k", "v0")], [("k", "v1")], [("k", "v2")]]
    assert table.column("Value").to_pylist() == [0, 1, 2]
    assert table.column("MetricName").num_chunks == 1


def _spans_and_logs(i: int) -> tuple[bytes, bytes]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    traces = ExportTraceServiceRequest()
    span = traces.resource_spans.add().scope_spans.add().spans.add(
        name=f"s{i}", trace_id=bytes([i + 1]) * 16, span_id=bytes([i + 1]) * 8,
        start_time_unix_nano=10**18, end_time_unix_nano=10**18 + i)
    span.attributes.add(key="k").value.string_value = f"v{i}"
    for j in range(i):  # 0, 1, 2 events: offsets must shift when parts merge
        span.events.add(name=f"e{i}.{j}", time_unix_nano=10**18).attributes.add(key="j").value.int_value = j
    logs = ExportLogsServiceRequest()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=10**18)
    rec.body.string_value = f"b{i}"
    rec.attributes.add(key="k").value.string_value = f"v{i}"
    return traces.SerializeToString(), logs.SerializeToString()


def test_span_and_log_parts_build_in_the_writer_across_generations():
    """Traces and logs are deferred like metrics: parts of several requests and generations build once."""
    from infersight.gateway import otlp
    from infersight.gateway.rows import ROW_BUILDERS, AttrSets, to_arrow

    sets = AttrSets(limit=1)
    bodies = [_spans_and_logs(i) for i in range(3)]
    spans = [ROW_BUILDERS["traces"](otlp.decode(otlp.SIGNALS["traces"], t, otlp.PROTOBUF), sets)
             .parts["otel_traces"] for t, _ in bodies]
    logs = [ROW_BUILDERS["logs"](otlp.decode(otlp.SIGNALS["logs"], lg, otlp.PROTOBUF), sets)
            .parts["otel_logs"] for _, lg in bodies]
    assert len({p.gen for p in spans + logs}) == 6
    table = to_arrow(spans)
    assert table.column("SpanName").to_pylist() == ["s0", "s1", "s2"]
    assert table.column("SpanAttributes").to_pylist() == [[("k", "v0")], [("k", "v1")], [("k", "v2")]]
    assert table.column("Events.Name").to_pylist() == [[], ["e1.0"], ["e2.0", "e2.1"]]
    assert table.column("Events.Attributes").to_pylist() == [[], [[("j", "0")]], [[("j", "0")], [("j", "1")]]]
    assert table.column("Duration").to_pylist() == [0, 1, 2]
    table = to_arrow(logs)
    assert table.column("Body").to_pylist() == ["b0", "b1", "b2"]
    assert table.column("LogAttributes").to_pylist() == [[("k", "v0")], [("k", "v1")], [("k", "v2")]]


def _raw_gauge(points: list[bytes]) -> bytes:
    """A request of one gauge `g` around raw NumberDataPoint bytes."""
    from infersight.gateway.otlp import _len_field

    metric = b"\x0a\x01g" + _len_field(5, b"".join(_len_field(1, p) for p in points))
    for field in (2, 2, 1):  # metrics, scope_metrics, resource_metrics
        metric = _len_field(field, metric)
    return metric


def test_points_read_as_columns_match_the_standard_decoder():
    """Gauge points are read from raw bytes (fixed-width fields at once, each distinct rest parsed once):
    every layout must store what the standard decoder reads, the per-point path included."""
    import struct

    from infersight.gateway import otlp
    from infersight.gateway.rows import AttrSets, metrics_rows, to_arrow

    def fixed(start: int, time: int, value: float | int) -> bytes:
        head = (b"\x11" + struct.pack("<Q", start) if start else b"") + b"\x19" + struct.pack("<Q", time)
        if isinstance(value, int):
            return head + b"\x31" + struct.pack("<q", value)
        return head + b"\x21" + struct.pack("<d", value)

    attr = b"\x3a\x08\x0a\x01a\x12\x03\x0a\x01b"
    t = 1_767_225_600 * 10**9
    columnar = [fixed(t - 10**9, t, 1.5) + attr, fixed(0, t, -0.0) + attr + b"\x40\x01", fixed(t, t, -(2**62)),
                fixed(t, t, 2.0) + attr + b"\x50\x07",  # an unknown field: skipped
                fixed(t, t, 3.0) + attr + b"\x19" + struct.pack("<Q", 5 * 10**9),  # time again: the last counts
                fixed(t, t, 4.0) + attr + b"\x31" + struct.pack("<q", 9)]  # as_int after as_double: it counts
    exemplar = fixed(t, t, 6.0) + b"\x2a\x09\x11" + struct.pack("<Q", t) + attr
    sets = AttrSets()
    for points in (columnar, columnar, [*columnar, exemplar], [b"", *columnar]):  # cold, warm, per point, per point
        body = _raw_gauge(points)
        want = [{"StartTimeUnix": dp.start_time_unix_nano // 10**9, "TimeUnix": dp.time_unix_nano // 10**9,
                 "Value": dp.as_double + dp.as_int, "Flags": dp.flags,
                 "Attributes": [(kv.key, kv.value.string_value) for kv in dp.attributes]}
                for dp in ExportMetricsServiceRequest.FromString(body).resource_metrics[0].scope_metrics[0]
                .metrics[0].gauge.data_points]
        res = metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), sets)
        got = to_arrow([res.parts["otel_metrics_gauge"]]).select(list(want[0])).to_pylist()
        assert got == want
        assert str(got[points.index(columnar[1])]["Value"]) == "0.0"  # -0.0 + 0, as the per-point path stores it


def test_an_invalid_point_read_as_columns_is_refused_as_before():
    from google.protobuf.message import DecodeError

    from infersight.gateway import otlp
    from infersight.gateway.rows import AttrSets, metrics_rows

    good = b"\x19" + bytes(8) + b"\x21" + bytes(8)
    for bad, error in ((good + b"\x3a\x04\x0a\x02\xff\xfe", "DecodeError"),  # attribute key not UTF-8
                       (good + b"\x3a\x09\x0a\x01a", "BadRequest"),  # truncated attribute
                       (good[:12], "BadRequest")):  # truncated value
        req = otlp.decode(otlp.SIGNALS["metrics"], _raw_gauge([good, bad]), otlp.PROTOBUF)
        with pytest.raises(Exception) as info:
            metrics_rows(req, AttrSets())
        assert type(info.value).__name__ == error
        with pytest.raises(DecodeError):  # what the standard decoder says
            ExportMetricsServiceRequest.FromString(_raw_gauge([good, bad]))
