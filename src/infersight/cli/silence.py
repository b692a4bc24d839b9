"""`infersight silence add|list|expire`: through a running server, or on the store of a stopped one.

Offline, silences are created and expired by the SLO engine's own rules (`slo.engine`), never here.
"""
from __future__ import annotations

import argparse
import re
import time

from infersight.cli._common import fail, offline_store
from infersight.cli.slo import client, target_args
from infersight.config import load_config
from infersight.server.tables import all_ddl
from infersight.slo.engine import create_silence, expire_silence
from infersight.slo.spec import parse_duration
from infersight.slo.store import StateStore
from infersight.slo.views import silence_json

_MATCHER = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)(.*)$")


def register(sub: argparse._SubParsersAction) -> None:
    """`silence add`, `silence list` and `silence expire`."""
    sil = sub.add_parser("silence", help="mute alerts by label matchers").add_subparsers(
        dest="silence_command", required=True)
    a = sil.add_parser("add", help="add a silence: MATCHER is name=value, name!=value, name=~regex or name!~regex")
    a.add_argument("matchers", nargs="+")
    a.add_argument("--duration", default="1h")
    a.add_argument("--comment", default="")
    a.add_argument("--author", default="")
    target_args(a)
    a.set_defaults(func=_add)
    ls = sil.add_parser("list", help="list silences")
    target_args(ls)
    ls.set_defaults(func=_list)
    e = sil.add_parser("expire", help="expire a silence now")
    e.add_argument("id")
    target_args(e)
    e.set_defaults(func=_expire)


def parse_matcher(text: str) -> dict:
    """`name=value`, `name!=value`, `name=~regex` or `name!~regex` as an Alertmanager matcher."""
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"invalid matcher {text!r}: use name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    return {"name": name, "value": value.strip('"'), "isRegex": "~" in op, "isEqual": not op.startswith("!")}


def _add(args: argparse.Namespace) -> int:
    try:
        matchers = [parse_matcher(m) for m in args.matchers]
        seconds = parse_duration(args.duration)
        cfg = load_config(args.config)
        api = client(args, cfg)
        if api is not None:
            out = api.post("/api/v1/silences", {"matchers": matchers, "duration": args.duration,
                                                         "createdBy": args.author, "comment": args.comment})
            print(out["silenceID"])
            return 0
        with offline_store(cfg, args.data_dir, all_ddl()) as storage:
            now = time.time()
            s = create_silence(StateStore(storage), matchers, now, now + seconds, None, args.author, args.comment)
        print(s.id)
        return 0
    except Exception as err:  # noqa: BLE001
        return fail(err, 2)


def _rows(args: argparse.Namespace) -> list[dict]:
    cfg = load_config(args.config)
    api = client(args, cfg)
    if api is not None:
        return api.get("/api/v1/silences")["silences"]
    with offline_store(cfg, args.data_dir, all_ddl()) as storage:
        now = time.time()
        return [silence_json(s, now) for s in StateStore(storage).load_silences()]


def _list(args: argparse.Namespace) -> int:
    try:
        rows = _rows(args)
    except Exception as err:  # noqa: BLE001
        return fail(err, 2)
    for s in rows:
        ms = " ".join(f"{m['name']}{'!' if not m.get('isEqual', True) else ''}{'=~' if m.get('isRegex') else '='}"
                      f"{m['value']}" for m in s["matchers"])
        print(f"{s['id']}  {s['status']['state']:8}  {s['startsAt']} → {s['endsAt']}  {ms}  {s['comment']}")
    return 0


def _expire(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        api = client(args, cfg)
        if api is not None:
            api.delete(f"/api/v1/silences/{args.id}")
        else:
            with offline_store(cfg, args.data_dir, all_ddl()) as storage:
                st = StateStore(storage)
                expire_silence(st, st.load_silences(), args.id, time.time())
    except KeyError:
        return fail(f"no silence {args.id}", 2)
    except Exception as err:  # noqa: BLE001
        return fail(err, 2)
    print(f"expired {args.id}")
    return 0
