"""A real OTLP/HTTP receiver on loopback that records what it gets (agent and spool tests).

Runs aiohttp on its own thread so blocking senders and agent subprocesses can talk to it.
`statuses` scripts the answers (e.g. [503, 503] then 200); `stop()`/`start()` simulate the
gateway going away and coming back on the same port.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest


@dataclass
class Received:
    headers: dict[str, str]
    request: ExportMetricsServiceRequest
    status: int

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")

    def points(self) -> list[tuple[str, object]]:
        out = []
        for rm in self.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    out.extend((m.name, dp) for dp in getattr(m, kind).data_points)
        return out


class Recorder:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.retry_after: str | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else self.default_status
            self.received.append(Received(dict(request.headers), ExportMetricsServiceRequest.FromString(body),
                                          status))
        headers = {"Retry-After": self.retry_after} if status in (429, 503) and self.retry_after else {}
        return web.Response(status=status, body=b"", headers=headers, content_type="application/x-protobuf")

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def start(self) -> Recorder:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/metrics", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "recorder did not start"
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
