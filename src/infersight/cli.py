"""`infersight` command line. Each area registers its own subcommands."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules exposing `register(subparsers)`; each owns its commands.
COMMAND_MODULES = (
    "infersight.configcli",
    "infersight.agent.cli",
    "infersight.gateway.cli",
    "infersight.up",
    "infersight.slo.cli",
    "infersight.cost.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infersight", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
