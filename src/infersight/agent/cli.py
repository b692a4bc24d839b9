"""`infersight agent` (run the node agent) and `infersight collect` (one collection, printed)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from infersight.agent.loop import Agent, ScheduledCollector
from infersight.agent.resource import resolve_resource
from infersight.collectors.registry import collector_class
from infersight.config import Config, ConfigError, load_config
from infersight.exporters.otlp import make_sender
from infersight.exporters.spool import Spool, SpoolInUse

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="run the node agent: collectors -> spool -> OTLP")
    p.add_argument("--config", required=True, help="YAML configuration file")
    p.set_defaults(func=run_agent)
    c = sub.add_parser("collect", help="run every configured collector once and print the points")
    c.add_argument("--config", required=True, help="YAML configuration file")
    c.add_argument("--format", choices=("json", "table"), default="table")
    c.set_defaults(func=run_collect)


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def build_collectors(cfg: Config) -> tuple[list[ScheduledCollector], list[str]]:
    """Instantiate each configured collector; one that cannot start is reported, not fatal."""
    out, errors = [], []
    for entry in cfg.collectors:
        name = entry.name or entry.type
        try:
            collector = collector_class(entry.type).from_config(entry)
        except Exception as err:  # noqa: BLE001 (e.g. no NVML on this node)
            errors.append(f"collector {name} could not start: {type(err).__name__}: {err}")
            continue
        out.append(ScheduledCollector(name, collector, entry.interval_seconds, entry.timeout_seconds))
    return out, errors


def run_agent(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    return asyncio.run(_agent_main(cfg))


async def _agent_main(cfg: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    resource = await resolve_resource(cfg.resource)
    collectors, errors = build_collectors(cfg)
    for e in errors:
        log.error("%s", e)
    ex = cfg.agent.exporter
    try:
        spool = Spool(ex.spool_dir, ex.max_spool_bytes, max_rejected_bytes=ex.max_rejected_bytes,
                      max_rejected_batches=ex.max_rejected_batches)
    except (SpoolInUse, OSError) as err:
        log.error("cannot open the spool: %s", err)
        return 2
    agent = Agent(cfg.agent, collectors, make_sender(ex), spool, resource)
    log.info("agent started: %d collectors, exporting to %s (%s), spool %s",
             len(collectors), ex.endpoint, ex.protocol, ex.spool_dir)
    try:
        await agent.run(stop)
    finally:
        spool.close()
    log.info("agent stopped; %d batches left in the spool", len(spool.entries()))
    return 0


def run_collect(args: argparse.Namespace) -> int:
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
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


def _print_table(rows: list[dict[str, Any]], resource: dict[str, str]) -> None:
    print("resource: " + ", ".join(f"{k}={v}" for k, v in resource.items()))
    table = [("COLLECTOR", "NAME", "TYPE", "UNIT", "VALUE", "ATTRIBUTES")]
    table += [(r["collector"], r["name"], r["type"], r["unit"], _number(r["value"]),
               ",".join(f"{k}={v}" for k, v in r["attributes"].items())) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _number(value: float) -> str:
    """Counters stay exact (byte counts run to 10^12); fractions get 6 significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.6g}"
