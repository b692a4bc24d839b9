"""HTTP routes of the compare area (GET: the `read` scope when the server has tokens, gateway/auth.py).

- GET /api/v1/compare?model=M[&since=24h]: the compare document (`report.build`) over [end - since, end),
  end = the next whole minute; the server's price catalog, the SLO engine's last evaluation.
- GET /api/v1/routing?model=M: routing hints (`routing.hints`) over `compare.routing_window_seconds`, cached
  for `compare.hint_refresh_seconds` (`Cache-Control: max-age`, `X-Infersight-Hint-Age`).
- POST /api/v1/compare/reload (admin): re-read the price catalog files; SIGHUP does the same (and the SLO
  engine's spec reload).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from infersight.compare import report, routing
from infersight.compare.settings import CompareSettings
from infersight.cost.catalog import Catalog, CatalogError
from infersight.cost.report import build_catalog
from infersight.cost.usage import StoreSource
from infersight.reloads import on_reload
from infersight.storage.base import Storage, StorageError

log = logging.getLogger(__name__)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> int:
    """`90m`, `24h`, `7d` (or seconds) as seconds; ValueError naming the accepted forms."""
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if len(text) >= 2 and text[:-1].isdigit() and text[-1] in _UNITS and int(text[:-1]) > 0:
        return int(text[:-1]) * _UNITS[text[-1]]
    raise ValueError(f"invalid duration {text!r} (e.g. 90m, 24h, 7d)")


def window(now: float, since_seconds: int) -> tuple[int, int]:
    """[end - since, end) with end the next whole minute after `now` (the current minute counts)."""
    end = int(now) // 60 * 60 + 60
    return end - since_seconds, end


def slo_state(app: web.Application) -> report.SloState | None:
    """The SLO engine's last evaluation, its SLOs' filters and its alerts (None: no engine in this app)."""
    from infersight.slo.service import ENGINE
    from infersight.slo.views import instance_json

    engine = app.get(ENGINE)
    if engine is None:
        return None
    with engine.lock:
        results = list(engine.results)
        filters = {name: dict(s.sli.filters) for name, s in engine.slos.items()}
        evaluated_at = engine.evaluated_at
    return report.SloState([instance_json(r) for r in results], filters, engine.alerts_view(), evaluated_at)


class CatalogHolder:
    """The server's price catalog (cost.catalogs, cost.imports), re-read by `reload`."""

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg
        self.priced = bool(cfg.cost.catalogs or cfg.cost.imports)
        self.catalog: Catalog | None = build_catalog(cfg, []) if self.priced else None
        self.listeners: list[Callable[[], None]] = []

    def reload(self) -> str | None:
        """Re-read the files; on error keep the catalog in use and return the message."""
        if not self.priced:
            return None
        try:
            self.catalog = build_catalog(self._cfg, [])
        except CatalogError as err:
            log.error("price catalog reload failed, keeping the previous one: %s", err)
            return str(err)
        log.info("price catalog reloaded")
        for f in self.listeners:
            f()
        return None


CATALOG = web.AppKey("compare_catalog", CatalogHolder)
HINTS = web.AppKey("compare_hints", routing.HintCache)


def attach(app: web.Application, cfg: Any, storage: Storage, clock: Callable[[], float] = time.time,
           settings: CompareSettings | None = None) -> None:
    """Add the compare and routing routes; SIGHUP re-reads the price catalog."""
    from infersight.config import ConfigError

    settings = settings or getattr(cfg, "compare", None) or CompareSettings()
    try:
        holder = CatalogHolder(cfg)
    except CatalogError as err:
        raise ConfigError(f"cost: {err}") from None
    src = StoreSource(storage)
    default_capacity = cfg.cost.default_capacity_type

    def compute(model: str, since: int) -> dict[str, Any]:
        start, end = window(clock(), since)
        return report.build(src, model, start, end, holder.catalog, slo_state(app), default_capacity)

    async def compute_hints(model: str) -> dict[str, Any]:
        doc = await asyncio.to_thread(compute, model, settings.routing_window_seconds)
        return routing.hints(doc)

    cache = routing.HintCache(compute_hints, settings.hint_refresh_seconds)
    holder.listeners.append(cache.invalidate)
    app[CATALOG] = holder
    app[HINTS] = cache

    def _model(request: web.Request) -> str:
        model = request.query.get("model", "").strip()
        if not model:
            raise web.HTTPBadRequest(text='{"error": "model: required, e.g. ?model=llama-3.1-8b"}',
                                     content_type="application/json")
        return model

    async def compare(request: web.Request) -> web.Response:
        model = _model(request)
        try:
            since = parse_since(request.query.get("since", "24h"))
        except ValueError as err:
            return web.json_response({"error": f"since: {err}"}, status=400)
        if since > settings.max_since_seconds:
            return web.json_response({"error": f"since: at most {settings.max_since_seconds} seconds "
                                               "(compare.max_since_seconds)"}, status=400)
        try:
            doc = await asyncio.to_thread(compute, model, since)
        except StorageError as err:
            return web.json_response({"error": str(err)}, status=503, headers={"Retry-After": "5"})
        return web.json_response(doc, headers={"Cache-Control": "no-cache"})

    async def hints(request: web.Request) -> web.Response:
        model = _model(request)
        try:
            doc, age = await cache.get(model)
        except StorageError as err:
            return web.json_response({"error": str(err)}, status=503, headers={"Retry-After": "5"})
        left = max(0, math.ceil(cache.refresh_seconds - age))
        return web.json_response({**doc, "age_seconds": round(age, 3), "refresh_seconds": cache.refresh_seconds},
                                 headers={"Cache-Control": f"max-age={left}", "X-Infersight-Hint-Age": f"{age:.3f}"})

    async def reload_catalog(request: web.Request) -> web.Response:
        err = holder.reload()
        if err:
            return web.json_response({"error": err}, status=400)
        return web.json_response({"reloaded": holder.priced})

    app.router.add_get("/api/v1/compare", compare)
    app.router.add_get("/api/v1/routing", hints)
    app.router.add_post("/api/v1/compare/reload", reload_catalog)
    on_reload(app, "price catalog", holder.reload)
