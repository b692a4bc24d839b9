"""Quantiles from the latency rollup: the one reader of the columns its insert writes for them.

`infersight_latency_1m` rows carry their layout's id (`Layout`, cityHash64 of the bounds) and their non-zero
buckets (`NonZeroBuckets`, 1-based positions, and `NonZeroCounts`; storage/sql/rollup_latency_1m.sql). A
reader sums `SUMS` per (group, Kind, `Layout`) — a span row holds ~5 of its ~330 buckets, so that reads a
tenth of what summing every bucket array did — keeps each layout's first (Kind, Minute), reads the layouts'
bounds once with `bounds` (one row each, found by the table's key) and answers each group with `summary`.
The web UI's percentiles (`webui.percentiles`) and the compare report (`compare.report`) both read it so.

Kept apart from `quantiles` (the math over layouts, no SQL, also used for OTLP histograms and the SLIs) and
from `rollups` (what the rollups write): this is the contract between the two for the latency rollup.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from infersight import quantiles
from infersight.storage.literals import string_literal

TABLE = "infersight_latency_1m"
# Per group and layout: the summed non-zero buckets, as a (positions, counts) pair of arrays.
SUMS = "sumMap(NonZeroBuckets, NonZeroCounts)"


def buckets(summed: tuple[Sequence[Any], Sequence[Any]]) -> dict[int, int]:
    """A `SUMS` value as {1-based position: count}."""
    positions, counts = summed
    return {int(i): int(n) for i, n in zip(positions, counts, strict=True)}


def bounds_sql(db: str, first: Mapping[str, tuple[str, int]]) -> str:
    """The bounds of each layout (id -> a Kind and minute it has a row at), `db` the quoted database or the
    Source's `{db}`: one row per layout, found by the table's key (Kind, Minute)."""
    at = ", ".join(f"({string_literal(kind)}, toDateTime({int(minute)}))"
                   for kind, minute in sorted(set(first.values())))
    return (f"SELECT toString(Layout) AS layout, any(Bounds) AS bounds FROM {db}.`{TABLE}` WHERE (Kind, Minute) IN "
            f"({at}) AND Layout IN ({', '.join(str(int(x)) for x in sorted(first))}) GROUP BY Layout")


def bounds(query: Callable[[str], list[dict[str, Any]]], db: str,
           first: Mapping[str, tuple[str, int]]) -> dict[str, tuple[float, ...]]:
    """Layout id -> its bounds, by `query` (nothing is read without layouts)."""
    rows = query(bounds_sql(db, first)) if first else []
    return {r["layout"]: tuple(float(b) for b in r["bounds"]) for r in rows}


def full(bounds: tuple[float, ...], buckets: Mapping[int, int]) -> quantiles.Layout:
    """A layout's bounds and every bucket's count, from its non-zero buckets (1-based position -> count)."""
    counts = [0] * (len(bounds) + 1)
    for i, n in buckets.items():
        counts[i - 1] = n
    return bounds, counts


def compact(bounds: tuple[float, ...], buckets: Mapping[int, int]) -> quantiles.Layout:
    """One layout with each run of empty buckets merged into one: the bounds kept are those next to a non-zero
    bucket (~10 of the span grid's ~330), so quantiles reads a few buckets instead of all.

    Over ONE layout that is the same answer: the rank lies in a non-zero bucket, whose both edges are kept with
    the cumulative counts at them, and the +Inf case (a non-zero last bucket) keeps the largest bound. Over
    several layouts it is not (their union of bounds is where the estimate interpolates): `summary` uses `full`.
    """
    n = len(bounds)
    kept = sorted({i - 1 for i in buckets if i <= n} | {i - 2 for i in buckets if i >= 2})
    return tuple(bounds[j] for j in kept), [*(buckets.get(j + 1, 0) for j in kept), buckets.get(n + 1, 0)]


def summary(group: Mapping[str, Mapping[int, int]], bounds: Mapping[str, tuple[float, ...]],
            qs: Sequence[float] = quantiles.QUANTILES) -> dict[str, Any] | None:
    """`quantiles.summary` of one group (layout id -> its summed non-zero buckets; `bounds`: id -> bounds)."""
    shape = compact if len(group) == 1 else full
    return quantiles.summary([shape(bounds[lid], b) for lid, b in group.items()], qs)
