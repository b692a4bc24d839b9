"""The SLO detail's history from one query per batch equals one evaluation per instant (`slo status --at`)."""
from __future__ import annotations

import pytest

from infersight.slo.evaluator import Evaluator
from infersight.slo.sli.base import Reader, slots
from infersight.slo.sli.health import HealthSource, read_from
from infersight.webui import history, history_instants
from support.slo import T0, hw_status, insert_hw, insert_latency, insert_requests, make_slo, steady_requests

pytest.importorskip("chdb")

DAY = 86400
NOW = T0 + 2 * DAY + 37.5  # live: between minute boundaries
BOUNDS = [0.1, 0.25, 0.5, 1.0]


def facts(results):
    """Everything an instance says, exactly (Fractions), in a comparable form."""
    out = []
    for r in results:
        def w(x):
            return None if x is None else (x.seconds, x.events, x.consumed, x.allowance)
        out.append((r.slo.name, r.group, r.evaluated_at, r.state, r.error, r.sli, r.budget_remaining, w(r.period),
                    {k: w(v) for k, v in sorted(r.windows.items())}, r.coverage,
                    [(t.tier.name, w(t.long), w(t.short), t.active, t.low_traffic, t.time_to_exhaustion_s)
                     for t in r.tiers]))
    return sorted(out, key=repr)


def per_instant(ev, slos, at):
    return [ev.evaluate(slos, t, point_in_time=True) for t in at[:-1]] + [ev.evaluate(slos, NOW)]


def instants(span=DAY, points=24):
    return [*history_instants(NOW, span, points)[:-1], int(NOW)]


def check(store, slos, span=DAY, queries=None):
    at = instants(span)
    ev = Evaluator(store)
    got = history.series(ev, slos, at, NOW)
    if queries is not None:
        assert ev.queries == queries
    want = per_instant(Evaluator(store), slos, at)
    assert len(got) == len(want) == len(at)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert facts(g) == facts(w), f"instant {i} ({at[i]})"
    return got


def bursty_requests(store):
    """Two days of traffic in two regions with bad minutes here and there, and a gap."""
    steady_requests(store, int(T0), 2 * 1440, 50, 0)
    steady_requests(store, int(T0) + DAY, 600, 20, 1, region="eu-west-1", model="qwen", input_tokens=900,
                    output_tokens=300, cached_tokens=100)
    insert_requests(store, [{"minute": int(T0) + DAY + 60 * i, "requests": 40, "bad": 12 if i % 7 == 0 else 0,
                             "input_tokens": 1000 * i, "output_tokens": 10 * i} for i in range(0, 1400, 3)])


def test_availability_events_and_time_slices_in_one_query_each(store):
    bursty_requests(store)
    grouped = make_slo(name="avail", objective=99, window={"rolling": "1d"}, group_by=["cloud.region"])
    check(store, [grouped], queries=1)
    slices = make_slo(name="slices", budgeting="timeslices", timeslice={"target_percent": 95},
                      window={"rolling": "7d"})
    got = check(store, [slices], span=2 * DAY, queries=1)
    assert any(r.period and r.period.consumed for r in got[-1]) and facts(got[0]) != facts(got[-1])


def test_cost_spend_and_unit_cost_with_several_models(store):
    bursty_requests(store)
    prices = {"llama": {"input_usd_per_million": 0.5, "output_usd_per_million": 1.5},
              "*": {"input_usd_per_million": 1, "output_usd_per_million": 2, "cached_input_usd_per_million": 0.1}}
    spend = make_slo(name="spend", sli={"cost": {"metric": "spend_usd", "budget_usd": 5, "prices": prices}},
                     window={"rolling": "1d"}, group_by=["cloud.region"])
    unit = make_slo(name="unit", sli={"cost": {"metric": "usd_per_million_tokens",
                                               "target_usd_per_million_tokens": 1, "prices": prices}},
                    window={"rolling": "1d"})
    check(store, [spend, unit], queries=2)


def test_latency_events_and_time_slices(store):
    for i in range(0, 1440, 11):
        t = int(T0) + DAY + 60 * i
        insert_latency(store, t, "ttft", BOUNDS, [80 - i % 40, 10, 5 + i % 9, i % 5, i % 3])
        insert_latency(store, t, "ttft", [0.05, 0.25, 2.0], [30, 5, 1, i % 2], host="h2")
    events = make_slo(name="ttft", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.25}}, objective=95,
                      window={"rolling": "1d"}, group_by=["host.name"])
    check(store, [events], queries=2)  # the bucket-bound check and the sums
    slices = make_slo(name="ttft-slices", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.25}},
                      budgeting="timeslices", timeslice={"target_percent": 90}, window={"rolling": "1d"})
    check(store, [slices], queries=2)


def test_a_failing_batch_is_evaluated_per_instant_and_fails_only_where_it_does(store):
    """A layout without the threshold as a bound early on: the instants whose windows (up to 3 days) hold it fail."""
    insert_latency(store, int(T0) - 2 * DAY + 7200, "e2e", [0.1, 0.3, 0.5], [5, 1, 1, 0])
    for i in range(1200, 2878, 13):
        insert_latency(store, int(T0) + 60 * i, "e2e", BOUNDS, [50, 10, 1, 0, 0])
    slo = make_slo(name="e2e", sli={"latency": {"kind": "e2e", "threshold_seconds": 0.25}},
                   window={"rolling": "6h"})
    got = check(store, [slo], span=DAY)
    states = [r.state for (r,) in got]
    assert states[0] == "error" and states[-1] == "exhausted" and got[-1][0].period.events > 0


def gpu_fleet(store):
    """GPU health on three nodes over the instants' windows (up to 3 days back from each instant: the longest
    alert window). n2 is scraped every other minute where the instants' reads start (one minute before their
    oldest slot), with a cumulative XID count rising at every scrape: a rise since a device's previous minute
    counts only where the evaluation read that minute. Then every 30 minutes, until it stops reporting at
    T0 + 1.5 d (mid-window). n1 (from T0, every 6 minutes): gpu-0 degraded now and then with a cumulative XID
    count rising every 7th scrape, gpu-1 with delta XIDs. n3 (every 30 minutes): ok, with a steady count.
    """
    rows = []
    for i in range(-2 * 1440, 2 * 1440, 2):
        t = int(T0) + 60 * i + 5
        if i >= 0 and i % 6 == 0:
            rows += hw_status(t, "gpu-0", "degraded" if i % 47 == 0 else "ok", host="n1")
            rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": i // 42, "host": "n1"})
            rows += hw_status(t, "gpu-1", host="n1")
            if i % 50 == 0:
                rows.append({"t": t + 1, "metric": "hw.errors", "id": "gpu-1", "value": 1, "host": "n1",
                             "temporality": 1})
        if i < -1440 or (i % 30 == 0 and i < 1440 + 720):
            rows += hw_status(t, "gpu-0", host="n2")
            rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": i + 3000, "host": "n2"})
        if i % 30 == 0:
            rows += hw_status(t, "gpu-0", host="n3")
            rows.append({"t": t, "metric": "hw.errors", "id": "gpu-0", "value": 3, "host": "n3"})
    insert_hw(store, rows)


def test_accelerator_health_in_one_query_per_batch(store):
    """Per node and fleet-wide: equal to one evaluation per instant, where the look-back matters (with every
    instant's rows read from the oldest read start, the first minute of n2's windows would be bad: its count
    rose since the scrape two minutes back)."""
    gpu_fleet(store)
    by_node = make_slo(name="gpu", sli={"accelerator_health": {"hw_type": "gpu"}}, budgeting="timeslices",
                       objective=99.5, window={"rolling": "1d"}, group_by=["host.name"])
    fleet = make_slo(name="fleet", sli={"accelerator_health": {}}, budgeting="timeslices", objective=90,
                     window={"rolling": "1d"})
    got = check(store, [by_node, fleet], queries=2)
    nodes = {dict(r.group)["host.name"]: r for r in got[-1] if r.slo.name == "gpu"}
    assert set(nodes) == {"n1", "n2", "n3"} and nodes["n3"].period.consumed == 0
    assert nodes["n2"].coverage != nodes["n3"].coverage  # n2 stopped reporting within the live window
    assert all(r.period and r.period.consumed for r in got[0] if r.slo.name == "fleet")

    ev = Evaluator(store)
    ends = instants()[:-1]
    per_instant = [slots([by_node], end) for end in ends]
    shared = sorted({s for starts in per_instant for s in starts} | set(ends[:-1]), reverse=True)
    since = sorted({read_from(starts) for starts in per_instant})
    rows = HealthSource().rows_reading_from([by_node], shared, ends[-1], Reader(ev.layout, ev.db, store.query),
                                            since)
    late = [sum(int(r[f"m{2 + k}"]) for r in rows if r["g0"] == "n2") for k in range(len(since))]
    assert late == sorted(late, reverse=True) and late[0] > late[-1]


def test_regroup_adds_slots_and_keeps_the_coverage_of_slots_with_data():
    shared = [300, 240, 180, 120, 60]  # most recent first, the query ending at 360
    rows = [{"g0": "a", "slot": 0, "m0": "5", "m1": 1, "c_n": 1, "c_first": 300, "c_last": 300},
            {"g0": "a", "slot": 1, "m0": 0, "m1": 0, "c_n": 0, "c_first": 0, "c_last": 0},
            {"g0": "a", "slot": 2, "m0": 7, "m1": 2, "c_n": 1, "c_first": 180, "c_last": 180},
            {"g0": "a", "slot": 4, "m0": 1, "m1": 1, "c_n": 1, "c_first": 60, "c_last": 60}]
    # One evaluation ending at 300 with slots starting at 240 and 120: slot 0 = [240, 300), slot 1 = [120, 240).
    out = history.Shared(rows, shared).regroup([240, 120], 300)
    assert out == [{"g0": "a", "slot": 0, "m0": 0, "m1": 0, "c_n": 0, "c_first": 0.0, "c_last": 0.0},
                   {"g0": "a", "slot": 1, "m0": 7, "m1": 2, "c_n": 1, "c_first": 180.0, "c_last": 180.0}]
