"""A loopback webhook receiver for the demo's SLO alerts: `POST /webhook` stores each notification
(Alertmanager webhook v4 JSON, as the SLO engine's webhook receiver sends it), `GET /alerts` lists them,
newest last, so the UI (or `curl`) can show what a real receiver would have got."""
from __future__ import annotations

import time
from collections import deque
from typing import Any

from aiohttp import web

RECEIVED: web.AppKey[deque[dict[str, Any]]] = web.AppKey("received", deque)
ORIGIN = web.AppKey("origin", str)
MAX_KEPT = 1000


def sink_app(allow_origin: str = "", max_kept: int = MAX_KEPT) -> web.Application:
    """`allow_origin`: the one web origin (the demo server's UI) allowed to read `/alerts` from a page."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[RECEIVED] = deque(maxlen=max_kept)
    app[ORIGIN] = allow_origin
    app.router.add_post("/webhook", _receive)
    app.router.add_get("/alerts", _list)
    return app


def received(app: web.Application) -> list[dict[str, Any]]:
    kept = app[RECEIVED]
    return list(kept)


async def _receive(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    request.app[RECEIVED].append({"receivedAt": time.time(), "payload": body})
    return web.json_response({"ok": True})


async def _list(request: web.Request) -> web.Response:
    kept = request.app[RECEIVED]
    items = list(kept)
    origin = request.app[ORIGIN]
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
    return web.json_response({"notifications": items, "count": len(items)}, headers=headers)
