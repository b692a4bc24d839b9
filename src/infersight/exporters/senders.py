"""How a batch is shipped: one attempt over OTLP/HTTP or OTLP/gRPC, its outcome classified.

Stateless on purpose: the agent loop decides when to export, the spool decides what is retried.
A sender makes exactly one attempt and classifies the outcome, because the SDK exporters' own retry
loops would hide whether a failure is worth keeping on disk. What the bytes are is `exporters.encode`.
The gRPC stack is imported only by `GrpcSender`; OTLP/HTTP needs nothing but the standard library (protobuf's
runtime only to read a non-empty answer, which may carry a partial success).
"""
from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlparse, urlsplit

from infersight import __version__
from infersight.config import ExporterConfig
from infersight.semconv import IDEMPOTENCY_HEADER


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt's outcome, as the OTLP spec classifies it.

    `retry`: transient (unreachable, timeout, 429/502/503/504, the retryable gRPC codes); keep the batch and
    everything after it. `auth`: the receiver refused our credentials (401/403, UNAUTHENTICATED/PERMISSION_DENIED);
    every batch would fail alike until an operator fixes the token, so the spool is kept and retried slowly
    rather than emptied into the dead letters. `reject`: this batch will never be taken (any other status);
    set it aside and go on with the next. `detail`: the start of the receiver's answer, for the operator.
    `rejected_points`: on `ok`, the points the receiver dropped from the batch (OTLP partial success).
    """

    outcome: Literal["ok", "retry", "auth", "reject"]
    reason: str = ""
    retry_after_seconds: float | None = None
    detail: str = ""
    rejected_points: int = 0


class Sender(Protocol):
    def send(self, payload: bytes, idempotency_key: str, timeout_seconds: float | None = None) -> SendResult:
        """One attempt, bounded by the configured timeout or `timeout_seconds` if that is shorter."""
        ...

    def close(self) -> None: ...


# OTLP/HTTP spec: only these mean "try again later". A 500 or 501 is as final as a 400: re-sending the same
# bytes would fail the same way, and retrying it forever would block every batch behind it.
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_AUTH_HTTP = frozenset({401, 403})
_DETAIL_CHARS = 300


class HttpSender:
    """POST to `{endpoint}/v1/metrics` over one kept-alive connection (the standard library's `http.client`: no
    requests/urllib3 stack in the agent), one attempt. HTTPS verifies against the system's trust store."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = endpoint.rstrip("/") + "/v1/metrics"
        url = urlsplit(self.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"exporter endpoint must be an http(s) URL, not {endpoint!r}")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._path = url.path + (f"?{url.query}" if url.query else "")
        self._headers = {"User-Agent": f"infersight-agent/{__version__}", **headers,
                         "Content-Type": "application/x-protobuf"}
        self._timeout = timeout_seconds
        self._ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def send(self, payload: bytes, idempotency_key: str, timeout_seconds: float | None = None) -> SendResult:
        timeout = self._timeout if timeout_seconds is None else min(self._timeout, timeout_seconds)
        headers = {**self._headers, IDEMPOTENCY_HEADER: idempotency_key}
        with self._lock:
            try:
                status, reason_headers, body = self._post(payload, headers, timeout)
            except (OSError, http.client.HTTPException) as err:
                self._drop()
                return SendResult("retry", "timeout" if isinstance(err, TimeoutError) else "connection")
        if 200 <= status < 300:
            return _partial_success(body)
        reason, detail = f"http_{status}", body[:_DETAIL_CHARS * 4].decode("utf-8", "replace")[:_DETAIL_CHARS]
        if status in _RETRYABLE_HTTP:
            return SendResult("retry", reason, retry_after(reason_headers.get("retry-after")), detail)
        return SendResult("auth" if status in _AUTH_HTTP else "reject", reason, detail=detail)

    def _post(self, payload: bytes, headers: dict[str, str], timeout: float) -> tuple[int, Any, bytes]:
        conn, reused = self._connection(timeout)
        try:
            conn.request("POST", self._path, body=payload, headers=headers)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # The receiver closed the idle kept-alive connection as we sent: once more on a new one (the
            # idempotency key makes a batch that did arrive count once).
            self._drop()
            conn, _ = self._connection(timeout)
            conn.request("POST", self._path, body=payload, headers=headers)
            response = conn.getresponse()
        body = response.read()
        if response.will_close:
            self._drop()
        return response.status, response.headers, body

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """The kept-alive connection if the receiver has not closed it, else a new one; and whether it is reused."""
        conn = self._conn
        if conn is not None and conn.sock is not None and not _dropped(conn.sock):
            conn.sock.settimeout(timeout)
            return conn, True
        self._drop()
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._ssl_context or ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            # http.client's connect hook, set per instance by its __init__ (typeshed does not declare it)
            conn._create_connection = _connect  # type: ignore[attr-defined]
        self._conn = conn
        return conn, False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Also from another thread while a send hangs: shutting the socket down ends that send at once."""
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self._drop()


def _connect(address: tuple[str, int], timeout: float | None,
             source_address: tuple[str, int] | None) -> socket.socket:
    """`socket.create_connection` with an ASCII host name passed as bytes: a str host makes `getaddrinfo` load the
    IDNA codec (encodings.idna, stringprep, unicodedata: ~0.4 MB of the agent's RSS) even for "127.0.0.1"."""
    host, port = address
    # typeshed types the host as str only; getaddrinfo takes bytes as well
    return socket.create_connection((host.encode("ascii") if host.isascii() else host, port),  # type: ignore[arg-type]
                                    timeout, source_address)


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive socket that is readable was closed by the peer (or holds data nobody asked for)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _partial_success(body: bytes) -> SendResult:
    """An OTLP 2xx may say some points were dropped (e.g. values that cannot be stored); a body that is not an
    `ExportMetricsServiceResponse` is still a success."""
    if not body:
        return SendResult("ok")
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    try:
        partial = ExportMetricsServiceResponse.FromString(body).partial_success
    except DecodeError:
        return SendResult("ok")
    return SendResult("ok", detail=partial.error_message[:_DETAIL_CHARS], rejected_points=partial.rejected_data_points)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date (RFC 9110); None if absent or unparsable."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class GrpcSender:
    """OTLP/gRPC `MetricsService/Export` with the idempotency key as call metadata, one attempt."""

    # OTLP/gRPC spec: the retryable codes. RESOURCE_EXHAUSTED only when the server sends RetryInfo (it means
    # "slow down"); without it the request itself is too big to ever fit, like any code not listed here.
    _RETRYABLE = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})
    _AUTH = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})

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

    def send(self, payload: bytes, idempotency_key: str, timeout_seconds: float | None = None) -> SendResult:
        import grpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        request = ExportMetricsServiceRequest.FromString(payload)
        timeout = self._timeout if timeout_seconds is None else min(self._timeout, timeout_seconds)
        try:
            response = self._stub.Export(request, timeout=timeout,
                                         metadata=self._metadata + ((IDEMPOTENCY_HEADER.lower(), idempotency_key),))
        except grpc.RpcError as err:
            code, reason, detail = err.code().name, f"grpc_{err.code().name}", (err.details() or "")[:_DETAIL_CHARS]
            # grpc-stubs types these trailers as `_Metadatum` objects; grpc returns (key, value) tuples
            delay = _retry_info_seconds(err.trailing_metadata() or ())  # type: ignore[arg-type]  # stubs gap
            if code in self._RETRYABLE or (code == "RESOURCE_EXHAUSTED" and delay is not None):
                return SendResult("retry", reason, delay, detail)
            return SendResult("auth" if code in self._AUTH else "reject", reason, detail=detail)
        partial = response.partial_success
        return SendResult("ok", detail=partial.error_message[:_DETAIL_CHARS],
                          rejected_points=partial.rejected_data_points)

    def close(self) -> None:
        self._channel.close()


def _retry_info_seconds(metadata: Sequence[tuple[str, str | bytes]]) -> float | None:
    """The server's `google.rpc.RetryInfo` delay: in the status details (`grpc-status-details-bin`, as the
    spec says) or on its own (`google.rpc.retryinfo-bin`, what the OTel SDK reads)."""
    from google.protobuf.message import DecodeError
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    info = None
    try:
        for key, value in metadata:
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                for any_detail in Status.FromString(value).details:
                    if any_detail.Is(RetryInfo.DESCRIPTOR):
                        info = RetryInfo()
                        any_detail.Unpack(info)
            elif key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
                info = RetryInfo.FromString(value)
    except DecodeError:
        return None
    if info is None:
        return None
    return max(info.retry_delay.seconds + info.retry_delay.nanos / 1e9, 0.0)


def make_sender(cfg: ExporterConfig) -> Sender:
    headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
    if cfg.protocol == "grpc":
        return GrpcSender(cfg.endpoint, headers, cfg.timeout_seconds)
    return HttpSender(cfg.endpoint, headers, cfg.timeout_seconds)
