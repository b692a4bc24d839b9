"""The SLO API's wire formats: JSON views of SLOs, instances, alerts and silences, and the time parameter.

Shared by the HTTP routes (`service.py`) and the offline CLI (`cli.py`), so both print the same
documents; the engine itself produces no JSON.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from infersight.slo.model import Slo, exact_text, render_rules
from infersight.slo.notifiers import rfc3339
from infersight.slo.records import AlertRecord, Silence
from infersight.slo.results import InstanceResult
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


def slo_json(s: Slo) -> dict:
    return {"source": s.source, **render_rules(s)}


def instance_json(r: InstanceResult) -> dict:
    s = r.slo
    return {
        "slo": s.name,
        "group": dict(r.group),
        "state": r.state,
        "error": r.error,
        "sli": _f(r.sli),
        "objective_percent": exact_text(s.objective * 100),
        "window": s.window.describe(),
        "events": _f(r.period.events) if r.period else None,
        "budget_remaining": _f(r.budget_remaining),
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
