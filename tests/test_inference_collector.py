"""Inference collector against real expositions served over loopback HTTP, scraped twice."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from infersight.collectors.inference import Endpoint, InferenceCollector, InferenceConfig
from infersight.config import ConfigError, parse_config
from support.paths import FIXTURES

MODEL = 'model_name="facebook/opt-125m"'


class Pages(ThreadingHTTPServer):
    """A loopback HTTP server whose pages (path → text or callable) tests change between scrapes."""

    def __init__(self) -> None:
        self.pages: dict[str, object] = {}
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        page = self.server.pages.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body = (page() if callable(page) else page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def pages():
    srv = Pages()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def fixture(path: str) -> str:
    return (FIXTURES / path).read_text()


def set_value(text: str, series: str, value: float) -> str:
    """Replace the value of exactly one series line (`name{labels}`)."""
    pattern = re.compile("^" + re.escape(series) + r" \S+$", re.M)
    assert len(pattern.findall(text)) == 1, series
    return pattern.sub(f"{series} {value}", text)


def add_series(text: str, after: str, line: str) -> str:
    """Insert a new sample line right after an existing series of the same family."""
    pattern = re.compile("^" + re.escape(after) + r" \S+$", re.M)
    m = pattern.search(text)
    assert m, after
    return text[:m.end()] + "\n" + line + text[m.end():]


def observe(text: str, family: str, labels: str, value: float) -> str:
    """Record one observation in a classic histogram of the exposition text."""
    def bucket(m: re.Match) -> str:
        le = float(m.group(2))
        return f"{m.group(1)}{float(m.group(3)) + (1 if value <= le else 0)}"
    text, n = re.subn(r'^(' + re.escape(family) + r'_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\} )(\S+)$', bucket,
                      text, flags=re.M)
    assert n > 0, family
    for suffix, inc in (("_count", 1), ("_sum", value)):
        series = f"{family}{suffix}{{{labels}}}" if labels else f"{family}{suffix}"
        m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
        assert m, series
        text = set_value(text, series, float(m.group(1)) + inc)
    return text


def pick(points, name: str, **attrs):
    """The one point named `name` whose attributes include `attrs` (dots spelled as __)."""
    want = {k.replace("__", "."): v for k, v in attrs.items()}
    found = [p for p in points if p.name == name and all(p.attributes.get(k) == v for k, v in want.items())]
    assert len(found) == 1, (name, want, [p.attributes for p in points if p.name == name])
    return found[0]


def check_against_spec(collector: InferenceCollector, points) -> None:
    specs = {s.name: s for s in collector.metrics}
    for p in points:
        spec = specs[p.name]
        assert (p.kind, p.unit) == (spec.kind, spec.unit), p.name
        assert set(p.attributes) <= set(spec.attributes), (p.name, set(p.attributes) - set(spec.attributes))
        if p.kind in ("counter", "histogram"):
            assert p.temporality == "delta" and p.start_time_ns < p.time_ns
        if p.kind == "histogram":
            assert len(p.bucket_counts) == len(p.bounds) + 1 and sum(p.bucket_counts) == p.count


def scrape(collector: InferenceCollector):
    points = list(collector.collect())
    check_against_spec(collector, points)
    return points


def test_vllm_v0_and_v1_names_two_scrapes(pages):
    text = fixture("vllm/datadog_vllm_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))], tenant="search")
    first = scrape(c)
    # First scrape is the baseline: gauges only, no deltas of history we did not watch.
    assert {p.name for p in first} == {"infersight.inference.requests.running", "infersight.inference.requests.waiting",
                                       "infersight.inference.kv_cache.usage", "infersight.inference.endpoint.up"}
    up = pick(first, "infersight.inference.endpoint.up")
    assert up.value == 1 and up.attributes["infersight.server.kind"] == "vllm"  # auto-detected

    t = set_value(text, f'vllm:request_success_total{{finished_reason="length",{MODEL}}}', 4.0)
    t = add_series(t, f'vllm:request_success_total{{finished_reason="length",{MODEL}}}',
                   f'vllm:request_success_total{{finished_reason="stop",{MODEL}}} 2.0\n'
                   f'vllm:request_success_total{{finished_reason="abort",{MODEL}}} 1.0')
    t = set_value(t, f"vllm:prompt_tokens_total{{{MODEL}}}", 305.0)
    t = set_value(t, f"vllm:generation_tokens_total{{{MODEL}}}", 107.0)
    t = set_value(t, f"vllm:prompt_tokens_cached_total{{{MODEL}}}", 114.0)
    for v in (0.9, 2.0, 2.1):
        t = observe(t, "vllm:e2e_request_latency_seconds", MODEL, v)
    t = observe(t, "vllm:time_to_first_token_seconds", MODEL, 0.05)
    t = observe(t, "vllm:request_queue_time_seconds", MODEL, 0.2)
    t = observe(t, "vllm:request_time_per_output_token_seconds", MODEL, 0.02)
    t = set_value(t, f"vllm:num_requests_running{{{MODEL}}}", 3.0)
    t = set_value(t, f"vllm:num_requests_waiting{{{MODEL}}}", 2.0)
    t = set_value(t, f"vllm:kv_cache_usage_perc{{{MODEL}}}", 0.5)
    pages.pages["/metrics"] = t
    second = scrape(c)

    base = {"gen_ai.request.model": "facebook/opt-125m", "infersight.server.kind": "vllm",
            "server.address": f"127.0.0.1:{pages.server_address[1]}", "infersight.tenant": "search"}
    good = pick(second, "infersight.inference.requests", infersight__request__outcome="good")
    assert good.value == 5 and good.attributes == {**base, "infersight.request.outcome": "good"}
    bad = pick(second, "infersight.inference.requests", infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["error.type"] == "abort"
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in second if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 300, "output": 100, "cached_input": 50}
    e2e = pick(second, "gen_ai.server.request.duration")
    assert e2e.bounds == (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
    assert e2e.bucket_counts == (1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert e2e.count == 3 and e2e.value == pytest.approx(5.0)
    assert e2e.attributes == base
    ttft = pick(second, "gen_ai.server.time_to_first_token")
    assert ttft.count == 1 and ttft.value == pytest.approx(0.05)
    assert ttft.bucket_counts[ttft.bounds.index(0.06)] == 1 and sum(ttft.bucket_counts) == 1
    # request_time_per_output_token is preferred over the per-token V0 and inter-token families.
    tpot = pick(second, "gen_ai.server.time_per_output_token")
    assert tpot.bounds == (0.01,) and tpot.bucket_counts == (0, 1) and tpot.value == pytest.approx(0.02)
    queue = pick(second, "infersight.inference.request.queue_time")
    assert queue.bounds == (0.3,) and queue.bucket_counts == (1, 0) and queue.value == pytest.approx(0.2)
    assert pick(second, "infersight.inference.requests.running").value == 3
    assert pick(second, "infersight.inference.requests.waiting").value == 2
    assert pick(second, "infersight.inference.kv_cache.usage").value == 0.5  # not the deprecated gpu_cache family
    assert all(p.start_time_ns == e2e.start_time_ns for p in second if p.kind != "gauge")

    # A restart that already passed the old values is caught by process_start_time_seconds.
    t3 = set_value(t, "process_start_time_seconds", 1.7181409999e9)
    t3 = set_value(t3, f"vllm:prompt_tokens_total{{{MODEL}}}", 400.0)
    pages.pages["/metrics"] = t3
    third = scrape(c)
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in third if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 400, "output": 107, "cached_input": 114}


def vllm_v1_registry(engines: int):
    """A vLLM V1 metrics registry as `vllm/v1/metrics/loggers.py` declares it (METRICS_vllm_v1.md)."""
    reg = CollectorRegistry()
    labels = ["model_name", "engine"]
    lat = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
           480.0, 960.0, 1920.0, 7680.0]
    m = {
        "running": Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                         labels, registry=reg),
        "waiting": Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels,
                         registry=reg),
        "kv": Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, registry=reg),
        "prompt": Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg),
        "gen": Counter("vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=reg),
        "hits": Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                        labels, registry=reg),
        "success": Counter("vllm:request_success", "Count of successfully processed requests.",
                           [*labels, "finished_reason"], registry=reg),
        "ttft": Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                          labels, registry=reg,
                          buckets=[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                   5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]),
        "tpot": Histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                          labels, registry=reg,
                          buckets=[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                                   7.5, 10.0, 20.0, 40.0, 80.0]),
        "e2e": Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                         labels, registry=reg, buckets=lat),
        "queue": Histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                           labels, registry=reg, buckets=lat),
    }
    model = "meta-llama/Llama-3.1-8B-Instruct"
    for e in range(engines):
        for name in ("running", "waiting", "kv", "prompt", "gen", "hits", "ttft", "tpot", "e2e", "queue"):
            m[name].labels(model, str(e))
        m["success"].labels(model, str(e), "stop")
    return reg, m, model


def test_vllm_v1_engine_label_kept_per_engine(pages):
    reg, m, model = vllm_v1_registry(2)
    pages.pages["/metrics"] = lambda: generate_latest(reg).decode()
    m["prompt"].labels(model, "0").inc(1000)  # history before the agent started: never emitted
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"), kind="vllm")])
    scrape(c)
    m["success"].labels(model, "0", "stop").inc(2)
    m["success"].labels(model, "0", "length").inc(1)  # a new series: all of it is new
    m["success"].labels(model, "1", "error").inc(1)
    m["prompt"].labels(model, "0").inc(120)
    m["prompt"].labels(model, "1").inc(30)
    m["gen"].labels(model, "0").inc(64)
    m["hits"].labels(model, "1").inc(16)
    m["ttft"].labels(model, "1").observe(0.03)
    m["tpot"].labels(model, "0").observe(0.02)
    m["e2e"].labels(model, "0").observe(1.2)
    m["e2e"].labels(model, "0").observe(0.4)
    m["queue"].labels(model, "1").observe(0.001)
    m["running"].labels(model, "0").set(7)
    m["kv"].labels(model, "1").set(0.25)
    points = scrape(c)

    assert pick(points, "infersight.inference.requests", engine="0", infersight__request__outcome="good").value == 3
    assert pick(points, "infersight.inference.requests", engine="1", infersight__request__outcome="good").value == 0
    bad = pick(points, "infersight.inference.requests", engine="1", infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["error.type"] == "error"
    tok = {(p.attributes["engine"], p.attributes["gen_ai.token.type"]): p.value
           for p in points if p.name == "gen_ai.client.token.usage"}
    assert tok == {("0", "input"): 120, ("1", "input"): 30, ("0", "output"): 64, ("1", "output"): 0,
                   ("0", "cached_input"): 0, ("1", "cached_input"): 16}
    e2e = pick(points, "gen_ai.server.request.duration", engine="0")
    assert e2e.count == 2 and e2e.value == pytest.approx(1.6)
    assert e2e.bucket_counts[0] == 0 and e2e.bucket_counts[1] == 1 and e2e.bucket_counts[4] == 1  # (0.3,0.5], (1,1.5]
    assert pick(points, "gen_ai.server.request.duration", engine="1").count == 0
    ttft = pick(points, "gen_ai.server.time_to_first_token", engine="1")
    assert ttft.count == 1 and ttft.bucket_counts[ttft.bounds.index(0.04)] == 1
    assert pick(points, "gen_ai.server.time_per_output_token", engine="0").bucket_counts[1] == 1
    assert pick(points, "infersight.inference.request.queue_time", engine="1").bucket_counts[0] == 1
    assert pick(points, "infersight.inference.requests.running", engine="0").value == 7
    assert pick(points, "infersight.inference.kv_cache.usage", engine="1").value == 0.25
    assert all(p.attributes["gen_ai.request.model"] == model for p in points if "engine" in p.attributes)


def test_tgi_model_from_info_and_two_scrapes(pages):
    text = fixture("tgi/tgi_metrics.txt")
    pages.pages["/metrics"] = text
    pages.pages["/info"] = json.dumps({"model_id": "mistralai/Mistral-7B-Instruct-v0.3", "max_input_tokens": 8192})
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"), tenant="ads")])
    first = scrape(c)
    assert pick(first, "infersight.inference.requests.running").value == 3  # tgi_batch_current_size
    assert pick(first, "infersight.inference.requests.waiting").value == 2  # tgi_queue_size
    t = set_value(text, "tgi_request_success", 10)
    t = set_value(t, 'tgi_request_failure{err="validation"}', 2)
    t = add_series(t, 'tgi_request_failure{err="validation"}', 'tgi_request_failure{err="overloaded"} 3')
    t = observe(t, "tgi_request_duration", "", 1.0)
    t = observe(t, "tgi_request_queue_duration", "", 0.003)
    t = observe(t, "tgi_request_mean_time_per_token_duration", "", 0.04)
    t = observe(t, "tgi_request_input_length", "", 700)
    t = observe(t, "tgi_request_generated_tokens", "", 90)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert pages.hits.count("/info") == 1
    model = "mistralai/Mistral-7B-Instruct-v0.3"
    assert all(p.attributes.get("gen_ai.request.model", model) == model for p in points)
    assert all(p.attributes["infersight.tenant"] == "ads" for p in points)
    assert pick(points, "infersight.inference.requests", infersight__request__outcome="good").value == 6
    assert pick(points, "infersight.inference.requests", error__type="validation").value == 1
    assert pick(points, "infersight.inference.requests", error__type="overloaded").value == 3
    e2e = pick(points, "gen_ai.server.request.duration")
    assert len(e2e.bounds) == 35 and e2e.count == 1 and e2e.value == pytest.approx(1.0)
    assert e2e.bucket_counts[next(i for i, b in enumerate(e2e.bounds) if b >= 1.0)] == 1
    assert pick(points, "infersight.inference.request.queue_time").value == pytest.approx(0.003)
    assert pick(points, "gen_ai.server.time_per_output_token").value == pytest.approx(0.04)
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 700, "output": 90}
    assert not [p for p in points if p.name == "gen_ai.server.time_to_first_token"]  # TGI has none


def test_triton_microsecond_counters_become_seconds(pages):
    text = fixture("triton/datadog_triton_metrics_excerpt.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    scrape(c)
    d = 'model="densenet_onnx",version="1"'
    t = set_value(text, f"nv_inference_request_success{{{d}}}", 5)
    t = set_value(t, f"nv_inference_request_failure{{{d}}}", 1)
    t = set_value(t, f"nv_inference_request_duration_us{{{d}}}", 1327965 + 750000)
    t = set_value(t, f"nv_inference_queue_duration_us{{{d}}}", 145 + 2500)
    t = set_value(t, f"nv_inference_pending_request_count{{{d}}}", 4)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert pick(points, "infersight.inference.requests", gen_ai__request__model="densenet_onnx",
                infersight__request__outcome="good").value == 2
    bad = pick(points, "infersight.inference.requests", gen_ai__request__model="densenet_onnx",
               infersight__request__outcome="bad")
    assert bad.value == 1 and bad.attributes["version"] == "1"
    e2e = pick(points, "gen_ai.server.request.duration", gen_ai__request__model="densenet_onnx")
    assert e2e.value == pytest.approx(0.75) and e2e.count == 2 and e2e.bounds == () and e2e.bucket_counts == (2,)
    q = pick(points, "infersight.inference.request.queue_time", gen_ai__request__model="densenet_onnx")
    assert q.value == pytest.approx(0.0025) and q.count == 2
    assert pick(points, "infersight.inference.requests.waiting", gen_ai__request__model="densenet_onnx").value == 4
    assert pick(points, "gen_ai.server.request.duration", gen_ai__request__model="simple").count == 0
    assert not [p for p in points if p.name == "gen_ai.client.token.usage"]  # Triton counts no tokens


def test_sglang_two_scrapes_then_restart(pages):
    text = fixture("sglang/datadog_sglang_metrics.txt")
    pages.pages["/metrics"] = text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    first = scrape(c)
    kv = pick(first, "infersight.inference.kv_cache.usage")
    assert kv.value == 0.25 and kv.attributes["tp_rank"] == "0"
    r = 'model_name="facebook/opt-125m",tp_rank="0"'
    t = set_value(text, f"sglang:num_requests_total{{{r}}}", 4)
    t = set_value(t, f"sglang:prompt_tokens_total{{{r}}}", 50)
    t = set_value(t, f"sglang:generation_tokens_total{{{r}}}", 132)
    t = set_value(t, f"sglang:cached_tokens_total{{{r}}}", 21)
    t = set_value(t, f"sglang:num_running_reqs{{{r}}}", 2)
    t = set_value(t, f"sglang:num_queue_reqs{{{r}}}", 5)
    for v in (0.05, 0.5):
        t = observe(t, "sglang:time_to_first_token_seconds", MODEL, v)
    t = observe(t, "sglang:e2e_request_latency_seconds", MODEL, 3.0)
    t = observe(t, "sglang:inter_token_latency_seconds", MODEL, 0.008)
    t = observe(t, "sglang:queue_time_seconds", MODEL, 0.0005)
    pages.pages["/metrics"] = t
    points = scrape(c)
    assert pick(points, "infersight.inference.requests").value == 3
    assert pick(points, "infersight.inference.requests").attributes["infersight.request.outcome"] == "good"
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 45, "output": 100, "cached_input": 20}
    ttft = pick(points, "gen_ai.server.time_to_first_token")
    assert ttft.bounds == (0.1,) and ttft.bucket_counts == (1, 1) and ttft.value == pytest.approx(0.55)
    assert pick(points, "gen_ai.server.request.duration").bucket_counts == (0, 1)
    assert pick(points, "gen_ai.server.time_per_output_token").bucket_counts == (1, 0)
    assert pick(points, "infersight.inference.request.queue_time").bucket_counts == (1, 0)
    assert pick(points, "infersight.inference.requests.running").value == 2
    assert pick(points, "infersight.inference.requests.waiting").value == 5

    # Server restarted: counters start again below the last values. The delta is the new value,
    # never a negative rate.
    t2 = set_value(text, f"sglang:num_requests_total{{{r}}}", 2)
    t2 = set_value(t2, f"sglang:prompt_tokens_total{{{r}}}", 9)
    pages.pages["/metrics"] = t2
    points = scrape(c)
    assert pick(points, "infersight.inference.requests").value == 2
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 9, "output": 32, "cached_input": 1}
    ttft = pick(points, "gen_ai.server.time_to_first_token")  # histogram count dropped 3 -> 1: reset
    assert ttft.count == 1 and ttft.value == pytest.approx(0.02)
    assert all(p.value >= 0 for p in points)


def test_unreachable_unknown_and_malformed_endpoints_do_not_stop_others(pages, caplog):
    pages.pages["/ok"] = fixture("sglang/datadog_sglang_metrics.txt")
    pages.pages["/unknown"] = "# TYPE node_load1 gauge\nnode_load1 0.5\n"
    pages.pages["/bad"] = "vllm:num_requests_running{model_name=\"x\" 1\n"
    c = InferenceCollector([Endpoint(url=pages.url(p)) for p in ("/missing", "/unknown", "/bad", "/ok")])
    points = scrape(c)
    up = {p.attributes["server.address"] + str(i): p.value
          for i, p in enumerate(q for q in points if q.name == "infersight.inference.endpoint.up")}
    assert list(up.values()) == [0, 0, 0, 1]
    text = caplog.text
    assert "/missing: HTTP Error 404" in text
    assert "/unknown: cannot detect the server kind" in text and "set `kind`" in text
    assert "/bad: malformed exposition" in text
    assert pick(points, "infersight.inference.requests.running").attributes["infersight.server.kind"] == "sglang"


def test_tgi_without_info_is_unknown_then_asked_again(pages):
    pages.pages["/metrics"] = "# TYPE tgi_queue_size gauge\ntgi_queue_size 2\n"
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"))])
    assert pick(scrape(c), "infersight.inference.requests.waiting").attributes["gen_ai.request.model"] == "unknown"
    pages.pages["/info"] = json.dumps({"model_id": "bigscience/bloom-560m"})
    assert pick(scrape(c), "infersight.inference.requests.waiting").attributes["gen_ai.request.model"] == \
        "bigscience/bloom-560m"
    scrape(c)
    assert pages.hits.count("/info") == 2  # answered once, then remembered


def test_tenant_label_overrides_static_tenant(pages):
    text = 'tgi_queue_size{department="legal"} 1\ntgi_queue_size{department="hr"} 4\n'
    pages.pages["/metrics"] = "# TYPE tgi_queue_size gauge\n" + text
    c = InferenceCollector([Endpoint(url=pages.url("/metrics"), kind="tgi", model="m")], tenant="default",
                           tenant_label="department")
    points = scrape(c)
    assert pick(points, "infersight.inference.requests.waiting", infersight__tenant="hr").value == 4
    assert pick(points, "infersight.inference.requests.waiting", infersight__tenant="legal").value == 1
    assert pick(points, "infersight.inference.endpoint.up").attributes["infersight.tenant"] == "default"
    assert "/info" not in pages.hits  # model configured


def test_config_from_yaml_entry_and_errors():
    cfg = parse_config({"collectors": [{"type": "inference", "interval_seconds": 15, "tenant_label": "team",
                                        "endpoints": [{"url": "http://127.0.0.1:8000/metrics"},
                                                      {"url": "http://127.0.0.1:8080/metrics", "kind": "tgi",
                                                       "model": "m", "tenant": "t"}]}]})
    entry = cfg.collectors[0]
    assert isinstance(entry, InferenceConfig) and entry.endpoints[1].kind == "tgi"
    c = InferenceCollector.from_config(entry)
    assert [t.kind for t in c._targets] == [None, "tgi"]
    with pytest.raises(ConfigError, match=r"unknown key 'collectors\.(0\.)?endpoints\.0\.kinds'"):
        parse_config({"collectors": [{"type": "inference", "endpoints": [{"url": "http://h/m", "kinds": "x"}]}]})
    with pytest.raises(ConfigError, match=r"collectors\.(0\.)?endpoints\.0\.url: .*http\(s\) URL"):
        parse_config({"collectors": [{"type": "inference", "endpoints": [{"url": "127.0.0.1:8000"}]}]})
    with pytest.raises(ConfigError, match=r"collectors\.(0\.)?endpoints\.0\.kind"):
        parse_config({"collectors": [{"type": "inference", "endpoints": [{"url": "http://h/m", "kind": "ollama"}]}]})
    with pytest.raises(ConfigError, match=r"collectors\.(0\.)?endpoints: .*at least 1 item"):
        parse_config({"collectors": [{"type": "inference", "endpoints": []}]})


def test_delta_tracker_resets_on_changed_bounds_and_drops():
    from infersight.collectors.inference.delta import DeltaTracker
    from infersight.collectors.inference.metrics import DURATION, REQUESTS
    from infersight.collectors.inference.model import Reading

    tr = DeltaTracker()
    def h(bounds, buckets, total):
        return Reading(DURATION, ("h", ()), {}, total, bounds, buckets, sum(buckets))
    def c(v):
        return Reading(REQUESTS, ("c", ()), {}, v)
    assert tr.update([h((1.0,), (2, 1), 3.0), c(10)]) == []  # baseline
    d = {x.reading.spec.name: x for x in tr.update([h((1.0,), (3, 1), 3.5), c(12)])}
    assert d[DURATION.name].buckets == (1, 0) and d[DURATION.name].value == 0.5 and d[REQUESTS.name].value == 2
    # Server upgraded with new buckets: the histogram restarts, its delta is the new content.
    d = {x.reading.spec.name: x for x in tr.update([h((0.5, 1.0), (1, 0, 0), 0.2), c(5)])}
    assert d[DURATION.name].buckets == (1, 0, 0) and d[DURATION.name].count == 1
    assert d[REQUESTS.name].value == 5  # dropped from 12 to 5: restarted, not -7


def test_http_get_caps_the_body(pages):
    from infersight.collectors.inference.scrape import ScrapeError, http_get

    pages.pages["/metrics"] = fixture("sglang/datadog_sglang_metrics.txt")
    assert http_get(pages.url("/metrics"), 5).startswith("# Fixture captured from SGLang")
    with pytest.raises(ScrapeError, match=r"/metrics: response larger than 1000 bytes"):
        http_get(pages.url("/metrics"), 5, max_bytes=1000)
