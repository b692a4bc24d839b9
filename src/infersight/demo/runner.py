"""The demo's composition: server + webhook sink + backfill + one live agent per simulated node, until Ctrl-C.

Everything listens on 127.0.0.1. The server is `infersight server`'s own (`server.app.serve` over
`server.components.default_components`, embedded chDB in the data directory), loaded with the demo's
SLO specs and price catalog; its SLO engine's only receiver is the sink. SIGINT/SIGTERM stop the
span generator and the agents (each spools and drains what it holds), then the server (which flushes
its write queue); the exit status is 0.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO, cast

import aiohttp
from aiohttp import web

from infersight.agent.loop import Agent, ScheduledCollector
from infersight.collectors.base import Collector
from infersight.config import AgentConfig, Config, ExporterConfig, ServerConfig
from infersight.cost.settings import CostSettings
from infersight.demo.backfill import BackfillReport, backfill, coarse_step_seconds
from infersight.demo.fleet import API_DEPLOYMENTS, Node, build_fleet
from infersight.demo.incidents import Incident, Script, default_script
from infersight.demo.sink import SinkView, sink_app
from infersight.demo.sources import Clock, SimNode
from infersight.demo.spans import ApiClients
from infersight.exporters.senders import HttpSender, make_sender
from infersight.exporters.spool import Spool
from infersight.slo.settings import ReceiverSettings, RouteSettings, SloSettings
from infersight.testing.nvml_replay import load_capture

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def data_path(*parts: str) -> Path:
    """A file of the demo's package data (SLO specs, price catalog, neuron-monitor report)."""
    return Path(str(resources.files("infersight.demo").joinpath("data", *parts)))


@dataclass(frozen=True)
class DemoOptions:
    nodes: int = 12
    history_seconds: float = 7 * 86400
    port: int = 4318
    data_dir: Path | None = None
    sink_port: int = 0  # 0: any free loopback port
    collect_interval_seconds: float = 10.0
    export_interval_seconds: float = 5.0
    slo_interval_seconds: float = 5.0
    # Stretches the incidents' live part (minutes after the start); < 1 in tests.
    incident_scale: float = 1.0
    seed: int = 0
    slo_paths: tuple[Path, ...] = field(default_factory=lambda: (data_path("slos"),))
    price_catalogs: tuple[Path, ...] = field(default_factory=lambda: (data_path("prices.yaml"),))


def demo_config(opts: DemoOptions, data_dir: Path, sink_url: str) -> Config:
    base = f"http://{HOST}:{opts.port}"
    return Config(
        server=ServerConfig(listen=f"{HOST}:{opts.port}", data_dir=data_dir, external_url=base),
        slo=SloSettings(paths=opts.slo_paths, interval_seconds=opts.slo_interval_seconds,
                        receivers=(ReceiverSettings(name="demo-sink", type="webhook", url=sink_url,
                                                    timeout_seconds=5),),
                        route=RouteSettings(receiver="demo-sink", group_by=("alertname", "slo"),
                                            group_wait_seconds=1, group_interval_seconds=10,
                                            repeat_interval_seconds=3600),
                        external_url=base),
        cost=CostSettings(catalogs=opts.price_catalogs))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def describe(nodes: list[Node], incidents: tuple[Incident, ...], t0: float, opts: DemoOptions, step: float) -> str:
    lines = [f"infersight demo: {len(nodes)} simulated nodes, {len(API_DEPLOYMENTS)} API deployments, "
             f"{opts.history_seconds / 3600:g} h of history (the last hour minute by minute, before it "
             f"{step / 60:.0f} min steps)"]
    for n in nodes:
        t = n.type
        lines.append(f"  {n.name:<34} {t.cloud:<12} {t.region:<15} {t.instance_type:<26} "
                     f"{t.devices:>2}x{t.accelerator:<10} {t.server:<6} {t.role:<7} {t.model}")
    for d in API_DEPLOYMENTS:
        lines.append(f"  API {d.provider:<30} {d.cloud:<12} {d.region:<15} {d.model}")
    lines.append("incidents (SLO alerts fire, then resolve after the incident ends):")
    lines += [f"  {i.describe(t0)}" for i in incidents]
    return "\n".join(lines)


async def _until_ready(url: str, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    async with aiohttp.ClientSession() as s:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the demo server did not answer {url} within {timeout_seconds:g} s")
            await asyncio.sleep(0.1)


def _agent(node: SimNode, opts: DemoOptions, base: str, spool_root: Path) -> tuple[Agent, Spool]:
    ex = ExporterConfig(endpoint=base, spool_dir=spool_root / node.node.name, timeout_seconds=10,
                        export_interval_seconds=opts.export_interval_seconds, retry_interval_seconds=2)
    cfg = AgentConfig(exporter=ex, self_metrics_interval_seconds=30, shutdown_timeout_seconds=5)
    spool = Spool(ex.spool_dir, ex.max_spool_bytes)
    collectors = [ScheduledCollector(name, cast(Collector, c), opts.collect_interval_seconds, 5.0)
                  for name, c in node.collectors]
    return Agent(cfg, collectors, make_sender(ex), spool, node.node.resource()), spool


async def _spans_loop(api: ApiClients, stop: asyncio.Event, interval: float, since: float) -> None:
    last = since
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        now = time.time()
        await asyncio.to_thread(api.emit, last, now)
        last = now


def _join(threads: list[threading.Thread], timeout_seconds: float = 60.0) -> None:
    """Each agent's shutdown is bounded by its own budget; this bound only keeps a bug from hanging the demo."""
    deadline = time.monotonic() + timeout_seconds
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True)
class ServerParts:
    """The server's composition, handed in by the caller (`cli/demo.py`): areas never import `server/`."""

    serve: Callable[..., Coroutine[Any, Any, None]]
    components: Callable[[Any, Any], list]


async def run(opts: DemoOptions, server: ServerParts, out: TextIO = sys.stdout,
              ready: Callable[[dict], None] | None = None) -> int:
    """The demo until SIGINT/SIGTERM; 0 after a clean stop."""
    serve, default_components = server.serve, server.components
    from infersight.storage import open_storage, schema_options
    from infersight.storage.schema import ensure_schema

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    own_dir = opts.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="infersight-demo-")) if opts.data_dir is None else opts.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    sink_port = opts.sink_port or free_port()
    base = f"http://{HOST}:{opts.port}"
    sink_url = f"http://{HOST}:{sink_port}"
    cfg = demo_config(opts, data_dir, f"{sink_url}/webhook")
    t0 = time.time()
    script = Script(default_script(t0, opts.incident_scale))
    fleet = build_fleet(opts.nodes)
    step = coarse_step_seconds(opts.history_seconds)
    say(describe(fleet, script.incidents, t0, opts, step))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per OTLP request is noise here

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    cancel = threading.Event()
    storage = open_storage(cfg.server.storage, data_dir)
    sink_application = sink_app(allow_origin=base)
    sink = web.AppRunner(sink_application, handle_signals=False)
    nodes: list[SimNode] = []
    server_stop = asyncio.Event()
    server_task: asyncio.Task | None = None
    api: ApiClients | None = None
    try:
        components = [*default_components(cfg, storage), SinkView(sink_application)]  # the UI shows what it got
        ensure_schema(storage, schema_options(cfg.server.storage), [d for c in components for d in c.ddl])
        await sink.setup()
        await web.TCPSite(sink, HOST, sink_port).start()
        server_task = asyncio.create_task(serve(cfg, storage, components, server_stop))
        await _until_ready(f"{base}/readyz")
        def on_signal() -> None:
            stopping.set()
            cancel.set()

        for sig in (signal.SIGINT, signal.SIGTERM):  # after serve's own handlers: the fleet stops first
            loop.add_signal_handler(sig, on_signal)

        clock = Clock()
        capture = load_capture()
        start = t0 - opts.history_seconds
        nodes = [SimNode(n, script, clock, capture, start, opts.seed) for n in fleet]
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
        api = ApiClients(API_DEPLOYMENTS, f"{base}/v1/traces", script, opts.seed)
        sender = HttpSender(base, {}, timeout_seconds=60)
        say(f"backfilling {opts.history_seconds / 3600:g} h of history through {base}/v1/metrics and /v1/traces ...")
        try:
            report: BackfillReport = await asyncio.to_thread(
                backfill, nodes, api, clock, sender, start, time.time(),
                lambda f: say(f"  ... {f * 100:.0f} %"), cancel)
        finally:
            sender.close()
        clock.t = None  # from here on: wall-clock time, the agents' own loop
        say(f"backfill: {report.steps} steps, {report.points} points, {report.requests} server requests, "
            f"{report.spans} API spans in {report.seconds:.1f} s")
        info = {"url": f"{base}/", "server": base, "sink": f"{sink_url}/alerts", "data_dir": str(data_dir),
                "backfill": report.__dict__}
        if not stopping.is_set():
            agents = [_agent(n, opts, base, data_dir / "spool") for n in nodes]
            agent_stop = threading.Event()
            # Each agent runs in its own thread, as on its own node (the default executor would run ~6 at a time).
            threads = [threading.Thread(target=a.run, args=(agent_stop,), daemon=True, name=f"demo-agent-{n.node.name}")
                       for (a, _), n in zip(agents, nodes, strict=True)]
            for t in threads:
                t.start()
            spans = asyncio.create_task(_spans_loop(api, stopping, opts.export_interval_seconds, time.time()))
            say(f"web UI: {base}/   query API: {base}/api/v1/query   SLOs: {base}/api/v1/slos/status   "
                f"alerts: {base}/api/v1/alerts")
            say(f"webhook sink (alerts received): {sink_url}/alerts   data: {data_dir}")
            say("demo running; Ctrl-C to stop")
            if ready is not None:
                ready(info)
            await stopping.wait()
            say("stopping: agents drain, then the server flushes ...")
            agent_stop.set()
            await asyncio.gather(asyncio.to_thread(_join, threads), spans, return_exceptions=True)
            for _, spool in agents:
                spool.close()
        return 0
    finally:
        if api is not None:
            await asyncio.to_thread(api.shutdown)
        for n in nodes:
            with contextlib.suppress(Exception):
                n.close()
        if server_task is not None:
            server_stop.set()
            await server_task
        await sink.cleanup()
        storage.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        say("demo stopped")


def run_demo(opts: DemoOptions, server: ServerParts) -> int:
    return asyncio.run(run(opts, server))
