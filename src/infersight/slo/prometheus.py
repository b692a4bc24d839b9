"""SLO state in Prometheus exposition, with Sloth's series names where Sloth has them.

Rendered from the engine's last evaluation (`SloEngine.results`), nothing recomputed: per SLO
instance (an SLO and one value of its `group_by` labels)
- `slo:sli_error:ratio_rate<window>`: the error ratio (bad / all events) over each window the
  engine evaluates (the tiers' long and short windows and the budget period), `sloth_window` label;
- `slo:objective:ratio`, `slo:error_budget:ratio` (1 - objective), `slo:time_period:days`;
- `slo:current_burn_rate:ratio` (the shortest window's burn rate), `slo:period_burn_rate:ratio`
  and `slo:period_error_budget_remaining:ratio` (1 - period burn rate, as the engine computes it);
- `infersight_slo_tier_burn_rate{tier,severity,window}` per tier and window (long, short),
  `infersight_slo_tier_active`, `infersight_slo_state{state}` and `infersight_slo_sli_events`.
Labels are Sloth's `sloth_id` (`<service>-<slo>`), `sloth_service` (the SLO's `service` label, else
`infersight`) and `sloth_slo`, plus the instance's group labels. Cost SLOs (unit USD) have no error
ratio: only their burn rates and budget series are exposed. Sloth's expressions divide by the budget;
where the budget allowance of a window is 0 the series is left out rather than +Inf.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infersight.slo.engine import SloEngine
from infersight.slo.results import InstanceResult
from infersight.slo.spec import format_duration

STATES = ("ok", "burning", "exhausted", "no_data", "error")
_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def _label_name(name: str) -> str:
    out = _LABEL.sub("_", name)
    return "_" + out if out[:1].isdigit() or out.startswith("__") or out.startswith("sloth_") else out


def sloth_labels(r: InstanceResult) -> dict[str, str]:
    service = r.slo.labels.get("service", "infersight")
    labels = {"sloth_id": f"{service}-{r.slo.name}", "sloth_service": service, "sloth_slo": r.slo.name}
    for k, v in r.group:
        labels.setdefault(_label_name(k), v)
    return labels


class _Families:
    """Metric families keyed by name, each with its label names fixed at the first sample."""

    def __init__(self) -> None:
        self.families: dict[str, tuple[GaugeMetricFamily, list[str]]] = {}
        self.help = {
            "slo:objective:ratio": "SLO objective (good share)",
            "slo:error_budget:ratio": "Error budget (1 - objective)",
            "slo:time_period:days": "SLO budget period in days",
            "slo:current_burn_rate:ratio": "Burn rate over the shortest evaluated window",
            "slo:period_burn_rate:ratio": "Burn rate over the budget period",
            "slo:period_error_budget_remaining:ratio": "Error budget remaining over the budget period",
            "infersight_slo_tier_burn_rate": "Burn rate of a tier's long or short window",
            "infersight_slo_tier_active": "1 when the tier's burn-rate condition holds",
            "infersight_slo_state": "1 for the instance's state",
            "infersight_slo_sli_events": "Events observed over the budget period",
        }

    def add(self, name: str, labels: dict[str, str], value: Fraction | float | None) -> None:
        if value is None:
            return
        entry = self.families.get(name)
        if entry is None:
            doc = self.help.get(name) or f"SLI error ratio over {name.rsplit('rate', 1)[-1]}"
            entry = self.families[name] = (GaugeMetricFamily(name, doc, labels=list(labels)), list(labels))
        family, names = entry
        for n in labels:
            if n not in names:  # an instance with other group labels: keep the family's label set
                names.append(n)
                family._labelnames = tuple(names)  # prometheus_client has no setter
        family.add_metric([labels.get(n, "") for n in names], float(value))


def families(results: Iterable[InstanceResult]) -> list[Metric]:
    out = _Families()
    for r in results:
        s = r.slo
        base = sloth_labels(r)
        out.add("slo:objective:ratio", base, s.objective)
        out.add("slo:error_budget:ratio", base, s.budget)
        plen = int(s.window.bounds(r.evaluated_at)[1])
        out.add("slo:time_period:days", base, Fraction(plen, 86400))
        for state in STATES:
            out.add("infersight_slo_state", {**base, "state": state}, int(r.state == state))
        if r.state == "error":
            continue
        ratio = s.unit == "ratio"
        windows = dict(r.windows)
        if r.period is not None:
            windows.setdefault(plen, r.period)
        for seconds, w in sorted(windows.items()):
            if ratio and w.events:
                window = format_duration(seconds)
                out.add(f"slo:sli_error:ratio_rate{window}", {**base, "sloth_window": window}, w.consumed / w.events)
        if r.windows:
            out.add("slo:current_burn_rate:ratio", base, r.windows[min(r.windows)].burn_rate)
        if r.period is not None:
            out.add("infersight_slo_sli_events", base, r.period.events)
            burn = r.period.burn_rate
            out.add("slo:period_burn_rate:ratio", base, burn)
            out.add("slo:period_error_budget_remaining:ratio", base, r.budget_remaining)
        for t in r.tiers:
            tier = {**base, "tier": t.tier.name, "severity": t.tier.severity}
            out.add("infersight_slo_tier_active", tier, int(t.active))
            for kind, w in (("long", t.long), ("short", t.short)):
                out.add("infersight_slo_tier_burn_rate",
                        {**tier, "window": kind, "sloth_window": format_duration(w.seconds)}, w.burn_rate)
    return [f for f, _ in out.families.values()]


class SloStateCollector(Collector):
    """A prometheus_client collector over the engine's latest results (taken under its lock)."""

    def __init__(self, engine: Callable[[], SloEngine | None]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine()
        if engine is None:
            return iter(())
        with engine.lock:
            results = list(engine.results)
        return iter(families(results))


def attach(app: web.Application, engine_key: web.AppKey) -> None:
    """GET /metrics/slo: the SLO series alone (read scope when tokens are configured)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SloStateCollector(lambda: app.get(engine_key)))

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})

    app.router.add_get("/metrics/slo", handler)
