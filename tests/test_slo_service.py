"""The engine inside the server app: background loop, JSON API, silences API, SIGHUP reload."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from infersight.config import ConfigError, parse_config
from infersight.slo import service
from support.slo import burning_now, slo_doc


def _cfg(spec_dir, hook_url):
    return parse_config({"slo": {
        "paths": [str(spec_dir)], "interval_seconds": 0.2,
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook_url}],
        "route": {"group_wait_seconds": 0, "group_interval_seconds": 1},
    }})


async def _until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_server_api_loop_silences_and_reload(store, tmp_path, hook):
    specs, minute = burning_now(store, tmp_path)
    app = web.Application()
    service.attach(app, _cfg(specs, hook.url), store)
    async with TestClient(TestServer(app)) as client:
        async def firing():
            alerts = (await (await client.get("/api/v1/alerts")).json())["alerts"]
            return [a for a in alerts if a["state"] == "firing"]

        alerts = await _until(firing)
        assert {a["labels"]["slo"] for a in alerts} == {"avail"}
        await _until(lambda: asyncio.sleep(0, result=bool(hook.bodies)))
        assert hook.bodies[0]["status"] == "firing"
        slos = await (await client.get("/api/v1/slos")).json()
        assert [s["slo"] for s in slos["slos"]] == ["avail"]
        inst = slos["instances"][0]
        assert inst["state"] in ("burning", "exhausted") and inst["burn_rates"]["5m"] > 14.4
        assert inst["objective_percent"] == "99.9"

        # Status at a past moment: before the outage the SLO was fine.
        past = await (await client.get("/api/v1/slos/status", params={"at": str(minute - 3600 + 30)})).json()
        assert past["instances"][0]["state"] == "ok"
        # Windows end at T rounded down to the minute (half-open); the document says which instant.
        assert past["at"] == minute - 3600 and past["requested_at"] == minute - 3600 + 30
        cov = past["instances"][0]["coverage"]
        assert cov["last_data_at"] == minute - 3660 and cov["first_data_at"] == minute - 86400
        assert past["instances"][0]["unit"] == "ratio" and past["instances"][0]["budget"]["value"] == 0.001
        bad = await client.get("/api/v1/slos/status", params={"at": "yesterday"})
        assert bad.status == 400 and "invalid time" in (await bad.json())["error"]

        # Silences: validation errors are 400s naming the field; a good one mutes, expiring unmutes.
        r = await client.post("/api/v1/silences", json={"matchers": [], "duration": "1h"})
        assert r.status == 400 and "matchers" in (await r.json())["error"]
        r = await client.post("/api/v1/silences", json={"matchers": [{"name": "slo", "value": "avail"}]})
        assert r.status == 400 and "endsAt or duration" in (await r.json())["error"]
        r = await client.post("/api/v1/silences", data=b"{nope")
        assert r.status == 400
        r = await client.post("/api/v1/silences", json={"matchers": [{"name": "slo", "value": "avail"}],
                                                        "duration": "1h", "comment": "deploy"})
        assert r.status == 200
        sid = (await r.json())["silenceID"]
        listed = (await (await client.get("/api/v1/silences")).json())["silences"]
        assert [(s["id"], s["status"]["state"]) for s in listed] == [(sid, "active")]
        assert all(a["silenced"] for a in (await (await client.get("/api/v1/alerts")).json())["alerts"])
        r = await client.delete(f"/api/v1/silences/{sid}")
        assert (await r.json())["status"]["state"] == "expired"
        assert (await client.delete("/api/v1/silences/nope")).status == 404

        # SIGHUP picks up a changed spec without losing alert state or re-paging.
        sent = len(hook.posts)
        (specs / "latency.yaml").write_text(yaml.safe_dump(slo_doc(
            name="ttft", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.5}})))
        os.kill(os.getpid(), signal.SIGHUP)

        async def two():
            got = await (await client.get("/api/v1/slos")).json()
            return len(got["slos"]) == 2

        await _until(two)
        assert [a["fingerprint"] for a in await firing()] == [a["fingerprint"] for a in alerts]
        await asyncio.sleep(0.5)
        assert len(hook.posts) == sent
        # A broken spec is refused with a message; the running SLOs stay.
        (specs / "broken.yaml").write_text(yaml.safe_dump(slo_doc(name="broken", objective=120)))
        r = await client.post("/api/v1/slos/reload")
        assert r.status == 400
        msg = (await r.json())["error"]
        assert "broken.yaml" in msg and "slo 'broken'" in msg and "objective_percent" in msg
        assert len((await (await client.get("/api/v1/slos")).json())["slos"]) == 2

        # notify test: a synthetic alert straight to the receiver.
        r = await client.post("/api/v1/notify/test", json={"receiver": "oncall"})
        assert r.status == 200 and (await r.json())["delivered"]
        assert hook.bodies[-1]["alerts"][0]["labels"]["alertname"] == "InfersightTestAlert"
        assert (await client.post("/api/v1/notify/test", json={"receiver": "nope"})).status == 404
        metrics = await (await client.get("/api/v1/slos/metrics")).text()
        assert 'infersight_slo_notifications_total{outcome="sent",receiver="oncall"}' in metrics


def test_invalid_spec_fails_attach_with_config_error(tmp_path):
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(slo_doc(sli={"ratio": {"filters": {"bogus": "1"}}})))
    cfg = parse_config({"slo": {"paths": [str(tmp_path)]}})
    with pytest.raises(ConfigError, match=r"x.yaml: slo 'avail': .*'bogus' is not available"):
        service.attach(web.Application(), cfg, None)  # refused before the store is touched


def test_settings_reject_unknown_receiver_and_keys():
    with pytest.raises(ConfigError, match="unknown receiver 'pd'"):
        parse_config({"slo": {"receivers": [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
                              "route": {"receiver": "pd"}}})
    with pytest.raises(ConfigError, match="unknown key 'slo.intervall_seconds'"):
        parse_config({"slo": {"intervall_seconds": 3}})
    with pytest.raises(ConfigError, match="pagerduty needs routing_key"):
        parse_config({"slo": {"receivers": [{"name": "pd", "type": "pagerduty"}]}})
    assert parse_config({}).slo.interval_seconds == 30
