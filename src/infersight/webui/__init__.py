"""Built-in web UI: a dependency-free page that reads the query, SLO and alert APIs from the browser.

The page is static (no build step); `attach` serves it, a small `/ui/meta.json` telling the page
which database and rollup columns this server has (so the same page works on every deployment), and
`/ui/cost.json`, the cost module's report per cloud/region/model when price catalogs are configured.
"""
from __future__ import annotations

import asyncio
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from infersight.config import ConfigError
from infersight.gateway.auth import allow_public
from infersight.storage.base import Storage, StorageError

STATIC = Path(str(files("infersight.webui").joinpath("static")))
# What a browser must load without a bearer token (page and assets); the page asks for the token
# and sends it with every API call, /ui/meta.json included.
OPEN_PATHS = ("/", "/ui", "/ui/")
OPEN_PREFIXES = ("/ui/static/",)
MAX_COST_HOURS = 24 * 31


def attach(app: web.Application, cfg: Any, storage: Storage) -> None:
    """Serve the UI at `/ui/` (`/` and `/ui` redirect there); `cfg` is the server's Config."""
    from infersight.cost.catalog import CatalogError
    from infersight.cost.derive import as_dict
    from infersight.cost.report import build_catalog, build_report
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
        sql = (f"SELECT name FROM system.columns WHERE database = '{db}' "
               "AND table = 'infersight_requests_1m' ORDER BY position")
        try:
            rows = await asyncio.get_running_loop().run_in_executor(None, storage.query, sql)
        except StorageError as err:
            return web.json_response({"error": str(err)}, status=503, headers={"Retry-After": "5"})
        return web.json_response({"database": storage.database, "priced": priced,
                                  "request_columns": [r["name"] for r in rows]},
                                 headers={"Cache-Control": "no-cache"})

    async def cost(request: web.Request) -> web.Response:
        """Spend and $/1M tokens per cloud/region/model over the last `hours`, from the price catalogs."""
        text = request.query.get("hours", "1")
        if not text.isdigit() or not 1 <= int(text) <= MAX_COST_HOURS:
            return web.json_response({"error": f"hours: an integer from 1 to {MAX_COST_HOURS}"}, status=400)
        if catalog is None:
            return web.json_response({"error": "no price catalog configured (cost.catalogs, cost.imports)"},
                                     status=404)
        end = int(time.time()) // 60 * 60 + 60
        start = end - int(text) * 3600
        try:
            report = await asyncio.get_running_loop().run_in_executor(
                None, build_report, StoreSource(storage), catalog, start, end, ("cloud", "region", "model"),
                cfg.cost.default_capacity_type)
        except StorageError as err:
            return web.json_response({"error": str(err)}, status=503, headers={"Retry-After": "5"})
        return web.json_response({"start": start, "end": end, "lines": [as_dict(report, ln) for ln in report.lines]})

    assets = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.name != "index.html"}

    async def asset(request: web.Request) -> web.StreamResponse:
        # Only the files shipped in static/; no-cache makes browsers revalidate after an upgrade.
        path = assets.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text="no such UI asset")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    app.router.add_get("/ui", root)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/meta.json", meta)
    app.router.add_get("/ui/cost.json", cost)
    app.router.add_get("/ui/static/{name}", asset)
    allow_public(app, OPEN_PATHS, OPEN_PREFIXES)
