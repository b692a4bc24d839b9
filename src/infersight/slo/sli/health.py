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


class HealthSource:
    kind: ClassVar[str] = "accelerator_health"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("health", _sli(slo).hw_type, filters_key(slo), slo.group_by)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        slo = slos[0]
        gcols = [f"{_DIMS[a]} AS g{i}" for i, a in enumerate(slo.group_by)]
        gnames = [f"g{i}" for i in range(len(slo.group_by))]
        # One minute before the oldest slot: the previous cumulative value of each XID series.
        per_device = _per_device(slo, gcols, gnames, read, starts[-1] - 60, now)
        part = ", ".join(gnames + ["id", "series"])
        with_prev = (
            f"SELECT *, lagInFrame(if(cn > 0, cmax, NULL), 1, NULL) OVER (PARTITION BY {part} ORDER BY m "
            f"ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev FROM ({per_device})")
        per_minute = (
            f"SELECT {', '.join(gnames)}{',' if gnames else ''} m, max(seen) > 0 AS has, "
            f"max(sbad OR dsum > 0 OR (cn > 0 AND (cmax > cmin OR (prev IS NOT NULL AND cmax > prev)))) AS bad "
            f"FROM ({with_prev}) WHERE m >= toDateTime({starts[-1]}) GROUP BY {', '.join(gnames + ['m'])}")
        return read.query(
            f"SELECT {', '.join(gnames)}{',' if gnames else ''} {slot_expr('m', starts)} AS slot, "
            f"countIf(has) AS m0, countIf(has AND bad) AS m1, {coverage_columns('m', 'has')} FROM ({per_minute}) "
            f"GROUP BY {', '.join(gnames + ['slot'])}")

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        return fold_events(slos, rows, starts, now, {s.name: (0, 1) for s in slos})
