"""Spend from usage and prices, with exact arithmetic.

- API traffic: each span group is priced with its provider/model rate (tier by input size).
- Self-hosted serving: a node's cost is its uptime (minutes with inference scrapes / 60) times
  its capacity price; it is split over the host's model/tenant groups in proportion to their
  generated (output) tokens, or to requests where a host generated none (e.g. Triton vision
  models). A priced node without traffic is reported as an `(idle)` line, not dropped.
- Anything without a price (model, instance type, host without known uptime) is counted in the
  `unpriced_*` columns and listed by name; it never adds zero cost silently.

Amounts are `Fraction`s until formatting, so lines add up exactly to the totals.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

from infersight.cost.catalog import Catalog
from infersight.cost.usage import ApiUsage, NodeUptime, ServedUsage

DIMENSIONS = ("cloud", "region", "host", "kind", "model", "tenant")
IDLE = "(idle)"
MILLION = 1_000_000


@dataclass
class Line:
    key: tuple[str, ...]
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    api_usd: Fraction = Fraction(0)
    node_usd: Fraction = Fraction(0)
    node_hours: Fraction = Fraction(0)
    priced_api_requests: int = 0
    priced_tokens: int = 0
    priced_output_tokens: int = 0
    unpriced_requests: int = 0
    unpriced_tokens: int = 0
    unpriced_node_hours: Fraction = Fraction(0)
    unpriced: set[str] = field(default_factory=set)

    @property
    def spend_usd(self) -> Fraction:
        return self.api_usd + self.node_usd

    def add(self, other: Line) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "cached_tokens", "api_usd", "node_usd",
                     "node_hours", "priced_api_requests", "priced_tokens", "priced_output_tokens",
                     "unpriced_requests", "unpriced_tokens", "unpriced_node_hours"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unpriced |= other.unpriced

    def derived(self) -> dict[str, Fraction | None]:
        """Per-unit figures over priced volume only (unpriced volume would understate them)."""
        def ratio(num: Fraction, den: Fraction | int, scale: int = 1) -> Fraction | None:
            return None if not den else num * scale / den
        return {
            "usd_per_request": ratio(self.api_usd, self.priced_api_requests),
            "usd_per_million_tokens": ratio(self.spend_usd, self.priced_tokens, MILLION),
            "usd_per_million_output_tokens": ratio(self.spend_usd, self.priced_output_tokens, MILLION),
            "node_usd_per_hour": ratio(self.node_usd, self.node_hours),
        }


@dataclass
class Report:
    by: tuple[str, ...]
    lines: list[Line]
    total: Line


def derive(catalog: Catalog, api: Iterable[ApiUsage], served: Iterable[ServedUsage],
           nodes: Iterable[NodeUptime], by: Sequence[str] = ("cloud", "model"),
           default_capacity_type: str = "on_demand") -> Report:
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {', '.join(unknown)} (choose from {', '.join(DIMENSIONS)})")
    by = tuple(by)
    lines: dict[tuple[str, ...], Line] = {}

    def line(**dims: str) -> Line:
        key = tuple(dims[d] for d in by)
        return lines.setdefault(key, Line(key))

    for u in api:
        ln = line(cloud=u.cloud, region=u.region, host=u.host, kind=u.provider, model=u.model, tenant=u.tenant)
        _count(ln, u.requests, u.input_tokens, u.output_tokens, u.cached_tokens)
        rate = catalog.api_rate(u.provider, u.model, u.context_tokens)
        if rate is None:
            ln.unpriced_requests += u.requests
            ln.unpriced_tokens += u.input_tokens + u.output_tokens
            ln.unpriced.add(f"model {u.provider or '(no provider)'}/{u.model}")
        else:
            ln.api_usd += Fraction(rate.cost(u.input_tokens, u.output_tokens, u.cached_tokens))
            ln.priced_api_requests += u.requests
            ln.priced_tokens += u.input_tokens + u.output_tokens
            ln.priced_output_tokens += u.output_tokens

    served_by_host: dict[tuple[str, str, str], list[ServedUsage]] = defaultdict(list)
    for s in served:
        served_by_host[(s.cloud, s.region, s.host)].append(s)
    nodes_by_host: dict[tuple[str, str, str], list[NodeUptime]] = defaultdict(list)
    for n in nodes:
        nodes_by_host[(n.cloud, n.region, n.host)].append(n)

    for host_key in sorted(set(served_by_host) | set(nodes_by_host)):
        cloud, region, host = host_key
        cost, priced_hours, unpriced_hours, reasons = Fraction(0), Fraction(0), Fraction(0), set()
        for n in nodes_by_host.get(host_key, ()):
            hours = Fraction(n.minutes, 60)
            capacity = n.capacity_type or default_capacity_type
            price = catalog.capacity_price(n.cloud, n.region, n.host_type, capacity)
            if price is None:
                unpriced_hours += hours
                reasons.add(f"instance {n.cloud}/{n.region}/{n.host_type or '(unknown type)'} {capacity}")
            else:
                cost += hours * Fraction(price)
                priced_hours += hours
        if not nodes_by_host.get(host_key):
            reasons.add(f"host {cloud}/{region}/{host}: no node uptime")
        priced = priced_hours > 0 and unpriced_hours == 0
        rows = served_by_host.get(host_key, [])
        weights = [s.output_tokens for s in rows]
        if not sum(weights):
            weights = [s.requests for s in rows]
        total = sum(weights)
        for s, w in zip(rows, weights, strict=True):
            ln = line(cloud=cloud, region=region, host=host, kind=s.kind, model=s.model, tenant=s.tenant)
            _count(ln, s.requests, s.input_tokens, s.output_tokens, s.cached_tokens)
            share = Fraction(w, total) if total else Fraction(0)
            ln.node_usd += cost * share
            ln.node_hours += priced_hours * share
            ln.unpriced_node_hours += unpriced_hours * share
            if priced:
                ln.priced_tokens += s.input_tokens + s.output_tokens
                ln.priced_output_tokens += s.output_tokens
            else:
                ln.unpriced_requests += s.requests
                ln.unpriced_tokens += s.input_tokens + s.output_tokens
                ln.unpriced |= reasons
        if not total and nodes_by_host.get(host_key):
            ln = line(cloud=cloud, region=region, host=host, kind="", model=IDLE, tenant=IDLE)
            ln.node_usd += cost
            ln.node_hours += priced_hours
            ln.unpriced_node_hours += unpriced_hours
            ln.unpriced |= reasons

    ordered = [lines[k] for k in sorted(lines)]
    total_line = Line(("total",) * len(by))
    for ln in ordered:
        total_line.add(ln)
    return Report(by, ordered, total_line)


def _count(ln: Line, requests: int, input_tokens: int, output_tokens: int, cached_tokens: int) -> None:
    ln.requests += requests
    ln.input_tokens += input_tokens
    ln.output_tokens += output_tokens
    ln.cached_tokens += cached_tokens


def decimal_text(value: Fraction | None, places: int = 10) -> str | None:
    """A Fraction as fixed-point text, rounded half-even to `places` decimals."""
    if value is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 80
        d = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places),
                                                                              rounding=ROUND_HALF_EVEN)
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def as_dict(report: Report, ln: Line) -> dict[str, Any]:
    out: dict[str, Any] = dict(zip(report.by, ln.key, strict=True))
    out.update(requests=ln.requests, input_tokens=ln.input_tokens, output_tokens=ln.output_tokens,
               cached_tokens=ln.cached_tokens, spend_usd=decimal_text(ln.spend_usd),
               api_usd=decimal_text(ln.api_usd), node_usd=decimal_text(ln.node_usd),
               node_hours=decimal_text(ln.node_hours, 6))
    out.update({k: decimal_text(v) for k, v in ln.derived().items()})
    out.update(unpriced_requests=ln.unpriced_requests, unpriced_tokens=ln.unpriced_tokens,
               unpriced_node_hours=decimal_text(ln.unpriced_node_hours, 6), unpriced=sorted(ln.unpriced))
    return out
