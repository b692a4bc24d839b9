"""Probe collector against a loopback aiohttp server replaying recorded provider response shapes
(tests/fixtures/probe/, reconstructed from public docs: SOURCES.md); nothing leaves 127.0.0.1."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web

from infersight.collectors.probe import HttpTransport, ProbeCollector, ProbeConfig, ProbeEndpoint
from infersight.collectors.probe.openai import probe
from infersight.config import ConfigError, parse_config
from support.paths import FIXTURES


class Replay:
    """aiohttp on 127.0.0.1 in its own thread: POST /<fixture>/... answers with that fixture."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/{name}/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.started.set()
        self.loop.run_forever()

    def url(self, name: str, tail: str = "v1") -> str:
        return f"http://127.0.0.1:{self.port}/{name}/{tail}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers),
                              "body": await request.json()})
        if name == "slow":
            await asyncio.sleep(8)
        f = json.loads((FIXTURES / "probe" / f"{name}.json").read_text())
        if "body" in f:
            return web.Response(status=f["status"], headers=f["headers"], text=f["body"])
        resp = web.StreamResponse(status=f["status"], headers=f["headers"])
        await resp.prepare(request)
        for e in f["events"]:
            await asyncio.sleep(e["delay_ms"] / 1000)
            await resp.write(f"data: {e['data']}\n\n".encode())
        if f.get("cut"):
            request.transport.close()  # connection lost mid-stream: no terminating chunk
            return resp
        await resp.write_eof()
        return resp

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def replay():
    srv = Replay()
    yield srv
    srv.close()


def ep(replay: Replay, name: str, **kw) -> ProbeEndpoint:
    base = {"name": name, "base_url": replay.url(name), "model": "m", "cloud_provider": "azure",
            "cloud_region": "eastus2"}
    return ProbeEndpoint(**{**base, **kw})


def points_of(collector: ProbeCollector):
    points = list(collector.collect())
    specs = {s.name: s for s in collector.metrics}
    for p in points:
        spec = specs[p.name]
        assert (p.kind, p.unit) == (spec.kind, spec.unit), p.name
        assert set(p.attributes) <= set(spec.attributes), (p.name, set(p.attributes) - set(spec.attributes))
        assert p.attributes["infersight.traffic"] == "probe"
        if p.kind == "histogram":
            assert p.count == 1 and sum(p.bucket_counts) == 1 and len(p.bucket_counts) == len(p.bounds) + 1
            assert p.bucket_counts[next((i for i, b in enumerate(p.bounds) if p.value <= b), len(p.bounds))] == 1
        if p.kind in ("counter", "histogram"):
            assert p.temporality == "delta" and p.start_time_ns < p.time_ns
    return points


def by_name(points, name):
    found = [p for p in points if p.name == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_azure_v1_stream_ttft_skips_role_and_filter_chunks(replay):
    c = ProbeCollector([ep(replay, "azure_v1_stream", model="gpt-4o", provider="azure.ai.openai",
                           headers={"api-key": "s3cret"})], timeout_seconds=10)
    points = points_of(c)
    req = replay.requests[0]
    assert req["path"] == "/azure_v1_stream/v1/chat/completions"
    assert req["headers"]["api-key"] == "s3cret" and req["headers"]["Accept"] == "text/event-stream"
    prompt = [{"role": "user", "content": "Reply with the single word: ok"}]
    assert req["body"] == {"model": "gpt-4o", "messages": prompt, "max_tokens": 8, "stream": True,
                           "stream_options": {"include_usage": True}}
    r = by_name(points, "infersight.probe.requests")
    assert r.value == 1 and r.attributes["infersight.request.outcome"] == "good"
    assert r.attributes["http.response.status_code"] == 200
    assert r.attributes["infersight.serving_region"] == "East US 2"
    assert r.attributes["cloud.region"] == "eastus2" and r.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    headers = by_name(points, "infersight.probe.time_to_headers").value
    ttft = by_name(points, "gen_ai.client.operation.time_to_first_chunk").value
    e2e = by_name(points, "gen_ai.client.operation.duration").value
    # The content is sent 60 ms after the filter-results and role-only chunks, which come with the headers: a
    # time to first chunk taken at those would be under 60 ms whenever they arrive promptly. Only causal bounds,
    # so a loaded machine (headers seen late) cannot fail it.
    assert headers <= ttft and 0.06 <= ttft < e2e
    # Reference: 4 output tokens (usage), content chunks 20 ms apart -> (t_last - t_first) / 3 = 20 ms.
    tpot = by_name(points, "gen_ai.client.operation.time_per_output_chunk").value
    assert 0.018 <= tpot <= (e2e - ttft) / 3 + 1e-9  # the first and last chunk lie within [ttft, e2e]
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens == {"input": 14, "output": 4}
    limits = {p.attributes["infersight.ratelimit.kind"]: p.value for p in points
              if p.name == "infersight.ratelimit.remaining"}
    assert limits == {"requests": 4999, "tokens": 799982}
    assert by_name(points, "infersight.probe.tokens_today").value == 18


def test_result_fields_per_provider(replay):
    t = HttpTransport()
    cases = {"vllm_stream": "chatcmpl-3f2b", "bedrock_stream": "a8f3c1d2-7e6b-4a59-9c0d-1e2f3a4b5c6d",
             "vertex_stream": "vtx-req-77", "tgi_messages_stream": None}
    for name, request_id in cases.items():
        r = probe(t, replay.url(name) + "/chat/completions", {}, b"{}", 10, time.monotonic)
        assert r.ok, (name, r.error_type, r.error)
        assert r.status == 200 and r.request_id == request_id, name
        assert (r.input_tokens, r.output_tokens) == (14, 4), name
        assert r.content_chunks == 4 and r.ttft is not None and r.ttft >= 0.05, name
        # Causal upper bound: the first and last content chunk lie within [ttft, duration].
        assert r.tpot is not None and 0.015 <= r.tpot <= (r.duration - r.ttft) / 3 + 1e-9, name
        assert r.time_to_headers is not None and r.time_to_headers <= r.ttft <= r.duration, name


def test_azure_deployment_path_and_429_retry_after(replay):
    e = ep(replay, "azure_429", dialect="azure", model=None, deployment="gpt-4o", api_version="2024-10-21",
           base_url=replay.url("azure_429", "res"), interval_seconds=1)
    now = [1000.0]
    c = ProbeCollector([e], timeout_seconds=10, clock=lambda: now[0])
    points = points_of(c)
    assert replay.requests[0]["path"] == "/azure_429/res/openai/deployments/gpt-4o/chat/completions" \
                                         "?api-version=2024-10-21"
    assert "model" not in replay.requests[0]["body"]
    r = by_name(points, "infersight.probe.requests")
    assert r.attributes["infersight.request.outcome"] == "bad" and r.attributes["error.type"] == "429"
    assert r.attributes["http.response.status_code"] == 429
    assert by_name(points, "gen_ai.client.operation.time_to_first_chunk") is None
    assert by_name(points, "gen_ai.client.operation.duration").attributes["error.type"] == "429"
    assert {p.value for p in points if p.name == "infersight.ratelimit.remaining"} == {0}
    # Retry-After 7 s: not probed again before it passes, and the skipped probe is counted.
    now[0] += 3
    points = points_of(c)
    assert len(replay.requests) == 1
    assert by_name(points, "infersight.probe.skipped").attributes["reason"] == "retry_after"
    now[0] += 5
    points_of(c)
    assert len(replay.requests) == 2


def test_stream_cut_timeout_connect_and_http_errors(replay, caplog):
    closed = ProbeEndpoint(name="refused", base_url="http://127.0.0.1:9/v1", model="m")
    c = ProbeCollector([ep(replay, "stream_cut"), ep(replay, "slow"), closed,
                        ep(replay, "missing_fixture")], timeout_seconds=4)  # slack for a loaded machine
    points = points_of(c)
    errors = {p.attributes["infersight.probe.endpoint"]: p.attributes.get("error.type")
              for p in points if p.name == "infersight.probe.requests"}
    assert errors == {"stream_cut": "stream_cut", "slow": "timeout", "refused": "connect", "missing_fixture": "5xx"}
    cut = [p for p in points if p.name == "gen_ai.client.operation.duration"
           and p.attributes["infersight.probe.endpoint"] == "stream_cut"][0]
    assert cut.attributes["error.type"] == "stream_cut"
    # A cut stream's partial TTFT is not a TTFT sample: only complete answers count.
    assert not [p for p in points if p.name == "gen_ai.client.operation.time_to_first_chunk"]
    assert "probe stream_cut failed: stream_cut" in caplog.text and "request id chatcmpl-cut" in caplog.text


def test_daily_token_cap_stops_probing_until_the_next_utc_day(replay):
    wall = [1_760_000_000.0]
    c = ProbeCollector([ep(replay, "vllm_stream", daily_token_cap=30)], timeout_seconds=10, wall=lambda: wall[0])
    for _ in range(2):
        points_of(c)
    assert len(replay.requests) == 2  # 18 then 36 tokens: the cap (30) is reached after the second
    points = points_of(c)
    assert len(replay.requests) == 2
    assert by_name(points, "infersight.probe.skipped").attributes["reason"] == "daily_token_cap"
    assert by_name(points, "infersight.probe.tokens_today").value == 36
    wall[0] += 86400
    points = points_of(c)
    assert len(replay.requests) == 3 and by_name(points, "infersight.probe.tokens_today").value == 18


def test_headers_file_is_read_each_probe(replay, tmp_path):
    f = tmp_path / "headers"
    f.write_text("# mounted secret\nAuthorization: Bearer one\n")
    c = ProbeCollector([ep(replay, "vllm_stream", headers_file=f)], timeout_seconds=10)
    points_of(c)
    f.write_text("Authorization: Bearer two\n")
    points_of(c)
    assert [r["headers"]["Authorization"] for r in replay.requests] == ["Bearer one", "Bearer two"]
    f.write_text("no colon here\n")
    points = points_of(c)
    assert by_name(points, "infersight.probe.requests").attributes["error.type"] == "config"
    assert len(replay.requests) == 2


def test_config_entry_and_errors():
    cfg = parse_config({"collectors": [{"type": "probe", "endpoints": [
        {"name": "aoai-eastus2", "base_url": "https://r.openai.azure.com/openai/v1", "model": "gpt-4o",
         "headers": {"api-key": "sk-probe-secret"}, "cloud_provider": "azure", "cloud_region": "eastus2",
         "daily_token_cap": 20000},
        {"name": "aoai-dep", "dialect": "azure", "base_url": "https://r.openai.azure.com", "deployment": "gpt-4o",
         "api_version": "2024-10-21"}]}]})
    entry = cfg.collectors[0]
    assert isinstance(entry, ProbeConfig) and entry.interval_seconds == 60 and entry.timeout_seconds == 30
    assert "sk-probe-secret" not in repr(entry)  # secrets masked
    assert ProbeCollector.from_config(entry)._states[1].url.endswith("/deployments/gpt-4o/chat/completions"
                                                                     "?api-version=2024-10-21")
    with pytest.raises(ConfigError, match=r"collectors\.(0\.)?endpoints: .*at least 1 item"):
        parse_config({"collectors": [{"type": "probe", "endpoints": []}]})
    with pytest.raises(ConfigError, match=r"unknown key 'collectors\.(0\.)?endpoints\.0\.api_key'"):
        parse_config({"collectors": [{"type": "probe", "endpoints": [
            {"name": "a", "base_url": "http://h/v1", "model": "m", "api_key": "x"}]}]})
    with pytest.raises(ConfigError, match=r"azure dialect needs `deployment` and `api_version`"):
        parse_config({"collectors": [{"type": "probe", "endpoints": [
            {"name": "a", "base_url": "http://h", "dialect": "azure", "deployment": "d"}]}]})
    with pytest.raises(ConfigError, match=r"endpoint names must be unique"):
        parse_config({"collectors": [{"type": "probe", "endpoints": [
            {"name": "a", "base_url": "http://h/v1", "model": "m"}, {"name": "a", "base_url": "http://g/v1",
                                                                       "model": "m"}]}]})
