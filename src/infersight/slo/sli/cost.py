"""Cost SLIs: spend against a budget, or USD per 1M tokens against a target, per group.

Spend is priced per model with `cost.catalog.Rate.cost`, the same formula as `infersight cost
report` (cached input is capped at input), so an SLO and the report agree on the same data. Request rows
are counted with the source precedence of docs/slo.md (`ratio.requests_scan`): an app's own
`gen_ai.client.token.usage` sums next to its spans are not counted twice.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from fractions import Fraction
from typing import ClassVar

from infersight import semconv as sc
from infersight.slo.model import CostSli, Slo
from infersight.slo.results import EvaluationError, InstanceResult, WindowResult, finish
from infersight.slo.sli.base import (
    Cumulative,
    Reader,
    Rows,
    SlotCoverage,
    coverage_by,
    cumulative_by,
    filters_key,
    group_of,
    occurrence_sql,
)
from infersight.slo.sli.ratio import requests_scan

MILLION = 1_000_000
Models = Mapping[str, Cumulative]  # model -> sums of (requests, input, output, cached tokens)


def _sli(s: Slo) -> CostSli:
    assert isinstance(s.sli, CostSli)
    return s.sli


def _window(s: Slo, models: Models, since: float, seconds: float, plen: float) -> WindowResult:
    """Requests as events, USD as consumed; allowance: the budget's share of the period, or target × tokens."""
    sli = _sli(s)
    spend, requests, tokens = Fraction(0), Fraction(0), Fraction(0)
    for model, cum in models.items():
        req, inp, outp, cached = cum.since(since)
        rate = sli.rate(model)
        if rate is None:
            raise EvaluationError(f"slo '{s.name}': no price for model {model!r} (add it or '*')")
        spend += Fraction(rate.cost(int(inp), int(outp), int(cached)))
        requests += req
        tokens += inp + outp
    if sli.metric == "spend_usd":
        allowance = sli.limit() * Fraction(seconds) / Fraction(plen)
    else:
        allowance = sli.limit() * tokens / MILLION
    return WindowResult(int(seconds), requests, spend, allowance)


def _cost_sli(sli: CostSli) -> Callable[[WindowResult], Fraction | None]:
    """Spend itself, or USD per 1M tokens (tokens recovered exactly from the allowance)."""
    def value(p: WindowResult) -> Fraction | None:
        if sli.metric != "usd_per_million_tokens":
            return p.consumed
        tokens = p.allowance / sli.limit() * MILLION
        return p.consumed / tokens * MILLION if tokens else None
    return value


def _instance(s: Slo, group: tuple, models: Models, now: int, cov: SlotCoverage | None) -> InstanceResult:
    res = InstanceResult(s, group, now)
    pstart, plen = s.window.bounds(now)
    res.coverage = (cov or SlotCoverage([], {})).coverage(pstart, plen)
    try:
        for w in s.windows:
            res.windows[w] = _window(s, models, now - w, w, plen)
        res.period = _window(s, models, math.ceil(pstart), plen, plen)
    except EvaluationError as err:
        res.state, res.error = "error", str(err)
        return res
    if _sli(s).metric == "spend_usd":  # the whole period's budget, not the elapsed share
        res.period.allowance = _sli(s).limit()
    finish(res, plen, _cost_sli(_sli(s)))
    return res


class CostSource:
    kind: ClassVar[str] = "cost"

    def batch_key(self, slo: Slo) -> Hashable:
        return ("cost", filters_key(slo), slo.group_by)

    def rows(self, slos: Sequence[Slo], starts: Sequence[int], now: int, read: Reader) -> Rows:
        lay = read.layout
        scan = requests_scan(read, starts[-1], now)
        measures = [f"sum({lay.requests})", f"sum({lay.input_tokens})", f"sum({lay.output_tokens})",
                    f"sum({lay.cached_tokens})"]
        return read.query(occurrence_sql(scan, read, slos, starts, now, measures, {"model": sc.MODEL}))

    def fold(self, slos: Sequence[Slo], rows: Rows, starts: Sequence[int], now: int) -> list[InstanceResult]:
        group_by = slos[0].group_by
        detail = [r for r in rows if not int(r.get("cov", 0))]
        covs = coverage_by([r for r in rows if int(r.get("cov", 0))], starts, lambda r: group_of(r, group_by))
        sums = cumulative_by(detail, starts, lambda r: (group_of(r, group_by), str(r["model"])))
        by_group: dict[tuple, dict[str, Cumulative]] = defaultdict(dict)
        for (g, model), cum in sums.items():
            by_group[g][model] = cum
        return [_instance(s, g, models, now, covs.get(g)) for s in slos for g, models in sorted(by_group.items())]
