"""The SLO API's wire formats: JSON views of SLOs, instances, alerts and silences, and the time parameter.

Shared by the HTTP routes (`service.py`) and the offline CLI (`cli/slo.py`), so both print the same
documents; the engine itself produces no JSON. The `format_*` helpers are the one way to show an
SLI, a budget and what is left of it as text (money as money, budgets far below zero readable).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from infersight.slo.model import CostSli, Slo, exact_text, render_rules
from infersight.slo.notifiers import rfc3339
from infersight.slo.records import AlertRecord, Silence
from infersight.slo.results import Coverage, InstanceResult
from infersight.slo.spec import format_duration


def parse_time(text: str) -> float:
    """RFC 3339 / ISO 8601 (naive means UTC) or Unix seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use RFC 3339 (2026-05-01T12:00:00Z) or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _f(x) -> float | None:
    return None if x is None else float(x)


def _money(x: float) -> str:
    """USD for reading: cents from $1 up, 4 significant digits below (the JSON keeps full precision)."""
    sign = "-" if x < 0 else ""
    x = abs(x)
    if x >= 1 or x == 0:
        return f"{sign}${x:,.2f}"
    return f"{sign}${x:.4g}" if x >= 0.0001 else f"{sign}${x:.2e}"


def budget_value(s: Slo) -> float:
    """The budget in the SLI's unit: USD per period, the USD/1M tokens target, or the error ratio allowed."""
    if isinstance(s.sli, CostSli):
        return float(s.sli.limit())
    return float(s.budget)


def format_sli(value: float | None, unit: str, budget: float | None = None) -> str:
    """An SLI as text in its unit: "$0.84 of $1.00 budget", "$2.31 per 1M tokens (target $2.00)", "99.871 %"."""
    if value is None:
        return "no data"
    if unit == "USD":
        return _money(value) + (f" of {_money(budget)} budget" if budget is not None else "")
    if unit == "USD/1M tokens":
        return f"{_money(value)} per 1M tokens" + (f" (target {_money(budget)})" if budget is not None else "")
    return f"{value * 100:.3f} %"


def format_budget_left(remaining: float | None) -> str:
    """Budget left as a signed percent of the budget; far below zero also as how many budgets were spent.

    1.0 -> "100.0 %", 0.25 -> "25.0 %", -0.5 -> "-50.0 %", -99 -> "-9,900 % (100× the budget spent)".
    """
    if remaining is None:
        return "-"
    pct = remaining * 100
    if remaining >= -1:
        return f"{pct:.1f} %"
    return f"{pct:,.0f} % ({1 - remaining:,.3g}× the budget spent)"


def coverage_json(c: Coverage | None, now: float) -> dict | None:
    """The budget window's data coverage: minutes with data of the window's minutes, first and last data."""
    if c is None:
        return None
    return {"window_minutes": c.window_minutes, "minutes_with_data": c.minutes_with_data,
            "fraction": float(c.fraction), "observed_fraction": float(c.observed_fraction(now)),
            "first_data_at": c.first_data_at, "last_data_at": c.last_data_at}


def slo_json(s: Slo) -> dict:
    return {"source": s.source, **render_rules(s)}


def instance_json(r: InstanceResult, now: float | None = None) -> dict:
    """One instance. `unit` is the SLI's ("ratio", "USD", "USD/1M tokens"); `budget` is in that unit
    (the allowed error ratio, USD per period, or the USD/1M-token target) with `spent` (bad events,
    or USD) and `consumed` (multiple of the budget, 1.0 = all of it); `budget_remaining` = 1 - consumed."""
    s = r.slo
    now = r.evaluated_at if now is None else now
    consumed = r.budget_consumed()
    budget = budget_value(s)
    return {
        "slo": s.name,
        "group": dict(r.group),
        "state": r.state,
        "error": r.error,
        "sli": _f(r.sli),
        "unit": s.unit,
        "sli_text": format_sli(_f(r.sli), s.unit, budget) if r.state != "error" else "-",
        "objective_percent": exact_text(s.objective * 100),
        "window": s.window.describe(),
        "events": _f(r.period.events) if r.period else None,
        "budget": {"value": budget, "unit": s.unit,
                   "spent": _f(r.period.consumed) if r.period else None, "consumed": _f(consumed)},
        "budget_remaining": _f(r.budget_remaining),
        "budget_left_text": format_budget_left(_f(r.budget_remaining)),
        "coverage": coverage_json(r.coverage, now),
        "burn_rates": {format_duration(w): _f(wr.burn_rate) for w, wr in sorted(r.windows.items())},
        "tiers": [{
            "name": t.tier.name, "severity": t.tier.severity, "factor": exact_text(t.tier.factor),
            "long_window": format_duration(t.tier.long_s), "short_window": format_duration(t.tier.short_s),
            "burn_rate_long": _f(t.long.burn_rate), "burn_rate_short": _f(t.short.burn_rate),
            "active": t.active, "low_traffic": t.low_traffic,
            "time_to_exhaustion_seconds": t.time_to_exhaustion_s,
        } for t in r.tiers],
    }


def alert_json(r: AlertRecord, is_silenced: bool = False, is_inhibited: bool = False) -> dict:
    return {"fingerprint": r.fingerprint, "state": r.state, "labels": r.labels, "annotations": r.annotations,
            "activeAt": rfc3339(r.active_at), "startsAt": rfc3339(r.starts_at),
            "endsAt": rfc3339(r.ends_at), "silenced": is_silenced, "inhibited": is_inhibited}


def silence_json(s: Silence, now: float) -> dict:
    return {"id": s.id, "matchers": s.matchers, "startsAt": rfc3339(s.starts_at), "endsAt": rfc3339(s.ends_at),
            "createdBy": s.created_by, "comment": s.comment, "status": {"state": s.state(now)}}


def alerts_json(states: Iterable[tuple[AlertRecord, bool, bool]]) -> list[dict]:
    """(record, silenced, inhibited) triples as `GET /api/v1/alerts` lists them."""
    return [alert_json(r, sil, inh) for r, sil, inh in states]


def slos_json(slos: Sequence[Slo], evaluated_at: float | None, results: Iterable[InstanceResult]) -> dict:
    """`GET /api/v1/slos`: the loaded SLOs with their rules, and the last evaluation's instances."""
    return {"evaluated_at": evaluated_at, "slos": [slo_json(s) for s in slos],
            "instances": [instance_json(r) for r in results]}
