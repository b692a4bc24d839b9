"""Exact evaluation of SLO instances from the per-minute rollups.

One query per (source, filters, group_by, budgeting) batch returns, per group, sums for time *slots*
bounded by every window start in the batch; each window is then an exact sum of slots. Budgets are
event-weighted (bad ÷ total summed over the window) and every ratio is a `Fraction`.
"""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from infersight.rollups import LATENCY_METRICS
from infersight.slo.model import Slo, Tier
from infersight.slo.spec import ROLLUP_ATTRIBUTES

MILLION = 1_000_000


@dataclass(frozen=True)
class Layout:
    """Where request and latency data is read from: the rollups, or the raw OTel tables (benchmark)."""

    requests_table: str
    requests_where: str
    minute: str
    dims: dict[str, str]  # attribute -> SQL expression
    requests: str
    bad: str
    input_tokens: str
    output_tokens: str
    cached_tokens: str
    latency_table: str
    latency_minute: str
    latency_dims: dict[str, str]
    latency_kind_where: dict[str, str]
    bounds: str
    bucket_counts: str
    count: str


ROLLUPS = Layout(
    requests_table="infersight_requests_1m", requests_where="1", minute="Minute",
    dims={a: f"`{c}`" for a, c in ROLLUP_ATTRIBUTES.items()},
    requests="Requests", bad="BadRequests", input_tokens="InputTokens", output_tokens="OutputTokens",
    cached_tokens="CachedTokens",
    latency_table="infersight_latency_1m", latency_minute="Minute",
    latency_dims={a: f"`{c}`" for a, c in ROLLUP_ATTRIBUTES.items()},
    latency_kind_where={k: f"Kind = '{k}'" for k in ("e2e", "ttft", "tpot", "queue")},
    bounds="Bounds", bucket_counts="BucketCounts", count="Count",
)


def _raw_dims() -> dict[str, str]:
    """The rollup views' dimension expressions over the exporter's metric tables."""
    out = {}
    for attr in ROLLUP_ATTRIBUTES:
        where = "ResourceAttributes" if attr.startswith(("cloud.", "host.")) else "Attributes"
        out[attr] = f"{where}['{attr}']"
    t = "infersight.tenant"
    out[t] = f"if(Attributes['{t}'] != '', Attributes['{t}'], ResourceAttributes['{t}'])"
    return out


# The same SLIs read from the exporter's tables (what the rollups are built from); the benchmark's baseline.
RAW = Layout(
    requests_table="otel_metrics_sum",
    requests_where="MetricName = 'infersight.inference.requests' AND AggregationTemporality = 1",
    minute="toStartOfMinute(TimeUnix)", dims=_raw_dims(), requests="Value",
    bad="if(Attributes['infersight.request.outcome'] = 'bad', Value, 0)",
    input_tokens="0", output_tokens="0", cached_tokens="0",
    latency_table="otel_metrics_histogram", latency_minute="toStartOfMinute(TimeUnix)",
    latency_dims=_raw_dims(),
    latency_kind_where={k: f"MetricName = '{n}' AND AggregationTemporality = 1"
                        for n, k in LATENCY_METRICS.items()},
    bounds="ExplicitBounds", bucket_counts="BucketCounts", count="Count",
)


@dataclass
class WindowResult:
    seconds: int
    events: Fraction = Fraction(0)  # requests, minutes or tokens observed
    consumed: Fraction = Fraction(0)  # bad requests, bad minutes, or USD spent
    allowance: Fraction = Fraction(0)  # what the error budget allows over this window

    @property
    def burn_rate(self) -> Fraction | None:
        if self.allowance == 0:
            return None
        return self.consumed / self.allowance


@dataclass
class TierResult:
    tier: Tier
    long: WindowResult
    short: WindowResult
    active: bool
    low_traffic: bool
    time_to_exhaustion_s: float | None


@dataclass
class InstanceResult:
    slo: Slo
    group: tuple[tuple[str, str], ...]
    evaluated_at: float
    state: str = "ok"  # ok | burning | exhausted | no_data | error
    sli: Fraction | None = None
    period: WindowResult | None = None
    budget_remaining: Fraction | None = None
    windows: dict[int, WindowResult] = field(default_factory=dict)
    tiers: list[TierResult] = field(default_factory=list)
    error: str | None = None

    def budget_consumed(self) -> Fraction | None:
        return None if self.budget_remaining is None else 1 - self.budget_remaining


class EvaluationError(Exception):
    pass


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _float_literal(x: Fraction | Any) -> str:
    return repr(float(x))


def _where(dims: dict[str, str], filters: dict[str, str]) -> str:
    return " AND ".join([f"{dims[k]} = {_q(v)}" for k, v in sorted(filters.items())] or ["1"])


def _value(x: Any) -> int | Fraction:
    """A summed measure from JSON (UInt64 may arrive as a string, Float64 sums as floats), exactly."""
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x) if x.is_integer() else Fraction(repr(x))
    text = str(x)
    return int(text) if text.lstrip("-").isdigit() else Fraction(text)


class _Cumulative:
    """Per-group running sums over the slots (most recent first): any window is one lookup."""

    def __init__(self, starts: list[int], slots: dict[int, list], n: int) -> None:
        self._neg = [-s for s in starts]  # ascending, for bisect
        self._zero = [0] * n
        acc = self._zero
        self._cum = []
        for i in range(len(starts)):
            v = slots.get(i)
            if v:
                acc = [a + b for a, b in zip(acc, v)]
            self._cum.append(acc)

    def since(self, t: float) -> list:
        """Sums over every slot starting at or after `t` (t is always one of the slot starts)."""
        k = bisect.bisect_right(self._neg, -t)
        return self._cum[k - 1] if k else self._zero


def _slots(slos: Iterable[Slo], now: int) -> list[int]:
    starts = set()
    for s in slos:
        for w in s.windows:
            starts.add(now - w)
        starts.add(math.ceil(s.window.bounds(now)[0]))
    return sorted(starts, reverse=True)  # most recent first


def _slot_expr(minute: str, starts: Sequence[int]) -> str:
    if len(starts) == 1:
        return "0"
    parts = []
    for i, s in enumerate(starts[:-1]):
        parts.append(f"{minute} >= toDateTime({s}), {i}")
    return f"multiIf({', '.join(parts)}, {len(starts) - 1})"


class Evaluator:
    """Evaluates SLOs at an instant. Stateless: alert state lives in `alerts.AlertManager`."""

    def __init__(self, storage, layout: Layout = ROLLUPS, settings: dict | None = None) -> None:
        self.storage = storage
        self.layout = layout
        self.settings = settings  # ClickHouse query settings, e.g. {"max_threads": 1}
        self.queries = 0

    @property
    def db(self) -> str:
        return f"`{self.storage.database}`"

    # -- batching -----------------------------------------------------------------------------------
    def _batch_key(self, slo: Slo) -> tuple:
        sli = slo.sli
        filters = tuple(sorted(getattr(sli, "filters", {}).items()))
        if slo.sli_kind == "latency":
            return ("latency", sli.kind, filters, slo.group_by, slo.budgeting)
        if slo.sli_kind == "ratio":
            return ("ratio", filters, slo.group_by, slo.budgeting)
        if slo.sli_kind == "cost":
            return ("cost", filters, slo.group_by)
        return ("health", sli.hw_type, filters, slo.group_by)

    def evaluate(self, slos: Sequence[Slo], now: float) -> list[InstanceResult]:
        now_i = int(now)
        batches: dict[tuple, list[Slo]] = defaultdict(list)
        for s in slos:
            batches[self._batch_key(s)].append(s)
        out: list[InstanceResult] = []
        for key, members in batches.items():
            try:
                out.extend(self._run_batch(key, members, now_i))
            except EvaluationError as err:
                out.extend(InstanceResult(s, (), now_i, state="error", error=str(err)) for s in members)
        return out

    def _run_batch(self, key: tuple, slos: list[Slo], now: int) -> list[InstanceResult]:
        kind = key[0]
        starts = _slots(slos, now)
        if kind == "health":
            rows = self._health_rows(slos[0], starts, now)
            measures_for = {s.name: (0, 1) for s in slos}
        else:
            rows, measures_for = self._request_rows(kind, slos, starts, now)
        group_by = slos[0].group_by
        n_measures = sum(1 for k in (rows[0] if rows else {}) if k[0] == "m" and k[1:].isdigit())
        # group -> slot -> values
        per_group: dict[tuple, dict[int, list]] = defaultdict(dict)
        for r in rows:
            g = tuple((a, str(r[f"g{i}"])) for i, a in enumerate(group_by))
            if kind == "cost":
                g_key = (g, str(r["model"]))
            else:
                g_key = (g, None)
            per_group[g_key][int(r["slot"])] = [_value(r[f"m{j}"]) for j in range(n_measures)]
        sums = {k: _Cumulative(starts, slots, n_measures) for k, slots in per_group.items()}
        if kind == "cost":
            return self._cost_results(slos, sums, now)
        results = []
        groups = sorted({g for g, _ in per_group})
        if not groups:  # an SLO without data in any group is one "no data" instance, never hidden
            groups = [()]
            n = 1 + max(max(mi) for mi in measures_for.values())
            sums[((), None)] = _Cumulative(starts, {}, n)
        for s in slos:
            mi = measures_for[s.name]
            for g in groups:
                results.append(self._instance(s, g, sums[(g, None)], mi, now))
        return results

    # -- ratio and latency --------------------------------------------------------------------------
    def _request_rows(self, kind: str, slos: list[Slo], starts: list[int], now: int):
        lay = self.layout
        s0 = slos[0]
        measures: list[str] = []
        measures_for: dict[str, tuple[int, int]] = {}
        timeslices = s0.budgeting == "timeslices"
        if kind == "ratio":
            table, minute, dims, where = lay.requests_table, lay.minute, lay.dims, lay.requests_where
            total, bad = f"{lay.requests}", f"{lay.bad}"
            inner = [("t", f"sum({total})"), ("b", f"sum({bad})")]
            if not timeslices:
                measures = [f"sum({total})", f"sum({bad})"]
                measures_for = {s.name: (0, 1) for s in slos}
        elif kind == "latency":
            table, minute, dims = lay.latency_table, lay.latency_minute, lay.latency_dims
            where = lay.latency_kind_where[s0.sli.kind]
            self._check_bounds(table, where, minute, dims, slos, starts[-1], now)
            thr_index = {t: i for i, t in enumerate(sorted({_float_literal(s.sli.threshold_seconds)
                                                             for s in slos}))}
            good = {t: (f"arraySum(arraySlice({lay.bucket_counts}, 1, indexOf({lay.bounds}, toFloat64({t}))))")
                    for t in thr_index}
            inner = [("t", f"sum({lay.count})")] + [(f"g{i}", f"sum({good[t]})") for t, i in thr_index.items()]
            if not timeslices:
                measures = [f"sum({lay.count})"] + [f"sum({lay.count}) - sum({good[t]})" for t in thr_index]
                measures_for = {s.name: (0, 1 + thr_index[_float_literal(s.sli.threshold_seconds)]) for s in slos}
        else:  # cost
            table, minute, dims, where = lay.requests_table, lay.minute, lay.dims, lay.requests_where
            measures = [f"sum({lay.requests})", f"sum({lay.input_tokens})", f"sum({lay.output_tokens})",
                        f"sum({lay.cached_tokens})"]
        filt = _where(dims, dict(s0.sli.filters))
        gcols = [f"{dims[a]} AS g{i}" for i, a in enumerate(s0.group_by)]
        if kind == "cost":
            gcols.append(f"{dims['gen_ai.request.model']} AS model")
        gnames = [f"g{i}" for i in range(len(s0.group_by))] + (["model"] if kind == "cost" else [])
        time_where = f"{minute} >= toDateTime({starts[-1]}) AND {minute} <= toDateTime({now})"
        if timeslices:
            # Per-minute slices first, then count good/bad minutes per slot.
            if kind == "ratio":
                targets = sorted({s.timeslice_target for s in slos})
                bad_of = {t: f"(t - b) * {t.denominator} < {t.numerator} * t" for t in targets}
            else:
                targets = sorted({(s.timeslice_target, _float_literal(s.sli.threshold_seconds)) for s in slos})
                bad_of = {(t, thr): f"g{thr_index[thr]} * {t.denominator} < {t.numerator} * t"
                          for t, thr in targets}
            keys = list(bad_of)
            measures = ["count()"] + [f"countIf({bad_of[k]})" for k in keys]
            for s in slos:
                k = s.timeslice_target if kind == "ratio" else (s.timeslice_target,
                                                                 _float_literal(s.sli.threshold_seconds))
                measures_for[s.name] = (0, 1 + keys.index(k))
            inner_sql = (f"SELECT {', '.join(gcols + [f'{minute} AS m'] + [f'{e} AS {n}' for n, e in inner])} "
                         f"FROM {self.db}.`{table}` WHERE {where} AND {filt} AND {time_where} "
                         f"GROUP BY {', '.join(gnames + ['m'])} HAVING t > 0")
            sql = (f"SELECT {', '.join(gnames)}{',' if gnames else ''} {_slot_expr('m', starts)} AS slot, "
                   + ", ".join(f"{m} AS m{j}" for j, m in enumerate(measures))
                   + f" FROM ({inner_sql}) GROUP BY {', '.join(gnames + ['slot'])}")
        else:
            sql = (f"SELECT {', '.join(gcols)}{',' if gcols else ''} {_slot_expr(minute, starts)} AS slot, "
                   + ", ".join(f"{m} AS m{j}" for j, m in enumerate(measures))
                   + f" FROM {self.db}.`{table}` WHERE {where} AND {filt} AND {time_where} "
                   f"GROUP BY {', '.join(gnames + ['slot'])}")
        return self._query(sql), measures_for

    def _check_bounds(self, table, where, minute, dims, slos, start, now) -> None:
        """A threshold must be a bucket boundary of every histogram it is read from."""
        lay = self.layout
        filt = _where(dims, dict(slos[0].sli.filters))
        thrs = sorted({_float_literal(s.sli.threshold_seconds) for s in slos})
        cond = " OR ".join(f"indexOf({lay.bounds}, toFloat64({t})) = 0" for t in thrs)
        rows = self._query(
            f"SELECT DISTINCT {lay.bounds} AS b FROM {self.db}.`{table}` WHERE {where} AND {filt} "
            f"AND {minute} >= toDateTime({start}) AND {minute} <= toDateTime({now}) AND ({cond}) LIMIT 5")
        if rows:
            bounds = [float(x) for x in rows[0]["b"]]
            bad = [t for t in thrs if float(t) not in bounds]
            names = ", ".join(s.name for s in slos if _float_literal(s.sli.threshold_seconds) in bad)
            raise EvaluationError(
                f"latency threshold(s) {', '.join(bad)} s of SLO(s) {names} are not bucket boundaries of the "
                f"{slos[0].sli.kind} histograms; boundaries that exist: {bounds}")

    # -- accelerator health -------------------------------------------------------------------------
    def _health_rows(self, slo: Slo, starts: list[int], now: int) -> list[dict]:
        """From the per-minute device health rollup (filled by views on the hw.* metrics)."""
        from infersight.slo.store import HEALTH, HEALTH_COLUMNS

        sli = slo.sli
        dim_expr = {a: f"`{c}`" for a, c in HEALTH_COLUMNS.items()}
        filters = dict(sli.filters)
        if sli.hw_type:
            filters["hw.type"] = sli.hw_type
        filt = _where(dim_expr, filters)
        gcols = [f"{dim_expr[a]} AS g{i}" for i, a in enumerate(slo.group_by)]
        gnames = [f"g{i}" for i in range(len(slo.group_by))]
        lo = starts[-1] - 60
        # Per device, XID series and minute: a non-ok state, or XIDs counted (delta) or increasing (cumulative).
        per_device = (
            f"SELECT {', '.join(gcols + ['Minute AS m', 'HwId AS id', 'HwSeries AS series'])}, max(BadStatus) AS sbad, "
            f"sum(StatusSamples) AS seen, sum(ErrorsDelta) AS dsum, max(ErrorsMax) AS cmax, "
            f"min(ErrorsMin) AS cmin, sum(ErrorsSamples) AS cn FROM {self.db}.`{HEALTH}` "
            f"WHERE {filt} AND Minute >= toDateTime({lo}) AND Minute <= toDateTime({now}) "
            f"GROUP BY {', '.join(gnames + ['m', 'id', 'series'])}")
        part = ", ".join(gnames + ["id", "series"])
        with_prev = (
            f"SELECT *, lagInFrame(if(cn > 0, cmax, NULL), 1, NULL) OVER (PARTITION BY {part} ORDER BY m "
            f"ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev FROM ({per_device})")
        per_minute = (
            f"SELECT {', '.join(gnames)}{',' if gnames else ''} m, max(seen) > 0 AS has, "
            f"max(sbad OR dsum > 0 OR (cn > 0 AND (cmax > cmin OR (prev IS NOT NULL AND cmax > prev)))) AS bad "
            f"FROM ({with_prev}) WHERE m >= toDateTime({starts[-1]}) GROUP BY {', '.join(gnames + ['m'])}")
        sql = (f"SELECT {', '.join(gnames)}{',' if gnames else ''} {_slot_expr('m', starts)} AS slot, "
               f"countIf(has) AS m0, countIf(has AND bad) AS m1 FROM ({per_minute}) "
               f"GROUP BY {', '.join(gnames + ['slot'])}")
        return self._query(sql)

    # -- assembling ---------------------------------------------------------------------------------
    def _query(self, sql: str) -> list[dict[str, Any]]:
        from infersight.storage.base import StorageError

        self.queries += 1
        try:
            return self.storage.query(sql, self.settings)
        except StorageError as err:
            raise EvaluationError(f"query failed: {str(err)[:500]}") from None

    def _instance(self, s: Slo, group, sums: "_Cumulative", mi, now) -> InstanceResult:
        res = InstanceResult(s, group, now)
        ti, bi = mi
        budget = s.budget
        for w in s.windows:
            vals = sums.since(now - w)
            res.windows[w] = WindowResult(w, Fraction(vals[ti]), Fraction(vals[bi]), vals[ti] * budget)
        pstart, plen = s.window.bounds(now)
        vals = sums.since(math.ceil(pstart))
        res.period = WindowResult(int(plen), Fraction(vals[ti]), Fraction(vals[bi]), vals[ti] * budget)
        self._finish(res, plen)
        return res

    def _cost_results(self, slos, sums: dict, now) -> list[InstanceResult]:
        by_group: dict[tuple, dict[str, _Cumulative]] = defaultdict(dict)
        for (g, model), cum in sums.items():
            by_group[g][model] = cum
        out = []
        for s in slos:
            sli = s.sli
            for g, models in sorted(by_group.items()):
                res = InstanceResult(s, g, now)
                pstart, plen = s.window.bounds(now)

                def measure(since: float, seconds: float) -> WindowResult:
                    spend = Fraction(0)
                    requests = Fraction(0)
                    tokens = Fraction(0)
                    for model, cum in models.items():
                        req, inp, outp, cached = cum.since(since)
                        p = sli.prices.get(model) or sli.prices.get("*")
                        if p is None:
                            raise EvaluationError(f"slo '{s.name}': no price for model {model!r} (add it or '*')")
                        cp = Fraction(str(p.cached_input_usd_per_million if p.cached_input_usd_per_million
                                          is not None else p.input_usd_per_million))
                        spend += ((inp - cached) * Fraction(str(p.input_usd_per_million)) + cached * cp
                                  + outp * Fraction(str(p.output_usd_per_million))) / MILLION
                        requests += req
                        tokens += inp + outp
                    if sli.metric == "spend_usd":
                        allowance = Fraction(str(sli.budget_usd)) * Fraction(seconds) / Fraction(plen)
                    else:
                        allowance = Fraction(str(sli.target_usd_per_million_tokens)) * tokens / MILLION
                    return WindowResult(int(seconds), requests, spend, allowance)

                try:
                    for w in s.windows:
                        res.windows[w] = measure(now - w, w)
                    res.period = measure(math.ceil(pstart), plen)
                    if sli.metric == "spend_usd":  # the whole period's budget, not the elapsed share
                        res.period.allowance = Fraction(str(sli.budget_usd))
                except EvaluationError as err:
                    res.state, res.error = "error", str(err)
                    out.append(res)
                    continue
                self._finish(res, plen)
                out.append(res)
        return out

    @staticmethod
    def _finish(res: InstanceResult, plen: float) -> None:
        s = res.slo
        p = res.period
        if p is None or p.events == 0:
            res.state = "no_data"
            return
        if s.sli_kind == "cost":
            tokens = p.allowance / Fraction(str(s.sli.target_usd_per_million_tokens)) * MILLION \
                if s.sli.metric == "usd_per_million_tokens" else None
            res.sli = p.consumed if tokens is None else (p.consumed / tokens * MILLION if tokens else None)
        else:
            res.sli = 1 - p.consumed / p.events
        res.budget_remaining = 1 - p.consumed / p.allowance if p.allowance else Fraction(0)
        remaining = max(res.budget_remaining, Fraction(0))
        nd = res.windows.get(s.no_data_after_s)
        for t in s.tiers:
            lw, sw = res.windows[t.long_s], res.windows[t.short_s]
            low = lw.events < s.min_events
            lb, sb = lw.burn_rate, sw.burn_rate
            active = (not low and lb is not None and sb is not None and lb > t.factor and sb > t.factor)
            tte = None
            if lb:
                tte = float(remaining * Fraction(plen) / lb)
            res.tiers.append(TierResult(t, lw, sw, active, low, tte))
        if nd is not None and nd.events == 0:
            res.state = "no_data"
        elif res.budget_remaining <= 0:
            res.state = "exhausted"
        elif any(t.active for t in res.tiers):
            res.state = "burning"
