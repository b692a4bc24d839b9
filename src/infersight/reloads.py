"""SIGHUP re-reads configuration files: each area registers what it re-reads, one handler runs them all.

asyncio keeps one handler per signal, so areas never install their own: whichever attached last would win.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)
RELOADERS = web.AppKey("reloaders", list)


def on_reload(app: web.Application, name: str, reload: Callable[[], object]) -> None:
    """Run `reload` on SIGHUP while `app` serves (the first registration installs the handler)."""
    if RELOADERS not in app:
        app[RELOADERS] = []
        app.on_startup.append(_install)
        app.on_cleanup.append(_remove)
    app[RELOADERS].append((name, reload))


def reload_all(app: web.Application) -> None:
    """Every registered re-read, in registration order; one failing does not stop the others."""
    for name, reload in app[RELOADERS]:
        try:
            reload()
        except Exception:  # a reload error is logged and the running configuration kept
            log.exception("SIGHUP: %s reload failed", name)


async def _install(app: web.Application) -> None:
    import asyncio

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_all, app)


async def _remove(app: web.Application) -> None:
    import asyncio

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
