"""Rollup materialized views: rows as the gateway writes them into otel_* → the per-minute tables."""
from __future__ import annotations

import json

import pytest

from infersight.rollups import DIMENSIONS, SPAN_BOUNDS

RES = {"cloud.provider": "aws", "cloud.region": "us-east-1", "host.name": "gpu-1", "host.type": "p5.48xlarge",
       "service.name": "infersight-agent"}
T0 = "2026-11-26 10:00:05"


def insert(store, table: str, rows: list[dict]) -> None:
    body = "\n".join(json.dumps(r) for r in rows)
    store.execute(f"INSERT INTO `{store.database}`.`{table}` FORMAT JSONEachRow {body}")


def sum_row(name: str, value: float, attrs: dict, time: str = T0, temporality: int = 1, res: dict = RES) -> dict:
    return {"ResourceAttributes": res, "ServiceName": res.get("service.name", ""), "MetricName": name,
            "Attributes": attrs, "StartTimeUnix": time, "TimeUnix": time, "Value": value,
            "AggregationTemporality": temporality, "IsMonotonic": True}


def hist_row(name: str, bounds: list[float], counts: list[int], total: float, attrs: dict, time: str = T0,
             temporality: int = 1) -> dict:
    return {"ResourceAttributes": RES, "ServiceName": "infersight-agent", "MetricName": name, "Attributes": attrs,
            "StartTimeUnix": time, "TimeUnix": time, "Count": sum(counts), "Sum": total, "BucketCounts": counts,
            "ExplicitBounds": bounds, "AggregationTemporality": temporality}


def span_row(model: str, duration_ns: int, attrs: dict | None = None, status: str = "Unset",
             res: dict | None = None, time: str = "2026-11-26 10:01:30.5") -> dict:
    return {"Timestamp": time, "TraceId": "0af7651916cd43dd8448eb211c80319c", "SpanId": "b7ad6b7169203331",
            "SpanName": f"chat {model}", "SpanKind": "Client", "ServiceName": "chatbot",
            "ResourceAttributes": res or {"cloud.provider": "azure", "cloud.region": "westeurope",
                                          "host.name": "app-1", "service.name": "chatbot"},
            "SpanAttributes": {"gen_ai.request.model": model, **(attrs or {})}, "Duration": duration_ns,
            "StatusCode": status}


def requests(store, **where) -> list[dict]:
    cond = " AND ".join(f"{k} = '{v}'" for k, v in where.items()) or "1"
    return store.query(
        f"SELECT toString(Minute) AS Minute, {', '.join(DIMENSIONS)}, sum(Requests) AS Requests, "
        "sum(BadRequests) AS Bad, sum(InputTokens) AS Input, sum(OutputTokens) AS Output, "
        "sum(CachedTokens) AS Cached, toString(sum(ReportedCostUSD)) AS Cost "
        f"FROM `{store.database}`.infersight_requests_1m WHERE {cond} "
        f"GROUP BY Minute, {', '.join(DIMENSIONS)} ORDER BY Minute, Model, Tenant")


def latency(store, kind: str, **where) -> list[dict]:
    cond = " AND ".join([f"Kind = '{kind}'", *(f"{k} = '{v}'" for k, v in where.items())])
    return store.query(
        f"SELECT toString(Minute) AS Minute, Model, ServerKind, Tenant, Source, Bounds, "
        "sumForEach(BucketCounts) AS Buckets, sum(Count) AS Count, sum(Sum) AS Sum "
        f"FROM `{store.database}`.infersight_latency_1m WHERE {cond} "
        "GROUP BY Minute, Model, ServerKind, Tenant, Source, Bounds ORDER BY Minute, Model")


def n(v) -> int:
    return int(v)


VLLM = {"gen_ai.request.model": "llama-3-8b", "infersight.server.kind": "vllm", "server.address": "127.0.0.1:8000",
        "engine": "0", "infersight.tenant": "search"}


def test_scraped_request_and_token_deltas_roll_up(store):
    req, tok = "infersight.inference.requests", "gen_ai.client.token.usage"
    insert(store, "otel_metrics_sum", [
        sum_row(req, 5, {**VLLM, "infersight.request.outcome": "good"}),
        sum_row(req, 2, {**VLLM, "infersight.request.outcome": "bad", "error.type": "abort"}),
        sum_row(tok, 300, {**VLLM, "gen_ai.token.type": "input"}),
        sum_row(tok, 100, {**VLLM, "gen_ai.token.type": "output"}),
        sum_row(tok, 50, {**VLLM, "gen_ai.token.type": "cached_input"}),
        sum_row(req, 1000, {**VLLM, "infersight.request.outcome": "good"}, temporality=2),  # cumulative: ignored
        sum_row("system.cpu.time", 7, {"cpu.mode": "user"}),  # other metrics: ignored
    ])
    # A second insert for the same minute (another engine) adds up; the next minute is its own row.
    insert(store, "otel_metrics_sum", [
        sum_row(req, 3, {**VLLM, "engine": "1", "infersight.request.outcome": "good"}, time="2026-11-26 10:00:55"),
        sum_row(req, 4, {**VLLM, "infersight.request.outcome": "good"}, time="2026-11-26 10:01:05"),
    ])
    rows = requests(store)
    assert len(rows) == 2
    r = rows[0]
    assert r["Minute"] == "2026-11-26 10:00:00"
    assert (r["CloudProvider"], r["CloudRegion"], r["HostName"], r["Model"], r["ServerKind"], r["Tenant"]) == \
        ("aws", "us-east-1", "gpu-1", "llama-3-8b", "vllm", "search")
    assert (n(r["Requests"]), n(r["Bad"]), n(r["Input"]), n(r["Output"]), n(r["Cached"])) == (10, 2, 300, 100, 50)
    assert n(rows[1]["Requests"]) == 4 and rows[1]["Minute"] == "2026-11-26 10:01:00"
    sources = store.query(f"SELECT DISTINCT Source FROM `{store.database}`.infersight_requests_1m")
    assert [r["Source"] for r in sources] == ["server"]


def test_tenant_falls_back_to_resource_attribute(store):
    attrs = {k: v for k, v in VLLM.items() if k != "infersight.tenant"}
    insert(store, "otel_metrics_sum", [
        sum_row("infersight.inference.requests", 1, {**attrs, "infersight.request.outcome": "good"},
                res={**RES, "infersight.tenant": "risk"})])
    assert requests(store)[0]["Tenant"] == "risk"


def test_server_histograms_keep_their_native_bounds(store):
    e2e = "gen_ai.server.request.duration"
    v0 = [1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    tgi = [0.0001 * 1.5 ** k for k in range(1, 36)]
    insert(store, "otel_metrics_histogram", [
        hist_row(e2e, v0, [1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 3], 300.5, VLLM),
        # Triton: no bounds at all, count and sum still exact, all in +Inf.
        hist_row(e2e, [], [2], 0.75, {**VLLM, "gen_ai.request.model": "densenet", "infersight.server.kind": "triton"}),
        # TGI's geometric bounds are kept as they are, never moved onto another grid.
        hist_row(e2e, tgi, [1 if i == 22 else 0 for i in range(36)], 1.0,
                 {**VLLM, "gen_ai.request.model": "mistral", "infersight.server.kind": "tgi"}),
        hist_row("gen_ai.server.time_to_first_token", [0.1], [1, 1], 0.55, VLLM),
        hist_row("gen_ai.server.time_per_output_token", [0.01], [4, 0], 0.02, VLLM),
        hist_row("infersight.inference.request.queue_time", [0.3], [1, 0], 0.2, VLLM),
        hist_row(e2e, v0, [0] * 11, 0.0, VLLM),  # an idle interval adds no row
        hist_row(e2e, v0, [9] * 11, 9.0, VLLM, temporality=2),  # cumulative: ignored
        hist_row(e2e, [2.0, 1.0], [1, 0, 0], 1.0, VLLM),  # bounds out of order: left out, never misread
    ])
    # A second insert of the same layout adds up bucket by bucket.
    insert(store, "otel_metrics_histogram", [hist_row(e2e, v0, [1] + [0] * 10, 0.5, {**VLLM, "engine": "1"})])
    rows = {r["Model"]: r for r in latency(store, "e2e")}
    vllm = rows["llama-3-8b"]
    assert vllm["Bounds"] == v0 and [n(b) for b in vllm["Buckets"]] == [2, 2, 0, 1, 0, 0, 0, 0, 0, 0, 3]
    assert (n(vllm["Count"]), vllm["Sum"], vllm["Source"]) == (8, 301.0, "server")
    triton = rows["densenet"]
    assert (triton["Bounds"], [n(b) for b in triton["Buckets"]], triton["Sum"]) == ([], [2], 0.75)
    assert triton["ServerKind"] == "triton"
    tgi_row = rows["mistral"]
    assert tgi_row["Bounds"] == pytest.approx(tgi) and [n(b) for b in tgi_row["Buckets"]].index(1) == 22
    ttft = latency(store, "ttft")[0]
    assert (ttft["Bounds"], [n(x) for x in ttft["Buckets"]]) == ([0.1], [1, 1])
    assert [n(x) for x in latency(store, "tpot")[0]["Buckets"]] == [4, 0]
    queue = latency(store, "queue")[0]
    assert [n(x) for x in queue["Buckets"]] == [1, 0] and queue["Sum"] == 0.2


def test_layouts_are_rows_of_their_own(store):
    """Two servers with different bounds in one minute: one row per layout, read back with each layout's counts."""
    e2e = "gen_ai.server.request.duration"
    insert(store, "otel_metrics_histogram", [
        hist_row(e2e, [0.25, 0.5], [1, 2, 0], 1.0, VLLM),
        hist_row(e2e, [0.4, 0.5], [3, 0, 1], 9.0, {**VLLM, "engine": "1"}),
    ])
    rows = store.query(f"SELECT Bounds, sumForEach(BucketCounts) AS b FROM `{store.database}`.infersight_latency_1m "
                       "GROUP BY Bounds ORDER BY Bounds")
    assert [(r["Bounds"], [n(x) for x in r["b"]]) for r in rows] == [([0.25, 0.5], [1, 2, 0]), ([0.4, 0.5], [3, 0, 1])]


def test_genai_spans_count_as_requests_with_latency(store):
    usage = {"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": "1200",
             "gen_ai.usage.output_tokens": "300", "gen_ai.usage.cache_read.input_tokens": "1000",
             "gen_ai.usage.cost": "0.0042", "infersight.tenant": "legal"}
    insert(store, "otel_traces", [
        span_row("gpt-4o", 1_200_000_000, usage),
        span_row("gpt-4o", 300_000_000, {**usage, "gen_ai.server.time_to_first_token": "0.25"}),
        span_row("gpt-4o", 40_000_000_000, usage, status="Error"),
        {**span_row("", 5_000_000, {}), "SpanAttributes": {"http.route": "/chat"}},  # not a GenAI span
    ])
    insert(store, "otel_traces", [span_row("gpt-4o", 500_000_000, {"gen_ai.system": "openai"},
                                           res={"cloud.provider": "azure", "cloud.region": "westeurope",
                                                "host.name": "app-1", "infersight.tenant": "ads"})])
    rows = {r["Tenant"]: r for r in requests(store)}
    legal = rows["legal"]
    assert (legal["CloudProvider"], legal["CloudRegion"], legal["ServerKind"], legal["Model"]) == \
        ("azure", "westeurope", "openai", "gpt-4o")
    assert (n(legal["Requests"]), n(legal["Bad"]), n(legal["Input"]), n(legal["Output"]), n(legal["Cached"])) == \
        (3, 1, 3600, 900, 3000)
    assert legal["Cost"] == "0.0126"
    ads = rows["ads"]
    assert (n(ads["Requests"]), n(ads["Input"]), ads["ServerKind"]) == (1, 0, "openai")  # gen_ai.system fallback
    e2e = {r["Tenant"]: r for r in latency(store, "e2e")}
    bounds = list(SPAN_BOUNDS)
    assert e2e["legal"]["Bounds"] == bounds and e2e["legal"]["Source"] == "span"
    b = [n(x) for x in e2e["legal"]["Buckets"]]
    # Exact durations on a bound count at or under it: 1.2 s in (1.15, 1.2], 0.3 s in (0.29, 0.3].
    assert b[bounds.index(1.2)] == 1 and b[bounds.index(0.3)] == 1 and b[bounds.index(40.0)] == 1
    assert e2e["legal"]["Sum"] == pytest.approx(41.5) and n(e2e["legal"]["Count"]) == 3
    ttft = latency(store, "ttft")
    assert len(ttft) == 1 and n(ttft[0]["Count"]) == 1
    assert [n(x) for x in ttft[0]["Buckets"]][bounds.index(0.25)] == 1
    sources = store.query(f"SELECT DISTINCT Source FROM `{store.database}`.infersight_requests_1m")
    assert {r["Source"] for r in sources} == {"span"}


def test_node_uptime_minutes_from_endpoint_scrapes(store):
    def gauge(time: str, res: dict) -> dict:
        return {"ResourceAttributes": res, "ServiceName": "infersight-agent",
                "MetricName": "infersight.inference.endpoint.up", "Attributes": {"server.address": "127.0.0.1:8000"},
                "StartTimeUnix": time, "TimeUnix": time, "Value": 1}
    spot = {**RES, "infersight.capacity_type": "spot"}
    insert(store, "otel_metrics_gauge", [gauge(f"2026-11-26 10:0{m}:{s}", spot) for m in range(3) for s in (10, 40)]
           + [{**gauge(T0, spot), "MetricName": "system.cpu.utilization"}])
    rows = store.query(f"SELECT HostName, HostType, CapacityType, uniqExact(Minute) AS Minutes, sum(Samples) AS S "
                       f"FROM `{store.database}`.infersight_nodes_1m GROUP BY HostName, HostType, CapacityType")
    assert [(r["HostName"], r["HostType"], r["CapacityType"], n(r["Minutes"]), n(r["S"])) for r in rows] == \
        [("gpu-1", "p5.48xlarge", "spot", 3, 6)]


def test_probe_traffic_stays_out_of_the_user_traffic_rollups(store):
    """A point or span marked infersight.traffic=probe is synthetic: not counted, even under a user-traffic name."""
    probe = {"infersight.traffic": "probe"}
    req = "infersight.inference.requests"
    insert(store, "otel_metrics_sum", [
        sum_row(req, 5, {**VLLM, "infersight.request.outcome": "good"}),
        sum_row(req, 7, {**VLLM, **probe, "infersight.request.outcome": "bad"}),
    ])
    insert(store, "otel_metrics_histogram", [
        hist_row("gen_ai.server.time_to_first_token", [0.1, 0.5], [3, 1, 0], 0.4, {**VLLM, **probe}),
    ])
    insert(store, "otel_traces", [span_row("gpt-4o", 20_000_000, probe), span_row("gpt-4o", 30_000_000)])
    by_model = {r["Model"]: r for r in requests(store)}
    assert (n(by_model["llama-3-8b"]["Requests"]), n(by_model["llama-3-8b"]["Bad"])) == (5, 0)
    assert n(by_model["gpt-4o"]["Requests"]) == 1
    assert latency(store, "ttft", Model="llama-3-8b") == []
    assert [n(r["Count"]) for r in latency(store, "e2e", Model="gpt-4o")] == [1]
