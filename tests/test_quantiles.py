"""Percentiles from buckets (`infersight.quantiles`) against Prometheus' histogram_quantile and exact quantiles.

The vLLM numbers of issue 10: TTFT buckets where Prometheus answers p95 = 383 ms (the rollup's fixed grid used to
turn it into 453 ms), and API-call spans of 5-30 ms whose p95 showed as 95 ms.
"""
from __future__ import annotations

import asyncio
import math
import random
import shutil
import subprocess
import time

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from tests.test_rollups import VLLM, hist_row, insert, span_row

from infersight import quantiles
from infersight.rollups import LATENCY_BOUNDS, SPAN_BOUNDS
from support.net import free_port
from support.paths import FIXTURES

TTFT = "vllm:time_to_first_token_seconds"
# Non-cumulative counts per bucket of the fixture's TTFT layout: 1000 requests, 900 at or under 0.25 s,
# 94 in (0.25, 0.5]: p95 = 0.25 + 0.25 x 50/94.
COUNTS = {0.02: 10, 0.04: 40, 0.06: 100, 0.08: 150, 0.1: 200, 0.25: 400, 0.5: 94, 0.75: 4, 1.0: 1, 2.5: 1}


def vllm_ttft_bounds() -> list[float]:
    text = (FIXTURES / "vllm" / "datadog_vllm_metrics.txt").read_text()
    (fam,) = [f for f in text_string_to_metric_families(text) if f.name == TTFT]
    return [float(s.labels["le"]) for s in fam.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"]


def vllm_layout() -> tuple[list[float], list[int]]:
    bounds = vllm_ttft_bounds()
    assert set(COUNTS) <= set(bounds)
    return bounds, [COUNTS.get(b, 0) for b in bounds] + [0]


def exposition(bounds: list[float], counts: list[int]) -> str:
    """The fixture's whole exposition with its TTFT histogram replaced by `counts` (cumulative, as servers expose)."""
    text = (FIXTURES / "vllm" / "datadog_vllm_metrics.txt").read_text()
    out, cum = [], 0
    cums = {}
    for b, n in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        cum += n
        cums[b] = cum
    for line in text.splitlines():
        if line.startswith(TTFT + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            le = "+Inf" if le == "+Inf" else str(float(le))
            line = line.rsplit(" ", 1)[0] + f" {float(cums[le])}"
        elif line.startswith(TTFT + "_count{"):
            line = line.rsplit(" ", 1)[0] + f" {float(cum)}"
        out.append(line)
    return "\n".join(out) + "\n"


def exact_quantile(values: list[float], q: float) -> float:
    """The q-quantile of a sample: the smallest value with at least q x n values at or under it."""
    s = sorted(values)
    return s[max(math.ceil(q * len(s)) - 1, 0)]


# -- one layout: Prometheus' rules -------------------------------------------------------------------------
def test_histogram_quantile_follows_prometheus_rules():
    assert quantiles.histogram_quantile(0.95, *vllm_layout()) == pytest.approx(0.25 + 0.25 * 50 / 94)
    # First bucket starts at 0; a rank in +Inf answers the largest finite bound; nothing finite is NaN.
    assert quantiles.histogram_quantile(0.5, [2.0, 4.0], [4, 0, 0]) == 1.0
    assert quantiles.histogram_quantile(0.5, [1.0], [0, 8]) == 1.0
    assert math.isnan(quantiles.histogram_quantile(0.5, [], [3]))
    assert math.isnan(quantiles.histogram_quantile(0.5, [1.0], [0, 0]))
    assert quantiles.histogram_quantile(0.5, [-1.0, 1.0], [5, 1, 0]) == -1.0  # first bound <= 0: that bound
    assert quantiles.histogram_quantile(1.5, [1.0], [1, 0]) == math.inf
    with pytest.raises(ValueError, match="2 bucket counts for 2 bounds"):
        quantiles.histogram_quantile(0.5, [1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="not strictly ascending"):
        quantiles.histogram_quantile(0.5, [2.0, 1.0], [1, 1, 0])


def test_one_layout_is_not_an_estimate_and_names_its_bucket():
    bounds, counts = vllm_layout()
    # Rows of one layout (two engines, two minutes) add up first: still one layout.
    half = [n // 2 for n in counts]
    rest = [a - b for a, b in zip(counts, half, strict=True)]
    q = quantiles.quantile([(bounds, half), (bounds, rest)], 0.95)
    assert q is not None and q.value == pytest.approx(0.3830, abs=1e-4)
    assert (q.lower, q.upper, q.estimate, q.open) == (0.25, 0.5, False, False)
    top = quantiles.quantile([([0.1], [1, 9])], 0.95)
    assert top is not None and (top.value, top.lower, top.upper, top.open) == (0.1, 0.1, None, True)
    assert quantiles.quantile([([], [5])], 0.5) is None
    assert quantiles.summary([([0.1], [0, 0])]) is None
    s = quantiles.summary([(bounds, counts)])
    assert s is not None and s["count"] == 1000 and s["layouts"] == 1 and s["p95"]["estimate"] is False


def test_the_old_fixed_grid_was_18_percent_high():
    """The regression of issue 10: re-bucketing (0.25, 0.5] onto the grid's (0.4, 0.5] moved p95 from 383 to 453 ms."""
    bounds, counts = vllm_layout()
    grid = list(LATENCY_BOUNDS["ttft"])
    moved = [0] * (len(grid) + 1)
    for b, n in zip([*bounds, math.inf], counts, strict=True):
        moved[next((i for i, g in enumerate(grid) if g >= b), len(grid))] += n
    old = quantiles.histogram_quantile(0.95, grid, moved)
    new = quantiles.histogram_quantile(0.95, bounds, counts)
    assert (round(old, 3), round(new, 3)) == (0.453, 0.383)


# -- mixed layouts: an estimate with the interval it is known to lie in ------------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_mixed_layouts_bracket_the_true_quantile(seed):
    rnd = random.Random(seed)
    layouts_bounds = [[0.25, 0.5, 0.75, 1.0, 2.5], [0.1, 0.2, 0.4, 0.5, 0.8, 1.6], list(SPAN_BOUNDS)]
    samples: list[float] = []
    layouts = []
    for bounds in layouts_bounds:
        values = [rnd.lognormvariate(math.log(0.3), 0.6) for _ in range(rnd.randint(1, 400))]
        samples += values
        counts = [0] * (len(bounds) + 1)
        for v in values:
            counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
        layouts.append((bounds, counts))
    for q in (0.5, 0.9, 0.95, 0.99):
        est = quantiles.quantile(layouts, q)
        truth = exact_quantile(samples, q)
        assert est is not None and est.estimate
        upper = math.inf if est.upper is None else est.upper
        assert est.lower <= truth <= upper, (q, est, truth)
        assert est.lower <= est.value <= upper or est.open


def test_counts_at_a_threshold_are_exact_only_on_a_bound_of_every_layout():
    a, b = ([0.25, 0.5], [1, 2, 3]), ([0.4, 0.5], [4, 5, 6])
    assert quantiles.at_or_below([a, b], 0.5) == (12, 12)
    assert quantiles.at_or_below([a, b], 0.4) == (5, 7)  # (0.25, 0.5] may or may not be under 0.4


# -- through the rollup ------------------------------------------------------------------------------------
def rollup_layouts(store, kind: str) -> list[tuple[list[float], list[int]]]:
    rows = store.query(f"SELECT Bounds, sumForEach(BucketCounts) AS c FROM `{store.database}`.infersight_latency_1m "
                       f"WHERE Kind = '{kind}' GROUP BY Bounds")
    return [([float(x) for x in r["Bounds"]], [int(x) for x in r["c"]]) for r in rows]


def test_rollup_of_vllm_buckets_answers_what_prometheus_answers(store):
    bounds, counts = vllm_layout()
    half = [n // 2 for n in counts]
    insert(store, "otel_metrics_histogram", [
        hist_row("gen_ai.server.time_to_first_token", bounds, half, 100.0, VLLM, time="2026-11-26 10:00:05"),
        hist_row("gen_ai.server.time_to_first_token", bounds, [a - b for a, b in zip(counts, half, strict=True)],
                 100.0, VLLM, time="2026-11-26 10:01:05")])
    q = quantiles.quantile(rollup_layouts(store, "ttft"), 0.95)
    assert q is not None and not q.estimate
    assert q.value == quantiles.histogram_quantile(0.95, bounds, counts) == pytest.approx(0.3830, abs=1e-4)


def test_fast_api_spans_keep_their_resolution(store):
    """200 API calls of 5-30 ms: the span grid's p50/p95 are within 5 % of the exact ones (not '95 ms')."""
    rnd = random.Random(7)
    ms = [rnd.uniform(5, 30) for _ in range(200)]
    insert(store, "otel_traces", [span_row("gpt-4o-mini", round(v * 1e6), {"gen_ai.provider.name": "openai"})
                                  for v in ms])
    layouts = rollup_layouts(store, "e2e")
    assert [len(b) for b, _ in layouts] == [len(SPAN_BOUNDS)]
    for q in (0.5, 0.95, 0.99):
        est = quantiles.quantile(layouts, q)
        truth = exact_quantile(ms, q) / 1000
        assert est is not None and not est.estimate
        assert est.value == pytest.approx(truth, rel=0.05), q
        assert est.lower <= truth <= est.upper


# -- the real Prometheus ---------------------------------------------------------------------------------------
@pytest.mark.e2e
async def test_real_prometheus_histogram_quantile_matches(store, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`; .ci/run installs it)")
    bounds, counts = vllm_layout()
    app = web.Application()
    body = exposition(bounds, counts)
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/plain")

    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    target = free_port()
    await web.TCPSite(runner, "127.0.0.1", target).start()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "vllm", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}]}))
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with aiohttp.ClientSession(trust_env=False) as http:
            async def promql(q: str) -> float:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": q}) as r:
                            result = (await r.json()).get("data", {}).get("result")
                        if result:
                            return float(result[0]["value"][1])
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise AssertionError(f"no result for {q}")
                    await asyncio.sleep(0.3)

            theirs = {qq: await promql(f"histogram_quantile({qq}, {TTFT}_bucket)") for qq in (0.5, 0.9, 0.95, 0.99)}
    finally:
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()
    # The same buckets as the agent sends them (delta histogram points) through the rollup, read back.
    insert(store, "otel_metrics_histogram",
           [hist_row("gen_ai.server.time_to_first_token", bounds, counts, 150.0, VLLM)])
    layouts = rollup_layouts(store, "ttft")
    for qq, value in theirs.items():
        ours = quantiles.quantile(layouts, qq)
        assert ours is not None and ours.value == pytest.approx(value, rel=1e-12), qq
    assert round(theirs[0.95], 4) == 0.3830
