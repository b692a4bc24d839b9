"""Cost of the agent's own work: one host collect, and the export path per point.

Export path: realistic batches (1,000 points, 8 attributes each) go Points -> SDK data model ->
OTLP protobuf -> spool file (write + fsync + rename) -> HTTP POST to a loopback receiver that
answers 200 -> file deleted. Baseline in the same run: the encoding alone, which is the ceiling
for a path that must also make every batch durable before it is sent.
Host collect: CPU seconds per `collect()` of the host collector on this machine, and what that
costs as a share of one core at the default 10 s interval.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from infersight.agent.loop import ScopedPoints  # noqa: E402
from infersight.collectors.base import MetricSpec  # noqa: E402
from infersight.collectors.host import HostCollector  # noqa: E402
from infersight.exporters.encode import encode, to_metrics_data  # noqa: E402
from infersight.exporters.senders import HttpSender  # noqa: E402
from infersight.exporters.spool import Spool  # noqa: E402

BATCHES = 40
POINTS = 1_000
SPEC = MetricSpec("gen_ai.server.request.duration.last", "gauge", "s", "bench",
                  tuple(f"attr.{i}" for i in range(8)))
RESOURCE = {"service.name": "bench", "host.name": "node-1", "cloud.provider": "aws", "cloud.region": "us-east-2"}


def batch(n: int) -> list[ScopedPoints]:
    pts = [SPEC.point(float(i), {f"attr.{a}": f"v{(i + a) % 17}-{n}" for a in range(8)}, time_ns=1_700_000_000 + i)
           for i in range(POINTS)]
    return [ScopedPoints("bench", pts)]


def null_receiver() -> tuple[str, callable]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    def run() -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/metrics", ok)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)

    return f"http://127.0.0.1:{holder['port']}", stop


def main() -> int:
    batches = [batch(n) for n in range(BATCHES)]

    t0 = time.perf_counter()
    for b in batches:
        encode(to_metrics_data(b, RESOURCE, 1))
    encode_s = time.perf_counter() - t0

    url, stop = null_receiver()
    sender = HttpSender(url, {}, timeout_seconds=10)
    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d), 1 << 30)
        t0 = time.perf_counter()
        for b in batches:
            spool.put(encode(to_metrics_data(b, RESOURCE, 1)), POINTS)
            report = spool.drain(sender)
            assert report.failure is None and report.sent_batches == 1, report
        full_s = time.perf_counter() - t0
    sender.close()
    stop()

    total = BATCHES * POINTS
    print(f"export path (encode + spool fsync + HTTP + delete): {total / full_s:,.0f} points/s")
    print(f"baseline (encode only, same run):                  {total / encode_s:,.0f} points/s")
    print(f"ratio: {encode_s / full_s:.2f} of the encode-only ceiling")

    host = HostCollector(psutil, process_names=["python3"])
    host.collect()
    cycles = 50
    c0 = time.process_time()
    npoints = 0
    for _ in range(cycles):
        npoints = len(host.collect())
    per_cycle = (time.process_time() - c0) / cycles
    print(f"host collect: {per_cycle * 1000:.2f} ms CPU per cycle ({npoints} points); "
          f"{per_cycle / 10 * 100:.3f} % of one core at a 10 s interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
