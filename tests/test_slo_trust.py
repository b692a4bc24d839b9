"""Alerts and numbers that mean what they say (issue 10): no-data and budget alerts only when the data
supports them, resolve hysteresis, half-open point-in-time windows against the SRE-workbook
definition, and SLI values in their unit (money as money)."""
from __future__ import annotations

from fractions import Fraction

from infersight.slo.alerts import BUDGET_EXHAUSTED, NO_DATA
from infersight.slo.engine import SloEngine
from infersight.slo.settings import SloSettings
from infersight.slo.views import instance_json
from support.slo import T0, Clock, insert_requests, make_slo, steady_requests

DAY = 86400
NOW = T0 + 30 * DAY


def _engine(store, slos, **settings) -> SloEngine:
    return SloEngine(store, SloSettings.model_validate(settings), slos, Clock(NOW))


def _firing(engine: SloEngine, now: float) -> dict[str, str]:
    """alertname/tier -> state of the engine's SLOs' alerts (the store may hold other tests' engines' too)."""
    return {f"{a['labels']['alertname']}/{a['labels']['tier']}": a["state"] for a in engine.alerts_view(now)
            if a["labels"]["slo"] in engine.slos}


# -- 1. no-data alerts --------------------------------------------------------------------------------
def test_no_data_alert_waits_for_data_that_stopped_or_the_grace_period(store):
    """A fresh install (no agent has sent anything) does not page "no data" 10 s after start."""
    slo = make_slo(alerting={"no_data": True})
    engine = _engine(store, [slo])
    engine.evaluate(NOW)
    engine.evaluate(NOW + 10)
    assert NO_DATA not in str(_firing(engine, NOW + 10))
    engine.evaluate(NOW + 3599)
    assert _firing(engine, NOW + 3599) == {}
    # After the grace period (default: the SLO's own no_data_after, 1h) of watching, it is true.
    engine.evaluate(NOW + 3600)
    assert _firing(engine, NOW + 3600) == {f"{NO_DATA}/no-data": "firing"}


def test_no_data_alert_fires_at_once_when_data_stopped(store):
    insert_requests(store, [{"minute": NOW - 2 * 3600, "requests": 100}])  # data, then nothing for 2h
    engine = _engine(store, [make_slo(alerting={"no_data": True})])
    engine.evaluate(NOW)
    assert _firing(engine, NOW) == {f"{NO_DATA}/no-data": "firing"}


def test_no_data_grace_is_configurable_and_a_restart_keeps_a_firing_no_data_alert(store):
    slo = make_slo(alerting={"no_data": True})
    engine = _engine(store, [slo], no_data_grace_seconds=600)
    engine.evaluate(NOW)
    engine.evaluate(NOW + 600)
    assert _firing(engine, NOW + 600) == {f"{NO_DATA}/no-data": "firing"}
    # A new incarnation has watched for 0 s, but does not resolve what is still true.
    again = _engine(store, [slo], no_data_grace_seconds=600)
    again.evaluate(NOW + 630)
    assert _firing(again, NOW + 630) == {f"{NO_DATA}/no-data": "firing"}


# -- 2. budget alerts and coverage --------------------------------------------------------------------
def test_budget_alert_needs_a_covered_window_and_coverage_is_in_the_api(store):
    """Two minutes of total outage in an empty 30d window: the page fires, the budget alert does not."""
    steady_requests(store, NOW, 2, 6000, 6000)
    slo = make_slo()
    engine = _engine(store, [slo])
    engine.evaluate(NOW + 120)
    states = _firing(engine, NOW + 120)
    assert states["SLOBurnRate/page-fast"] == "firing"
    assert f"{BUDGET_EXHAUSTED}/budget-exhausted" not in states
    (inst,) = engine.slos_view()["instances"]
    assert inst["state"] == "exhausted"  # the state says what the numbers say ...
    assert inst["coverage"] == {  # ... and the coverage says how little data that is
        "window_minutes": 43200, "minutes_with_data": 2, "fraction": 2 / 43200,
        "observed_fraction": 120 / (30 * DAY), "first_data_at": NOW, "last_data_at": NOW + 60}
    # Coverage rule off (0 %): the same data raises the budget alert.
    eager = _engine(store, [make_slo(name="eager", alerting={"budget_exhausted_min_coverage_percent": 0})])
    eager.evaluate(NOW + 120)
    assert _firing(eager, NOW + 120)[f"{BUDGET_EXHAUSTED}/budget-exhausted"] == "firing"


def test_budget_alert_when_no_perfect_rest_of_the_window_could_save_it(store):
    """consumed × observed share >= 1: a total outage at 99.9 % over 30d needs 43.2 minutes."""
    steady_requests(store, NOW, 60, 6000, 6000)
    # consumed = 1000 budgets; observed share 43 min / 30 d -> 0.995 (held), 44 min -> 1.019 (fires)
    assert Fraction(1000) * Fraction(43 * 60, 30 * DAY) < 1 < Fraction(1000) * Fraction(44 * 60, 30 * DAY)
    engine2 = _engine(store, [make_slo(name="b")])
    engine2.evaluate(NOW + 43 * 60)
    assert f"{BUDGET_EXHAUSTED}/budget-exhausted" not in _firing(engine2, NOW + 43 * 60)
    engine2.evaluate(NOW + 44 * 60)
    assert _firing(engine2, NOW + 44 * 60)[f"{BUDGET_EXHAUSTED}/budget-exhausted"] == "firing"


def test_budget_alert_once_half_the_window_is_covered(store):
    steady_requests(store, NOW - 15 * DAY, 15 * 1440, 100, 1)  # 1 % errors for 15 days: 10 budgets
    engine = _engine(store, [make_slo()])
    engine.evaluate(NOW - 3600)  # just under 50 % covered, but 10 budgets × 0.498 >= 1: it fires
    (inst,) = engine.slos_view()["instances"]
    share = Fraction(15 * DAY - 3600, 30 * DAY)
    assert inst["coverage"]["observed_fraction"] == float(share) and 10 * share >= 1
    assert _firing(engine, NOW - 3600)[f"{BUDGET_EXHAUSTED}/budget-exhausted"] == "firing"
    # A budget barely exhausted (1.002 budgets) waits for the 50 % coverage instead.
    steady_requests(store, NOW - 15 * DAY, 15 * 1440, 1000, 1, model="m2")
    slo = make_slo(name="m2", sli={"ratio": {"filters": {"gen_ai.request.model": "m2"}}})
    e2 = _engine(store, [slo])
    e2.evaluate(NOW - 3600)
    assert f"{BUDGET_EXHAUSTED}/budget-exhausted" not in _firing(e2, NOW - 3600)
    e2.evaluate(NOW)
    assert _firing(e2, NOW)[f"{BUDGET_EXHAUSTED}/budget-exhausted"] == "firing"


# -- 3. resolve hysteresis ----------------------------------------------------------------------------
def _hovering(store, start: int, minutes: int) -> None:
    """10m window at 15 % errors, 1m window alternating 30 % / 0 %: a burn hovering at the threshold."""
    insert_requests(store, [{"minute": start + 60 * k, "requests": 100, "bad": 30 if k % 2 == 0 else 0}
                            for k in range(minutes)])


def _transitions(engine: SloEngine, start: int, minutes: int) -> list[str]:
    states = []
    for k in range(minutes):
        now = start + 60 * k
        engine.evaluate(now)
        st = _firing(engine, now).get("SLOBurnRate/hover", "-")
        if not states or states[-1] != st:
            states.append(st)
    return states


HOVER = {"catalogue": "none", "budget_exhausted": False, "tiers": [
    {"name": "hover", "severity": "page", "factor": 10, "long_window": "10m", "short_window": "1m"}]}


def test_keep_firing_for_stops_a_hovering_burn_from_flapping(store):
    start = NOW
    _hovering(store, start - 600, 40)
    # 99 % objective: factor 10 means 10 % errors. Without hysteresis it flaps every minute.
    flappy = _engine(store, [make_slo(name="flappy", objective=99, alerting={**HOVER, "keep_firing_for": "0s"})])
    seen = _transitions(flappy, start + 60, 20)
    assert seen.count("firing") >= 5, seen  # firing, resolved (then forgotten: "-"), firing, ...
    # The default (5m after the condition last held) keeps it firing while it hovers.
    steady = _engine(store, [make_slo(name="steady", objective=99, alerting=HOVER)])
    assert _transitions(steady, start + 60, 20) == ["firing"]
    # Clean traffic afterwards: it resolves 5 minutes after the last evaluation in which it held.
    steady_requests(store, start + 30 * 60, 30, 100)
    held_at = None
    for k in range(20, 45):
        now = start + 60 + 60 * k
        (res,) = steady.evaluate(now)
        if res.tiers[0].active:
            held_at = now
        if _firing(steady, now).get("SLOBurnRate/hover", "-") != "firing":
            break
    assert held_at is not None and held_at < start + 31 * 60 and now == held_at + 300


def test_keep_firing_for_is_a_setting_and_does_not_slow_the_page(store):
    """A total outage at 99.9 % still pages at the first evaluation after 52 s of it."""
    steady_requests(store, NOW - 30 * DAY, 30 * 1440, 6000)
    engine = _engine(store, [make_slo()], keep_firing_for_seconds=900)
    fired = None
    for second in range(10, 70, 10):
        insert_requests(store, [{"minute": NOW, "requests": 1000, "bad": 1000}])  # 100 rps, all bad
        engine.evaluate(NOW + second)
        if _firing(engine, NOW + second).get("SLOBurnRate/page-fast") == "firing":
            fired = second
            break
    assert fired == 60  # 51.84 s of bad requests cross 14.4×; evaluations every 10 s
    assert SloSettings().keep_firing_for_seconds == 300


# -- 4. point-in-time windows -------------------------------------------------------------------------
def _workbook(minutes: dict[int, tuple[int, int]], t: int, w: int) -> Fraction:
    """The SRE workbook's error rate: bad ÷ total over the w seconds before t (minutes m, t - w <= m < t)."""
    bad = sum(b for m, (_, b) in minutes.items() if t - w <= m < t)
    total = sum(n for m, (n, _) in minutes.items() if t - w <= m < t)
    return Fraction(bad, total)


def test_point_in_time_windows_end_at_t_like_the_workbook(store):
    """A near miss before T, a total outage from the minute that starts at T."""
    t = NOW
    minutes = {t - 60 * k: (1000, 14) for k in range(1, 121)}  # 1.4 % errors: under 14.4 × 0.1 %
    minutes.update({t + 60 * k: (1000, 1000) for k in range(0, 3)})
    insert_requests(store, [{"minute": m, "requests": n, "bad": b} for m, (n, b) in minutes.items()])
    slo = make_slo()
    engine = _engine(store, [slo])
    for at, fires in ((t, False), (t + 30, False), (t + 60, True)):
        (res,) = engine.status_at(at)
        instant = at - at % 60
        for tier in res.tiers:
            for win, got in ((tier.tier.long_s, tier.long), (tier.tier.short_s, tier.short)):
                assert got.burn_rate == _workbook(minutes, instant, win) / slo.budget, (at, tier.tier.name, win)
        assert res.tiers[0].active is fires, at
    # The API document says which instant it used.
    (res,) = engine.status_at(t + 30)
    assert res.evaluated_at == t
    assert instance_json(res)["coverage"]["last_data_at"] == t - 60


# -- 5. units -----------------------------------------------------------------------------------------
def test_cost_slo_values_carry_their_unit_and_budget(store):
    from infersight.slo.views import format_budget_left, format_sli

    slo = make_slo(name="spend", sli={"cost": {"metric": "spend_usd", "budget_usd": 1, "prices": {
        "*": {"input_usd_per_million": 1, "output_usd_per_million": 2}}}})
    insert_requests(store, [{"minute": NOW - 120, "requests": 10, "input_tokens": 240_000, "output_tokens": 300_000}])
    engine = _engine(store, [slo])
    engine.evaluate(NOW)
    (inst,) = engine.slos_view()["instances"]
    assert inst["unit"] == "USD" and inst["sli"] == 0.84
    assert inst["budget"] == {"value": 1.0, "unit": "USD", "spent": 0.84, "consumed": 0.84}
    assert inst["sli_text"] == "$0.84 of $1.00 budget"
    assert inst["budget_left_text"] == "16.0 %"
    assert inst["coverage"]["minutes_with_data"] == 1 and inst["coverage"]["first_data_at"] == NOW - 120
    assert format_sli(1.1729, "USD", 1.0) == "$1.17 of $1.00 budget"
    assert format_sli(2.5, "USD/1M tokens", 2.0) == "$2.50 per 1M tokens (target $2.00)"
    assert format_sli(0.998712, "ratio") == "99.871 %" and format_sli(None, "USD") == "no data"
    # Far below zero stays readable: percent with sign, and how many budgets were spent.
    assert format_budget_left(-0.5) == "-50.0 %"
    assert format_budget_left(-99.0) == "-9,900 % (100× the budget spent)"
    avail = make_slo()
    steady_requests(store, NOW - 600, 10, 100)
    (r,) = _engine(store, [avail]).evaluator.evaluate([avail], NOW)
    doc = instance_json(r)
    assert doc["unit"] == "ratio" and doc["budget"]["value"] == 0.001 and doc["sli_text"] == "100.000 %"
