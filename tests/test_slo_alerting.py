"""Alert lifecycle and delivery: webhook v4 payload, grouping, restart mid-incident, receiver outage,
silences and inhibition, against real local HTTP receivers and the store."""
from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest
from aiohttp import web

from infersight.slo.alerts import fingerprint
from infersight.slo.engine import SloEngine
from infersight.slo.settings import SloSettings
from support.slo import FIXTURES_DIR, T0, Clock, Receiver, insert_requests, make_slo, serve_receiver, steady_requests

DAY = 86400
OUTAGE = T0 + 30 * DAY


@pytest.fixture
async def receiver(port):
    async with serve_receiver(port) as rec:
        yield rec


def _settings(url: str, **route) -> SloSettings:
    return SloSettings.model_validate({
        "receivers": [{"name": "oncall", "type": "webhook", "url": url, "secret": "s3cret"}],
        "route": {"receiver": "oncall", "group_wait_seconds": 0, "group_interval_seconds": 60,
                  "repeat_interval_seconds": 3600, **route},
        "external_url": "http://infersight.test",
        "delivery": {"max_attempts": 4, "backoff_initial_seconds": 10, "backoff_max_seconds": 60},
    })


def _outage(store, minutes: int) -> None:
    """30 days of clean traffic, then a total outage of `minutes` minutes."""
    steady_requests(store, T0, 30 * 1440, 6000)
    steady_requests(store, OUTAGE, minutes, 6000, 6000)


async def _cycle(engine: SloEngine, session, now: float) -> None:
    engine.evaluate(now)
    await engine.deliver(session, now)


async def test_webhook_payload_is_alertmanager_v4_and_signed(store, receiver):
    _outage(store, 3)
    slo = make_slo(group_by=["cloud.region"])
    engine = SloEngine(store, _settings(receiver.url, group_wait_seconds=30), [slo], Clock(OUTAGE))
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 120)
        assert receiver.posts == []  # group_wait holds the first notification
        await _cycle(engine, session, OUTAGE + 150)
    assert len(receiver.posts) == 1
    body, headers = receiver.posts[0]
    # Key order and fields exactly as Alertmanager's webhook v4 (compare the captured example).
    example = json.loads((FIXTURES_DIR / "alerting" / "alertmanager_webhook_v4.example.impulse-readme.json")
                         .read_text())
    assert list(body) == list(example)
    assert list(body["alerts"][0]) == list(example["alerts"][0])
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["truncatedAlerts"] == 0 and body["externalURL"] == "http://infersight.test"
    assert body["groupLabels"] == {"alertname": "SLOBurnRate", "slo": "avail"}
    assert body["groupKey"] == '{}:{alertname="SLOBurnRate",slo="avail"}'
    tiers = sorted(a["labels"]["tier"] for a in body["alerts"])
    assert "page-fast" in tiers
    a = next(a for a in body["alerts"] if a["labels"]["tier"] == "page-fast")
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["startsAt"].endswith("Z") and a["startsAt"].startswith("2026-06-27T00:02:00")
    assert a["labels"] == {"alertname": "SLOBurnRate", "slo": "avail", "cloud_region": "us-east-1",
                           "tier": "page-fast", "severity": "page", "long_window": "1h", "short_window": "5m",
                           "burn_rate_threshold": "14.4"}
    assert a["fingerprint"] == fingerprint(a["labels"])
    assert float(a["annotations"]["burn_rate_long"]) > 14.4 and float(a["annotations"]["burn_rate_short"]) > 14.4
    assert a["annotations"]["time_to_exhaustion"] != "n/a"
    assert a["generatorURL"] == "http://infersight.test/api/v1/slos?slo=avail"
    assert body["commonLabels"]["slo"] == "avail" and body["commonLabels"]["alertname"] == "SLOBurnRate"
    expected = "sha256=" + hmac.new(b"s3cret", headers["_raw"], hashlib.sha256).hexdigest()
    assert headers["X-Infersight-Signature"] == expected


async def test_resolve_then_repeat_and_grouping_intervals(store, receiver):
    _outage(store, 2)
    slo = make_slo()
    engine = SloEngine(store, _settings(receiver.url, group_by=["slo", "tier"]), [slo], Clock())
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90)
        firing = {b["groupLabels"]["tier"] for b in receiver.bodies}
        assert "page-fast" in firing
        n = len(receiver.posts)
        await _cycle(engine, session, OUTAGE + 120)  # nothing changed: nothing sent
        assert len(receiver.posts) == n
        # Recovery: good traffic until the 5m short window is clean, page-fast resolves.
        steady_requests(store, OUTAGE + 120, 30, 6000)
        await _cycle(engine, session, OUTAGE + 120 + 6 * 60)
        resolved = [b for b in receiver.bodies if b["status"] == "resolved"]
        assert any(b["groupLabels"]["tier"] == "page-fast" for b in resolved)
        r = next(b for b in resolved if b["groupLabels"]["tier"] == "page-fast")["alerts"][0]
        assert r["status"] == "resolved" and r["endsAt"] != "0001-01-01T00:00:00Z"
    # Once its resolve went out, the alert is forgotten.
    assert all(a["labels"]["tier"] != "page-fast" for a in engine.alerts_view(OUTAGE + 500))


async def test_restart_mid_incident_sends_no_duplicate_and_loses_no_resolve(store, receiver):
    _outage(store, 2)
    slo = make_slo()
    settings = _settings(receiver.url)
    async with aiohttp.ClientSession() as session:
        first = SloEngine(store, settings, [slo], Clock())
        await _cycle(first, session, OUTAGE + 90)
        assert [b["status"] for b in receiver.bodies] == ["firing"]
        # Second incarnation of the server, same store: the incident is still on.
        second = SloEngine(store, settings, [slo], Clock())
        assert {a["state"] for a in second.alerts_view(OUTAGE + 100)} == {"firing"}
        await _cycle(second, session, OUTAGE + 180)
        assert len(receiver.posts) == 1  # no duplicate page
        # It recovers while a third incarnation has queued the resolve but crashes before sending it.
        steady_requests(store, OUTAGE + 120, 30, 6000)
        third = SloEngine(store, settings, [slo], Clock())
        third.evaluate(OUTAGE + 10 * 3600)
        assert len(third.outbox) == 1
        fourth = SloEngine(store, settings, [slo], Clock())
        assert len(fourth.outbox) == 1
        await fourth.deliver(session, OUTAGE + 10 * 3600 + 1)
        await fourth.deliver(session, OUTAGE + 10 * 3600 + 2)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert SloEngine(store, settings, [slo], Clock()).outbox == []


async def test_receiver_down_then_up_gets_it_with_backoff(store, receiver):
    _outage(store, 2)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], Clock())
    receiver.down = True
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90)
        assert receiver.posts == [] and len(engine.outbox) == 1
        n = engine.outbox[0]
        assert n.attempts == 1 and "HTTP 503" in n.last_error
        # Exponential backoff with jitter: 10 s × 2^(k-1) × [0.5, 1.5).
        assert OUTAGE + 90 + 5 <= n.next_attempt_at < OUTAGE + 90 + 15
        await engine.deliver(session, n.next_attempt_at - 0.5)  # not due yet
        assert n.attempts == 1
        await engine.deliver(session, n.next_attempt_at)
        assert n.attempts == 2
        # A restart keeps the undelivered notification.
        engine = SloEngine(store, engine.settings, list(engine.slos.values()), Clock(), metrics=engine.metrics)
        assert len(engine.outbox) == 1
        receiver.down = False
        await engine.deliver(session, OUTAGE + 3600)
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    assert engine.outbox == []
    assert engine.registry.get_sample_value("infersight_slo_notifications_total",
                                            {"receiver": "oncall", "outcome": "retry"}) == 2
    assert engine.registry.get_sample_value("infersight_slo_notifications_total",
                                            {"receiver": "oncall", "outcome": "sent"}) == 1


async def test_bounded_attempts_mark_notification_failed(store, receiver):
    _outage(store, 2)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], Clock())
    receiver.down = True
    async with aiohttp.ClientSession() as session:
        engine.evaluate(OUTAGE + 90)
        t = OUTAGE + 90
        for _ in range(4):
            await engine.deliver(session, t)
            t += 120
    assert engine.outbox == []
    assert engine.registry.get_sample_value("infersight_slo_notifications_total",
                                            {"receiver": "oncall", "outcome": "failed"}) == 1
    failed = [n for n in engine.store.recent_notifications() if n.status == "failed"]
    assert len(failed) == 1 and failed[0].attempts == 4


async def test_silence_suppresses_until_expired(store, receiver):
    _outage(store, 15)
    clock = Clock(OUTAGE)
    engine = SloEngine(store, _settings(receiver.url), [make_slo()], clock)
    s = engine.add_silence([{"name": "slo", "value": "avail", "isRegex": False, "isEqual": True}],
                           ends_at=OUTAGE + 7200, comment="maintenance")
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90)
        assert receiver.posts == []
        assert all(a["silenced"] for a in engine.alerts_view(OUTAGE + 90))
        clock.t = OUTAGE + 600
        engine.expire_silence(s.id)
        # The silence survives a restart as expired.
        engine = SloEngine(store, engine.settings, list(engine.slos.values()), clock)
        assert engine.silences[0].state(clock.t) == "expired"
        await _cycle(engine, session, OUTAGE + 660)
    assert [b["status"] for b in receiver.bodies] == ["firing"]


async def test_inhibition_of_slower_tiers(store, receiver):
    _outage(store, 6)  # after 6 minutes of total outage all four tiers burn past their factors
    async with aiohttp.ClientSession() as session:
        engine = SloEngine(store, _settings(receiver.url), [make_slo()], Clock())
        await _cycle(engine, session, OUTAGE + 6 * 60)
        tiers = {a["labels"]["tier"]: a for a in engine.alerts_view(OUTAGE + 6 * 60)}
        assert {"page-fast", "page-slow", "ticket-fast", "ticket-slow"} <= set(tiers)
        assert not tiers["page-fast"]["inhibited"] and tiers["ticket-slow"]["inhibited"]
        assert [a["labels"]["tier"] for a in receiver.bodies[0]["alerts"]] == ["page-fast"]
    receiver.posts.clear()
    engine2 = SloEngine(store, _settings(receiver.url).model_copy(update={"inhibit_slower_tiers": False}),
                        [make_slo(name="avail2")], Clock())
    async with aiohttp.ClientSession() as session:
        await _cycle(engine2, session, OUTAGE + 6 * 60)
    assert sorted(a["labels"]["tier"] for a in receiver.bodies[0]["alerts"]) == [
        "page-fast", "page-slow", "ticket-fast", "ticket-slow"]


async def test_no_data_alert_and_pending_for(store, receiver):
    insert_requests(store, [{"minute": T0, "requests": 10}])
    slo = make_slo(alerting={"no_data": True, "catalogue": "none", "tiers": [
        {"name": "fast", "severity": "page", "factor": 10, "long_window": "1h", "short_window": "5m", "for": "2m"}]})
    engine = SloEngine(store, _settings(receiver.url), [slo], Clock())
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, T0 + 2 * 3600)
    assert [a["labels"]["alertname"] for a in receiver.bodies[0]["alerts"]] == ["SLONoData"]
    # A tier with `for` stays pending first.
    steady_requests(store, T0 + 2 * 3600, 10, 100, 100)
    engine.evaluate(T0 + 2 * 3600 + 300)
    states = {a["labels"]["alertname"]: a["state"] for a in engine.alerts_view(T0 + 2 * 3600 + 300)}
    assert states["SLOBurnRate"] == "pending"
    engine.evaluate(T0 + 2 * 3600 + 420)
    states = {a["labels"]["alertname"]: a["state"] for a in engine.alerts_view(T0 + 2 * 3600 + 420)}
    assert states["SLOBurnRate"] == "firing"


@pytest.fixture
async def multi(port):
    """One local server standing in for PagerDuty's Events API and a Slack incoming webhook."""
    pd, sl = Receiver(), Receiver()
    app = web.Application()
    app.router.add_post("/v2/enqueue", pd.handle)
    app.router.add_post("/services/T0/B0/x", sl.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", pd, sl
    await runner.cleanup()


async def test_pagerduty_and_slack_routing_by_labels(store, multi):
    base, pd, sl = multi
    settings = SloSettings.model_validate({
        "receivers": [
            {"name": "pd", "type": "pagerduty", "url": f"{base}/v2/enqueue", "routing_key": "R0UTING"},
            {"name": "slack", "type": "slack", "url": f"{base}/services/T0/B0/x"},
        ],
        "route": {"receiver": "slack", "group_wait_seconds": 0, "group_interval_seconds": 60,
                  "routes": [{"match": {"severity": "page"}, "receiver": "pd", "continue": True}]},
        "inhibit_slower_tiers": False,
    })
    _outage(store, 6)
    engine = SloEngine(store, settings, [make_slo()], Clock())
    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 6 * 60)
        trig = pd.bodies[0]
        assert trig["routing_key"] == "R0UTING" and trig["event_action"] == "trigger"
        key = '{}/{severity="page"}:{alertname="SLOBurnRate",slo="avail"}'
        assert trig["dedup_key"] == hashlib.sha256(key.encode()).hexdigest()
        p = trig["payload"]
        assert p["severity"] == "critical" and p["source"] == "avail" and "burning" in p["summary"]
        assert {a["labels"]["tier"] for a in p["custom_details"]["firing"]} == {"page-fast", "page-slow"}
        assert set(p) >= {"summary", "timestamp", "source", "severity", "component", "group", "class"}
        # The routing key is added when sending, never stored in the outbox.
        assert all("R0UTING" not in n.body for n in engine.store.recent_notifications())
        # Slack is the root's receiver: it gets what no child route took (as in Alertmanager, a matching
        # child with `continue` hands on to its siblings, not back to the parent).
        text = sl.bodies[0]["text"]
        assert text.startswith("[FIRING:2]") and "(ticket-fast)" in text and "(ticket-slow)" in text
        assert "page-fast" not in text and "exhaustion in" in text
        # Recovery resolves the PagerDuty incident with the same dedup key.
        steady_requests(store, OUTAGE + 6 * 60, 3 * 1440, 6000)
        await _cycle(engine, session, OUTAGE + 4 * DAY)
    assert pd.bodies[-1] == {"routing_key": "R0UTING", "dedup_key": trig["dedup_key"], "event_action": "resolve"}
    assert sl.bodies[-1]["text"].startswith("[RESOLVED]")


def test_webhook_max_alerts_counts_truncated():
    from infersight.slo.alerts import Flush
    from infersight.slo.notifiers import webhook_v4
    from infersight.slo.records import AlertRecord
    from infersight.slo.settings import ReceiverSettings

    recs = [AlertRecord(fingerprint({"a": str(i)}), {"alertname": "X", "a": str(i)}, {"summary": "s"}, "firing",
                        T0, T0) for i in range(5)]
    rcv = ReceiverSettings(name="w", type="webhook", url="http://127.0.0.1:9/", max_alerts=2)
    body = webhook_v4(Flush("{}:{}", "w", {}, recs, []), rcv, "http://x")
    assert len(body["alerts"]) == 2 and body["truncatedAlerts"] == 3
    assert body["commonLabels"] == {"alertname": "X"} and body["commonAnnotations"] == {"summary": "s"}
    assert body["alerts"][0]["startsAt"] == "2026-05-28T00:00:00.000Z"


async def test_repeat_interval_resends_an_unchanged_firing_group(store, receiver):
    _outage(store, 120)
    engine = SloEngine(store, _settings(receiver.url, group_by=["slo", "tier"], repeat_interval_seconds=1800),
                       [make_slo()], Clock())

    def page_fast():
        return [b for b in receiver.bodies if b["groupLabels"]["tier"] == "page-fast"]

    async with aiohttp.ClientSession() as session:
        await _cycle(engine, session, OUTAGE + 90)
        assert len(page_fast()) == 1
        await _cycle(engine, session, OUTAGE + 90 + 1799)
        assert len(page_fast()) == 1
        await _cycle(engine, session, OUTAGE + 90 + 1800)
        first, again = page_fast()
        assert [a["fingerprint"] for a in again["alerts"]] == [a["fingerprint"] for a in first["alerts"]]
        assert again["alerts"][0]["startsAt"] == first["alerts"][0]["startsAt"]


def test_muting_every_alert_of_a_group_sends_no_empty_notification():
    from infersight.slo.alerts import Dispatcher
    from infersight.slo.records import AlertRecord

    settings = _settings("http://127.0.0.1:9/hook")
    d = Dispatcher(settings)
    labels = {"alertname": "SLOBurnRate", "slo": "a", "tier": "page-fast"}
    rec = AlertRecord(fingerprint(labels), labels, {}, "firing", T0, T0)
    alerts = {rec.fingerprint: rec}
    (first,) = d.tick(alerts, set(), T0)
    assert [r.fingerprint for r in first.firing] == [rec.fingerprint]
    assert d.tick(alerts, {rec.fingerprint}, T0 + 600) == []  # silenced: no payload without alerts
    (again,) = d.tick(alerts, set(), T0 + 1200)  # unsilenced: a new notification after group_wait
    assert [r.fingerprint for r in again.firing] == [rec.fingerprint]


def test_outbox_history_is_pruned_but_each_groups_memory_and_pending_stay(store):
    from infersight.slo.records import Notification
    from infersight.slo.store import StateStore

    st = StateStore(store)
    day = 86400.0
    old, recent = T0, T0 + 20 * day

    def note(i: str, group: str, at: float, status: str) -> Notification:
        return Notification(i, group, "oncall", at, ["fp"], [], "{}", status)

    st.save_notifications([
        note("a1", "A", old, "sent"), note("a2", "A", old + 60, "sent"),   # a2: A's newest
        note("b1", "B", old, "failed"), note("b2", "B", recent, "sent"),   # b1 prunable
        note("c1", "C", old, "pending"), note("c2", "C", recent, "sent"),  # c1 still to deliver
        note("d1", "D", recent - 60, "sent"), note("d2", "D", recent, "sent"),  # within retention
    ])
    st.prune_notifications(recent - 7 * day)
    left = {n.id for n in st._notifications("1")}
    assert left == {"a2", "b2", "c1", "c2", "d1", "d2"}
    assert {g: n.id for g, n in st.last_per_group().items()} == {"A": "a2", "B": "b2", "C": "c2", "D": "d2"}


def test_a_silence_added_while_the_stored_ones_are_read_is_kept(store):
    """A non-holder server re-reads the stored silences every cycle; one its own API adds during that read
    must not be replaced by the older list (it used to vanish from the API until the next read)."""
    import threading

    from infersight.slo.store import StateStore

    read, added = threading.Event(), threading.Event()

    class SlowRead(StateStore):
        def load_silences(self):  # the stored list, then a pause in which another thread may add one
            out = super().load_silences()
            read.set()
            added.wait(1.0)
            return out

    engine = SloEngine(store, SloSettings(), [make_slo()], Clock())
    engine.store = SlowRead(store)
    reader = threading.Thread(target=engine.load_silences)
    reader.start()
    assert read.wait(10)
    s = engine.add_silence([{"name": "slo", "value": "avail", "isRegex": False, "isEqual": True}], T0 + 3600)
    added.set()
    reader.join()
    assert [x.id for x in engine.silences] == [s.id]
