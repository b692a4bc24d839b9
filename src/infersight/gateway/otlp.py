"""OTLP/HTTP request decoding: content types, gzip with a hard cap, OTLP JSON, responses.

Metrics are parsed with a "shadow" class built from opentelemetry-proto's own descriptors in which
every `*DataPoint.attributes` field is `repeated bytes`: the wire format is identical, but each
point's attributes arrive as raw `KeyValue` bytes that serve directly as a cache key, so a point's
attribute set is stringified once per distinct set instead of once per point. The shadow must
accept exactly what the standard decoder accepts: `point_attribute` parses those bytes at the depth
they have in a real request (upb's nesting limit counts from the root), and the row builders parse
the attributes of the points they reject too.

`decode` goes one step further for gauges and sums (`MetricsRaw`): their points arrive as raw bytes,
so the row builder can read the fixed-width fields of many points at once and parse the rest of a
point once per distinct rest (`number_point`); every point is parsed as `MetricsShadow` would have
parsed it, at its real depth (`number_points`), so what is accepted does not change.

Ids, as the OTLP spec has them: a span's `trace_id` (16 bytes) and `span_id` (8 bytes) are
required and non-zero, otherwise the span is rejected (partial success); `parent_span_id` and the
ids of log records and exemplars are optional, all-zero or empty meaning none (stored as ''), but
a wrong length is an error. OTLP JSON carries ids as hex, never base64.

OTLP JSON is refused with 400 when it nests too deeply, repeats a key in one object, or does not
fit its fields' types (huge or fractional integers, strings that are not numbers, ±Inf).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BadRequest(Exception):
    """The body is malformed: answer 400, the client must not retry it."""


class TooLarge(Exception):
    """The decompressed body exceeds `server.max_body_bytes`: answer 413."""


class UnsupportedMediaType(Exception):
    """Neither OTLP protobuf nor OTLP JSON: answer 415."""


def _shadow_class(real: type[Message], raw_points: bool = False) -> type[Message]:
    """`real` with `*DataPoint.attributes` re-declared as `repeated bytes` (same field numbers), and with
    `raw_points` `Gauge.data_points` and `Sum.data_points` too."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(fd: Any) -> None:
        if fd.name in added:
            return
        for dep in fd.dependencies:
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        for msg in proto.message_type:
            for f in msg.field:
                if (msg.name.endswith("DataPoint") and f.name == "attributes") or (
                        raw_points and msg.name in ("Gauge", "Sum") and f.name == "data_points"):
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("type_name")
        pool.Add(proto)
        added.add(fd.name)

    add(real.DESCRIPTOR.file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(real.DESCRIPTOR.full_name))


MetricsShadow = _shadow_class(metrics_svc.ExportMetricsServiceRequest)
MetricsRaw = _shadow_class(metrics_svc.ExportMetricsServiceRequest, raw_points=True)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# resource_metrics / scope_metrics / metrics / gauge / data_points / attributes: every kind of data
# point sits at the same depth, so one envelope stands for all.
_POINT_PATH = (1, 2, 2, 5, 1, 7)


def point_attribute(raw: bytes) -> Any:
    """One data point attribute (raw `KeyValue` bytes) parsed as the standard decoder parses it:
    inside a request, so that its nesting counts from the request's root. DecodeError if invalid."""
    req = metrics_svc.ExportMetricsServiceRequest.FromString(_in_request(raw, _POINT_PATH))
    return req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].attributes[0]


def _in_request(raw: bytes, path: tuple[int, ...]) -> bytes:
    for number in reversed(path):
        raw = _len_field(number, raw)
    return raw


def number_points(points: Any) -> Any:
    """Raw gauge or sum points (from `MetricsRaw`) parsed as `MetricsShadow` points inside a request (a
    gauge's and a sum's points sit at the same depth), as `decode` would have. BadRequest if one is invalid."""
    body = _in_request(b"".join(_len_field(1, p) for p in points), _POINT_PATH[:-2])
    try:
        req: Any = MetricsShadow.FromString(body)
    except DecodeError as err:
        raise BadRequest(f"invalid protobuf ExportMetricsServiceRequest: {err}") from None
    return req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points


def number_point(raw: bytes, rest: bytes) -> Any:
    """The point `raw`, whose fixed-width fields `rest` follows, as `number_points` parses it; None when
    `rest` sets one of those fields again (the last one counts, so the fixed-width part would not)."""
    point = number_points((raw,))[0]
    fixed: Any = _FIXED_FIELDS.FromString(rest)  # valid: it ends a valid point
    if fixed.start or fixed.time or fixed.as_double or fixed.as_int:
        return None
    return point


def _fixed_fields_class() -> type[Message]:
    """NumberDataPoint's start, time and value fields only, each repeated: any occurrence is kept."""
    proto = descriptor_pb2.FileDescriptorProto(name="infersight_fixed_fields.proto", package="infersight")
    msg = proto.message_type.add(name="FixedFields")
    f = descriptor_pb2.FieldDescriptorProto
    for name, number, typ in (("start", 2, f.TYPE_FIXED64), ("time", 3, f.TYPE_FIXED64),
                              ("as_double", 4, f.TYPE_DOUBLE), ("as_int", 6, f.TYPE_SFIXED64)):
        msg.field.add(name=name, number=number, type=typ, label=f.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("infersight.FixedFields"))


_FIXED_FIELDS = _fixed_fields_class()


ExportResponse: TypeAlias = (metrics_svc.ExportMetricsServiceResponse | trace_svc.ExportTraceServiceResponse
                              | logs_svc.ExportLogsServiceResponse)


@dataclass(frozen=True)
class Signal:
    name: str
    request: type[Message]
    response: type[ExportResponse]
    rejected_field: str


SIGNALS = {
    "metrics": Signal("metrics", metrics_svc.ExportMetricsServiceRequest,
                      metrics_svc.ExportMetricsServiceResponse, "rejected_data_points"),
    "traces": Signal("traces", trace_svc.ExportTraceServiceRequest,
                     trace_svc.ExportTraceServiceResponse, "rejected_spans"),
    "logs": Signal("logs", logs_svc.ExportLogsServiceRequest,
                   logs_svc.ExportLogsServiceResponse, "rejected_log_records"),
}


def media_type(content_type: str | None) -> str:
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    if mt in (PROTOBUF, JSON):
        return mt
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type or '(none)'!r}; use {PROTOBUF} or {JSON}")


class BodyReader:
    """Accumulates a request body, gunzipping on the fly, never holding more than `limit` bytes."""

    def __init__(self, encoding: str | None, limit: int) -> None:
        enc = (encoding or "identity").strip().lower()
        if enc not in ("identity", "gzip", ""):
            raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS) if enc == "gzip" else None
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise TooLarge(f"request body exceeds {self._limit} bytes (server.max_body_bytes)")
        self._parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self._keep(chunk)
            return
        data = chunk
        try:
            while data:
                # max_length bounds each step, so a gzip bomb is stopped at limit+1 bytes.
                out = self._z.decompress(data, self._limit - self._size + 1)
                self._keep(out)
                data = self._z.unconsumed_tail
        except zlib.error as err:
            raise BadRequest(f"invalid gzip body: {err}") from None

    def finish(self) -> bytes:
        if self._z is not None and not self._z.eof:
            raise BadRequest("invalid gzip body: truncated stream")
        return b"".join(self._parts)


_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object, as `json.loads` builds it: no key twice (which value counts would depend on
    the parser), hex ids as the base64 that protobuf's JSON mapping expects."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise BadRequest(f"invalid JSON: key {k!r} repeated in one object")
            seen.add(k)
    for k in _ID_KEYS.intersection(out):
        v = out[k]
        if isinstance(v, str):
            try:
                out[k] = base64.b64encode(bytes.fromhex(v)).decode()
            except ValueError:
                raise BadRequest(f"{k}: {v!r} is not a hex string") from None
    return out


# A `\\uD800`-`\\uDFFF` escape: only these give a decoded JSON string a lone surrogate, which upb
# fails on with SystemError instead of ParseError.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_unicode(data: Any) -> None:
    """Every key and string in `data` encodes as UTF-8 (iterative: `data` may nest deeply)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                raise BadRequest(f"invalid JSON: {node[:40]!r} is not valid Unicode (lone surrogate)") from None


def _not_json(name: str) -> Any:
    raise BadRequest(f"invalid JSON: {name} is not JSON (OTLP JSON writes it as the string \"{name}\")")


def _short(err: Exception, limit: int = 300) -> str:
    """protobuf's JSON errors quote the offending value, which may be most of the body."""
    text = str(err)
    return text if len(text) <= limit else text[:limit] + "..."


def decode(signal: Signal, body: bytes, mt: str) -> Message:
    """Parse an OTLP request; metrics come back as `MetricsRaw` (see module doc)."""
    if mt == JSON:
        try:
            data = json.loads(body, object_pairs_hook=_json_object, parse_constant=_not_json)
        except RecursionError:
            raise BadRequest("invalid JSON: nested too deeply") from None
        except (UnicodeDecodeError, ValueError) as err:
            raise BadRequest(f"invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise BadRequest("invalid OTLP JSON: top level must be an object")
        if _SURROGATE_ESCAPE.search(body):
            _check_unicode(data)
        msg = signal.request()
        try:
            json_format.ParseDict(data, msg, ignore_unknown_fields=True)
        except (json_format.ParseError, binascii.Error, TypeError, ValueError, OverflowError) as err:
            raise BadRequest(f"invalid OTLP JSON: {_short(err)}") from None
        if signal.name != "metrics":
            return msg
        body = msg.SerializeToString()
    try:
        if signal.name == "metrics":
            return MetricsRaw.FromString(body)
        return signal.request.FromString(body)
    except DecodeError as err:
        raise BadRequest(f"invalid protobuf {signal.request.DESCRIPTOR.name}: {err}") from None


def encode_response(signal: Signal, mt: str, rejected: int, message: str) -> bytes:
    resp = signal.response()
    if rejected or message:
        setattr(resp.partial_success, signal.rejected_field, rejected)
        resp.partial_success.error_message = message
    if mt == PROTOBUF:
        return resp.SerializeToString()
    return json_format.MessageToJson(resp, indent=None).encode()


def encode_status(mt: str, code: int, message: str) -> bytes:
    """An error body as OTLP/HTTP asks: google.rpc.Status in the request's encoding."""
    st = status_pb2.Status(code=code, message=message)
    if mt == PROTOBUF:
        return st.SerializeToString()
    return json_format.MessageToJson(st, indent=None).encode()
