"""Probe SLOs: the real probe collector against loopback fake endpoints, its points exported as the agent
does (OTLP protobuf) into the real gateway and chDB, evaluated by the SLO engine's evaluator.

Numbers are checked against a reference computed here from the probes' own outcomes and timings.
"""
from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from infersight import rollups
from infersight import semconv as sc
from infersight.agent.loop import ScopedPoints
from infersight.collectors.inference import metrics as inference_metrics
from infersight.collectors.probe import ProbeCollector, ProbeEndpoint
from infersight.collectors.probe import metrics as probe_metrics
from infersight.config import parse_config
from infersight.exporters.encode import encode, to_metrics_data
from infersight.slo.evaluator import Evaluator
from infersight.slo.spec import SpecError, parse_documents
from support.slo import make_slo

pytest.importorskip("chdb")

NODE = {"service.name": "infersight-agent", "host.name": "prober-1", "cloud.provider": "gcp",
        "cloud.region": "europe-west4"}
MODEL = "llama-3.1-8b"
ROUNDS = 10


class FakeEndpoints:
    """OpenAI-compatible chat completions on loopback: per endpoint name, answer a stream or a 500."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.slow: set[str] = set()
        self.app = web.Application()
        self.app.router.add_post("/{name}/v1/chat/completions", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        await request.read()
        if name in self.failing:
            return web.json_response({"error": {"message": "upstream overloaded", "type": "server_error"}},
                                     status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if name in self.slow:
            await asyncio.sleep(0.3)  # TTFT over 0.25 s
        chunks = ['{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
                  '{"choices":[{"index":0,"delta":{"content":"ok"}}]}',
                  '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
                  '{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}',
                  "[DONE]"]
        for c in chunks:
            await resp.write(f"data: {c}\n\n".encode())
        await resp.write_eof()
        return resp


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _endpoints(base: str) -> list[ProbeEndpoint]:
    return [ProbeEndpoint(name="aoai-eastus2", base_url=f"{base}/aoai-eastus2/v1", model=MODEL,
                          provider="azure.ai.openai", cloud_provider="azure", cloud_region="eastus2"),
            ProbeEndpoint(name="bedrock-use1", base_url=f"{base}/bedrock-use1/v1", model=MODEL,
                          provider="aws.bedrock", cloud_provider="aws", cloud_region="us-east-1")]


async def _post(client: TestClient, points, scope: str, resource: dict = NODE) -> None:
    body = encode(to_metrics_data([ScopedPoints(scope, points)], resource, time.time_ns()))
    r = await client.post("/v1/metrics", data=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status == 200, await r.text()


async def _until(pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


def _slo(name: str, sli: dict, **kw):
    return make_slo(name=name, sli=sli, objective=99, window={"rolling": "7d"}, **kw)


@pytest.fixture
async def fed(store):
    """ROUNDS minutes of probes of two endpoints (Azure fails from round 5 on, Bedrock is slow from round
    8 on) plus user traffic of a vLLM server, all through the gateway. Returns (now, reference)."""
    fake = FakeEndpoints()
    cfg = parse_config({"server": {"flush_interval_seconds": 0.05, "storage": {"database": store.database}}})
    from infersight.gateway.app import create_app

    async with TestServer(fake.app, host="127.0.0.1") as upstream, \
            TestClient(TestServer(create_app(cfg.server, store), host="127.0.0.1")) as client:
        base = str(upstream.make_url("")).rstrip("/")
        start = (int(time.time()) // 60 - ROUNDS - 2) * 60
        wall = Wall(start)
        collector = ProbeCollector(_endpoints(base), timeout_seconds=5, wall=wall)
        ref: dict = {"probes": {}, "bad": {}, "ttft": {}}
        for i in range(ROUNDS):
            wall.t = start + i * 60 + 10
            if i == 5:
                fake.failing.add("aoai-eastus2")
            if i == 8:
                fake.slow.add("bedrock-use1")
            points = await asyncio.to_thread(lambda: list(collector.collect()))
            for p in points:
                cloud = p.attributes.get(sc.CLOUD_PROVIDER)
                if p.name == sc.PROBE_REQUESTS:
                    ref["probes"][cloud] = ref["probes"].get(cloud, 0) + 1
                    ref["bad"][cloud] = ref["bad"].get(cloud, 0) + (p.attributes[sc.OUTCOME] == "bad")
                if p.name == sc.CLIENT_TIME_TO_FIRST_CHUNK:
                    ref["ttft"].setdefault(cloud, []).append(p.value)
            await _post(client, points, "infersight.collectors.probe")
        # User traffic of a self-hosted server in the same minutes: 50 good requests a minute, none bad.
        t_ns = (start + 30) * 10**9
        user = [inference_metrics.REQUESTS.point(50, {sc.MODEL: MODEL, sc.SERVER_KIND: "vllm", sc.OUTCOME: "good"},
                                                 temporality="delta", time_ns=t_ns + i * 60 * 10**9,
                                                 start_time_ns=t_ns + i * 60 * 10**9 - 10**9)
                for i in range(ROUNDS)]
        await _post(client, user, "infersight.collectors.inference",
                    {**NODE, "host.name": "gpu-1", "cloud.provider": "aws", "cloud.region": "us-east-1"})
        db = f"`{store.database}`"
        assert await _until(lambda: int(store.query(
            f"SELECT count() AS n FROM {db}.otel_metrics_sum WHERE MetricName = '{sc.PROBE_REQUESTS}'")[0]["n"])
            == 2 * ROUNDS and int(store.query(f"SELECT sum(Requests) AS n FROM {db}.infersight_requests_1m")[0]["n"])
            == 50 * ROUNDS)
    yield start + ROUNDS * 60 + 60, ref


def _by_group(results):
    return {dict(r.group).get(sc.CLOUD_PROVIDER, ""): r for r in results}


async def test_failing_probes_burn_the_probe_availability_slo_not_user_traffic(store, fed):
    now, ref = fed
    assert ref["bad"] == {"azure": ROUNDS - 5, "aws": 0}
    probe_avail = _slo("probe-availability", {"probe_availability": {}},
                       group_by=[sc.CLOUD_PROVIDER, sc.CLOUD_REGION])
    user_avail = _slo("user-availability", {"ratio": {}})
    results = Evaluator(store).evaluate([probe_avail, user_avail], now)
    probe = _by_group(r for r in results if r.slo.name == "probe-availability")
    assert set(probe) == {"azure", "aws"}
    azure, aws = probe["azure"], probe["aws"]
    assert dict(azure.group) == {sc.CLOUD_PROVIDER: "azure", sc.CLOUD_REGION: "eastus2"}
    # Reference: every probe is one event, a failed one a bad event; exact fractions.
    assert (azure.period.events, azure.period.consumed) == (ROUNDS, ROUNDS - 5)
    assert azure.sli == Fraction(5, ROUNDS)
    assert azure.budget_remaining == 1 - Fraction(ROUNDS - 5, ROUNDS) / Fraction(1, 100)
    assert azure.state == "exhausted"
    fast = next(t for t in azure.tiers if t.tier.name == "page-fast")
    assert fast.active and fast.long.burn_rate == Fraction(ROUNDS - 5, ROUNDS) / Fraction(1, 100)
    assert aws.sli == 1 and aws.state == "ok" and not any(t.active for t in aws.tiers)
    # The user-traffic SLO sees the server's 500 good requests only: probe failures never enter it.
    (user,) = [r for r in results if r.slo.name == "user-availability"]
    assert (user.period.events, user.period.consumed, user.state) == (50 * ROUNDS, 0, "ok")
    db = f"`{store.database}`"
    assert store.query(f"SELECT DISTINCT Model, ServerKind FROM {db}.infersight_requests_1m") == \
        [{"Model": MODEL, "ServerKind": "vllm"}]
    assert int(store.query(f"SELECT count() AS n FROM {db}.infersight_latency_1m")[0]["n"]) == 0

    # Time slices: a minute is bad when any probe of it failed.
    sliced = _slo("probe-minutes", {"probe_availability": {"filters": {sc.CLOUD_PROVIDER: "azure"}}},
                  budgeting="timeslices")
    (r,) = Evaluator(store).evaluate([sliced], now)
    assert (r.period.events, r.period.consumed) == (ROUNDS, ROUNDS - 5)


async def test_probe_ttft_slo_with_and_without_failed_probes(store, fed):
    now, ref = fed
    thr = 0.25
    ttft = {c: (len(v), sum(1 for x in v if x > thr)) for c, v in ref["ttft"].items()}
    assert ttft["aws"][1] >= ROUNDS - 8  # the slow rounds answered after 0.3 s
    base = {"kind": "ttft", "threshold_seconds": thr}
    excluded = _slo("probe-ttft", {"probe_latency": base}, group_by=[sc.CLOUD_PROVIDER])
    counted = _slo("probe-answered-in-time", {"probe_latency": {**base, "failed_probes": "bad"}},
                   group_by=[sc.CLOUD_PROVIDER])
    strict = _slo("probe-ttft-fast", {"probe_latency": {**base, "threshold_seconds": 0.1}},
                  group_by=[sc.CLOUD_PROVIDER])
    results = Evaluator(store).evaluate([excluded, counted, strict], now)
    assert all(r.error is None for r in results), [r.error for r in results]
    got = {(r.slo.name, dict(r.group)[sc.CLOUD_PROVIDER]): (r.period.events, r.period.consumed) for r in results}
    for cloud, (n, over) in ttft.items():
        assert got[("probe-ttft", cloud)] == (n, over)
        assert got[("probe-answered-in-time", cloud)] == (n + ref["bad"][cloud], over + ref["bad"][cloud])
    assert got[("probe-ttft", "azure")][0] == 5  # only the successful probes have a TTFT
    assert got[("probe-ttft-fast", "aws")][1] >= ttft["aws"][1]


def test_spec_errors_name_the_field():
    def doc(sli, **spec):
        body = {"sli": sli, "objective_percent": 99, "window": {"rolling": "7d"}, **spec}
        return {"apiVersion": "infersight/v1", "kind": "SLO", "metadata": {"name": "p"}, "spec": body}

    with pytest.raises(SpecError, match=r"probe_latency: .*0\.3 is not a bucket boundary of the probe's ttft"):
        parse_documents([doc({"probe_latency": {"kind": "ttft", "threshold_seconds": 0.3}})], "f.yaml")
    with pytest.raises(SpecError, match=r"attribute 'host.name' is not available to probe_availability"):
        parse_documents([doc({"probe_availability": {}}, group_by=["host.name"])], "f.yaml")
    with pytest.raises(SpecError, match=r"probe_latency.failed_probes"):
        parse_documents([doc({"probe_latency": {"threshold_seconds": 0.25, "failed_probes": "maybe"}})], "f.yaml")
    ok = parse_documents([doc({"probe_latency": {"kind": "e2e", "threshold_seconds": 2.56}},
                              group_by=[sc.CLOUD_PROVIDER, sc.CLOUD_REGION, sc.PROBE_ENDPOINT])], "f.yaml")
    assert ok[0].spec.sli.kind == "probe_latency"


def test_probe_names_never_reach_user_traffic_rollups():
    """Probe traffic stays out of user-traffic SLIs and cost by contract: no probe metric is a name the request
    or latency rollups count (histograms of gen_ai.client.token.usage land in another table than its sums)."""
    read_by_rollups = set(rollups.LATENCY_METRICS) | {sc.INFERENCE_REQUESTS}
    for spec in probe_metrics.METRICS:
        assert spec.name not in read_by_rollups, spec.name
        if spec.name in rollups.COUNTED_SUMS:
            assert spec.kind == "histogram", spec.name  # the rollups read only the sums of that name
        assert sc.TRAFFIC in spec.attributes


def test_multi_cloud_example_passes_config_check_and_its_probe_slos_load():
    """examples/multi-cloud.yaml (README "Multi-cloud"): two clouds, one model, probes, a LiteLLM proxy and a
    self-hosted vLLM; `config check` accepts it and examples/slos/probes.yaml compiles."""
    from tests.test_config import EXAMPLES, run_cli

    from infersight.config import load_config
    from infersight.slo.model import load_slos

    out = run_cli("config", "check", str(EXAMPLES / "multi-cloud.yaml"))
    assert out.returncode == 0, out.stderr
    cfg = load_config(EXAMPLES / "multi-cloud.yaml", env={})
    assert [c.type for c in cfg.collectors] == ["host", "inference", "probe"]
    inference, probes = cfg.collectors[1], cfg.collectors[2]
    assert [e.kind for e in inference.endpoints] == ["vllm", "litellm"]
    assert {(e.cloud_provider, e.cloud_region) for e in probes.endpoints} == \
        {("aws", "us-west-2"), ("azure", "eastus2"), ("aws", "us-east-1")}
    assert all(e.headers_file or e.base_url.startswith("http://127.0.0.1") for e in probes.endpoints)
    slos = {s.name: s for s in load_slos([EXAMPLES / "slos" / "probes.yaml"])}
    assert slos["probe-availability"].sli_kind == "probe_availability"
    assert slos["probe-ttft"].sli.failed_bad and slos["probe-ttft"].group_by == (sc.CLOUD_PROVIDER, sc.CLOUD_REGION)
