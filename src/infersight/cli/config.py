"""`infersight config check FILE`: validate and print the effective configuration."""
from __future__ import annotations

import argparse
import sys

import yaml

from infersight.cli._common import fail
from infersight.config import ConfigError, effective_config, load_config


def register(sub: argparse._SubParsersAction) -> None:
    """`config check`."""
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate FILE and print the effective configuration")
    check.add_argument("file")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as err:
        return fail(err, 2)
    sys.stdout.write(yaml.safe_dump(effective_config(cfg), sort_keys=False))
    return 0
