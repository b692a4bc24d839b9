"""Accelerator-health SLIs: a minute is good when every device of the group is ok and raised no XID.

Read from the per-minute device health rollup (`infersight_hw_health_1m`, filled by views on the
hw.* metrics). A cumulative XID counter counts in a minute when it rose within it or since the
device's previous minute with samples.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import ClassVar

from infersight.slo.dimensions import HEALTH, HEALTH_COLUMNS
from infersight.slo.model import HealthSli, Slo
from infersight.slo.results import InstanceResult
from infersight.slo.sli.base import Reader, Rows, coverage_columns, filters_key, fold_events, slot_expr, where

_DIMS = {a: f"`{c}`" for a, c in HEALTH_COLUMNS.items()}


def _sli(s: Slo) -> HealthSli:
    assert isinstance(s.sli, HealthSli)
    return s.sli


def _per_device(slo: Slo, gcols: list[str], gnames: list[str], read: Reader, lo: int, now: int) -> str:
    """Per device, XID series and minute: a non-ok state, and XIDs counted (delta) or seen (cumulative)."""
    sli = _sli(slo)
    filters = dict(sli.filters)
    if sli.hw_type:
        filters["hw.type"] = sli.hw_type
    return (
        f"SELECT {', '.join(gcols + ['Minute AS m', 'HwId AS id', 'HwSeries AS series'])}, max(BadStatus) AS sbad, "
        f"sum(StatusSamples) AS seen, sum(ErrorsDelta) AS dsum, max(ErrorsMax) AS cmax, "
        f"min(ErrorsMin) AS cmin, sum(ErrorsSamples) AS cn FROM {read.db}.`{HEALTH}` "
        f"WHERE {where(_DIMS, filters)} AND Minute >= toDateTime({lo}) AND Minute < toDateTime({now}) "
        f"GROUP BY {', '.join(gnames + ['m', 'id', 'series'])}")


def read_from(starts: Sequence[int]) -> int:
    """Where an evaluation over `starts` reads from: one minute before its oldest slot, for the previous
    cumulative value of each XID series."""
    return starts[-1] - 60


# A device's minute is bad by itself (not ok, XIDs within it), or by a cumulative XID count risen since the
# device's previous minute that was read (`prev`, NULL when none).
_WITHIN = "sbad OR dsum > 0 OR (cn > 0 AND cmax > cmin)"
_ROSE = "cn > 0 AND prev IS NOT NULL AND cmax > prev"
_BAD = "sbad OR dsum > 0 OR (cn > 0 AND (cmax > cmin OR (prev IS NOT NULL AND cmax > prev)))"  # _WITHIN or _ROSE


def _minutes(slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader, lo: int, per_minute: str,
             measures: Sequence[str], prev_minute: bool = False) -> str:
    """Per group and slot, `measures` over the group's minutes since the oldest slot (`has`: samples, and the
    `per_minute` columns), the devices' minutes read from `lo`; `pm`: the device's previous minute read."""
    slo = slos[0]
    gcols = [f"{_DIMS[a]} AS g{i}" for i, a in enumerate(slo.group_by)]
    gnames = [f"g{i}" for i in range(len(slo.group_by))]
    frame = (f"OVER (PARTITION BY {', '.join(gnames + ['id', 'series'])} ORDER BY m "
             f"ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)")
    with_prev = (f"SELECT *, lagInFrame(if(cn > 0, cmax, NULL), 1, NULL) {frame} AS prev"
                 + (f", lagInFrame(m, 1) {frame} AS pm" if prev_minute else "")
                 + f" FROM ({_per_device(slo, gcols, gnames, read, lo, now)})")
    minutes = (f"SELECT {', '.join(gnames)}{',' if gnames else ''} m, max(seen) > 0 AS has, {per_minute} "
               f"FROM ({with_prev}) WHERE m >= toDateTime({starts[-1]}) GROUP BY {', '.join(gnames + ['m'])}")
    return (f"SELECT {', '.join(gnames)}{',' if gnames else ''} {slot_expr('m', starts)} AS slot, "
            + ", ".join(f"{m} AS m{j}" for j, m in enumerate(measures))
            + f", {coverage_columns('m', 'has')} FROM ({minutes}) GROUP BY {', '.join(gnames + ['slot'])}")


class HealthSource:
    kind: ClassVar[str] = "accelerator_health"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("health", _sli(slo).hw_type, filters_key(slo), slo.group_by)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        # Read from one minute before the oldest slot: the previous cumulative value of each XID series.
        return read.query(_minutes(slos, starts, now, read, read_from(starts), f"max({_BAD}) AS bad",
                                   ["countIf(has)", "countIf(has AND bad)"]))

    def rows_reading_from(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader,
                          since: Sequence[int]) -> Rows:
        """`rows` of many evaluations at once (the SLO detail's history), read from min(since): m0 minutes with
        data, m1 those bad to every evaluation, m(2+k) those bad besides to one that read from `since[k]`
        (an XID count risen since a device's previous minute, at or after `since[k]`)."""
        per_minute = f"max({_WITHIN}) AS bad, maxIf(toUnixTimestamp(pm), {_ROSE}) AS rose"
        return read.query(_minutes(slos, starts, now, read, min(since), per_minute,
                                   ["countIf(has)", "countIf(has AND bad)",
                                    *(f"countIf(has AND NOT bad AND rose >= {lo})" for lo in since)],
                                   prev_minute=True))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        return fold_events(slos, rows, starts, now, {s.name: (0, 1) for s in slos})
