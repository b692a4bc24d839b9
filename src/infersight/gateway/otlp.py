"""OTLP/HTTP request decoding: content types, gzip with a hard cap, OTLP JSON, responses.

Metrics are parsed with "shadow" classes built from opentelemetry-proto's own descriptors in which
every `*DataPoint.attributes` field is `repeated bytes`: the wire format is identical, but each
point's attributes arrive as raw `KeyValue` bytes that serve directly as a cache key, so a point's
attribute set is stringified once per distinct set instead of once per point.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from typing import Any

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


def _shadow_class(real: type[Message], exemplar_probe: bool = False) -> type[Message]:
    """`real` with `*DataPoint.attributes` re-declared as `repeated bytes` (same field numbers).

    With `exemplar_probe`, `*DataPoint.exemplars` becomes a single `bytes` field: reading it costs
    no container per point, and it is non-empty exactly when the point has exemplars (then the
    request is decoded again with the full class)."""
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
            if msg.name.endswith("DataPoint"):
                for f in msg.field:
                    if f.name == "attributes" or (exemplar_probe and f.name == "exemplars"):
                        f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                        f.ClearField("type_name")
                    if exemplar_probe and f.name == "exemplars":
                        f.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
        pool.Add(proto)
        added.add(fd.name)

    add(real.DESCRIPTOR.file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(real.DESCRIPTOR.full_name))


MetricsShadow = _shadow_class(metrics_svc.ExportMetricsServiceRequest)
MetricsProbe = _shadow_class(metrics_svc.ExportMetricsServiceRequest, exemplar_probe=True)


@dataclass(frozen=True)
class Signal:
    name: str
    request: type[Message]
    response: type[Message]
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
        if self._z is not None:
            if not self._z.eof:
                raise BadRequest("invalid gzip body: truncated stream")
        return b"".join(self._parts)


_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP JSON carries trace/span ids as hex; protobuf's JSON mapping expects base64 bytes."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    v = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    raise BadRequest(f"{k}: {v!r} is not a hex string") from None
            else:
                v = _hex_ids_to_base64(v)
            out[k] = v
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def decode(signal: Signal, body: bytes, mt: str, exemplars: bool = False) -> Message:
    """Parse an OTLP request; metrics come back as a shadow class (see module doc): the exemplar
    probe unless `exemplars` asks for the full one."""
    if mt == JSON:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as err:
            raise BadRequest(f"invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise BadRequest("invalid OTLP JSON: top level must be an object")
        msg = signal.request()
        try:
            json_format.ParseDict(_hex_ids_to_base64(data), msg, ignore_unknown_fields=True)
        except (json_format.ParseError, binascii.Error, TypeError, ValueError) as err:
            raise BadRequest(f"invalid OTLP JSON: {err}") from None
        if signal.name != "metrics":
            return msg
        body = msg.SerializeToString()
    try:
        if signal.name == "metrics":
            return (MetricsShadow if exemplars else MetricsProbe).FromString(body)
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
