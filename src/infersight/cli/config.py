"""`infersight config check FILE`: validate and print the effective configuration, secrets masked.

Every problem is reported in one run: the schema errors of the file (each naming its key), then what the
server would refuse at start (listening off loopback without a token, SLO specs, price catalogs).
"""
from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from typing import Any

import yaml

from infersight.cli._common import fail
from infersight.config import Config, ConfigError, effective_config, load_config

MASK = "***"
# Query parameters whose values are credentials (`?token=`, `&api_key=`, `sig=` of SAS URLs, ...).
SECRET_PARAM = re.compile(r"(token|key|secret|password|passwd|pwd|auth|sig|signature|credential|code)", re.I)
# Webhook URLs whose path is the credential: host suffix -> path prefix kept in clear.
WEBHOOK_PATHS = (("hooks.slack.com", "/services/"), ("events.pagerduty.com", "/integration/"),
                 ("discord.com", "/api/webhooks/"), ("discordapp.com", "/api/webhooks/"),
                 ("webhook.office.com", "/webhookb2/"), ("chat.googleapis.com", "/v1/spaces/"))


def register(sub: argparse._SubParsersAction) -> None:
    """`config check`."""
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate FILE and print the effective configuration (secrets masked)")
    check.add_argument("file")
    check.set_defaults(func=_check)


def mask_url(text: str) -> str:
    """`text` with the secrets a URL can hold masked: userinfo, credential query parameters, webhook paths."""
    try:
        u = urllib.parse.urlsplit(text)
    except ValueError:
        return text
    if not u.scheme or not u.netloc:
        return text
    netloc = u.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    path = u.path
    host = (u.hostname or "").lower()
    for suffix, prefix in WEBHOOK_PATHS:
        if (host == suffix or host.endswith("." + suffix)) and path.startswith(prefix) and len(path) > len(prefix):
            path = prefix + MASK
    query = "&".join(
        f"{k}={MASK}" if SECRET_PARAM.search(k) else (f"{k}={v}" if sep else k)
        for k, sep, v in (part.partition("=") for part in u.query.split("&") if part)) if u.query else ""
    return urllib.parse.urlunsplit((u.scheme, netloc, path, query, u.fragment))


def masked(value: Any) -> Any:
    """Plain data with the secrets inside every URL masked (secret fields, headers among them, are already)."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def effective(cfg: Config) -> dict[str, Any]:
    """The effective configuration with each collector's own options (not only the common ones), masked."""
    data = effective_config(cfg)
    data["collectors"] = [c.model_dump(mode="json") for c in cfg.collectors]
    return masked(data)


def problems(cfg: Config) -> list[str]:
    """What `infersight server` would refuse at start although the file parses."""
    from infersight.gateway.auth import Tokens, is_loopback, parse_listen

    out = []
    try:
        host, _ = parse_listen(cfg.server.listen)
        if not is_loopback(host) and not Tokens(cfg.server):
            out.append(f"server.listen: {cfg.server.listen} is off loopback without server.auth_token or "
                       "server.tokens: the server refuses to start (anyone who reaches it could read and write)")
    except ConfigError as err:
        out.append(str(err))
    if cfg.slo.paths:
        from infersight.slo.model import load_slos
        from infersight.slo.spec import SpecError

        try:
            load_slos(cfg.slo.paths)
        except SpecError as err:
            out.extend(f"slo.paths: {line}" for line in str(err).splitlines())
    if cfg.cost.catalogs or cfg.cost.imports:
        from infersight.cost.catalog import CatalogError
        from infersight.cost.report import build_catalog

        try:
            build_catalog(cfg, [])
        except (CatalogError, OSError, ValueError) as err:
            out.append(f"cost: {err}")
    return out


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as err:
        return fail(str(err).replace("\n", "\nerror: "), 2)
    sys.stdout.write(yaml.safe_dump(effective(cfg), sort_keys=False))
    found = problems(cfg)
    for line in found:
        fail(f"{args.file}: {line}", 2)
    return 2 if found else 0
