"""What a batch is on the wire: Points → the bytes of an OTLP `ExportMetricsServiceRequest`.

The protobuf wire format is written directly (tags, varints, fixed64s, length-delimited sub-messages): the agent
imports neither the OTel SDK nor protobuf's runtime and generated classes (~3 MB of a node agent's RSS) and builds
no message objects per export. The request is the one the OTel SDK's `metrics_encoder` makes from its data model (one
ResourceMetrics, one ScopeMetrics per scope, one Metric per name/kind/unit/description/temporality, attribute values
typed as the SDK types them, fields in field-number order): tests/test_agent_otlp.py checks it byte for byte against
the SDK encoder's output. How the bytes travel is `exporters.senders`; the spool keeps them as they are.
"""
from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from infersight import __version__
from infersight.collectors.base import Point

log = logging.getLogger(__name__)

# AggregationTemporality values of opentelemetry-proto's metrics.proto.
_TEMPORALITY = {"cumulative": 2, "delta": 1}
_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_SFIXED64 = struct.Struct("<q").pack
# Encoded string attributes, reused across exports (collectors repeat the same few hundred each cycle).
_KV_CACHE: dict[tuple[str, str], bytes] = {}
_KV_CACHE_MAX = 4096


class Scoped(Protocol):
    """Points exported under one instrumentation scope (the agent's `agent.loop.ScopedPoints`)."""

    @property
    def scope(self) -> str: ...
    @property
    def points(self) -> Sequence[Point]: ...
    @property
    def time_ns(self) -> int | None: ...


def to_metrics_data(batches: Iterable[Scoped], resource: Mapping[str, Any],
                    default_start_ns: int, now_ns: int | None = None) -> bytes:
    """The request's bytes: points grouped into one `Metric` per name/kind/unit/description/temporality, per scope
    (scopes of the same name are merged, in first-seen order); points without a time get their batch's `time_ns`,
    else `now_ns`; counters and histograms without a start get `default_start_ns`, gauges carry no start time."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    by_scope: dict[str, dict[tuple, list[tuple[Point, int]]]] = {}
    for batch in batches:
        grouped = by_scope.setdefault(batch.scope, {})
        batch_ns = batch.time_ns or now_ns
        for p in batch.points:
            grouped.setdefault((p.name, p.kind, p.unit, p.description, p.temporality), []).append((p, batch_ns))
    version = _string(2, __version__)
    parts = [_message(1, _attributes(1, resource))]  # ResourceMetrics.resource, present even when empty (as the SDK)
    for scope, grouped in by_scope.items():
        if grouped:
            metrics = b"".join(_metric(key, points, default_start_ns) for key, points in grouped.items())
            parts.append(_message(2, _message(1, _string(1, scope) + version) + metrics))
    return _message(1, b"".join(parts))


def encode(data: bytes) -> bytes:
    """The OTLP `ExportMetricsServiceRequest` bytes, as `to_metrics_data` wrote them."""
    return data


def _metric(key: tuple, points: list[tuple[Point, int]], default_start_ns: int) -> bytes:
    """One `Metric` (field 2 of ScopeMetrics): name 1, description 2, unit 3, gauge 5 | sum 7 | histogram 9;
    each point with the time to give it if it has none."""
    name, kind, unit, description, temporality = key
    head = _string(1, name) + _string(2, description) + _string(3, unit)
    if kind == "histogram":
        body = b"".join(_message(1, _histogram_point(p, default_start_ns, t)) for p, t in points)
        return _message(2, head + _message(9, body + _varint_field(2, _TEMPORALITY[temporality])))
    if kind == "gauge":
        body = b"".join(_message(1, _number_point(p, 0, t)) for p, t in points)
        return _message(2, head + _message(5, body))
    body = b"".join(_message(1, _number_point(p, p.start_time_ns or default_start_ns, t)) for p, t in points)
    body += _varint_field(2, _TEMPORALITY[temporality]) + (b"\x18\x01" if kind == "counter" else b"")
    return _message(2, head + _message(7, body))


def _number_point(p: Point, start_ns: int, now_ns: int) -> bytes:
    """NumberDataPoint: start 2 and time 3 (fixed64), as_double 4 | as_int 6 (sfixed64), attributes 7."""
    out = (b"\x11" + _FIXED64(start_ns) if start_ns else b"") + b"\x19" + _FIXED64(p.time_ns or now_ns)
    value = p.value
    if isinstance(value, int):  # as the SDK: ints (bools too) are as_int, the rest as_double
        out += b"\x31" + _SFIXED64(value)
    else:
        out += b"\x21" + _DOUBLE(value)
    return out + _attributes(7, p.attributes) if p.attributes else out


def _histogram_point(p: Point, default_start_ns: int, now_ns: int) -> bytes:
    """HistogramDataPoint: start 2, time 3, count 4 (fixed64), sum 5 (double, always present), bucket_counts 6
    (packed fixed64), explicit_bounds 7 (packed double), attributes 9."""
    start = p.start_time_ns or default_start_ns
    out = (b"\x11" + _FIXED64(start) if start else b"") + b"\x19" + _FIXED64(p.time_ns or now_ns)
    if p.count:
        out += b"\x21" + _FIXED64(p.count)
    out += b"\x29" + _DOUBLE(p.value)
    if p.bucket_counts:
        out += _message(6, struct.pack(f"<{len(p.bucket_counts)}Q", *p.bucket_counts))
    if p.bounds:
        out += _message(7, struct.pack(f"<{len(p.bounds)}d", *p.bounds))
    return out + _attributes(9, p.attributes)


def _attributes(field: int, attributes: Mapping[str, Any]) -> bytes:
    """Repeated `KeyValue` under `field`; a value of no OTLP type is dropped (logged), as the SDK encoder does."""
    out = []
    for k, v in attributes.items():
        if type(v) is str:  # the common case: the attribute values collectors produce are strings
            kv = _KV_CACHE.get((k, v))
            if kv is None:
                kv = _string(1, k) + _message(2, _string(1, v, always=True))
                if len(_KV_CACHE) >= _KV_CACHE_MAX:
                    _KV_CACHE.clear()
                _KV_CACHE[(k, v)] = kv
            out.append(_message(field, kv))
            continue
        try:
            value = _any_value(v)
        except TypeError as err:
            log.error("attribute %s dropped: %s", k, err)
            continue
        out.append(_message(field, _string(1, k) + _message(2, value)))
    return b"".join(out)


def _any_value(v: Any) -> bytes:
    """An `AnyValue` typed as the SDK's `_encode_value` types it: string 1, bool 2, int 3, double 4, array 5,
    kvlist 6, bytes 7 (a oneof: written even when zero or empty)."""
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, str):
        return _string(1, v, always=True)
    if isinstance(v, int):
        return b"\x18" + _varint(v)
    if isinstance(v, float):
        return b"\x21" + _DOUBLE(v)
    if isinstance(v, bytes):
        return b"\x3a" + _varint(len(v)) + v
    if isinstance(v, Sequence):
        return _message(5, b"".join(_message(1, _any_value(x)) for x in v))
    if isinstance(v, Mapping):
        return _message(6, b"".join(_message(1, _string(1, str(k)) + _message(2, _any_value(x)))
                                    for k, x in v.items()))
    raise TypeError(f"invalid type {type(v).__name__} of value {v!r}")


def _varint(n: int) -> bytes:
    """Base-128 varint; a negative int64 as its 64-bit two's complement (ten bytes), as protobuf writes it."""
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_field(field: int, n: int) -> bytes:
    """A varint field, left out at its default (0) as proto3 does."""
    return bytes((field << 3,)) + _varint(n) if n else b""


def _string(field: int, text: str, always: bool = False) -> bytes:
    """A string field; an empty one is left out unless it is a oneof member (`always`)."""
    if not text and not always:
        return b""
    data = text.encode()
    return bytes(((field << 3) | 2,)) + _varint(len(data)) + data


def _message(field: int, body: bytes) -> bytes:
    """A length-delimited field (sub-message or packed repeated), field numbers below 16."""
    return bytes(((field << 3) | 2,)) + _varint(len(body)) + body
