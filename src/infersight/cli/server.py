"""`infersight server` (gateway + storage + query API + SLO engine + web UI) and `infersight query` (its client)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infersight.cli._common import ApiClient, ApiError, Tokens, fail, listen_url, server_url, table
from infersight.config import Config, ConfigError, load_config
from infersight.storage import SchemaMismatch, StorageError


def register(sub: argparse._SubParsersAction) -> None:
    """`server` and `query`."""
    p = sub.add_parser("server", help="run the OTLP gateway, storage and query API")
    p.add_argument("--config", type=Path, help="YAML configuration file")
    p.add_argument("--data-dir", type=Path, help="data directory (overrides server.data_dir)")
    p.add_argument("--listen", help="HOST:PORT (overrides server.listen)")
    p.add_argument("--slo", action="append", default=[], type=Path,
                   help="SLO spec file or folder (adds to slo.paths; repeatable)")
    p.set_defaults(func=_server)

    q = sub.add_parser("query", help="run a read-only statement (SELECT, DESCRIBE, SHOW TABLES, EXISTS, EXPLAIN) "
                                     "through the server's query API")
    q.add_argument("sql")
    q.add_argument("--server", help="URL or HOST:PORT (default: server.listen of --config, else 127.0.0.1:4318)")
    q.add_argument("--format", choices=("json", "table"), default="table")
    q.add_argument("--token", help="bearer token (default: server.auth_token from --config)")
    q.add_argument("--config", type=Path, help="YAML configuration (server.listen, tokens)")
    q.set_defaults(func=_query)


def server_config(cfg: Config, data_dir: Path | None, listen: str | None, slo: list[Path]) -> Config:
    """Apply command-line overrides to the frozen configuration."""
    server = cfg.server
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["data_dir"] = data_dir
    if listen is not None:
        update["listen"] = listen
    if update:
        server = server.model_copy(update=update)
    slo_settings = cfg.slo
    if slo:
        slo_settings = slo_settings.model_copy(update={"paths": tuple(slo_settings.paths) + tuple(slo)})
    return cfg.model_copy(update={"server": server, "slo": slo_settings})


def _server(args: argparse.Namespace) -> int:
    from infersight.server.app import run_server  # the server extra (pyarrow, chDB): not loaded for agent commands

    try:
        cfg = server_config(load_config(args.config), args.data_dir, args.listen, args.slo)
        return run_server(cfg)
    except (ConfigError, SchemaMismatch, StorageError) as err:
        return fail(err, 2)


def _cells(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    return table(cols, [[c if isinstance(c, str) else json.dumps(c) for c in (r.get(k) for k in cols)]
                        for r in rows], rule=True)


def _query(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        url = server_url(args.server) if args.server else listen_url(cfg.server.listen)
        result = ApiClient(url, Tokens(args.token, cfg), timeout_seconds=60).query(args.sql)
    except ConfigError as err:
        return fail(err, 2)
    except ApiError as err:
        if err.status == 401:
            return fail(f"{err} (pass --token, or --config with server.auth_token / server.tokens)", 1)
        return fail(err, 1)
    if args.format == "json":
        print(json.dumps(result["rows"], indent=2, default=str))
    else:
        print(_cells(result["rows"]))
    if result.get("truncated"):
        print(f"note: truncated to the first {result['row_count']} rows (server.query.max_rows): add a LIMIT "
              "or aggregate", file=sys.stderr)
    return 0
