"""A loopback webhook receiver for the demo's SLO alerts: `POST /webhook` stores each notification
(Alertmanager webhook v4 JSON, as the SLO engine's webhook receiver sends it), `GET /alerts` lists them,
newest last, so `curl` can show what a real receiver would have got. `SinkView` serves the same list
on the demo's own server (`/ui/demo/sink.json`, behind its tokens), where the web UI's Alerts view
reads it."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from infersight.storage.schema import DdlSource
from infersight.webui import DEMO_SINK

RECEIVED: web.AppKey[deque[dict[str, Any]]] = web.AppKey("received", deque)
ORIGIN = web.AppKey("origin", str)
MAX_KEPT = 1000
VIEW_PATH = "/ui/demo/sink.json"
MAX_LISTED = 200


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


@dataclass(frozen=True)
class SinkView:
    """A server component (the shape of `server.component.Component`) that serves what `sink` received,
    read-only, on the demo's server: the newest `MAX_LISTED` first, and the page told where (`DEMO_SINK`)."""

    sink: web.Application
    name: str = "demo-sink-view"
    ddl: tuple[DdlSource, ...] = ()

    def attach(self, app: web.Application) -> None:
        app[DEMO_SINK] = VIEW_PATH
        app.router.add_get(VIEW_PATH, self._view)

    async def _view(self, request: web.Request) -> web.Response:
        items = received(self.sink)
        return web.json_response({"notifications": items[::-1][:MAX_LISTED], "count": len(items)},
                                 headers={"Cache-Control": "no-cache"})
