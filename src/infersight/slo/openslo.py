"""Import OpenSLO v1 documents (SLO, SLI, AlertPolicy, AlertCondition, AlertNotificationTarget).

What cannot be carried over (metric queries, notification targets) becomes a warning, never a guess
that silently changes meaning: OpenSLO's `m` is a minute (a month is `M`), so a calendar window of
`1m` is refused with a warning instead of being read as a month.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from infersight.slo.spec import format_duration, parse_duration

_OPENSLO_DURATION = re.compile(r"^(\d+)([smhdwMQY])$")


@dataclass
class ImportResult:
    documents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "objective"


def _dec(v: Any) -> Decimal:
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))


def _rolling(duration: str) -> str | None:
    m = _OPENSLO_DURATION.match(duration)
    if not m or m.group(2) in "MQY":
        return None
    return duration


def _flatten(docs: list[Any]) -> list[dict]:
    out: list[dict] = []
    for d in docs:
        if isinstance(d, list):
            out.extend(x for x in d if isinstance(x, dict))
        elif isinstance(d, dict):
            out.append(d)
    return out


def convert(docs: list[Any], source: str = "<openslo>") -> ImportResult:
    res = ImportResult()
    items = _flatten(docs)
    by_kind: dict[str, dict[str, dict]] = {}
    for d in items:
        if d.get("apiVersion") != "openslo/v1":
            res.warnings.append(f"{source}: skipped a document with apiVersion {d.get('apiVersion')!r} "
                                f"(only openslo/v1 is imported)")
            continue
        name = (d.get("metadata") or {}).get("name", "").strip()
        by_kind.setdefault(d.get("kind", ""), {})[name] = d
    for name, slo in by_kind.get("SLO", {}).items():
        res.documents.extend(_slo(name, slo, by_kind, source, res.warnings))
    if not by_kind.get("SLO"):
        res.warnings.append(f"{source}: no SLO documents found (kinds: {sorted(by_kind)})")
    return res


def _window(name: str, spec: dict, source: str, warn: list[str]) -> dict | None:
    windows = spec.get("timeWindow") or []
    if not windows:
        warn.append(f"{source}: SLO '{name}': no timeWindow; skipped")
        return None
    w = windows[0]
    duration = str(w.get("duration", ""))
    if w.get("isRolling", False):
        rolling = _rolling(duration)
        if rolling is None:
            warn.append(f"{source}: SLO '{name}': rolling window {duration!r} cannot be expressed in s/m/h/d/w; "
                        f"skipped")
            return None
        return {"rolling": rolling}
    cal = w.get("calendar") or {}
    tz = cal.get("timeZone", "UTC")
    if duration == "1w":
        kind = "week"
    elif duration == "1M":
        kind = "month"
    else:
        hint = (" OpenSLO durations use 'm' for minutes and 'M' for months, so this is a one-minute calendar "
                "window; if a month was meant, write '1M'.") if duration.endswith("m") else ""
        warn.append(f"{source}: SLO '{name}': calendar timeWindow duration {duration!r} is not a week (1w) or a "
                    f"month (1M); skipped.{hint}")
        return None
    if cal.get("startTime"):
        warn.append(f"{source}: SLO '{name}': calendar startTime '{cal['startTime']}' ignored: calendar windows "
                    f"start at the beginning of the {kind} in {tz}")
    return {"calendar": kind, "time_zone": tz}


def _indicator(name: str, spec: dict, by_kind: dict, source: str, warn: list[str], objective: dict) -> dict:
    ind = spec.get("indicator")
    if ind is None and spec.get("indicatorRef"):
        ind = by_kind.get("SLI", {}).get(spec["indicatorRef"])
        if ind is None:
            warn.append(f"{source}: SLO '{name}': indicatorRef {spec['indicatorRef']!r} not found; "
                        f"using an availability SLI")
    ispec = (ind or {}).get("spec") or {}
    if "thresholdMetric" in ispec and objective.get("value") is not None:
        value = _dec(objective["value"])
        warn.append(f"{source}: SLO '{name}': thresholdMetric value {value} has no unit; read as milliseconds "
                    f"({value / 1000} s) of end-to-end latency; its query is not translated")
        return {"latency": {"kind": "e2e", "threshold_seconds": float(value / 1000)}}
    warn.append(f"{source}: SLO '{name}': metric queries are not translated; the SLI reads the request "
                f"rollups (add filters to narrow it)")
    return {"ratio": {}}


def _tiers(name: str, spec: dict, by_kind: dict, source: str, warn: list[str]) -> list[dict]:
    tiers: list[dict] = []
    for pol in spec.get("alertPolicies") or []:
        if "alertPolicyRef" in pol:
            pol = by_kind.get("AlertPolicy", {}).get(pol["alertPolicyRef"], {})
        pspec = pol.get("spec") or {}
        for t in pspec.get("notificationTargets") or []:
            tname = t.get("targetRef") or (t.get("metadata") or {}).get("name")
            warn.append(f"{source}: SLO '{name}': notification target {tname!r} not imported; configure a "
                        f"receiver and route in slo.receivers/slo.route")
        for c in pspec.get("conditions") or []:
            if "conditionRef" in c:
                ref = c["conditionRef"]
                c = by_kind.get("AlertCondition", {}).get(ref)
                if c is None:
                    warn.append(f"{source}: SLO '{name}': conditionRef {ref!r} not found; skipped")
                    continue
            cname = (c.get("metadata") or {}).get("name", "condition")
            cspec = c.get("spec") or {}
            cond = cspec.get("condition") or {}
            if cond.get("kind") != "burnrate":
                warn.append(f"{source}: SLO '{name}': condition {cname!r} of kind {cond.get('kind')!r} skipped")
                continue
            if cond.get("op") not in ("gt", "gte"):
                warn.append(f"{source}: SLO '{name}': condition {cname!r} alerts when the burn rate is "
                            f"{cond.get('op')} {cond.get('threshold')}; only gt/gte burn-rate conditions make "
                            f"sense; skipped")
                continue
            long_w = _rolling(str(cond.get("lookbackWindow", "1h"))) or "1h"
            short_s = max(60, parse_duration(long_w) // 12)  # the workbook's 1:12 short window
            tier = {"name": cname, "severity": cspec.get("severity", "page"),
                    "factor": float(_dec(cond.get("threshold", 1))),
                    "long_window": long_w, "short_window": format_duration(short_s - short_s % 60)}
            if cond.get("alertAfter"):
                tier["for"] = _rolling(str(cond["alertAfter"])) or "0s"
            if tier["name"] not in {t["name"] for t in tiers}:
                tiers.append(tier)
    return tiers


def _slo(name: str, slo: dict, by_kind: dict, source: str, warn: list[str]) -> list[dict]:
    spec = slo.get("spec") or {}
    window = _window(name, spec, source, warn)
    if window is None:
        return []
    method = spec.get("budgetingMethod", "Occurrences")
    budgeting = "occurrences" if method == "Occurrences" else "timeslices"
    if method == "RatioTimeslices":
        warn.append(f"{source}: SLO '{name}': RatioTimeslices imported as timeslices (a slice is good when its "
                    f"own ratio reaches timeSliceTarget)")
    tiers = _tiers(name, spec, by_kind, source, warn)
    out = []
    objectives = spec.get("objectives") or []
    for i, obj in enumerate(objectives):
        target = obj.get("target")
        if target is None:
            warn.append(f"{source}: SLO '{name}': objective {i} has no target; skipped")
            continue
        oname = name if len(objectives) == 1 else f"{name}-{_slug(obj.get('displayName') or str(i))}"
        body: dict[str, Any] = {
            "description": (spec.get("description") or "").strip(),
            "sli": _indicator(name, spec, by_kind, source, warn, obj),
            "objective_percent": float(_dec(target) * 100),
            "window": window,
            "budgeting": budgeting,
        }
        if budgeting == "timeslices":
            if str(obj.get("timeSliceWindow", "1m")) != "1m":
                warn.append(f"{source}: SLO '{name}': timeSliceWindow {obj.get('timeSliceWindow')!r} replaced by "
                            f"1m (the rollups are per minute)")
            if obj.get("timeSliceTarget") is not None:
                body["timeslice"] = {"window": "1m", "target_percent": float(_dec(obj["timeSliceTarget"]) * 100)}
        if tiers:
            body["alerting"] = {"catalogue": "none", "tiers": tiers}
        labels = {"openslo_service": str(spec["service"])} if spec.get("service") else {}
        out.append({"apiVersion": "infersight/v1", "kind": "SLO",
                    "metadata": {"name": oname, **({"labels": labels} if labels else {})}, "spec": body})
    return out
