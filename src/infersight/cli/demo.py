"""`infersight demo`: the server on an embedded store plus a simulated multi-cloud fleet (see `infersight.demo`)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from infersight.cli._common import fail

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(m|h|d|w)$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def history_seconds(text: str) -> float:
    """'7d' -> 604800. Units m, h, d, w; at most 35 days (the rolling windows' longest period is 30 d)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected e.g. 30m, 6h, 7d")
    seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if not 0 < seconds <= 35 * 86400:
        raise argparse.ArgumentTypeError(f"--history {text}: must be more than 0 and at most 35d")
    return seconds


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value}: must be 1..65535")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """`demo`."""
    p = sub.add_parser("demo", help="run the server with a simulated multi-cloud fleet (loopback only)")
    p.add_argument("--nodes", type=int, default=12, help="simulated nodes (default 12; 6 or more cover every cloud)")
    p.add_argument("--history", type=history_seconds, default=7 * 86400, metavar="DURATION",
                   help="history to backfill with past timestamps, e.g. 1h, 7d (default 7d)")
    p.add_argument("--port", type=_port, default=4318, help="server port on 127.0.0.1 (default 4318)")
    p.add_argument("--data-dir", type=Path,
                   help="data directory (default: a temporary one, removed at exit)")
    p.add_argument("--sink-port", type=_port, help="webhook sink port on 127.0.0.1 (default: any free port)")
    p.add_argument("--incident-scale", type=float, default=1.0,
                   help="stretch (>1) or shorten (<1) the incidents' remaining minutes (default 1)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from infersight.config import ConfigError
    from infersight.demo.runner import DemoOptions, ServerParts, run_demo  # the server extra: not for other commands
    from infersight.server.app import serve
    from infersight.server.components import default_components
    from infersight.storage import SchemaMismatch, StorageError

    if args.nodes < 1:
        return fail("--nodes: at least 1", 2)
    if args.incident_scale <= 0:
        return fail("--incident-scale: must be > 0", 2)
    opts = DemoOptions(nodes=args.nodes, history_seconds=args.history, port=args.port, data_dir=args.data_dir,
                       sink_port=args.sink_port or 0, incident_scale=args.incident_scale)
    try:
        return run_demo(opts, ServerParts(serve, default_components))
    except (ConfigError, SchemaMismatch, StorageError) as err:
        return fail(err, 2)
    except OSError as err:  # e.g. the port is taken
        return fail(err, 1)
