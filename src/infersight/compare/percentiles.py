"""Percentiles estimated from histogram buckets: THE one place that knows how (the web UI's `sql.js`
`percentileSQL` computes the same estimate in ClickHouse).

Layouts (bounds, non-cumulative counts with the +Inf bucket last) are merged per upper bound, so rows with
different bounds (a rollup that keeps a server's native bounds, the probe's OTel client bounds) combine into
the union of their bounds. Quantile q lies in the first bucket whose cumulative count reaches q × total and is
interpolated linearly inside it; in the open +Inf bucket it is that bucket's lower bound (`open`). Every value
is an estimate and says so, with the bucket [low, high] it lies in.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

QUANTILES = (0.5, 0.95)
METHOD = ("estimated from histogram buckets: linear inside the bucket that holds the quantile; "
          "the open +Inf bucket answers its lower bound")


@dataclass(frozen=True)
class Estimate:
    seconds: float
    low: float
    high: float | None  # None: the open +Inf bucket
    open: bool

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "low": self.low, "high": self.high, "open": self.open, "estimate": True}


def merge(layouts: Iterable[tuple[Sequence[float], Sequence[int]]]) -> list[tuple[float, int]]:
    """(upper bound, count) pairs over the union of the layouts' bounds, ascending; the last bound is +Inf."""
    by_bound: dict[float, int] = {}
    for bounds, counts in layouts:
        uppers = [*map(float, bounds), math.inf]
        if len(counts) != len(uppers):
            raise ValueError(f"{len(counts)} bucket counts for {len(bounds)} bounds (expected len(bounds)+1)")
        for b, n in zip(uppers, counts, strict=True):
            by_bound[b] = by_bound.get(b, 0) + int(n)
    return sorted(by_bound.items())


def quantile(buckets: Sequence[tuple[float, int]], q: float) -> Estimate | None:
    """The q-quantile of merged buckets, or None without observations."""
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    want = q * total
    cum = 0
    for i, (upper, n) in enumerate(buckets):
        before = cum
        cum += n
        if cum >= want and n > 0:
            low = 0.0 if i == 0 else buckets[i - 1][0]
            if math.isinf(upper):
                return Estimate(low, low, None, True)
            return Estimate(low + (upper - low) * (want - before) / n, low, upper, False)
    return None  # unreachable: cum reaches total


def summary(layouts: Iterable[tuple[Sequence[float], Sequence[int]]],
            qs: Sequence[float] = QUANTILES) -> dict | None:
    """{"count": n, "p50": Estimate dict, "p95": ...} of the merged layouts, or None without observations."""
    buckets = merge(layouts)
    total = sum(n for _, n in buckets)
    if not total:
        return None
    out: dict = {"count": total}
    for q in qs:
        est = quantile(buckets, q)
        out[f"p{round(q * 100)}"] = None if est is None else est.as_dict()
    return out
