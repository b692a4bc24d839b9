"""Inference dialects of 2026 (Dynamo, TensorRT-LLM, llm-d EPP, LiteLLM, SGLang aborts, vLLM additions)
against reconstructed expositions (tests/fixtures/*/SOURCES.md) served over loopback, scraped twice."""
from __future__ import annotations

import logging
import threading

import pytest
from tests.test_inference_collector import Pages, add_series, fixture, observe, pick, scrape, set_value

from infersight.collectors.inference import Endpoint, InferenceCollector

LLAMA = 'model_name="meta-llama/Llama-3.1-8B-Instruct",target_model_name="meta-llama/Llama-3.1-8B-Instruct"'


@pytest.fixture
def pages():
    srv = Pages()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def tokens(points) -> dict[str, float]:
    return {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}


def test_dynamo_frontend_requests_by_status(pages):
    text = fixture("dynamo/dynamo_frontend_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    first = scrape(c)
    assert pick(first, "infersight.inference.endpoint.up").attributes["infersight.server.kind"] == "dynamo"
    assert pick(first, "infersight.inference.requests.running").value == 2
    assert pick(first, "infersight.inference.requests.waiting").value == 1
    m = 'model="qwen/qwen3-0.6b"'
    s = 'endpoint="chat_completions",model="qwen/qwen3-0.6b",request_type="{}",status="{}"'
    t = set_value(text, "dynamo_frontend_requests_total{" + s.format("stream", "success") + "}", 43)
    t = set_value(t, "dynamo_frontend_requests_total{" + s.format("unary", "success") + "}", 9)
    t = set_value(t, "dynamo_frontend_requests_total{" + s.format("stream", "error") + "}", 3)
    for v in (0.8, 1.5, 0.3, 0.9):
        t = observe(t, "dynamo_frontend_request_duration_seconds", m, v)
    t = observe(t, "dynamo_frontend_time_to_first_token_seconds", m, 0.07)
    t = observe(t, "dynamo_frontend_inter_token_latency_seconds", m, 0.02)
    t = observe(t, "dynamo_frontend_input_sequence_tokens", m, 200)
    t = observe(t, "dynamo_frontend_output_sequence_tokens", m, 50)
    pages.pages["/metrics"] = t
    points = scrape(c)
    good = pick(points, "infersight.inference.requests", infersight__request__outcome="good")
    assert good.value == 3 + 1 and good.attributes["gen_ai.request.model"] == "qwen/qwen3-0.6b"
    bad = pick(points, "infersight.inference.requests", infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["error.type"] == "error"
    e2e = pick(points, "gen_ai.server.request.duration")
    assert e2e.bounds == (0.5, 1.0, 2.0, 5.0) and e2e.bucket_counts == (1, 2, 1, 0, 0)
    assert e2e.value == pytest.approx(0.8 + 1.5 + 0.3 + 0.9)
    ttft = pick(points, "gen_ai.server.time_to_first_token")
    assert ttft.bucket_counts == (0, 1, 0, 0) and ttft.value == pytest.approx(0.07)
    assert pick(points, "gen_ai.server.time_per_output_token").bucket_counts == (0, 1, 0)
    assert tokens(points) == {"input": 200, "output": 50}


def test_trtllm_prometheus_and_json_on_metrics_explained(pages, caplog):
    text = fixture("trtllm/trtllm_prometheus_metrics.txt")
    pages.pages["/prometheus/metrics"] = text
    pages.pages["/metrics"] = fixture("trtllm/trtllm_iteration_stats.json")
    c = InferenceCollector([Endpoint(url=pages.url("/prometheus/metrics")), Endpoint(url=pages.url("/metrics"))])
    with caplog.at_level(logging.WARNING):
        first = scrape(c)
    ups = [p.value for p in first if p.name == "infersight.inference.endpoint.up"]
    assert ups == [1, 0]
    assert "/metrics: answered trtllm-serve's JSON iteration statistics" in caplog.text
    assert "/prometheus/metrics: point `url` there" in caplog.text
    assert pick(first, "infersight.inference.kv_cache.usage").value == pytest.approx(0.03)
    m = 'engine_type="pytorch",model_name="TinyLlama/TinyLlama-1.1B-Chat-v1.0"'
    t = set_value(text, 'trtllm_request_success_total{engine_type="pytorch",finished_reason="stop",'
                  'model_name="TinyLlama/TinyLlama-1.1B-Chat-v1.0"}', 14)
    t = add_series(t, 'trtllm_request_success_total{engine_type="pytorch",finished_reason="stop",'
                   'model_name="TinyLlama/TinyLlama-1.1B-Chat-v1.0"}',
                   'trtllm_request_success_total{engine_type="pytorch",finished_reason="cancelled",'
                   'model_name="TinyLlama/TinyLlama-1.1B-Chat-v1.0"} 1')
    t = observe(t, "trtllm_e2e_request_latency_seconds", m, 0.7)
    t = observe(t, "trtllm_time_to_first_token_seconds", m, 0.05)
    t = observe(t, "trtllm_time_per_output_token_seconds", m, 0.004)
    t = observe(t, "trtllm_request_queue_time_seconds", m, 0.002)
    pages.pages["/prometheus/metrics"] = t
    points = scrape(c)
    assert pick(points, "infersight.inference.requests", infersight__request__outcome="good").value == 4
    bad = pick(points, "infersight.inference.requests", infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["error.type"] == "cancelled"
    assert pick(points, "gen_ai.server.request.duration").bucket_counts == (0, 1, 0, 0)
    assert pick(points, "gen_ai.server.time_to_first_token").bucket_counts == (0, 1, 0)
    assert pick(points, "gen_ai.server.time_per_output_token").value == pytest.approx(0.004)
    assert pick(points, "infersight.inference.request.queue_time").count == 1


def test_llmd_epp_good_is_total_minus_errors(pages):
    text = fixture("llmd/epp_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    first = scrape(c)
    assert pick(first, "infersight.inference.endpoint.up").attributes["infersight.server.kind"] == "llmd"
    assert pick(first, "infersight.inference.requests.waiting").value == 3  # 1 + 2 over the pool's pods
    assert pick(first, "infersight.inference.kv_cache.usage").value == pytest.approx(0.42)
    assert pick(first, "infersight.inference.requests.running").value == 4
    t = set_value(text, f"inference_model_request_total{{{LLAMA}}}", 110)
    t = set_value(t, f'inference_model_request_error_total{{error_code="ResourceExhausted",{LLAMA}}}', 5)
    t = add_series(t, f'inference_model_request_error_total{{error_code="ResourceExhausted",{LLAMA}}}',
                   f'inference_model_request_error_total{{error_code="Unavailable",{LLAMA}}} 1')
    t = set_value(t, 'inference_model_request_total{model_name="food-review",target_model_name="food-review-1"}', 21)
    t = observe(t, "inference_model_request_duration_seconds", LLAMA, 0.7)
    t = observe(t, "inference_model_input_tokens", LLAMA, 300)
    t = observe(t, "inference_model_output_tokens", LLAMA, 64)
    pages.pages["/metrics"] = t
    points = scrape(c)
    llama = "meta-llama/Llama-3.1-8B-Instruct"
    # 10 more requests, 3 more errors (2 + 1 new series): 7 good, never 10 good + 3 bad.
    assert pick(points, "infersight.inference.requests", gen_ai__request__model=llama,
                infersight__request__outcome="good").value == 7
    assert pick(points, "infersight.inference.requests", error__type="ResourceExhausted").value == 2
    assert pick(points, "infersight.inference.requests", error__type="Unavailable").value == 1
    assert pick(points, "infersight.inference.requests", gen_ai__request__model="food-review").value == 1
    assert pick(points, "gen_ai.server.request.duration", gen_ai__request__model=llama).bucket_counts == (0, 1, 0, 0)
    assert tokens(points) == {"input": 300, "output": 64}


def test_litellm_deployments_failures_spend_limits_state(pages):
    text = fixture("litellm/litellm_proxy_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))], tenant_label="team")
    first = scrape(c)
    rl = {p.attributes["infersight.ratelimit.kind"]: p for p in first if p.name == "infersight.ratelimit.remaining"}
    assert rl["requests"].value == 4970  # the lowest over the two API keys
    assert rl["tokens"].value == 799000
    assert rl["requests"].attributes["gen_ai.request.model"] == "gpt-4o"  # the model group
    assert rl["requests"].attributes["gen_ai.provider.name"] == "azure"
    assert rl["requests"].attributes["infersight.deployment"] == "azure/gpt-4o-eastus"
    state = {p.attributes["infersight.deployment"]: p.value for p in first
             if p.name == "infersight.inference.deployment.state"}
    assert state == {"azure/gpt-4o-eastus": 1, "bedrock/us.anthropic.claude-sonnet-4": 0}

    k = ('api_key_alias="",hashed_api_key="88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"')
    tm = 'team="ml-platform",team_alias="ml"'
    az = ('api_base="https://eastus-res.openai.azure.com/",api_provider="azure",litellm_model_name="azure/gpt-4o-eastus",'
          'model_id="a1b2"')
    br = ('api_base="https://bedrock-runtime.us-east-1.amazonaws.com",api_provider="bedrock",'
          'litellm_model_name="bedrock/us.anthropic.claude-sonnet-4",model_id="c3d4"')
    t = set_value(text, f'litellm_deployment_success_responses_total{{{k},{az},requested_model="gpt-4o",{tm}}}', 25)
    t = set_value(t, f'litellm_deployment_success_responses_total{{{k},{br},requested_model="gpt-4o",{tm}}}', 12)
    fail = (f'litellm_deployment_failure_responses_total{{{k},api_base="https://eastus-res.openai.azure.com/",'
            'api_provider="azure",exception_class="RateLimitError",exception_status="429",'
            f'litellm_model_name="azure/gpt-4o-eastus",model_id="a1b2",requested_model="gpt-4o",{tm}}}')
    t = set_value(t, fail, 7)
    t = add_series(t, fail, fail.replace("RateLimitError", "Timeout").replace('"429"', '"408"') + " 1")
    lat = f'{k},end_user="None",model="gpt-4o",requested_model="gpt-4o",{tm},user="u1"'
    t = observe(t, "litellm_request_total_latency_metric", lat, 0.7)
    t = observe(t, "litellm_llm_api_time_to_first_token_metric", f'{k},model="gpt-4o",{tm}', 0.3)
    t = set_value(t, f"litellm_input_tokens_metric_total{{{lat}}}", 12500)
    t = set_value(t, f"litellm_output_tokens_metric_total{{{lat}}}", 3100)
    t = set_value(t, f'litellm_spend_metric_total{{{k},end_user="None",model="gpt-4o",{tm},user="u1"}}', 0.085)
    pages.pages["/metrics"] = t
    points = scrape(c)
    good = {p.attributes["infersight.deployment"]: p.value for p in points
            if p.name == "infersight.inference.requests" and p.attributes["infersight.request.outcome"] == "good"}
    assert good == {"azure/gpt-4o-eastus": 5, "bedrock/us.anthropic.claude-sonnet-4": 2}
    bad = {p.attributes["error.type"]: p.value for p in points
           if p.name == "infersight.inference.requests" and p.attributes["infersight.request.outcome"] == "bad"}
    assert bad == {"RateLimitError": 3, "Timeout": 1}  # the proxy-level counters are not added on top
    assert all(p.attributes["infersight.tenant"] == "ml-platform" for p in points
               if p.name == "infersight.inference.requests")
    e2e = pick(points, "gen_ai.server.request.duration")
    assert e2e.bucket_counts == (0, 1, 0, 0) and e2e.attributes["gen_ai.request.model"] == "gpt-4o"
    assert pick(points, "gen_ai.server.time_to_first_token").bucket_counts == (0, 1, 0)
    assert tokens(points) == {"input": 500, "output": 100}
    assert pick(points, "infersight.inference.spend").value == pytest.approx(0.025)


def test_litellm_proxy_counters_when_no_deployment_counters(pages):
    keep = [line for line in fixture("litellm/litellm_proxy_metrics.txt").splitlines()
            if "litellm_deployment_" not in line]
    text = "\n".join(keep) + "\n"
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"), kind="litellm")])
    scrape(c)
    labels = ('api_key_alias="",hashed_api_key="88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",'
              'end_user="None",requested_model="gpt-4o",status_code="{}",team="ml-platform",team_alias="ml",user="u1"')
    t = set_value(text, "litellm_proxy_total_requests_metric_total{" + labels.format("200") + "}", 34)
    t = set_value(t, "litellm_proxy_total_requests_metric_total{" + labels.format("429") + "}", 3)
    t = set_value(t, 'litellm_proxy_failed_requests_metric_total{api_key_alias="",hashed_api_key="88dc28d0f030c55ed4'
                  'ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",end_user="None",exception_class="RateLimitError",'
                  'exception_status="429",requested_model="gpt-4o",team="ml-platform",team_alias="ml",user="u1"}', 3)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert pick(points, "infersight.inference.requests", infersight__request__outcome="good").value == 4
    bad = pick(points, "infersight.inference.requests", infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["error.type"] == "RateLimitError"  # the 429 is counted once


def test_sglang_aborted_requests_are_bad_and_not_double_counted(pages):
    text = fixture("sglang/sglang_aborted_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    m = 'model_name="Qwen/Qwen3-8B"'
    t = set_value(text, f"sglang:num_requests_total{{{m}}}", 60)
    t = set_value(t, f"sglang:num_aborted_requests_total{{{m}}}", 5)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert pick(points, "infersight.inference.requests", infersight__request__outcome="good").value == 7
    bad = pick(points, "infersight.inference.requests", infersight__request__outcome="bad")
    assert bad.value == 3 and bad.attributes["error.type"] == "abort"


def test_vllm_2026_waiting_by_reason_tokens_by_source_itl_and_model_names(pages):
    text = fixture("vllm/vllm_waiting_by_reason.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"),
                                     model_names={"meta-llama/llama-3.1-8b-instruct": "llama-3.1-8b"})])
    first = scrape(c)
    waiting = {p.attributes["infersight.wait.reason"]: p.value for p in first
               if p.name == "infersight.inference.requests.waiting"}
    assert waiting == {"capacity": 4, "deferred": 2, "other": 1}  # sums to num_requests_waiting = 7
    assert all(p.attributes.get("gen_ai.request.model", "llama-3.1-8b") == "llama-3.1-8b" for p in first)
    m = 'engine="0",model_name="Meta-Llama/Llama-3.1-8B-Instruct"'
    t = set_value(text, f"vllm:prompt_tokens_total{{{m}}}", 217)
    t = set_value(t, f'vllm:prompt_tokens_by_source_total{{{m},source="local_compute"}}', 93)
    t = set_value(t, f'vllm:prompt_tokens_by_source_total{{{m},source="local_cache_hit"}}', 104)
    t = set_value(t, f'vllm:prompt_tokens_by_source_total{{{m},source="external_kv_transfer"}}', 20)
    t = observe(t, "vllm:inter_token_latency_seconds", m, 0.005)
    t = set_value(t, f'vllm:num_requests_waiting_by_reason{{{m},reason="capacity"}}', 0)
    t = set_value(t, f'vllm:num_requests_waiting_by_reason{{{m},reason="deferred"}}', 0)
    t = set_value(t, f"vllm:num_requests_waiting{{{m}}}", 0)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert tokens(points) == {"input": 100, "cached_input": 60}  # 40 local cache hits + 20 transferred
    itl = pick(points, "gen_ai.server.time_per_output_token")  # ITL preferred over the deprecated family
    assert itl.bounds == (0.01, 0.025) and itl.bucket_counts == (1, 0, 0)
    waiting = {p.attributes["infersight.wait.reason"]: p.value for p in points
               if p.name == "infersight.inference.requests.waiting"}
    assert waiting == {"capacity": 0, "deferred": 0}
    assert {p.attributes["gen_ai.request.model"] for p in points if "gen_ai.request.model" in p.attributes} == \
        {"llama-3.1-8b"}
