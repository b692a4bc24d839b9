"""The lasting alert log: the engine's firing/resolved transitions and each receiver's delivery of them,
in the store (real chDB, a real loopback receiver), across restarts; the history API and its errors."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from infersight.config import parse_config
from infersight.server.tables import all_ddl
from infersight.slo import service
from infersight.slo.alert_log import history_json, parse_history_query
from infersight.slo.engine import SloEngine
from infersight.slo.settings import SloSettings
from infersight.storage.schema import SchemaOptions, ensure_schema
from support.slo import T0, Clock, burning_now, make_slo, serve_receiver, steady_requests

DAY = 86400
OUTAGE = T0 + 30 * DAY


@pytest.fixture
async def receiver(port):
    async with serve_receiver(port) as rec:
        yield rec


def _settings(url: str, repeat_seconds: int = 3600) -> SloSettings:
    return SloSettings.model_validate({
        "receivers": [{"name": "oncall", "type": "webhook", "url": url}],
        "route": {"receiver": "oncall", "group_wait_seconds": 0, "group_interval_seconds": 60,
                  "repeat_interval_seconds": repeat_seconds},
        "delivery": {"max_attempts": 4, "backoff_initial_seconds": 10, "backoff_max_seconds": 60},
    })


def _outage(store, minutes: int) -> None:
    """30 days of clean traffic, then a total outage of `minutes` minutes."""
    steady_requests(store, T0, 30 * 1440, 6000)
    steady_requests(store, OUTAGE, minutes, 6000, 6000)


def _history(engine: SloEngine, **kw) -> list[dict]:
    return history_json(engine.store.alert_history(T0, 1000, **kw))


def _sent(bodies: list[dict]) -> set[tuple[str, str, str]]:
    """(fingerprint, status, startsAt) of every alert the receiver got, repeats aside."""
    return {(a["fingerprint"], a["status"], a["startsAt"]) for b in bodies for a in b["alerts"]}


async def test_transitions_and_deliveries_land_in_the_log_across_restarts(store, receiver):
    _outage(store, 2)
    slo = make_slo()
    settings = _settings(receiver.url, repeat_seconds=120)
    receiver.down = True
    async with aiohttp.ClientSession() as session:
        first = SloEngine(store, settings, [slo], Clock())
        first.evaluate(OUTAGE + 90)
        await first.deliver(session, OUTAGE + 90)  # 503: retried later
        fired = _history(first)
        assert fired and {e["event"] for e in fired} == {"firing"}
        assert {e["tier"] for e in fired} == {a.labels["tier"] for a in first.tracker.alerts.values()}
        for e in fired:
            assert e["slo"] == "avail" and e["at"] == e["startsAt"] and e["endsAt"] is None and e["muted"] is None
            assert e["labels"]["severity"] == e["severity"] and e["summary"].startswith("SLO avail")
            [d] = e["deliveries"]
            assert d["receiver"] == "oncall" and d["status"] == "pending" and d["attempts"] == 1
            assert "HTTP 503" in d["error"]
        # A restart: the new engine carries the open delivery on, and records its result.
        receiver.down = False
        second = SloEngine(store, settings, [slo], Clock())
        await second.deliver(session, OUTAGE + 200)
        assert [b["status"] for b in receiver.bodies] == ["firing"]
        assert [(d["status"], d["attempts"], d["error"]) for e in _history(second) for d in e["deliveries"]] \
            == [("sent", 2, None)] * len(fired)
        # A repeat of the still-firing group is no transition: nothing new in the log.
        await _cycle(second, session, OUTAGE + 250)
        assert [b["status"] for b in receiver.bodies] == ["firing", "firing"]
        assert len(_history(second)) == len(fired)
        # It recovers; a third incarnation resolves and tells the receiver.
        steady_requests(store, OUTAGE + 120, 30, 6000)
        third = SloEngine(store, settings, [slo], Clock())
        await _cycle(third, session, OUTAGE + 10 * 3600)
    log = _history(third)
    resolved = [e for e in log if e["event"] == "resolved"]
    assert {e["fingerprint"] for e in resolved} == {e["fingerprint"] for e in fired}
    assert all(e["endsAt"] == e["at"] and [d["status"] for d in e["deliveries"]] == ["sent"] for e in resolved)
    assert [e["event"] for e in log] == ["resolved"] * len(fired) + ["firing"] * len(fired)  # newest first
    # The log says what the receiver got: every delivered transition, and nothing else.
    told = {(e["fingerprint"], e["event"], e["startsAt"]) for e in log if e["deliveries"]}
    assert told == _sent(receiver.bodies)
    # One SLO's history, and a limit that keeps the newest.
    assert _history(third, slo="other") == []
    newest = history_json(third.store.alert_history(T0, 1, "avail"))
    assert len(newest) == 1 and newest[0]["event"] == "resolved"


async def _cycle(engine: SloEngine, session, now: float) -> None:
    engine.evaluate(now)
    await engine.deliver(session, now)


async def test_a_silenced_transition_is_logged_without_deliveries(store, receiver):
    _outage(store, 2)
    clock = Clock(OUTAGE)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], clock)
    engine.add_silence([{"name": "slo", "value": "avail", "isRegex": False, "isEqual": True}],
                       ends_at=OUTAGE + 7200, comment="maintenance")
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90)
    log = _history(engine)
    assert receiver.posts == [] and log
    assert all(e["muted"] == "silenced" and e["deliveries"] == [] for e in log)


async def test_a_refused_write_is_kept_and_written_at_the_next_flush(store, receiver):
    _outage(store, 2)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], Clock())
    store.execute(f"DROP TABLE `{store.database}`.infersight_slo_alert_log")
    engine.evaluate(OUTAGE + 90)  # the evaluation itself goes through
    assert engine.tracker.alerts and engine.outbox and engine.alert_log.buffer
    assert not engine.alert_log.flush()
    ensure_schema(store, SchemaOptions(database=store.database), all_ddl())
    assert engine.alert_log.flush() and engine.alert_log.buffer == []
    log = _history(engine)
    assert {e["fingerprint"] for e in log} == set(engine.tracker.alerts)
    assert all(d["status"] == "pending" for e in log for d in e["deliveries"])


@pytest.mark.parametrize(("query", "message"), [
    ({"since_seconds": "0"}, "since_seconds: a whole number from 1 to 31536000"),
    ({"since_seconds": "1h"}, "since_seconds"),
    ({"since_seconds": str(366 * DAY)}, "since_seconds"),
    ({"limit": "-3"}, "limit: a whole number from 1 to 1000"),
    ({"limit": "1001"}, "limit"),
    ({"slo": " "}, "slo: an SLO name"),
    ({"since": "3600"}, "unknown parameter(s) since; use slo, since_seconds, limit"),
])
def test_history_parameters_are_checked(query, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_history_query(query)


def test_history_parameter_defaults():
    assert parse_history_query({}) == (None, 7 * DAY, 100)
    assert parse_history_query({"slo": "avail", "since_seconds": "60", "limit": "5"}) == ("avail", 60, 5)


async def test_history_api_next_to_the_running_engine(store, tmp_path, hook):
    specs, minute = burning_now(store, tmp_path)
    cfg = parse_config({"slo": {"paths": [str(specs)], "interval_seconds": 0.2,
                                "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}],
                                "route": {"group_wait_seconds": 0, "group_interval_seconds": 1}}})
    app = web.Application()
    service.attach(app, cfg, store)
    async with TestClient(TestServer(app)) as client:
        for query in ("limit=0", "since_seconds=x", "slo=&limit=2", "until=now"):
            r = await client.get("/api/v1/alerts/history?" + query)
            assert r.status == 400 and (await r.json())["error"]
        deadline = time.monotonic() + 20
        while True:
            r = await client.get("/api/v1/alerts/history?slo=avail&since_seconds=3600")
            assert r.status == 200
            body = await r.json()
            told = [e for e in body["entries"] if not e["muted"]]  # slower tiers are inhibited
            if told and all(e["deliveries"] and all(d["status"] == "sent" for d in e["deliveries"]) for e in told):
                break
            assert time.monotonic() < deadline, body["entries"]
            await asyncio.sleep(0.1)
    assert body["slo"] == "avail" and body["limit"] == 100 and body["count"] == len(body["entries"])
    assert {e["event"] for e in body["entries"]} == {"firing"}
    assert {e["muted"] for e in body["entries"]} <= {None, "inhibited"}
    assert all(e["deliveries"] == [] for e in body["entries"] if e["muted"])
    assert {e["fingerprint"] for e in told} == {a["fingerprint"] for b in hook.bodies for a in b["alerts"]}


async def test_times_read_back_as_the_payload_spelled_them(store, receiver):
    """A stored millisecond is the one rfc3339 printed (microseconds rounded, then cut), not a rounding of its own."""
    _outage(store, 2)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], Clock())
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90.4419994)  # rounded to the millisecond it would read .442
    log = _history(engine)
    assert log and {(e["fingerprint"], e["event"], e["startsAt"]) for e in log} == _sent(receiver.bodies)
    assert {e["at"] for e in log} == {"2026-06-27T00:01:30.441Z"}
