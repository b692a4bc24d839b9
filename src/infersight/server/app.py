"""`infersight server`: the guarded HTTP surface plus an explicit list of components over one store."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence

from aiohttp import web

from infersight.config import Config, ConfigError
from infersight.gateway import clickhouse_http
from infersight.gateway import grpc as otlp_grpc
from infersight.gateway.app import base_app
from infersight.gateway.auth import Tokens, is_loopback, parse_listen
from infersight.server.access import Traffic, bind_error, check_port
from infersight.server.component import Component
from infersight.server.components import default_components
from infersight.server.metrics import loaded_summary
from infersight.storage import open_storage, schema_options
from infersight.storage.base import Storage
from infersight.storage.schema import ensure_schema

log = logging.getLogger(__name__)


def build_app(cfg: Config, storage: Storage, components: Sequence[Component]) -> web.Application:
    """The server's application: each component attached in order (routes, hooks, public paths)."""
    app = base_app(cfg.server)
    for component in components:
        component.attach(app)
    return app


def check_auth(cfg: Config) -> None:
    """No token, no listening off loopback; token files must be readable before the store opens."""
    host, _ = parse_listen(cfg.server.listen)
    if not is_loopback(host) and not Tokens(cfg.server):
        raise ConfigError(f"server.auth_token: required when listening on a non-loopback address "
                          f"({cfg.server.listen}); or give each client its own in server.tokens")
    otlp_grpc.check_listen(cfg.server)
    clickhouse_http.check_listen(cfg.server)


async def serve(cfg: Config, storage: Storage, components: Sequence[Component],
                stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then stop accepting and flush the write queue."""
    host, port = parse_listen(cfg.server.listen)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    traffic = Traffic()  # each request at DEBUG, a per-minute INFO summary, failing routes on change
    app = build_app(cfg, storage, components)
    traffic.attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=traffic.access_logger_class())
    await runner.setup()
    summary = asyncio.create_task(traffic.run())
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            raise ConfigError(bind_error(cfg.server.listen, err)) from None
        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        print(f"infersight server: OTLP/HTTP on {base}/v1/{{metrics,traces,logs}}, "
              f"query API on {base}/api/v1/query, data in {cfg.server.data_dir}", flush=True)
        log.info("%s", loaded_summary(cfg, runner.app))
        await stop.wait()
        log.info("stopping: flushing queued rows")
    finally:
        await runner.cleanup()
        summary.cancel()


def run_server(cfg: Config) -> int:
    """Open the store, create the tables of the default components, serve until a signal."""
    check_auth(cfg)
    check_port(cfg.server.listen)  # a busy port is one line, before a store is opened (or created)
    # The hot path allocates many short-lived containers; fewer gen-0 collections keep it fast.
    gc.set_threshold(50_000, 20, 20)
    storage = open_storage(cfg.server.storage, cfg.server.data_dir)
    try:
        components = default_components(cfg, storage)
        ensure_schema(storage, schema_options(cfg.server.storage), [d for c in components for d in c.ddl])
        asyncio.run(serve(cfg, storage, components))
    finally:
        storage.close()
    return 0
