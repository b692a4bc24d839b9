"""The server's access log: each request at DEBUG, a per-minute INFO summary, failing routes logged on change.

Every OTLP POST at INFO was 95 % of the log. Now `infersight.access` logs each request at DEBUG (run with
`--log-level debug` to see them); every `interval_seconds` one INFO line counts requests (and OTLP points,
where the receiver reports them) by route and status; a route that starts answering 5xx logs one WARNING,
and one INFO when it answers below 500 again, with how many requests failed in between.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from infersight.config import ConfigError
from infersight.gateway.auth import parse_listen

log = logging.getLogger("infersight.access")
OTLP_PREFIX = "/v1/"


def route_of(request: web.BaseRequest) -> str:
    """`metrics`/`traces`/`logs` for OTLP, else the route's pattern (`/api/v1/silences/{id}`), never raw paths."""
    if request.path.startswith(OTLP_PREFIX) and request.method == "POST":
        return request.path[len(OTLP_PREFIX):]
    match = getattr(request, "match_info", None)
    route = getattr(match, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "(no route)"


class Traffic:
    """Counts per (route, status) between summaries and the failing state of each route."""

    def __init__(self, interval_seconds: float = 60.0, logger: logging.Logger = log) -> None:
        self.interval_seconds = interval_seconds
        self.log = logger
        self.requests: Counter[tuple[str, int]] = Counter()
        self.points: Counter[tuple[str, int]] = Counter()
        self.failing: dict[str, tuple[float, int]] = {}  # route -> (since, failed requests)
        self._since = time.monotonic()

    def record(self, request: web.BaseRequest, status: int, seconds: float) -> None:
        route = route_of(request)
        self.requests[(route, status)] += 1
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug('%s "%s %s" %d %.3fs', request.remote, request.method, request.path_qs, status, seconds)
        if status >= 500:
            since, failed = self.failing.get(route, (time.monotonic(), 0))
            if not failed:
                self.log.warning("%s %s failing: HTTP %d (further failures counted in the summary until it "
                                 "recovers)", request.method, route, status)
            self.failing[route] = (since, failed + 1)
        elif route in self.failing:
            since, failed = self.failing.pop(route)
            self.log.info("%s %s recovered: HTTP %d after %d failed request%s over %.0f s", request.method, route,
                          status, failed, "" if failed == 1 else "s", time.monotonic() - since)

    def observe(self, signal: str, status: int, points: int, rejected: int, reason: str) -> None:
        """An OTLP receiver observer (signal, status, rows accepted, items rejected, reason)."""
        self.points[(signal, status)] += points

    def summary(self) -> str | None:
        """The line for the requests since the last one (None when there were none); resets the counts."""
        elapsed = time.monotonic() - self._since
        self._since = time.monotonic()
        if not self.requests:
            return None
        parts = []
        for (route, status), n in sorted(self.requests.items()):
            points = self.points.get((route, status))
            parts.append(f"{route} {status} ×{n:,}" + (f" ({points:,} points)" if points else ""))
        self.requests.clear()
        self.points.clear()
        return f"requests in the last {elapsed:.0f} s: " + ", ".join(parts)

    async def run(self) -> None:
        """Log the summary every interval_seconds until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(self.interval_seconds)
                self._flush()
        finally:
            self._flush()

    def _flush(self) -> None:
        line = self.summary()
        if line:
            self.log.info("%s", line)

    def access_logger_class(self) -> type[AbstractAccessLogger]:
        traffic = self

        class AccessLog(AbstractAccessLogger):
            def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
                traffic.record(request, response.status, time)

        return AccessLog

    def attach(self, app: web.Application) -> None:
        """Count OTLP points too where the receiver publishes its observers (`gateway.app.GATEWAY`)."""
        from infersight.gateway import app as gateway_app

        key: Any = getattr(gateway_app, "GATEWAY", None)
        if key is not None and key in app:
            app[key].observers.append(self.observe)


def check_port(listen: str) -> None:
    """ConfigError in one sentence when `listen` is taken (checked before any store is opened or created)."""
    host, port = parse_listen(listen)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"server.listen: cannot resolve {host!r}: {err.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is not busy
        try:
            s.bind(addr)
        except OSError as err:
            raise ConfigError(bind_error(listen, err)) from None


def bind_error(listen: str, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return (f"server.listen: {listen} is already in use (another infersight server or `infersight up`?): "
                "stop it, or pick another address with --listen")
    if err.errno == errno.EACCES:
        return f"server.listen: {listen}: permission denied (ports below 1024 need privileges)"
    return f"server.listen: cannot listen on {listen}: {err.strerror or err}"
