"""Routing hints: per deployment of a model, whether it meets its SLOs now, the fastest burning tier, budget
left, $/1M tokens and a suggested weight, ranked (docs/routing.md states the rules).

Ranking, best first:
1. class: `meets` (no SLO instance burning or exhausted, no page firing), then `burning` (a tier active, budget
   left, no page), then `avoid` (budget exhausted or a page firing). A deployment without SLO instances meets
   its SLOs (it has none to miss) and says so with `slos: 0`.
2. within a class, the cheaper $/1M tokens first (unpriced after priced): ties go to the cheaper one;
3. then more budget left, then the key.

The first deployment gets weight 1, the others 0; `eligible` marks every deployment of the best class, for a
router that spreads traffic over all good deployments. So a deployment with an exhausted budget or a firing
page is never preferred while another meets its SLOs, and there is always a deployment to send traffic to.

`HintCache` computes hints from the compare report (`report.build`) and keeps each model's for
`refresh_seconds`; concurrent polls share one computation.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

CLASSES = ("meets", "burning", "avoid")


def _price(d: Mapping[str, Any]) -> Decimal | None:
    text = (d.get("cost") or {}).get("usd_per_million_tokens")
    return None if text is None else Decimal(text)


def classify(d: Mapping[str, Any]) -> str:
    slo = d.get("slo") or {}
    if slo.get("exhausted") or slo.get("page_firing"):
        return "avoid"
    if slo and not slo.get("meets", True):
        return "burning"
    return "meets"


def hints(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The routing document of one compare document."""
    rows = []
    for d in doc["deployments"]:
        slo = d.get("slo") or {}
        cls = classify(d)
        price = _price(d)
        budget = slo.get("budget_remaining")
        rows.append(({"key": d["key"], "cloud": d["cloud"], "region": d["region"], "kind": d["kind"],
                      "hosting": d["hosting"], "meets_slos": cls == "meets", "class": cls,
                      "budget_exhausted": bool(slo.get("exhausted")), "page_firing": bool(slo.get("page_firing")),
                      "fastest_burning_tier": slo.get("fastest_burning_tier"), "budget_remaining": budget,
                      "slos": len(slo.get("instances") or ()),
                      "usd_per_million_tokens": None if price is None else (d.get("cost") or {})
                      .get("usd_per_million_tokens"),
                      "pricing": (d.get("cost") or {}).get("pricing"),
                      "requests": d["requests"], "error_ratio": d["error_ratio"]},
                     (CLASSES.index(cls), price is None, price if price is not None else Decimal(0),
                      -(budget if budget is not None else math.inf), d["key"])))
    rows.sort(key=lambda r: r[1])
    best = rows[0][1][0] if rows else None
    out = []
    for rank, (h, k) in enumerate(rows, 1):
        out.append({**h, "rank": rank, "eligible": k[0] == best, "weight": 1.0 if rank == 1 else 0.0})
    return {"model": doc["model"], "slo_evaluated_at": doc.get("slo_evaluated_at"), "catalog": doc.get("catalog"),
            "price_window_seconds": doc.get("since_seconds"), "deployments": out}


class HintCache:
    """Hints per model, recomputed when older than `refresh_seconds` (or after `invalidate`, e.g. a catalog
    reload); one computation at a time per model, the others await it."""

    def __init__(self, compute: Callable[[str], Awaitable[dict[str, Any]]], refresh_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._compute = compute
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._running: dict[str, asyncio.Future] = {}
        self.computations = 0

    def invalidate(self) -> None:
        self._entries.clear()

    async def get(self, model: str) -> tuple[dict[str, Any], float]:
        """(hints, age in seconds)."""
        now = self._clock()
        hit = self._entries.get(model)
        if hit is not None and now - hit[0] < self.refresh_seconds:
            return hit[1], now - hit[0]
        fut = self._running.get(model)
        if fut is None:
            fut = asyncio.ensure_future(self._fill(model))
            self._running[model] = fut
        doc = await asyncio.shield(fut)
        return doc, self._clock() - self._entries[model][0] if model in self._entries else 0.0

    async def _fill(self, model: str) -> dict[str, Any]:
        try:
            started = self._clock()
            doc = await self._compute(model)
            self.computations += 1
            self._entries[model] = (started, doc)
            return doc
        finally:
            self._running.pop(model, None)


def weights(doc: Mapping[str, Any]) -> dict[str, float]:
    """key -> suggested weight of a routing document."""
    return {d["key"]: d["weight"] for d in doc["deployments"]}


def keys_in_order(doc: Mapping[str, Any]) -> Sequence[str]:
    return [d["key"] for d in doc["deployments"]]
