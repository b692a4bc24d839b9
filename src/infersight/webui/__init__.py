"""Built-in web UI: a static single-page app that reads the query, SLO and alert APIs from the browser.

The page is static (no build step, ES modules under `static/`, uPlot vendored under `static/vendor/`);
`attach` serves it and three small JSON documents the page cannot get from the public APIs:
`/ui/meta.json` (which database and rollup columns this server has, so the same page works on every
deployment), `/ui/cost.json` (the cost module's report over the last hours, for each grouping asked,
the usage read once),
`/ui/percentiles.json` (latency percentiles per group by `infersight.quantiles`, the one implementation:
`webui.percentiles`) and `/ui/slo_history.json` (one SLO evaluated by the engine at instants over its
window: the burn-down and the burn rate per tier over time; the same evaluation as `slo status --at`,
from one query per batch: `webui.history`; and its live instances as `slo status` lists them).
"""
from __future__ import annotations

import asyncio
import math
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from infersight.config import ConfigError
from infersight.gateway.auth import allow_public
from infersight.storage.base import QueryError, Storage, StorageError

STATIC = Path(str(files("infersight.webui").joinpath("static")))
# What a browser must load without a bearer token (page and assets); the page asks for the token
# and sends it with every API call, /ui/meta.json included.
OPEN_PATHS = ("/", "/ui", "/ui/")
OPEN_PREFIXES = ("/ui/static/",)
MAX_COST_HOURS = 24 * 31
COST_DIMENSIONS = ("cloud", "region", "host", "kind", "model", "tenant")
MAX_HISTORY_POINTS = 120
MAX_COST_GROUPINGS = 3
# Set by the demo (`demo.sink.SinkView`): the path of what its webhook sink received, shown by the Alerts view.
DEMO_SINK: web.AppKey[str] = web.AppKey("demo_sink", str)


def assets() -> dict[str, Path]:
    """Every file shipped under static/ (index.html aside) by its path relative to it, e.g. 'vendor/uPlot.min.css'."""
    return {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*")
            if p.is_file() and p.name != "index.html" and not p.name.startswith(".")}


def history_instants(now: float, period_seconds: float, points: int) -> list[int]:
    """`points` minute-aligned instants from `period_seconds` ago to the last whole minute, oldest first."""
    end = int(now) // 60 * 60
    start = end - int(period_seconds) // 60 * 60
    step = max(60, (end - start) // max(points - 1, 1) // 60 * 60)
    out = list(range(end, start - 1, -step))[:points]
    return sorted(out)


def _error(msg: str, status: int = 400, **headers: str) -> web.Response:
    return web.json_response({"error": msg}, status=status, headers=headers or None)


def attach(app: web.Application, cfg: Any, storage: Storage) -> None:
    """Serve the UI at `/ui/` (`/` and `/ui` redirect there); `cfg` is the server's Config."""
    from infersight.cost.catalog import CatalogError
    from infersight.cost.derive import as_dict
    from infersight.cost.report import build_catalog, build_reports
    from infersight.cost.usage import StoreSource

    priced = bool(cfg.cost.catalogs or cfg.cost.imports)
    try:
        catalog = build_catalog(cfg, []) if priced else None
    except CatalogError as err:
        raise ConfigError(f"cost: {err}") from None

    async def root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def meta(request: web.Request) -> web.Response:
        db = storage.database.replace("'", "''")
        sql = (f"SELECT table, name FROM system.columns WHERE database = '{db}' "
               "AND table IN ('infersight_requests_1m', 'infersight_latency_1m') ORDER BY table, position")
        try:
            rows = await asyncio.get_running_loop().run_in_executor(None, storage.query, sql)
        except StorageError as err:
            return _error(str(err), 503, **{"Retry-After": "5"})
        from infersight.slo.service import ENGINE

        return web.json_response({
            "database": storage.database, "priced": priced, "slo_engine": request.app.get(ENGINE) is not None,
            "demo_sink": request.app.get(DEMO_SINK),
            "request_columns": [r["name"] for r in rows if r["table"] == "infersight_requests_1m"],
            "latency_columns": [r["name"] for r in rows if r["table"] == "infersight_latency_1m"],
            "now": time.time()}, headers={"Cache-Control": "no-cache"})

    async def cost(request: web.Request) -> web.Response:
        """Spend and $/1M tokens per group over the last `hours`, from the price catalogs (`cost report`)."""
        text = request.query.get("hours", "1")
        if not text.isdigit() or not 1 <= int(text) <= MAX_COST_HOURS:
            return _error(f"hours: an integer from 1 to {MAX_COST_HOURS}")
        asked = request.query.get("by", "cloud,region,model")
        groupings = [tuple(d for d in g.split(",") if d) for g in asked.split(";")]
        unknown = [d for by in groupings for d in by if d not in COST_DIMENSIONS]
        if unknown or not all(groupings) or len(groupings) > MAX_COST_GROUPINGS:
            return _error(f"by: up to {MAX_COST_GROUPINGS} groupings separated by ';', each comma-separated "
                          f"dimensions of {', '.join(COST_DIMENSIONS)}; got {unknown or 'none'}")
        if catalog is None:
            return _error("no price catalog configured (cost.catalogs, cost.imports)", 404)
        end = int(time.time()) // 60 * 60 + 60
        start = end - int(text) * 3600
        try:
            reports = await asyncio.get_running_loop().run_in_executor(
                None, build_reports, StoreSource(storage), catalog, start, end, groupings,
                cfg.cost.default_capacity_type)
        except StorageError as err:
            return _error(str(err), 503, **{"Retry-After": "5"})
        return web.json_response({"start": start, "end": end, "reports": [
            {"by": list(report.by), "lines": [as_dict(report, ln) for ln in report.lines]} for report in reports]})

    async def percentiles_json(request: web.Request) -> web.Response:
        """Latency percentiles per group of the latency rollup (parameters: `webui.percentiles`)."""
        from infersight.webui import percentiles

        try:
            ask = percentiles.parse(request.query)
        except ValueError as err:
            return _error(str(err))

        def run() -> dict:
            return percentiles.read(storage.query, storage.database, ask)

        try:
            doc = await asyncio.get_running_loop().run_in_executor(None, run)
        except QueryError as err:  # e.g. no latency rollup in this database: what the query API answers
            return _error(str(err))
        except StorageError as err:
            return _error(str(err), 503, **{"Retry-After": "5"})
        return web.json_response(doc, headers={"Cache-Control": "no-cache"})

    async def slo_history(request: web.Request) -> web.Response:
        """One SLO evaluated at `points` instants over `seconds` (default its budget period), windows ending at each."""
        from infersight.slo.service import ENGINE
        from infersight.slo.spec import format_duration
        from infersight.slo.views import budget_value, instance_json
        from infersight.webui import history

        engine = request.app.get(ENGINE)
        if engine is None:
            return _error("no SLO engine on this server (slo.paths)", 404)
        name = request.query.get("slo", "")
        slo = engine.slos.get(name)
        if slo is None:
            return _error(f"slo: unknown SLO {name!r}; have {sorted(engine.slos)}", 404)
        text = request.query.get("points", "24")
        if not text.isdigit() or not 2 <= int(text) <= MAX_HISTORY_POINTS:
            return _error(f"points: an integer from 2 to {MAX_HISTORY_POINTS}")
        now = engine.clock()
        _, period = slo.window.bounds(now)
        span_text = request.query.get("seconds", "")
        if span_text and (not span_text.isdigit() or int(span_text) < 120):
            return _error("seconds: the span to show, an integer of at least 120 (default: the SLO's window)")
        span = min(int(span_text), MAX_COST_HOURS * 3600) if span_text else period
        instants = history_instants(now, span, int(text))

        def run() -> list[tuple[int, list]]:
            # Past instants as `slo status --at`; the last one live, as the status API answers now.
            at = [*instants[:-1], int(now)]
            return list(zip(at, history.series(engine.evaluator, [slo], at, now), strict=True))

        try:
            evaluated = await asyncio.get_running_loop().run_in_executor(None, run)
        except StorageError as err:
            return _error(str(err), 503, **{"Retry-After": "5"})

        def f(x: Any) -> float | None:
            if x is None:
                return None
            v = float(x)
            return v if math.isfinite(v) else None

        groups: dict[tuple, dict] = {}
        for i, (_, results) in enumerate(evaluated):
            for r in results:
                g = groups.get(r.group)
                if g is None:
                    g = groups[r.group] = {"group": dict(r.group), "budget_remaining": [None] * len(instants),
                                           "sli": [None] * len(instants), "events": [None] * len(instants),
                                           "state": [None] * len(instants),
                                           "tiers": {t.tier.name: {"long": [None] * len(instants),
                                                                   "short": [None] * len(instants)}
                                                     for t in r.tiers}}
                g["budget_remaining"][i] = f(r.budget_remaining)
                g["sli"][i] = f(r.sli)
                g["events"][i] = f(r.period.events) if r.period else None
                g["state"][i] = r.state
                for t in r.tiers:
                    series = g["tiers"].setdefault(t.tier.name, {"long": [None] * len(instants),
                                                                 "short": [None] * len(instants)})
                    series["long"][i] = f(t.long.burn_rate)
                    series["short"][i] = f(t.short.burn_rate)
        return web.json_response({
            "slo": slo.name, "unit": slo.unit, "window": slo.window.describe(), "period_seconds": period,
            "span_seconds": span,
            "budget": budget_value(slo), "at": [t for t, _ in evaluated],
            "tiers": [{"name": t.name, "severity": t.severity, "factor": float(t.factor),
                       "long_window": format_duration(t.long_s), "short_window": format_duration(t.short_s)}
                      for t in slo.tiers],
            "groups": list(groups.values()),
            # The live instances (the last instant) as `GET /api/v1/slos/status` lists them: the detail's cards.
            "instances": [instance_json(r, now) for r in evaluated[-1][1]]}, headers={"Cache-Control": "no-cache"})

    shipped = assets()

    async def asset(request: web.Request) -> web.StreamResponse:
        # Only the files shipped in static/; no-cache makes browsers revalidate after an upgrade.
        path = shipped.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text="no such UI asset")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    app.router.add_get("/ui", root)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/meta.json", meta)
    app.router.add_get("/ui/cost.json", cost)
    app.router.add_get("/ui/percentiles.json", percentiles_json)
    app.router.add_get("/ui/slo_history.json", slo_history)
    app.router.add_get("/ui/static/{name:.+}", asset)
    allow_public(app, OPEN_PATHS, OPEN_PREFIXES)
