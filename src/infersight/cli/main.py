"""`infersight`'s parser: the command groups are listed here, in the order `--help` shows them."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from infersight import __version__


def command_groups() -> tuple[ModuleType, ...]:
    """Every command group, in `--help` order; each module has `register(subparsers)` and owns its commands."""
    from infersight.cli import agent, compare, config, cost, demo, doctor, notify, server, silence, slo, up

    return (config, agent, doctor, server, up, demo, slo, silence, notify, cost, compare)


def agent_groups() -> tuple[ModuleType, ...]:
    """The node agent's commands only: that process imports nothing of the server (aiohttp, storage, SLO)."""
    from infersight.cli import agent

    return (agent,)


# Commands whose process loads only their own group.
LIGHT_COMMANDS = {"agent": agent_groups, "collect": agent_groups}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(text: str) -> str:
    """A logging level name, any case; argparse reports anything else as a usage error."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r} (choose from "
                                         f"{', '.join(v.lower() for v in LOG_LEVELS)})")
    return text.upper()


def build_parser(groups: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    """Every command of every group (or of `groups`), each with its handler as `func`."""
    parser = argparse.ArgumentParser(prog="infersight", description="`infersight` command line.")
    parser.add_argument("--log-level", default="INFO", type=log_level, help="debug, info, warning, error, critical")
    parser.add_argument("--version", action="version", version=f"infersight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in command_groups() if groups is None else groups:
        group.register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command word of `argv` (the first word that is not a global option or its value)."""
    rest = iter(argv)
    for word in rest:
        if word == "--log-level":
            next(rest, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, set up logging and run the command; its return value is the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    light = LIGHT_COMMANDS.get(_command(argv) or "")
    args = build_parser(light() if light else None).parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
