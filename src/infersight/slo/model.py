"""The internal SLO model: exact fractions, windows in seconds, typed SLIs, burn-rate tiers as data.

Burn-rate factor = budget percent × period ÷ long window (SRE workbook, ch. 5). The catalogues are
data files (`slo/windows/google-{30d,28d,7d}.yaml`, Sloth's AlertWindows shape). `compile_spec` is
the one place that turns the user's pydantic spec into these dataclasses: nothing below the model
sees the spec, and every number here is a `Fraction`.
"""
from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import yaml

from infersight.cost.catalog import Rate
from infersight.slo import spec as sp
from infersight.slo.spec import SloDocument, SpecError, format_duration, load_file, parse_duration, spec_files

DAY = 86400
_WINDOWS = resources.files("infersight.slo") / "windows"
# The packaged burn-rate catalogues, by name (file stem).
CATALOGUES: tuple[str, ...] = tuple(sorted(f.name.removesuffix(".yaml") for f in _WINDOWS.iterdir()
                                           if f.name.endswith(".yaml")))


@dataclass(frozen=True)
class CatalogueTier:
    name: str
    severity: str
    budget_percent: Fraction
    long_s: int
    short_s: int


@dataclass(frozen=True)
class Catalogue:
    name: str
    period_s: int
    tiers: tuple[CatalogueTier, ...]


@cache
def load_catalogue(name: str) -> Catalogue:
    """A packaged AlertWindows file: `page`/`ticket` × `quick`/`slow` become tiers `page-fast`, …"""
    doc = yaml.safe_load((_WINDOWS / f"{name}.yaml").read_text())["spec"]
    tiers = tuple(CatalogueTier(f"{severity}-{'fast' if speed == 'quick' else 'slow'}", severity,
                                Fraction(str(w["errorBudgetPercent"])), parse_duration(w["longWindow"]),
                                parse_duration(w["shortWindow"]))
                  for severity in ("page", "ticket") for speed, w in doc[severity].items())
    return Catalogue(name, parse_duration(doc["sloPeriod"]), tiers)


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
class RatioSli:
    """Availability: bad ÷ total requests."""

    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "ratio"


@dataclass(frozen=True)
class LatencySli:
    """Requests at or under `threshold` seconds, from the `latency` histograms (e2e, ttft, tpot, queue)."""

    latency: str
    threshold: Fraction
    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "latency"


@dataclass(frozen=True)
class CostSli:
    """Spend against `budget` USD per period, or USD per 1M tokens against `target`."""

    metric: str  # spend_usd | usd_per_million_tokens
    prices: Mapping[str, Rate]  # by model name; "*" prices models not listed
    budget: Fraction | None = None
    target: Fraction | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "cost"

    def rate(self, model: str) -> Rate | None:
        return self.prices.get(model) or self.prices.get("*")

    def limit(self) -> Fraction:
        """`budget` for spend_usd, else `target`: the one the spec's validator required for this metric."""
        name, value = ("budget", self.budget) if self.metric == "spend_usd" else ("target", self.target)
        if value is None:
            raise ValueError(f"cost SLI {self.metric}: {name} is not set")
        return value


@dataclass(frozen=True)
class HealthSli:
    """Time slices in which every accelerator of the group (of `hw_type`, if set) is healthy."""

    hw_type: str | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "accelerator_health"


@dataclass(frozen=True)
class ProbeAvailabilitySli:
    """Probe availability: failed ÷ all probes of the probe collector (probe traffic only)."""

    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "probe_availability"


@dataclass(frozen=True)
class ProbeLatencySli:
    """Probes at or under `threshold` s of the probe's `latency` histogram; `failed_bad`: failures miss it."""

    latency: str  # ttft | e2e | tpot | time_to_headers
    threshold: Fraction
    failed_bad: bool = False
    filters: Mapping[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "probe_latency"


Sli = RatioSli | LatencySli | CostSli | HealthSli | ProbeAvailabilitySli | ProbeLatencySli


@dataclass(frozen=True)
class Slo:
    name: str
    description: str
    sli: Sli
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
    keep_firing_for_s: int | None = None  # None: the settings' default
    budget_min_coverage: Fraction | None = None  # None: the settings' default

    @property
    def sli_kind(self) -> str:
        return self.sli.kind

    @property
    def budget_is_absolute(self) -> bool:
        """A spend budget in USD is spent for good; event-weighted budgets are diluted by later events."""
        return isinstance(self.sli, CostSli) and self.sli.metric == "spend_usd"

    @property
    def unit(self) -> str:
        """The SLI's unit: `ratio` (good share), `USD` (spend) or `USD/1M tokens`."""
        if isinstance(self.sli, CostSli):
            return "USD" if self.sli.metric == "spend_usd" else "USD/1M tokens"
        return "ratio"

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


def catalogue_for(period_s: int, choice: str) -> Catalogue | None:
    """The named catalogue; `auto` picks the one whose period matches, else google-30d (factors rescaled)."""
    if choice == "none":
        return None
    if choice != "auto":
        return load_catalogue(choice)
    for name in CATALOGUES:
        if load_catalogue(name).period_s == period_s:
            return load_catalogue(name)
    return load_catalogue("google-30d")


def compile_sli(sli: sp.SliSpec) -> Sli:
    """The spec's SLI body as the model's typed SLI, every number a Fraction."""
    body = sli.body
    filters = dict(body.filters)
    if isinstance(body, sp.RatioSli):
        return RatioSli(filters)
    if isinstance(body, sp.LatencySli):
        return LatencySli(body.kind, _frac(body.threshold_seconds), filters)
    if isinstance(body, sp.CostSli):
        return CostSli(body.metric, dict(body.prices),
                       None if body.budget_usd is None else _frac(body.budget_usd),
                       None if body.target_usd_per_million_tokens is None
                       else _frac(body.target_usd_per_million_tokens), filters)
    if isinstance(body, sp.ProbeAvailabilitySli):
        return ProbeAvailabilitySli(filters)
    if isinstance(body, sp.ProbeLatencySli):
        return ProbeLatencySli(body.kind, _frac(body.threshold_seconds), body.failed_probes == "bad", filters)
    return HealthSli(body.hw_type, filters)


def _tiers(alerting: sp.AlertingSpec, period: int) -> list[Tier]:
    """The catalogue's tiers, then the user's."""
    tiers: list[Tier] = []
    cat = catalogue_for(period, alerting.catalogue)
    for c in cat.tiers if cat is not None else ():
        tiers.append(Tier(c.name, c.severity, burn_factor(c.budget_percent, period, c.long_s), c.long_s,
                          c.short_s, budget_percent=c.budget_percent))
    for t in alerting.tiers:
        lo = parse_duration(t.long_window)
        pct = _frac(t.budget_percent) if t.budget_percent is not None else None
        if t.factor is not None:
            factor = _frac(t.factor)
        elif pct is not None:
            factor = burn_factor(pct, period, lo)
        else:  # TierSpec's validator requires exactly one of the two
            raise ValueError(f"tier '{t.name}': exactly one of factor or budget_percent is required")
        tiers.append(Tier(t.name, t.severity, factor, lo, parse_duration(t.short_window),
                          parse_duration(t.for_) if t.for_ else 0, pct))
    return tiers


def _keep(text: str | None) -> int | None:
    if text is None:
        return None
    return 0 if text in ("0", "0s") else parse_duration(text)


def compile_spec(doc: SloDocument, source: str = "") -> Slo:
    """One validated spec document as the internal model; raises ValueError on duplicate tier names."""
    s = doc.spec
    w = Window(rolling_s=parse_duration(s.window.rolling) if s.window.rolling else None,
               calendar=s.window.calendar, time_zone=s.window.time_zone)
    tiers = _tiers(s.alerting, w.nominal_s())
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"slo '{doc.metadata.name}': duplicate tier names {names}")
    # Fastest burn first: that order drives inhibition of slower tiers.
    tiers.sort(key=lambda t: (-t.factor, t.long_s))
    no_data_after = (parse_duration(s.alerting.no_data_after) if s.alerting.no_data_after
                     else min((t.long_s for t in tiers), default=3600))
    return Slo(
        name=doc.metadata.name, description=s.description, sli=compile_sli(s.sli),
        objective=_frac(s.objective_percent) / 100, window=w, budgeting=s.budgeting,
        timeslice_target=_frac(s.timeslice.target_percent) / 100, group_by=tuple(s.group_by),
        min_events=s.min_events, tiers=tuple(tiers), alertname=s.alerting.name,
        budget_exhausted_alert=s.alerting.budget_exhausted, no_data_alert=s.alerting.no_data,
        no_data_after_s=no_data_after, labels={**doc.metadata.labels, **s.alerting.labels},
        annotations=dict(s.alerting.annotations), source=source,
        keep_firing_for_s=_keep(s.alerting.keep_firing_for),
        budget_min_coverage=(None if s.alerting.budget_exhausted_min_coverage_percent is None
                             else _frac(s.alerting.budget_exhausted_min_coverage_percent) / 100))


def load_slos(paths: Iterable[Path]) -> list[Slo]:
    """Every SLO in the given files/folders, compiled; raises SpecError naming file, SLO and field."""
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


def exact_text(f: Fraction) -> str:
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
            "factor": exact_text(t.factor),
            "budget_percent": exact_text(t.budget_percent) if t.budget_percent is not None else None,
            "error_rate_threshold": exact_text(t.factor * slo.budget),
            "expr": (f"burn_rate({format_duration(t.long_s)}) > {exact_text(t.factor)} and "
                     f"burn_rate({format_duration(t.short_s)}) > {exact_text(t.factor)}"
                     + (f" and events({format_duration(t.long_s)}) >= {slo.min_events}" if slo.min_events else "")),
        })
    if slo.budget_exhausted_alert:
        cov = "min_coverage" if slo.budget_min_coverage is None else exact_text(slo.budget_min_coverage)
        rules.append({"alert": "SLOErrorBudgetExhausted", "tier": "budget-exhausted", "severity": "ticket",
                      "expr": "budget_remaining <= 0" if slo.budget_is_absolute else
                      f"budget_remaining <= 0 and (observed_coverage >= {cov} or "
                      f"budget_consumed * observed_coverage >= 1)"})
    if slo.no_data_alert:
        rules.append({"alert": "SLONoData", "tier": "no-data", "severity": "ticket",
                      "expr": f"events({format_duration(slo.no_data_after_s)}) == 0 and "
                              f"(events(window) > 0 or watched >= no_data_grace)"})
    if slo.keep_firing_for_s is not None:
        for r in rules:
            r["keep_firing_for"] = format_duration(slo.keep_firing_for_s) if slo.keep_firing_for_s else "0s"
    return {
        "slo": slo.name,
        "sli": slo.sli_kind,
        "objective": exact_text(slo.objective * 100),
        "error_budget": exact_text(slo.budget),
        "window": slo.window.describe(),
        "budgeting": slo.budgeting,
        "group_by": list(slo.group_by),
        "min_events": slo.min_events,
        "labels": dict(sorted(slo.labels.items())),
        "rules": rules,
    }
