"""The server's own telemetry at GET /metrics (Prometheus exposition, one registry per app).

Like the OpenTelemetry Collector's own `/metrics`: what arrived, what was refused and why, the write
queue, flushes and store errors, request and query latency, the SLO engine (evaluation time and
outcome, instances per state, notifications by outcome and pending, silences), and the SLO state
series of `slo.prometheus` (Sloth's names). Without tokens the endpoint is open on loopback like
every read API; with tokens it needs the `read` scope (docs/security.md): a Prometheus job sends
one with `authorization: {credentials_file: ...}`.

Counting is by subscription: the gateway's ingest observers (both OTLP transports), the writer's
flush observers, an HTTP middleware for latency by route; nothing here is global, so several apps
in one process (tests) count apart.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infersight.config import Config
from infersight.gateway.app import GATEWAY, WRITER
from infersight.gateway.clickhouse_http import CLICKHOUSE
from infersight.gateway.grpc import GRPC
from infersight.slo import prometheus as slo_prometheus
from infersight.slo.service import ENGINE

CONTENT_TYPE = "text/plain; version=0.0.4"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class ServerMetrics:
    """The registry and the instruments; `attach` wires them to the app's parts."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("infersight_server_otlp_requests", "OTLP export requests by signal and outcome "
                                "(HTTP status; gRPC calls are counted under the equivalent status)",
                                ["signal", "status"], registry=r)
        self.points = Counter("infersight_server_otlp_items_accepted", "Data points, spans or log records "
                              "accepted (rows written)", ["signal"], registry=r)
        self.rejected_items = Counter("infersight_server_otlp_items_rejected", "Items dropped from accepted "
                                      "requests (partial success)", ["signal"], registry=r)
        self.refused = Counter("infersight_server_otlp_refused", "OTLP requests refused, by reason",
                               ["signal", "reason"], registry=r)
        self.flushes = Counter("infersight_server_flushes", "Write-queue flush attempts by outcome",
                               ["outcome"], registry=r)
        self.flush_seconds = Histogram("infersight_server_flush_duration_seconds", "Time per flush attempt",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.flush_rows = Histogram("infersight_server_flush_rows", "Rows per flush attempt",
                                    buckets=SIZE_BUCKETS, registry=r)
        self.store_errors = Counter("infersight_server_store_errors", "Store operations that failed",
                                    ["operation"], registry=r)
        self.http = Histogram("infersight_server_http_request_duration_seconds", "HTTP requests by route "
                              "(the query API is route=/api/v1/query)", ["route", "method", "status"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.queries = Histogram("infersight_server_query_duration_seconds", "SQL queries of the query API and "
                                 "the ClickHouse HTTP interface", ["interface", "outcome"],
                                 buckets=LATENCY_BUCKETS, registry=r)

    def ingested(self, signal: str, status: int, points: int, rejected: int, reason: str) -> None:
        self.requests.labels(signal, str(status)).inc()
        if points:
            self.points.labels(signal).inc(points)
        if rejected:
            self.rejected_items.labels(signal).inc(rejected)
        if status != 200:
            self.refused.labels(signal, reason or str(status)).inc()

    def flushed(self, outcome: str, rows: int, seconds: float) -> None:
        self.flushes.labels(outcome).inc()
        self.flush_seconds.observe(seconds)
        self.flush_rows.observe(rows)
        if outcome == "failed":
            self.store_errors.labels("insert").inc()

    def query(self, interface: str, outcome: str, seconds: float) -> None:
        self.queries.labels(interface, outcome).observe(seconds)


METRICS = web.AppKey("infersight_server_metrics", ServerMetrics)


class _Live(Collector):
    """Values read at scrape time: queue rows, SLO instances by state, silences."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        writer = self.app.get(WRITER)
        if writer is not None:
            g = GaugeMetricFamily("infersight_server_queue_rows", "Rows waiting to be written (queued, in a "
                                  "flush or kept for retry)")
            g.add_metric([], writer.queued_rows)
            yield g
            cap = GaugeMetricFamily("infersight_server_queue_max_rows", "server.max_queue_rows")
            cap.add_metric([], writer.max_queue_rows)
            yield cap
            down = GaugeMetricFamily("infersight_server_store_down", "1 while the last write failed")
            down.add_metric([], int(writer.down))
            yield down
        up = GaugeMetricFamily("infersight_server_receiver_up", "1 when the receiver listens", labels=["receiver"])
        up.add_metric(["otlp_http"], 1)
        if GRPC in self.app:
            up.add_metric(["otlp_grpc"], int(self.app[GRPC].server is not None))
        if CLICKHOUSE in self.app:
            up.add_metric(["clickhouse_http"], int(self.app[CLICKHOUSE].runner is not None))
        yield up
        engine = self.app.get(ENGINE)
        if engine is not None:
            now = engine.clock()
            with engine.lock:
                results = list(engine.results)
                active = sum(s.active(now) for s in engine.silences)
                slos = len(engine.slos)
            n = GaugeMetricFamily("infersight_slo_instances", "SLO instances of the last evaluation by state",
                                  labels=["state"])
            for state in slo_prometheus.STATES:
                n.add_metric([state], sum(r.state == state for r in results))
            yield n
            loaded = GaugeMetricFamily("infersight_slo_loaded", "SLOs loaded")
            loaded.add_metric([], slos)
            yield loaded
            sil = GaugeMetricFamily("infersight_slo_silences_active", "Silences in effect now")
            sil.add_metric([], active)
            yield sil
            yield from engine.registry.collect()  # evaluations, duration, notifications, outbox, alerts


async def handler(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(request.app[METRICS].registry), headers={"Content-Type": CONTENT_TYPE})


def attach(app: web.Application) -> None:
    """GET /metrics over whatever parts `app` has (attach after them); the latency middleware; startup subscriptions."""
    metrics = ServerMetrics()
    app[METRICS] = metrics
    metrics.registry.register(_Live(app))
    if ENGINE in app:
        metrics.registry.register(slo_prometheus.SloStateCollector(lambda: app.get(ENGINE)))
    if GATEWAY in app:
        app[GATEWAY].observers.append(metrics.ingested)
    if WRITER in app:
        app[WRITER].flush_observers.append(metrics.flushed)
    if CLICKHOUSE in app:
        app[CLICKHOUSE].http.observers.append(metrics.query)

    @web.middleware
    async def timed(request: web.Request, handler):
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            elapsed = time.perf_counter() - started
            metrics.http.labels(route, request.method, str(status)).observe(elapsed)
            if route == "/api/v1/query":
                metrics.query("query_api", "ok" if status == 200 else str(status), elapsed)

    app.middlewares.append(timed)
    app.router.add_get("/metrics", handler)


def loaded_summary(cfg: Config, app: web.Application) -> str:
    """The startup line: storage back end, receivers and where they listen, SLOs, price catalogs, tokens."""
    sc = cfg.server
    store = sc.storage.backend + (f" at {sc.data_dir}" if sc.storage.backend == "embedded" else
                                  f" at {sc.storage.clickhouse.url if sc.storage.clickhouse else '?'}")
    receivers = [f"otlp-http {sc.listen}"]
    if GRPC in app:
        g = app[GRPC]
        receivers.append(f"otlp-grpc {g.listen}" + ("" if g.server is not None else " (not listening)"))
    if CLICKHOUSE in app:
        c = app[CLICKHOUSE]
        receivers.append(f"clickhouse-http {c.listen}" + ("" if c.runner is not None else " (not listening)"))
    engine = app.get(ENGINE)
    slos = f"{len(engine.slos)} SLOs from {len(cfg.slo.paths)} paths" if engine is not None else "no SLO engine"
    tokens = (1 if sc.auth_token else 0) + len(sc.tokens)
    return (f"loaded: storage {store} (database {sc.storage.database}); receivers: {', '.join(receivers)}; "
            f"{slos}; {len(cfg.cost.catalogs)} price catalogs; {tokens} tokens")
