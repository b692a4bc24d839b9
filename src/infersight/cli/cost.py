"""`infersight cost report`: spend, tokens, $/1M tokens and unpriced volume for a time window."""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infersight.cli._common import ApiClient, CliError, Tokens, fail, offline_store, table
from infersight.config import Config, ConfigError, load_config
from infersight.cost.catalog import CatalogError
from infersight.cost.derive import DIMENSIONS, Report, as_dict
from infersight.cost.report import build_catalog, build_report
from infersight.cost.usage import Source, StoreSource
from infersight.storage import StorageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TABLE_COLUMNS = ("requests", "input_tokens", "output_tokens", "spend_usd", "api_usd", "node_usd",
                 "usd_per_million_tokens", "usd_per_million_output_tokens", "node_hours",
                 "unpriced_requests", "unpriced_tokens", "unpriced_node_hours")


class ServerSource:
    """Usage read through `POST /api/v1/query` of a running `infersight server` whose tables are in `database`."""

    def __init__(self, url: str, database: str = "otel", token: str | None = None,
                 timeout_seconds: float = 60.0) -> None:
        self._api = ApiClient(url, Tokens(token, None), timeout_seconds)
        self._database = database

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self._api.query(sql.replace("{db}", f"`{self._database}`"))["rows"]


def parse_since(text: str) -> int:
    """`90m`, `24h`, `7d` as seconds."""
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90m, 24h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_by(text: str) -> tuple[str, ...]:
    """Comma-separated report dimensions."""
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims:
        raise argparse.ArgumentTypeError(f"invalid --by {text!r} (comma-separated: {', '.join(DIMENSIONS)})")
    return dims


def register(sub: argparse._SubParsersAction) -> None:
    """`cost report`."""
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


@contextlib.contextmanager
def _source(args: argparse.Namespace, cfg: Config) -> Iterator[Source]:
    if args.server:
        token = args.token or Tokens(None, cfg)("read")
        yield ServerSource(args.server, cfg.server.storage.database, token)
        return
    with offline_store(cfg, args.data_dir, None) as storage:
        yield StoreSource(storage)


def _report(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        catalog = build_catalog(cfg, args.prices)
    except (ConfigError, CatalogError) as err:
        return fail(err, 2)
    end = int(time.time()) // 60 * 60 + 60
    start = end - args.since
    try:
        with _source(args, cfg) as src:
            report = build_report(src, catalog, start, end, args.by, cfg.cost.default_capacity_type)
    except (CliError, StorageError, ConfigError) as err:  # ConfigError: an unreadable token_file
        return fail(err, 1)
    if args.format == "json":
        doc = {"start": start, "end": end, "by": list(report.by),
               "lines": [as_dict(report, ln) for ln in report.lines], "total": as_dict(report, report.total)}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(report) + "\n")
    return 0


def format_table(report: Report) -> str:
    """One line per group, then the total and what could not be priced."""
    cols = [*report.by, *TABLE_COLUMNS]
    rows = [as_dict(report, ln) for ln in report.lines] + [as_dict(report, report.total)]
    cells = [["-" if r[c] is None else str(r[c]) for c in cols] for r in rows]
    unpriced = sorted(report.total.unpriced)
    return table(cols, cells, rule=True) + "\nunpriced: " + ("; ".join(unpriced) if unpriced else "none")
