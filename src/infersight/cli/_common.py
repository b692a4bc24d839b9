"""What the commands share: the client of the server's own API, bearer-token look-up, tables, the offline store.

The base install is the agent, so nothing here loads the server extra (chDB, pyarrow) at import time.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from infersight.config import Config, load_config
from infersight.gateway.auth import client_token, parse_listen, scope_needed
from infersight.storage import Storage, open_storage
from infersight.storage.schema import DdlSource

TokenSource = Callable[[str], "str | None"]  # scope -> bearer token (None: send none)


class CliError(Exception):
    """A failure the command reports as one `error:` line."""


class ApiError(CliError):
    """The server refused the call (`status`: its HTTP status) or could not be reached (`status` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def fail(message: object, code: int) -> int:
    """Print `error: message` on stderr and return the exit code `code`."""
    print(f"error: {message}", file=sys.stderr)
    return code


class Tokens:
    """--token for every call, else the config file's first token with the scope the call needs."""

    def __init__(self, given: str | None, config: Config | Path | None) -> None:
        self._given = given
        self._config = config

    def __call__(self, scope: str) -> str | None:
        if self._given is not None or self._config is None:
            return self._given
        if not isinstance(self._config, Config):
            self._config = load_config(self._config)  # only when a token is needed: ConfigError is the caller's
        return client_token(self._config.server, scope)


class ApiClient:
    """JSON calls to a running server's API; each call carries a token of the scope the server asks for it."""

    def __init__(self, base_url: str, tokens: TokenSource = lambda scope: None, timeout_seconds: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._timeout = timeout_seconds

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer (None for an empty body); ApiError when refused or unreachable."""
        url = self.base_url + path
        token = self._tokens(scope_needed(method, path.partition("?")[0]))
        req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                text = json.loads(text).get("error", text)
            raise ApiError(f"{url}: HTTP {err.code}: {text.strip()}", err.code) from None
        except (urllib.error.URLError, OSError) as err:
            raise ApiError(f"{url}: cannot reach the server: {getattr(err, 'reason', err)}") from None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def query(self, sql: str) -> dict[str, Any]:
        """`POST /api/v1/query`: {"rows": [...], "row_count": n, "truncated": bool, ...}."""
        return self.post("/api/v1/query", {"sql": sql})


def server_url(text: str) -> str:
    """`HOST:PORT`, `:PORT` or a URL as the server's base URL."""
    text = text.strip().rstrip("/")
    if "://" in text:
        return text
    host, port = parse_listen(text)
    return listen_url(f"{host}:{port}")


def listen_url(listen: str) -> str:
    """The URL a client on this node reaches a server listening on `listen` (HOST:PORT) at."""
    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def answers(url: str, timeout_seconds: float = 2.0) -> bool:
    """Whether an infersight server answers `GET /healthz` at `url` (public: no token needed)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout_seconds) as resp:
            return resp.status == 200 and json.loads(resp.read() or b"{}").get("status") == "ok"
    except (OSError, ValueError):
        return False


def store_locked(data_dir: Path) -> bool:
    """Whether a running process (a server, `infersight up`) holds the embedded store in `data_dir`.

    ClickHouse holds an exclusive flock on `clickhouse/status` while it runs; probing it here keeps chDB
    from printing its own "Cannot lock file" exceptions.
    """
    try:
        fd = os.open(data_dir / "clickhouse" / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        return err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken by the probe
    return False


def running_server(given: str | None, cfg: Config, data_dir: Path | None) -> str | None:
    """The server URL a command reads through, or None for the store of a stopped server.

    --server wins. Else the store (`data_dir` or server.data_dir) is read directly when it is there and
    free; when a running server holds it (or there is none here) the server at server.listen of the
    configuration (default 127.0.0.1:4318) is used, said on stderr. A locked store with no server
    answering is one CliError sentence.
    """
    if given:
        return server_url(given)
    if cfg.server.storage.backend != "embedded":
        return None
    data_dir = data_dir or cfg.server.data_dir
    url = listen_url(cfg.server.listen)
    locked = store_locked(data_dir)
    if not locked and (data_dir / "clickhouse").is_dir():
        return None
    if answers(url):
        why = "is in use by a running server" if locked else "is not here"
        print(f"note: the store in {data_dir} {why}; using the server at {url} (server.listen)", file=sys.stderr)
        return url
    if locked:
        raise CliError(f"the store in {data_dir} is locked by another process (a running infersight server?) "
                       f"and no server answers at {url} (server.listen): pass --server URL of the server that "
                       "holds it, --config with its server.listen, or stop it")
    return None  # offline_store explains that there is no store


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, rule: bool = False, pad_last: bool = True) -> str:
    """Left-aligned columns two spaces apart; `rule` puts dashes under the header; the last column ragged unless
    `pad_last`."""
    cells = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    pads = widths if pad_last else [*widths[:-1], 0]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, pads, strict=True)) for r in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def offline_store(cfg: Config, data_dir: Path | None, ddl: Sequence[DdlSource] | None) -> Iterator[Storage]:
    """The store of a server that is not running (`data_dir` or server.data_dir, or its ClickHouse), closed after.

    `ddl` (commands that write state pass `server.tables.all_ddl()`): missing tables are created; None reads
    the store as found.
    """
    data_dir = data_dir or cfg.server.data_dir
    if cfg.server.storage.backend == "embedded" and not (data_dir / "clickhouse").is_dir():
        raise CliError(f"no infersight store in {data_dir}: no embedded store here (expected "
                       f"{data_dir / 'clickhouse'}); use --data-dir, --config or --server URL")
    if cfg.server.storage.backend == "embedded" and store_locked(data_dir):
        raise CliError(f"the store in {data_dir} is locked by another process (a running infersight server?): "
                       "use --server URL of that server, or stop it")
    storage = open_storage(cfg.server.storage, data_dir, ddl)
    try:
        yield storage
    finally:
        storage.close()
