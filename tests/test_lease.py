"""The SLO engine's leader lease: one engine evaluates and notifies at a time, across a take-over.

Unit tests drive the lease logic with an injected clock over the real lease table (chDB); the
engine tests run two engines on one store and database, each with its own holder id, against a real
webhook receiver, and stop one mid-incident.
"""
from __future__ import annotations

import aiohttp
import pytest

from infersight.slo.engine import SloEngine
from infersight.slo.lease import RELEASED, Lease, LeaseTable
from infersight.slo.service import EngineLoop
from infersight.slo.settings import SloSettings
from infersight.storage.base import Unavailable
from support.slo import T0, Clock, make_slo, serve_receiver, steady_requests

DAY = 86400
OUTAGE = T0 + 30 * DAY


class Flaky:
    """The store, or down (`down = True`): every call raises Unavailable, as a lost connection does."""

    def __init__(self, storage) -> None:
        self.storage, self.database, self.down = storage, storage.database, False

    def query(self, sql, settings=None):
        if self.down:
            raise Unavailable("store down")
        return self.storage.query(sql, settings)

    def execute(self, sql, settings=None):
        if self.down:
            raise Unavailable("store down")
        return self.storage.execute(sql, settings)


def _lease(storage, holder: str, clock: Clock, **kw) -> Lease:
    return Lease(LeaseTable(storage), holder, clock=clock, wall=clock, **kw)


def test_claim_then_lead_and_renew(store):
    clock = Clock(1000)
    a = _lease(store, "a", clock)
    assert a.tick() is False  # claimed: leads only once concurrent claims are visible
    assert a.tick() is True
    rec = LeaseTable(store).current("slo-engine")
    assert (rec.term, rec.holder, rec.renewal) == (1, "a", 1)
    clock.advance(1)
    assert a.tick() and LeaseTable(store).current("slo-engine").renewal == 1  # not due yet
    clock.advance(1)
    assert a.tick() and LeaseTable(store).current("slo-engine").renewal == 2  # renew_seconds = 2


def test_follower_takes_over_only_after_the_holder_stops_renewing(store):
    clock = Clock(1000)
    a, b = _lease(store, "a", clock), _lease(store, "b", clock)
    a.tick()
    b.tick()  # sees a's claim
    assert a.tick() and not b.tick()
    for _ in range(20):  # a renews: b never takes over, however long
        clock.advance(2)
        assert a.tick() and not b.tick()
    # a stops (killed: no release). b waits duration_seconds from the last change it saw.
    clock.advance(14)
    assert not b.tick()
    assert not a.held()  # a's own deadline (10 s) passed before anyone may take over (15 s)
    clock.advance(1)
    assert not b.tick()  # 15 s unchanged: claims term 2
    assert b.tick()
    assert LeaseTable(store).current("slo-engine").holder == "b"
    # a wakes up: it reads b's term and does not lead, nor claim while b renews.
    assert not a.tick()
    clock.advance(2)
    assert b.tick() and not a.tick()


def test_concurrent_claims_elect_one(store):
    clock = Clock(1000)
    leases = [_lease(store, h, clock) for h in ("c", "a", "b")]
    assert [x.tick() for x in leases] == [False, False, False]  # all three claim term 1
    assert [x.tick() for x in leases] == [True, False, False]  # the earliest claim wins, for every reader
    clock.advance(30)
    assert [x.tick() for x in leases] == [True, False, False]


def test_store_down_holder_keeps_its_term_until_the_deadline(store):
    clock = Clock(1000)
    flaky = Flaky(store)
    a, b = _lease(flaky, "a", clock), _lease(store, "b", clock)
    a.tick()
    b.tick()
    assert a.tick() and not b.tick()  # b has seen a's renewal
    flaky.down = True
    clock.advance(9)
    assert a.tick() is True  # cannot read nor renew, still within its deadline
    clock.advance(1)
    assert a.tick() is False  # 10 s since its last renewal started
    assert not b.tick()  # b saw no change for 10 s only
    clock.advance(5)
    assert not b.tick() and b.tick()
    flaky.down = False
    assert not a.tick()  # the store is back: a sees b's term


def test_release_hands_over_at_once(store):
    clock = Clock(1000)
    a, b = _lease(store, "a", clock), _lease(store, "b", clock)
    a.tick()
    b.tick()
    assert a.tick() and not b.tick()
    a.release()
    assert not a.held()
    assert LeaseTable(store).current("slo-engine").holder == RELEASED
    assert not b.tick() and b.tick()  # no 15 s wait


def test_lease_arguments_are_checked(store):
    with pytest.raises(ValueError, match="renew_seconds < deadline_seconds < duration_seconds"):
        Lease(LeaseTable(store), "a", duration_seconds=10, deadline_seconds=10)
    with pytest.raises(ValueError, match="holder id"):
        Lease(LeaseTable(store), "")


def _settings(url: str) -> SloSettings:
    return SloSettings.model_validate({
        "interval_seconds": 30,
        "receivers": [{"name": "oncall", "type": "webhook", "url": url}],
        "route": {"receiver": "oncall", "group_wait_seconds": 0, "group_interval_seconds": 60,
                  "repeat_interval_seconds": 6 * 3600},
    })


async def _run(loops, clock: Clock, session, seconds: float, step: float = 2.0) -> None:
    end = clock.t + seconds
    while clock.t < end:
        for loop in loops:
            await loop.step(session)
        clock.advance(step)


@pytest.mark.parametrize("stop", ["killed", "released"])
async def test_two_engines_one_store_one_page_and_one_resolve_across_a_take_over(store, stop):
    steady_requests(store, T0, 30 * 1440, 6000)
    steady_requests(store, OUTAGE, 2, 6000, 6000)  # a total outage of two minutes
    clock = Clock(OUTAGE + 90)
    slo = make_slo()
    async with serve_receiver() as hook, aiohttp.ClientSession() as session:
        settings = _settings(hook.url)
        engines = [SloEngine(store, settings, [slo], clock) for _ in range(2)]
        a, b = (EngineLoop(e, _lease(store, h, clock)) for e, h in zip(engines, ("a", "b"), strict=True))
        await _run([a, b], clock, session, 60)
        assert a.leading and not b.leading
        assert [x["status"] for x in hook.bodies] == ["firing"]
        # The follower's read API shows the holder's alerts (reloaded from the store).
        assert {x["state"] for x in b.engine.alerts_view()} == {"firing"}
        if stop == "released":
            a.lease.release()
        await _run([b], clock, session, 20)  # a is gone; b takes over within duration_seconds
        assert b.leading
        assert len(hook.posts) == 1  # no second page from the new holder
        steady_requests(store, OUTAGE + 120, 30, 6000)  # recovered
        clock.t = OUTAGE + 10 * 3600
        await _run([b], clock, session, 120)
        # a comes back (a restarted server is a follower): it sends nothing.
        await _run([a, b], clock, session, 120)
        assert not a.leading and b.leading
    assert [x["status"] for x in hook.bodies] == ["firing", "resolved"]
    assert hook.bodies[0]["groupKey"] == hook.bodies[1]["groupKey"]
