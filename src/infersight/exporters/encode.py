"""What a batch is on the wire: Points → OTLP `ExportMetricsServiceRequest` (opentelemetry-proto) → bytes.

The messages are opentelemetry-proto's generated classes, filled in directly: the same request the OTel SDK's
`metrics_encoder` makes from its data model (one ResourceMetrics, one ScopeMetrics per scope, one Metric per
name/kind/unit/description/temporality, attribute values typed as the SDK types them), without building the SDK's
objects first or importing the SDK at all. How the bytes travel is `exporters.senders`; the spool keeps them as they
are between attempts. tests/test_agent_otlp.py checks the meaning against the SDK encoder's output.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from infersight import __version__
from infersight.collectors.base import Point

log = logging.getLogger(__name__)

_TEMPORALITY = {"cumulative": AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
                "delta": AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA}


class Scoped(Protocol):
    """Points exported under one instrumentation scope (the agent's `agent.loop.ScopedPoints`)."""

    @property
    def scope(self) -> str: ...
    @property
    def points(self) -> Sequence[Point]: ...


def to_metrics_data(batches: Iterable[Scoped], resource: Mapping[str, str],
                    default_start_ns: int, now_ns: int | None = None) -> ExportMetricsServiceRequest:
    """Group points into one `Metric` per name/kind/unit/description/temporality, per scope (scopes of the same
    name are merged, in first-seen order); points without a time get `now_ns`, counters and histograms without a
    start get `default_start_ns`, gauges carry no start time."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    by_scope: dict[str, dict[tuple, list[Point]]] = {}
    for batch in batches:
        grouped = by_scope.setdefault(batch.scope, {})
        for p in batch.points:
            grouped.setdefault((p.name, p.kind, p.unit, p.description, p.temporality), []).append(p)
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    _set_attributes(rm.resource.attributes, resource)
    for scope, grouped in by_scope.items():
        if not grouped:
            continue
        sm = rm.scope_metrics.add()
        sm.scope.name = scope
        sm.scope.version = __version__
        for key, points in grouped.items():
            _add_metric(sm.metrics, key, points, default_start_ns, now_ns)
    return request


def _add_metric(metrics: Any, key: tuple, points: list[Point], default_start_ns: int, now_ns: int) -> None:
    name, kind, unit, description, temporality = key
    m = metrics.add(name=name, description=description, unit=unit)
    if kind == "histogram":
        h = m.histogram
        h.aggregation_temporality = _TEMPORALITY[temporality]
        hdps = h.data_points
        for p in points:
            hdp = hdps.add(start_time_unix_nano=p.start_time_ns or default_start_ns,
                           time_unix_nano=p.time_ns or now_ns, count=p.count, sum=p.value,
                           bucket_counts=p.bucket_counts, explicit_bounds=p.bounds)
            _set_attributes(hdp.attributes, p.attributes)
        return
    if kind == "gauge":
        dps = m.gauge.data_points
    else:
        s = m.sum
        s.aggregation_temporality = _TEMPORALITY[temporality]
        s.is_monotonic = kind == "counter"
        dps = s.data_points
    gauge = kind == "gauge"
    for p in points:
        dp = dps.add(time_unix_nano=p.time_ns or now_ns)
        if not gauge:
            dp.start_time_unix_nano = p.start_time_ns or default_start_ns
        if isinstance(p.value, int):  # as the SDK: ints (bools too) are as_int, the rest as_double
            dp.as_int = p.value
        else:
            dp.as_double = p.value
        if p.attributes:
            _set_attributes(dp.attributes, p.attributes)


def _set_attributes(out: Any, attributes: Mapping[str, Any]) -> None:
    for k, v in attributes.items():
        # The common case first: the attribute values collectors produce are strings.
        if type(v) is str:
            out.add(key=k).value.string_value = v
            continue
        try:
            value = _any_value(v)
        except TypeError as err:  # as the SDK encoder: the attribute is dropped, the point kept
            log.error("attribute %s dropped: %s", k, err)
            continue
        out.append(KeyValue(key=k, value=value))


def _any_value(v: Any) -> AnyValue:
    """An attribute value typed as the SDK's `_encode_value` types it."""
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, Sequence):
        out = AnyValue()
        out.array_value.values.extend(_any_value(x) for x in v)
        return out
    if isinstance(v, Mapping):
        out = AnyValue()
        for k, x in v.items():
            out.kvlist_value.values.add(key=str(k), value=_any_value(x))
        return out
    raise TypeError(f"invalid type {type(v).__name__} of value {v!r}")


def encode(data: ExportMetricsServiceRequest) -> bytes:
    """The OTLP `ExportMetricsServiceRequest` bytes."""
    return data.SerializeToString()
