"""The cost report as a use case: which catalogs apply, and one window's usage priced and grouped.

Shared by `infersight cost report` and the web UI's `/ui/cost.json`, so both price the same way.
"""
from __future__ import annotations

from pathlib import Path

from infersight.config import Config
from infersight.cost.catalog import Catalog, combine, load_catalog
from infersight.cost.derive import Report, derive
from infersight.cost.importers import load_import
from infersight.cost.usage import Source, api_usage, node_uptime, served_usage


def build_catalog(cfg: Config, extra: list[Path]) -> Catalog:
    """The price catalog: `extra` files first (they win), then cost.catalogs, then cost.imports."""
    catalogs = [load_catalog(p) for p in extra]
    catalogs += [load_catalog(p) for p in cfg.cost.catalogs]
    catalogs += [load_import(i.format, i.path, i.provider) for i in cfg.cost.imports]
    return combine(catalogs)


def build_report(src: Source, catalog: Catalog, start: int, end: int, by: tuple[str, ...],
                 default_capacity_type: str) -> Report:
    """Usage of [start, end) read from `src`, priced by `catalog` and grouped by `by`."""
    return derive(catalog, api_usage(src, start, end, catalog.tier_thresholds()), served_usage(src, start, end),
                  node_uptime(src, start, end), by, default_capacity_type)  # type: ignore[arg-type]
