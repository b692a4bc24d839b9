"""`infersight agent` (run the node agent) and `infersight collect` (one collection, printed)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from infersight.agent.resource import resolve_resource
from infersight.agent.run import build_collectors, run_agent
from infersight.cli._common import fail, table
from infersight.config import Config, ConfigError, load_config


def register(sub: argparse._SubParsersAction) -> None:
    """`agent` and `collect`."""
    p = sub.add_parser("agent", help="run the node agent: collectors -> spool -> OTLP")
    p.add_argument("--config", required=True, help="YAML configuration file")
    p.set_defaults(func=_agent)
    c = sub.add_parser("collect", help="run every configured collector once and print the points")
    c.add_argument("--config", required=True, help="YAML configuration file")
    c.add_argument("--format", choices=("json", "table"), default="table")
    c.set_defaults(func=_collect)


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as err:
        fail(err, 2)
        return None


def _agent(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    return asyncio.run(run_agent(cfg))


def _collect(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    resource = asyncio.run(resolve_resource(cfg.resource))
    collectors, errors = build_collectors(cfg)
    rows: list[dict[str, Any]] = []
    for sc in collectors:
        try:
            points = list(sc.collector.collect())
        except Exception as err:  # noqa: BLE001 (report and go on with the others)
            errors.append(f"collector {sc.name} failed: {type(err).__name__}: {err}")
            continue
        finally:
            sc.collector.close()
        rows += [{"collector": sc.name, **p.as_dict(), "resource": resource} for p in points]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_table(rows, resource)
    for e in errors:
        fail(e, 1)
    return 1 if errors else 0


def _print_table(rows: list[dict[str, Any]], resource: dict[str, str]) -> None:
    print("resource: " + ", ".join(f"{k}={v}" for k, v in resource.items()))
    print(table(("COLLECTOR", "NAME", "TYPE", "UNIT", "VALUE", "ATTRIBUTES"),
                [(r["collector"], r["name"], r["type"], r["unit"], _number(r["value"]),
                  ",".join(f"{k}={v}" for k, v in r["attributes"].items())) for r in rows], pad_last=False))


def _number(value: float) -> str:
    """Counters stay exact (byte counts run to 10^12); fractions get 6 significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.6g}"
