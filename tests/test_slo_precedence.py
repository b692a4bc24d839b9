"""Source precedence (docs/slo.md) in the request-rollup readers: the ratio and cost SLIs (and `compare`, in
tests/test_compare.py) count an OpenLIT-style app's requests and tokens once.

The app (the real OTel SDK, delta temporality, through a real gateway) sends a span per request with its token
usage and, of the same requests, its own `gen_ai.client.token.usage` and request counters without a server kind.
The request rollup keeps both (Source 'span' and 'app'); readers count the spans, and an app's counters only
where it sent no spans.
"""
from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import pytest
from aiohttp.test_utils import TestServer

from infersight import semconv as sc
from infersight.config import ServerConfig
from infersight.gateway.app import create_app
from infersight.slo.evaluator import Evaluator
from support.slo import make_slo

pytest.importorskip("chdb")
MODEL = "gpt-4o"
RES = {"service.name": "chatbot", "host.name": "app-1", "cloud.provider": "azure", "cloud.region": "westeurope"}
# 10 chat calls, the first failed (its span's status; the app's own request counter has no outcome):
# (input, output) tokens each.
CALLS = [(1000 + 100 * i, 200 + 10 * i) for i in range(10)]
FAILED = {0}
INPUT, OUTPUT = sum(i for i, _ in CALLS), sum(o for _, o in CALLS)  # 14 500, 2 450
SECONDS = 0.4  # every call's duration
# OpenTelemetry's GenAI semantic conventions' advised buckets (what OpenLIT-style instrumentations use).
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
# Another app on another host: counters only, no spans (they count).
OTHER = {"requests": 4, "bad": 1, "input": 4000, "output": 400}


@pytest.fixture
async def gateway_url(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.05), store), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def _sdk(url: str, resource: dict):
    import requests
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    session = requests.Session()
    session.trust_env = False  # loopback only
    res = Resource(resource)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{url}/v1/metrics", session=session,
                           preferred_temporality={Counter: AggregationTemporality.DELTA,
                                                  Histogram: AggregationTemporality.DELTA}),
        export_interval_millis=3_600_000)
    meters = MeterProvider(resource=res, metric_readers=[reader])
    tracers = TracerProvider(resource=res)
    tracers.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", session=session)))
    return meters, tracers


def emit_like_openlit(url: str) -> None:
    """Runs in a thread: app-1's spans and its own counters and duration histogram of the same 10 calls;
    app-2's counters only."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attrs = {sc.OPERATION_NAME: "chat", sc.GEN_AI_SYSTEM: "openai", sc.MODEL: MODEL}
    meters, tracers = _sdk(url, RES)
    meter, tracer = meters.get_meter("openlit"), tracers.get_tracer("openlit")
    tokens = meter.create_counter(sc.TOKEN_USAGE, unit="{token}")
    reqs = meter.create_counter(sc.INFERENCE_REQUESTS, unit="{request}")
    duration = meter.create_histogram("gen_ai.server.request.duration", unit="s",
                                      explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    end = time.time_ns()
    for n, (inp, out) in enumerate(CALLS):
        span = tracer.start_span(f"chat {MODEL}", kind=SpanKind.CLIENT, start_time=end - int(SECONDS * 1e9),
                                 attributes={**attrs, sc.USAGE_INPUT_TOKENS: inp, sc.USAGE_OUTPUT_TOKENS: out})
        if n in FAILED:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
        tokens.add(inp, {**attrs, sc.TOKEN_TYPE: "input"})
        tokens.add(out, {**attrs, sc.TOKEN_TYPE: "output"})
        reqs.add(1, attrs)  # no outcome: the app counts every call, failed or not, as a request
        duration.record(SECONDS, attrs)
    meters.shutdown()
    tracers.shutdown()

    meters, _ = _sdk(url, {**RES, "host.name": "app-2"})
    meter = meters.get_meter("openlit")
    meter.create_counter(sc.TOKEN_USAGE).add(OTHER["input"], {**attrs, sc.TOKEN_TYPE: "input"})
    meter.create_counter(sc.TOKEN_USAGE).add(OTHER["output"], {**attrs, sc.TOKEN_TYPE: "output"})
    r = meter.create_counter(sc.INFERENCE_REQUESTS)
    r.add(OTHER["requests"] - OTHER["bad"], {**attrs, sc.OUTCOME: "good"})
    r.add(OTHER["bad"], {**attrs, sc.OUTCOME: "bad"})
    meters.shutdown()


async def emitted(store, url: str) -> None:
    """Emit, then wait until both paths reached the request rollup (without precedence: 24 requests)."""
    await asyncio.to_thread(emit_like_openlit, url)
    want = {("span", "app-1"): (10, 1, INPUT, OUTPUT), ("app", "app-1"): (10, 0, INPUT, OUTPUT),
            ("app", "app-2"): (OTHER["requests"], OTHER["bad"], OTHER["input"], OTHER["output"])}
    deadline = time.monotonic() + 30
    while True:
        rows = store.query(f"SELECT Source, HostName, sum(Requests) AS r, sum(BadRequests) AS b, "
                           f"sum(InputTokens) AS i, sum(OutputTokens) AS o "
                           f"FROM `{store.database}`.infersight_requests_1m GROUP BY Source, HostName")
        got = {(x["Source"], x["HostName"]): tuple(int(x[k]) for k in "rbio") for x in rows}
        lat = store.query(f"SELECT Source, toUInt64(sum(Count)) AS n FROM `{store.database}`.infersight_latency_1m "
                          "WHERE Kind = 'e2e' GROUP BY Source")
        got["latency"] = {x["Source"]: int(x["n"]) for x in lat}
        if got == {**want, "latency": {"span": 10, "app": 10}}:
            return
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.1)


async def test_ratio_sli_counts_an_apps_requests_once(store, gateway_url):
    await emitted(store, gateway_url)
    slo = make_slo(name="avail", objective=99, window={"rolling": "1h"}, group_by=["host.name"])
    now = int(time.time()) + 120
    res = {dict(r.group)["host.name"]: r for r in Evaluator(store).evaluate([slo], now)}
    # app-1: its 10 spans, 1 failed (not also its counter's 10); app-2: its counter, 1 of 4 bad.
    assert (res["app-1"].period.events, res["app-1"].period.consumed) == (10, 1)
    assert (res["app-2"].period.events, res["app-2"].period.consumed) == (4, 1)
    # One-minute slices: app-1's one minute holds its spans' 10 requests, 1 bad: 90 % misses a 92 % slice target
    # (counted with its counter's 10 good ones too, the minute would read 95 %, or a second, good minute).
    sliced = make_slo(name="avail-ts", objective=99, window={"rolling": "1h"}, budgeting="timeslices",
                      timeslice={"target_percent": 92}, group_by=["host.name"])
    (r,) = [x for x in Evaluator(store).evaluate([sliced], now) if dict(x.group)["host.name"] == "app-1"]
    assert r.error is None and (r.period.events, r.period.consumed) == (1, 1)


async def test_cost_sli_counts_an_apps_tokens_once(store, gateway_url):
    await emitted(store, gateway_url)
    prices = {MODEL: {"input_usd_per_million": 2.5, "output_usd_per_million": 10}}
    spend = make_slo(name="spend", sli={"cost": {"metric": "spend_usd", "budget_usd": 100, "prices": prices}},
                     window={"rolling": "1h"}, group_by=["host.name"])
    unit = make_slo(name="unit", sli={"cost": {"metric": "usd_per_million_tokens", "target_usd_per_million_tokens": 5,
                                               "prices": prices}}, window={"rolling": "1h"})
    now = int(time.time()) + 120
    results = Evaluator(store).evaluate([spend, unit], now)
    by_host = {dict(r.group)["host.name"]: r for r in results if r.slo.name == "spend"}

    def usd(inp: int, out: int) -> Fraction:  # the reference: list price x tokens
        return Fraction(inp) * Fraction("2.5") / 10**6 + Fraction(out) * 10 / 10**6

    assert by_host["app-1"].error is None
    assert by_host["app-1"].period.consumed == usd(INPUT, OUTPUT)  # $0.06075, not twice that
    assert by_host["app-1"].period.events == 10
    assert by_host["app-2"].period.consumed == usd(OTHER["input"], OTHER["output"])
    (u,) = [r for r in results if r.slo.name == "unit"]
    tokens = INPUT + OUTPUT + OTHER["input"] + OTHER["output"]
    assert u.sli == (usd(INPUT, OUTPUT) + usd(OTHER["input"], OTHER["output"])) / tokens * 10**6


async def test_fleet_dashboard_counts_an_app_once(store, gateway_url):
    """The Grafana fleet dashboard's SQL (dashboards/build.py) reads the rollups with the same precedence."""
    from datetime import UTC, datetime

    from infersight import quantiles
    from test_dashboards import Runner, load

    await emitted(store, gateway_url)
    now = int(time.time())
    runner = Runner(store, load("infersight-fleet.json"), frm=datetime.fromtimestamp(now // 60 * 60 - 3600, UTC),
                    to=datetime.fromtimestamp(now // 60 * 60 + 120, UTC))
    (row,) = runner.panel_rows("By cloud / region / model")
    # app-1's 10 spans and app-2's counters; not also app-1's own counters (24 requests).
    assert (row["Cloud"], row["Model"], int(row["Requests"])) == ("azure", MODEL, 10 + OTHER["requests"])
    assert int(row["Input tokens"]) == INPUT + OTHER["input"] and int(row["Output tokens"]) == OUTPUT + OTHER["output"]
    # p95 e2e over the spans' layout alone: the reference is histogram_quantile over the stored span rows.
    (span,) = store.query(f"SELECT Bounds AS b, sumForEach(BucketCounts) AS c FROM `{store.database}`."
                          "infersight_latency_1m WHERE Kind = 'e2e' AND Source = 'span' GROUP BY Bounds")
    ref = quantiles.histogram_quantile(0.95, span["b"], [int(n) for n in span["c"]])
    assert ref == pytest.approx(0.3995) and float(row["p95 e2e"]) == pytest.approx(ref)
