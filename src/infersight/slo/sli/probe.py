"""Probe SLIs: "probe availability" and "probe latency" (TTFT, e2e, TPOT, time to headers) per cloud/region.

Read from the OTel exporter's tables, probe traffic only (`infersight.traffic = probe`): the probe
collector's delta points `infersight.probe.requests` (one per probe, outcome good/bad) and its
`gen_ai.client.*` / `infersight.probe.time_to_headers` histograms (one observation per probe). Probes
are few (one per endpoint and interval), so no rollup is needed: a 30-day window of 20 endpoints
probed every minute is ~860k points, read through the tables' (ServiceName, MetricName, hour) key.

- availability: events = probes, bad = failed probes (`error.type` timeout, connect, 5xx, 429, ...).
- latency: events = successful probes' observations, bad = those over the threshold (which must be a
  bucket boundary of the probe's histogram: exact, never interpolated); with `failed_probes: bad`
  every failed probe is an event and a bad one too. TTFT and TPOT are observed on successful probes
  only; the e2e duration of failed probes (they carry `error.type`) is left out of the latency SLI.

Cloud and region are the probed endpoint's (point attributes), never the agent's resource.
Sums are exact integers (each probe adds 1) and every ratio a `Fraction`, as for the other SLIs.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import ClassVar

from infersight import semconv as sc
from infersight.slo.dimensions import PROBE_ATTRIBUTES
from infersight.slo.model import ProbeLatencySli, Slo
from infersight.slo.results import EvaluationError, InstanceResult
from infersight.slo.sli.base import (
    Reader,
    Rows,
    coverage_columns,
    filters_key,
    float_literal,
    fold_events,
    slot_expr,
    where,
)
from infersight.storage.literals import string_literal

SUMS = "otel_metrics_sum"
HISTOGRAMS = "otel_metrics_histogram"
MINUTE = "toStartOfMinute(TimeUnix)"
# Probe latency kind -> the histogram the probe collector records it in.
LATENCY_METRICS = {"ttft": sc.CLIENT_TIME_TO_FIRST_CHUNK, "e2e": sc.CLIENT_OPERATION_DURATION,
                   "tpot": sc.CLIENT_TIME_PER_OUTPUT_CHUNK, "time_to_headers": sc.PROBE_TIME_TO_HEADERS}


def _dims() -> dict[str, str]:
    out = {a: f"Attributes[{string_literal(a)}]" for a in PROBE_ATTRIBUTES}
    t = string_literal(sc.TENANT)
    out[sc.TENANT] = f"if(Attributes[{t}] != '', Attributes[{t}], ResourceAttributes[{t}])"
    return out


DIMS = _dims()
# What every probe SLI reads: delta points marked as probe traffic.
PROBE_TRAFFIC = (f"AggregationTemporality = 1 AND Attributes[{string_literal(sc.TRAFFIC)}] = "
                 f"{string_literal(sc.TRAFFIC_PROBE)}")
_COUNT = "toUInt64(round(Value))"
_VALID_COUNT = "isFinite(Value) AND Value >= 0 AND Value <= 4294967296"
_BAD = f"Attributes[{string_literal(sc.OUTCOME)}] = 'bad'"


def probes_where() -> str:
    """The probe requests' rows (availability events)."""
    return f"MetricName = {string_literal(sc.PROBE_REQUESTS)} AND {PROBE_TRAFFIC} AND {_VALID_COUNT}"


def histogram_where(kind: str) -> str:
    """The rows of one probe latency histogram (successful probes only)."""
    ok = f" AND Attributes[{string_literal(sc.ERROR_TYPE)}] = ''" if kind == "e2e" else ""
    return (f"MetricName = {string_literal(LATENCY_METRICS[kind])} AND {PROBE_TRAFFIC}{ok} AND Count > 0 "
            f"AND length(BucketCounts) = length(ExplicitBounds) + 1")


def _part(table: str, cond: str, slo: Slo, starts: Sequence[int], now: int, read: Reader,
          events: str, bads: Sequence[str]) -> str:
    """One table's per-row events and bad counts, with the group columns g0.. and the minute m."""
    gcols = [f"{DIMS[a]} AS g{i}" for i, a in enumerate(slo.group_by)]
    # One type in every part of the union (UInt64 - UInt64 is Int64 in ClickHouse).
    cols = [*gcols, f"{MINUTE} AS m", f"toInt64({events}) AS t", *(f"toInt64({b}) AS b{j}" for j, b in enumerate(bads))]
    return (f"SELECT {', '.join(cols)} FROM {read.db}.`{table}` WHERE {cond} AND {where(DIMS, slo.sli.filters)} "
            f"AND {MINUTE} >= toDateTime({starts[-1]}) AND {MINUTE} < toDateTime({now})")


def events_sql(parts: Sequence[str], slos: Sequence[Slo], starts: Sequence[int], n_bad: int) -> str:
    """Per group and slot: events (m0) and each bad count (m1..), summed over `parts`, with coverage.

    Occurrences sum the rows; time slices first sum each minute (`t`, `b<j>` per minute with probes)
    and then count minutes (m0) and bad minutes per slice target (m1..).
    """
    s0 = slos[0]
    gnames = [f"g{i}" for i in range(len(s0.group_by))]
    lead = f"{', '.join(gnames)}{',' if gnames else ''}"
    union = " UNION ALL ".join(f"({p})" for p in parts)
    if s0.budgeting != "timeslices":
        sums = ", ".join(["sum(t) AS m0", *(f"sum(b{j}) AS m{j + 1}" for j in range(n_bad))])
        return (f"SELECT {lead} {slot_expr('m', starts)} AS slot, {sums}, {coverage_columns('m', 't > 0')} "
                f"FROM ({union}) GROUP BY {', '.join([*gnames, 'slot'])}")
    per_minute = ", ".join(["sum(t) AS t", *(f"sum(b{j}) AS b{j}" for j in range(n_bad))])
    targets = sorted({s.timeslice_target for s in slos})
    # A minute is bad when its good share is under the slice target: (t - b) / t < n / d.
    bad = [f"countIf((t - b{j}) * {x.denominator} < {x.numerator} * t) AS m{1 + i * n_bad + j}"
           for i, x in enumerate(targets) for j in range(n_bad)]
    return (f"SELECT {lead} {slot_expr('m', starts)} AS slot, count() AS m0, {', '.join(bad)}, "
            f"{coverage_columns('m')} FROM (SELECT {lead} m, {per_minute} FROM ({union}) "
            f"GROUP BY {', '.join([*gnames, 'm'])} HAVING t > 0) GROUP BY {', '.join([*gnames, 'slot'])}")


def _measure(slos: Sequence[Slo], s: Slo, j: int, n_bad: int) -> int:
    """The measure index of SLO `s`'s bad count `j` in `events_sql`'s columns."""
    if slos[0].budgeting != "timeslices":
        return 1 + j
    targets = sorted({x.timeslice_target for x in slos})
    return 1 + targets.index(s.timeslice_target) * n_bad + j


class ProbeAvailabilitySource:
    kind: ClassVar[str] = "probe_availability"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("probe_availability", filters_key(slo), slo.group_by, slo.budgeting)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        part = _part(SUMS, probes_where(), slos[0], starts, now, read, _COUNT, [f"if({_BAD}, {_COUNT}, 0)"])
        return read.query(events_sql([part], slos, starts, 1))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        return fold_events(slos, rows, starts, now, {s.name: (0, _measure(slos, s, 0, 1)) for s in slos})


def _lat(s: Slo) -> ProbeLatencySli:
    assert isinstance(s.sli, ProbeLatencySli)
    return s.sli


def _thresholds(slos: Sequence[Slo]) -> list[str]:
    return sorted({float_literal(_lat(s).threshold) for s in slos}, key=float)


class ProbeLatencySource:
    kind: ClassVar[str] = "probe_latency"

    def batch_key(self, slo: Slo) -> Hashable:
        sli = _lat(slo)
        return ("probe_latency", sli.latency, sli.failed_bad, filters_key(slo), slo.group_by, slo.budgeting)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        sli = _lat(slos[0])
        thr = _thresholds(slos)
        self._check_bounds(slos, thr, starts[-1], now, read)
        over = [f"Count - arraySum(arraySlice(BucketCounts, 1, indexOf(ExplicitBounds, toFloat64({t}))))"
                for t in thr]
        parts = [_part(HISTOGRAMS, histogram_where(sli.latency), slos[0], starts, now, read, "Count", over)]
        if sli.failed_bad:  # every failed probe: one event, bad at every threshold
            failed = f"if({_BAD}, {_COUNT}, 0)"
            parts.append(_part(SUMS, f"{probes_where()} AND {_BAD}", slos[0], starts, now, read, failed,
                               [failed] * len(thr)))
        return read.query(events_sql(parts, slos, starts, len(thr)))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        thr = _thresholds(slos)
        return fold_events(slos, rows, starts, now, {
            s.name: (0, _measure(slos, s, thr.index(float_literal(_lat(s).threshold)), len(thr))) for s in slos})

    @staticmethod
    def _check_bounds(slos: Sequence[Slo], thr: Sequence[str], start: int, now: int, read: Reader) -> None:
        """Each threshold must be a bucket boundary of every probe histogram read (else: no exact count)."""
        sli = _lat(slos[0])
        cond = " OR ".join(f"indexOf(ExplicitBounds, toFloat64({t})) = 0" for t in thr)
        rows = read.query(
            f"SELECT ExplicitBounds AS b, groupUniqArray({DIMS[sc.PROBE_ENDPOINT]}) AS endpoints "
            f"FROM {read.db}.`{HISTOGRAMS}` WHERE {histogram_where(sli.latency)} AND {where(DIMS, sli.filters)} "
            f"AND {MINUTE} >= toDateTime({start}) AND {MINUTE} < toDateTime({now}) AND ({cond}) "
            f"GROUP BY b ORDER BY b LIMIT 5")
        if rows:
            bounds = [float(x) for x in rows[0]["b"]]
            bad = [t for t in thr if float(t) not in bounds]
            names = ", ".join(s.name for s in slos if float_literal(_lat(s).threshold) in bad)
            raise EvaluationError(
                f"probe latency threshold(s) {', '.join(bad)} s of SLO(s) {names} are not bucket boundaries of "
                f"the {sli.latency} histograms of probe endpoint(s) {', '.join(sorted(rows[0]['endpoints']))}, "
                f"so good probes cannot be counted exactly; boundaries that exist: {bounds}")

