"""The server's /metrics (prometheus_client, a registry per app) and the SLO series with Sloth's names, scraped
by the real Prometheus and read back with PromQL; the numbers checked against the rows' own ratio."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from prometheus_client.parser import text_string_to_metric_families

from infersight.config import parse_config
from infersight.gateway import app as gateway
from infersight.server import metrics as server_metrics
from infersight.slo import prometheus as slo_prometheus
from infersight.slo import service as slo_service
from support.net import free_port
from support.slo import T0, Clock, slo_doc, steady_requests

NOW = T0 + 2 * 86400
PER_MINUTE, BAD_PER_MINUTE = 1000, 10  # error ratio 0.01 in every window; objective 99.9% -> burn rate 10
READ = "read-token"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name: str, **labels) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


async def _app(store, tmp_path, **server):
    spec = tmp_path / "slos.yaml"
    spec.write_text(yaml.safe_dump(slo_doc("avail", objective=99.9)))
    cfg = parse_config({"server": {"storage": {"database": store.database}, "flush_interval_seconds": 0.05,
                                   **server},
                        "slo": {"paths": [str(spec)], "interval_seconds": 3600}})
    app = gateway.base_app(cfg.server)
    gateway.attach_receiver(app, cfg.server, store)
    gateway.attach_query(app, cfg.server, store)
    slo_service.attach(app, cfg, store, clock=Clock(NOW))
    slo_prometheus.attach(app, slo_service.ENGINE)
    server_metrics.attach(app)
    srv = TestServer(app, host="127.0.0.1", port=free_port())
    await srv.start_server()
    return srv, cfg


async def _evaluated(app) -> None:
    engine = app[slo_service.ENGINE]
    for _ in range(100):
        if engine.results:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the SLO engine did not evaluate")


@pytest.fixture
async def served(store, tmp_path):
    steady_requests(store, T0, 2 * 1440, PER_MINUTE, BAD_PER_MINUTE)
    srv, _ = await _app(store, tmp_path)
    await _evaluated(srv.app)
    yield srv
    await srv.close()


def _gauges(n: int) -> bytes:
    req = msvc.ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="g")
    for i in range(n):
        m.gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000 + i, as_double=i)
    return req.SerializeToString()


async def test_server_metrics_count_requests_rejections_flushes_and_queries(served):
    base = f"http://127.0.0.1:{served.port}"
    pb = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/metrics", data=_gauges(3), headers=pb) as r:
            assert r.status == 200
        async with http.post(f"{base}/v1/metrics", data=b"\xff\xff", headers=pb) as r:
            assert r.status == 400
        async with http.post(f"{base}/v1/logs", data=b"{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.post(f"{base}/api/v1/query", json={"sql": "SELECT 1 AS x"}) as r:
            assert r.status == 200
        async with http.get(f"{base}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            samples = _samples(await r.text())
    assert _value(samples, "infersight_server_otlp_requests_total", signal="metrics", status="200") == 1
    assert _value(samples, "infersight_server_otlp_requests_total", signal="metrics", status="400") == 1
    assert _value(samples, "infersight_server_otlp_items_accepted_total", signal="metrics") == 3
    assert _value(samples, "infersight_server_otlp_refused_total", signal="metrics", reason="bad_request") == 1
    assert _value(samples, "infersight_server_otlp_refused_total", signal="logs", reason="unsupported_media_type") == 1
    assert _value(samples, "infersight_server_flushes_total", outcome="stored") >= 1
    assert _value(samples, "infersight_server_flush_rows_sum") >= 3
    assert _value(samples, "infersight_server_queue_rows") == 0
    assert _value(samples, "infersight_server_query_duration_seconds_count", interface="query_api") == 1
    assert _value(samples, "infersight_server_http_request_duration_seconds_count", route="/v1/metrics",
                  status="400") == 1
    assert _value(samples, "infersight_slo_instances", state="exhausted") == 1  # overspent (below)
    assert _value(samples, "infersight_slo_loaded") == 1
    assert _value(samples, "infersight_slo_silences_active") == 0
    assert _value(samples, "infersight_slo_evaluation_duration_seconds_count") >= 1
    assert _value(samples, "infersight_server_receiver_up", receiver="otlp_http") == 1


async def test_slo_series_have_sloth_names_and_the_reference_numbers(served):
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{served.port}/metrics/slo") as r:
        samples = _samples(await r.text())
    ids = {"sloth_id": "infersight-avail", "sloth_service": "infersight", "sloth_slo": "avail"}
    ratio = BAD_PER_MINUTE / PER_MINUTE
    for window in ("5m", "30m", "1h", "6h", "1d", "3d", "30d"):
        assert _value(samples, f"slo:sli_error:ratio_rate{window}", sloth_window=window, **ids) \
            == pytest.approx(ratio), window
    assert _value(samples, "slo:objective:ratio", **ids) == pytest.approx(0.999)
    assert _value(samples, "slo:error_budget:ratio", **ids) == pytest.approx(0.001)
    assert _value(samples, "slo:time_period:days", **ids) == 30
    assert _value(samples, "slo:current_burn_rate:ratio", **ids) == pytest.approx(ratio / 0.001)
    # 2 days of data in a 30-day window: the period burns at 10x, budget left = 1 - 10 (overspent).
    assert _value(samples, "slo:period_burn_rate:ratio", **ids) == pytest.approx(10)
    assert _value(samples, "slo:period_error_budget_remaining:ratio", **ids) == pytest.approx(1 - 10)
    tiers = [v for (n, _), v in samples.items() if n == "infersight_slo_tier_burn_rate"]
    assert tiers and all(v == pytest.approx(10) for v in tiers)  # every tier's long and short window
    assert _value(samples, "infersight_slo_state", state="exhausted", **ids) == 1


async def test_metrics_need_the_read_scope_when_tokens_are_configured(store, tmp_path):
    tokens = [{"name": "prom", "scopes": ["read"], "token": READ}, {"name": "agent", "scopes": ["ingest"],
                                                                     "token": "i"}]
    srv, _ = await _app(store, tmp_path, tokens=tokens)
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/metrics/slo"):
                async with http.get(f"http://127.0.0.1:{srv.port}{path}") as r:
                    assert r.status == 401
                async with http.get(f"http://127.0.0.1:{srv.port}{path}",
                                    headers={"Authorization": "Bearer i"}) as r:
                    assert r.status == 403
                async with http.get(f"http://127.0.0.1:{srv.port}{path}",
                                    headers={"Authorization": f"Bearer {READ}"}) as r:
                    assert r.status == 200
    finally:
        await srv.close()


def test_registries_are_per_app():
    a, b = server_metrics.ServerMetrics(), server_metrics.ServerMetrics()  # would raise on a shared registry
    a.ingested("metrics", 200, 5, 0, "")
    assert b.registry.get_sample_value("infersight_server_otlp_items_accepted_total", {"signal": "metrics"}) is None


def test_startup_summary_names_what_was_loaded(store):
    cfg = parse_config({"server": {"grpc_listen": None}})
    from aiohttp import web

    assert server_metrics.loaded_summary(cfg, web.Application()) == (
        "loaded: storage embedded at data (database otel); receivers: otlp-http 127.0.0.1:4318; no SLO engine; "
        "0 price catalogs; 0 tokens")


@pytest.mark.e2e
async def test_real_prometheus_scrapes_and_promql_reads_the_slo_series(store, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`; .ci/run installs it)")
    steady_requests(store, T0, 2 * 1440, PER_MINUTE, BAD_PER_MINUTE)
    tokens = [{"name": "prom", "scopes": ["read"], "token": READ}]
    srv, _ = await _app(store, tmp_path, tokens=tokens)
    await _evaluated(srv.app)
    (tmp_path / "token").write_text(READ)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "infersight", "metrics_path": path, "static_configs": [
            {"targets": [f"127.0.0.1:{srv.port}"]}], "authorization": {"credentials_file": str(tmp_path / "token")}}
            for path in ("/metrics/slo",)] + [{"job_name": "infersight-server", "static_configs": [
                {"targets": [f"127.0.0.1:{srv.port}"]}], "authorization": {
                    "credentials_file": str(tmp_path / "token")}}],
        "rule_files": []}))
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    api = f"http://127.0.0.1:{prom_port}/api/v1/query"
    try:
        async with aiohttp.ClientSession() as http:
            async def promql(q: str) -> list[dict]:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        async with http.get(api, params={"query": q}) as r:
                            body = await r.json()
                        if body.get("data", {}).get("result"):
                            return body["data"]["result"]
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise AssertionError(f"no result for {q}: {proc.stderr.read() if proc.poll() else ''}")
                    await asyncio.sleep(0.5)

            (five,) = await promql('slo:sli_error:ratio_rate5m{job="infersight",sloth_slo="avail"}')
            assert five["metric"]["sloth_window"] == "5m" and five["metric"]["job"] == "infersight"
            assert float(five["value"][1]) == pytest.approx(0.01)
            # Sloth's own expression for the current burn rate, over the scraped series.
            (burn,) = await promql('slo:sli_error:ratio_rate5m{job="infersight",sloth_slo="avail"} / on(sloth_id, '
                                   'sloth_slo, sloth_service) group_left slo:error_budget:ratio{job="infersight"}')
            assert float(burn["value"][1]) == pytest.approx(10)
            (up,) = await promql('infersight_server_receiver_up{job="infersight-server",receiver="otlp_http"}')
            assert up["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(10)
        await srv.close()
