"""How a batch is shipped: Points → OTel SDK data model → OTLP protobuf → one send.

Stateless on purpose: the agent loop decides when to export, the spool decides what
is retried. A sender makes exactly one attempt and classifies the outcome, because the
SDK exporters' own retry loops would hide whether a failure is worth keeping on disk.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlparse

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
from infersight.config import ExporterConfig

IDEMPOTENCY_HEADER = "Idempotency-Key"
_TEMPORALITY = {"cumulative": AggregationTemporality.CUMULATIVE, "delta": AggregationTemporality.DELTA}


@dataclass(frozen=True, slots=True)
class ScopedPoints:
    """Points from one collector, exported under its own instrumentation scope."""

    scope: str
    points: Sequence[Point]


def to_metrics_data(batches: Iterable[ScopedPoints], resource: Mapping[str, str],
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
    if kind == "histogram":
        data = Histogram(
            data_points=[HistogramDataPoint(
                attributes=dict(p.attributes), start_time_unix_nano=p.start_time_ns or default_start_ns,
                time_unix_nano=p.time_ns or now_ns, count=p.count, sum=p.value,
                bucket_counts=list(p.bucket_counts), explicit_bounds=list(p.bounds), min=None, max=None)
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


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt's outcome. `retry`: keep the batch; `drop`: the receiver will never take it."""

    outcome: Literal["ok", "retry", "drop"]
    reason: str = ""
    retry_after_seconds: float | None = None


class Sender(Protocol):
    def send(self, payload: bytes, idempotency_key: str) -> SendResult: ...

    def close(self) -> None: ...


# 429 and any 5xx: the gateway is busy or its storage is down, so the batch is kept for later
# (the OTLP/HTTP spec's retryable set, widened to all 5xx). Any other 4xx means the batch itself
# is bad and would fail the same way again.
_RETRYABLE_HTTP = frozenset({429})


class HttpSender:
    """POST to `{endpoint}/v1/metrics` through the OTel SDK's HTTP transport, one attempt."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float,
                 transport=None) -> None:
        from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport

        self.url = endpoint.rstrip("/") + "/v1/metrics"
        self._headers = {**headers, "Content-Type": "application/x-protobuf"}
        self._timeout = timeout_seconds
        self._transport = transport or RequestsHTTPTransport()

    def send(self, payload: bytes, idempotency_key: str) -> SendResult:
        result = self._transport.request("POST", self.url, data=payload, timeout=self._timeout,
                                         headers={**self._headers, IDEMPOTENCY_HEADER: idempotency_key})
        status = result.status_code
        if status is None:
            return SendResult("retry", _error_reason(result.error))
        if 200 <= status < 300:
            return SendResult("ok")
        if status in _RETRYABLE_HTTP or status >= 500:
            return SendResult("retry", f"http_{status}", _retry_after(result.headers().get("retry-after")))
        return SendResult("drop", f"http_{status}")

    def close(self) -> None:
        self._transport.close()


def _error_reason(error: BaseException | None) -> str:
    text = type(error).__name__.lower() if error else "unknown"
    return "timeout" if "timeout" in text else "connection"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class GrpcSender:
    """OTLP/gRPC `MetricsService/Export` with the idempotency key as call metadata, one attempt."""

    # OTLP/gRPC spec: the retryable codes; anything else will fail the same way again.
    _RETRYABLE = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                            "DATA_LOSS", "RESOURCE_EXHAUSTED"})

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float) -> None:
        import grpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub

        url = urlparse(endpoint)
        target = url.netloc or endpoint
        self._channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials()) if url.scheme == "https"
                         else grpc.insecure_channel(target))
        self._stub = MetricsServiceStub(self._channel)
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._timeout = timeout_seconds

    def send(self, payload: bytes, idempotency_key: str) -> SendResult:
        import grpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        request = ExportMetricsServiceRequest.FromString(payload)
        try:
            self._stub.Export(request, timeout=self._timeout,
                              metadata=self._metadata + ((IDEMPOTENCY_HEADER.lower(), idempotency_key),))
        except grpc.RpcError as err:
            code = err.code().name
            return SendResult("retry" if code in self._RETRYABLE else "drop", f"grpc_{code}")
        return SendResult("ok")

    def close(self) -> None:
        self._channel.close()


def make_sender(cfg: ExporterConfig) -> Sender:
    headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
    if cfg.protocol == "grpc":
        return GrpcSender(cfg.endpoint, headers, cfg.timeout_seconds)
    return HttpSender(cfg.endpoint, headers, cfg.timeout_seconds)
