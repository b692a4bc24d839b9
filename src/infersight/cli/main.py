"""`infersight`'s parser: the command groups are listed here, in the order `--help` shows them."""
from __future__ import annotations

import argparse
import logging
import sys

from infersight import __version__
from infersight.cli import agent, compare, config, cost, demo, doctor, notify, server, silence, slo, up

# Each module has `register(subparsers)` and owns the commands it adds.
COMMAND_GROUPS = (config, agent, doctor, server, up, demo, slo, silence, notify, cost, compare)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(text: str) -> str:
    """A logging level name, any case; argparse reports anything else as a usage error."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r} (choose from "
                                         f"{', '.join(v.lower() for v in LOG_LEVELS)})")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    """Every command of every group, each with its handler as `func`."""
    parser = argparse.ArgumentParser(prog="infersight", description="`infersight` command line.")
    parser.add_argument("--log-level", default="INFO", type=log_level, help="debug, info, warning, error, critical")
    parser.add_argument("--version", action="version", version=f"infersight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, set up logging and run the command; its return value is the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
