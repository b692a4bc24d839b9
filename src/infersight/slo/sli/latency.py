"""Latency SLIs: requests at or under a threshold, from mergeable per-minute histograms.

Good = observations <= threshold, summed row by row in each row's own layout (the rollup keeps every
source's native bounds). The threshold must be a bucket boundary of every layout read, so "at or under"
is exact, never interpolated: the spec checks it against the span grid (`rollups.threshold_problem`),
`rows` checks the layouts stored in the window and fails the batch naming the ones that lack it.
Rows are counted with the source precedence of docs/slo.md (`rollups.latency_precedence`): an app's
histograms are left out where its spans of the same minute, host and model exist.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import ClassVar

from infersight import semconv as sc
from infersight.rollups import LATENCY, latency_precedence
from infersight.slo.model import LatencySli, Slo
from infersight.slo.results import EvaluationError, InstanceResult
from infersight.slo.sli.base import (
    Reader,
    Rows,
    Scan,
    filters_key,
    float_literal,
    fold_events,
    occurrence_sql,
    timeslice_sql,
    where,
)


def _sli(s: Slo) -> LatencySli:
    assert isinstance(s.sli, LatencySli)
    return s.sli


def _threshold(s: Slo) -> str:
    return float_literal(_sli(s).threshold)


def _thresholds(slos: Sequence[Slo]) -> dict[str, int]:
    """Threshold literal -> its index among the batch's good-count columns."""
    return {t: i for i, t in enumerate(sorted({_threshold(s) for s in slos}))}


def _slice_keys(slos: Sequence[Slo]) -> list[tuple]:
    return sorted({(s.timeslice_target, _threshold(s)) for s in slos})


class LatencySource:
    kind: ClassVar[str] = "latency"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("latency", _sli(slo).latency, filters_key(slo), slo.group_by, slo.budgeting)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        lay = read.layout
        scan = self._scan(read, slos, starts[-1], now)
        self._check_bounds(scan, read, slos, starts[-1], now)
        thr = _thresholds(slos)
        good = {t: f"arraySum(arraySlice({lay.bucket_counts}, 1, indexOf({lay.bounds}, toFloat64({t}))))"
                for t in thr}
        if slos[0].budgeting != "timeslices":
            measures = [f"sum({lay.count})"] + [f"sum({lay.count}) - sum({good[t]})" for t in thr]
            return read.query(occurrence_sql(scan, read, slos, starts, now, measures, has=f"{lay.count} > 0"))
        inner = [("t", f"sum({lay.count})")] + [(f"g{i}", f"sum({good[t]})") for t, i in thr.items()]
        bad = [f"countIf(g{thr[t]} * {target.denominator} < {target.numerator} * t)"
               for target, t in _slice_keys(slos)]
        return read.query(timeslice_sql(scan, read, slos, starts, now, inner, ["count()", *bad]))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        if slos[0].budgeting != "timeslices":
            thr = _thresholds(slos)
            return fold_events(slos, rows, starts, now, {s.name: (0, 1 + thr[_threshold(s)]) for s in slos})
        keys = _slice_keys(slos)
        return fold_events(slos, rows, starts, now,
                           {s.name: (0, 1 + keys.index((s.timeslice_target, _threshold(s)))) for s in slos})

    @staticmethod
    def _scan(read: Reader, slos: Sequence[Slo], start: int, now: int) -> Scan:
        lay = read.layout
        kind = lay.latency_kind_where[_sli(slos[0]).latency]
        if lay.latency_table == LATENCY.name:
            span = f"{lay.latency_minute} >= toDateTime({start - 60}) AND {lay.latency_minute} <= toDateTime({now})"
            kind = f"{kind} AND {latency_precedence(read.db, f'{kind} AND {span}')}"
        return Scan(lay.latency_table, lay.latency_minute, lay.latency_dims, kind)

    @staticmethod
    def _check_bounds(scan: Scan, read: Reader, slos: Sequence[Slo], start: int, now: int) -> None:
        """A threshold must be a bucket boundary of every histogram it is read from."""
        lay = read.layout
        thrs = sorted(_thresholds(slos))
        cond = " OR ".join(f"indexOf({lay.bounds}, toFloat64({t})) = 0" for t in thrs)
        source = "Source" if lay.latency_table == LATENCY.name else "'raw'"
        rows = read.query(
            f"SELECT {lay.bounds} AS b, groupUniqArray({lay.latency_dims[sc.SERVER_KIND]}) AS kinds, "
            f"groupUniqArray({source}) AS sources FROM {read.db}.`{scan.table}` WHERE {scan.where} AND "
            f"{where(scan.dims, slos[0].sli.filters)} AND {scan.minute} >= toDateTime({start}) AND "
            f"{scan.minute} < toDateTime({now}) AND ({cond}) AND {lay.count} > 0 GROUP BY b ORDER BY b LIMIT 5")
        if rows:
            bounds = [float(x) for x in rows[0]["b"]]
            bad = [t for t in thrs if float(t) not in bounds]
            names = ", ".join(s.name for s in slos if _threshold(s) in bad)
            whose = ", ".join(sorted(f"{src or 'unknown source'}" for src in rows[0]["sources"]))
            kinds = ", ".join(sorted(k or "no server kind" for k in rows[0]["kinds"]))
            raise EvaluationError(
                f"latency threshold(s) {', '.join(bad)} s of SLO(s) {names} are not bucket boundaries of the "
                f"{_sli(slos[0]).latency} histograms of {whose} ({kinds}), so good requests cannot be counted "
                f"exactly; boundaries that exist: {bounds}")
