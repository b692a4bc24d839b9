"""The compare report: one model per cloud/region/deployment, checked against numbers computed by hand, and the
same document from GET /api/v1/compare, `infersight compare --server` (with and without --prices) and the
offline path."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from infersight import quantiles
from infersight.compare import report as compare_report
from infersight.config import parse_config
from support.slo import slo_doc

MODEL = "llama-3.1-8b"
PRICES = """
api:
  - {provider: azure.ai.openai, model: llama-3.1-8b, input_usd_per_million: 0.30, output_usd_per_million: 0.60}
capacity:
  - {cloud: aws, region: us-east-1, instance_type: p5.48xlarge, on_demand_usd_per_hour: 60}
"""
# A provider's announced price change: Azure's list price doubles.
NEW_PRICES = """
api:
  - {provider: azure.ai.openai, model: llama-3.1-8b, input_usd_per_million: 0.60, output_usd_per_million: 1.20}
capacity:
  - {cloud: aws, region: us-east-1, instance_type: p5.48xlarge, on_demand_usd_per_hour: 60}
"""


# -- data through the real tables (source rows; the rollups' views fill the 1m tables) -------------------------
def _insert(store, table: str, rows: list[dict]) -> None:
    store.execute(f"INSERT INTO `{store.database}`.`{table}` FORMAT JSONEachRow "
                  + "\n".join(json.dumps(r) for r in rows))


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def populate(store, now: int) -> None:
    """A vLLM node on AWS (scraped deltas), an app calling Azure (GenAI spans), and an Azure probe."""
    t = _ts(now - 300)
    node = {"cloud.provider": "aws", "cloud.region": "us-east-1", "host.name": "gpu-1", "host.type": "p5.48xlarge"}
    attrs = {"gen_ai.request.model": MODEL, "infersight.server.kind": "vllm"}

    def delta(name, value, **extra):
        return {"ResourceAttributes": node, "MetricName": name, "Attributes": {**attrs, **extra}, "TimeUnix": t,
                "StartTimeUnix": t, "Value": value, "AggregationTemporality": 1, "IsMonotonic": True}
    _insert(store, "otel_metrics_sum", [
        delta("infersight.inference.requests", 95, **{"infersight.request.outcome": "good"}),
        delta("infersight.inference.requests", 5, **{"infersight.request.outcome": "bad", "error.type": "abort"}),
        delta("gen_ai.client.token.usage", 40000, **{"gen_ai.token.type": "input"}),
        delta("gen_ai.client.token.usage", 10000, **{"gen_ai.token.type": "output"})])
    # vLLM TTFT buckets (0.1, 0.2, 0.5 are rollup bounds): 10 / 80 / 10.
    _insert(store, "otel_metrics_histogram", [{
        "ResourceAttributes": node, "MetricName": "gen_ai.server.time_to_first_token", "Attributes": attrs,
        "TimeUnix": t, "StartTimeUnix": t, "Count": 100, "Sum": 16.0, "BucketCounts": [10, 80, 10, 0],
        "ExplicitBounds": [0.1, 0.2, 0.5], "AggregationTemporality": 1}])
    _insert(store, "otel_metrics_gauge", [
        {"ResourceAttributes": node, "MetricName": "infersight.inference.endpoint.up", "Value": 1,
         "Attributes": attrs, "TimeUnix": _ts(now - 60 * m)} for m in (2, 3, 4, 5, 6, 7)])  # 6 minutes up
    app = {"cloud.provider": "azure", "cloud.region": "eastus2", "host.name": "app-1"}
    spans = []
    for i in range(20):  # 20 requests, one failed; TTFT 0.3 s (10) and 0.7 s (10); 1000 in, 100 out each
        spans.append({"Timestamp": t, "ResourceAttributes": app, "SpanName": "chat", "Duration": 2_000_000_000,
                      "StatusCode": "Error" if i == 0 else "Ok",
                      "SpanAttributes": {"gen_ai.request.model": MODEL, "gen_ai.provider.name": "azure.ai.openai",
                                         "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "100",
                                         "gen_ai.server.time_to_first_token": "0.3" if i < 10 else "0.7"}})
    _insert(store, "otel_traces", spans)
    probe = {"gen_ai.request.model": MODEL, "gen_ai.provider.name": "azure.ai.openai", "cloud.provider": "azure",
             "cloud.region": "eastus2", "infersight.traffic": "probe", "infersight.probe.endpoint": "aoai-eastus2"}
    agent = {"host.name": "probe-node"}
    _insert(store, "otel_metrics_sum", [
        {"ResourceAttributes": agent, "MetricName": "infersight.probe.requests", "TimeUnix": t, "StartTimeUnix": t,
         "Attributes": {**probe, "infersight.request.outcome": o, **({"error.type": "429"} if o == "bad" else {})},
         "Value": n, "AggregationTemporality": 1, "IsMonotonic": True} for o, n in (("good", 9), ("bad", 1))])
    _insert(store, "otel_metrics_histogram", [{
        "ResourceAttributes": agent, "MetricName": "gen_ai.client.operation.time_to_first_chunk", "Attributes": probe,
        "TimeUnix": t, "StartTimeUnix": t, "Count": 9, "Sum": 2.7, "BucketCounts": [0, 9, 0],
        "ExplicitBounds": [0.25, 0.5], "AggregationTemporality": 1}])


def _specs(tmp_path: Path) -> Path:
    d = tmp_path / "slos"
    d.mkdir()
    group = ["cloud.provider", "cloud.region", "infersight.server.kind", "gen_ai.request.model"]
    (d / "avail.yaml").write_text(yaml.safe_dump(slo_doc(name="avail", objective=99, window={"rolling": "1h"},
                                                         group_by=group)))
    return d


def _cfg(tmp_path: Path, store, specs: Path):
    (tmp_path / "prices.yaml").write_text(PRICES)
    (tmp_path / "new.yaml").write_text(NEW_PRICES)
    return parse_config({"server": {"storage": {"database": store.database}},
                         "slo": {"paths": [str(specs)], "interval_seconds": 0.2},
                         "cost": {"catalogs": [str(tmp_path / "prices.yaml")]}})


def check_reference(doc: dict, ref_ttft: dict) -> None:
    """Every number against a computation by hand."""
    deps = {d["key"]: d for d in doc["deployments"]}
    assert set(deps) == {"aws/us-east-1/vllm", "azure/eastus2/azure.ai.openai"}
    vllm, aoai = deps["aws/us-east-1/vllm"], deps["azure/eastus2/azure.ai.openai"]
    assert (vllm["hosting"], vllm["hosts"], vllm["requests"], vllm["bad_requests"]) == \
        ("self-hosted", ["gpu-1"], 100, 5)
    assert vllm["error_ratio"] == pytest.approx(0.05)
    assert vllm["tokens"] == {"input": 40000, "output": 10000, "cached": 0, "total": 50000}
    ttft = vllm["latency"]["ttft"]
    # Against a reference computed here from whatever bounds the rollup stored (the fixed rollup bounds re-bucket
    # (0.1, 0.2] into (0.15, 0.2]; a rollup keeping native bounds keeps (0.1, 0.2]).
    # One layout: Prometheus' histogram_quantile, not an estimate.
    assert ttft["count"] == 100 and ttft["layouts"] == 1 and not ttft["p50"]["estimate"]
    for q in ("p50", "p95"):
        assert ttft[q]["value"] == pytest.approx(ref_ttft[q][0])
        assert (ttft[q]["lower"], ttft[q]["upper"]) == ref_ttft[q][1:]
    assert vllm["latency"]["tpot"] is None and vllm["probe"] is None
    # 6 node-minutes at $60/h = $6 over 50 000 tokens = $120 per 1M tokens.
    assert vllm["cost"]["pricing"] == "capacity" and vllm["cost"]["spend_usd"] == "6"
    assert vllm["cost"]["usd_per_million_tokens"] == "120"

    assert (aoai["hosting"], aoai["requests"], aoai["bad_requests"]) == ("api", 20, 1)
    assert aoai["tokens"]["total"] == 22000
    # Span TTFTs are exact observations (0.3 s x 10, 0.7 s x 10): each estimate's bucket holds the true value.
    def holds(est: dict, value: float) -> bool:
        return est["lower"] < value <= est["upper"]
    assert holds(aoai["latency"]["ttft"]["p50"], 0.3) and holds(aoai["latency"]["ttft"]["p95"], 0.7)
    assert holds(aoai["latency"]["e2e"]["p50"], 2.0)
    # 20 x (1000 x 0.30 + 100 x 0.60) / 1M = $0.0072 over 22 000 tokens = $0.3272727... per 1M.
    assert aoai["cost"]["pricing"] == "list" and aoai["cost"]["spend_usd"] == "0.0072"
    assert aoai["cost"]["usd_per_million_tokens"] == "0.3272727273"
    p = aoai["probe"]
    assert (p["requests"], p["failed"], p["errors"], p["endpoints"]) == (10, 1, {"429": 1}, ["aoai-eastus2"])
    assert p["latency"]["ttft"]["count"] == 9 and p["latency"]["ttft"]["p50"]["value"] == pytest.approx(0.375)


def reference_ttft(store) -> dict:
    """p50/p95 of the vLLM TTFT rollup rows by hand: cumulative counts, linear inside the bucket."""
    rows = store.query(f"SELECT Bounds AS b, sumForEach(BucketCounts) AS c FROM "
                       f"`{store.database}`.infersight_latency_1m "
                       "WHERE Kind = 'ttft' AND CloudProvider = 'aws' GROUP BY Bounds")
    assert len(rows) == 1
    bounds, counts = list(rows[0]["b"]), [int(n) for n in rows[0]["c"]]
    total, out = sum(counts), {}
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        cum = 0
        for i, n in enumerate(counts):
            if n and cum + n >= q * total:
                lo = bounds[i - 1] if i else 0.0
                out[name] = (lo + (bounds[i] - lo) * (q * total - cum) / n, lo, bounds[i])
                break
            cum += n
    return out


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("catalog", "slo_evaluated_at", "slo_source")}


async def _until(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_api_cli_and_offline_give_the_same_numbers(store, tmp_path):
    from infersight.cli.compare import format_table, server_doc, store_doc
    from infersight.compare import api as compare_api
    from infersight.gateway.app import attach_query, base_app
    from infersight.slo import service as slo_service

    now = int(time.time())
    populate(store, now)
    cfg = _cfg(tmp_path, store, _specs(tmp_path))
    app = base_app(cfg.server)
    attach_query(app, cfg.server, store)
    slo_service.attach(app, cfg, store)
    compare_api.attach(app, cfg, store)
    async with TestClient(TestServer(app)) as client:
        async def evaluated():
            doc = await (await client.get("/api/v1/compare", params={"model": MODEL, "since": "1h"})).json()
            return doc if doc["slo_evaluated_at"] and all(d["slo"]["instances"] for d in doc["deployments"]) else None

        doc = await _until(evaluated)
        ref = reference_ttft(store)
        check_reference(doc, ref)
        deps = {d["key"]: d for d in doc["deployments"]}
        # 5 % bad against a 1 % budget: exhausted; Azure 1/20 bad also 5 %: both burn. States come from the engine.
        assert deps["aws/us-east-1/vllm"]["slo"]["exhausted"]
        assert deps["aws/us-east-1/vllm"]["slo"]["budget_remaining"] == pytest.approx(1 - 0.05 / 0.01)
        assert doc["catalog"] == "server" and doc["percentiles"]["method"] == quantiles.METHOD

        url = str(client.make_url("")).rstrip("/")
        via_cli = await asyncio.to_thread(server_doc, url, None, cfg, MODEL, "1h", [])
        same_prices = await asyncio.to_thread(server_doc, url, None, cfg, MODEL, "1h", [tmp_path / "prices.yaml"])
        if via_cli["end"] != doc["end"]:  # crossed a minute boundary: ask again
            doc = await (await client.get("/api/v1/compare", params={"model": MODEL, "since": "1h"})).json()
        assert _strip(via_cli) == _strip(doc) and via_cli["catalog"] == doc["catalog"]
        assert _strip(same_prices) == _strip(doc)  # re-priced by the client under the same catalog: same numbers
        offline = await asyncio.to_thread(store_doc, store, cfg, MODEL, 3600, [], time.time())
        check_reference(offline, ref)
        assert [d["slo"]["exhausted"] for d in offline["deployments"]] == \
            [d["slo"]["exhausted"] for d in doc["deployments"]]

        # --prices: the same table under another catalog; the server's catalog is untouched.
        repriced = await asyncio.to_thread(server_doc, url, None, cfg, MODEL, "1h", [tmp_path / "new.yaml"])
        r = {d["key"]: d for d in repriced["deployments"]}
        assert r["azure/eastus2/azure.ai.openai"]["cost"]["usd_per_million_tokens"] == "0.6545454545"
        assert r["aws/us-east-1/vllm"]["cost"]["usd_per_million_tokens"] == "120"
        assert r["aws/us-east-1/vllm"]["latency"] == deps["aws/us-east-1/vllm"]["latency"]
        assert repriced["catalog"].startswith("prices: ")
        again = await (await client.get("/api/v1/compare", params={"model": MODEL, "since": "1h"})).json()
        assert {d["key"]: d["cost"] for d in again["deployments"]} == {k: d["cost"] for k, d in deps.items()}

        text = format_table(doc)
        assert "aws/us-east-1/vllm" in text
        assert f"≈{ref['p50'][0] * 1000:.0f}ms/≈{ref['p95'][0] * 1000:.0f}ms" in text and "$120.00 (capacity)" in text
        assert "PAGE (page-" in text and "-400 % (5× the budget spent)" in text and "10 (10.00% bad)" in text

        # Unhappy paths: clear 400s.
        r1 = await client.get("/api/v1/compare")
        assert r1.status == 400 and "model" in (await r1.json())["error"]
        r2 = await client.get("/api/v1/compare", params={"model": MODEL, "since": "yesterday"})
        assert r2.status == 400 and "since" in (await r2.json())["error"]
        r3 = await client.get("/api/v1/compare", params={"model": MODEL, "since": "400d"})
        assert r3.status == 400 and "max_since_seconds" in (await r3.json())["error"]
        empty = await (await client.get("/api/v1/compare", params={"model": "nope"})).json()
        assert empty["deployments"] == []


async def test_an_apps_own_metrics_next_to_its_spans_count_once(store):
    """An OpenLIT-style app through a real gateway: its spans and, of the same calls, its own request/token
    counters and duration histogram without a server kind (tests/test_slo_precedence.py). The spans make the
    deployment; the app's own rows are left out (docs/slo.md precedence), another app's counters without spans
    still count."""
    from tests import test_slo_precedence as openlit

    from infersight.config import ServerConfig
    from infersight.cost.usage import StoreSource
    from infersight.gateway.app import create_app

    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.05), store), host="127.0.0.1")
    await server.start_server()
    try:
        await openlit.emitted(store, f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()
    end = int(time.time()) // 60 * 60 + 120
    doc = compare_report.build(StoreSource(store), openlit.MODEL, end - 3600, end, None, None)
    deps = {d["key"]: d for d in doc["deployments"]}
    assert set(deps) == {"azure/westeurope/openai", "azure/westeurope/"}
    spans, other = deps["azure/westeurope/openai"], deps["azure/westeurope/"]
    assert (spans["hosts"], spans["requests"], spans["bad_requests"]) == (["app-1"], 10, 1)
    assert spans["tokens"] == {"input": openlit.INPUT, "output": openlit.OUTPUT, "cached": 0,
                               "total": openlit.INPUT + openlit.OUTPUT}
    e2e = spans["latency"]["e2e"]
    assert (e2e["count"], e2e["layouts"]) == (10, 1) and e2e["p95"]["lower"] < 0.4 <= e2e["p95"]["upper"]
    # app-2 sent counters only: counted; app-1's own counters and histogram (kind '') are not.
    o = openlit.OTHER
    assert (other["hosts"], other["requests"], other["bad_requests"]) == (["app-2"], o["requests"], o["bad"])
    assert other["tokens"]["total"] == o["input"] + o["output"] and other["latency"]["e2e"] is None


def test_latency_per_deployment_from_the_layout_ids_and_non_zero_buckets(store):
    """Each deployment's and Kind's latency equals quantiles.summary over the rollup's full bucket arrays (one
    layout: histogram_quantile; two: the estimate; a rank in +Inf: open); each layout's bounds are read once
    however many deployments and Kinds hold it, and nothing but the sums is read for a model without rows."""
    from infersight.cost.usage import StoreSource

    now = int(time.time())
    t = _ts(now - 300)
    one, other = [0.1, 0.2, 0.5, 1.0, 2.0], [0.25, 1.0]

    def hist(cloud: str, host: str, metric: str, bounds: list[float], counts: list[int]) -> dict:
        return {"ResourceAttributes": {"cloud.provider": cloud, "cloud.region": "r1", "host.name": host},
                "MetricName": metric, "Attributes": {"gen_ai.request.model": MODEL, "infersight.server.kind": "vllm"},
                "TimeUnix": t, "StartTimeUnix": t, "Count": sum(counts), "Sum": 1.0, "BucketCounts": counts,
                "ExplicitBounds": bounds, "AggregationTemporality": 1}
    ttft, tpot = "gen_ai.server.time_to_first_token", "gen_ai.server.time_per_output_token"
    _insert(store, "otel_metrics_histogram", [
        hist("aws", "gpu-1", ttft, one, [10, 0, 0, 0, 5, 0]), hist("aws", "gpu-1", tpot, one, [3, 0, 0, 0, 0, 1]),
        hist("aws", "gpu-2", ttft, other, [5, 5, 2]),  # a second layout in the same deployment: mixed
        hist("gcp", "gpu-3", ttft, one, [0, 0, 0, 0, 1, 6])])  # the p95 rank in +Inf
    sent: list[tuple[str, list]] = []

    class Recording(StoreSource):
        def query(self, sql: str) -> list[dict]:
            rows = super().query(sql)
            sent.append((sql, rows))
            return rows
    end = now // 60 * 60 + 60
    got = compare_report.latency_summaries(Recording(store), MODEL, end - 3600, end)
    ref: dict[tuple, list] = {}
    for r in store.query(f"SELECT CloudProvider AS cloud, Kind AS kind, Bounds AS b, sumForEach(BucketCounts) AS c "
                         f"FROM `{store.database}`.infersight_latency_1m GROUP BY cloud, kind, b"):
        ref.setdefault((r["cloud"], r["kind"]), []).append((r["b"], r["c"]))
    assert {(k[0], k[3]): v for k, v in got.items()} == {k: quantiles.summary(v) for k, v in ref.items()}
    assert (got[("aws", "r1", "vllm", "ttft")]["layouts"], got[("aws", "r1", "vllm", "ttft")]["p95"]["estimate"]) \
        == (2, True)
    assert got[("gcp", "r1", "vllm", "ttft")]["p95"]["open"] is True
    assert [len(rows) for sql, rows in sent if "Bounds" in sql] == [2]  # two layouts, one read, one row each
    doc = compare_report.build(StoreSource(store), MODEL, end - 3600, end, None, None)
    assert {d["key"]: d["latency"]["ttft"] for d in doc["deployments"]} == {
        "aws/r1/vllm": got[("aws", "r1", "vllm", "ttft")], "gcp/r1/vllm": got[("gcp", "r1", "vllm", "ttft")]}
    sent.clear()
    assert compare_report.latency_summaries(Recording(store), "no-such-model", end - 3600, end) == {}
    assert len(sent) == 1


def test_slo_instances_apply_to_the_deployments_they_pin():
    dep = {"cloud": "aws", "region": "us-east-1", "kind": "vllm", "hosts": ["gpu-1"]}
    assert compare_report.applies({"cloud.provider": "aws", "gen_ai.request.model": MODEL}, MODEL, dep)
    assert compare_report.applies({"host.name": "gpu-1"}, MODEL, dep)
    assert not compare_report.applies({"host.name": "gpu-2"}, MODEL, dep)
    assert not compare_report.applies({"cloud.provider": "gcp"}, MODEL, dep)
    assert not compare_report.applies({"cloud.provider": "aws", "gen_ai.request.model": "other"}, MODEL, dep)
    # Fleet-wide or model-only instances say nothing about one deployment.
    assert not compare_report.applies({}, MODEL, dep)
    assert not compare_report.applies({"gen_ai.request.model": MODEL}, MODEL, dep)


def test_compare_cli_errors(tmp_path, capsys):
    from infersight.cli.main import main

    assert main(["compare", "--model", MODEL, "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["compare", "--model", MODEL, "--data-dir", str(tmp_path)]) == 1
    assert "no infersight store" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("api: [{provider: x}]")
    assert main(["compare", "--model", MODEL, "--server", "http://127.0.0.1:9", "--prices",
                 str(tmp_path / "bad.yaml")]) in (1, 2)
