"""Accelerator and agent dashboards over data that took the real path: collector → OTLP → gateway → chDB.

The NVML collector replays the real H200 capture (infersight.testing.nvml_replay); its points are encoded by the
agent's OTLP encoder and posted to the gateway over loopback, so attribute names, kinds, tables and
timestamps are exactly what a deployment stores.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from infersight.config import parse_config
from test_dashboards import Runner, load

RESOURCE = {"service.name": "infersight-agent", "host.name": "gpu-node-7", "cloud.provider": "gcp",
            "cloud.region": "us-central1"}


@pytest.fixture
async def gateway(store, port):
    from infersight.gateway.app import create_app
    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.05,
                                   "storage": {"database": store.database}}})
    runner = web.AppRunner(create_app(cfg.server, store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def post_points(url: str, points, store, table_rows_expected: int, resource: dict = RESOURCE,
                      scope: str = "infersight.collectors.nvml", seconds_ago: int = 0) -> None:
    """Export points as the agent does (OTLP protobuf), stamped `seconds_ago`, and wait until stored."""
    from infersight.agent.loop import ScopedPoints
    from infersight.exporters.encode import encode, to_metrics_data

    now = time.time_ns()
    body = encode(to_metrics_data([ScopedPoints(scope, points)], resource,
                                  default_start_ns=now - 60 * 10**9, now_ns=now - seconds_ago * 10**9))
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/metrics", data=body,
                      headers={"Content-Type": "application/x-protobuf"}) as r:
        assert r.status == 200, await r.text()
    db = store.database
    for _ in range(200):  # the batch writer flushes every 50 ms
        rows = store.query(f"SELECT (SELECT count() FROM `{db}`.otel_metrics_gauge) + "
                           f"(SELECT count() FROM `{db}`.otel_metrics_sum) AS n")
        if int(rows[0]["n"]) >= table_rows_expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not store the points")


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(minutes=10), now + timedelta(minutes=1)


async def test_accelerator_dashboard_over_replayed_h200(store, gateway):
    from infersight.collectors.nvml import NvmlCollector
    from infersight.testing.nvml_replay import ReplayNvml, load_capture

    replay = ReplayNvml(load_capture())
    collector = NvmlCollector(replay, clock=replay.clock, proc_root=Path("/nonexistent"))
    steps = replay.steps("matmul_bf16")
    emitted = []
    for step in (steps[len(steps) // 2] - 5, steps[len(steps) // 2] + 5):  # GPM needs two samples
        replay.seek(step)
        emitted = list(collector.collect())
    gauges = [p for p in emitted if p.kind == "gauge"]
    await post_points(gateway, emitted, store, len(emitted))

    frm, to = _window()
    run = Runner(store, load("infersight-accelerators.json"), frm=frm, to=to)
    assert run.options["cloud_provider"] == ["gcp"] and run.options["host"] == ["gpu-node-7"]

    def emitted_value(name, **attrs):
        (v,) = [p.value for p in gauges if p.name == name
                and all(p.attributes.get(k) == w for k, w in attrs.items())]
        return v

    util = emitted_value("hw.gpu.utilization", **{"hw.gpu.task": "general"})
    assert util > 0.5  # the capture's bf16 matmul keeps the GPU busy
    (r,) = run.panel_rows("Mean utilisation")
    assert float(r["utilization"]) == pytest.approx(util)
    (r,) = run.panel_rows("Power draw")
    assert float(r["watts"]) == pytest.approx(emitted_value("hw.power"))
    (r,) = run.panel_rows("Tensor pipe activity")
    assert float(r["value"]) == pytest.approx(emitted_value("infersight.gpu.pipe.utilization",
                                                            **{"infersight.gpu.pipe": "tensor"}))
    (r,) = run.panel_rows("DRAM bandwidth")
    assert float(r["value"]) == pytest.approx(emitted_value("infersight.gpu.dram.activity"))
    (r,) = run.panel_rows("Accelerators not ok")
    assert int(r["not_ok"]) == 0
    assert run.panel_rows("Devices not ok") == []
    (mem,) = run.panel_rows("Memory used")
    (usage,) = [p.value for p in emitted if p.name == "hw.gpu.memory.usage" and "hw.parent" not in p.attributes]
    assert float(mem["bytes"]) == pytest.approx(usage)
    temps = run.panel_rows("Temperature")
    assert temps and all(20 < float(t["value"]) < 100 for t in temps)


async def test_accelerator_dashboard_over_a_real_neuron_monitor_document(store, gateway):
    """The trn1.2xlarge neuron-monitor capture (tests/fixtures/neuron) through the Neuron collector."""
    from infersight.collectors.neuron import NeuronCollector

    doc = Path(__file__).parent / "fixtures" / "neuron" / "neuron-monitor_trn1.2xlarge_wandb-test.json"
    collector = NeuronCollector(["unused"])
    collector.close()  # fed directly: no neuron-monitor child
    collector.feed(json.dumps(json.loads(doc.read_text())))
    emitted = list(collector.collect())
    resource = {**RESOURCE, "host.name": "trn-node-1", "cloud.provider": "aws"}
    await post_points(gateway, emitted, store, len(emitted), resource, "infersight.collectors.neuron")

    frm, to = _window()
    run = Runner(store, load("infersight-accelerators.json"), frm=frm, to=to)
    assert run.options["host"] == ["trn-node-1"]
    util = {r["series"]: float(r["value"]) for r in run.panel_rows("Utilisation")}
    assert util == {"trn-node-1 nc0": pytest.approx(0.013631567613356375), "trn-node-1 nc1": 0.0}
    (r,) = run.panel_rows("Mean utilisation")
    assert float(r["utilization"]) == pytest.approx(0.013631567613356375 / 2)
    device = sum(p.value for p in emitted if p.name == "infersight.neuron.memory.usage"
                 and p.attributes["infersight.neuron.memory.location"] == "neuron_device")
    assert device == 196608 + 101125344 + 943608 + 32768  # the capture's per-core categories
    (mem,) = run.panel_rows("Neuron device memory")
    assert (mem["series"], float(mem["bytes"])) == ("trn-node-1", device)
    # one cumulative sample per series, started (agent start) inside the range: its value is the increase
    errors = run.panel_rows("Neuron execution errors/s")
    assert {r["series"] for r in errors if float(r["per_second"]) > 0} == {"trn-node-1 generic"}
    assert sum(float(r["per_second"]) for r in errors) * 60 == pytest.approx(23654)


# ---------------------------------------------------------------- fleet from GenAI spans (real OTel SDK)

def send_genai_spans(url: str, model: str = "llama-3-70b", n: int = 20, errors: int = 2,
                     provider: str = "vllm", cost_usd: float | None = 0.0015) -> None:
    """An instrumented application: n chat spans of 0.75 s with TTFT 0.12 s, tokens and reported cost."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    tracer_provider = TracerProvider(resource=Resource.create({
        "service.name": "chat-app", "host.name": "app-1", "cloud.provider": "aws", "cloud.region": "us-east-1"}))
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=10)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("chat-app")
    end = time.time_ns()
    for i in range(n):
        span = tracer.start_span(f"chat {model}", start_time=end - 750_000_000, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider,
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50,
            "gen_ai.server.time_to_first_token": 0.12,
            **({"gen_ai.usage.cost": cost_usd} if cost_usd is not None else {})})
        if i < errors:
            span.set_status(Status(StatusCode.ERROR, "upstream 500"))
        span.end(end_time=end)
    tracer_provider.shutdown()


async def wait_rows(store, table: str, expected: int) -> None:
    for _ in range(200):
        rows = store.query(f"SELECT count() AS n FROM `{store.database}`.`{table}`")
        if int(rows[0]["n"]) >= expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{table}: fewer than {expected} rows arrived")


async def test_fleet_dashboard_over_genai_spans(store, gateway):
    await asyncio.to_thread(send_genai_spans, gateway)
    await wait_rows(store, "otel_traces", 20)
    frm, to = _window()
    run = Runner(store, load("infersight-fleet.json"), frm=frm, to=to)
    assert run.options == {"cloud_provider": ["aws"], "cloud_region": ["us-east-1"], "model": ["llama-3-70b"]}
    (row,) = run.panel_rows("By cloud / region / model")
    assert (row["Cloud"], row["Region"], row["Model"], int(row["Requests"])) == ("aws", "us-east-1", "llama-3-70b", 20)
    assert float(row["Error ratio"]) == pytest.approx(0.1)
    # spans on the rollup's span grid: 0.12 s in (0.115, 0.12], 0.75 s in (0.725, 0.75]; rank 19 of 20
    assert float(row["p95 TTFT"]) == pytest.approx(0.115 + 0.005 * 19 / 20)
    assert float(row["p95 e2e"]) == pytest.approx(0.725 + 0.025 * 19 / 20)
    assert (int(row["Input tokens"]), int(row["Output tokens"])) == (2000, 1000)
    assert float(row["Reported spend"]) == pytest.approx(0.03)
    assert float(row["$/1M tokens"]) == pytest.approx(0.03 / 3000 * 1e6)


async def test_slo_panels_agree_with_the_slo_engine(store, gateway, tmp_path):
    """The real engine evaluates the rollups and persists its alerts; the Grafana panels read them back."""
    from infersight.slo.engine import SloEngine
    from infersight.slo.model import load_slos
    from infersight.slo.settings import SloSettings

    spec = tmp_path / "slo.yaml"
    spec.write_text("apiVersion: infersight/v1\nkind: SLO\nmetadata: {name: chat-availability}\n"
                    "spec:\n  sli: {ratio: {}}\n  objective_percent: 99.9\n  window: {rolling: 30d}\n"
                    "  group_by: [cloud.provider, cloud.region, gen_ai.request.model]\n  min_events: 10\n")
    await asyncio.to_thread(send_genai_spans, gateway, "llama-3-70b", 40, 4)
    await wait_rows(store, "infersight_requests_1m", 1)
    engine = SloEngine(store, SloSettings(paths=(spec,)), load_slos([spec]))
    await asyncio.to_thread(engine.evaluate)
    firing = {a["labels"]["tier"] for a in engine.alerts_view() if a["state"] == "firing"}
    assert "page-fast" in firing

    frm, to = _window()
    run = Runner(store, load("infersight-fleet.json"), frm=frm, to=to)
    rows = run.panel_rows("SLO alerts (SLO engine)")
    assert {r["Tier"] for r in rows if r["State"] == "firing"} == firing
    assert {r["Group"] for r in rows} == {
        "cloud_provider=aws, cloud_region=us-east-1, gen_ai_request_model=llama-3-70b"}
    (burn,) = run.panel_rows("Burn rate by cloud / region / model")
    assert float(burn["Burn 1h"]) == pytest.approx(0.1 / 0.001)  # the engine's 100× (see the web UI test)


# ---------------------------------------------------------------- fleet from a scraped vLLM server

async def test_fleet_dashboard_over_a_scraped_vllm_server(store, gateway):
    """A vLLM-style exposition (prometheus_client) scraped twice by the inference collector; its deltas go
    through the gateway and the rollup views into the fleet panels."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from infersight.collectors.inference import Endpoint, InferenceCollector

    reg = CollectorRegistry()
    done = Counter("vllm:request_success", "finished", ["finished_reason", "model_name"], registry=reg)
    prompt = Counter("vllm:prompt_tokens", "prompt", ["model_name"], registry=reg)
    gen = Counter("vllm:generation_tokens", "generated", ["model_name"], registry=reg)
    ttft = Histogram("vllm:time_to_first_token_seconds", "ttft", ["model_name"], registry=reg,
                     buckets=(0.05, 0.1, 0.25, 0.5, 1.0))
    e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", ["model_name"], registry=reg,
                    buckets=(0.5, 1.0, 2.5, 5.0))
    m = "meta-llama/Llama-3.1-8B"
    done.labels("stop", m).inc(1000)  # history before the first scrape: not counted
    ttft.labels(m).observe(0.3)
    e2e.labels(m).observe(3.0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = generate_latest(reg)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        collector = InferenceCollector([Endpoint(url=f"http://127.0.0.1:{srv.server_address[1]}/metrics")])
        await asyncio.to_thread(lambda: list(collector.collect()))  # baseline
        done.labels("stop", m).inc(50)
        done.labels("abort", m).inc(5)
        prompt.labels(m).inc(5000)
        gen.labels(m).inc(2500)
        for _ in range(55):
            ttft.labels(m).observe(0.08)
            e2e.labels(m).observe(0.9)
        points = await asyncio.to_thread(lambda: list(collector.collect()))
    finally:
        srv.shutdown()
        srv.server_close()
    resource = {**RESOURCE, "host.name": "node-a", "cloud.region": "europe-west4"}
    await post_points(gateway, points, store, 1, resource, "infersight.collectors.inference")
    await wait_rows(store, "infersight_latency_1m", 2)

    frm, to = _window()
    run = Runner(store, load("infersight-fleet.json"), frm=frm, to=to)
    (row,) = run.panel_rows("By cloud / region / model")
    assert (row["Cloud"], row["Region"], row["Model"], int(row["Requests"])) == ("gcp", "europe-west4", m, 55)
    assert float(row["Error ratio"]) == pytest.approx(5 / 55)  # vLLM's abort is a bad request
    assert (int(row["Input tokens"]), int(row["Output tokens"])) == (5000, 2500)
    # the server's own buckets (0.05, 0.1] and (0.5, 1.0], as Prometheus' histogram_quantile reads them
    assert float(row["p95 TTFT"]) == pytest.approx(0.05 + 0.05 * 0.95)
    assert float(row["p95 e2e"]) == pytest.approx(0.5 + 0.5 * 0.95)
    assert row["Reported spend"] is None and row["$/1M tokens"] is None  # self-hosted: nothing reported
