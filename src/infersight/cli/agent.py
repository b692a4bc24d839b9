"""`infersight agent` (run the node agent) and `infersight collect` (one collection, printed).

Imports only what the agent needs: `cli._common` (the server-side helpers: storage, gateway auth, aiohttp) is
imported where an error is printed or a table drawn, so `infersight agent` does not carry it.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from infersight.agent.loop import ScheduledCollector
from infersight.agent.resource import resolve_resource
from infersight.agent.run import build_collectors, run_agent
from infersight.collectors.base import Health, Point, health_of
from infersight.config import AgentFile, ConfigError, load_agent_file


def register(sub: argparse._SubParsersAction) -> None:
    """`agent` and `collect`."""
    p = sub.add_parser("agent", help="run the node agent: collectors -> spool -> OTLP")
    p.add_argument("--config", required=True, help="YAML configuration file")
    p.set_defaults(func=_agent)
    c = sub.add_parser("collect", help="run every configured collector and print the points; exits 1 when one "
                                       "is down or has parts down")
    c.add_argument("--config", required=True, help="YAML configuration file")
    c.add_argument("--format", choices=("json", "table"), default="table")
    c.add_argument("--sample-interval-seconds", type=_non_negative, default=1.0,
                   help="collectors whose rates, deltas or GPM values need two samples (host, nvml, inference) "
                        "are sampled twice this far apart and the second sample is printed (default 1.0)")
    c.set_defaults(func=_collect)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError("must be between 0 and 600 seconds")
    return value


def _load(path: str) -> AgentFile | None:
    try:
        return load_agent_file(path)
    except ConfigError as err:
        from infersight.cli._common import fail

        fail(err, 2)
        return None


def _agent(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    return run_agent(cfg)


def _collect(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return 2
    resource = resolve_resource(cfg.resource)
    collectors, _start_errors = build_collectors(cfg)  # a collector that cannot start reports itself down
    try:
        samples = sample(collectors, args.sample_interval_seconds)
    finally:
        for sc in collectors:
            sc.collector.close()
    rows = [{"collector": s.name, **p.as_dict(), "resource": resource} for s in samples for p in s.points]
    if args.format == "json":
        import json  # not at the top: `infersight agent` never imports it

        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_table(rows, resource)
    errors = [e for s in samples for e in s.errors()]
    if errors:
        from infersight.cli._common import fail

        for e in errors:
            fail(e, 1)
    return 1 if errors else 0


@dataclass(frozen=True)
class Sample:
    """What one collector gave in `infersight collect`: its steady-state points and its health."""

    name: str
    points: list[Point]
    health: Health

    def errors(self) -> list[str]:
        out = [] if self.health.up else [f"collector {self.name} is down ({self.health.reason}): "
                                         f"{self.health.detail}"]
        return out + [f"collector {self.name}: {p}" for p in self.health.problems]


def sample(collectors: Sequence[ScheduledCollector], interval_seconds: float,
           sleep: Callable[[float], None] = time.sleep) -> list[Sample]:
    """Collect from each collector; those that need two samples (`needs_two_samples`) are collected again
    `interval_seconds` later and give their second sample. `sleep` is injected (tests step a replay)."""
    first = [_once(sc) for sc in collectors]
    if any(getattr(sc.collector, "needs_two_samples", False) for sc in collectors):
        sleep(interval_seconds)
    return [_once(sc) if getattr(sc.collector, "needs_two_samples", False) else s
            for sc, s in zip(collectors, first, strict=True)]


def _once(sc: ScheduledCollector) -> Sample:
    try:
        points = list(sc.collector.collect())
    except Exception as err:  # noqa: BLE001 (report and go on with the others)
        return Sample(sc.name, [], Health(False, "exception", f"collect() failed: {type(err).__name__}: {err}"))
    try:
        health = health_of(sc.collector)
    except Exception as err:  # noqa: BLE001
        health = Health(False, "exception", f"health() failed: {type(err).__name__}: {err}")
    return Sample(sc.name, points, health)


def _print_table(rows: list[dict[str, Any]], resource: dict[str, str]) -> None:
    from infersight.cli._common import table

    print("resource: " + ", ".join(f"{k}={v}" for k, v in resource.items()))
    print(table(("COLLECTOR", "NAME", "TYPE", "UNIT", "VALUE", "ATTRIBUTES"),
                [(r["collector"], r["name"], r["type"], r["unit"], _number(r["value"]),
                  ",".join(f"{k}={v}" for k, v in r["attributes"].items())) for r in rows], pad_last=False))


def _number(value: float) -> str:
    """Counters stay exact (byte counts run to 10^12); fractions get 6 significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.6g}"
