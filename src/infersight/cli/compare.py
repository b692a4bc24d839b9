"""`infersight compare --model M`: one model per cloud/region/deployment side by side (compare.report).

Through a running server (`--server URL`) it prints GET /api/v1/compare; with `--prices FILE` it re-prices that
document under another catalog (the files given win over --config's cost.catalogs) through the server's query
API, without touching the server's catalog. Offline (`--data-dir`, the store of a stopped server) it builds the
same document from the store, with SLO state from an evaluation of --config's slo.paths now.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from infersight.cli._common import ApiClient, CliError, Tokens, fail, offline_store, table
from infersight.config import Config, ConfigError, load_config
from infersight.cost.catalog import CatalogError
from infersight.storage import StorageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="one model across clouds, regions and deployments: latency, errors, "
                                       "$/1M tokens, SLO state, probes")
    p.add_argument("--model", required=True, help="gen_ai.request.model, e.g. llama-3.1-8b")
    p.add_argument("--since", default="24h", help="window up to now (default 24h; 90m, 7d)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--prices", type=Path, action="append", default=[],
                   help="price catalog YAML to compare under (repeatable; wins over --config's cost.catalogs)")
    p.add_argument("--config", type=Path, help="YAML configuration (cost, slo.paths, server)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--server", help="a running server, e.g. http://127.0.0.1:4318")
    src.add_argument("--data-dir", type=Path, help="read the embedded store in DIR (server not running)")
    p.add_argument("--token", help="bearer token for --server (default: from --config)")
    p.set_defaults(func=_run)


def server_doc(url: str, token: str | None, cfg: Config, model: str, since: str,
               prices: list[Path]) -> dict[str, Any]:
    from infersight.cli.cost import ServerSource
    from infersight.compare import report
    from infersight.cost.report import build_catalog

    client = ApiClient(url, Tokens(token, cfg if token is None else None))
    doc = client.get("/api/v1/compare?" + urllib.parse.urlencode({"model": model, "since": since}))
    if not prices:
        return doc
    catalog = build_catalog(cfg, prices)
    src = ServerSource(url, cfg.server.storage.database, token or Tokens(None, cfg)("read"))
    return report.reprice(doc, src, catalog, cfg.cost.default_capacity_type,
                          "prices: " + ", ".join(str(p) for p in prices))


def offline_doc(cfg: Config, data_dir: Path | None, model: str, since_seconds: int,
                prices: list[Path], now: float) -> dict[str, Any]:
    with offline_store(cfg, data_dir, None) as storage:
        return store_doc(storage, cfg, model, since_seconds, prices, now)


def store_doc(storage: Any, cfg: Config, model: str, since_seconds: int, prices: list[Path],
              now: float) -> dict[str, Any]:
    """The compare document read from `storage` directly, SLO state from evaluating slo.paths at `now`."""
    from infersight.compare import report
    from infersight.compare.api import window
    from infersight.cost.report import build_catalog
    from infersight.cost.usage import StoreSource
    from infersight.slo.evaluator import Evaluator
    from infersight.slo.model import load_slos
    from infersight.slo.store import StateStore
    from infersight.slo.views import alert_json, instance_json

    priced = bool(prices or cfg.cost.catalogs or cfg.cost.imports)
    catalog = build_catalog(cfg, prices) if priced else None
    slos = load_slos(cfg.slo.paths)
    start, end = window(now, since_seconds)
    results = Evaluator(storage).evaluate(slos, now) if slos else []
    state = report.SloState([instance_json(r) for r in results], {s.name: dict(s.sli.filters) for s in slos},
                            [alert_json(a) for a in StateStore(storage).load_alerts()] if slos else [],
                            now, "offline evaluation")
    return report.build(StoreSource(storage), model, start, end, catalog, state, cfg.cost.default_capacity_type,
                        "prices: " + ", ".join(str(p) for p in prices) if prices else "config")


def _run(args: argparse.Namespace) -> int:
    from infersight.compare.api import parse_since
    from infersight.slo.spec import SpecError

    try:
        since = parse_since(args.since)
    except ValueError as err:
        return fail(f"--since: {err}", 2)
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        return fail(err, 2)
    try:
        if args.server:
            doc = server_doc(args.server, args.token, cfg, args.model, args.since, args.prices)
        else:
            doc = offline_doc(cfg, args.data_dir, args.model, since, args.prices, time.time())
    except (CatalogError, SpecError) as err:
        return fail(err, 2)
    except (CliError, StorageError, ConfigError) as err:
        return fail(err, 1)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(doc) + "\n")
    return 0


def _ms(est: dict | None) -> str:
    if est is None:
        return "-"
    s = est["value"]
    text = f"{s * 1000:.0f}ms" if s < 10 else f"{s:.1f}s"
    return (">" if est["open"] else "≈") + text


def _pcts(lat: dict | None) -> str:
    return "-" if lat is None else f"{_ms(lat.get('p50'))}/{_ms(lat.get('p95'))}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _money(text: str | None) -> str:
    if text is None:
        return "unpriced"
    v = float(text)
    return f"${v:,.2f}" if v >= 1 else f"${v:.4g}"


def _slo(d: dict) -> str:
    s = d.get("slo")
    if s is None:
        return "-"
    if not s["instances"]:
        return "no SLOs"
    if s["page_firing"]:
        word = "PAGE"
    elif s["exhausted"]:
        word = "exhausted"
    elif not s["meets"]:
        word = "burning"
    else:
        word = "ok"
    tier = s["fastest_burning_tier"]
    return word + (f" ({tier['tier']} {tier['burn_rate_long']:.3g}x)" if tier and tier["burn_rate_long"] else "")


def _budget(d: dict) -> str:
    from infersight.slo.views import format_budget_left

    s = d.get("slo")
    return "-" if s is None else format_budget_left(s["budget_remaining"])


def _probe(d: dict) -> str:
    p = d.get("probe")
    if p is None:
        return "-"
    ttft = (p["latency"].get("ttft") or {}).get("p95")
    return f"{p['requests']} ({_pct(p['error_ratio'])} bad) ttft p95 {_ms(ttft)}"


HEADER = ("deployment", "hosting", "requests", "errors", "ttft p50/p95", "tpot p50/p95", "e2e p50/p95", "tokens",
          "$/1M tokens", "slo", "budget left", "probes")


def format_table(doc: dict) -> str:
    rows = [(d["key"], d["hosting"], str(d["requests"]), _pct(d["error_ratio"]), _pcts(d["latency"]["ttft"]),
             _pcts(d["latency"]["tpot"]), _pcts(d["latency"]["e2e"]), f"{d['tokens']['total']:,}",
             f"{_money(d['cost']['usd_per_million_tokens'])} ({d['cost']['pricing']})", _slo(d), _budget(d),
             _probe(d)) for d in doc["deployments"]]
    head = (f"model {doc['model']}, {doc['since_seconds'] // 3600}h {doc['since_seconds'] % 3600 // 60}m to "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(doc['end']))} UTC; prices: {doc['catalog'] or 'none'}")
    notes = ["≈: percentile from histogram buckets (Prometheus' histogram_quantile over one layout; over mixed "
             "layouts an estimate, --format json gives the interval it lies in); >: above the largest finite bound. "
             "capacity: node-hours × capacity price over served tokens; list: the provider's token price."]
    if not doc["deployments"]:
        return head + "\nno traffic, probes or SLOs for this model in the window"
    return head + "\n" + table(HEADER, rows, rule=True) + "\n" + "\n".join(notes)
