"""`infersight slo validate|status|history|import-openslo`: SLO specs, and their state and alert log read from a
server or a store."""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import yaml

from infersight.cli._common import ApiClient, Tokens, fail, offline_store, running_server, table
from infersight.config import Config, load_config
from infersight.server.tables import all_ddl
from infersight.slo.alert_log import DEFAULT_LIMIT, history_json, parse_history_query
from infersight.slo.alerts import label_name
from infersight.slo.evaluator import Evaluator
from infersight.slo.model import compile_spec, load_slos, render_rules
from infersight.slo.openslo import convert
from infersight.slo.spec import SpecError, load_file, parse_documents, parse_duration, spec_files
from infersight.slo.store import StateStore
from infersight.slo.views import format_budget_left, format_sli, instance_json, parse_time


def register(sub: argparse._SubParsersAction) -> None:
    """`slo validate`, `slo status`, `slo history` and `slo import-openslo`."""
    slo = sub.add_parser("slo", help="SLO specs and status").add_subparsers(dest="slo_command", required=True)
    v = slo.add_parser("validate", help="validate SLO spec files or folders and print the generated alert rules")
    v.add_argument("files", nargs="+", type=Path, metavar="PATH", help="spec file, or folder of *.yaml/*.yml")
    v.add_argument("--rules", action="store_true", help="print the generated rules as YAML")
    v.set_defaults(func=_validate)

    s = slo.add_parser("status", help="SLI, budget remaining, burn rates and alert state per SLO instance")
    target_args(s)
    s.add_argument("--slo", action="append", default=[], type=Path, help="spec file or folder (offline mode)")
    s.add_argument("--at", help="evaluate at this past moment (RFC 3339 or Unix seconds)")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=_status)

    h = slo.add_parser("history", help="the alert log: firing and resolved transitions and each receiver's delivery")
    target_args(h)
    h.add_argument("--name", help="one SLO (default: every SLO)")
    h.add_argument("--since", default="7d", help="how far back, e.g. 6h, 7d (default 7d)")
    h.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"newest transitions (default {DEFAULT_LIMIT})")
    h.add_argument("--format", choices=("table", "json"), default="table")
    h.set_defaults(func=_history)

    i = slo.add_parser("import-openslo", help="convert OpenSLO v1 documents to infersight/v1 specs")
    i.add_argument("file", type=Path)
    i.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    i.set_defaults(func=_import)


def target_args(p: argparse.ArgumentParser) -> None:
    """--server (a running server) or --config/--data-dir (the store of a stopped one), and --token."""
    p.add_argument("--server", help="a running server: URL or HOST:PORT (default: the server holding the store, "
                                    "at server.listen of --config)")
    p.add_argument("--config", type=Path, help="YAML configuration (data dir, storage, slo.paths, token)")
    p.add_argument("--data-dir", type=Path, help="embedded store of a stopped server (offline mode)")
    p.add_argument("--token", help="bearer token for --server (default: server.auth_token of --config)")


def client(args: argparse.Namespace, cfg: Config) -> ApiClient | None:
    """The API client of --server or of the running server holding the store (said on stderr), with --token
    or the tokens of --config; None: read the store of a stopped server."""
    url = running_server(args.server, cfg, args.data_dir)
    return None if url is None else ApiClient(url, Tokens(args.token, cfg))


def _validate(args: argparse.Namespace) -> int:
    """Files and folders (their *.yaml/*.yml, as the server reads slo.paths); names unique across all of them."""
    failed = False
    rendered: list[dict] = []
    seen: dict[str, Path] = {}
    try:
        files = spec_files(args.files)
    except SpecError as err:
        return fail(err, 1)
    if not files:
        print(f"warning: no *.yaml or *.yml spec files in {', '.join(map(str, args.files))}", file=sys.stderr)
    for f in files:
        try:
            docs = load_file(f)
            slos = [compile_spec(d, str(f)) for d in docs]
        except (SpecError, ValueError) as err:
            print(str(err) if isinstance(err, SpecError) else f"{f}: {err}", file=sys.stderr)
            failed = True
            continue
        if not slos:
            print(f"warning: {f}: no SLO in this file", file=sys.stderr)
            continue
        dups = [s.name for s in slos if s.name in seen]
        for name in dups:
            print(f"{f}: SLO {name!r} is already defined in {seen[name]} (the server refuses duplicate names)",
                  file=sys.stderr)
            failed = True
        seen.update((s.name, f) for s in slos if s.name not in seen)
        if not dups:
            print(f"{f}: ok ({len(slos)} SLO{'s' if len(slos) != 1 else ''}: {', '.join(s.name for s in slos)})")
        rendered.extend(render_rules(s) for s in slos)
    if args.rules and rendered:
        print(yaml.safe_dump_all(rendered, sort_keys=False), end="")
    return 1 if failed else 0


def _status(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        api = client(args, cfg)
        if api is not None:
            data = api.get("/api/v1/slos/status" + (f"?at={urllib.parse.quote(args.at)}" if args.at else ""))
            instances, at = data["instances"], data["at"]
            alerts = api.get("/api/v1/alerts")["alerts"] if not args.at else []
        else:
            at = parse_time(args.at) if args.at else time.time()
            with offline_store(cfg, args.data_dir, all_ddl()) as storage:
                slos = load_slos(args.slo or cfg.slo.paths)
                results = Evaluator(storage).evaluate(slos, at, point_in_time=bool(args.at))  # --at: half-open
                instances = [instance_json(r) for r in results]
                alerts = [] if args.at else [
                    {"labels": a.labels, "state": a.state} for a in StateStore(storage).load_alerts()]
    except Exception as err:  # noqa: BLE001 -- every failure becomes one clear line
        return fail(err, 2)
    if args.format == "json":
        print(json.dumps({"at": at, "instances": instances, "alerts": alerts}, indent=2))
        return 0
    print(_status_table(instances, alerts, at))
    return 0


def _history(args: argparse.Namespace) -> int:
    """The same parameters and checks as GET /api/v1/alerts/history, from the server or a stopped one's store."""
    try:
        query = {"since_seconds": str(parse_duration(args.since)), "limit": str(args.limit)}
        if args.name is not None:
            query["slo"] = args.name
        slo_name, since_seconds, limit = parse_history_query(query)
        cfg = load_config(args.config)
        api = client(args, cfg)
        if api is not None:
            entries = api.get("/api/v1/alerts/history?" + urllib.parse.urlencode(query))["entries"]
        else:
            with offline_store(cfg, args.data_dir, all_ddl()) as storage:
                rows = StateStore(storage).alert_history(time.time() - since_seconds, limit, slo_name)
            entries = history_json(rows)
    except Exception as err:  # noqa: BLE001 -- every failure becomes one clear line
        return fail(err, 2)
    if args.format == "json":
        print(json.dumps({"entries": entries}, indent=2))
        return 0
    if not entries:
        print(f"no alert transitions in the last {args.since}")
        return 0

    def sent(e: dict) -> str:
        return ", ".join(f"{d['receiver']}:{d['status']}" for d in e["deliveries"]) or (
            "muted: " + e["muted"] if e["muted"] else "-")
    print(table(("AT", "EVENT", "SLO", "TIER", "SEVERITY", "SENT TO", "SUMMARY"),
                [(e["at"], e["event"], e["slo"], e["tier"], e["severity"], sent(e), e["summary"]) for e in entries],
                pad_last=False))
    return 0


def _sli(inst: dict) -> str:
    """The SLI in its unit (money as money, with the budget), from the server's own text when it sends one."""
    if "sli_text" in inst:
        return inst["sli_text"]
    return "-" if inst["sli"] is None else format_sli(inst["sli"], inst.get("unit", "ratio"))


def _budget_left(inst: dict) -> str:
    text = inst.get("budget_left_text") or format_budget_left(inst["budget_remaining"])
    cov = inst.get("coverage")
    if cov and cov.get("window_minutes"):
        text += f" ({cov['fraction'] * 100:.0f} % of window has data)" if cov["fraction"] < 0.995 else ""
    return text


def _status_table(instances: list[dict], alerts: list[dict], at: float) -> str:
    def alerts_of(inst: dict) -> str:
        want = {label_name(k): v for k, v in inst["group"].items()}
        return " ".join(f"{a['labels'].get('tier')}:{a['state']}" for a in alerts
                        if a["labels"].get("slo") == inst["slo"]
                        and all(a["labels"].get(k) == v for k, v in want.items())) or "-"

    rows = []
    for i in instances:
        burns = " ".join(f"{w}={b:.3g}" for w, b in i["burn_rates"].items() if b is not None) or "-"
        firing = ",".join(t["name"] for t in i["tiers"] if t["active"]) or "-"
        rows.append([i["slo"], ",".join(f"{k}={v}" for k, v in i["group"].items()) or "-",
                     i["state"] + (f" ({i['error'][:60]})" if i.get("error") else ""), _sli(i),
                     _objective(i), _budget_left(i), burns, firing,
                     alerts_of(i)])
    header = ("SLO", "GROUP", "STATE", "SLI", "OBJECTIVE", "BUDGET LEFT", "BURN RATES", "TIERS FIRING", "ALERTS")
    return f"at {datetime.fromtimestamp(at, UTC).isoformat()}\n" + table(header, rows, pad_last=False)


def _objective(inst: dict) -> str:
    """Ratio SLOs: the objective percent; cost SLOs: the budget in money (the SLI column holds it)."""
    if inst.get("unit", "ratio") == "ratio":
        return inst["objective_percent"] + " %"
    budget = (inst.get("budget") or {}).get("value")
    return "-" if budget is None else format_sli(budget, inst["unit"])


def _import(args: argparse.Namespace) -> int:
    try:
        docs = list(yaml.safe_load_all(args.file.read_text()))
    except (OSError, yaml.YAMLError) as err:
        return fail(f"{args.file}: {err}", 2)
    res = convert(docs, str(args.file))
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    try:
        parse_documents(res.documents, f"{args.file} (converted)")
    except SpecError as err:
        return fail(err, 2)
    text = yaml.safe_dump_all(res.documents, sort_keys=False) if res.documents else ""
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0 if res.documents else 1
