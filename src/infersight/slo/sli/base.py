"""The `SliSource` protocol and what every source shares: slots, SQL pieces, exact sums per window.

One query per batch returns, per group, sums for time *slots* bounded by every window start in the
batch (most recent first); each window is then an exact sum of slots (`Cumulative.since`). Budgets
are event-weighted (bad ÷ total summed over the window) and every ratio is a `Fraction`.

Windows are half-open and end at `now`: a window of w seconds holds the minutes m with
now - w <= m < now. At a minute-aligned `now` that is exactly the w/60 minutes before it (the SRE
workbook's bad ÷ total over the window); in a live evaluation between minute boundaries the current
minute counts with the data it has so far. Each row also carries the window's data coverage
(`c_n` minutes with data, `c_first`/`c_last`), folded by `SlotCoverage`.
"""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from infersight.slo.model import Slo
from infersight.slo.results import Coverage, InstanceResult, WindowResult, finish
from infersight.slo.sli.layout import Layout
from infersight.storage.literals import string_literal

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Reader:
    """What a source reads with: the data layout, the quoted database name and the (counted) query."""

    layout: Layout
    db: str
    query: Callable[[str], Rows]


class SliSource(Protocol):
    """How SLOs of one SLI kind are batched, queried and folded into instance results."""

    kind: ClassVar[str]

    def batch_key(self, slo: Slo) -> Hashable:
        """SLOs with equal keys share one query."""

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        """The batch's per-group, per-slot sums (columns g0.., slot, m0..); raises EvaluationError."""

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        """One result per SLO and group from the batch's rows."""


def slots(slos: Iterable[Slo], now: int) -> list[int]:
    """Every window start of the batch (alert windows and budget period), most recent first."""
    starts = set()
    for s in slos:
        for w in s.windows:
            starts.add(now - w)
        starts.add(math.ceil(s.window.bounds(now)[0]))
    return sorted(starts, reverse=True)


def float_literal(x: Fraction) -> str:
    return repr(float(x))


def where(dims: Mapping[str, str], filters: Mapping[str, str]) -> str:
    return " AND ".join([f"{dims[k]} = {string_literal(v)}" for k, v in sorted(filters.items())] or ["1"])


def filters_key(slo: Slo) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(slo.sli.filters.items()))


def slot_expr(minute: str, starts: Sequence[int]) -> str:
    if len(starts) == 1:
        return "0"
    parts = [f"{minute} >= toDateTime({s}), {i}" for i, s in enumerate(starts[:-1])]
    return f"multiIf({', '.join(parts)}, {len(starts) - 1})"


@dataclass(frozen=True)
class Scan:
    """One rollup read: table, minute column, dimension expressions and the table's own condition."""

    table: str
    minute: str
    dims: Mapping[str, str]
    where: str

    def source(self, read: Reader, slo: Slo, starts: Sequence[int], now: int) -> str:
        """FROM … WHERE …: the filters of the batch and the time range of its oldest slot."""
        return (f"FROM {read.db}.`{self.table}` WHERE {self.where} AND {where(self.dims, slo.sli.filters)} AND "
                f"{self.minute} >= toDateTime({starts[-1]}) AND {self.minute} < toDateTime({now})")

    def groups(self, group_by: Sequence[str], extra: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """(SELECT expressions, names) of the group columns g0.. plus `extra` (name -> attribute)."""
        cols = [f"{self.dims[a]} AS g{i}" for i, a in enumerate(group_by)]
        cols += [f"{self.dims[a]} AS {n}" for n, a in extra.items()]
        return cols, [f"g{i}" for i in range(len(group_by))] + list(extra)


def coverage_columns(minute: str, has: str = "1") -> str:
    """Minutes with data (`has` true) and the first and last of them, as c_n, c_first, c_last."""
    return (f"uniqExactIf({minute}, {has}) AS c_n, toUnixTimestamp(minIf({minute}, {has})) AS c_first, "
            f"toUnixTimestamp(maxIf({minute}, {has})) AS c_last")


def occurrence_sql(scan: Scan, read: Reader, slos: Sequence[Slo], starts: Sequence[int], now: int,
                   measures: Sequence[str], extra: Mapping[str, str] | None = None, has: str = "1") -> str:
    """Per group and slot, the sums of `measures` over the table's rows, with the slot's coverage.

    With `extra` columns (e.g. the model of cost SLIs) the rows are per group, slot and extra; the
    coverage of a group and slot then comes in rows of their own (`cov` = 1, a grouping set), since
    minutes with data of several models must not add up.
    """
    s0 = slos[0]
    gcols, gnames = scan.groups(s0.group_by, extra or {})
    gnames_only = gnames[:len(s0.group_by)]
    if extra:
        group_by = (f"GROUP BY GROUPING SETS (({', '.join(gnames + ['slot'])}), "
                    f"({', '.join(gnames_only + ['slot'])}))")
        cov = f", grouping({next(iter(extra))}) AS cov"
    else:
        group_by = f"GROUP BY {', '.join(gnames + ['slot'])}"
        cov = ""
    return (f"SELECT {', '.join(gcols)}{',' if gcols else ''} {slot_expr(scan.minute, starts)} AS slot, "
            + ", ".join(f"{m} AS m{j}" for j, m in enumerate(measures))
            + f", {coverage_columns(scan.minute, has)}{cov} {scan.source(read, s0, starts, now)} {group_by}")


def timeslice_sql(scan: Scan, read: Reader, slos: Sequence[Slo], starts: Sequence[int], now: int,
                  inner: Sequence[tuple[str, str]], measures: Sequence[str]) -> str:
    """Per-minute slices with traffic first (`inner`: name, sum), then `measures` over the minutes per slot."""
    s0 = slos[0]
    gcols, gnames = scan.groups(s0.group_by, {})
    inner_sql = (f"SELECT {', '.join(gcols + [f'{scan.minute} AS m'] + [f'{e} AS {n}' for n, e in inner])} "
                 f"{scan.source(read, s0, starts, now)} GROUP BY {', '.join(gnames + ['m'])} HAVING t > 0")
    return (f"SELECT {', '.join(gnames)}{',' if gnames else ''} {slot_expr('m', starts)} AS slot, "
            + ", ".join(f"{m} AS m{j}" for j, m in enumerate(measures))
            + f", {coverage_columns('m')} FROM ({inner_sql}) GROUP BY {', '.join(gnames + ['slot'])}")


def value(x: Any) -> int | Fraction:
    """A summed measure from JSON (UInt64 may arrive as a string, Float64 sums as floats), exactly."""
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x) if x.is_integer() else Fraction(repr(x))
    text = str(x)
    return int(text) if text.lstrip("-").isdigit() else Fraction(text)


class Cumulative:
    """Per-group running sums over the slots (most recent first): any window is one lookup."""

    def __init__(self, starts: Sequence[int], slot_sums: Mapping[int, list], n: int) -> None:
        self._neg = [-s for s in starts]  # ascending, for bisect
        self._zero = [0] * n
        acc = self._zero
        self._cum = []
        for i in range(len(starts)):
            v = slot_sums.get(i)
            if v:
                acc = [a + b for a, b in zip(acc, v, strict=True)]
            self._cum.append(acc)

    def since(self, t: float) -> list:
        """Sums over every slot starting at or after `t` (t is always one of the slot starts)."""
        k = bisect.bisect_right(self._neg, -t)
        return self._cum[k - 1] if k else self._zero


class SlotCoverage:
    """Per-group coverage over the slots (most recent first): minutes with data, first and last minute."""

    EMPTY: tuple[int, float | None, float | None] = (0, None, None)

    def __init__(self, starts: Sequence[int], per_slot: Mapping[int, tuple[int, float, float]]) -> None:
        self._neg = [-s for s in starts]
        acc = self.EMPTY
        self._cum = []
        for i in range(len(starts)):
            v = per_slot.get(i)
            if v and v[0] > 0:
                n, first, last = v
                acc = (acc[0] + n, first if acc[1] is None else min(acc[1], first),
                       last if acc[2] is None else max(acc[2], last))
            self._cum.append(acc)

    def since(self, t: float) -> tuple[int, float | None, float | None]:
        k = bisect.bisect_right(self._neg, -t)
        return self._cum[k - 1] if k else self.EMPTY

    def coverage(self, window_start: float, window_seconds: float) -> Coverage:
        return Coverage(window_start, window_seconds, *self.since(math.ceil(window_start)))


def coverage_by(rows: Rows, starts: Sequence[int], key: Callable[[Mapping[str, Any]], Hashable]
                ) -> dict[Any, SlotCoverage]:
    """Rows' c_n, c_first, c_last folded per `key(row)`."""
    per_key: dict[Hashable, dict[int, tuple[int, float, float]]] = defaultdict(dict)
    for r in rows:
        if "c_n" in r:
            per_key[key(r)][int(r["slot"])] = (int(r["c_n"]), float(r["c_first"]), float(r["c_last"]))
    return {k: SlotCoverage(starts, v) for k, v in per_key.items()}


def group_of(row: Mapping[str, Any], group_by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((a, str(row[f"g{i}"])) for i, a in enumerate(group_by))


def cumulative_by(rows: Rows, starts: Sequence[int], key: Callable[[Mapping[str, Any]], Hashable]
                  ) -> dict[Any, Cumulative]:
    """Rows folded per `key(row)` into running sums of the measures m0, m1, …"""
    n = sum(1 for k in (rows[0] if rows else {}) if k[0] == "m" and k[1:].isdigit())
    per_key: dict[Hashable, dict[int, list]] = defaultdict(dict)
    for r in rows:
        per_key[key(r)][int(r["slot"])] = [value(r[f"m{j}"]) for j in range(n)]
    return {k: Cumulative(starts, v, n) for k, v in per_key.items()}


def instance(s: Slo, group: tuple[tuple[str, str], ...], sums: Cumulative, mi: tuple[int, int],
             now: int, cov: SlotCoverage | None = None) -> InstanceResult:
    """An event-counted instance: measure `mi[0]` is the events, `mi[1]` the bad ones."""
    res = InstanceResult(s, group, now)
    ti, bi = mi
    budget = s.budget
    for w in s.windows:
        vals = sums.since(now - w)
        res.windows[w] = WindowResult(w, Fraction(vals[ti]), Fraction(vals[bi]), vals[ti] * budget)
    pstart, plen = s.window.bounds(now)
    vals = sums.since(math.ceil(pstart))
    res.period = WindowResult(int(plen), Fraction(vals[ti]), Fraction(vals[bi]), vals[ti] * budget)
    res.coverage = (cov or SlotCoverage([], {})).coverage(pstart, plen)
    finish(res, plen)
    return res


def fold_events(slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int,
                measures_for: Mapping[str, tuple[int, int]]) -> list[InstanceResult]:
    """Instances of event-counted SLOs; a batch without data in any group is one "no data" instance each."""
    group_by = slos[0].group_by
    sums = cumulative_by(rows, starts, lambda r: group_of(r, group_by))
    covs = coverage_by(rows, starts, lambda r: group_of(r, group_by))
    groups = sorted(sums)
    if not groups:  # an SLO without data in any group is one "no data" instance, never hidden
        groups = [()]
        sums[()] = Cumulative(starts, {}, 1 + max(max(mi) for mi in measures_for.values()))
    return [instance(s, g, sums[g], measures_for[s.name], now, covs.get(g)) for s in slos for g in groups]
