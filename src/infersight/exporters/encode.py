"""What a batch is on the wire: Points → OTel SDK data model → OTLP `ExportMetricsServiceRequest` bytes.

The encoding is the SDK's own (`metrics_encoder`), so the bytes are what any OTel SDK would send;
how they travel is `exporters.senders`, and the spool keeps them as they are between attempts.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from infersight import __version__
from infersight.collectors.base import Point

_TEMPORALITY = {"cumulative": AggregationTemporality.CUMULATIVE, "delta": AggregationTemporality.DELTA}


class Scoped(Protocol):
    """Points exported under one instrumentation scope (the agent's `agent.loop.ScopedPoints`)."""

    @property
    def scope(self) -> str: ...
    @property
    def points(self) -> Sequence[Point]: ...


def to_metrics_data(batches: Iterable[Scoped], resource: Mapping[str, str],
                    default_start_ns: int, now_ns: int | None = None) -> MetricsData:
    """Group points into SDK `Metric`s (one per name/kind/unit/temporality) per scope."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    # One ScopeMetrics per scope name: the SDK encoder keys scopes by identity and would keep only the last.
    by_scope: dict[str, dict[tuple, list[Point]]] = {}
    for batch in batches:
        grouped = by_scope.setdefault(batch.scope, {})
        for p in batch.points:
            grouped.setdefault((p.name, p.kind, p.unit, p.description, p.temporality), []).append(p)
    scopes = [ScopeMetrics(scope=InstrumentationScope(scope, __version__), schema_url="",
                           metrics=[_metric(key, pts, default_start_ns, now_ns) for key, pts in grouped.items()])
              for scope, grouped in by_scope.items() if grouped]
    return MetricsData(resource_metrics=[ResourceMetrics(resource=Resource(dict(resource)),
                                                         scope_metrics=scopes, schema_url="")])


def _metric(key: tuple, points: list[Point], default_start_ns: int, now_ns: int) -> Metric:
    name, kind, unit, description, temporality = key
    data: Histogram | Gauge | Sum
    if kind == "histogram":
        data = Histogram(
            data_points=[HistogramDataPoint(
                attributes=dict(p.attributes), start_time_unix_nano=p.start_time_ns or default_start_ns,
                time_unix_nano=p.time_ns or now_ns, count=p.count, sum=p.value,
                bucket_counts=list(p.bucket_counts), explicit_bounds=list(p.bounds),
                min=None, max=None)  # type: ignore[arg-type]  # unknown; the SDK encoder omits None
                for p in points],
            aggregation_temporality=_TEMPORALITY[temporality])
    else:
        dps = [NumberDataPoint(attributes=dict(p.attributes),
                               start_time_unix_nano=0 if kind == "gauge" else p.start_time_ns or default_start_ns,
                               time_unix_nano=p.time_ns or now_ns, value=p.value) for p in points]
        if kind == "gauge":
            data = Gauge(data_points=dps)
        else:
            data = Sum(data_points=dps, aggregation_temporality=_TEMPORALITY[temporality],
                       is_monotonic=kind == "counter")
    return Metric(name=name, description=description, unit=unit, data=data)


def encode(data: MetricsData) -> bytes:
    """The OTLP `ExportMetricsServiceRequest` bytes, via the SDK's own encoder."""
    return encode_metrics(data).SerializeToString()
