"""Availability SLIs: bad ÷ total requests, by occurrences or as good/bad one-minute slices.

Rows of the request rollup are counted with the source precedence of docs/slo.md
(`rollups.requests_precedence`, see `requests_scan`): an app's own request counter is left out where its spans
of the same minute, host and model exist.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import ClassVar

from infersight.rollups import REQUESTS, requests_precedence
from infersight.slo.model import Slo
from infersight.slo.results import InstanceResult
from infersight.slo.sli.base import Reader, Rows, Scan, filters_key, fold_events, occurrence_sql, timeslice_sql


def requests_scan(read: Reader, start: int, now: int) -> Scan:
    """The request rows an SLI over [start, now) counts: on the rollup, with the source precedence (span rows
    looked up a minute beyond each end: an SDK's delta covers requests whose spans started up to a minute
    earlier)."""
    lay = read.layout
    cond = lay.requests_where
    if lay.requests_table == REQUESTS.name:
        span = f"{lay.minute} >= toDateTime({start - 60}) AND {lay.minute} < toDateTime({now + 60})"
        cond = f"{cond} AND {requests_precedence(read.db, span)}"
    return Scan(lay.requests_table, lay.minute, lay.dims, cond)


def _targets(slos: Sequence[Slo]) -> list[Fraction]:
    return sorted({s.timeslice_target for s in slos})


class RatioSource:
    kind: ClassVar[str] = "ratio"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("ratio", filters_key(slo), slo.group_by, slo.budgeting)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        lay = read.layout
        scan = requests_scan(read, starts[-1], now)
        if slos[0].budgeting != "timeslices":
            return read.query(occurrence_sql(scan, read, slos, starts, now,
                                             [f"sum({lay.requests})", f"sum({lay.bad})"],
                                             has=f"{lay.requests} > 0"))
        # A minute is bad when its good share is under the slice target: (t - b) / t < n / d.
        bad = [f"countIf((t - b) * {t.denominator} < {t.numerator} * t)" for t in _targets(slos)]
        inner = [("t", f"sum({lay.requests})"), ("b", f"sum({lay.bad})")]
        return read.query(timeslice_sql(scan, read, slos, starts, now, inner, ["count()", *bad]))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        if slos[0].budgeting != "timeslices":
            return fold_events(slos, rows, starts, now, {s.name: (0, 1) for s in slos})
        targets = _targets(slos)
        return fold_events(slos, rows, starts, now,
                           {s.name: (0, 1 + targets.index(s.timeslice_target)) for s in slos})
