"""Evaluation oracles from the SRE workbook, driven by written timestamps and an explicit clock."""
from __future__ import annotations

from datetime import UTC
from fractions import Fraction

import pytest

from infersight.slo.evaluator import Evaluator
from support.slo import T0, insert_latency, insert_requests, make_slo, steady_requests

DAY = 86400
RATE = 100  # requests per second


def _one(results, **group):
    matches = [r for r in results if dict(r.group) == group] if group else results
    assert len(matches) == 1, [(r.slo.name, r.group, r.state) for r in results]
    return matches[0]


def test_total_outage_fires_page_after_about_52_seconds(store):
    """99.9 % over 30d: the 1h window exceeds 14.4× once 14.4 × 0.001 × 3600 s = 51.84 s are bad."""
    slo = make_slo()
    ev = Evaluator(store)
    outage = T0 + 30 * DAY  # a minute boundary; 30 days of good traffic before it
    steady_requests(store, T0, 30 * 1440, RATE * 60)
    fired_at = None
    for second in range(1, 61):
        # The rollup of the current minute grows as the outage goes on (split inserts of one minute).
        insert_requests(store, [{"minute": outage, "requests": RATE, "bad": RATE}])
        res = _one(ev.evaluate([slo], outage + second))
        page_fast = res.tiers[0]
        assert page_fast.tier.name == "page-fast" and page_fast.tier.factor == Fraction(72, 5)
        if page_fast.active:
            fired_at = second
            break
    assert fired_at == 52
    # Burn rate of a total outage is 1 / budget = 1000 in the short window's bad minute share...
    lw = page_fast.long
    assert lw.consumed == 52 * RATE and lw.events == 59 * 60 * RATE + 52 * RATE
    assert page_fast.long.burn_rate == Fraction(52 * RATE) / (lw.events * Fraction(1, 1000))
    # Budget consumed at fire: bad over the period's budget (≈ 2 % = 14.4 × 1h ÷ 30d).
    consumed = res.budget_consumed()
    assert consumed == Fraction(52 * RATE, 1) / (res.period.events * Fraction(1, 1000))
    assert abs(float(consumed) - 0.02) < 0.0005
    # Time to exhaustion at the observed long-window burn rate: remaining × period ÷ burn.
    assert page_fast.time_to_exhaustion_s == pytest.approx(
        float((1 - consumed) * 30 * DAY / page_fast.long.burn_rate))
    assert res.state == "burning"


def test_exact_budget_and_event_weighting(store):
    """bad ÷ total summed over the window, not an average of per-minute ratios."""
    slo = make_slo(window={"rolling": "7d"})
    assert slo.budget == Fraction(1, 1000)
    now = T0 + 3600
    insert_requests(store, [
        {"minute": T0, "requests": 1000, "bad": 1},  # ratio 0.001
        {"minute": T0 + 60, "requests": 10, "bad": 5},  # ratio 0.5
    ])
    res = _one(Evaluator(store).evaluate([slo], now))
    assert res.period.events == 1010 and res.period.consumed == 6
    assert res.sli == Fraction(1004, 1010)
    assert res.budget_remaining == 1 - Fraction(6, 1010) / Fraction(1, 1000)
    assert res.state == "exhausted"


def test_low_traffic_cannot_page(store):
    slo = make_slo(min_events=1000)
    now = T0 + 30 * DAY
    insert_requests(store, [{"minute": now - 600, "requests": 10, "bad": 10}])
    res = _one(Evaluator(store).evaluate([slo], now))
    fast = res.tiers[0]
    assert fast.long.burn_rate == 1000  # it burns, but with too few events to page
    assert fast.low_traffic and not fast.active
    assert not any(t.active for t in res.tiers)


def test_no_data_is_its_own_state_never_good(store):
    slo = make_slo(group_by=["cloud.region"])
    now = T0 + 30 * DAY
    insert_requests(store, [{"minute": now - 10 * DAY, "requests": 100, "bad": 0, "region": "eu-west-1"},
                            {"minute": now - 120, "requests": 100, "bad": 0, "region": "us-east-1"}])
    res = Evaluator(store).evaluate([slo], now)
    by_region = {dict(r.group)["cloud.region"]: r for r in res}
    assert by_region["eu-west-1"].state == "no_data"  # nothing in the last hour
    assert by_region["us-east-1"].state == "ok"
    # No data anywhere: nothing is reported as good; the SLO shows as one "no data" instance.
    (empty,) = Evaluator(store).evaluate([slo], T0)
    assert empty.group == () and empty.state == "no_data" and empty.sli is None
    (alone,) = Evaluator(store).evaluate([make_slo(name="other", sli={"ratio": {"filters": {
        "gen_ai.request.model": "never-seen"}}})], now)
    assert alone.state == "no_data" and alone.sli is None and alone.budget_remaining is None
    assert alone.period.events == 0 and not any(t.active for t in alone.tiers)


def test_group_by_gives_one_instance_per_group(store):
    slo = make_slo(group_by=["cloud.provider", "gen_ai.request.model"])
    now = T0 + DAY
    insert_requests(store, [
        {"minute": now - 60, "requests": 100, "bad": 50, "provider": "aws", "model": "a"},
        {"minute": now - 60, "requests": 100, "bad": 0, "provider": "gcp", "model": "a"},
        {"minute": now - 60, "requests": 100, "bad": 0, "provider": "aws", "model": "b"},
    ])
    res = Evaluator(store).evaluate([slo], now)
    assert len(res) == 3
    bad = _one(res, **{"cloud.provider": "aws", "gen_ai.request.model": "a"})
    assert bad.state == "exhausted" and bad.tiers[0].active  # half bad: over budget already
    good = _one(res, **{"cloud.provider": "gcp", "gen_ai.request.model": "a"})
    assert good.state == "ok" and not good.tiers[0].active


def test_latency_from_mergeable_histograms(store):
    bounds = [0.1, 0.25, 0.5, 1.0]
    slo = make_slo(sli={"latency": {"kind": "ttft", "threshold_seconds": 0.25}}, objective=99)
    now = T0 + DAY
    # Two inserts for the same minute (from two hosts): merged by summing bucket counts.
    insert_latency(store, now - 60, "ttft", bounds, [50, 40, 5, 3, 2], host="a")
    insert_latency(store, now - 60, "ttft", bounds, [10, 0, 0, 0, 0], host="b")
    insert_latency(store, now - 60, "e2e", bounds, [0, 0, 0, 0, 100], host="a")  # other kind: ignored
    res = _one(Evaluator(store).evaluate([slo], now))
    assert res.period.events == 110 and res.period.consumed == 10
    assert res.sli == Fraction(100, 110)


def test_latency_threshold_not_a_boundary_is_rejected(store):
    slo = make_slo(sli={"latency": {"kind": "e2e", "threshold_seconds": 0.3}})
    now = T0 + DAY
    insert_latency(store, now - 60, "e2e", [0.1, 0.25, 0.5], [1, 1, 1, 1])
    res = _one(Evaluator(store).evaluate([slo], now))
    assert res.state == "error"
    assert "0.3" in res.error and "not bucket boundaries" in res.error and "[0.1, 0.25, 0.5]" in res.error


def test_timeslices_count_bad_minutes(store):
    slo = make_slo(budgeting="timeslices", timeslice={"target_percent": 95}, window={"rolling": "7d"})
    now = T0 + DAY
    insert_requests(store, [{"minute": now - 600 + 60 * i, "requests": 100, "bad": 10 if i < 2 else 1}
                            for i in range(10)])
    res = _one(Evaluator(store).evaluate([slo], now))
    assert res.period.events == 10 and res.period.consumed == 2


def test_cost_spend_against_budget(store):
    slo = make_slo(name="spend", sli={"cost": {"metric": "spend_usd", "budget_usd": 1000, "prices": {
        "llama": {"input_usd_per_million": 0.5, "output_usd_per_million": 1.5},
        "*": {"input_usd_per_million": 1, "output_usd_per_million": 2}}}}, window={"rolling": "30d"})
    now = T0 + DAY
    insert_requests(store, [
        {"minute": now - 60, "requests": 10, "model": "llama", "input_tokens": 2_000_000, "output_tokens": 1_000_000},
        {"minute": now - 60, "requests": 5, "model": "other", "input_tokens": 1_000_000, "output_tokens": 0},
    ])
    res = _one(Evaluator(store).evaluate([slo], now))
    spend = Fraction(1) + Fraction(3, 2) + Fraction(1)  # 2M×0.5 + 1M×1.5 + 1M×1
    assert res.period.consumed == spend and res.sli == spend
    assert res.budget_remaining == 1 - spend / 1000
    # 1h window may spend 1000 × 1h/30d; it spent 3.5 USD.
    assert res.windows[3600].burn_rate == spend / (Fraction(1000) * 3600 / (30 * DAY))


@pytest.mark.parametrize("table", ["otel_metrics_sum", "otel_metrics_gauge"])
def test_accelerator_health_time_slices(store, table):
    """A minute is good when every GPU of the group is ok and no XID counter moved in it."""
    from support.slo import hw_status, insert_hw

    slo = make_slo(name="gpu", sli={"accelerator_health": {"hw_type": "gpu"}}, budgeting="timeslices",
                   objective=99.5, window={"rolling": "7d"}, group_by=["host.name"])
    start = T0 + DAY
    rows = []
    for i in range(10):  # 10 minutes, one scrape per minute, two GPUs on node 1, one on node 2
        t = start + 60 * i + 5
        rows += hw_status(t, "gpu-0", "degraded" if i == 3 else "ok", host="n1")
        rows += hw_status(t, "gpu-1", host="n1")
        rows += hw_status(t, "gpu-0", host="n2")
        # Cumulative XID counter on n1/gpu-1: 2 until minute 6, then 3 (one new XID in minute 6).
        rows.append({"t": t, "metric": "hw.errors", "id": "gpu-1", "value": 2 if i < 6 else 3, "host": "n1"})
        rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": 7, "host": "n2"})
        # Other steady series of the same devices never make a minute bad: another XID code with
        # its own history, and ECC counters (ECC reaches health through hw.status instead).
        rows.append({"t": t, "metric": "hw.errors", "id": "gpu-1", "value": 5, "host": "n1", "xid": 13})
        rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": 0, "host": "n2",
                     "error_type": "ecc_corrected"})
        rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": 40 + i, "host": "n2",
                     "error_type": "ecc_corrected"})
    insert_hw(store, rows, table)
    res = {dict(r.group)["host.name"]: r for r in Evaluator(store).evaluate([slo], start + 600)}
    assert set(res) == {"n1", "n2"}
    n1, n2 = res["n1"], res["n2"]
    assert n1.period.events == 10 and n2.period.events == 10  # minutes with data
    assert n2.period.consumed == 0 and n2.state == "ok"
    # Minute 3: gpu-0 degraded; minute 6: an XID on gpu-1 (a counter that was 7 all along raises none).
    assert n1.period.consumed == 2
    assert n1.sli == Fraction(8, 10)


def test_accelerator_health_delta_xid_counter(store):
    from support.slo import hw_status, insert_hw

    slo = make_slo(name="gpu", sli={"accelerator_health": {}}, budgeting="timeslices", window={"rolling": "7d"})
    start = T0 + DAY
    rows = hw_status(start + 5, "gpu-0") + hw_status(start + 65, "gpu-0")
    rows.append({"t": start + 70, "metric": "hw.errors", "id": "gpu-0", "value": 1, "temporality": 1})
    insert_hw(store, rows)
    (r,) = Evaluator(store).evaluate([slo], start + 120)
    assert (r.period.events, r.period.consumed) == (2, 1)


def test_calendar_windows_follow_the_time_zone():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    slo = make_slo(window={"calendar": "month", "time_zone": "Europe/Paris"})
    now = datetime(2026, 3, 31, 23, 30, tzinfo=paris).timestamp()  # March has the DST change
    start, length = slo.window.bounds(now)
    assert start == datetime(2026, 3, 1, tzinfo=paris).timestamp()
    assert length == 31 * DAY - 3600  # one hour shorter: clocks went forward
    week = make_slo(window={"calendar": "week", "time_zone": "UTC"})
    start, length = week.window.bounds(datetime(2026, 5, 28, 12, tzinfo=ZoneInfo("UTC")).timestamp())  # Thursday
    assert datetime.fromtimestamp(start, ZoneInfo("UTC")).strftime("%a %H:%M") == "Mon 00:00" and length == 7 * DAY


def test_calendar_budget_counts_only_this_month(store):
    slo = make_slo(window={"calendar": "month"})
    from datetime import datetime

    june = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
    insert_requests(store, [{"minute": june - 120, "requests": 100, "bad": 100},  # May: not this budget
                            {"minute": june + 120, "requests": 1000, "bad": 1}])
    res = _one(Evaluator(store).evaluate([slo], june + 600))
    assert (res.period.events, res.period.consumed) == (1000, 1)
    assert res.budget_remaining == 0


def test_storage_failure_is_an_error_state_not_a_resolve(store):
    from infersight.slo.alerts import AlertTracker, desired_alerts

    slo = make_slo()
    now = T0 + 30 * DAY
    insert_requests(store, [{"minute": now - 120, "requests": 100, "bad": 100}])
    tracker = AlertTracker()
    desired, evaluated = desired_alerts(Evaluator(store).evaluate([slo], now))
    tracker.update(desired, evaluated, now)
    firing = {fp for fp, r in tracker.alerts.items() if r.state == "firing"}
    assert firing
    store.execute(f"RENAME TABLE `{store.database}`.infersight_requests_1m TO `{store.database}`.moved")
    results = Evaluator(store).evaluate([slo], now + 60)
    assert [r.state for r in results] == ["error"] and "query failed" in results[0].error
    desired, evaluated = desired_alerts(results)
    changed, deleted = tracker.update(desired, evaluated, now + 60)
    assert (changed, deleted) == ([], []) and {fp for fp, r in tracker.alerts.items() if r.state == "firing"} == firing


def test_cost_usd_per_million_tokens(store):
    slo = make_slo(name="unit-cost", sli={"cost": {
        "metric": "usd_per_million_tokens", "target_usd_per_million_tokens": 1,
        "prices": {"*": {"input_usd_per_million": 0.5, "output_usd_per_million": 2,
                         "cached_input_usd_per_million": 0.1}}}}, window={"rolling": "7d"})
    now = T0 + DAY
    # 3M input tokens of which 1M cached, 1M output: 2×0.5 + 1×0.1 + 1×2 = 3.1 USD for 4M tokens.
    insert_requests(store, [{"minute": now - 60, "requests": 10, "input_tokens": 3_000_000,
                             "cached_tokens": 1_000_000, "output_tokens": 1_000_000}])
    res = _one(Evaluator(store).evaluate([slo], now))
    assert res.sli == Fraction(31, 40)  # USD per 1M tokens
    assert res.period.allowance == 4 and res.budget_remaining == 1 - Fraction(31, 40)
    assert res.windows[3600].burn_rate == Fraction(31, 40)


def test_latency_timeslices(store):
    bounds = [0.1, 0.25, 0.5, 1.0]
    slo = make_slo(sli={"latency": {"kind": "ttft", "threshold_seconds": 0.25}}, budgeting="timeslices",
                   timeslice={"target_percent": 90}, window={"rolling": "7d"})
    now = T0 + DAY
    insert_latency(store, now - 180, "ttft", bounds, [80, 15, 5, 0, 0])  # 95 % fast: good minute
    insert_latency(store, now - 120, "ttft", bounds, [50, 30, 20, 0, 0])  # 80 %: bad minute
    insert_latency(store, now - 60, "ttft", bounds, [0, 90, 10, 0, 0])  # exactly 90 %: good
    res = _one(Evaluator(store).evaluate([slo], now))
    assert (res.period.events, res.period.consumed) == (3, 1)
