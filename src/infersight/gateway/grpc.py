"""OTLP/gRPC receiver (default 127.0.0.1:4317), next to OTLP/HTTP and with its semantics.

The three `Export` methods take the request as raw bytes and hand them to the HTTP receiver's own
`Gateway.ingest` (dedup check, decode, row builders, the idempotent writer): one code path, two
transports. What differs is only the envelope:
- the bearer token comes in the `authorization: Bearer ...` metadata and needs the `ingest` scope
  (the same tokens and failed-token limiter settings as HTTP); `idempotency-key` metadata is honoured;
- gzip is gRPC's own message compression; a message over `server.max_body_bytes` is refused by
  gRPC itself with RESOURCE_EXHAUSTED (without retry info: not retryable, as OTLP says);
- the outcome maps to gRPC codes as the OTLP spec asks: a malformed request INVALID_ARGUMENT,
  backpressure RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (store down), both with a
  `google.rpc.RetryInfo` in `grpc-status-details-bin`; partial success in the response message.
The server is grpc.aio's, in the app's event loop: started on startup, stopped (with a grace
period for in-flight calls) on shutdown, before the writer's final flush.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from infersight.config import ConfigError, ServerConfig
from infersight.gateway import otlp
from infersight.gateway.app import GATEWAY
from infersight.gateway.auth import FailureLimiter, Tokens, is_loopback, parse_listen
from infersight.semconv import IDEMPOTENCY_HEADER

log = logging.getLogger(__name__)

SERVICES = {
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
# The receiver's HTTP statuses (Gateway.ingest) as gRPC codes (OTLP spec, "OTLP/gRPC Response").
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
STOP_GRACE_SECONDS = 5.0


@dataclass
class GrpcState:
    """The running server and the port it bound (the configured one, or the kernel's for port 0)."""

    listen: str
    server: Any = None
    port: int = 0
    calls: dict[str, int] = field(default_factory=dict)


GRPC = web.AppKey("infersight_grpc", GrpcState)


def status_details(code: grpc.StatusCode, message: str, retry_after: float | None) -> bytes:
    """`grpc-status-details-bin`: a google.rpc.Status, with RetryInfo when the client should retry later."""
    st = status_pb2.Status(code=code.value[0], message=message)
    if retry_after:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(math.ceil(retry_after))))
        packed = any_pb2.Any()
        packed.Pack(info)
        st.details.append(packed)
    return st.SerializeToString()


class Receiver:
    """The Export handlers over one Gateway; auth from the call's metadata."""

    def __init__(self, cfg: ServerConfig, gateway: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.tokens = Tokens(cfg, clock)
        self.limiter = FailureLimiter(cfg.auth_max_failures, cfg.auth_failure_window_seconds, clock)

    async def _refuse(self, context: grpc.aio.ServicerContext, signal: str, status: int, message: str,
                      retry_after: float | None = None, reason: str = "") -> None:
        if reason:
            self.gateway.observe(signal, status, 0, 0, reason)
        code = CODES.get(status, grpc.StatusCode.UNKNOWN)
        trailing: list[tuple[str, bytes]] = [("grpc-status-details-bin", status_details(code, message, retry_after))]
        if retry_after:  # also on its own, where the OTel SDKs look for it
            delay = duration_pb2.Duration(seconds=int(math.ceil(retry_after)))
            trailing.append(("google.rpc.retryinfo-bin",
                             error_details_pb2.RetryInfo(retry_delay=delay).SerializeToString()))
        context.set_trailing_metadata(tuple(trailing))
        await context.abort(code, message)

    def _client(self, metadata: dict[str, str], peer: str) -> tuple[int, str, float]:
        """(0, client name, 0) when the call may ingest, else (HTTP-like status, message, retry after)."""
        if not self.tokens:
            return 0, "", 0
        address = peer.rsplit(":", 1)[0]
        wait = self.limiter.retry_after(address)
        if wait:
            return 429, f"too many wrong bearer tokens from {address}; retry in {math.ceil(wait)} s", wait
        given = metadata.get("authorization", "")
        token = self.tokens.match(given[7:]) if given.startswith("Bearer ") else None
        if token is None:
            if given:
                self.limiter.failed(address)
            return 401, "missing or invalid bearer token (metadata authorization: Bearer ...)", 0
        if "ingest" not in token.scopes:
            return 403, f"token {token.name!r} lacks the 'ingest' scope this request needs", 0
        return 0, token.name, 0

    def handler(self, signal: otlp.Signal) -> Callable[[bytes, grpc.aio.ServicerContext], Any]:
        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            status, client, wait = self._client(metadata, context.peer() or "")
            if status:
                await self._refuse(context, signal.name, status, client, wait, "auth")
            out = await self.gateway.ingest(signal, request, otlp.PROTOBUF, client,
                                            metadata.get(IDEMPOTENCY_HEADER.lower()))
            if out.status != 200:
                await self._refuse(context, signal.name, out.status, out.message, out.retry_after)
            return otlp.encode_response(signal, otlp.PROTOBUF, out.rejected, out.message)
        return export

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        return [grpc.method_handlers_generic_handler(service, {"Export": grpc.unary_unary_rpc_method_handler(
            self.handler(otlp.SIGNALS[name]))}) for name, service in SERVICES.items()]


def check_listen(cfg: ServerConfig) -> None:
    """Like the HTTP listener: off loopback only with tokens configured."""
    if cfg.grpc_listen is None:
        return
    try:
        host, _ = parse_listen(cfg.grpc_listen)
    except ConfigError:
        raise ConfigError(f"server.grpc_listen: {cfg.grpc_listen!r} is not HOST:PORT") from None
    if not is_loopback(host) and not Tokens(cfg):
        raise ConfigError(f"server.auth_token: required when server.grpc_listen is a non-loopback address "
                          f"({cfg.grpc_listen}); or give each client its own in server.tokens")


def attach(app: web.Application, cfg: ServerConfig) -> None:
    """Serve OTLP/gRPC on `cfg.grpc_listen` while the app runs; needs the receiver (`attach_receiver`) first."""
    if cfg.grpc_listen is None:
        return
    check_listen(cfg)
    state = GrpcState(cfg.grpc_listen)
    app[GRPC] = state

    async def start(app: web.Application) -> None:
        receiver = Receiver(cfg, app[GATEWAY])
        # Bodies as large as OTLP/HTTP takes; gRPC refuses bigger ones itself (RESOURCE_EXHAUSTED).
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", cfg.max_body_bytes),
                                          ("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(receiver.generic_handlers())
        host, port = parse_listen(cfg.grpc_listen or "")
        try:
            state.port = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except RuntimeError as err:
            message = f"server.grpc_listen: cannot listen on {cfg.grpc_listen}: {err}"
            if "grpc_listen" in cfg.model_fields_set:
                raise ConfigError(message) from None
            log.warning("%s; OTLP/gRPC is off (set server.grpc_listen, or null to silence this)", message)
            return
        await server.start()
        state.server = server

    async def stop(app: web.Application) -> None:
        if state.server is not None:
            await state.server.stop(STOP_GRACE_SECONDS)
            state.server = None

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
