"""Every view against the demo fleet (`infersight demo`: the real agent → OTLP → gateway path), in
headless Chromium: it loads without errors and its charts have the series of the fleet."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from webui_support import browser, charts, series, show, tables, text

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The labels of an alert that are not its instance's group (view_alerts.js TIER_LABELS).
TIER_LABELS = {"slo", "alertname", "severity", "tier", "long_window", "short_window", "burn_rate_threshold"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`infersight demo --nodes 6 --history 1h` on a free port; its URL once it says it is running."""
    from support.net import free_port

    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = tmp / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "demo", "--nodes", "6", "--history", "1h",
                                 "--port", str(port), "--data-dir", str(tmp / "data")], stdout=out, stderr=out,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        deadline = time.time() + 240
        while b"demo running" not in log.read_bytes():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(2)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_every_view_loads_against_the_demo_fleet(demo):
    async with aiohttp.ClientSession() as s:
        for _ in range(60):  # the engine's first evaluation
            async with s.get(demo + "/api/v1/slos") as r:
                instances = [i for i in (await r.json())["instances"] if i["budget_remaining"] is not None]
            if instances:
                break
            await asyncio.sleep(1)
    assert instances
    async with browser() as page:
        await show(page, demo + "/ui/#/fleet?range=1h")
        clouds = {k.split("/")[0] for k in await tables(page, "#fleet")}
        assert {"aws", "azure", "gcp", "oracle_cloud"} <= clouds
        drawn = await charts(page)
        assert {"aws", "azure", "gcp", "oracle_cloud"} <= set(series(drawn["fleet-rps"]))
        assert all(n >= 30 for n in series(drawn["fleet-rps"]).values())  # a point a minute
        assert any(k.endswith(" tensor") for k in series(drawn["fleet-accel"]))

        await show(page, "#/compare?range=1h")
        model = await page.input_value("#filter-model")
        rows = await tables(page)
        assert len(rows) >= 3 and all(r["usd_per_1m_tokens"].startswith("$") for r in rows.values())
        assert set(series((await charts(page))["compare-ttft"])) == set(rows)
        assert f"model={quote(model, safe='')}" in page.url or "model=" not in page.url

        await show(page, "#/slos?range=1h")
        listed = await tables(page)
        left = [r["budget_left"] for r in listed.values()]
        # The demo is live: instances appear as data arrives, so the page lists at least those the API had before
        # and at most those it has now.
        async with aiohttp.ClientSession() as s, s.get(demo + "/api/v1/slos") as r:
            now = [i for i in (await r.json())["instances"] if i["budget_remaining"] is not None]
        assert len(instances) <= len(listed) <= len(now) and left

        worst = min(instances, key=lambda i: i["budget_remaining"])
        await show(page, f"#/slo?range=1h&name={quote(worst['slo'])}&group={quote(json.dumps(worst['group']))}")
        assert (await text(page, "#slo-budget-left")).endswith("%") or "budget" in await text(page, "#slo-budget-left")
        drawn = await charts(page)
        assert series(drawn["slo-burndown"])["budget left"] >= 20
        assert any(k.startswith("slo-burn-") for k in drawn)

        await show(page, "#/alerts?range=1h")
        assert int(await text(page, "#count-firing")) >= 1

        await show(page, "#/nodes?range=1h")
        hosts = await tables(page)
        assert len(hosts) == 6
        gpu_host = next(h for h in hosts if "h100" in h or "h200" in h)
        await show(page, f"#/nodes?range=1h&host={gpu_host}")
        drawn = await charts(page)
        assert len(series(drawn["dev-hw-gpu-utilization"])) == 8  # every GPU of the node
        assert {"dev-infersight-gpu-pipe-utilization", "dev-infersight-gpu-dram-activity", "dev-hw-power"} <= set(drawn)
        assert page.errors == []


async def test_alerts_view_shows_the_alert_log_and_what_the_demo_sink_received(demo):
    """The scripted incidents fire: the Alerts view's History lists the log's transitions, the demo section
    the sink's notifications, and every alert the sink got is a transition the log says it delivered."""
    async with aiohttp.ClientSession() as s:
        for _ in range(180):
            async with s.get(demo + "/api/v1/alerts/history?since_seconds=3600") as r:
                logged = (await r.json())["entries"]
            async with s.get(demo + "/ui/demo/sink.json") as r:
                sink = await r.json()
            if sink["count"] and any(d["status"] == "sent" for e in logged for d in e["deliveries"]):
                break
            await asyncio.sleep(1)
    assert sink["count"] and logged
    async with browser() as page:
        await show(page, demo + "/ui/#/alerts?range=1h")
        history = await tables(page, "#alerts-history")
        received = await tables(page, "#demo-sink")
        # The SLO detail of a transition's instance lists it in its alert history.
        first = next(e for e in logged if e["deliveries"])
        group = {k: v for k, v in first["labels"].items() if k not in TIER_LABELS}
        await show(page, f"#/slo?range=1h&name={quote(first['slo'])}&group={quote(json.dumps(group))}")
        detail = await tables(page, "#slo-alerts")
        assert page.errors == []
    assert f"{first['fingerprint']} {first['event']} {first['at']}" in detail
    # The demo is live: the page shows at least what the APIs had a moment before.
    assert {f"{e['fingerprint']} {e['event']} {e['at']}" for e in logged} <= set(history)
    row = history[f"{first['fingerprint']} {first['event']} {first['at']}"]
    assert row["event"] == first["event"] and row["tier"] == first["tier"] and row["sent"].startswith("demo-sink: ")
    assert len(received) >= min(sink["count"], 200)
    assert {r["status"] for r in received.values()} <= {"firing", "resolved"}
    assert all(r["receiver"] == "demo-sink" for r in received.values())
    async with aiohttp.ClientSession() as s:
        async with s.get(demo + "/ui/demo/sink.json") as r:
            sink = await r.json()
        async with s.get(demo + "/api/v1/alerts/history?since_seconds=3600&limit=1000") as r:
            logged = (await r.json())["entries"]
    # A delivery row is written when the notification is queued (before the sink gets it), its result after.
    told = {(e["fingerprint"], e["event"], e["startsAt"]) for e in logged
            if any(d["receiver"] == "demo-sink" for d in e["deliveries"])}
    got = {(a["fingerprint"], a["status"], a["startsAt"]) for n in sink["notifications"]
           for a in n["payload"]["alerts"]}
    assert got <= told
