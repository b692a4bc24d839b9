"""`infersight notify test RECEIVER`: a synthetic alert through one configured receiver."""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp

from infersight.cli._common import fail
from infersight.config import ConfigError, load_config
from infersight.slo.notifiers import DeliveryError, send_test


def register(sub: argparse._SubParsersAction) -> None:
    """`notify test`."""
    n = sub.add_parser("notify", help="notification receivers").add_subparsers(dest="notify_command", required=True)
    t = n.add_parser("test", help="send a synthetic alert through a configured receiver")
    t.add_argument("receiver")
    t.add_argument("--config", type=Path, help="YAML configuration with slo.receivers")
    t.set_defaults(func=_test)


def _test(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        return fail(err, 2)
    rcv = {r.name: r for r in cfg.slo.receivers}.get(args.receiver)
    if rcv is None:
        return fail(f"unknown receiver {args.receiver!r}; configured: {sorted(r.name for r in cfg.slo.receivers)}", 2)

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            await send_test(session, rcv, cfg.slo.external_url, time.time())

    try:
        asyncio.run(go())
    except DeliveryError as err:
        return fail(f"receiver {args.receiver}: {err}", 2)
    print(f"sent a test alert through {args.receiver} ({rcv.type})")
    return 0
