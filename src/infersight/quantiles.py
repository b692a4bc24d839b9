"""Percentiles from histogram buckets: THE one implementation every Python reader uses.

A layout is `(bounds, counts)`: ascending finite upper bounds and len(bounds)+1 non-cumulative counts,
the `+Inf` bucket last (what `infersight_latency_1m` stores per row and OTLP explicit-bucket histograms
carry). The web UI reads it through `/ui/percentiles.json` (`infersight.webui.percentiles`).

- One layout (rows with the same bounds, summed): `histogram_quantile`, exactly Prometheus' function
  (promql/quantile.go `bucketQuantile`): the rank q x total lies in the first bucket whose cumulative
  count reaches it and is interpolated linearly inside it; the first bucket starts at 0; a rank in the
  `+Inf` bucket answers the largest finite bound. `Quantile.estimate` is False: the value is what
  Prometheus answers over the same buckets.
- Several layouts (a vLLM server next to spans, TGI next to SGLang): each layout's counts are spread
  linearly over its own buckets (Prometheus' assumption, per source), the spread CDFs are added and
  inverted. `lower`/`upper` is the interval the quantile is *known* to lie in whatever the
  distribution inside the buckets, and `estimate` is True.

Counts at or under a threshold are exact only where the threshold is a bound of every layout
(`at_or_below` says the interval otherwise).
"""
from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

QUANTILES = (0.5, 0.95)
METHOD = ("histogram_quantile over one bucket layout (Prometheus' rules: linear inside the bucket, the +Inf "
          "bucket answers the largest finite bound); over mixed layouts an estimate, with the interval "
          "[lower, upper] the quantile is known to lie in")

Layout = tuple[Sequence[float], Sequence[int]]


@dataclass(frozen=True)
class Quantile:
    value: float  # seconds (the layouts' unit)
    lower: float  # the quantile is known to be >= lower ...
    upper: float | None  # ... and <= upper; None: unbounded (the rank is in a +Inf bucket)
    estimate: bool  # True: mixed layouts, only [lower, upper] is certain
    open: bool  # the rank lies above every finite bound: value is the largest finite bound

    def as_dict(self) -> dict:
        return {"value": self.value, "lower": self.lower, "upper": self.upper, "estimate": self.estimate,
                "open": self.open}


def _check(bounds: Sequence[float], counts: Sequence[int]) -> None:
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(counts)} bucket counts for {len(bounds)} bounds (expected len(bounds)+1)")
    if any(map(operator.ge, bounds, bounds[1:])):
        raise ValueError(f"bounds are not strictly ascending: {list(bounds)}")


def merge(layouts: Iterable[Layout]) -> dict[tuple[float, ...], list[int]]:
    """Counts summed per distinct layout (the rows of one layout add up bucket by bucket)."""
    out: dict[tuple[float, ...], list[int]] = {}
    for bounds, counts in layouts:
        key = tuple(map(float, bounds))
        _check(key, counts)
        acc = out.get(key)
        ints = list(map(int, counts))
        out[key] = ints if acc is None else list(map(operator.add, acc, ints))
    return {k: v for k, v in out.items() if sum(v)}


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float:
    """Prometheus' `histogram_quantile(q, ...)` over one layout (NaN without finite buckets or observations)."""
    _check(bounds, counts)
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    cum = list(accumulate(int(n) for n in counts))
    if not bounds or cum[-1] == 0:
        return math.nan
    rank = q * cum[-1]
    b = bisect_left(cum, rank, 0, len(cum) - 1)  # sort.Search over all but the +Inf bucket
    if b == len(cum) - 1:
        return float(bounds[-1])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, count = 0.0, float(cum[b])
    if b > 0:
        start, count, rank = float(bounds[b - 1]), float(cum[b] - cum[b - 1]), rank - cum[b - 1]
    return start + (float(bounds[b]) - start) * (rank / count)


def _spread(bounds: Sequence[float], cum: Sequence[int], x: float) -> float:
    """Observations <= x of one layout with its counts spread linearly over each finite bucket."""
    if x >= bounds[-1]:
        return float(cum[len(bounds) - 1])
    j = bisect_left(bounds, x)  # bounds[j] >= x > bounds[j-1]
    lo = bounds[j - 1] if j else min(0.0, bounds[0])
    before = cum[j - 1] if j else 0
    if x <= lo:
        return float(before)
    return before + (cum[j] - before) * (x - lo) / (bounds[j] - lo)


def _floor(bounds: Sequence[float], cum: Sequence[int], x: float) -> int:
    """Observations certainly <= x: the cumulative count at the largest bound <= x."""
    j = bisect_right(bounds, x)
    return cum[j - 1] if j else 0


def _ceil(bounds: Sequence[float], cum: Sequence[int], x: float) -> int:
    """Observations possibly <= x: those of every bucket whose lower edge is below x."""
    return cum[bisect_left(bounds, x)]


def quantile(layouts: Iterable[Layout], q: float) -> Quantile | None:
    """The q-quantile (0 < q <= 1) over rows of one or several layouts; None without finite buckets or data."""
    merged = merge(layouts)
    if not 0 < q <= 1:
        raise ValueError(f"quantile {q} is not in (0, 1]")
    if not any(merged):
        return None
    if len(merged) == 1:
        ((bounds, counts),) = merged.items()
        if not bounds:
            return None
        value = histogram_quantile(q, bounds, counts)
        cum = list(accumulate(counts))
        b = bisect_left(cum, q * cum[-1], 0, len(cum) - 1)
        if b == len(cum) - 1:
            return Quantile(value, bounds[-1], None, False, True)
        return Quantile(value, min(0.0, bounds[0]) if b == 0 else bounds[b - 1], bounds[b], False, False)
    sources = [(b, list(accumulate(c))) for b, c in merged.items() if b]
    if not sources:
        return None
    total = sum(cum[-1] for _, cum in ((b, list(accumulate(c))) for b, c in merged.items()))
    rank = q * total
    points = sorted({x for b, _ in sources for x in b})
    if points[0] > 0:
        points.insert(0, 0.0)
    def spread(p: float) -> float:
        return sum(_spread(b, c, p) for b, c in sources)

    def first(cdf: Callable[[float], float]) -> int:
        # The first point whose cdf (non-decreasing over the points) reaches the rank, len(points) if none:
        # a binary search, the same answer as scanning every point (the UI asks for thousands of groups).
        return bisect_left(points, True, key=lambda p: cdf(p) >= rank)

    k = first(spread)
    hi = first(lambda p: sum(_floor(b, c, p) for b, c in sources))
    lo = first(lambda p: sum(_ceil(b, c, p) for b, c in sources))
    lower = points[max(lo - 1, 0)]
    upper = None if hi == len(points) else points[hi]
    if k == len(points):
        return Quantile(points[-1], lower, None, True, True)
    if k == 0:
        return Quantile(points[0], lower, upper, True, False)
    f0, f1 = spread(points[k - 1]), spread(points[k])
    value = points[k - 1] + (points[k] - points[k - 1]) * (rank - f0) / (f1 - f0)
    return Quantile(value, lower, upper, True, False)


def at_or_below(layouts: Iterable[Layout], threshold: float) -> tuple[int, int]:
    """(certainly, possibly) observations <= threshold: equal where the threshold is a bound of every layout."""
    merged = merge(layouts)
    sure = maybe = 0
    for bounds, counts in merged.items():
        cum = list(accumulate(counts))
        sure += _floor(bounds, cum, threshold)
        maybe += _ceil(bounds, cum, threshold)
    return sure, maybe


def summary(layouts: Iterable[Layout], qs: Sequence[float] = QUANTILES) -> dict | None:
    """{"count": n, "layouts": k, "p50": Quantile dict, "p95": ...}, or None without observations."""
    merged = merge(layouts)
    total = sum(sum(c) for c in merged.values())
    if not total:
        return None
    out: dict = {"count": total, "layouts": len(merged)}
    for q in qs:
        est = quantile(merged.items(), q)
        out[f"p{round(q * 100)}"] = None if est is None else est.as_dict()
    return out
