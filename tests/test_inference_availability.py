"""Availability where a server exports no error counter: the API server's HTTP 5xx, with the precedence of
docs/collectors/inference.md (the server's own failure counter first, never counted twice). Reconstructed
expositions (tests/fixtures/*/SOURCES.md) served over loopback, scraped twice; then a vLLM server that is up
and scraped but answers 500s, through the real gateway and chDB, burns an availability SLO."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.test_inference_collector import Pages, fixture, pick, scrape, set_value

from infersight.agent.loop import ScopedPoints
from infersight.collectors.inference import Endpoint, InferenceCollector
from infersight.config import parse_config
from infersight.exporters.encode import encode, to_metrics_data
from infersight.slo.evaluator import Evaluator
from support.slo import make_slo

VLLM = 'engine="0",finished_reason="{}",model_name="meta-llama/Llama-3.1-8B-Instruct"'
CHAT = 'http_requests_total{{handler="/v1/chat/completions",method="POST",status="{}"}}'
REQ = "infersight.inference.requests"


@pytest.fixture
def pages():
    srv = Pages()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _requests(points) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for p in points:
        if p.name == REQ and p.value:
            key = (p.attributes["infersight.request.outcome"], str(p.attributes.get("error.type", "")))
            out[key] = out.get(key, 0) + p.value
    return out


def _vllm_next(text: str, stop: int, ok: int, chat_5xx: int, completions_5xx: int, health_5xx: int) -> str:
    t = set_value(text, f"vllm:request_success_total{{{VLLM.format('stop')}}}", stop)
    t = set_value(t, CHAT.format("2xx"), ok)
    t = set_value(t, CHAT.format("4xx"), 9)  # client errors: never bad
    t = set_value(t, CHAT.format("5xx"), chat_5xx)
    t = set_value(t, 'http_requests_total{handler="/v1/completions",method="POST",status="5xx"}', completions_5xx)
    return set_value(t, 'http_requests_total{handler="/health",method="GET",status="5xx"}', health_5xx)


def test_vllm_5xx_are_bad_requests_of_the_served_model(pages):
    text = fixture("vllm/vllm_http_status.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    pages.pages["/metrics"] = _vllm_next(text, stop=130, ok=131, chat_5xx=5, completions_5xx=2, health_5xx=40)
    points = scrape(c)
    # 10 finished (good); 3 + 1 new 5xx on inference routes (bad); /health's 36 and the 4xx are not requests.
    assert _requests(points) == {("good", ""): 10, ("bad", "http_5xx"): 4}
    bad = pick(points, REQ, error__type="http_5xx")
    assert bad.attributes["gen_ai.request.model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert bad.attributes["infersight.server.kind"] == "vllm"


def test_vllm_that_records_aborts_itself_is_not_counted_twice(pages):
    text = set_value(fixture("vllm/vllm_http_status.txt"), f"vllm:request_success_total{{{VLLM.format('abort')}}}", 2)
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    t = _vllm_next(text, stop=130, ok=131, chat_5xx=5, completions_5xx=1, health_5xx=4)
    pages.pages["/metrics"] = set_value(t, f"vllm:request_success_total{{{VLLM.format('abort')}}}", 5)
    # The engine counts failures (abort > 0): its 3 aborts are the bad requests, the 3 new 5xx among them.
    assert _requests(scrape(c)) == {("good", ""): 10, ("bad", "abort"): 3}


def test_sglang_5xx_only_without_its_abort_counter(pages):
    text = fixture("sglang/sglang_http_status.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    t = set_value(text, 'sglang:num_requests_total{model_name="Qwen/Qwen3-8B"}', 45)
    t = set_value(t, 'http_requests_total{handler="/v1/chat/completions",method="POST",status="500"}', 3)
    t = set_value(t, 'http_requests_total{handler="/generate",method="POST",status="503"}', 1)
    health = 'http_requests_total{handler="/health_generate",method="GET",status="503"}'
    pages.pages["/metrics"] = set_value(t, health, 9)
    assert _requests(scrape(c)) == {("good", ""): 5, ("bad", "http_5xx"): 3}  # ungrouped 500 and 503 both

    # With num_aborted_requests the aborts (which carry the 5xx) are the bad requests: no http_5xx.
    aborted = fixture("sglang/sglang_aborted_metrics.txt")
    line = 'http_requests_total{handler="/v1/chat/completions",method="POST",status="5xx"}'
    base = aborted + "# TYPE http_requests_total counter\n" + f"{line} 1.0\n"
    pages.pages["/metrics"] = base
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    m = 'model_name="Qwen/Qwen3-8B"'
    t = set_value(base, f"sglang:num_requests_total{{{m}}}", 60)
    t = set_value(t, f"sglang:num_aborted_requests_total{{{m}}}", 5)
    pages.pages["/metrics"] = set_value(t, line, 4)
    assert _requests(scrape(c)) == {("good", ""): 7, ("bad", "abort"): 3}


def test_tgi_counts_its_failures_itself(pages):
    text = fixture("tgi/tgi_metrics.txt") + (
        "# TYPE http_requests_total counter\n"
        'http_requests_total{handler="/generate",method="POST",status="5xx"} 1.0\n')
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"), model="bigscience/bloom-560m")])
    scrape(c)
    t = set_value(text, "tgi_request_success", 6)
    t = set_value(t, 'tgi_request_failure{err="validation"}', 2)
    pages.pages["/metrics"] = set_value(t, 'http_requests_total{handler="/generate",method="POST",status="5xx"}', 7)
    assert _requests(scrape(c)) == {("good", ""): 2, ("bad", "validation"): 1}


async def test_a_scraped_vllm_answering_500s_burns_the_budget(store, pages):
    """The engine is wedged: no request finishes, every chat completion is a 500, the server is still scraped."""
    text = fixture("vllm/vllm_http_status.txt")
    pages.pages["/metrics"] = text
    clock = [int(time.time()) // 60 * 60 - 300]
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))], clock=lambda: clock[0] * 10**9)
    cfg = parse_config({"server": {"flush_interval_seconds": 0.05, "storage": {"database": store.database}}})
    from infersight.gateway.app import create_app

    resource = {"service.name": "infersight-agent", "host.name": "gpu-1", "cloud.provider": "aws",
                "cloud.region": "us-east-1"}
    async with TestClient(TestServer(create_app(cfg.server, store), host="127.0.0.1")) as client:
        five_xx = 2
        for _ in range(4):
            points = await asyncio.to_thread(lambda: list(c.collect()))
            body = encode(to_metrics_data([ScopedPoints("infersight.collectors.inference", points)], resource,
                                          time.time_ns()))
            r = await client.post("/v1/metrics", data=body, headers={"Content-Type": "application/x-protobuf"})
            assert r.status == 200
            clock[0] += 60
            five_xx += 20
            pages.pages["/metrics"] = set_value(text, CHAT.format("5xx"), five_xx)
        db = f"`{store.database}`"
        deadline = time.monotonic() + 20
        while int(store.query(f"SELECT sum(BadRequests) AS n FROM {db}.infersight_requests_1m")[0]["n"]) < 60:
            assert time.monotonic() < deadline, "5xx never reached the rollup"
            await asyncio.sleep(0.1)
    slo = make_slo(name="vllm-availability", sli={"ratio": {"filters": {"infersight.server.kind": "vllm"}}},
                   objective=99.9)
    (res,) = Evaluator(store).evaluate([slo], clock[0] + 60)
    assert (res.period.events, res.period.consumed) == (60, 60)  # three scrape intervals of 20 500s each
    assert res.state == "exhausted" and any(t.active for t in res.tiers if t.tier.name == "page-fast")
