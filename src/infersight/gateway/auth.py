"""Who may call what: the Host and cross-site checks, scoped bearer tokens and a failed-token limiter.

Without tokens (the loopback default) the callers to refuse are web pages in the user's browser: DNS
rebinding arrives with a foreign Host, and cross-site requests are simple POSTs (text/plain, forms) that
skip the CORS preflight. A JSON body, a bearer token or a method other than GET/HEAD/POST makes the
browser ask first, and nothing here answers a preflight, so those never arrive from another origin.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from yarl import URL

from infersight.config import ConfigError, ServerConfig
from infersight.gateway import otlp

log = logging.getLogger(__name__)

_CLIENT = "infersight_client"
SCOPES = ("ingest", "read", "admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_POSTS = frozenset({"/api/v1/query"})  # POSTs that only read: the `read` scope suffices
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_RECHECK_SECONDS = 1.0
MAX_TRACKED_ADDRESSES = 10_000
# The page loads only its own script and stylesheet; no inline code, no frames, no plugins.
CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
# google.rpc.Code of the Status body for refusals of OTLP requests.
_RPC = {401: 16, 403: 7, 415: 3, 421: 7, 429: 8}


def client_of(request: web.Request) -> str:
    """The authenticated client's name ('' when the server runs without tokens)."""
    return str(request.get(_CLIENT, ""))


def parse_listen(listen: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"server.listen: {listen!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scope_needed(method: str, path: str) -> str:
    """Ingest for OTLP, read for GETs and the query API, admin for every other state change."""
    if path.startswith("/v1/"):
        return "ingest"
    if method in SAFE_METHODS or path in READ_POSTS:
        return "read"
    return "admin"


def _digest(token: str) -> bytes:
    # Equal-length digests: compare_digest then leaks neither content nor length.
    return hashlib.sha256(token.encode()).digest()


def _read_token(path: Path) -> str:
    text = path.read_text().strip()
    if not text:
        raise ValueError("file is empty")
    return text


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class _Token:
    __slots__ = ("name", "scopes", "digest", "file", "stamp")

    def __init__(self, name: str, scopes: frozenset[str], digest: bytes, file: Path | None = None,
                 stamp: tuple[int, int, int] | None = None) -> None:
        self.name, self.scopes, self.digest, self.file, self.stamp = name, scopes, digest, file, stamp


class Tokens:
    """The server's bearer tokens. Token files are re-read when they change (checked at most once per
    TOKEN_RECHECK_SECONDS, and at once when a token does not match, so clients switched to a new token
    are neither refused nor counted as guessing); an unreadable or empty file keeps the previous token
    (a half-written file must not lock every agent out)."""

    def __init__(self, cfg: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._checked = clock()
        self._tokens: list[_Token] = []
        if cfg.auth_token and cfg.auth_token.get_secret_value():
            self._tokens.append(_Token("auth_token", frozenset(SCOPES), _digest(cfg.auth_token.get_secret_value())))
        for i, t in enumerate(cfg.tokens):
            if t.token is not None:
                self._tokens.append(_Token(t.name, frozenset(t.scopes), _digest(t.token.get_secret_value().strip())))
                continue
            if t.token_file is None:  # TokenConfig's validator requires exactly one of the two
                raise ConfigError(f"server.tokens.{i}: set exactly one of token and token_file")
            path = Path(t.token_file)
            stamp = _stamp(path)
            try:
                secret = _read_token(path)
            except (OSError, ValueError) as err:
                raise ConfigError(f"server.tokens.{i}.token_file: {path}: {getattr(err, 'strerror', None) or err}"
                                  ) from None
            self._tokens.append(_Token(t.name, frozenset(t.scopes), _digest(secret), path, stamp))

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def match(self, given: str) -> _Token | None:
        """The token equal to `given`; every token is compared, so timing does not tell which."""
        digest = _digest(given)
        self._refresh(force=False)
        found = self._find(digest)
        if found is None and self._refresh(force=True):
            found = self._find(digest)
        return found

    def _find(self, digest: bytes) -> _Token | None:
        found = None
        for t in self._tokens:
            if hmac.compare_digest(digest, t.digest) and found is None:
                found = t
        return found

    def _refresh(self, force: bool) -> bool:
        """Re-read the token files that changed; True when a token changed."""
        now = self._clock()
        if not force and now - self._checked < TOKEN_RECHECK_SECONDS:
            return False
        self._checked = now
        changed = False
        for t in self._tokens:
            if t.file is None:
                continue
            stamp = _stamp(t.file)
            if stamp == t.stamp:
                continue
            t.stamp = stamp
            try:
                t.digest = _digest(_read_token(t.file))
            except (OSError, ValueError) as err:
                log.warning("token %r: cannot re-read %s (%s); keeping the previous token", t.name, t.file, err)
                continue
            log.info("token %r: re-read %s", t.name, t.file)
            changed = True
        return changed


def client_token(cfg: ServerConfig, scope: str) -> str | None:
    """A token of `cfg` with `scope`, for the CLI clients given the server's config file."""
    if cfg.auth_token and cfg.auth_token.get_secret_value():
        return cfg.auth_token.get_secret_value()
    for i, t in enumerate(cfg.tokens):
        if scope not in t.scopes:
            continue
        if t.token is not None:
            return t.token.get_secret_value().strip()
        if t.token_file is None:  # TokenConfig's validator requires exactly one of the two
            raise ConfigError(f"server.tokens.{i}: set exactly one of token and token_file")
        try:
            return _read_token(Path(t.token_file))
        except (OSError, ValueError) as err:
            raise ConfigError(f"server.tokens.{i}.token_file: {t.token_file}: "
                              f"{getattr(err, 'strerror', None) or err}") from None
    return None


class FailureLimiter:
    """Wrong-token attempts per remote address: after `max_failures` within `window_seconds` of the first,
    that address gets 429 until the window ends. At most MAX_TRACKED_ADDRESSES are remembered."""

    def __init__(self, max_failures: int, window_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = MAX_TRACKED_ADDRESSES) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._max_addresses = max_addresses
        self._seen: dict[str, tuple[float, int]] = {}  # address -> (window start, failures); oldest first

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait (0: it may try)."""
        entry = self._seen.get(address)
        if entry is None:
            return 0.0
        left = entry[0] + self.window - self._clock()
        if left <= 0:
            del self._seen[address]
            return 0.0
        return left if entry[1] >= self.max_failures else 0.0

    def failed(self, address: str) -> None:
        now = self._clock()
        entry = self._seen.pop(address, None)
        if entry is None or now - entry[0] >= self.window:
            entry = (now, 0)
            if len(self._seen) >= self._max_addresses:
                self._prune(now)
        self._seen[address] = (entry[0], entry[1] + 1)

    def _prune(self, now: float) -> None:
        for address in [a for a, (start, _) in self._seen.items() if now - start >= self.window]:
            del self._seen[address]
        while len(self._seen) >= self._max_addresses:
            del self._seen[next(iter(self._seen))]


def _split_host(value: str) -> tuple[str, int | None]:
    """'name', 'name:port', '[v6]' or '[v6]:port' → (lower-case name, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, sep, port = value.rpartition(":")
        if not sep or ":" in name or not port.isdigit():  # no port, or a bare IPv6 address
            name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def allowed_hosts(cfg: ServerConfig) -> frozenset[tuple[str, int | None]] | None:
    """The Host values served (None: any)."""
    if cfg.allowed_hosts is not None:
        if "*" in cfg.allowed_hosts:
            return None
        return frozenset(_split_host(h) for h in cfg.allowed_hosts)
    host, _ = parse_listen(cfg.listen)
    if not is_loopback(host):
        return None
    # Any port: rebinding is about the name; a page cannot make localhost resolve elsewhere.
    return frozenset((name, None) for name in (*LOOPBACK_NAMES, host.lower()))


def _host_allowed(header: str | None, hosts: frozenset[tuple[str, int | None]]) -> bool:
    if header is None:
        return True  # HTTP/1.0 without Host: not a browser
    name, port = _split_host(header)
    return (name, port) in hosts or (name, None) in hosts


def _cross_site(request: web.Request) -> str | None:
    """Why a state-changing request looks cross-site (None: it does not)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    try:
        url = URL(origin)
        host, port = url.host, url.port
    except ValueError:
        host = port = None
    ok = False
    if host is not None and port is not None:
        name, host_port = _split_host(request.headers.get("Host", ""))
        ok = (host.lower().rstrip("."), port) == (name, host_port if host_port is not None else port)
    return None if ok else f"cross-origin request refused (Origin {origin} does not match Host)"


def refuse(request: web.Request, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error as the caller reads it: an OTLP Status for /v1/*, {"error": ...} elsewhere."""
    if request.path.startswith("/v1/"):
        mt = otlp.PROTOBUF if request.content_type == otlp.PROTOBUF else otlp.JSON
        return web.Response(status=status, body=otlp.encode_status(mt, _RPC.get(status, 2), message),
                            content_type=mt, headers=headers)
    return web.json_response({"error": message}, status=status, headers=headers)


class PublicPaths:
    """The paths served without a bearer token; whoever adds such a route declares it (`allow_public`)."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.prefixes: tuple[str, ...] = ()

    def __contains__(self, path: str) -> bool:
        if path in self.paths:
            return True
        return path.startswith(self.prefixes) and ".." not in path.split("/")


PUBLIC = web.AppKey("infersight_public_paths", PublicPaths)


def allow_public(app: web.Application, paths: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> None:
    """Serve `paths` and everything under `prefixes` without a token (health checks; the UI's page and assets,
    which then send the token with every API call). Declared next to the route, so no app can miss it."""
    public = app[PUBLIC]
    public.paths.update(paths)
    public.prefixes += prefixes


def middleware(cfg: ServerConfig, public: PublicPaths, clock: Callable[[], float] = time.monotonic):
    """Host check, cross-site refusal, token and scope check, JSON-only state changes; in that order."""
    tokens = Tokens(cfg, clock)
    limiter = FailureLimiter(cfg.auth_max_failures, cfg.auth_failure_window_seconds, clock)
    hosts = allowed_hosts(cfg)

    @web.middleware
    async def guard(request: web.Request, handler):
        if hosts is not None and not _host_allowed(request.headers.get("Host"), hosts):
            return refuse(request, 421, f"Host {request.headers.get('Host')!r} is not served here "
                                        "(server.allowed_hosts); refused against DNS rebinding")
        unsafe = request.method not in SAFE_METHODS
        if unsafe and (why := _cross_site(request)):
            return refuse(request, 403, why)
        given = request.headers.get("Authorization", "")
        bearer = given.startswith("Bearer ")
        if tokens and request.path not in public:
            address = request.remote or ""
            wait = limiter.retry_after(address)
            if wait:
                return refuse(request, 429, f"too many wrong bearer tokens from {address}; retry in "
                                            f"{math.ceil(wait)} s", {"Retry-After": str(math.ceil(wait))})
            token = tokens.match(given[7:]) if bearer else None
            if token is None:
                if given:
                    limiter.failed(address)
                resp = refuse(request, 401, "missing or invalid bearer token (Authorization: Bearer ...)")
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
            scope = scope_needed(request.method, request.path)
            if scope not in token.scopes:
                return refuse(request, 403, f"token {token.name!r} lacks the {scope!r} scope this request needs")
            request[_CLIENT] = token.name
        if unsafe and not bearer and not request.path.startswith("/v1/") \
                and request.content_type != "application/json":
            return refuse(request, 415, "state-changing requests need Content-Type: application/json "
                                        "(or a bearer token)")
        return await handler(request)

    return guard


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response: no MIME sniffing, no framing, no referrer, and the page's CSP."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", CSP)
