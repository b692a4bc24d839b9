"""The SLO engine inside `infersight server`: its loop, SIGHUP reload and HTTP API.

Routes: GET /api/v1/slos, GET /api/v1/slos/status?at=TIME, GET /api/v1/alerts,
GET /api/v1/alerts/history?slo=&since_seconds=&limit= (the alert log, `alert_log`),
GET|POST /api/v1/silences, DELETE /api/v1/silences/{id}, POST /api/v1/notify/test,
POST /api/v1/slos/reload, GET /api/v1/slos/metrics (delivery failures and engine health).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infersight.reloads import on_reload
from infersight.slo.alert_log import history_json, parse_history_query
from infersight.slo.engine import SloEngine
from infersight.slo.evaluator import point_in_time_instant
from infersight.slo.lease import Lease, LeaseTable, holder_id
from infersight.slo.model import load_slos
from infersight.slo.notifiers import DeliveryError, rfc3339, send_test
from infersight.slo.spec import SpecError, parse_duration
from infersight.slo.views import instance_json, parse_time, silence_json
from infersight.storage.base import StorageError

log = logging.getLogger(__name__)

ENGINE = web.AppKey("slo_engine", SloEngine)
TASK = web.AppKey("slo_task", asyncio.Task)
LOOP: web.AppKey[EngineLoop] = web.AppKey("slo_loop")


class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False
    isEqual: bool = True


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: list[Matcher] = Field(min_length=1)
    startsAt: str | None = None
    endsAt: str | None = None
    duration: str | None = None
    createdBy: str = ""
    comment: str = ""


def attach(app: web.Application, cfg, storage, clock: Callable[[], float] = time.time) -> None:
    """Load the SLOs of `cfg.slo`, add the routes, and run the engine while the app runs."""
    settings = cfg.slo
    try:
        slos = load_slos(settings.paths)
    except SpecError as err:
        from infersight.config import ConfigError

        raise ConfigError(f"slo.paths: {err}") from None
    engine = SloEngine(storage, settings, slos, clock=clock)
    app[ENGINE] = engine
    app[LOOP] = EngineLoop(engine, Lease(LeaseTable(storage), holder_id()))
    on_reload(app, "SLO specs", lambda: reload(engine))
    r = app.router
    r.add_get("/api/v1/slos", _slos)
    r.add_get("/api/v1/slos/status", _status)
    r.add_post("/api/v1/slos/reload", _reload)
    r.add_get("/api/v1/slos/metrics", _metrics)
    r.add_get("/api/v1/alerts", _alerts)
    r.add_get("/api/v1/alerts/history", _history)
    r.add_get("/api/v1/silences", _silences)
    r.add_post("/api/v1/silences", _silence_add)
    r.add_delete("/api/v1/silences/{id}", _silence_expire)
    r.add_post("/api/v1/notify/test", _notify_test)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)


def reload(engine: SloEngine) -> str | None:
    """Re-read the spec files; on error keep the running SLOs and return the message."""
    try:
        slos = load_slos(engine.settings.paths)
    except SpecError as err:
        log.error("SLO reload failed, keeping %d SLOs: %s", len(engine.slos), err)
        return str(err)
    engine.reload(engine.settings, slos)
    log.info("SLO specs reloaded: %d SLOs", len(slos))
    return None


async def _start(app: web.Application) -> None:
    app[TASK] = asyncio.create_task(_run(app[LOOP]))


async def _stop(app: web.Application) -> None:
    task = app.get(TASK)
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(app[LOOP].lease.release)  # another server takes over at once


class EngineLoop:
    """One server's engine cycle. With the lease (`slo.lease`): evaluate every interval_seconds, and
    between evaluations flush groups and deliver the outbox. Without it: reload the stored state every
    interval_seconds, so this server's read API shows what the holder decided."""

    def __init__(self, engine: SloEngine, lease: Lease) -> None:
        self.engine, self.lease = engine, lease
        self.leading = False
        self.next_eval = 0.0

    async def step(self, session: aiohttp.ClientSession) -> None:
        engine = self.engine
        held = await asyncio.to_thread(self.lease.tick)
        if held and not self.leading:  # taken over (or started): carry on from the stored state
            await asyncio.to_thread(engine.load_state)
            self.next_eval = 0.0
            log.info("SLO engine: %s holds the lease and evaluates", self.lease.holder)
        self.leading = held
        now = engine.clock()
        if not held:
            if now >= self.next_eval:
                self.next_eval = now + engine.settings.interval_seconds
                await asyncio.to_thread(engine.load_state)
            return
        if now >= self.next_eval:
            self.next_eval = now + engine.settings.interval_seconds
            await asyncio.to_thread(engine.load_silences)  # any server's API may have changed them
            await asyncio.to_thread(engine.evaluate, now)
        else:
            await asyncio.to_thread(engine.dispatch, now)
        if self.lease.held():  # the lease may have lapsed while evaluating
            await engine.deliver(session, engine.clock())


async def _run(loop: EngineLoop) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                await loop.step(session)
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage hiccup must not stop the engine
                log.exception("SLO engine cycle failed")
            await asyncio.sleep(min(1.0, loop.engine.settings.interval_seconds))


def _bad(msg: str) -> web.Response:
    return web.json_response({"error": msg}, status=400)


async def _slos(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].slos_view())


async def _status(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    at = request.query.get("at")
    try:
        when = parse_time(at) if at else engine.clock()
    except ValueError as err:
        return _bad(str(err))
    # ?at=T: windows end at T rounded down to the minute (half-open); without it: live, now.
    results = await asyncio.to_thread(engine.status_at, when, at is not None)
    used = point_in_time_instant(when) if at else when
    return web.json_response({"at": used, **({"requested_at": when} if at else {}),
                              "instances": [instance_json(r, used) for r in results]})


async def _reload(request: web.Request) -> web.Response:
    err = reload(request.app[ENGINE])
    if err:
        return _bad(err)
    return web.json_response({"slos": len(request.app[ENGINE].slos)})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(request.app[ENGINE].registry),
                        content_type="text/plain", charset="utf-8")


async def _alerts(request: web.Request) -> web.Response:
    return web.json_response({"alerts": request.app[ENGINE].alerts_view()})


async def _history(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        slo, since_seconds, limit = parse_history_query(request.query)
    except ValueError as err:
        return _bad(str(err))
    since = engine.clock() - since_seconds
    try:
        entries = await asyncio.to_thread(engine.store.alert_history, since, limit, slo)
    except StorageError as err:
        return web.json_response({"error": str(err)}, status=503, headers={"Retry-After": "5"})
    out = history_json(entries)
    return web.json_response({"slo": slo, "since": rfc3339(since), "limit": limit, "count": len(out),
                              "entries": out})


async def _silences(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    now = engine.clock()
    return web.json_response({"silences": [silence_json(s, now) for s in engine.silences]})


async def _silence_add(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        body = SilenceIn.model_validate(await request.json())
    except ValidationError as err:
        return _bad("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))
    except ValueError:
        return _bad("body must be JSON")
    try:
        now = engine.clock()
        starts = parse_time(body.startsAt) if body.startsAt else now
        if body.endsAt:
            ends = parse_time(body.endsAt)
        elif body.duration:
            ends = starts + parse_duration(body.duration)
        else:
            return _bad("endsAt or duration is required")
        s = engine.add_silence([m.model_dump() for m in body.matchers], ends, starts, body.createdBy, body.comment)
    except ValueError as err:
        return _bad(str(err))
    return web.json_response({"silenceID": s.id, **silence_json(s, now)})


async def _silence_expire(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        s = engine.expire_silence(request.match_info["id"])
    except KeyError:
        return web.json_response({"error": f"no silence {request.match_info['id']}"}, status=404)
    return web.json_response(silence_json(s, engine.clock()))


async def _notify_test(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        name = (await request.json())["receiver"]
    except (ValueError, KeyError, TypeError):
        return _bad('body must be {"receiver": NAME}')
    rcv = engine.receivers.get(name)
    if rcv is None:
        return web.json_response({"error": f"unknown receiver {name!r}; have {sorted(engine.receivers)}"},
                                 status=404)
    try:
        async with aiohttp.ClientSession() as session:
            await send_test(session, rcv, engine.settings.external_url, engine.clock())
    except DeliveryError as err:
        return web.json_response({"receiver": name, "delivered": False, "error": str(err)}, status=502)
    return web.json_response({"receiver": name, "delivered": True})
