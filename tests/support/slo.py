"""Helpers shared by the SLO tests: rollup rows with chosen timestamps, spec documents, a clock."""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from infersight.slo.model import compile_spec
from infersight.slo.spec import parse_documents
from support.net import free_port
from support.paths import FIXTURES

FIXTURES_DIR = FIXTURES
T0 = 1_780_000_020 - (1_780_000_020 % 86400)  # a UTC midnight (2026-05-28)

DIMS = ("CloudProvider", "CloudRegion", "HostName", "Model", "ServerKind", "Tenant")


class Clock:
    """The injectable clock: tests move time explicitly."""

    def __init__(self, t: float = T0) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def distinct() -> str:
    """A SETTINGS clause that makes this insert its own block: the rollups deduplicate identical blocks
    (non_replicated_deduplication_window), and a test's repeated insert stands for another batch."""
    return f" SETTINGS insert_deduplication_token = '{uuid.uuid4().hex}' "


def insert_requests(store, rows: list[dict[str, Any]]) -> None:
    """rows: {minute (epoch s), requests, bad, provider, region, model, ...}."""
    values = []
    for r in rows:
        dims = [r.get("provider", "aws"), r.get("region", "us-east-1"), r.get("host", "h1"),
                r.get("model", "llama"), r.get("server_kind", "vllm"), r.get("tenant", "")]
        values.append(f"(toDateTime({int(r['minute'])}), " + ", ".join(f"'{d}'" for d in dims)
                      + f", {int(r['requests'])}, {int(r.get('bad', 0))}, {int(r.get('input_tokens', 0))}, "
                      f"{int(r.get('output_tokens', 0))}, {int(r.get('cached_tokens', 0))})")
    store.execute(f"INSERT INTO `{store.database}`.infersight_requests_1m (Minute, {', '.join(DIMS)}, Requests, "
                  f"BadRequests, InputTokens, OutputTokens, CachedTokens)" + distinct() + "VALUES " + ", ".join(values))


def steady_requests(store, start: int, minutes: int, per_minute: int, bad_per_minute: int = 0, **dims) -> None:
    """One row per minute; generated inside ClickHouse so long histories stay cheap."""
    d = [dims.get("provider", "aws"), dims.get("region", "us-east-1"), dims.get("host", "h1"),
         dims.get("model", "llama"), dims.get("server_kind", "vllm"), dims.get("tenant", "")]
    store.execute(
        f"INSERT INTO `{store.database}`.infersight_requests_1m (Minute, {', '.join(DIMS)}, Requests, BadRequests, "
        f"InputTokens, OutputTokens, CachedTokens){distinct()}SELECT toDateTime({start} + number * 60), "
        + ", ".join(f"'{x}'" for x in d)
        + f", {per_minute}, {bad_per_minute}, {dims.get('input_tokens', 0)}, {dims.get('output_tokens', 0)}, "
        f"{dims.get('cached_tokens', 0)} FROM numbers({minutes})")


def insert_latency(store, minute: int, kind: str, bounds: list[float], counts: list[int], **dims) -> None:
    d = [dims.get("provider", "aws"), dims.get("region", "us-east-1"), dims.get("host", "h1"),
         dims.get("model", "llama"), dims.get("server_kind", "vllm"), dims.get("tenant", "")]
    store.execute(
        f"INSERT INTO `{store.database}`.infersight_latency_1m (Minute, {', '.join(DIMS)}, Kind, Bounds, "
        f"BucketCounts, Count, Sum){distinct()}VALUES (toDateTime({minute}), " + ", ".join(f"'{x}'" for x in d)
        + f", '{kind}', {list(map(float, bounds))}, {counts}, {sum(counts)}, 0)")


def slo_doc(name: str = "avail", sli: dict | None = None, objective: float = 99.9, window: dict | None = None,
            **spec) -> dict:
    body = {"sli": sli or {"ratio": {}}, "objective_percent": objective, "window": window or {"rolling": "30d"}}
    body.update(spec)
    return {"apiVersion": "infersight/v1", "kind": "SLO", "metadata": {"name": name}, "spec": body}


def burning_now(store, tmp_path: Path) -> tuple[Path, int]:
    """A folder with the `avail` SLO (7 d window) over a day of clean traffic that ends in 4 minutes of errors
    up to now (the current minute, also returned): an engine over it pages at its first evaluation."""
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "avail.yaml").write_text(yaml.safe_dump(slo_doc(window={"rolling": "7d"})))
    minute = int(time.time()) // 60 * 60
    steady_requests(store, minute - 86400, 1440 - 3, 6000)
    steady_requests(store, minute - 180, 4, 6000, 6000)
    return specs, minute


def make_slo(**kw):
    return compile_spec(parse_documents([slo_doc(**kw)], "<test>")[0])


def insert_hw(store, rows: list[dict[str, Any]], table: str = "otel_metrics_sum") -> None:
    """hw.status / hw.errors points as the nvml/neuron collectors export them (ARCHITECTURE.md contract).

    rows: {t, metric ('hw.status'|'hw.errors'), id, state?, value, host?, temporality? (1 delta, 2 cumulative),
    error_type? (default xid), xid? (default 79)}.
    """
    values = []
    for r in rows:
        res = (f"map('cloud.provider', '{r.get('provider', 'aws')}', 'cloud.region', '{r.get('region', 'us-east-1')}',"
               f" 'host.name', '{r.get('host', 'gpu-node-1')}')")
        attrs = {"hw.id": r["id"], "hw.type": r.get("type", "gpu")}
        if r["metric"] == "hw.status":
            attrs["hw.state"] = r["state"]
        else:
            etype = r.get("error_type", "xid")
            attrs["error.type"] = etype
            if etype == "xid":
                attrs["hw.gpu.xid"] = str(r.get("xid", 79))
        amap = "map(" + ", ".join(f"'{k}', '{v}'" for k, v in attrs.items()) + ")"
        if table == "otel_metrics_sum":
            values.append(f"({res}, 'infersight-agent', '{r['metric']}', {amap}, toDateTime({r['t']}), "
                          f"toDateTime({r['t']}), {float(r['value'])}, {r.get('temporality', 2)}, "
                          f"{'true' if r['metric'] == 'hw.errors' else 'false'})")
        else:
            values.append(f"({res}, 'infersight-agent', '{r['metric']}', {amap}, toDateTime({r['t']}), "
                          f"toDateTime({r['t']}), {float(r['value'])})")
    cols = ("ResourceAttributes, ServiceName, MetricName, Attributes, StartTimeUnix, TimeUnix, Value"
            + (", AggregationTemporality, IsMonotonic" if table == "otel_metrics_sum" else ""))
    store.execute(f"INSERT INTO `{store.database}`.{table} ({cols}){distinct()}VALUES " + ", ".join(values))


def hw_status(t: int, gpu: str, state: str = "ok", **kw) -> list[dict[str, Any]]:
    """One scrape of hw.status for a GPU: 1 for its current state, 0 for the others."""
    return [{"t": t, "metric": "hw.status", "id": gpu, "state": s, "value": 1 if s == state else 0, **kw}
            for s in ("ok", "degraded", "failed")]


class Receiver:
    """A real HTTP receiver on loopback that records every POST; `down` makes it answer 503."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict, dict]] = []
        self.down = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.down:
            return web.Response(status=503, text="maintenance")
        self.posts.append((json.loads(raw), dict(request.headers) | {"_raw": raw}))
        return web.Response(text="ok")

    @property
    def bodies(self) -> list[dict]:
        return [b for b, _ in self.posts]


@contextlib.asynccontextmanager
async def serve_receiver(port: int | None = None):
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()

