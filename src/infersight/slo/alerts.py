"""Alert lifecycle (pending → firing → resolved), routing, grouping, silences and inhibition.

Semantics follow Alertmanager: fingerprints are its FNV-64a label hash, groups flush after
`group_wait`, changes go out after `group_interval`, unchanged firing groups repeat after
`repeat_interval`, and muted (silenced or inhibited) alerts are left out of notifications.

`AlertPolicy` holds the rules that keep alerts honest (docs/slo.md, "When alerts fire"): a no-data
alert needs data that was lost (or a grace period of watching), a budget alert needs a window that
holds enough data, and a firing alert keeps firing `keep_firing_for` after its condition last held.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypedDict

from infersight.slo.model import Slo, exact_text
from infersight.slo.records import AlertRecord, Notification, Silence
from infersight.slo.results import InstanceResult
from infersight.slo.settings import RouteSettings, SloSettings
from infersight.slo.spec import format_duration

BUDGET_EXHAUSTED = "SLOErrorBudgetExhausted"
NO_DATA = "SLONoData"


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's (prometheus/common model.LabelSet) fingerprint: FNV-64a over sorted name/value pairs."""
    h = 0xCBF29CE484222325
    for k in sorted(labels):
        for b in k.encode() + b"\xff" + labels[k].encode() + b"\xff":
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def label_name(attr: str) -> str:
    """`cloud.provider` → `cloud_provider`: Alertmanager 0.25 accepts only [a-zA-Z_][a-zA-Z0-9_]*."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", attr)
    return name if not name[:1].isdigit() else "_" + name


def _rate(x: Fraction | None) -> str:
    return "n/a" if x is None else f"{float(x):.4g}"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v) or "0s"


@dataclass(frozen=True)
class AlertPolicy:
    """Server-wide defaults of the alert rules; an SLO's own alerting settings win."""

    keep_firing_for_s: float = 0.0
    no_data_grace_s: float | None = None  # None: the SLO's no_data_after
    budget_min_coverage: Fraction = Fraction(1, 2)

    @classmethod
    def from_settings(cls, settings: SloSettings) -> AlertPolicy:
        return cls(settings.keep_firing_for_seconds, settings.no_data_grace_seconds,
                   Fraction(str(settings.budget_exhausted_min_coverage_percent)) / 100)

    def keep_for(self, slo: Slo | None) -> float:
        if slo is not None and slo.keep_firing_for_s is not None:
            return float(slo.keep_firing_for_s)
        return self.keep_firing_for_s

    def grace(self, slo: Slo) -> float:
        return float(slo.no_data_after_s) if self.no_data_grace_s is None else self.no_data_grace_s

    def min_coverage(self, slo: Slo) -> Fraction:
        return self.budget_min_coverage if slo.budget_min_coverage is None else slo.budget_min_coverage

    def no_data_means_it(self, r: InstanceResult, watched_since: float | None, now: float) -> bool:
        """Data in the budget window that stopped, or no data at all after `grace` of watching."""
        if r.period is not None and r.period.events > 0:
            return True
        return watched_since is not None and now - watched_since >= self.grace(r.slo)

    def budget_alert_means_it(self, r: InstanceResult, now: float) -> bool:
        """An exhausted budget alerts once the window holds enough data to mean it.

        A USD spend budget is spent for good. An event-weighted budget is diluted by the events still
        to come, so it alerts when the share `f` of the window since its first data reaches the
        minimum coverage, or when consumed × f >= 1: even a perfect rest of the window at the same
        traffic could not bring the budget back.
        """
        if r.slo.budget_is_absolute or r.coverage is None:
            return True
        f = r.coverage.observed_fraction(now)
        consumed = r.budget_consumed()
        return f >= self.min_coverage(r.slo) or (consumed is not None and consumed * f >= 1)


@dataclass
class Desired:
    labels: dict[str, str]
    annotations: dict[str, str]
    for_s: int = 0


def desired_alerts(results: Iterable[InstanceResult], policy: AlertPolicy | None = None,
                   watched_since: Mapping[str, float] | None = None, now: float | None = None,
                   tracked: Container[str] = ()) -> tuple[dict[str, Desired], set[str]]:
    """Alerts whose condition holds now, and the SLOs evaluated without error (others keep their state).

    `policy` gates the no-data and budget alerts (by SLO: `watched_since` its first evaluation by this
    engine); an alert already `tracked` (pending or firing) is not held back by a gate, so a restart
    never resolves what is still true.
    """
    policy = policy or AlertPolicy()
    watched = watched_since or {}
    out: dict[str, Desired] = {}
    ok_slos: set[str] = set()
    errored: set[str] = set()
    for r in results:
        s = r.slo
        if r.state == "error":
            errored.add(s.name)
            continue
        ok_slos.add(s.name)
        base = {**{label_name(k): v for k, v in s.labels.items()}, "slo": s.name,
                **{label_name(a): v for a, v in r.group}}
        remaining = "n/a" if r.budget_remaining is None else f"{float(r.budget_remaining) * 100:.2f}%"
        group_text = ", ".join(f"{a}={v}" for a, v in r.group) or "all"
        for t in r.tiers:
            if not t.active:
                continue
            labels = {**base, "alertname": s.alertname, "tier": t.tier.name, "severity": t.tier.severity,
                      "long_window": format_duration(t.tier.long_s), "short_window": format_duration(t.tier.short_s),
                      "burn_rate_threshold": exact_text(t.tier.factor)}
            ann = {
                "summary": f"SLO {s.name} ({group_text}) is burning its error budget {_rate(t.long.burn_rate)}× "
                           f"too fast ({t.tier.name})",
                "description": s.description,
                "burn_rate_long": _rate(t.long.burn_rate),
                "burn_rate_short": _rate(t.short.burn_rate),
                "burn_rate_threshold": exact_text(t.tier.factor),
                "time_to_exhaustion": _dur(t.time_to_exhaustion_s),
                "time_to_exhaustion_seconds": "n/a" if t.time_to_exhaustion_s is None
                else str(int(t.time_to_exhaustion_s)),
                "budget_remaining": remaining,
                **s.annotations,
            }
            fp = fingerprint(labels)
            out[fp] = Desired(labels, ann, t.tier.for_s)
        if s.budget_exhausted_alert and r.state == "exhausted":
            labels = {**base, "alertname": BUDGET_EXHAUSTED, "tier": "budget-exhausted", "severity": "ticket"}
            fp = fingerprint(labels)
            at = r.evaluated_at if now is None else now
            if fp not in tracked and not policy.budget_alert_means_it(r, at):
                continue
            out[fp] = Desired(labels, {
                "summary": f"SLO {s.name} ({group_text}) has exhausted its error budget",
                "budget_remaining": remaining, **s.annotations})
        if s.no_data_alert and r.state == "no_data":
            labels = {**base, "alertname": NO_DATA, "tier": "no-data", "severity": "ticket"}
            fp = fingerprint(labels)
            at = r.evaluated_at if now is None else now
            if fp not in tracked and not policy.no_data_means_it(r, watched.get(s.name), at):
                continue
            out[fp] = Desired(labels, {
                "summary": f"SLO {s.name} ({group_text}) has no data for "
                           f"{format_duration(s.no_data_after_s)}", **s.annotations})
    return out, ok_slos - errored


class AlertTracker:
    """Alert states by fingerprint; `update` applies one evaluation and returns the state transitions."""

    def __init__(self, records: Iterable[AlertRecord] = ()) -> None:
        self.alerts: dict[str, AlertRecord] = {r.fingerprint: r for r in records}
        # When each alert's condition last held (memory only: after a restart, from its start).
        self.last_held: dict[str, float] = {}

    def update(self, desired: dict[str, Desired], evaluated_slos: set[str], now: float,
               keep_for: Callable[[AlertRecord], float] = lambda rec: 0.0
               ) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """Apply one evaluation. A firing alert whose condition no longer holds keeps firing until
        `keep_for(rec)` after it last held (its `ends_at` meanwhile says when it will resolve)."""
        changed: list[AlertRecord] = []
        deleted: list[AlertRecord] = []
        for fp, rec in list(self.alerts.items()):
            if rec.labels.get("slo") not in evaluated_slos:
                continue  # its SLO failed to evaluate (or was removed): keep the state untouched
            d = desired.get(fp)
            if d is None:
                if rec.state == "pending":
                    deleted.append(self.alerts.pop(fp))
                    self.last_held.pop(fp, None)
                elif rec.state == "firing":
                    ends_at = rec.ends_at
                    first = ends_at is None
                    if ends_at is None:  # the condition just stopped holding
                        held = self.last_held.get(fp, rec.starts_at or rec.active_at)
                        ends_at = rec.ends_at = held + keep_for(rec)
                    if now >= ends_at:
                        rec.state, rec.ends_at = "resolved", now
                        self.last_held.pop(fp, None)
                        changed.append(rec)
                    elif first:
                        changed.append(rec)  # stored: a restart keeps the resolve time
                continue
            self.last_held[fp] = now
            rec.annotations = d.annotations  # observed burn rates: refreshed in memory, stored on transitions
            before = rec.state
            if rec.state == "firing" and rec.ends_at is not None:  # held again within keep_firing_for
                rec.ends_at = None
                changed.append(rec)
            if rec.state == "resolved":  # fires again: a new incident
                rec.state, rec.active_at, rec.starts_at, rec.ends_at = "pending", now, None, None
            if rec.state == "pending" and now - rec.active_at >= d.for_s:
                rec.state, rec.starts_at = "firing", now
            if rec.state != before:
                changed.append(rec)
        for fp, d in desired.items():
            if fp in self.alerts:
                continue
            rec = AlertRecord(fp, d.labels, d.annotations, "pending", now)
            self.last_held[fp] = now
            if d.for_s <= 0:
                rec.state, rec.starts_at = "firing", now
            self.alerts[fp] = rec
            changed.append(rec)
        return changed, deleted

    def inhibited(self, slos: dict[str, Slo], silenced: set[str]) -> set[str]:
        """Slower tiers of an SLO instance while a faster tier of the same instance fires (unsilenced)."""
        rank = {name: {t.name: i for i, t in enumerate(s.tiers)} for name, s in slos.items()}
        fastest: dict[tuple, int] = {}

        def instance(rec: AlertRecord) -> tuple:
            return tuple(sorted((k, v) for k, v in rec.labels.items()
                                if k not in ("alertname", "tier", "severity", "long_window", "short_window",
                                             "burn_rate_threshold")))

        for fp, rec in self.alerts.items():
            r = rank.get(rec.labels.get("slo", ""), {}).get(rec.labels.get("tier", ""))
            if rec.state == "firing" and r is not None and fp not in silenced:
                key = instance(rec)
                fastest[key] = min(fastest.get(key, r), r)
        out = set()
        for fp, rec in self.alerts.items():
            r = rank.get(rec.labels.get("slo", ""), {}).get(rec.labels.get("tier", ""))
            if r is not None and fastest.get(instance(rec), r) < r:
                out.add(fp)
        return out


@dataclass(frozen=True)
class Route:
    """A routing node with inherited settings resolved."""

    key: str
    receiver: str
    match: tuple[tuple[str, str], ...]
    match_re: tuple[tuple[str, re.Pattern], ...]
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    cont: bool
    children: tuple[Route, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match)
                and all(p.fullmatch(labels.get(k, "")) for k, p in self.match_re))


class _Inherited(TypedDict):
    """The settings a route passes down to its children (Route's fields of the same names)."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float


def build_routes(settings: SloSettings) -> Route | None:
    root = settings.route
    default_receiver = root.receiver or (settings.receivers[0].name if settings.receivers else None)
    if default_receiver is None:
        return None

    def build(node: RouteSettings, parent: _Inherited, key: str) -> Route:
        vals: _Inherited = {
            "receiver": node.receiver or parent["receiver"],
            "group_by": node.group_by if node.group_by is not None else parent["group_by"],
            "group_wait": _pick(node.group_wait_seconds, parent["group_wait"]),
            "group_interval": _pick(node.group_interval_seconds, parent["group_interval"]),
            "repeat_interval": _pick(node.repeat_interval_seconds, parent["repeat_interval"]),
        }
        kids = []
        for i, child in enumerate(node.routes):
            m = ",".join([f'{k}="{v}"' for k, v in sorted(child.match.items())]
                         + [f'{k}=~"{v}"' for k, v in sorted(child.match_re.items())])
            twin = any(c.match == child.match and c.match_re == child.match_re for c in node.routes[:i])
            kids.append(build(child, vals, f"{key}/{{{m}}}" + (f"/{i}" if twin else "")))
        return Route(key=key, match=tuple(sorted(node.match.items())),
                     match_re=tuple((k, re.compile(v)) for k, v in sorted(node.match_re.items())),
                     cont=node.continue_, children=tuple(kids), **vals)

    return build(root, {"receiver": default_receiver, "group_by": ("alertname", "slo"), "group_wait": 30.0,
                        "group_interval": 300.0, "repeat_interval": 4 * 3600.0}, "{}")


def _pick(value: float | None, inherited: float) -> float:
    return inherited if value is None else value


def routes_for(route: Route, labels: dict[str, str]) -> list[Route]:
    """Depth-first like Alertmanager: the deepest matching routes; siblings only after `continue`."""
    if not route.matches(labels):
        return []
    out: list[Route] = []
    for child in route.children:
        got = routes_for(child, labels)
        if got:
            out.extend(got)
            if not child.cont:
                break
    return out or [route]


def group_key(route: Route, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    gl = {k: labels[k] for k in route.group_by if k in labels}
    inner = ",".join(f'{k}="{gl[k]}"' for k in sorted(gl))
    return f"{route.key}:{{{inner}}}", gl


@dataclass
class GroupState:
    key: str
    receiver: str
    notified_firing: set[str] = field(default_factory=set)
    last_notify_at: float | None = None


@dataclass
class Flush:
    """A notification to render: the group's firing and newly resolved alerts."""

    group_key: str
    receiver: str
    group_labels: dict[str, str]
    firing: list[AlertRecord]
    resolved: list[AlertRecord]


class Dispatcher:
    def __init__(self, settings: SloSettings, last: dict[str, Notification] | None = None) -> None:
        self.configure(settings)
        self.groups: dict[str, GroupState] = {}
        for key, n in (last or {}).items():
            self.groups[key] = GroupState(key, n.receiver, set(n.firing), n.created_at)

    def configure(self, settings: SloSettings) -> None:
        self.root = build_routes(settings)
        self.resend = {r.name: r.resend_interval_seconds for r in settings.receivers if r.type == "alertmanager"}

    def tick(self, alerts: dict[str, AlertRecord], muted: set[str], now: float) -> list[Flush]:
        if self.root is None:
            return []
        members: dict[str, tuple[Route, dict[str, str], list[AlertRecord]]] = {}
        for _fp, rec in sorted(alerts.items()):
            if rec.state == "pending":
                continue
            for route in routes_for(self.root, rec.labels):
                key, gl = group_key(route, rec.labels)
                members.setdefault(key, (route, gl, []))[2].append(rec)
        flushes = []
        for key, (route, gl, recs) in members.items():
            gs = self.groups.get(key) or GroupState(key, route.receiver)
            firing = [r for r in recs if r.state == "firing" and r.fingerprint not in muted]
            fset = {r.fingerprint for r in firing}
            resolved = [r for r in recs if r.fingerprint in gs.notified_firing and r.fingerprint not in fset
                        and r.state == "resolved"]
            repeat = min(route.repeat_interval, self.resend.get(route.receiver, route.repeat_interval))
            due = False
            if not gs.notified_firing:
                if firing:
                    first = min(r.starts_at or r.active_at for r in firing)
                    due = now >= first + route.group_wait
            else:  # changed after group_interval, or unchanged and firing after the repeat interval
                last = gs.last_notify_at or 0
                changed = fset != gs.notified_firing and now >= last + route.group_interval
                due = changed or (bool(fset) and now >= last + repeat)
            if not due:
                continue
            if firing or resolved:  # everything muted: nothing to say, the group just forgets
                flushes.append(Flush(key, route.receiver, gl, firing, resolved))
            gs.notified_firing, gs.last_notify_at = fset, now
            self.groups[key] = gs
        # Groups whose alerts all vanished (e.g. silenced then deleted) forget what they sent.
        for key in list(self.groups):
            if key not in members:
                self.groups[key].notified_firing = set()
        return flushes

    def still_needed(self, fp: str) -> bool:
        """A resolved alert is kept until no group still owes its receiver the resolve."""
        return any(fp in g.notified_firing for g in self.groups.values())


def silenced(alerts: dict[str, AlertRecord], silences: Iterable[Silence], now: float) -> set[str]:
    active = [s for s in silences if s.active(now)]
    return {fp for fp, r in alerts.items() if any(s.matches(r.labels) for s in active)}
