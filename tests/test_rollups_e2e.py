"""End to end: a real `infersight server`, GenAI spans from the OTel SDK and scraped vLLM deltas
through the agent's OTLP encoder → rollup tables → `infersight cost report --server`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests
from tests.test_cost import CATALOG
from tests.test_inference_collector import MODEL, add_series, fixture, observe, pages, set_value  # noqa: F401

from infersight.agent.loop import ScopedPoints
from infersight.cli.cost import ServerSource
from infersight.collectors.inference import Endpoint, InferenceCollector
from infersight.exporters.encode import encode, to_metrics_data

pytest.importorskip("chdb")
ROOT = Path(__file__).resolve().parent.parent
NODE = {"service.name": "infersight-agent", "host.name": "gpu-1", "cloud.provider": "aws",
        "cloud.region": "us-east-1", "host.type": "p5.48xlarge"}


@pytest.fixture
def server(tmp_path, port):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 -- closed below
    proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "server", "--data-dir", str(tmp_path / "data"),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            with opener.open(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "server not ready"
        time.sleep(0.2)
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    log.close()


def send_spans(url: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    session = requests.Session()
    session.trust_env = False  # loopback only, whatever proxy the environment names
    provider = TracerProvider(resource=Resource({"service.name": "chatbot", "cloud.provider": "azure",
                                                 "cloud.region": "westeurope", "host.name": "app-1",
                                                 "infersight.tenant": "legal"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", session=session,
                                                                      timeout=60)))
    tracer = provider.get_tracer("chatbot")
    for failed in (False, False, True):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
                                 "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1000})
            if failed:
                span.set_status(Status(StatusCode.ERROR, "upstream 500"))
    with tracer.start_as_current_span("GET /health"):
        pass  # not a GenAI span: not a request in the rollups
    provider.shutdown()


def post_metrics(url: str, points) -> None:
    body = encode(to_metrics_data([ScopedPoints("infersight.collectors.inference", points)], NODE, time.time_ns()))
    req = urllib.request.Request(f"{url}/v1/metrics", data=body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=60) as r:
        assert r.status == 200


def test_spans_and_scrapes_reach_the_rollups_and_the_cost_report(server, pages, tmp_path):  # noqa: F811 -- fixture
    send_spans(server)
    text = fixture("vllm/datadog_vllm_metrics.txt")
    pages.pages["/metrics"] = text
    collector = InferenceCollector([Endpoint(url=pages.url("/metrics"))], tenant="search")
    post_metrics(server, list(collector.collect()))
    length = f'vllm:request_success_total{{finished_reason="length",{MODEL}}}'
    t = add_series(set_value(text, length, 6.0), length,
                   f'vllm:request_success_total{{finished_reason="abort",{MODEL}}} 1.0')
    t = set_value(t, f"vllm:prompt_tokens_total{{{MODEL}}}", 305.0)
    t = set_value(t, f"vllm:generation_tokens_total{{{MODEL}}}", 1007.0)
    for v in (0.9, 2.0, 70.0):
        t = observe(t, "vllm:e2e_request_latency_seconds", MODEL, v)
    pages.pages["/metrics"] = t
    post_metrics(server, list(collector.collect()))

    src = ServerSource(server)
    deadline = time.monotonic() + 30
    while True:
        rows = src.query("SELECT CloudProvider, Model, ServerKind, Tenant, sum(Requests) AS req, "
                         "sum(BadRequests) AS bad, "
                         "sum(InputTokens) AS i, sum(OutputTokens) AS o, sum(CachedTokens) AS c "
                         "FROM {db}.infersight_requests_1m GROUP BY CloudProvider, Model, ServerKind, Tenant "
                         "ORDER BY CloudProvider")
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    got = [(r["CloudProvider"], r["Model"], r["ServerKind"], r["Tenant"],
            *(int(r[k]) for k in ["req", "bad", "i", "o", "c"])) for r in rows]
    assert got == [("aws", "facebook/opt-125m", "vllm", "search", 6, 1, 300, 1000, 0),
                   ("azure", "gpt-4o", "openai", "legal", 3, 1, 3600, 900, 3000)]
    lat = src.query("SELECT ServerKind, sum(Count) AS n, sumForEach(BucketCounts) AS b, any(Bounds) AS bounds "
                    "FROM {db}.infersight_latency_1m WHERE Kind = 'e2e' GROUP BY ServerKind ORDER BY ServerKind")
    vllm, spans = lat[1], lat[0]
    assert (spans["ServerKind"], int(spans["n"])) == ("openai", 3)
    assert vllm["ServerKind"] == "vllm" and int(vllm["n"]) == 3
    b = [int(x) for x in vllm["b"]]
    # 0.9 and 2.0 fall in vLLM V0 buckets (0.x, 1] and (1, 2.5]; 70 s in (60, +Inf], re-bucketed at +Inf.
    assert b[vllm["bounds"].index(1.0)] == 1 and b[vllm["bounds"].index(2.5)] == 1 and b[-1] == 1
    minutes = int(src.query("SELECT uniqExact(Minute) AS m FROM {db}.infersight_nodes_1m "
                            "WHERE HostName = 'gpu-1' AND HostType = 'p5.48xlarge'")[0]["m"])
    assert minutes in (1, 2)  # two scrapes, possibly either side of a minute boundary

    (tmp_path / "prices.yaml").write_text(CATALOG)
    res = subprocess.run([sys.executable, "-m", "infersight.cli", "cost", "report", "--server", server,
                          "--prices", "prices.yaml", "--since", "1h", "--by", "cloud,model", "--format", "json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 0, res.stderr
    lines = {(ln["cloud"], ln["model"]): ln for ln in json.loads(res.stdout)["lines"]}
    gpt = lines[("azure", "gpt-4o")]
    assert (gpt["api_usd"], gpt["usd_per_request"]) == ("0.01425", "0.00475")
    opt = lines[("aws", "facebook/opt-125m")]
    node_usd = {1: "1.6386666667", 2: "3.2773333333"}[minutes]  # minutes x 98.32 / 60
    assert opt["node_usd"] == node_usd and opt["output_tokens"] == 1000 and opt["unpriced"] == []
