"""The server's access log: requests at DEBUG, a periodic INFO summary, a failing route logged on change only.

Real components: the gateway app over the embedded store, served by aiohttp's runner on loopback with
the server's own access logger class, and OTLP protobuf bodies.
"""
from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.config import ServerConfig
from infersight.gateway import app as gateway_app
from infersight.gateway.app import create_app
from infersight.server.access import Traffic
from support.net import free_port


def gauge_request(points: int, start: int = 0) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    m = rm.scope_metrics.add().metrics.add(name="cpu")
    for i in range(points):
        m.gauge.data_points.add(time_unix_nano=1_767_225_600_000_000_000 + i, as_double=float(start + i))
    return req.SerializeToString()


async def test_access_lines_at_debug_summary_at_info_failures_on_change(store, caplog):
    app = create_app(ServerConfig(flush_interval_seconds=0.02), store)
    healthy = {"ok": True}

    async def flaky(request: web.Request) -> web.Response:
        return web.json_response({}, status=200 if healthy["ok"] else 503)

    app.router.add_get("/flaky", flaky)
    logger = logging.getLogger("test.access")
    traffic = Traffic(logger=logger)
    traffic.attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=traffic.access_logger_class())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    caplog.set_level(logging.INFO, logger="test.access")
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(3):  # distinct bodies: a re-sent one is acknowledged without new points
                async with http.post(f"{base}/v1/metrics", data=gauge_request(4, start=10 * n),
                                     headers={"Content-Type": "application/x-protobuf"}) as resp:
                    assert resp.status == 200
            for ok in (True, False, False, False, True, True):
                healthy["ok"] = ok
                async with http.get(f"{base}/flaky") as resp:
                    assert resp.status == (200 if ok else 503)
    finally:
        await runner.cleanup()
    records = [r for r in caplog.records if r.name == "test.access"]
    # No line per request at INFO: only the failure and the recovery of /flaky.
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in records] == [
        ("WARNING", "GET /flaky failing"), ("INFO", "GET /flaky recovered")]
    assert "after 3 failed requests" in records[1].getMessage()
    line = traffic.summary()
    assert line is not None and line.startswith("requests in the last ")
    points = " (12 points)" if hasattr(gateway_app, "GATEWAY") else ""
    assert f"metrics 200 ×3{points}" in line and "/flaky 200 ×3" in line and "/flaky 503 ×3" in line
    assert traffic.summary() is None  # counts reset after each summary

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="test.access")
    traffic.record(_Request(), 200, 0.001)
    assert [r.levelname for r in caplog.records if r.name == "test.access"] == ["DEBUG"]


class _Request:
    """Enough of a request for one access line (the route of an unmatched path)."""

    remote = "127.0.0.1"
    method = "GET"
    path = "/nowhere"
    path_qs = "/nowhere?x=1"
