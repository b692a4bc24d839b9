"""The ClickHouse HTTP interface, read-only, on a port of its own (`server.clickhouse_listen`, default 127.0.0.1:8123).

ClickHouse clients (clickhouse-connect, `@clickhouse/client`, Grafana's ClickHouse plugin over HTTP)
then read the embedded store as if it were a ClickHouse server. Every query goes through the query
API's sandbox (`QueryApi.prepare`: one SELECT, the allow-listed functions and tables, the server's
limits, run with `readonly=1`), so this port reaches exactly what POST /api/v1/query reaches;
the result is passed through in the store's own output format, which is what ClickHouse clients parse.

What is served, as ClickHouse serves it:
- `GET|POST /` (and `/ping`, `/?query=`): the query in `?query=` and/or the body (joined with a
  newline), a trailing `FORMAT <name>` or `?default_format=` (default TabSeparated), `?database=`
  (only the telemetry database), `?query_id=`; gzip request bodies; settings given as URL
  parameters are ignored (the server's limits apply);
- answers carry `X-ClickHouse-Format`, `X-ClickHouse-Query-Id`, `X-ClickHouse-Timezone`,
  `X-ClickHouse-Server-Display-Name`, `X-ClickHouse-Summary`; errors are `Code: N. DB::Exception: ...`
  with `X-ClickHouse-Exception-Code` (ClickHouse's codes: 497 for what the sandbox refuses);
- auth: with tokens configured, a token with the `read` scope as `Authorization: Bearer`, as the
  password of HTTP basic auth (any user name: Grafana's and the clients' user/password fields), or in
  `X-ClickHouse-Key`; never in the URL. Without tokens the port must be on loopback (as the HTTP one).
  Browsers are refused (an `Origin` or cross-site `Sec-Fetch-Site` header), and the Host check of
  the main port applies.
- two handshake statements clients send on connect (version/timezone and the settings list) are
  answered by fixed queries outside the sandbox: they read no telemetry.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from infersight.config import ConfigError, ServerConfig
from infersight.gateway import auth
from infersight.gateway.query import QueryApi, Refused
from infersight.storage.base import DataError, LimitExceeded, QueryError, Storage, StorageError, Timeout
from infersight.storage.errors import code_of

log = logging.getLogger(__name__)

# Output formats passed through from the store; ClickHouse's names and aliases.
FORMATS = {f.lower(): f for f in (
    "TabSeparated", "TabSeparatedRaw", "TabSeparatedWithNames", "TabSeparatedWithNamesAndTypes",
    "TabSeparatedRawWithNames", "TabSeparatedRawWithNamesAndTypes", "CSV", "CSVWithNames", "CSVWithNamesAndTypes",
    "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings", "JSONEachRow", "JSONStringsEachRow",
    "JSONCompactEachRow", "JSONCompactEachRowWithNames", "JSONCompactEachRowWithNamesAndTypes",
    "JSONCompactStringsEachRow", "JSONCompactStringsEachRowWithNamesAndTypes", "JSONObjectEachRow", "NDJSON",
    "JSONLines", "Native", "RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Arrow", "ArrowStream",
    "Parquet", "Values", "Pretty", "PrettyCompact", "PrettyNoEscapes", "PrettyCompactMonoBlock", "Vertical",
    "Markdown", "XML", "Null",
)}
FORMATS.update({"tsv": "TabSeparated", "tsvraw": "TabSeparatedRaw", "tsvwithnames": "TabSeparatedWithNames",
                "tsvwithnamesandtypes": "TabSeparatedWithNamesAndTypes"})
CONTENT_TYPES = {"TabSeparated": "text/tab-separated-values", "CSV": "text/csv", "JSON": "application/json",
                 "Pretty": "text/plain", "Values": "text/plain", "Vertical": "text/plain", "Markdown": "text/markdown",
                 "XML": "application/xml"}
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*\Z", re.IGNORECASE)
# What clients send on connect (whitespace-normalised, lower-cased) -> the statement that answers it.
HANDSHAKES = {
    "select version(), timezone()": "SELECT version(), timezone()",
    "select name, value, readonly from system.settings limit 10000":
        "SELECT name, value, toUInt8(1) AS readonly FROM system.settings LIMIT 10000",
    "select 1 as check": "SELECT 1 AS check",
    "select 1": "SELECT 1",
    "select version()": "SELECT version()",
    "select timezone()": "SELECT timezone()",
}
# ClickHouse error codes for what this interface refuses itself.
ACCESS_DENIED, UNKNOWN_DATABASE, UNKNOWN_FORMAT, TIMEOUT, TOO_MANY_ROWS_OR_BYTES = 497, 81, 73, 159, 396
MEMORY_LIMIT, AUTH_FAILED, TOO_MANY_QUERIES, SYNTAX_ERROR, BAD_ARGUMENTS, NETWORK_ERROR = 241, 516, 202, 62, 36, 210
DISPLAY_NAME = "infersight"
ERROR_NAMES = {ACCESS_DENIED: "ACCESS_DENIED", UNKNOWN_DATABASE: "UNKNOWN_DATABASE", UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
               TIMEOUT: "TIMEOUT_EXCEEDED", TOO_MANY_ROWS_OR_BYTES: "TOO_MANY_ROWS_OR_BYTES",
               MEMORY_LIMIT: "MEMORY_LIMIT_EXCEEDED", AUTH_FAILED: "AUTHENTICATION_FAILED",
               TOO_MANY_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES", SYNTAX_ERROR: "SYNTAX_ERROR",
               BAD_ARGUMENTS: "BAD_ARGUMENTS", NETWORK_ERROR: "NETWORK_ERROR", 47: "UNKNOWN_IDENTIFIER",
               60: "UNKNOWN_TABLE", 46: "UNKNOWN_FUNCTION", 53: "TYPE_MISMATCH", 43: "ILLEGAL_TYPE_OF_ARGUMENT"}


class ChError(Exception):
    def __init__(self, code: int, message: str, http: int = 500) -> None:
        super().__init__(message)
        self.code, self.http = code, http


@dataclass
class ChState:
    listen: str
    http: Any = None  # the ClickHouseHttp handlers (observers: the server's metrics)
    runner: web.AppRunner | None = None
    port: int = 0


CLICKHOUSE = web.AppKey("infersight_clickhouse_http", ChState)


def _content_type(fmt: str) -> str:
    for prefix, ct in CONTENT_TYPES.items():
        if fmt.startswith(prefix):
            return ct + ("; charset=UTF-8" if ct.startswith("text/") or ct.endswith("json") else "")
    if fmt.startswith(("JSON", "NDJSON")):
        return "application/x-ndjson; charset=UTF-8" if "EachRow" in fmt or fmt == "NDJSON" else "application/json"
    return "application/octet-stream"


def split_format(sql: str, default: str) -> tuple[str, str]:
    """(query without its trailing FORMAT clause, ClickHouse format name); ChError for unknown formats."""
    m = _TRAILING_FORMAT.search(sql)
    name = default
    if m:
        name, sql = m.group(1), sql[: m.start()]
    fmt = FORMATS.get(name.lower())
    if fmt is None:
        raise ChError(UNKNOWN_FORMAT, f"Unknown or not allowed output format {name} (the interface is read-only; "
                                      f"output formats: {', '.join(sorted(set(FORMATS.values())))})", 400)
    return sql.strip().rstrip(";").strip(), fmt


def _password(request: web.Request) -> str | None:
    given = request.headers.get("Authorization", "")
    if given.startswith("Bearer "):
        return given[7:]
    if given.startswith("Basic "):
        try:
            return base64.b64decode(given[6:], validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return request.headers.get("X-ClickHouse-Key")


class ClickHouseHttp:
    """The handlers over the query API's sandbox (`QueryApi`), with a pool of their own."""

    def __init__(self, cfg: ServerConfig, storage: Storage, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.storage = storage
        self.api = QueryApi(cfg.query, storage)
        self.tokens = auth.Tokens(cfg, clock)
        self.limiter = auth.FailureLimiter(cfg.auth_max_failures, cfg.auth_failure_window_seconds, clock)
        listen = cfg.clickhouse_listen or cfg.listen
        self.hosts = auth.allowed_hosts(cfg.model_copy(update={"listen": listen}))
        self._pool = ThreadPoolExecutor(cfg.query.max_concurrent_queries, thread_name_prefix="infersight-ch")
        self._running = 0
        self.observers: list[Callable[[str, str, float], None]] = []  # (interface, outcome, seconds)

    def _guard(self, request: web.Request) -> None:
        host = request.headers.get("Host")
        if self.hosts is not None and host is not None and not auth._host_allowed(host, self.hosts):
            raise ChError(ACCESS_DENIED, f"Host {host!r} is not served here (server.allowed_hosts)", 421)
        site = request.headers.get("Sec-Fetch-Site")
        if request.headers.get("Origin") is not None or (site is not None and site not in ("none", "same-origin")):
            raise ChError(ACCESS_DENIED, "requests from web pages are refused on the ClickHouse interface", 403)
        if "password" in request.query:
            raise ChError(AUTH_FAILED, "credentials in the URL are refused: use basic auth, X-ClickHouse-Key "
                                       "or Authorization: Bearer", 401)
        if not self.tokens:
            return
        address = request.remote or ""
        wait = self.limiter.retry_after(address)
        if wait:
            raise ChError(AUTH_FAILED, f"too many wrong tokens from {address}; retry in {math.ceil(wait)} s", 429)
        given = _password(request)
        token = self.tokens.match(given) if given else None
        if token is None:
            if given:
                self.limiter.failed(address)
            raise ChError(AUTH_FAILED, "infersight: a token with the read scope is needed (password of basic "
                                       "auth, X-ClickHouse-Key or Authorization: Bearer)", 401)
        if "read" not in token.scopes:
            raise ChError(ACCESS_DENIED, f"token {token.name!r} lacks the 'read' scope", 403)

    async def _text(self, request: web.Request) -> str:
        raw = await request.read() if request.method == "POST" else b""
        enc = (request.headers.get("Content-Encoding") or "").lower()
        if raw and enc in ("gzip", "deflate"):
            z = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
            try:
                raw = z.decompress(raw, self.cfg.max_body_bytes + 1)
            except zlib.error as err:
                raise ChError(BAD_ARGUMENTS, f"cannot decompress the body: {err}", 400) from None
            if len(raw) > self.cfg.max_body_bytes:
                raise ChError(TOO_MANY_ROWS_OR_BYTES, "query exceeds server.max_body_bytes", 413)
        elif raw and enc not in ("", "identity"):
            raise ChError(BAD_ARGUMENTS, f"unsupported Content-Encoding {enc!r}", 400)
        try:
            body = raw.decode()
        except UnicodeDecodeError:
            raise ChError(SYNTAX_ERROR, "query is not UTF-8", 400) from None
        parts = [p for p in (request.query.get("query", ""), body) if p.strip()]
        if not parts:
            raise ChError(SYNTAX_ERROR, "Empty query", 400)
        return "\n".join(parts)

    def run(self, text: str, default_format: str) -> tuple[bytes, str]:
        sql, fmt = split_format(text, default_format)
        handshake = HANDSHAKES.get(" ".join(sql.split()).lower())
        limits = {"readonly": 1, "max_execution_time": self.cfg.query.max_execution_seconds,
                  "timeout_overflow_mode": "throw", "max_memory_usage": self.cfg.query.max_memory_bytes,
                  "max_result_bytes": self.cfg.query.max_result_bytes, "max_result_rows": self.cfg.query.max_rows,
                  "result_overflow_mode": "throw"}
        statement = handshake or self.api.prepare(sql)
        query_raw = getattr(self.storage, "query_raw", None)
        if query_raw is None:
            raise ChError(NETWORK_ERROR, "this storage backend cannot pass results through", 501)
        try:
            out = query_raw(statement, fmt, limits)
        except Timeout as err:
            raise ChError(TIMEOUT, f"{err} (server.query.max_execution_seconds)", 500) from None
        except LimitExceeded as err:
            code = code_of(str(err)) or TOO_MANY_ROWS_OR_BYTES
            raise ChError(code, f"{err} (server.query.max_rows / max_result_bytes / max_memory_bytes)", 500) from None
        if len(out) > self.cfg.query.max_result_bytes:
            raise ChError(TOO_MANY_ROWS_OR_BYTES, f"result is {len(out)} bytes, over server.query.max_result_bytes "
                                                  f"({self.cfg.query.max_result_bytes})", 500)
        return out, fmt

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        started = time.monotonic()
        outcome = "ok"
        try:
            self._guard(request)
            if request.path == "/ping":
                return web.Response(text="Ok.\n")
            if request.method not in ("GET", "POST", "HEAD"):
                raise ChError(BAD_ARGUMENTS, f"method {request.method} is not served", 405)
            database = request.query.get("database") or request.headers.get("X-ClickHouse-Database")
            if database and database not in (self.storage.database, "default"):
                raise ChError(UNKNOWN_DATABASE, f"Database {database} does not exist (this interface serves "
                                                f"`{self.storage.database}`)", 404)
            text = await self._text(request)
            default = request.query.get("default_format") or request.headers.get("X-ClickHouse-Format") \
                or "TabSeparated"
            if self._running >= self.cfg.query.max_concurrent_queries:
                raise ChError(TOO_MANY_QUERIES, f"{self._running} queries running "
                                                "(server.query.max_concurrent_queries)", 429)
            self._running += 1
            try:
                body, fmt = await asyncio.get_running_loop().run_in_executor(self._pool, self.run, text, default)
            finally:
                self._running -= 1
        except ChError as err:
            outcome = str(err.code)
            return self._error(err, query_id)
        except Refused as err:
            outcome = str(ACCESS_DENIED)
            return self._error(ChError(ACCESS_DENIED, f"infersight sandbox: {err}", 403), query_id)
        except (QueryError, DataError) as err:
            code = code_of(str(err)) or BAD_ARGUMENTS
            outcome = str(code)
            return self._error(ChError(code, str(err), 400), query_id)
        except StorageError as err:
            outcome = str(NETWORK_ERROR)
            return self._error(ChError(NETWORK_ERROR, f"storage unavailable: {err}", 503), query_id)
        finally:
            for observer in self.observers:
                observer("clickhouse_http", outcome, time.monotonic() - started)
        elapsed = time.monotonic() - started
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
                   "total_rows_to_read": "0", "result_rows": "0", "result_bytes": str(len(body)),
                   "elapsed_ns": str(int(elapsed * 1e9))}
        headers = {"X-ClickHouse-Format": fmt, "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": "UTC",
                   "X-ClickHouse-Server-Display-Name": DISPLAY_NAME, "X-ClickHouse-Summary": json.dumps(summary),
                   "Content-Type": _content_type(fmt)}
        return web.Response(body=body, headers=headers)

    @staticmethod
    def _error(err: ChError, query_id: str) -> web.Response:
        # As ClickHouse writes it, error name in parentheses: clients parse code, message and name from it.
        text = str(err) if str(err).startswith("Code: ") else \
            f"Code: {err.code}. DB::Exception: {str(err).rstrip('.')}. ({ERROR_NAMES.get(err.code, 'UNKNOWN')})"
        text += "\n"
        headers = {"X-ClickHouse-Exception-Code": str(err.code), "X-ClickHouse-Query-Id": query_id,
                   "X-ClickHouse-Server-Display-Name": DISPLAY_NAME}
        if err.http == 401:
            headers["WWW-Authenticate"] = 'Basic realm="infersight"'
        if err.http == 429:
            headers["Retry-After"] = "1"
        return web.Response(status=err.http, text=text, headers=headers)


def _app(ch: ClickHouseHttp) -> web.Application:
    app = web.Application(client_max_size=ch.cfg.max_body_bytes, handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", ch.handle)
    app.on_response_prepare.append(auth.security_headers)
    return app


def check_listen(cfg: ServerConfig) -> None:
    if cfg.clickhouse_listen is None:
        return
    try:
        host, _ = auth.parse_listen(cfg.clickhouse_listen)
    except ConfigError:
        raise ConfigError(f"server.clickhouse_listen: {cfg.clickhouse_listen!r} is not HOST:PORT") from None
    if not auth.is_loopback(host) and not auth.Tokens(cfg):
        raise ConfigError(f"server.auth_token: required when server.clickhouse_listen is a non-loopback address "
                          f"({cfg.clickhouse_listen}); or give each client its own in server.tokens")


def attach(app: web.Application, cfg: ServerConfig, storage: Storage) -> None:
    """Serve the ClickHouse HTTP interface on `cfg.clickhouse_listen` while `app` runs (nothing when null)."""
    if cfg.clickhouse_listen is None:
        return
    check_listen(cfg)
    ch = ClickHouseHttp(cfg, storage)
    state = ChState(cfg.clickhouse_listen, ch)
    app[CLICKHOUSE] = state

    async def start(app: web.Application) -> None:
        runner = web.AppRunner(_app(ch), handle_signals=False, access_log=None)
        await runner.setup()
        host, port = auth.parse_listen(cfg.clickhouse_listen or "")
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            message = f"server.clickhouse_listen: cannot listen on {cfg.clickhouse_listen}: {err.strerror or err}"
            if "clickhouse_listen" in cfg.model_fields_set:
                raise ConfigError(message) from None
            log.warning("%s; the ClickHouse interface is off (set server.clickhouse_listen, or null)", message)
            return
        state.runner = runner
        sockets = getattr(site._server, "sockets", None) or []  # the bound port, also for port 0
        state.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(app: web.Application) -> None:
        if state.runner is not None:
            await state.runner.cleanup()
            state.runner = None

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
