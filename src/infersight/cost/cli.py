"""`infersight cost report`: spend, tokens, $/1M tokens and unpriced volume for a time window."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from infersight.config import Config, ConfigError, load_config
from infersight.cost.catalog import Catalog, CatalogError, combine, load_catalog
from infersight.cost.derive import DIMENSIONS, Report, as_dict, derive
from infersight.cost.importers import load_import
from infersight.cost.usage import ServerSource, Source, StoreSource, UsageError, api_usage, node_uptime, served_usage

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TABLE_COLUMNS = ("requests", "input_tokens", "output_tokens", "spend_usd", "api_usd", "node_usd",
                 "usd_per_million_tokens", "usd_per_million_output_tokens", "node_hours",
                 "unpriced_requests", "unpriced_tokens", "unpriced_node_hours")


def parse_since(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90m, 24h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_by(text: str) -> tuple[str, ...]:
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims:
        raise argparse.ArgumentTypeError(f"invalid --by {text!r} (comma-separated: {', '.join(DIMENSIONS)})")
    return dims


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="inference cost")
    csub = p.add_subparsers(dest="cost_command", required=True)
    r = csub.add_parser("report", help="spend, tokens, $/1M tokens and unpriced volume")
    r.add_argument("--config", type=Path, help="YAML configuration (cost: catalogs/imports, server: storage)")
    r.add_argument("--prices", type=Path, action="append", default=[],
                   help="price catalog YAML (repeatable; wins over the configured catalogs)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--server", help="read through a running server's query API, e.g. http://127.0.0.1:4318")
    src.add_argument("--data-dir", type=Path, help="read the embedded store in DIR (server not running)")
    r.add_argument("--token", help="bearer token for --server (default: server.auth_token from --config)")
    r.add_argument("--since", type=parse_since, default=parse_since("24h"), help="window up to now (default 24h)")
    r.add_argument("--by", type=parse_by, default=("cloud", "model"),
                   help=f"group by, comma-separated from {','.join(DIMENSIONS)} (default cloud,model)")
    r.add_argument("--format", choices=("table", "json"), default="table")
    r.set_defaults(func=_report)


def build_catalog(cfg: Config, extra: list[Path]) -> Catalog:
    catalogs = [load_catalog(p) for p in extra]
    catalogs += [load_catalog(p) for p in cfg.cost.catalogs]
    catalogs += [load_import(i.format, i.path, i.provider) for i in cfg.cost.imports]
    return combine(catalogs)


def _source(args: argparse.Namespace, cfg: Config) -> tuple[Source, Any]:
    if args.server:
        from infersight.gateway.auth import client_token

        token = args.token or client_token(cfg.server, "read")
        return ServerSource(args.server, cfg.server.storage.database, token), None
    from infersight.storage import open_storage

    data_dir = args.data_dir or cfg.server.data_dir
    if not (data_dir / "clickhouse").exists() and cfg.server.storage.backend == "embedded":
        raise UsageError(f"{data_dir}: no embedded store here (expected {data_dir / 'clickhouse'})")
    storage = open_storage(cfg.server.storage, data_dir, create_schema=False)
    return StoreSource(storage), storage


def build_report(src: Source, catalog: Catalog, start: int, end: int, by: tuple[str, ...],
                 default_capacity_type: str) -> Report:
    return derive(catalog, api_usage(src, start, end, catalog.tier_thresholds()), served_usage(src, start, end),
                  node_uptime(src, start, end), by, default_capacity_type)  # type: ignore[arg-type]


def _report(args: argparse.Namespace) -> int:
    from infersight.storage import StorageError

    try:
        cfg = load_config(args.config)
        catalog = build_catalog(cfg, args.prices)
    except (ConfigError, CatalogError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    end = int(time.time()) // 60 * 60 + 60
    start = end - args.since
    storage = None
    try:
        src, storage = _source(args, cfg)
        report = build_report(src, catalog, start, end, args.by, cfg.cost.default_capacity_type)
    except (UsageError, StorageError, ConfigError) as err:  # ConfigError: an unreadable token_file
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if storage is not None:
            storage.close()
    if args.format == "json":
        doc = {"start": start, "end": end, "by": list(report.by),
               "lines": [as_dict(report, ln) for ln in report.lines], "total": as_dict(report, report.total)}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(report) + "\n")
    return 0


def format_table(report: Report) -> str:
    cols = [*report.by, *TABLE_COLUMNS]
    rows = [as_dict(report, ln) for ln in report.lines] + [as_dict(report, report.total)]
    cells = [["-" if r[c] is None else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    unpriced = sorted(report.total.unpriced)
    out.append("unpriced: " + ("; ".join(unpriced) if unpriced else "none"))
    return "\n".join(out)
