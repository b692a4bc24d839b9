"""Source precedence (docs/slo.md): an app's own gen_ai.server.* histograms next to its spans are not counted twice.

An OpenLIT-style application (the real OTel SDK, delta temporality) sends both a span per request and client-side
`gen_ai.server.request.duration` / `gen_ai.server.time_to_first_token` histograms without a server kind, through a
real gateway. The rollup keeps both (Source 'span' and 'app'); the latency SLI counts the spans, and the app's
histograms only where it sent no spans of that kind.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestServer
from tests.test_rollups import hist_row, insert

from infersight.config import ServerConfig
from infersight.gateway.app import create_app
from infersight.slo.evaluator import Evaluator
from support.slo import insert_latency, make_slo

pytest.importorskip("chdb")
RES = {"service.name": "chatbot", "host.name": "app-1", "cloud.provider": "azure", "cloud.region": "westeurope"}
DURATIONS = [0.3] * 8 + [2.0] * 2  # seconds: 2 of 10 over a 1 s threshold
TTFTS = [0.2] * 9 + [0.9]
# OpenTelemetry's GenAI semantic conventions' advised buckets (what OpenLIT-style instrumentations use).
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


@pytest.fixture
async def gateway_url(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.05), store), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def emit_like_openlit(url: str) -> None:
    """Runs in a thread: spans of 10 chat calls and the app's own delta histograms of the same calls."""
    import requests
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    session = requests.Session()
    session.trust_env = False  # loopback only
    resource = Resource(RES)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{url}/v1/metrics", session=session,
                           preferred_temporality={Histogram: AggregationTemporality.DELTA}),
        export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", session=session)))
    meter, tracer = meters.get_meter("openlit"), tracers.get_tracer("openlit")
    duration = meter.create_histogram("gen_ai.server.request.duration", unit="s",
                                      explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    ttft = meter.create_histogram("gen_ai.server.time_to_first_token", unit="s",
                                  explicit_bucket_boundaries_advisory=TTFT_BUCKETS)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}
    end = time.time_ns()
    for d, t in zip(DURATIONS, TTFTS, strict=True):
        span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attrs, start_time=end - int(d * 1e9))
        span.end(end_time=end)
        duration.record(d, attrs)
        ttft.record(t, attrs)  # the spans carry no TTFT attribute: for TTFT the app's histogram is all there is
    meters.shutdown()
    tracers.shutdown()


async def wait_sources(store, want: dict[tuple[str, str], int]) -> None:
    deadline = time.monotonic() + 30
    while True:
        rows = store.query(f"SELECT Source, Kind, toUInt64(sum(Count)) AS n "
                           f"FROM `{store.database}`.infersight_latency_1m GROUP BY Source, Kind")
        got = {(r["Source"], r["Kind"]): int(r["n"]) for r in rows}
        if got == want:
            return
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.1)


async def test_app_histograms_next_to_their_spans_are_not_counted_twice(store, gateway_url):
    await asyncio.to_thread(emit_like_openlit, gateway_url)
    # Both paths reached the rollup: without precedence, e2e would count 20 requests.
    await wait_sources(store, {("span", "e2e"): 10, ("app", "e2e"): 10, ("app", "ttft"): 10})
    (server_kind,) = {r["ServerKind"] for r in store.query(
        f"SELECT DISTINCT ServerKind FROM `{store.database}`.infersight_latency_1m WHERE Source = 'app'")}
    assert server_kind == ""
    # Another app's histograms without any spans still count.
    now = int(time.time())
    insert(store, "otel_metrics_histogram", [{
        **hist_row("gen_ai.server.request.duration", [0.5, 1.0, 2.0], [1, 1, 1, 0], 2.5,
                   {"gen_ai.request.model": "gpt-4o"}, time=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))),
        "ResourceAttributes": {**RES, "host.name": "app-2"}}])

    e2e = make_slo(name="e2e", sli={"latency": {"kind": "e2e", "threshold_seconds": 1.0}}, objective=99,
                   window={"rolling": "1h"})
    ttft = make_slo(name="ttft", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.5}}, objective=99,
                    window={"rolling": "1h"})
    results = {r.slo.name: r for r in Evaluator(store).evaluate([e2e, ttft], now + 120)}
    r = results["e2e"]
    assert r.error is None and r.period is not None
    # app-1: its 10 spans (2 over 1 s), not also its histogram (whose 0.64/1.28 bounds hold no 1 s boundary);
    # app-2: its histogram, 1 of 3 over 1 s.
    assert (r.period.events, r.period.consumed) == (13, 3)
    t = results["ttft"]
    assert t.error is None and t.period is not None and (t.period.events, t.period.consumed) == (10, 1)


def test_a_threshold_missing_from_a_layout_says_whose_layout(store):
    now = 1_780_000_020 - (1_780_000_020 % 86400) + 86400
    insert_latency(store, now - 60, "e2e", [0.64, 1.28], [5, 1, 0], server_kind="vllm")
    slo = make_slo(sli={"latency": {"kind": "e2e", "threshold_seconds": 1.0}})
    (res,) = Evaluator(store).evaluate([slo], now)
    assert res.state == "error" and res.error is not None
    assert "1.0 s" in res.error and "(vllm)" in res.error and "[0.64, 1.28]" in res.error
