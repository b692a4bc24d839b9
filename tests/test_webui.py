"""The built-in web UI, served with the gateway's real query API over chDB and rendered by headless Chromium."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from infersight.config import parse_config
from infersight.webui import OPEN_PATHS, OPEN_PREFIXES, STATIC, attach
from infersight.gateway.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Dom(HTMLParser):
    """Collects text by element id, and table cells as tables[container id][row key][column]."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self.hidden: set[str] = set()
        self._stack: list[tuple[str, str | None]] = []
        self._row: dict[str, str] | None = None
        self._col: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "hidden" in a and a.get("id"):
            self.hidden.add(a["id"])
        if tag == "tr" and a.get("data-key") is not None:
            container = next(i for _, i in reversed(self._stack) if i)
            self._row = self.tables.setdefault(container, {}).setdefault(a["data-key"], {})
        if tag == "td" and self._row is not None and a.get("data-col"):
            self._col = a["data-col"]
            self._row[self._col] = ""
        if tag not in ("input", "meta", "link", "br"):
            self._stack.append((tag, a.get("id")))
            if a.get("id"):
                self.by_id.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break
        if tag == "td":
            self._col = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        for _, ident in self._stack:
            if ident:
                self.by_id[ident] += data
        if self._row is not None and self._col:
            self._row[self._col] += data


async def render(url: str, tmp_path: Path) -> str:
    """The DOM after the page's scripts ran (Chromium's virtual time lets fetches finish)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000",
        "--dump-dom", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def start(store, port: int, slo_paths: tuple[Path, ...] = (), catalogs: tuple[Path, ...] = ()):
    """The gateway (OTLP + /api/v1/query over the store) with the UI, and the SLO engine when given specs."""
    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.05,
                                   "storage": {"database": store.database}},
                        "slo": {"paths": [str(p) for p in slo_paths], "interval_seconds": 0.2},
                        "cost": {"catalogs": [str(p) for p in catalogs]}})
    app = create_app(cfg.server, store)
    if slo_paths:
        from infersight.slo.service import attach as attach_slo

        attach_slo(app, cfg, store)
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
    db = store.database
    store.execute(
        f"INSERT INTO `{db}`.infersight_requests_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        "Tenant, Requests, BadRequests, InputTokens, OutputTokens, CachedTokens, ReportedCostUSD) VALUES "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 1200, 12, 300000, 600000, 0, 0), "
        f"('{_minute(4)}', 'aws', 'us-east-1', 'a2', 'llama-3-70b', 'vllm', '', 800, 8, 200000, 400000, 0, 0), "
        f"('{_minute(5)}', 'azure', 'eastus', 'z1', 'gpt-4o', 'openai', '', 50, 5, 40000, 10000, 0, 1.25), "
        # older than the page's default 1 h range: must not show
        f"('{_minute(300)}', 'gcp', 'us-central1', 'g1', 'gemma', 'vllm', '', 999, 0, 1, 1, 0, 0)")
    store.execute(
        f"INSERT INTO `{db}`.infersight_latency_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        "Tenant, Kind, Bounds, BucketCounts, Count, Sum) VALUES "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 'ttft', [0.1, 0.5, 1.0], "
        "[0, 100, 0, 0], 100, 30), "
        f"('{_minute(5)}', 'aws', 'us-east-1', 'a1', 'llama-3-70b', 'vllm', '', 'e2e', [1.0, 2.0, 4.0], "
        "[0, 50, 50, 0], 100, 300)")


async def test_page_renders_the_fleet_from_the_query_api(store, server, tmp_path):
    _fill(store)
    dom = Dom(await render(server + "/", tmp_path))
    assert set(dom.tables["fleet"]) == {"aws/us-east-1/llama-3-70b", "azure/eastus/gpt-4o"}
    aws = dom.tables["fleet"]["aws/us-east-1/llama-3-70b"]
    assert aws["requests"] == "2,000"
    assert aws["error_ratio"] == "1.00%"
    assert aws["p95_ttft"] == "480.0 ms"  # all 100 in (0.1, 0.5]: 0.1 + 0.4 * 95/100
    assert aws["p95_e2e"] == "3.80 s"     # rank 95 in (2, 4]: 2 + 2 * 45/50
    assert aws["output_tokens"] == "1,000,000"
    assert aws["usd_per_1m_tokens"] == "unpriced"
    azure = dom.tables["fleet"]["azure/eastus/gpt-4o"]
    assert azure["error_ratio"] == "10.00%"
    assert azure["p95_ttft"] == "–"  # no latency histogram for it: shown as missing, not 0
    assert azure["usd_per_1m_tokens"] == "$25.00"  # 1.25 USD over 50,000 tokens
    assert "cost-head" not in dom.hidden
    assert dom.by_id["fleet-status"] == "2 series, last 1 h"


async def test_slo_and_alert_panels_say_when_the_server_has_no_slo_engine(store, server, tmp_path):
    dom = Dom(await render(server + "/ui/", tmp_path))
    assert dom.by_id["slo-status"] == "SLOs: not available on this server (404)"
    assert dom.by_id["alert-status"] == "alerts: not available on this server (404)"
    assert dom.by_id["fleet-status"] == "no requests in the last 1 h"
    assert dom.tables == {}


async def test_query_errors_are_shown_not_swallowed(store, server, tmp_path):
    store.execute(f"DROP TABLE `{store.database}`.infersight_latency_1m")
    dom = Dom(await render(server + "/ui/", tmp_path))
    status = dom.by_id["fleet-status"]
    assert status.startswith("fleet: error 400: ") and "infersight_latency_1m" in status


async def test_routes_and_assets(store, server):
    async with aiohttp.ClientSession() as s:
        for path in ("/", "/ui"):
            async with s.get(server + path, allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/ui/"
        async with s.get(server + "/ui/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            html = await r.text()
        for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html):
            async with s.get(server + asset) as r:
                assert r.status == 200, asset
                assert r.headers["Cache-Control"] == "no-cache"
                assert await r.read() == (STATIC / asset.removeprefix("/ui/static/")).read_bytes()
        async with s.get(server + "/ui/meta.json") as r:
            meta = await r.json()
        assert meta["database"] == store.database and meta["priced"] is False
        async with s.get(server + "/ui/cost.json?hours=1") as r:
            assert r.status == 404 and "cost.catalogs" in (await r.json())["error"]
        assert meta["request_columns"][:2] == ["Minute", "CloudProvider"]
        for probe in ("/ui/static/../__init__.py", "/ui/static/%2e%2e%2f__init__.py", "/ui/static/nope.js"):
            async with s.get(server + probe) as r:
                assert r.status == 404, probe
    assert "/ui/" in OPEN_PATHS and all(p.startswith("/ui/static/") for p in OPEN_PREFIXES)


async def test_page_shows_what_an_instrumented_app_sent(store, server, tmp_path):
    """Real OTel SDK spans → gateway → rollup views → query API → page."""
    from test_dashboards_e2e import send_genai_spans, wait_rows

    await asyncio.to_thread(send_genai_spans, server, "qwen-72b", 40, 1)
    await wait_rows(store, "infersight_requests_1m", 1)
    dom = Dom(await render(server + "/ui/", tmp_path))
    row = dom.tables["fleet"]["aws/us-east-1/qwen-72b"]
    assert (row["requests"], row["error_ratio"]) == ("40", "2.50%")
    assert row["p95_ttft"] == "147.5 ms" and row["p95_e2e"] == "790.0 ms"
    assert (row["input_tokens"], row["output_tokens"]) == ("4,000", "2,000")
    assert row["usd_per_1m_tokens"] == "$10.00"  # 40 × 0.0015 USD over 6,000 tokens


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


async def test_slo_and_alert_panels_from_the_real_engine(store, port, tmp_path):
    """4 of 40 requests fail: 10 % errors burn a 99.9 % budget 100× faster than allowed.

    The budget is gone and the page tier fires."""
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
                    if (await r.json())["alerts"]:
                        break
                await asyncio.sleep(0.1)
        dom = Dom(await render(url + "/ui/", tmp_path))
    finally:
        await runner.cleanup()
    assert dom.by_id["slo-status"] == "1 SLO instances of 1 SLOs"
    (row,) = dom.tables["slos"].values()
    assert row["slo"] == "chat-availability"
    assert row["group"] == "cloud.provider=aws, cloud.region=us-east-1, gen_ai.request.model=qwen-72b"
    assert row["sli"] == "90.000%" and row["objective"] == "99.9%" and row["window"] == "rolling 30d"
    # 40 events over the 30d window allow 0.04 bad ones; 4 bad use 100× the budget
    assert row["state"] == "exhausted" and row["budget_remaining"] == "-9900.0%"
    assert "1h 100.0×" in row["burn_rates"]
    assert "(page)" in row["burning_tiers"]
    by_tier = {a["tier"]: a for a in dom.tables["alerts"].values()}
    assert {t: (a["severity"], a["state"]) for t, a in by_tier.items()} == {
        "page-fast": ("page", "firing"), "budget-exhausted": ("ticket", "firing"),
        # slower tiers are inhibited while the fast page fires
        "page-slow": ("page", "firing (inhibited)"), "ticket-fast": ("ticket", "firing (inhibited)"),
        "ticket-slow": ("ticket", "firing (inhibited)")}
    fast = by_tier["page-fast"]
    assert fast["slo"] == "chat-availability"
    assert fast["group"] == "cloud_provider=aws, cloud_region=us-east-1, gen_ai_request_model=qwen-72b"
    assert list(by_tier)[:2] == ["page-fast", "budget-exhausted"]  # live pages first
    assert "100× too fast" in fast["summary"]
    assert dom.by_id["alert-status"] == "5 active of 5 alerts"
    assert dom.tables["fleet"]["aws/us-east-1/qwen-72b"]["error_ratio"] == "10.00%"


async def test_real_server_subprocess_serves_the_ui(tmp_path, port):
    """`infersight server` as users run it (UI registered as a server extension, SLO engine on)."""
    import subprocess
    import sys

    from test_dashboards_e2e import send_genai_spans

    spec = tmp_path / "slo.yaml"
    spec.write_text(SLO_SPEC)
    config = tmp_path / "server.yaml"
    config.write_text("server: {flush_interval_seconds: 0.05}\nslo: {interval_seconds: 0.2}\n")
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "server", "--config", str(config),
                                 "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}",
                                 "--slo", str(spec)], stdout=out, stderr=out)
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):
                assert proc.poll() is None, log.read_text()
                try:
                    async with s.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.to_thread(send_genai_spans, url, "mixtral-8x7b", 30, 0)
            for _ in range(300):
                async with s.get(url + "/api/v1/slos") as r:
                    if [i for i in (await r.json())["instances"] if i["events"]]:
                        break
                await asyncio.sleep(0.1)
        dom = Dom(await render(url + "/", tmp_path))
    finally:
        proc.terminate()
        proc.wait(30)
    fleet = dom.tables["fleet"]["aws/us-east-1/mixtral-8x7b"]
    assert (fleet["requests"], fleet["error_ratio"], fleet["usd_per_1m_tokens"]) == ("30", "0.00%", "$10.00")
    (slo,) = dom.tables["slos"].values()
    assert (slo["slo"], slo["state"], slo["sli"], slo["budget_remaining"]) == ("chat-availability", "ok",
                                                                             "100.000%", "100.0%")
    assert dom.by_id["alert-status"] == "no alerts"


@pytest.mark.parametrize("token, works", [("s3cret", True), ("wrong", False)])
async def test_token_typed_into_the_page_is_sent_to_the_apis(store, port, tmp_path, token, works):
    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "auth_token": "s3cret",
                                   "storage": {"database": store.database}}})
    app = create_app(cfg.server, store)

    async def harness(request: web.Request) -> web.Response:
        # What the token form does, then the page itself (same origin, so the same sessionStorage).
        # A script file, not inline code: the server's CSP refuses inline scripts.
        return web.Response(content_type="text/html", text='<script src="/ui/static/harness.js"></script>')

    async def harness_js(request: web.Request) -> web.Response:
        return web.Response(content_type="text/javascript", text=f'sessionStorage.setItem("infersight.token", '
                                                                 f'"{token}"); location.replace("/ui/");')

    app.router.add_get("/ui/static/harness.html", harness)  # before attach: matched first
    app.router.add_get("/ui/static/harness.js", harness_js)
    attach(app, cfg, store)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    try:
        _fill(store)
        async with aiohttp.ClientSession() as s:
            for path in ("/ui/", "/ui/static/app.js"):  # the page loads without the token ...
                async with s.get(url + path) as r:
                    assert r.status == 200, path
            async with s.get(url + "/ui/meta.json") as r:  # ... the data does not
                assert r.status == 401
            async with s.post(url + "/api/v1/query", json={"sql": "SELECT 1"}) as r:
                assert r.status == 401
        dom = Dom(await render(url + "/ui/static/harness.html", tmp_path))
    finally:
        await runner.cleanup()
    assert "fleet-status" in dom.by_id, "the page did not load"
    if works:
        assert dom.tables["fleet"]["aws/us-east-1/llama-3-70b"]["requests"] == "2,000"
        assert "banner" in dom.hidden
    else:
        assert dom.by_id["fleet-status"] == "fleet: unauthorised (401)"
        assert dom.by_id["banner"] == "This server needs a bearer token: enter it above."


async def test_accelerators_by_host_from_real_collectors(store, server, tmp_path):
    """NVML replay of the H200 capture with an injected XID 79, and a neuron-monitor document, via OTLP."""
    from test_dashboards_e2e import RESOURCE, post_points

    from infersight.collectors.neuron import NeuronCollector
    from infersight.collectors.nvml import NvmlCollector
    from infersight.testing.nvml_replay import ReplayNvml, load_capture

    replay = ReplayNvml(load_capture())
    nvml = NvmlCollector(replay, clock=replay.clock, proc_root=Path("/nonexistent"))
    replay.seek(60)
    first = list(nvml.collect())
    replay.inject_xid(0, 79)  # fallen off the bus: failed
    replay.seek(61)
    second = list(nvml.collect())
    await post_points(server, first, store, len(first), seconds_ago=10)  # one collection interval earlier
    await post_points(server, second, store, len(first) + len(second))
    neuron = NeuronCollector(["unused"])
    neuron.close()
    doc = Path(__file__).parent / "fixtures" / "neuron" / "neuron-monitor_trn1.2xlarge_wandb-test.json"
    neuron.feed(json.dumps(json.loads(doc.read_text())))
    points = list(neuron.collect())
    await post_points(server, points, store, len(first) + len(second) + len(points),
                      {**RESOURCE, "host.name": "trn-node-1", "cloud.provider": "aws"}, "infersight.collectors.neuron")

    dom = Dom(await render(server + "/ui/", tmp_path))
    hosts = dom.tables["accelerators"]
    assert list(hosts) == ["gpu-node-7", "trn-node-1"]  # the host with a failed GPU first
    gpu = hosts["gpu-node-7"]
    util = [p.value for p in first + second if p.name == "hw.gpu.utilization"
            and p.attributes["hw.gpu.task"] == "general"]
    assert gpu["utilization"] == f"{sum(util) / len(util) * 100:.1f}%"
    (watts,) = [p.value for p in second if p.name == "hw.power"]
    assert (gpu["devices"], gpu["power"], gpu["not_ok"], gpu["xid"]) == ("1", f"{watts:,.0f} W", "1", "1")
    trn = hosts["trn-node-1"]
    assert (trn["cloud"], trn["devices"], trn["utilization"], trn["power"]) == ("aws", "2", "0.7%", "–")
    assert dom.by_id["accel-status"] == "2 hosts, last 1 h"


PRICES = """\
api:
  - provider: openai
    model: gpt-4o
    input_usd_per_million: 2.50
    output_usd_per_million: 10.00
"""


async def test_usd_per_million_tokens_from_the_price_catalog(store, port, tmp_path):
    """The cost module's catalog price wins; reported cost is the fallback; neither is 'unpriced'."""
    from test_dashboards_e2e import send_genai_spans, wait_rows

    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    runner = await start(store, port, catalogs=(prices,))
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(send_genai_spans, url, "gpt-4o", 40, 0, "openai")  # also reports 0.0015 each
        await asyncio.to_thread(send_genai_spans, url, "in-house-7b", 10, 0, "openai")  # no price, reported
        await asyncio.to_thread(send_genai_spans, url, "mystery-1", 10, 0, "openai", None)  # neither
        await wait_rows(store, "otel_traces", 60)
        async with aiohttp.ClientSession() as s:
            for bad in ("0", "x", str(24 * 31 + 1)):
                async with s.get(f"{url}/ui/cost.json?hours={bad}") as r:
                    assert r.status == 400 and "hours" in (await r.json())["error"]
        dom = Dom(await render(url + "/ui/", tmp_path))
    finally:
        await runner.cleanup()
    fleet = dom.tables["fleet"]
    # 4,000 input × 2.50 + 2,000 output × 10.00 USD per 1M = 0.03 USD over 6,000 tokens
    assert fleet["aws/us-east-1/gpt-4o"]["usd_per_1m_tokens"] == "$5.00"
    assert fleet["aws/us-east-1/in-house-7b"]["usd_per_1m_tokens"] == "$10.00"  # 10 × 0.0015 / 1,500 tokens
    assert fleet["aws/us-east-1/mystery-1"]["usd_per_1m_tokens"] == "unpriced"


def test_unreadable_price_catalog_is_a_config_error(store, tmp_path):
    from infersight.config import ConfigError

    cfg = parse_config({"cost": {"catalogs": [str(tmp_path / "missing.yaml")]}})
    with pytest.raises(ConfigError, match=r"cost: .*missing\.yaml"):
        attach(web.Application(), cfg, store)
