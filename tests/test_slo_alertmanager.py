"""A real Alertmanager (Debian `prometheus-alertmanager`) receives our pushed alerts (API v2) and
delivers them to a local webhook; its payload must match ours key for key, fingerprints included."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from infersight.slo.alerts import Flush, fingerprint
from infersight.slo.engine import SloEngine
from infersight.slo.notifiers import webhook_v4
from infersight.slo.settings import SloSettings
from support.net import free_port
from support.slo import insert_requests, make_slo, steady_requests

AM = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
pytestmark = pytest.mark.skipif(
    not Path(AM).exists(), reason="prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")


@pytest.fixture
async def alertmanager(tmp_path, hook):
    cfg = {
        "route": {"receiver": "hook", "group_by": ["alertname", "slo"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url, "send_resolved": True}]}],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    proc = subprocess.Popen(
        [AM, f"--config.file={tmp_path / 'am.yml'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", f"--storage.path={tmp_path / 'data'}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "am.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(url + "/-/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("alertmanager did not become ready: " + (tmp_path / "am.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _wait_for(pred, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_real_alertmanager_delivers_our_alerts(store, alertmanager, hook):
    now = time.time()  # Alertmanager judges endsAt against its own clock: use the real one here
    minute = int(now) // 60 * 60
    steady_requests(store, minute - 3 * 86400, 3 * 1440 - 3, 6000)
    steady_requests(store, minute - 180, 4, 6000, 6000)  # the last 3 minutes and this one: total outage
    settings = SloSettings.model_validate({
        "receivers": [{"name": "am", "type": "alertmanager", "url": alertmanager}],
        "route": {"receiver": "am", "group_wait_seconds": 0, "group_interval_seconds": 0.5},
        "external_url": "http://infersight.test",
        "keep_firing_for_seconds": 0,  # resolve at once: the hysteresis has its own tests (test_slo_trust.py)
    })
    slo = make_slo(window={"rolling": "7d"}, group_by=["cloud.provider"])
    engine = SloEngine(store, settings, [slo], clock=time.time)
    async with aiohttp.ClientSession() as session:
        engine.evaluate(now)
        assert await engine.deliver(session, now) == 1
        assert await _wait_for(lambda: hook.bodies), "alertmanager delivered nothing"
        body = hook.bodies[0]
        ours = {a["fingerprint"]: a for a in engine.alerts_view(now) if not a["inhibited"]}
        assert body["status"] == "firing" and body["version"] == "4"
        assert body["groupLabels"] == {"alertname": "SLOBurnRate", "slo": "avail"}
        got = {a["fingerprint"]: a for a in body["alerts"]}
        # Alertmanager computed the same fingerprints from the labels we pushed.
        assert set(got) <= set(ours) and got
        for fp, a in got.items():
            assert fingerprint(a["labels"]) == fp
            assert a["labels"] == ours[fp]["labels"]
            assert a["labels"]["cloud_provider"] == "aws"
            assert a["annotations"]["burn_rate_long"] == ours[fp]["annotations"]["burn_rate_long"]
            assert a["generatorURL"] == "http://infersight.test/api/v1/slos?slo=avail"
        # Our direct webhook payload has exactly Alertmanager's shape and key order.
        recs = [engine.tracker.alerts[fp] for fp in got]
        direct = webhook_v4(Flush(body["groupKey"], "hook", body["groupLabels"], recs, []),
                            settings.receivers[0], "http://infersight.test")
        assert list(direct) == list(body)
        assert [list(a) for a in direct["alerts"]] == [list(a) for a in body["alerts"]]
        assert direct["commonLabels"] == body["commonLabels"]
        assert {a["fingerprint"] for a in direct["alerts"]} == set(got)

        # Recovery: enough good traffic in this minute dilutes every window below its factor.
        insert_requests(store, [{"minute": minute, "requests": 10**9, "bad": 0}])
        await asyncio.sleep(0.6)  # past our group_interval
        later = time.time()
        engine.evaluate(later)
        assert await engine.deliver(session, later) == 1
        assert await _wait_for(lambda: any(b["status"] == "resolved" for b in hook.bodies)), hook.bodies
        resolved = next(b for b in hook.bodies if b["status"] == "resolved")
        assert {a["fingerprint"] for a in resolved["alerts"]} == set(got)
        assert all(a["status"] == "resolved" and a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved["alerts"])
