"""The cost report as a use case: which catalogs apply, and one window's usage priced and grouped.

Shared by `infersight cost report`, the web UI's `/ui/cost.json` and the server's `GET /api/v1/cost/report`
(`attach`), so all price the same way; a CLI next to a running server reads that API and so uses the
server's catalogs.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infersight.config import Config, ConfigError
from infersight.cost.catalog import Catalog, CatalogError, combine, load_catalog
from infersight.cost.derive import DIMENSIONS, Line, Report, as_dict, derive
from infersight.cost.importers import load_import
from infersight.cost.usage import ApiUsage, NodeUptime, ServedUsage, Source, api_usage, node_uptime, served_usage


def build_catalog(cfg: Config, extra: list[Path]) -> Catalog:
    """The price catalog: `extra` files first (they win), then cost.catalogs, then cost.imports."""
    catalogs = [load_catalog(p) for p in extra]
    catalogs += [load_catalog(p) for p in cfg.cost.catalogs]
    catalogs += [load_import(i.format, i.path, i.provider) for i in cfg.cost.imports]
    return combine(catalogs)


def build_report(src: Source, catalog: Catalog, start: int, end: int, by: tuple[str, ...],
                 default_capacity_type: str, model: str | None = None) -> Report:
    """Usage of [start, end) read from `src`, priced by `catalog` and grouped by `by`.

    With `model`, that model's part of the full report (its lines, their total): only its API spans are read,
    but every model's self-hosted traffic, since a host's capacity cost is split over all the tokens it served.
    """
    api, served, nodes = _usage(src, catalog, start, end, model)
    if model is None:
        return derive(catalog, api, served, nodes, by, default_capacity_type)
    full = by if "model" in by else (*by, "model")
    report = derive(catalog, api, served, nodes, full, default_capacity_type)
    at = full.index("model")
    lines: dict[tuple[str, ...], Line] = {}
    total = Line(("total",) * len(by))
    for ln in report.lines:
        if ln.key[at] == model:
            key = ln.key[:len(by)]
            lines.setdefault(key, Line(key)).add(ln)
            total.add(ln)
    return Report(by, [lines[k] for k in sorted(lines)], total)


def build_reports(src: Source, catalog: Catalog, start: int, end: int, groupings: Sequence[tuple[str, ...]],
                  default_capacity_type: str) -> list[Report]:
    """`build_report` per grouping from one read of the usage (the web UI's Fleet asks for several at once)."""
    api, served, nodes = _usage(src, catalog, start, end)
    return [derive(catalog, api, served, nodes, by, default_capacity_type) for by in groupings]


def _usage(src: Source, catalog: Catalog, start: int, end: int,
           model: str | None = None) -> tuple[list[ApiUsage], list[ServedUsage], list[NodeUptime]]:
    return (api_usage(src, start, end, catalog.tier_thresholds(), model), served_usage(src, start, end),
            node_uptime(src, start, end))


MAX_REPORT_SECONDS = 31 * 86400
REPORT_PATH = "/api/v1/cost/report"


def window(since_seconds: int, now: float | None = None) -> tuple[int, int]:
    """[start, end): `since_seconds` up to the end of the current minute."""
    end = int(time.time() if now is None else now) // 60 * 60 + 60
    return end - int(since_seconds), end


def report_json(report: Report, start: int, end: int, priced: bool) -> dict[str, Any]:
    """The report as JSON: money as exact decimal text (full precision); `priced`: a catalog was configured."""
    return {"start": start, "end": end, "by": list(report.by), "priced": priced,
            "lines": [as_dict(report, ln) for ln in report.lines], "total": as_dict(report, report.total)}


def attach(app: Any, cfg: Config, storage: Any) -> None:
    """`GET /api/v1/cost/report?since_seconds=86400&by=cloud,model[&model=M]`: the report with the server's
    catalogs (with `model`, that model's part of it)."""
    from aiohttp import web

    from infersight.cost.usage import StoreSource
    from infersight.storage.base import StorageError

    priced = bool(cfg.cost.catalogs or cfg.cost.imports)
    try:
        catalog = build_catalog(cfg, [])
    except CatalogError as err:
        raise ConfigError(f"cost: {err}") from None

    async def handle(request: web.Request) -> web.Response:
        text = request.query.get("since_seconds", "86400")
        if not text.isdigit() or not 60 <= int(text) <= MAX_REPORT_SECONDS:
            return web.json_response({"error": f"since_seconds: an integer from 60 to {MAX_REPORT_SECONDS}"},
                                     status=400)
        by = tuple(d.strip() for d in request.query.get("by", "cloud,model").split(",") if d.strip())
        if not by or any(d not in DIMENSIONS for d in by):
            return web.json_response({"error": f"by: comma-separated from {', '.join(DIMENSIONS)}"}, status=400)
        start, end = window(int(text))
        model = request.query.get("model") or None
        try:
            report = await asyncio.get_running_loop().run_in_executor(
                None, build_report, StoreSource(storage), catalog, start, end, by, cfg.cost.default_capacity_type,
                model)
        except StorageError as err:
            return web.json_response({"error": f"storage unavailable: {err}"}, status=503,
                                     headers={"Retry-After": "5"})
        return web.json_response(report_json(report, start, end, priced))

    app.router.add_get(REPORT_PATH, handle)
