"""`infersight slo validate|status|import-openslo`, `infersight silence add|list|expire`, `infersight notify test`."""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from infersight.config import ConfigError, load_config
from infersight.slo.alerts import label_name
from infersight.slo.engine import create_silence, expire_silence
from infersight.slo.evaluator import Evaluator
from infersight.slo.model import compile_spec, load_slos, render_rules
from infersight.slo.notifiers import DeliveryError, send_test
from infersight.slo.openslo import convert
from infersight.slo.spec import SpecError, load_file, parse_documents, parse_duration
from infersight.slo.store import StateStore
from infersight.slo.views import instance_json, parse_time, silence_json
from infersight.storage import open_storage


def register(sub) -> None:
    slo = sub.add_parser("slo", help="SLO specs and status").add_subparsers(dest="slo_command", required=True)
    v = slo.add_parser("validate", help="validate SLO spec files and print the generated alert rules")
    v.add_argument("files", nargs="+", type=Path)
    v.add_argument("--rules", action="store_true", help="print the generated rules as YAML")
    v.set_defaults(func=_validate)

    s = slo.add_parser("status", help="SLI, budget remaining, burn rates and alert state per SLO instance")
    _target_args(s)
    s.add_argument("--slo", action="append", default=[], type=Path, help="spec file or folder (offline mode)")
    s.add_argument("--at", help="evaluate at this past moment (RFC 3339 or Unix seconds)")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=_status)

    i = slo.add_parser("import-openslo", help="convert OpenSLO v1 documents to infersight/v1 specs")
    i.add_argument("file", type=Path)
    i.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    i.set_defaults(func=_import)

    sil = sub.add_parser("silence", help="mute alerts by label matchers").add_subparsers(
        dest="silence_command", required=True)
    a = sil.add_parser("add", help="add a silence: MATCHER is name=value, name!=value, name=~regex or name!~regex")
    a.add_argument("matchers", nargs="+")
    a.add_argument("--duration", default="1h")
    a.add_argument("--comment", default="")
    a.add_argument("--author", default="")
    _target_args(a)
    a.set_defaults(func=_silence_add)
    ls = sil.add_parser("list", help="list silences")
    _target_args(ls)
    ls.set_defaults(func=_silence_list)
    e = sil.add_parser("expire", help="expire a silence now")
    e.add_argument("id")
    _target_args(e)
    e.set_defaults(func=_silence_expire)

    n = sub.add_parser("notify", help="notification receivers").add_subparsers(dest="notify_command", required=True)
    t = n.add_parser("test", help="send a synthetic alert through a configured receiver")
    t.add_argument("receiver")
    t.add_argument("--config", type=Path, help="YAML configuration with slo.receivers")
    t.set_defaults(func=_notify_test)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="a running server's URL (e.g. http://127.0.0.1:4318)")
    p.add_argument("--config", type=Path, help="YAML configuration (data dir, storage, slo.paths, token)")
    p.add_argument("--data-dir", type=Path, help="embedded store of a stopped server (offline mode)")
    p.add_argument("--token", help="bearer token for --server (default: server.auth_token of --config)")


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


# -- server client -------------------------------------------------------------------------------------
def _call(args, method: str, path: str, body: Any = None) -> Any:
    token = args.token
    if token is None and args.config is not None:
        from infersight.gateway.auth import client_token

        token = client_token(load_config(args.config).server, "read" if method == "GET" else "admin")
    req = urllib.request.Request(args.server.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read().decode(errors="replace")
        try:
            text = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            pass
        raise RuntimeError(f"{args.server}: HTTP {err.code}: {text}") from None
    except (urllib.error.URLError, OSError) as err:
        raise RuntimeError(f"cannot reach {args.server}: {err}") from None


def _offline(args):
    """Config + embedded/remote storage of a server that is not running."""
    cfg = load_config(args.config)
    data_dir = args.data_dir or cfg.server.data_dir
    if cfg.server.storage.backend == "embedded" and not (data_dir / "clickhouse").is_dir():
        raise RuntimeError(f"no infersight store in {data_dir} (use --data-dir, --config or --server URL)")
    return cfg, open_storage(cfg.server.storage, data_dir)


# -- slo -----------------------------------------------------------------------------------------------
def _validate(args) -> int:
    failed = False
    rendered = []
    for f in args.files:
        try:
            docs = load_file(f)
            slos = [compile_spec(d, str(f)) for d in docs]
        except (SpecError, ValueError) as err:
            print(str(err), file=sys.stderr)
            failed = True
            continue
        print(f"{f}: ok ({len(slos)} SLO{'s' if len(slos) != 1 else ''}: {', '.join(s.name for s in slos)})")
        rendered.extend(render_rules(s) for s in slos)
    if args.rules and rendered:
        print(yaml.safe_dump_all(rendered, sort_keys=False), end="")
    return 1 if failed else 0


def _status(args) -> int:
    try:
        if args.server:
            path = "/api/v1/slos/status" + (f"?at={urllib.request.quote(args.at)}" if args.at else "")
            data = _call(args, "GET", path)
            instances, at = data["instances"], data["at"]
            alerts = _call(args, "GET", "/api/v1/alerts")["alerts"] if not args.at else []
        else:
            at = parse_time(args.at) if args.at else time.time()
            cfg, storage = _offline(args)
            try:
                slos = load_slos(args.slo or cfg.slo.paths)
                instances = [instance_json(r) for r in Evaluator(storage).evaluate(slos, at)]
                alerts = [] if args.at else [
                    {"labels": a.labels, "state": a.state} for a in StateStore(storage).load_alerts()]
            finally:
                storage.close()
    except Exception as err:  # noqa: BLE001 -- every failure becomes one clear line
        return _err(str(err))
    if args.format == "json":
        print(json.dumps({"at": at, "instances": instances, "alerts": alerts}, indent=2))
        return 0
    print(_table(instances, alerts, at))
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.3f}%"


def _table(instances: list[dict], alerts: list[dict], at: float) -> str:
    def alerts_of(inst: dict) -> str:
        want = {label_name(k): v for k, v in inst["group"].items()}
        return " ".join(f"{a['labels'].get('tier')}:{a['state']}" for a in alerts
                        if a["labels"].get("slo") == inst["slo"]
                        and all(a["labels"].get(k) == v for k, v in want.items())) or "-"

    rows = [["SLO", "GROUP", "STATE", "SLI", "OBJECTIVE", "BUDGET LEFT", "BURN RATES", "TIERS FIRING", "ALERTS"]]
    for i in instances:
        burns = " ".join(f"{w}={b:.3g}" for w, b in i["burn_rates"].items() if b is not None) or "-"
        firing = ",".join(t["name"] for t in i["tiers"] if t["active"]) or "-"
        rows.append([i["slo"], ",".join(f"{k}={v}" for k, v in i["group"].items()) or "-",
                     i["state"] + (f" ({i['error'][:60]})" if i.get("error") else ""), _pct(i["sli"]),
                     i["objective_percent"] + "%", _pct(i["budget_remaining"]), burns, firing,
                     alerts_of(i)])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    head = f"at {datetime.fromtimestamp(at, UTC).isoformat()}"
    return "\n".join([head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows])


def _import(args) -> int:
    try:
        docs = list(yaml.safe_load_all(args.file.read_text()))
    except (OSError, yaml.YAMLError) as err:
        return _err(f"{args.file}: {err}")
    res = convert(docs, str(args.file))
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    try:
        parse_documents(res.documents, f"{args.file} (converted)")
    except SpecError as err:
        return _err(str(err))
    text = yaml.safe_dump_all(res.documents, sort_keys=False) if res.documents else ""
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0 if res.documents else 1


# -- silences ------------------------------------------------------------------------------------------
_MATCHER = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$")


def parse_matcher(text: str) -> dict:
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"invalid matcher {text!r}: use name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    return {"name": name, "value": value.strip('"'), "isRegex": "~" in op, "isEqual": not op.startswith("!")}


def _silence_add(args) -> int:
    try:
        matchers = [parse_matcher(m) for m in args.matchers]
        seconds = parse_duration(args.duration)
        if args.server:
            out = _call(args, "POST", "/api/v1/silences", {"matchers": matchers, "duration": args.duration,
                                                            "createdBy": args.author, "comment": args.comment})
            print(out["silenceID"])
            return 0
        _, storage = _offline(args)
        try:
            now = time.time()
            s = create_silence(StateStore(storage), matchers, now, now + seconds, None, args.author, args.comment)
        finally:
            storage.close()
        print(s.id)
        return 0
    except Exception as err:  # noqa: BLE001
        return _err(str(err))


def _silence_rows(args) -> list[dict]:
    if args.server:
        return _call(args, "GET", "/api/v1/silences")["silences"]
    _, storage = _offline(args)
    try:
        now = time.time()
        return [silence_json(s, now) for s in StateStore(storage).load_silences()]
    finally:
        storage.close()


def _silence_list(args) -> int:
    try:
        rows = _silence_rows(args)
    except Exception as err:  # noqa: BLE001
        return _err(str(err))
    for s in rows:
        ms = " ".join(f"{m['name']}{'!' if not m.get('isEqual', True) else ''}{'=~' if m.get('isRegex') else '='}"
                      f"{m['value']}" for m in s["matchers"])
        print(f"{s['id']}  {s['status']['state']:8}  {s['startsAt']} → {s['endsAt']}  {ms}  {s['comment']}")
    return 0


def _silence_expire(args) -> int:
    try:
        if args.server:
            _call(args, "DELETE", f"/api/v1/silences/{args.id}")
        else:
            _, storage = _offline(args)
            try:
                st = StateStore(storage)
                expire_silence(st, st.load_silences(), args.id, time.time())
            except KeyError:
                return _err(f"no silence {args.id}")
            finally:
                storage.close()
    except Exception as err:  # noqa: BLE001
        return _err(str(err))
    print(f"expired {args.id}")
    return 0


# -- notify --------------------------------------------------------------------------------------------
def _notify_test(args) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        return _err(str(err))
    rcv = {r.name: r for r in cfg.slo.receivers}.get(args.receiver)
    if rcv is None:
        return _err(f"unknown receiver {args.receiver!r}; configured: {sorted(r.name for r in cfg.slo.receivers)}")

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            await send_test(session, rcv, cfg.slo.external_url, time.time())

    try:
        asyncio.run(go())
    except DeliveryError as err:
        return _err(f"receiver {args.receiver}: {err}")
    print(f"sent a test alert through {args.receiver} ({rcv.type})")
    return 0
