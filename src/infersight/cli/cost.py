"""`infersight cost report`: spend, tokens, $/1M tokens and unpriced volume for a time window."""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from infersight.cli._common import ApiClient, CliError, Tokens, fail, offline_store, running_server, table
from infersight.config import Config, ConfigError, load_config
from infersight.cost.catalog import CatalogError
from infersight.cost.derive import DIMENSIONS
from infersight.cost.report import REPORT_PATH, build_catalog, build_report, report_json, window
from infersight.cost.usage import Source, StoreSource
from infersight.slo.views import format_sli
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
        result = self._api.query(sql.replace("{db}", f"`{self._database}`"))
        if result.get("truncated"):  # a report from part of the rows would be wrong, not short
            raise CliError(f"the server's query API cut the usage rows at {result['row_count']} "
                           "(server.query.max_rows): use a shorter --since or fewer --by dimensions, "
                           "or leave out --prices to have the server price it")
        return result["rows"]


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
    src.add_argument("--server", help="a running server (URL or HOST:PORT): its report, priced with its catalogs "
                                      "(default: the server holding the store, at server.listen of --config)")
    src.add_argument("--data-dir", type=Path, help="read the embedded store in DIR (server not running)")
    r.add_argument("--token", help="bearer token for --server (default: server.auth_token from --config)")
    r.add_argument("--since", type=parse_since, default=parse_since("24h"), help="window up to now (default 24h)")
    r.add_argument("--by", type=parse_by, default=("cloud", "model"),
                   help=f"group by, comma-separated from {','.join(DIMENSIONS)} (default cloud,model)")
    r.add_argument("--model", help="only this model's lines and their total (a host's capacity cost still "
                                   "split over every model it served)")
    r.add_argument("--format", choices=("table", "json"), default="table")
    r.set_defaults(func=_report)


@contextlib.contextmanager
def _source(url: str | None, args: argparse.Namespace, cfg: Config) -> Iterator[Source]:
    if url:
        yield ServerSource(url, cfg.server.storage.database, args.token or Tokens(None, cfg)("read"))
        return
    with offline_store(cfg, args.data_dir, None) as storage:
        yield StoreSource(storage)


def _report(args: argparse.Namespace) -> int:
    """Through a running server: its own report (its catalogs); with --prices, or offline: priced here."""
    try:
        cfg = load_config(args.config)
        catalog = build_catalog(cfg, args.prices)
    except (ConfigError, CatalogError) as err:
        return fail(err, 2)
    try:
        url = running_server(args.server, cfg, args.data_dir)
        if url and not args.prices:
            api = ApiClient(url, Tokens(args.token, cfg), timeout_seconds=120)
            query = {"since_seconds": str(args.since), "by": ",".join(args.by)}
            if args.model:
                query["model"] = args.model
            doc = api.get(f"{REPORT_PATH}?{urlencode(query)}")
        else:
            if url:
                print("note: priced here with --prices and the catalogs of --config, not the server's",
                      file=sys.stderr)
            start, end = window(args.since)
            with _source(url, args, cfg) as src:
                report = build_report(src, catalog, start, end, args.by, cfg.cost.default_capacity_type,
                                      args.model or None)
            doc = report_json(report, start, end, bool(args.prices or cfg.cost.catalogs or cfg.cost.imports))
    except (CliError, StorageError, ConfigError) as err:  # ConfigError: an unreadable token_file
        return fail(err, 1)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if not doc.get("priced", True):
            print("note: no price catalog configured (cost.catalogs, cost.imports, --prices): everything is unpriced",
                  file=sys.stderr)
        sys.stdout.write(format_table(doc) + "\n")
    return 0


MONEY_COLUMNS = frozenset(("spend_usd", "api_usd", "node_usd", "usd_per_million_tokens",
                           "usd_per_million_output_tokens", "usd_per_request", "node_usd_per_hour"))


def _cell(row: dict[str, Any], col: str) -> str:
    """Money rounded for reading ($12.35, $0.004750); "unpriced" where nothing of the row had a price."""
    value = row[col]
    if col in MONEY_COLUMNS:
        if row["unpriced"] and Decimal(row["spend_usd"] or 0) == 0:
            return "unpriced"
        return "-" if value is None else format_sli(float(Decimal(value)), "USD")
    if value is None:
        return "-"
    if col in ("node_hours", "unpriced_node_hours"):
        hours = float(Decimal(value))
        return f"{hours:,.2f}" if hours >= 1 or hours == 0 else f"{hours:.3g}"
    return str(value)


def format_table(doc: dict[str, Any]) -> str:
    """One line per group, then the total and what could not be priced (from `report_json`'s document)."""
    cols = [*doc["by"], *TABLE_COLUMNS]
    rows = [*doc["lines"], doc["total"]]
    unpriced = sorted(doc["total"]["unpriced"])
    return (table(cols, [[_cell(r, c) for c in cols] for r in rows], rule=True)
            + "\nunpriced: " + ("; ".join(unpriced) if unpriced else "none"))
