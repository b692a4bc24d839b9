"""aiohttp routes: OTLP/HTTP receiver, health, bearer-token auth and the read-only query API.

`base_app` is the guarded HTTP surface every server app starts from; `attach_receiver` and
`attach_query` add the gateway's two components (`server.components` lists them with the others).
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError

from infersight.config import ServerConfig
from infersight.gateway import auth, otlp
from infersight.gateway.query import QueryApi
from infersight.gateway.rows import ROW_BUILDERS, AttrSets
from infersight.gateway.writer import BatchWriter, BeingWritten, KeyConflict, QueueFull, StorageDown, WriteFailed
from infersight.semconv import IDEMPOTENCY_HEADER
from infersight.storage.base import Storage, StorageError

WRITER = web.AppKey("infersight_writer", BatchWriter)
STORAGE = web.AppKey("infersight_storage", Storage)
CONFIG = web.AppKey("infersight_server_config", ServerConfig)

RETRY_QUEUE_SECONDS = 1
RETRY_STORAGE_SECONDS = 5
# google.rpc.Code values for the Status body of error responses.
_RPC = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


def _status(mt: str, http: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return web.Response(status=http, body=otlp.encode_status(mt, _RPC.get(http, 2), message),
                        content_type=mt, headers=headers)


@dataclass(frozen=True)
class Outcome:
    """How one OTLP request ended, before a transport encodes it: an HTTP status (200: accepted, maybe in part)."""

    status: int
    message: str = ""
    rejected: int = 0  # items of an accepted request the receiver dropped (partial success)
    points: int = 0  # rows accepted
    retry_after: int | None = None
    reason: str = ""  # why refused or dropped, for the server's own metrics


# (signal, HTTP status, rows accepted, items rejected, reason): the server's metrics subscribe here.
Observer = Callable[[str, int, int, int, str], None]


class Gateway:
    """The OTLP handlers; decoding runs on the event loop, writes in the writer's thread."""

    def __init__(self, cfg: ServerConfig, writer: BatchWriter) -> None:
        self.cfg = cfg
        self.writer = writer
        self.sets = AttrSets(max_bytes=cfg.attribute_cache_bytes)
        self.observers: list[Observer] = []

    def observe(self, signal: str, status: int, points: int, rejected: int, reason: str) -> None:
        for observer in self.observers:
            observer(signal, status, points, rejected, reason)

    async def _body(self, request: web.Request) -> bytes:
        reader = otlp.BodyReader(request.headers.get("Content-Encoding"), self.cfg.max_body_bytes)
        if request.content_length and request.content_length > self.cfg.max_body_bytes:
            raise otlp.TooLarge(f"request body exceeds {self.cfg.max_body_bytes} bytes "
                                "(server.max_body_bytes)")
        async for chunk in request.content.iter_chunked(1 << 16):
            reader.feed(chunk)
        return reader.finish()

    async def export(self, request: web.Request, signal: otlp.Signal) -> web.Response:
        try:
            mt = otlp.media_type(request.headers.get("Content-Type"))
        except otlp.UnsupportedMediaType as err:
            self.observe(signal.name, 415, 0, 0, "unsupported_media_type")
            return _status(otlp.JSON, 415, str(err))
        try:
            body = await self._body(request)
        except otlp.TooLarge as err:
            self.observe(signal.name, 413, 0, 0, "too_large")
            return _status(mt, 413, str(err))
        except otlp.BadRequest as err:
            self.observe(signal.name, 400, 0, 0, "bad_request")
            return _status(mt, 400, str(err))
        out = await self.ingest(signal, body, mt, auth.client_of(request),
                                request.headers.get(IDEMPOTENCY_HEADER))
        if out.status != 200:
            return _status(mt, out.status, out.message, out.retry_after)
        return web.Response(body=otlp.encode_response(signal, mt, out.rejected, out.message), content_type=mt)

    async def ingest(self, signal: otlp.Signal, body: bytes, mt: str, client: str, given: str | None) -> Outcome:
        """One OTLP request, whatever the transport: dedup check, decode, rows, writer.submit.
        OTLP/HTTP (`export`) and OTLP/gRPC (`gateway.grpc`) both answer from this."""
        out = await self._ingest(signal, body, mt, client, given)
        self.observe(signal.name, out.status, out.points, out.rejected, out.reason)
        return out

    async def _ingest(self, signal: otlp.Signal, body: bytes, mt: str, client: str, given: str | None) -> Outcome:
        # Keys are per client (one client cannot acknowledge another's batch away); the digest
        # tells a re-send from a different body under a reused key (400).
        digest = hashlib.sha256(body).hexdigest()
        scope = f"{signal.name}:client={client}:" if client else f"{signal.name}:"
        key = f"{scope}key:{given}" if given else f"{scope}sha256:{digest}"
        try:
            if self.writer.known(key, digest):
                return Outcome(200, reason="duplicate")
        except KeyConflict as err:
            return Outcome(400, str(err), reason="key_conflict")
        try:
            result = ROW_BUILDERS[signal.name](otlp.decode(signal, body, mt), self.sets)
        except otlp.BadRequest as err:
            return Outcome(400, str(err), reason="bad_request")
        except DecodeError as err:  # a point's attributes are parsed lazily, once per distinct set
            return Outcome(400, f"invalid {signal.request.DESCRIPTOR.name}: attributes: {err}", reason="bad_request")
        if result.rows:
            try:
                await self.writer.submit(key, digest, result.parts, result.rows)
            except KeyConflict as err:
                return Outcome(400, str(err), reason="key_conflict")
            except QueueFull as err:
                return Outcome(429, str(err), retry_after=RETRY_QUEUE_SECONDS, reason="queue_full")
            except BeingWritten as err:  # by another gateway on the same store
                return Outcome(503, str(err), retry_after=RETRY_QUEUE_SECONDS, reason="being_written")
            except StorageDown as err:
                return Outcome(503, str(err), retry_after=RETRY_STORAGE_SECONDS, reason="storage_down")
            except WriteFailed as err:
                return Outcome(500, str(err), reason="write_failed")
        return Outcome(200, result.message, rejected=result.rejected, points=result.rows)


GATEWAY = web.AppKey("infersight_gateway", Gateway)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    writer = request.app[WRITER]
    # From the writer's state and a ping that never queues behind queries (not a query of its own).
    if writer.down:
        return web.json_response({"status": "unavailable", "error": writer.last_error}, status=503)
    try:
        await asyncio.get_running_loop().run_in_executor(None, storage.ping)
    except StorageError as err:
        return web.json_response({"status": "unavailable", "error": str(err)}, status=503)
    return web.json_response({"status": "ready"})


def base_app(cfg: ServerConfig) -> web.Application:
    """No routes yet: the Host, cross-site and token guards, the security headers and the body size limit."""
    public = auth.PublicPaths()
    # The gateway gunzips bodies itself, with a cap, so aiohttp must hand them over as sent.
    app = web.Application(middlewares=[auth.middleware(cfg, public)], client_max_size=cfg.max_body_bytes,
                          handler_args={"auto_decompress": False})
    app[auth.PUBLIC] = public
    app.on_response_prepare.append(auth.security_headers)
    return app


def create_app(cfg: ServerConfig, storage: Storage) -> web.Application:
    """The gateway alone (OTLP receiver and query API), as tests serve it; `server.app.build_app` composes more."""
    app = base_app(cfg)
    attach_receiver(app, cfg, storage)
    attach_query(app, cfg, storage)
    return app


def attach_query(app: web.Application, cfg: ServerConfig, storage: Storage) -> None:
    """The read-only SQL API: POST /api/v1/query."""
    app.router.add_post("/api/v1/query", QueryApi(cfg.query, storage).handle)


def attach_receiver(app: web.Application, cfg: ServerConfig, storage: Storage) -> None:
    """OTLP/HTTP on /v1/{metrics,traces,logs} and the health checks; the writer starts with the app, flushes on
    cleanup."""
    writer = BatchWriter(storage, cfg.flush_rows, cfg.flush_interval_seconds, cfg.max_queue_rows,
                         flush_max_rows=cfg.flush_max_rows, flush_linger_seconds=cfg.flush_linger_seconds,
                         parallel_inserts=cfg.parallel_inserts)
    app[WRITER] = writer
    app[STORAGE] = storage
    app[CONFIG] = cfg
    gw = Gateway(cfg, writer)
    app[GATEWAY] = gw

    def route(signal: otlp.Signal) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return await gw.export(request, signal)
        return handler

    for name, signal in otlp.SIGNALS.items():
        app.router.add_post(f"/v1/{name}", route(signal))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    auth.allow_public(app, ("/healthz", "/readyz"))

    async def start(app: web.Application) -> None:
        await writer.start()

    async def drain(app: web.Application) -> None:
        writer.drain()  # runs before aiohttp waits for in-flight requests

    async def stop(app: web.Application) -> None:
        await writer.close()

    app.on_startup.append(start)
    app.on_shutdown.append(drain)
    app.on_cleanup.append(stop)
