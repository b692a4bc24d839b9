"""A real LiteLLM Router routed by infersight's hints, over two local fake OpenAI-compatible backends.

The hint source is a real infersight server in-process: the OTLP receiver (GenAI spans from the backends'
own OTel SDK instrumentation, exported over OTLP/HTTP), the rollups on chDB, the SLO engine (evaluating every
0.2 s) and GET /api/v1/routing (cached 0.3 s). A TTFT regression injected into A moves new requests to B
within one evaluation interval plus one hint refresh; once A recovers and its burn falls, traffic returns.
Loopback only: LiteLLM uses its bundled model cost map (LITELLM_LOCAL_MODEL_COST_MAP) and fetches nothing.
"""
from __future__ import annotations

import asyncio
import json
import os
import time

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported: no remote cost map
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # bundled catalogs and tokenizers only
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # LiteLLM's tokenizer look-up must not reach the Hugging Face Hub
os.environ.setdefault("LITELLM_TELEMETRY", "False")
import litellm  # after the environment above (make install installs the litellm extra)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from infersight.compare import api as compare_api
from infersight.compare.settings import CompareSettings
from infersight.config import parse_config
from infersight.gateway.app import attach_receiver, base_app
from infersight.integrations.litellm import install
from infersight.slo import service as slo_service
from support.slo import slo_doc

MODEL = "llama-3.1-8b"
EVAL_SECONDS = 0.2
SERVER_REFRESH_SECONDS = 0.3
CLIENT_REFRESH_SECONDS = 0.1
A_KEY, B_KEY = "azure/eastus2/azure.ai.openai", "aws/us-east-1/aws.bedrock"
PRICES = """
api:
  - {provider: azure.ai.openai, model: llama-3.1-8b, input_usd_per_million: 0.20, output_usd_per_million: 0.40}
  - {provider: aws.bedrock, model: llama-3.1-8b, input_usd_per_million: 0.30, output_usd_per_million: 0.60}
"""


class Clock:
    """Wall time plus an offset the test moves forward (windows pass without waiting for them)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Backend:
    """An OpenAI-compatible chat endpoint that streams after `ttft_seconds` and records one GenAI span per
    request with its own OTel SDK (as an instrumented server would), exported to infersight over OTLP."""

    def __init__(self, name: str, cloud: str, region: str, provider: str, otlp: str, clock: Clock) -> None:
        self.name, self.provider, self.clock = name, provider, clock
        self.ttft_seconds = 0.01
        self.served = 0
        self.tracer_provider = TracerProvider(resource=Resource.create(
            {"service.name": f"backend-{name}", "cloud.provider": cloud, "cloud.region": region,
             "host.name": f"{name}-1"}))
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces", timeout=5),
                                            schedule_delay_millis=50)
        self.tracer_provider.add_span_processor(self.processor)
        self.tracer = self.tracer_provider.get_tracer("fake-backend")
        self.url = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        start = self.clock()
        ttft = self.ttft_seconds
        await asyncio.sleep(ttft)
        self.served += 1

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            d = {"id": "c1", "object": "chat.completion.chunk", "created": int(start), "model": body["model"],
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(d)}\n\n".encode()
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for part in (chunk({"role": "assistant"}), chunk({"content": self.name}), chunk({}, "stop")):
                await resp.write(part)
            await resp.write(b"data: [DONE]\n\n")
        else:
            resp = web.json_response({"id": "c1", "object": "chat.completion", "created": int(start),
                                      "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": self.name}}],
                                      "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
        span = self.tracer.start_span("chat " + MODEL, start_time=int(start * 1e9), attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL, "gen_ai.provider.name": self.provider,
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
            "gen_ai.server.time_to_first_token": ttft})
        span.end(end_time=int((start + ttft + 0.001) * 1e9))
        return resp

    async def flush(self) -> None:
        await asyncio.to_thread(self.processor.force_flush, 5000)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _cfg(tmp_path, store, hook_url: str):
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "ttft.yaml").write_text(yaml.safe_dump(slo_doc(
        name="ttft", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.5}}, objective=90,
        window={"rolling": "1h"}, group_by=["cloud.provider", "cloud.region", "infersight.server.kind"],
        alerting={"catalogue": "none", "no_data": False, "tiers": [
            {"name": "page-fast", "severity": "page", "long_window": "5m", "short_window": "1m", "factor": 2}]})))
    (tmp_path / "prices.yaml").write_text(PRICES)
    return parse_config({
        "server": {"storage": {"database": store.database}, "flush_interval_seconds": 0.05},
        "slo": {"paths": [str(specs)], "interval_seconds": EVAL_SECONDS, "keep_firing_for_seconds": 0,
                "receivers": [{"name": "oncall", "type": "webhook", "url": hook_url}],
                "route": {"receiver": "oncall", "group_wait_seconds": 0}},
        "cost": {"catalogs": [str(tmp_path / "prices.yaml")]}})


async def _until(pred, timeout: float = 20.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(step)
    raise AssertionError("condition not reached")


async def test_ttft_regression_moves_traffic_to_b_and_back(store, tmp_path, hook):
    clock = Clock()
    cfg = _cfg(tmp_path, store, hook.url)
    app = base_app(cfg.server)
    attach_receiver(app, cfg.server, store)
    slo_service.attach(app, cfg, store, clock=clock)
    compare_api.attach(app, cfg, store, clock=clock,
                       settings=CompareSettings(hint_refresh_seconds=SERVER_REFRESH_SECONDS,
                                                routing_window_seconds=86400))
    async with TestClient(TestServer(app)) as infersight:
        url = str(infersight.make_url("")).rstrip("/")
        a = Backend("A", "azure", "eastus2", "azure.ai.openai", url, clock)
        b = Backend("B", "aws", "us-east-1", "aws.bedrock", url, clock)
        runners = []
        for be in (a, b):
            fake = web.Application()
            fake.router.add_post("/v1/chat/completions", be.chat)
            runner, be.url = await _serve(fake)
            runners.append(runner)
        router = litellm.Router(model_list=[
            {"model_name": MODEL, "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{be.url}/v1",
                                                     "api_key": "sk-test"},
             "model_info": {"infersight_deployment": key}} for be, key in ((a, A_KEY), (b, B_KEY))])
        strategy = install(router, url, refresh_seconds=CLIENT_REFRESH_SECONDS)

        async def ask(n: int, stream: bool = False) -> list[str]:
            async def one() -> str:
                r = await router.acompletion(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                             stream=stream)
                if stream:
                    return "".join([c.choices[0].delta.content or "" async for c in r])
                return r.choices[0].message.content
            return list(await asyncio.gather(*(one() for _ in range(n))))

        async def landed(backend: Backend, at_least: int) -> bool:
            await backend.flush()
            rows = store.query(f"SELECT sum(Count) AS n FROM `{store.database}`.infersight_latency_1m "
                               f"WHERE Kind = 'ttft' AND CloudProvider = '{'azure' if backend is a else 'aws'}'")
            return int(rows[0]["n"] or 0) >= at_least

        async def pick() -> str:
            d = await strategy.async_get_available_deployment(MODEL)
            return d["model_info"]["infersight_deployment"]

        try:
            # Before any data the server knows no deployment of the model: the strategy fails open (random).
            # Each backend serves a little directly; then both meet their SLOs and ties go to the cheaper, A.
            for be in (a, b):
                direct = litellm.Router(model_list=[{"model_name": MODEL, "litellm_params": {
                    "model": f"openai/{MODEL}", "api_base": f"{be.url}/v1", "api_key": "sk-test"}}])
                await direct.acompletion(model=MODEL, messages=[{"role": "user", "content": "hi"}])
            await _until(lambda: landed(a, 1))
            await _until(lambda: landed(b, 1))
            assert await _until(lambda: _is(pick, A_KEY), timeout=10) is True
            assert await ask(6) == ["A"] * 6
            await _until(lambda: landed(a, 7))

            # TTFT regression in A: 0.6 s > the 0.5 s threshold for every request.
            a.ttft_seconds = 0.6
            # Routed to A until its bad spans land and the hint moves; on a slow machine that can happen before
            # the last of the 12 is routed (seen in a loaded CI run), so the later ones may already go to B. Any
            # B here needs some of A's bad spans first, so A served at least one.
            served = await ask(12, stream=True)
            assert set(served) <= {"A", "B"} and served.count("A") >= 1, served
            await _until(lambda: landed(a, 7 + served.count("A")))
            bad_landed = time.monotonic()
            assert await _until(lambda: _is(pick, B_KEY), timeout=10) is True
            moved_after = time.monotonic() - bad_landed
            assert await ask(5) == ["B"] * 5
            budget = EVAL_SECONDS + SERVER_REFRESH_SECONDS + CLIENT_REFRESH_SECONDS
            print(f"moved to B {moved_after:.3f} s after A's bad data landed "
                  f"(eval {EVAL_SECONDS} + hint refresh {SERVER_REFRESH_SECONDS} + client {CLIENT_REFRESH_SECONDS})")
            # One evaluation interval plus one hint refresh, plus one evaluation's own run time (chDB queries).
            assert moved_after <= budget + 1.5
            # The move may come from an evaluation that saw only part of A's bad spans (its budget already
            # exhausted, the burn not yet over the factor); the page tier is active once one evaluation sees them all.
            async def hint() -> dict:
                doc = await (await infersight.get("/api/v1/routing", params={"model": MODEL})).json()
                return {d["key"]: d for d in doc["deployments"]}

            async def tier_active() -> dict | None:
                h = await hint()
                return h if h[A_KEY]["fastest_burning_tier"] else None
            h = await _until(tier_active, timeout=10)
            assert h[A_KEY]["class"] in ("burning", "avoid") and not h[A_KEY]["meets_slos"] and h[A_KEY]["weight"] == 0
            assert h[A_KEY]["fastest_burning_tier"]["tier"] == "page-fast"
            assert h[B_KEY]["meets_slos"] and h[B_KEY]["weight"] == 1 and h[B_KEY]["rank"] == 1

            # A recovers; an hour later its bad minutes have left the windows and its burn has fallen.
            a.ttft_seconds = 0.01
            clock.offset += 3900
            assert await _until(lambda: _is(pick, A_KEY), timeout=10) is True
            assert await ask(4) == ["A"] * 4
        finally:
            for be in (a, b):
                await asyncio.to_thread(be.tracer_provider.shutdown)
            for r in runners:
                await r.cleanup()


async def _is(pick, key: str) -> bool:
    return await pick() == key
