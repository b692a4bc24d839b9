"""The built-in web UI as a person uses it: the gateway's real query API over chDB, the SLO engine and
the cost module, data sent through the real OTLP receiver, pages rendered by headless Chromium."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from infersight.compare import api as compare_api
from infersight.config import parse_config
from infersight.gateway.app import create_app
from infersight.webui import OPEN_PATHS, OPEN_PREFIXES, STATIC, assets, attach, history_instants
from webui_support import browser, charts, series, show, tables, text, titles

pytestmark = pytest.mark.e2e  # a browser per test


async def start(store, port: int, slo_paths: tuple[Path, ...] = (), catalogs: tuple[Path, ...] = (),
                token: str | None = None):
    """The gateway (OTLP + /api/v1/query over the store) with the UI, and the SLO engine when given specs."""
    server: dict = {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.05,
                    "storage": {"database": store.database}}
    if token:
        server["auth_token"] = token
    cfg = parse_config({"server": server, "slo": {"paths": [str(p) for p in slo_paths], "interval_seconds": 0.2},
                        "cost": {"catalogs": [str(p) for p in catalogs]}})
    app = create_app(cfg.server, store)
    if slo_paths:
        from infersight.slo.service import attach as attach_slo

        attach_slo(app, cfg, store)
    compare_api.attach(app, cfg, store)  # after the SLO engine, as the server's components do
    attach(app, cfg, store)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def server(store, port):
    runner = await start(store, port)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _minute(ago: int) -> str:
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=ago)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _fill(store) -> None:
    """Rollup rows (as the gateway's views write them) for two clouds, one row outside the 1 h range."""
    db = store.database
    store.execute(
        f"INSERT INTO `{db}`.infersight_requests_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        "Tenant, Requests, BadRequests, InputTokens, OutputTokens, CachedTokens, ReportedCostUSD) VALUES "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 1200, 12, 300000, 600000, 0, 0), "
        f"('{_minute(4)}', 'aws', 'us-east-1', 'a2', 'llama-3-70b', 'vllm', '', 800, 8, 200000, 400000, 0, 0), "
        f"('{_minute(5)}', 'azure', 'eastus', 'z1', 'gpt-4o', 'openai', '', 50, 5, 40000, 10000, 0, 1.25), "
        f"('{_minute(300)}', 'gcp', 'us-central1', 'g1', 'gemma', 'vllm', '', 999, 0, 1, 1, 0, 0)")
    store.execute(
        f"INSERT INTO `{db}`.infersight_latency_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        "Tenant, Kind, Bounds, BucketCounts, Count, Sum) VALUES "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 'ttft', [0.1, 0.5, 1.0], "
        "[0, 100, 0, 0], 100, 30), "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 'e2e', [1.0, 2.0, 4.0], "
        "[0, 50, 50, 0], 100, 300)")


async def test_routes_assets_and_parameter_errors(store, server):
    async with aiohttp.ClientSession() as s:
        for path in ("/", "/ui"):
            async with s.get(server + path, allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/ui/"
        async with s.get(server + "/ui/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            html = await r.text()
        linked = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
        assert "/ui/static/vendor/uPlot.iife.min.js" in linked
        for asset in linked + ["/ui/static/" + name for name in assets()]:
            async with s.get(server + asset) as r:
                assert r.status == 200, asset
                assert r.headers["Cache-Control"] == "no-cache"
                assert await r.read() == (STATIC / asset.removeprefix("/ui/static/")).read_bytes()
        assert "vendor/uPlot.LICENSE" in assets()  # the vendored library ships with its licence
        async with s.get(server + "/ui/meta.json") as r:
            meta = await r.json()
        assert meta["database"] == store.database and meta["priced"] is False and meta["slo_engine"] is False
        assert meta["request_columns"][:2] == ["Minute", "CloudProvider"] and "Bounds" in meta["latency_columns"]
        async with s.get(server + "/ui/cost.json?hours=1") as r:
            assert r.status == 404 and "cost.catalogs" in (await r.json())["error"]
        async with s.get(server + "/ui/cost.json?hours=1&by=cloud,planet") as r:
            assert r.status == 400 and "planet" in (await r.json())["error"]
        async with s.get(server + "/ui/slo_history.json?slo=x") as r:
            assert r.status == 404 and "slo.paths" in (await r.json())["error"]
        for probe in ("/ui/static/../__init__.py", "/ui/static/%2e%2e%2f__init__.py", "/ui/static/nope.js",
                      "/ui/static/vendor/../../__init__.py"):
            async with s.get(server + probe) as r:
                assert r.status == 404, probe
    assert "/ui/" in OPEN_PATHS and all(p.startswith("/ui/static/") for p in OPEN_PREFIXES)


def test_history_instants_are_minutes_over_the_span():
    now = 1_700_000_000.5
    at = history_instants(now, 3600, 7)
    assert at == sorted(at) and len(at) == 7 and all(t % 60 == 0 for t in at)
    assert at[-1] == int(now) // 60 * 60 and at[-1] - at[0] == 3600


async def test_fleet_view_numbers_filters_and_charts(store, server):
    _fill(store)
    async with browser() as page:
        await show(page, server + "/ui/#/fleet?range=1h")
        rows = await tables(page, "#fleet")
        assert set(rows) == {"aws/us-east-1", "azure/eastus"}  # gcp's row is 5 h old: outside the range
        aws = rows["aws/us-east-1"]
        assert aws["rps"] == f"{2000 / 3600:.2f} "  # mean over the hour
        assert aws["error_ratio"] == "1.00%"
        assert aws["p95_ttft"] == "480.0 ms"  # all 100 in (0.1, 0.5]: 0.1 + 0.4 * 95/100
        assert aws["p95_e2e"] == "3.80 s"     # rank 95 in (2, 4]: 2 + 2 * 45/50
        assert aws["usd_per_1m_tokens"] == "unpriced"
        tips = await titles(page, "#fleet")
        assert tips["aws/us-east-1"]["p95_ttft"] == ("p95 480.0 ms: histogram_quantile over one bucket layout "
                                                     "(100 observations), in the bucket (100.0 ms, 500.0 ms]")
        azure = rows["azure/eastus"]
        assert azure["error_ratio"] == "10.00%"
        assert azure["p95_ttft"] == "–"  # no latency histogram for it: missing, not 0
        assert azure["usd_per_1m_tokens"] == "$25.00"  # 1.25 USD reported over 50,000 tokens
        assert await text(page, "#fleet-status") == "2 clouds, 2 regions, last 1 h"
        drawn = await charts(page)
        assert series(drawn["fleet-rps"]) == {"aws": 2, "azure": 1}  # points in the minutes with traffic
        assert drawn["fleet-rps"]["x"] == 61  # every minute of the hour
        assert series(drawn["fleet-ttft"]) == {"aws": 1}
        assert "infersight demo" in await text(page, "#hint") or await page.is_hidden("#hint")

        # A filter changes the address (shareable) and the data.
        await page.evaluate("document.body.dataset.ready = 'stale'")
        await page.select_option("#filter-cloud", "azure")
        await page.wait_for_function("() => document.body.dataset.ready === 'ready'")
        assert "cloud=azure" in page.url and "range=1h" in page.url
        assert set(await tables(page, "#fleet")) == {"azure/eastus"}
        assert set(series((await charts(page))["fleet-rps"])) == {"azure"}
        # ... and a wider range brings back the old row.
        await show(page, "#/fleet?range=7d")
        assert set(await tables(page, "#fleet")) == {"aws/us-east-1", "azure/eastus", "gcp/us-central1"}
        assert page.errors == []


# -- percentiles: infersight.quantiles through /ui/percentiles.json ------------------------------------------
OTHER_LAYOUT = [0.1, 0.2, 0.4, 0.8, 1.6]  # an SGLang-like layout next to vLLM's: mixed


def _ttft_hist(bounds: list[float], counts: list[int], cloud: str, region: str, host: str, ago: int) -> dict:
    """A scraped server's TTFT histogram delta as the gateway stores it (the rollup's view makes the row)."""
    from test_rollups import VLLM, hist_row

    t = (datetime.now(UTC).replace(second=5, microsecond=0) - timedelta(minutes=ago)).strftime("%Y-%m-%d %H:%M:%S")
    row = hist_row("gen_ai.server.time_to_first_token", bounds, counts, 100.0, VLLM, time=t)
    row["ResourceAttributes"] = {"cloud.provider": cloud, "cloud.region": region, "host.name": host,
                                 "service.name": "infersight-agent"}
    return row


def _fill_percentiles(store) -> dict[str, list]:
    """aws/us-east-1: the vLLM fixture's TTFT buckets (Prometheus: p95 = 383 ms) from two scrapes; aws/us-west-2
    the same layout next to another one (mixed); gcp/us-central1 with p95 in the +Inf bucket. The layouts
    per region, as the rollup holds them."""
    from test_quantiles import vllm_layout
    from test_rollups import insert

    bounds, counts = vllm_layout()
    half = [n // 2 for n in counts]
    rest = [a - b for a, b in zip(counts, half, strict=True)]
    west = [n * 3 for n in counts]
    other = [40, 300, 900, 150, 80, 30]
    insert(store, "otel_metrics_histogram", [
        _ttft_hist(bounds, half, "aws", "us-east-1", "gpu-1", 5),
        _ttft_hist(bounds, rest, "aws", "us-east-1", "gpu-1", 4),
        _ttft_hist(bounds, west, "aws", "us-west-2", "gpu-2", 5),
        _ttft_hist(OTHER_LAYOUT, other, "aws", "us-west-2", "gpu-3", 5),
        _ttft_hist([0.1, 0.2], [1, 1, 98], "gcp", "us-central1", "gpu-4", 5)])
    db = store.database
    store.execute(
        f"INSERT INTO `{db}`.infersight_requests_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        "Tenant, Requests, BadRequests, InputTokens, OutputTokens, CachedTokens, ReportedCostUSD) VALUES " +
        ", ".join(f"('{_minute(5)}', '{c}', '{r}', 'h', 'llama-3-8b', 'vllm', '', 10, 0, 1, 1, 0, 0)"
                  for c, r in (("aws", "us-east-1"), ("aws", "us-west-2"), ("gcp", "us-central1"))))
    rows = store.query(f"SELECT CloudProvider AS c, CloudRegion AS r, Bounds AS b, sumForEach(BucketCounts) AS n "
                       f"FROM `{db}`.infersight_latency_1m WHERE Kind = 'ttft' GROUP BY c, r, b")
    out: dict[str, list] = {}
    for x in rows:
        out.setdefault(f"{x['c']}/{x['r']}", []).append(([float(b) for b in x["b"]], [int(n) for n in x["n"]]))
    assert sum(len(v) for v in out.values()) == 4
    return out


async def test_fleet_p95_is_prometheus_histogram_quantile_and_says_when_it_is_an_estimate(store, server):
    """Issue 10: over the vLLM fixture's buckets the Fleet view's p95 TTFT is what Prometheus' histogram_quantile
    answers (383 ms, tests/test_quantiles.py against a real Prometheus); mixed layouts are ≈ with their interval;
    a rank in the +Inf bucket shows the largest finite bound; per-cloud rows sum the regions' buckets."""
    from infersight import quantiles
    from test_quantiles import vllm_layout

    layouts = _fill_percentiles(store)
    cell = "td[data-col=p95_ttft]"
    async with browser() as page:
        await show(page, server + "/ui/#/fleet?range=1h")
        rows = await tables(page, "#fleet")
        tips = await titles(page, "#fleet")
        values = await page.evaluate("""(cell) => Object.fromEntries(Array.from(
          document.querySelectorAll('#fleet tr[data-key]')).map((tr) => [tr.dataset.key,
          JSON.parse(tr.querySelector(cell).dataset.value)]))""", cell)
        drawn = await charts(page)
        assert page.errors == []
    assert set(rows) == {"aws/us-east-1", "aws/us-west-2", "aws/*", "gcp/us-central1"}
    east = values["aws/us-east-1"]
    assert east["value"] == quantiles.histogram_quantile(0.95, *vllm_layout())  # Prometheus' function, exactly
    assert round(east["value"], 4) == 0.3830 and (east["lower"], east["upper"], east["estimate"]) == (0.25, 0.5, False)
    assert rows["aws/us-east-1"]["p95_ttft"] == "383.0 ms"
    assert tips["aws/us-east-1"]["p95_ttft"] == ("p95 383.0 ms: histogram_quantile over one bucket layout "
                                                 "(1,000 observations), in the bucket (250.0 ms, 500.0 ms]")
    # Mixed layouts: infersight.quantiles' estimate and interval, said as such.
    west = quantiles.quantile(layouts["aws/us-west-2"], 0.95)
    assert west is not None and west.estimate and values["aws/us-west-2"] == west.as_dict()
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    assert rows["aws/us-west-2"]["p95_ttft"] == "≈ " + ms(west.value)
    assert tips["aws/us-west-2"]["p95_ttft"] == (f"≈ {ms(west.value)} (between {ms(west.lower)} and {ms(west.upper)}): "
                                                 "p95 estimated over 2 bucket layouts (4,500 observations)")
    # The cloud's row: the regions' buckets summed per layout, then the same function.
    cloud = quantiles.quantile(layouts["aws/us-east-1"] + layouts["aws/us-west-2"], 0.95)
    assert cloud is not None and values["aws/*"] == cloud.as_dict()
    # The +Inf rule: the largest finite bound, as Prometheus answers, marked open.
    top = values["gcp/us-central1"]
    assert (top["value"], top["lower"], top["upper"], top["open"]) == (0.2, 0.2, None, True)
    assert rows["gcp/us-central1"]["p95_ttft"] == "≥ 200.0 ms"
    assert "+Inf bucket" in tips["gcp/us-central1"]["p95_ttft"]
    assert series(drawn["fleet-ttft"]) == {"aws": 2, "gcp": 1}  # the minutes with observations


async def test_percentiles_json_answers_quantiles_and_names_bad_parameters(store, server):
    from infersight import quantiles

    layouts = _fill_percentiles(store)
    async with aiohttp.ClientSession() as s:
        async with s.get(server + "/ui/percentiles.json", params={
                "seconds": "3600", "latency": "ttft,e2e", "by": "cloud,region;cloud;cloud,t:ttft", "step": "60",
                "q": "0.5,0.95", "region": "us-west-2"}) as r:
            assert r.status == 200
            doc = await r.json()
        assert doc["quantiles"] == [0.5, 0.95] and doc["method"] == quantiles.METHOD
        got = {(g["by"], tuple(g["key"].values()), g["latency"]): g for g in doc["groups"]}
        ref = quantiles.summary(layouts["aws/us-west-2"])
        assert ref is not None
        for key in [("cloud,region", ("aws", "us-west-2"), "ttft"), ("cloud", ("aws",), "ttft")]:
            g = got.pop(key)
            assert {k: g[k] for k in ("count", "layouts", "p50", "p95")} == ref, key
        ((key, g),) = got.items()  # the one minute of the chart; no e2e asked for it, none in the data
        assert key[0] == "cloud,t" and key[1][1] % 60 == 0 and g["p95"] == ref["p95"]
        bad = {"": "seconds:", "seconds=0": "seconds:", "seconds=60&by=planet": "by:",
               "seconds=60&latency=ttft,size": "latency:", "seconds=3600&by=cloud,t": "step:",
               "seconds=3600&by=cloud,t&step=1": "step:", "seconds=60&q=1.5": "q:",
               "seconds=60&by=cloud;cloud": "by: the grouping 'cloud' is given twice",
               "seconds=60&latency=ttft&by=cloud:e2e": "by:", "seconds=60&step=60": "step:",
               "seconds=60&cloud=" + "x" * 600: "cloud:"}
        for query, says in bad.items():
            async with s.get(server + "/ui/percentiles.json?" + query) as r:
                assert r.status == 400 and (await r.json())["error"].startswith(says), query
        async with s.get(server + "/ui/percentiles.json", params={"seconds": "60", "model": "o'brien\\"}) as r:
            assert r.status == 200 and (await r.json())["groups"] == []  # a filter is a literal, nothing matches
        store.execute(f"DROP TABLE `{store.database}`.infersight_latency_1m")
        async with s.get(server + "/ui/percentiles.json?seconds=60") as r:
            assert r.status == 400 and "infersight_latency_1m" in (await r.json())["error"]


def test_layouts_alike_in_length_and_sum_are_told_apart(store):
    """Layouts are told apart by the id the rollup writes (cityHash64 of the bounds), even two alike in length
    and sum (0.1 + 0.4 = 0.2 + 0.3); the bounds are read once per layout, and the answer is quantiles'."""
    from infersight import quantiles
    from infersight.webui import percentiles
    from test_rollups import insert

    a, b = ([0.1, 0.4], [5, 80, 15]), ([0.2, 0.3], [50, 30, 20])
    insert(store, "otel_metrics_histogram", [_ttft_hist(*a, "aws", "eu-west-1", "gpu-1", 5),
                                             _ttft_hist(*b, "aws", "eu-west-1", "gpu-2", 5)])
    ask = percentiles.parse({"seconds": "3600", "latency": "ttft", "by": "cloud,region", "q": "0.5,0.95"})
    sent: list[str] = []
    doc = percentiles.read(lambda sql: sent.append(sql) or store.query(sql), store.database, ask)
    assert len(sent) == 2 and "sumMap(NonZeroBuckets, NonZeroCounts)" in sent[0] and "any(Bounds)" in sent[1]
    (g,) = doc["groups"]
    assert {k: g[k] for k in ("count", "layouts", "p50", "p95")} == quantiles.summary([a, b], (0.5, 0.95))
    assert g["layouts"] == 2 and g["p95"]["estimate"] is True
    one = percentiles.parse({"seconds": "3600", "latency": "ttft", "q": "0.95", "host": "gpu-2"})
    doc = percentiles.read(store.query, store.database, one)
    assert [g["p95"] for g in doc["groups"]] == [quantiles.summary([b], (0.95,))["p95"]]  # type: ignore[index]
    # Without rows in the range nothing but the sums is read.
    sent.clear()
    none = percentiles.parse({"seconds": "3600", "latency": "ttft", "q": "0.95", "host": "nowhere"})
    doc = percentiles.read(lambda sql: sent.append(sql) or store.query(sql), store.database, none)
    assert len(sent) == 1 and doc["groups"] == []


def test_one_layout_with_empty_runs_merged_answers_as_all_its_buckets():
    """`rollup_quantiles.compact` (what a group of one layout is answered from) gives quantiles.summary's answer
    over the full buckets, value, interval and flags alike, on random sparse layouts (edges, +Inf and bounds <= 0)."""
    import random

    from infersight import quantiles, rollup_quantiles

    rnd = random.Random(12)
    qs = (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
    for _ in range(3000):
        n = rnd.randint(1, 40)
        start = rnd.choice([-1.0, 0.0, 0.001, 0.05])
        bounds = tuple(sorted({round(start + rnd.random() * 10, 4) for _ in range(n)}))
        positions = rnd.sample(range(1, len(bounds) + 2), rnd.randint(1, min(4, len(bounds) + 1)))
        buckets = {i: rnd.randint(1, 50) for i in positions}
        small = rollup_quantiles.compact(bounds, buckets)
        assert len(small[0]) <= len(bounds) and sum(small[1]) == sum(buckets.values())
        assert quantiles.summary([small], qs) == quantiles.summary([rollup_quantiles.full(bounds, buckets)], qs), (
            bounds, buckets)


async def test_query_errors_are_shown_not_swallowed(store, server):
    store.execute(f"DROP TABLE `{store.database}`.infersight_latency_1m")
    async with browser() as page:
        await show(page, server + "/ui/#/fleet")
        body = await text(page, "#view")
    assert "error 400" in body and "infersight_latency_1m" in body


async def test_views_without_an_slo_engine_say_so(store, server):
    async with browser() as page:
        await show(page, server + "/ui/#/slos")
        assert await text(page, "#slo-status") == "SLOs: not available on this server (404)"
        await show(page, "#/alerts")
        assert await text(page, "#alert-status") == "alerts: not available on this server (404)"
        await show(page, "#/compare")
        assert "infersight demo" in await text(page, "#compare-status")


PRICES = """\
api:
  - provider: openai
    model: gpt-4o
    input_usd_per_million: 2.50
    output_usd_per_million: 10.00
"""


async def test_compare_view_usd_per_million_equals_cost_report(store, port, tmp_path):
    """The compare view's $/1M tokens is the cost module's (`infersight cost report`) on the same data."""
    from test_dashboards_e2e import send_genai_spans, wait_rows

    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    runner = await start(store, port, catalogs=(prices,))
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(send_genai_spans, url, "gpt-4o", 40, 2, "openai")
        await asyncio.to_thread(send_genai_spans, url, "in-house-7b", 10, 0, "openai")  # unpriced, reports cost
        await wait_rows(store, "otel_traces", 50)
        await wait_rows(store, "infersight_requests_1m", 2)
        config = tmp_path / "cli.yaml"  # the CLI reads the server's database name from its config
        config.write_text(json.dumps({"server": {"storage": {"database": store.database}}}))
        report = json.loads((await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "infersight.cli", "cost", "report", "--server", url,
                             "--config", str(config), "--prices", str(prices),
             "--since", "1h", "--by", "cloud,region,kind,model", "--format", "json"],
            capture_output=True, text=True, check=True, timeout=60)).stdout)
        async with browser() as page:
            await show(page, url + "/ui/#/compare?range=1h&model=gpt-4o")
            rows = await tables(page)
            drawn = await charts(page)
            await show(page, "#/compare?range=1h&model=in-house-7b")
            other = await tables(page)
            assert page.errors == []
        # The Fleet's spend per region and per cloud: one read of the usage, each grouping `cost report`'s.
        async with aiohttp.ClientSession() as s, s.get(url + "/ui/cost.json?hours=1&by=cloud,region;cloud") as r:
            reports = (await r.json())["reports"]
        assert [x["by"] for x in reports] == [["cloud", "region"], ["cloud"]]
        for got in reports:
            want = json.loads((await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "infersight.cli", "cost", "report", "--server", url,
                                 "--config", str(config), "--prices", str(prices), "--since", "1h",
                                 "--by", ",".join(got["by"]), "--format", "json"],
                capture_output=True, text=True, check=True, timeout=60)).stdout)
            assert got["lines"] == (want["lines"] if isinstance(want, dict) else want) and got["lines"]
        async with aiohttp.ClientSession() as s, s.get(url + "/ui/cost.json?hours=1&by=cloud;region;host;model") as r:
            assert r.status == 400 and "up to 3 groupings" in (await r.json())["error"]
    finally:
        await runner.cleanup()
    lines = report["lines"] if isinstance(report, dict) else report
    (line,) = [ln for ln in lines if ln["model"] == "gpt-4o"]
    row = rows["aws/us-east-1/openai"]
    # 4,000 input × 2.50 + 2,000 output × 10.00 USD per 1M = 0.03 USD over 6,000 tokens
    assert float(line["usd_per_million_tokens"]) == 5.0
    assert row["usd_per_1m_tokens"] == f"${float(line['usd_per_million_tokens']):.2f}"
    assert row["error_ratio"] == "5.00%" and row["ttft_p95"].endswith(" ms")
    assert set(series(drawn["compare-ttft"])) == {"aws/us-east-1/openai"}
    # Unpriced in the catalog: `compare` (and the cost report) say so; the cost the instrumentation reported is
    # not a price.
    assert other["aws/us-east-1/openai"]["usd_per_1m_tokens"] == "unpriced"


COMPARE_PRICES = """\
api:
  - provider: openai
    model: gpt-4o
    input_usd_per_million: 2.50
    output_usd_per_million: 10.00
  - provider: azure.ai.openai
    model: gpt-4o
    input_usd_per_million: 2.75
    output_usd_per_million: 11.00
"""
COMPARE_SLO = """\
apiVersion: infersight/v1
kind: SLO
metadata:
  name: gpt-availability
spec:
  sli:
    ratio: {}
  objective_percent: 99
  window:
    rolling: 1d
  group_by: [cloud.provider, cloud.region, gen_ai.request.model]
  min_events: 10
"""


def _secs(v: float) -> str:
    """fmt.js `seconds` below two minutes."""
    return f"{v * 1000:.{2 if v < 0.01 else 1}f} ms" if v < 1 else f"{v:.2f} s"


async def test_compare_view_cells_equal_the_compare_command(store, port, tmp_path):
    """Issue 14: the compare view's table is `infersight compare --format json` on the same data, cell by cell:
    requests, error ratio, ≈percentiles (with their buckets), tokens, $/1M tokens, SLO state and budget left."""
    from test_dashboards_e2e import send_genai_spans, wait_rows

    prices, spec = tmp_path / "prices.yaml", tmp_path / "slo.yaml"
    prices.write_text(COMPARE_PRICES)
    spec.write_text(COMPARE_SLO)
    runner = await start(store, port, (spec,), catalogs=(prices,))
    url = f"http://127.0.0.1:{port}"
    db = store.database
    try:
        await asyncio.to_thread(send_genai_spans, url, "gpt-4o", 40, 2, "openai")  # aws/us-east-1 spans
        await wait_rows(store, "infersight_requests_1m", 1)
        # The same model through a second deployment, as the rollups hold a scraped server's rows.
        store.execute(
            f"INSERT INTO `{db}`.infersight_requests_1m (Minute, CloudProvider, CloudRegion, HostName, Model, "
            "ServerKind, Tenant, Requests, BadRequests, InputTokens, OutputTokens, CachedTokens, ReportedCostUSD) "
            "VALUES "
            f"('{_minute(3)}', 'azure', 'eastus', 'az-app', 'gpt-4o', 'azure.ai.openai', '', "
            "200, 30, 50000, 20000, 1000, 0)")
        store.execute(
            f"INSERT INTO `{db}`.infersight_latency_1m (Minute, CloudProvider, CloudRegion, HostName, Model, "
            "ServerKind, Tenant, Kind, Bounds, BucketCounts, Count, Sum) VALUES "
            f"('{_minute(3)}', 'azure', 'eastus', '', 'gpt-4o', 'azure.ai.openai', '', 'ttft', [0.25, 0.5, 1.0], "
            "[20, 150, 25, 5], 200, 90), "
            f"('{_minute(3)}', 'azure', 'eastus', '', 'gpt-4o', 'azure.ai.openai', '', 'e2e', [1.0, 2.0, 4.0], "
            "[10, 100, 80, 10], 200, 500)")
        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # the engine's evaluation of both deployments
                async with s.get(url + "/api/v1/slos") as r:
                    inst = [i for i in (await r.json())["instances"] if i["budget_remaining"] is not None]
                if len(inst) == 2:
                    break
                await asyncio.sleep(0.1)
        doc = json.loads((await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "infersight.cli", "compare", "--model", "gpt-4o", "--since", "1h",
                             "--server", url, "--format", "json"],
            capture_output=True, text=True, check=True, timeout=60)).stdout)
        async with browser() as page:
            await show(page, url + "/ui/#/compare?range=1h&model=gpt-4o")
            cells = await page.evaluate("""() => {
              const out = {};
              for (const tr of document.querySelectorAll('#view tr[data-key]')) {
                const row = {};
                for (const td of tr.querySelectorAll('td[data-col]'))
                  row[td.dataset.col] = { text: td.textContent, value: JSON.parse(td.dataset.value ?? 'null'),
                                          title: td.title };
                out[tr.dataset.key] = row;
              }
              return out;
            }""")
            assert page.errors == []
    finally:
        await runner.cleanup()
    deps = {d["key"]: d for d in doc["deployments"]}
    assert set(cells) == set(deps) == {"aws/us-east-1/openai", "azure/eastus/azure.ai.openai"}
    since = doc["since_seconds"]
    assert since == 3600
    for key, d in deps.items():
        row = cells[key]
        value = {c: v["value"] for c, v in row.items()}
        lat = d["latency"]
        assert value == {
            "deployment": key, "hosting": d["hosting"], "requests": d["requests"],
            "rps": d["requests"] / since, "error_ratio": d["error_ratio"],
            **{f"{k}_{q}": (lat[k][q]["value"] if lat[k] else None)
               for k in ("ttft", "tpot", "e2e") for q in ("p50", "p95")},
            "tokens": d["tokens"]["total"], "tokens_per_s": d["tokens"]["output"] / since,
            "usd_per_1m_tokens": d["cost"]["usd_per_million_tokens"],
            "slo": d["slo"]["meets"], "budget_left": d["slo"]["budget_remaining"],
            "probe": None,
        }, key
        # ... and the text says the same numbers, for people.
        assert row["requests"]["text"] == f"{d['requests']:,}"
        assert row["error_ratio"]["text"] == f"{d['error_ratio'] * 100:.2f}%"
        usd = d["cost"]["usd_per_million_tokens"]
        assert row["usd_per_1m_tokens"]["text"] == ("unpriced" if usd is None else f"${float(usd):.2f}")
        (worst,) = d["slo"]["instances"]
        assert row["budget_left"]["text"] == worst["budget_left_text"]
        assert worst["slo"] + ": " + worst["state"] in row["slo"]["text"]
        ttft = lat["ttft"]["p95"]
        assert f"between {_secs(ttft['lower'])} and {_secs(ttft['upper'])}" in row["ttft_p95"]["title"]
        assert row["ttft_p95"]["title"].startswith("≈" if ttft["estimate"] else "p95 = histogram_quantile")
    azure = deps["azure/eastus/azure.ai.openai"]
    assert azure["error_ratio"] == 0.15 and azure["latency"]["ttft"]["p95"]["upper"] == 1.0  # rank 190 in (0.5, 1]
    assert cells["azure/eastus/azure.ai.openai"]["ttft_p95"]["text"] == "900.0 ms"  # 0.5 + 0.5 × 20/25
    # 4,000 input × 2.50 + 2,000 output × 10.00 USD per 1M = 0.03 USD over 6,000 tokens (list price of its spans);
    # the azure rows have no spans for the cost module to price: unpriced in both, with the reason in the cell.
    assert deps["aws/us-east-1/openai"]["cost"]["usd_per_million_tokens"] == "5"
    assert azure["cost"]["usd_per_million_tokens"] is None
    assert cells["azure/eastus/azure.ai.openai"]["usd_per_1m_tokens"]["title"] == (
        "; ".join(azure["cost"]["unpriced"]) or "unpriced")


SLO_SPEC = """\
apiVersion: infersight/v1
kind: SLO
metadata:
  name: chat-availability
spec:
  sli:
    ratio: {}
  objective_percent: 99.9
  window:
    rolling: 30d
  group_by: [cloud.provider, cloud.region, gen_ai.request.model]
  min_events: 10
  alerting:  # the budget alert of a window holding one minute of data (docs/slo.md: coverage rule off)
    budget_exhausted_min_coverage_percent: 0
"""


async def test_slos_alerts_and_silences_from_the_real_engine(store, port, tmp_path):
    """4 of 40 requests fail: a 99.9 % budget burns 100× too fast; the page tier fires, slower ones are
    inhibited (apart, not "active"); the detail's budget is `slo status`'s; a silence made in the UI is
    in the API and moves the alert to "silenced"; expiring it in the UI ends it."""
    from test_dashboards_e2e import send_genai_spans, wait_rows

    spec = tmp_path / "slo.yaml"
    spec.write_text(SLO_SPEC)
    runner = await start(store, port, (spec,))
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(send_genai_spans, url, "qwen-72b", 40, 4)
        await wait_rows(store, "infersight_requests_1m", 1)
        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # the engine evaluates every 0.2 s
                async with s.get(url + "/api/v1/alerts") as r:
                    if len((await r.json())["alerts"]) >= 5:
                        break
                await asyncio.sleep(0.1)
        status = json.loads((await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "infersight.cli", "slo", "status", "--server", url,
                             "--format", "json"],
            capture_output=True, text=True, check=True, timeout=60)).stdout)
        (inst,) = status["instances"] if isinstance(status, dict) else status
        async with browser() as page:
            await show(page, url + "/ui/#/slos?range=1h")
            (row,) = (await tables(page)).values()
            assert row["slo"] == "chat-availability"
            assert row["group"] == "cloud.provider=aws, cloud.region=us-east-1, gen_ai.request.model=qwen-72b"
            assert row["state"] == "exhausted" and row["sli"] == "90.000 %"
            assert row["budget_left"] == inst["budget_left_text"] == "-9,900 % (100× the budget spent)"
            assert row["coverage"] == "0% (1 of 43,200 min)"
            assert "page-fast (page)" in row["burning"]

            await page.click("#view a:text('chat-availability')")
            await page.wait_for_function("() => document.body.dataset.ready === 'ready' && "
                                         "location.hash.includes('slo?')")
            assert "name=chat-availability" in page.url
            assert await text(page, "#slo-budget-left") == inst["budget_left_text"]
            remaining = await page.get_attribute("[data-view=slo]", "data-budget-remaining")
            assert float(remaining) == inst["budget_remaining"]
            assert await text(page, "#slo-budget-spent") == "4 bad events of 0.04 allowed"
            drawn = await charts(page)
            assert series(drawn["slo-burndown"]) == {"budget left": 1}  # the data is in the last minute only
            assert series(drawn["slo-burndown"], thresholds=True) == {"budget exhausted": 24}
            fast = drawn["slo-burn-page-fast"]
            assert set(series(fast)) == {"1h window", "5m window"} and len(series(fast, True)) == 1
            alert_rows = await tables(page, "#slo-alerts")
            assert {r["tier"] for r in alert_rows.values()} >= {"page-fast", "page-slow"}

            await show(page, "#/alerts")
            counts = {k: await text(page, f"#count-{k}") for k in ("firing", "pending", "silenced", "inhibited")}
            assert counts == {"firing": "2", "pending": "0", "silenced": "0", "inhibited": "3"}
            assert {r["tier"] for r in (await tables(page, "#alerts-firing")).values()} == {"page-fast",
                                                                                             "budget-exhausted"}
            assert {r["tier"] for r in (await tables(page, "#alerts-inhibited")).values()} == {
                "page-slow", "ticket-fast", "ticket-slow"}

            # Create a silence in the form (as a person types it).
            await page.fill("#silence-form [name=matchers]", "slo=chat-availability, tier=page-fast")
            await page.fill("#silence-form [name=duration]", "1h")
            await page.fill("#silence-form [name=comment]", "known incident")
            await page.evaluate("document.body.dataset.ready = 'stale'")
            await page.click("#silence-form button[type=submit]")
            await page.wait_for_function("() => document.body.dataset.ready === 'ready'")
            silences: list[dict] = []
            for _ in range(50):  # a refresh begun before the click may have finished first: the POST may still run
                async with aiohttp.ClientSession() as s, s.get(url + "/api/v1/silences") as r:
                    silences = (await r.json())["silences"]
                if silences:
                    break
                await asyncio.sleep(0.2)
            (sil,) = silences
            assert sil["comment"] == "known incident" and sil["status"]["state"] == "active"
            assert {(m["name"], m["value"], m["isRegex"]) for m in sil["matchers"]} == {
                ("slo", "chat-availability", False), ("tier", "page-fast", False)}
            for _ in range(50):
                if await text(page, "#count-silenced") == "1":
                    break
                await show(page, "#/alerts?x=" + str(_))
            assert await text(page, "#count-silenced") == "1"
            assert {r["tier"] for r in (await tables(page, "#alerts-silenced")).values()} == {"page-fast"}
            assert "page-fast" not in {r["tier"] for r in (await tables(page, "#alerts-firing")).values()}
            assert set(await tables(page, "#silences")) == {sil["id"]}

            # A bad matcher is refused in the page with the rule, nothing is sent.
            await page.fill("#silence-form [name=matchers]", "slo chat")
            await page.click("#silence-form button[type=submit]")
            assert "write name=value" in await text(page, "#silence-message")

            await page.evaluate("document.body.dataset.ready = 'stale'")
            await page.click(f"#silences tr[data-key='{sil['id']}'] button")
            await page.wait_for_function("() => document.body.dataset.ready === 'ready'")
            state = None
            for _ in range(50):  # the page reloads as soon as the DELETE is answered; the engine may lag a tick
                async with aiohttp.ClientSession() as s, s.get(url + "/api/v1/silences") as r:
                    state = (await r.json())["silences"][0]["status"]["state"]
                if state == "expired":
                    break
                await asyncio.sleep(0.2)
            assert state == "expired"
            assert page.errors == []
    finally:
        await runner.cleanup()


async def test_accelerators_and_nodes_from_real_collectors(store, server):
    """NVML replay of the H200 capture with an injected XID 79 and a neuron-monitor document, via OTLP."""
    from infersight.collectors.neuron import NeuronCollector
    from infersight.collectors.nvml import NvmlCollector
    from infersight.testing.nvml_replay import ReplayNvml, load_capture
    from test_dashboards_e2e import RESOURCE, post_points

    replay = ReplayNvml(load_capture())
    nvml = NvmlCollector(replay, clock=replay.clock, proc_root=Path("/nonexistent"))
    replay.seek(60)
    first = list(nvml.collect())
    replay.inject_xid(0, 79)  # fallen off the bus: failed
    replay.seek(61)
    second = list(nvml.collect())
    await post_points(server, first, store, len(first), seconds_ago=70)  # an earlier minute
    await post_points(server, second, store, len(first) + len(second))
    neuron = NeuronCollector(["unused"])
    neuron.close()
    doc = Path(__file__).parent / "fixtures" / "neuron" / "neuron-monitor_trn1.2xlarge_wandb-test.json"
    neuron.feed(json.dumps(json.loads(doc.read_text())))
    points = list(neuron.collect())
    await post_points(server, points, store, len(first) + len(second) + len(points),
                      {**RESOURCE, "host.name": "trn-node-1", "cloud.provider": "aws"}, "infersight.collectors.neuron")

    async with browser(width=900) as page:  # usable at 900 px
        await show(page, server + "/ui/#/nodes?range=1h")
        hosts = await tables(page)
        assert set(hosts) == {"gpu-node-7", "trn-node-1"}
        gpu = hosts["gpu-node-7"]
        util = [p.value for p in first + second if p.name == "hw.gpu.utilization"
                and p.attributes["hw.gpu.task"] == "general"]
        assert gpu["util"].startswith(f"{sum(util) / len(util) * 100:.0f}% / ")
        assert (gpu["devices"], gpu["where"]) == ("1", "gcp / us-central1")
        assert hosts["trn-node-1"]["devices"] == "2"
        await page.click("#view a:text('gpu-node-7')")
        await page.wait_for_function("() => document.body.dataset.ready === 'ready' && location.hash.includes('host=')")
        assert "host=gpu-node-7" in page.url
        drawn = await charts(page)
        (dev,) = series(drawn["dev-hw-gpu-utilization"]).items()
        assert dev[1] == 2  # two minutes, one device
        assert {"dev-hw-power", "dev-hw-temperature", "dev-infersight-gpu-sm-activity"} <= set(drawn)
        health = await tables(page, "#device-health")
        (h,) = health.values()
        assert h["state"] == "failed" and h["xid"] == "1" and h["codes"] == "79"
        assert await page.evaluate("document.documentElement.scrollWidth") <= 900  # no page-wide overflow
        assert page.errors == []


async def test_one_real_node_shows_at_once_with_host_and_agent_health(store, server, tmp_path):
    """What `make run` shows first: this machine's host collector and agent self metrics, no requests."""
    import psutil

    from infersight.agent.selfmetrics import AgentStats
    from infersight.collectors.host import HostCollector
    from infersight.exporters.spool import Spool
    from test_dashboards_e2e import post_points

    host = HostCollector(psutil, process_names=[], exclude_disks=("loop*", "ram*", "zram*"))
    host.collect()
    await asyncio.sleep(0.1)
    points = list(host.collect())
    stats = AgentStats()
    stats.exported = 123
    stats.collected["host"] = 45
    spool = Spool(tmp_path / "spool", 1 << 20)
    points += stats.points(spool)
    resource = {"service.name": "infersight-agent", "host.name": "this-machine"}
    await post_points(server, points, store, len(points), resource, "infersight.collectors.host")
    cpu_idle = next(p.value for p in points if p.name == "system.cpu.utilization"
                    and p.attributes["cpu.mode"] == "idle")
    async with browser() as page:
        await show(page, server + "/ui/")
        assert "#/fleet" in page.url or page.url.endswith("/ui/")
        assert "infersight demo" in await text(page, "#hint")
        assert "1 node reports" in await text(page, "#hint")
        assert set(await tables(page, "#fleet-nodes")) == {"this-machine"}
        assert (await tables(page, "#fleet-nodes"))["this-machine"]["last_seen"].endswith("s ago")
        await show(page, "#/nodes")
        row = (await tables(page))["this-machine"]
        assert row["cpu"] == f"{(1 - cpu_idle) * 100:.0f}%"
        assert row["memory"].endswith("%") and row["spool"] == "0 B"
        assert (row["dropped"], row["export_errors"]) == ("0", "0")
        drawn = await charts(page)  # the only node is selected: its CPU and memory over time
        assert series(drawn["host-cpu-memory"]) == {"CPU busy": 1, "memory used": 1}
        assert page.errors == []


async def test_a_node_whose_nvml_fails_shows_with_its_collector_down(store, server, tmp_path):
    """Issue 10: a GPU node whose NVML does not initialise stays in the fleet's nodes and the Nodes view with a
    "collector down: nvml_init" badge; the real agent loop exports its collector-up gauge and error counter
    through the gateway. A refused inference endpoint of another node shows as a part down."""
    from infersight.agent.loop import Agent, ScheduledCollector
    from infersight.collectors.inference import InferenceCollector
    from infersight.collectors.inference.collector import Endpoint
    from infersight.collectors.nvml import NvmlCollector
    from infersight.config import AgentConfig, ExporterConfig
    from infersight.exporters.senders import HttpSender
    from infersight.exporters.spool import Spool
    from infersight.testing.nvml_replay import ReplayNvml, load_capture
    from support.agent_thread import run_for
    from test_collectors_health import closed_port

    def run_agent(host: str, collectors: list, seconds: float = 1.2) -> None:
        ex = ExporterConfig(endpoint=server, spool_dir=tmp_path / host, export_interval_seconds=0.2,
                            retry_interval_seconds=0.2, timeout_seconds=2)
        agent = Agent(AgentConfig(exporter=ex, self_metrics_interval_seconds=0.2), collectors,
                      HttpSender(ex.endpoint, {}, ex.timeout_seconds), Spool(ex.spool_dir, ex.max_spool_bytes),
                      {"service.name": "infersight-agent", "host.name": host, "cloud.provider": "gcp",
                       "cloud.region": "us-central1"})
        run_for(agent, seconds)

    replay = ReplayNvml(load_capture())
    replay.fail_init(9)  # NVML_ERROR_DRIVER_NOT_LOADED
    nvml = NvmlCollector(replay, clock=replay.clock, proc_root=Path("/nonexistent"))
    await asyncio.to_thread(run_agent, "gpu-broken", [ScheduledCollector("nvml", nvml, 0.1, 2)])
    endpoint = f"127.0.0.1:{closed_port()}"
    vllm = InferenceCollector([Endpoint(url=f"http://{endpoint}/metrics", kind="vllm")], timeout_seconds=0.5)
    await asyncio.to_thread(run_agent, "vllm-node", [ScheduledCollector("inference", vllm, 0.2, 2)])
    db = store.database
    for _ in range(100):
        n = store.query(f"SELECT uniqExact(ResourceAttributes['host.name']) AS n FROM `{db}`.otel_metrics_gauge "
                        "WHERE MetricName = 'infersight.collector.up'")[0]["n"]
        if int(n) == 2:
            break
        await asyncio.sleep(0.1)
    async with browser() as page:
        for rng in ("1h", "6h"):  # raw gauges, then the accelerator rollup
            await show(page, server + f"/ui/#/fleet?range={rng}")
            nodes = await tables(page, "#fleet-nodes")
            assert set(nodes) == {"gpu-broken", "vllm-node"}, rng
            assert nodes["gpu-broken"]["health"] == "collector down: nvml_init"
            assert nodes["vllm-node"]["health"] == f"collector down: endpoints_downendpoint {endpoint} down"
            assert "gpu-broken (collector down: nvml_init)" in await text(page, "#collectors-down")
            tips = await titles(page, "#fleet-nodes")
            assert tips["gpu-broken"]["health"].startswith("collector nvml (nvml): collector down: nvml_init")
            await show(page, f"#/nodes?range={rng}")
            hosts = await tables(page)
            assert hosts["gpu-broken"]["health"] == "collector down: nvml_init"
            assert hosts["gpu-broken"]["devices"] == "–"  # no GPU reported, yet the node is listed
        badges = await page.eval_on_selector_all("tr[data-key=vllm-node] td[data-col=health] .badge",
                                                 "els => els.map(e => e.textContent)")
        assert badges == ["collector down: endpoints_down", f"endpoint {endpoint} down"]
        assert page.errors == []


@pytest.mark.parametrize("token, works", [("s3cret", True), ("wrong", False)])
async def test_token_in_session_storage_is_sent_to_the_apis(store, port, token, works):
    runner = await start(store, port, token="s3cret")
    url = f"http://127.0.0.1:{port}"
    try:
        _fill(store)
        async with aiohttp.ClientSession() as s:
            for path in ("/ui/", "/ui/static/app.js", "/ui/static/vendor/uPlot.iife.min.js"):
                async with s.get(url + path) as r:  # the page loads without the token ...
                    assert r.status == 200, path
            async with s.get(url + "/ui/meta.json") as r:  # ... the data does not
                assert r.status == 401
        async with browser(token=token) as page:
            await show(page, url + "/ui/#/fleet?range=1h")
            if works:
                assert (await tables(page, "#fleet"))["aws/us-east-1"]["error_ratio"] == "1.00%"
                assert await page.is_hidden("#banner")
            else:
                assert "unauthorised (401)" in await text(page, "#view")
                assert await text(page, "#banner") == "This server needs a bearer token: enter it above."
    finally:
        await runner.cleanup()


def test_unreadable_price_catalog_is_a_config_error(store, tmp_path):
    from infersight.config import ConfigError

    cfg = parse_config({"cost": {"catalogs": [str(tmp_path / "missing.yaml")]}})
    with pytest.raises(ConfigError, match=r"cost: .*missing\.yaml"):
        attach(web.Application(), cfg, store)


def test_no_inline_script_or_style():
    """The server's CSP is default-src 'self': every script and style is a file."""
    html = (STATIC / "index.html").read_text()
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    for js in STATIC.glob("*.js"):
        assert "innerHTML" not in js.read_text(), js.name
