"""The internal SLO model: exact fractions, windows in seconds, burn-rate tiers as data.

Burn-rate factor = budget percent × period ÷ long window (SRE workbook, ch. 5); the catalogues are
the Google 30d windows and their 28d and 7d counterparts (as in Sloth's AlertWindows).
"""
from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from infersight.slo.spec import SloDocument, format_duration, parse_duration

DAY = 86400

# name -> (period seconds, ((tier, severity, budget percent, long window, short window), ...))
CATALOGUES: dict[str, tuple[int, tuple[tuple[str, str, str, str, str], ...]]] = {
    "google-30d": (30 * DAY, (
        ("page-fast", "page", "2", "1h", "5m"),
        ("page-slow", "page", "5", "6h", "30m"),
        ("ticket-fast", "ticket", "10", "1d", "2h"),
        ("ticket-slow", "ticket", "10", "3d", "6h"),
    )),
    "google-28d": (28 * DAY, (
        ("page-fast", "page", "2", "1h", "5m"),
        ("page-slow", "page", "5", "6h", "30m"),
        ("ticket-fast", "ticket", "10", "1d", "2h"),
        ("ticket-slow", "ticket", "10", "3d", "6h"),
    )),
    "google-7d": (7 * DAY, (
        ("page-fast", "page", "8", "1h", "5m"),
        ("page-slow", "page", "12.5", "6h", "30m"),
        ("ticket-fast", "ticket", "20", "1d", "2h"),
        ("ticket-slow", "ticket", "42", "3d", "6h"),
    )),
}


def burn_factor(budget_percent: Fraction, period_s: int, long_s: int) -> Fraction:
    return budget_percent / 100 * period_s / long_s


@dataclass(frozen=True)
class Tier:
    name: str
    severity: str
    factor: Fraction
    long_s: int
    short_s: int
    for_s: int = 0
    budget_percent: Fraction | None = None


@dataclass(frozen=True)
class Window:
    rolling_s: int | None = None
    calendar: str | None = None  # "week" | "month"
    time_zone: str = "UTC"

    def bounds(self, now: float) -> tuple[float, float]:
        """(start, period length in seconds) of the budget window that contains `now`."""
        if self.rolling_s is not None:
            return now - self.rolling_s, float(self.rolling_s)
        tz = ZoneInfo(self.time_zone)
        local = datetime.fromtimestamp(now, tz)
        if self.calendar == "week":  # ISO weeks start on Monday
            start = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
            end = start + timedelta(days=7)
        else:
            start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            days = _calendar.monthrange(start.year, start.month)[1]
            end = start + timedelta(days=days)
        # Re-localise: a DST change inside the period shifts wall clock, not the instant.
        start = start.replace(tzinfo=None).replace(tzinfo=tz)
        end = end.replace(tzinfo=None).replace(tzinfo=tz)
        return start.timestamp(), end.timestamp() - start.timestamp()

    def nominal_s(self) -> int:
        if self.rolling_s is not None:
            return self.rolling_s
        return 7 * DAY if self.calendar == "week" else 30 * DAY

    def describe(self) -> str:
        if self.rolling_s is not None:
            return f"rolling {format_duration(self.rolling_s)}"
        return f"calendar {self.calendar} ({self.time_zone})"


@dataclass(frozen=True)
class Slo:
    name: str
    description: str
    sli_kind: str
    sli: Any  # the spec's SLI body (frozen pydantic model)
    objective: Fraction  # e.g. 999/1000
    window: Window
    budgeting: str
    timeslice_target: Fraction
    group_by: tuple[str, ...]
    min_events: int
    tiers: tuple[Tier, ...]
    alertname: str
    budget_exhausted_alert: bool
    no_data_alert: bool
    no_data_after_s: int
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def budget(self) -> Fraction:
        return 1 - self.objective

    @property
    def windows(self) -> tuple[int, ...]:
        """Every distinct alert window, shortest first."""
        return tuple(sorted({t.long_s for t in self.tiers} | {t.short_s for t in self.tiers}
                            | {self.no_data_after_s}))


def _frac(d: Any) -> Fraction:
    return Fraction(str(d))


def catalogue_for(period_s: int, choice: str) -> str | None:
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    for name, (p, _) in CATALOGUES.items():
        if p == period_s:
            return name
    return "google-30d"  # budget percents of the 30d catalogue, factors rescaled to this period


def compile_spec(doc: SloDocument, source: str = "") -> Slo:
    s = doc.spec
    w = Window(rolling_s=parse_duration(s.window.rolling) if s.window.rolling else None,
               calendar=s.window.calendar, time_zone=s.window.time_zone)
    period = w.nominal_s()
    tiers: list[Tier] = []
    cat = catalogue_for(period, s.alerting.catalogue)
    if cat is not None:
        for name, sev, pct, long_w, short_w in CATALOGUES[cat][1]:
            lo = parse_duration(long_w)
            tiers.append(Tier(name, sev, burn_factor(Fraction(pct), period, lo), lo, parse_duration(short_w),
                              budget_percent=Fraction(pct)))
    for t in s.alerting.tiers:
        lo = parse_duration(t.long_window)
        pct = _frac(t.budget_percent) if t.budget_percent is not None else None
        factor = _frac(t.factor) if t.factor is not None else burn_factor(pct, period, lo)
        tiers.append(Tier(t.name, t.severity, factor, lo, parse_duration(t.short_window),
                          parse_duration(t.for_) if t.for_ else 0, pct))
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"slo '{doc.metadata.name}': duplicate tier names {names}")
    # Fastest burn first: that order drives inhibition of slower tiers.
    tiers.sort(key=lambda t: (-t.factor, t.long_s))
    no_data_after = (parse_duration(s.alerting.no_data_after) if s.alerting.no_data_after
                     else min((t.long_s for t in tiers), default=3600))
    return Slo(
        name=doc.metadata.name, description=s.description, sli_kind=s.sli.kind, sli=s.sli.body,
        objective=_frac(s.objective_percent) / 100, window=w, budgeting=s.budgeting,
        timeslice_target=_frac(s.timeslice.target_percent) / 100, group_by=tuple(s.group_by),
        min_events=s.min_events, tiers=tuple(tiers), alertname=s.alerting.name,
        budget_exhausted_alert=s.alerting.budget_exhausted, no_data_alert=s.alerting.no_data,
        no_data_after_s=no_data_after, labels={**doc.metadata.labels, **s.alerting.labels},
        annotations=dict(s.alerting.annotations), source=source)


def load_slos(paths) -> list[Slo]:
    """Every SLO in the given files/folders, compiled; raises SpecError naming file, SLO and field."""
    from infersight.slo.spec import SpecError, load_file, spec_files

    out: list[Slo] = []
    errors: list[str] = []
    for f in spec_files(paths):
        try:
            for doc in load_file(f):
                out.append(compile_spec(doc, str(f)))
        except (SpecError, ValueError) as err:
            errors.append(str(err) if isinstance(err, SpecError) else f"{f}: {err}")
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        errors.append(f"duplicate SLO name(s): {dup}")
    if errors:
        raise SpecError("\n".join(errors))
    return out


def _num(f: Fraction) -> str:
    """Exact decimal text when finite, else the fraction."""
    n, d = f.numerator, f.denominator
    k = d
    for p in (2, 5):
        while k % p == 0:
            k //= p
    if k != 1:
        return f"{n}/{d}"
    digits = 0
    while (f * 10 ** digits).denominator != 1:
        digits += 1
    scaled = f * 10 ** digits
    text = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    out = text if digits == 0 else f"{text[:-digits]}.{text[-digits:]}"
    return ("-" if f < 0 else "") + out


def render_rules(slo: Slo) -> dict[str, Any]:
    """The generated alert rules for one SLO: plain data, stable for golden files and `slo validate`."""
    rules = []
    for t in slo.tiers:
        rules.append({
            "alert": slo.alertname,
            "tier": t.name,
            "severity": t.severity,
            "long_window": format_duration(t.long_s),
            "short_window": format_duration(t.short_s),
            "for": format_duration(t.for_s) if t.for_s else "0s",
            "factor": _num(t.factor),
            "budget_percent": _num(t.budget_percent) if t.budget_percent is not None else None,
            "error_rate_threshold": _num(t.factor * slo.budget),
            "expr": (f"burn_rate({format_duration(t.long_s)}) > {_num(t.factor)} and "
                     f"burn_rate({format_duration(t.short_s)}) > {_num(t.factor)}"
                     + (f" and events({format_duration(t.long_s)}) >= {slo.min_events}" if slo.min_events else "")),
        })
    if slo.budget_exhausted_alert:
        rules.append({"alert": "SLOErrorBudgetExhausted", "tier": "budget-exhausted", "severity": "ticket",
                      "expr": "budget_remaining <= 0"})
    if slo.no_data_alert:
        rules.append({"alert": "SLONoData", "tier": "no-data", "severity": "ticket",
                      "expr": f"events({format_duration(slo.no_data_after_s)}) == 0"})
    return {
        "slo": slo.name,
        "sli": slo.sli_kind,
        "objective": _num(slo.objective * 100),
        "error_budget": _num(slo.budget),
        "window": slo.window.describe(),
        "budgeting": slo.budgeting,
        "group_by": list(slo.group_by),
        "min_events": slo.min_events,
        "labels": dict(sorted(slo.labels.items())),
        "rules": rules,
    }
