"""What an evaluation produces: per SLO instance, the SLI, budget, window burn rates and tier states.

Plain data shared by the SLI sources that compute it, and by the alerting, engine and views that
read it. `finish` is the one place that turns an instance's windows into its state.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from infersight.slo.model import Slo, Tier


class EvaluationError(Exception):
    """A batch could not be evaluated (query failed, threshold not a bucket boundary, model unpriced)."""


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


@dataclass(frozen=True)
class Coverage:
    """How much of the budget window holds data: minutes with data, and the first and last of them.

    `fraction` is minutes with data ÷ the window's minutes; `observed_fraction(now)` is the share of
    the window since the first minute with data (a low-traffic SLO has gaps, not missing history).
    """

    window_start: float
    window_seconds: float
    minutes_with_data: int = 0
    first_data_at: float | None = None
    last_data_at: float | None = None

    @property
    def window_minutes(self) -> int:
        return max(1, -(-int(self.window_seconds) // 60))

    @property
    def fraction(self) -> Fraction:
        return min(Fraction(1), Fraction(self.minutes_with_data, self.window_minutes))

    def observed_fraction(self, now: float) -> Fraction:
        """The share of the window from its first minute with data to `now` (0 without data)."""
        if self.first_data_at is None:
            return Fraction(0)
        since = max(self.first_data_at, self.window_start)
        return max(Fraction(0), min(Fraction(1), Fraction(int(now - since)) / Fraction(int(self.window_seconds))))


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
    coverage: Coverage | None = None

    def budget_consumed(self) -> Fraction | None:
        return None if self.budget_remaining is None else 1 - self.budget_remaining


def good_ratio(period: WindowResult) -> Fraction | None:
    """The SLI of event-counted SLOs: the good share of the period's events."""
    return 1 - period.consumed / period.events


def finish(res: InstanceResult, plen: float, sli: Callable[[WindowResult], Fraction | None] = good_ratio) -> None:
    """State, SLI, budget remaining and tier activity from the instance's filled windows."""
    s = res.slo
    p = res.period
    if p is None or p.events == 0:
        res.state = "no_data"
        return
    res.sli = sli(p)
    res.budget_remaining = 1 - p.consumed / p.allowance if p.allowance else Fraction(0)
    remaining = max(res.budget_remaining, Fraction(0))
    for t in s.tiers:
        lw, sw = res.windows[t.long_s], res.windows[t.short_s]
        low = lw.events < s.min_events
        lb, sb = lw.burn_rate, sw.burn_rate
        active = (not low and lb is not None and sb is not None and lb > t.factor and sb > t.factor)
        tte = float(remaining * Fraction(plen) / lb) if lb else None
        res.tiers.append(TierResult(t, lw, sw, active, low, tte))
    nd = res.windows.get(s.no_data_after_s)
    if nd is not None and nd.events == 0:
        res.state = "no_data"
    elif res.budget_remaining <= 0:
        res.state = "exhausted"
    elif any(t.active for t in res.tiers):
        res.state = "burning"
