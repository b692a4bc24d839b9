"""The HTTP surface against browsers and stolen or wrong credentials, on a real aiohttp server.

DNS rebinding (a foreign Host), cross-site simple POSTs (text/plain, forms, a foreign Origin), the
security headers of the UI, scoped tokens (ingest / read / admin) with rotation through token files,
and the limiter on wrong tokens.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.config import parse_config
from infersight.gateway.auth import client_of
from infersight.server.app import build_app
from infersight.server.components import default_components
from support.net import free_port
from support.slo import slo_doc

PB = {"Content-Type": "application/x-protobuf"}
SILENCE = {"matchers": [{"name": "slo", "value": ".*", "isRegex": True}], "duration": "720h", "comment": "x"}


def metrics_body() -> bytes:
    req = ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="g")
    m.gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000, as_int=1)
    return req.SerializeToString()


async def serve(store, port: int, server: dict | None = None, slo: dict | None = None, routes=()):
    """The whole server app (gateway, SLO engine, web UI) on 127.0.0.1:port."""
    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.02,
                                   "storage": {"database": store.database}, **(server or {})},
                        "slo": {"interval_seconds": 60, **(slo or {})}})
    app = build_app(cfg, store, default_components(cfg, store))
    for path, handler in routes:
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def open_server(store, port, tmp_path, hook):
    """The default set-up: loopback, no token (what `make run` / `infersight up` start)."""
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "avail.yaml").write_text(yaml.safe_dump(slo_doc()))
    runner = await serve(store, port, slo={"paths": [str(specs)],
                                           "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}]})
    async with aiohttp.ClientSession() as s:
        yield s, f"http://127.0.0.1:{port}", specs
    await runner.cleanup()


async def silences(s: aiohttp.ClientSession, url: str) -> list:
    async with s.get(url + "/api/v1/silences") as r:
        assert r.status == 200
        return (await r.json())["silences"]


async def test_foreign_host_is_refused_against_dns_rebinding(open_server, port):
    s, url, _ = open_server
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example"):
        async with s.get(url + "/api/v1/slos", headers={"Host": host}) as r:
            assert r.status == 421, host
            assert "is not served here" in (await r.json())["error"]
        async with s.post(url + "/api/v1/query", json={"sql": "SELECT 1"}, headers={"Host": host}) as r:
            assert r.status == 421
        async with s.get(url + "/ui/", headers={"Host": host}) as r:
            assert r.status == 421
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        async with s.post(url + "/api/v1/query", json={"sql": "SELECT 1 AS x"}, headers={"Host": host}) as r:
            assert r.status == 200, host
            assert (await r.json())["rows"] == [{"x": 1}]


async def test_allowed_hosts_is_configurable_and_off_loopback_any_host_with_a_token(store, port):
    runner = await serve(store, port, {"allowed_hosts": ["infersight.internal", "10.0.0.5:4318"]})
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for host, status in (("infersight.internal", 200), (f"infersight.internal:{port}", 200),
                                 ("10.0.0.5:4318", 200), ("10.0.0.5:80", 421), (f"127.0.0.1:{port}", 421)):
                async with s.get(url + "/api/v1/slos", headers={"Host": host}) as r:
                    assert r.status == status, host
    finally:
        await runner.cleanup()
    # Off loopback a token is required, so no Host list is needed (a browser never sends the token
    # to a foreign origin): the config's listen address says where the server is reachable.
    cfg = parse_config({"server": {"listen": "0.0.0.0:4318", "auth_token": "t0ken",
                                   "storage": {"database": store.database}}})
    runner = web.AppRunner(build_app(cfg, store, default_components(cfg, store)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t0ken"}) as s, \
                s.get(url + "/api/v1/slos", headers={"Host": "infersight.example.com"}) as r:
            assert r.status == 200
    finally:
        await runner.cleanup()


async def test_cross_site_simple_posts_are_refused_and_change_nothing(open_server, store, hook):
    s, url, specs = open_server
    text = {"Content-Type": "text/plain;charset=UTF-8"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # What a foreign page can send without a CORS preflight: text/plain, forms, multipart.
    for headers in (text, form, {"Content-Type": "multipart/form-data; boundary=x"}, {}):
        async with s.post(url + "/api/v1/silences", data=json.dumps(SILENCE), headers=headers) as r:
            assert r.status == 415
            assert "Content-Type: application/json" in (await r.json())["error"]
    assert await silences(s, url) == []
    (specs / "ttft.yaml").write_text(yaml.safe_dump(slo_doc(name="ttft")))
    async with s.post(url + "/api/v1/slos/reload", data="", headers=text) as r:
        assert r.status == 415
    async with s.get(url + "/api/v1/slos") as r:
        assert [x["slo"] for x in (await r.json())["slos"]] == ["avail"]  # not reloaded
    async with s.post(url + "/api/v1/notify/test", data='{"receiver": "oncall"}', headers=text) as r:
        assert r.status == 415
    async with s.post(url + "/api/v1/query", data="SELECT 1", headers=text) as r:
        assert r.status == 415
    async with s.delete(url + "/api/v1/silences/x", headers=text) as r:
        assert r.status == 415
    # OTLP takes only protobuf and JSON (both need a preflight cross-origin).
    async with s.post(url + "/v1/metrics", data=metrics_body(), headers=text) as r:
        assert r.status == 415
    await asyncio.sleep(0.2)
    assert not hook.posts
    assert store.query(f"SELECT count() AS n FROM `{store.database}`.otel_metrics_gauge") == [{"n": 0}]

    # A JSON body from the same origin (the UI, curl, the CLIs) works.
    async with s.post(url + "/api/v1/silences", json=SILENCE) as r:
        assert r.status == 200
    assert len(await silences(s, url)) == 1
    async with s.post(url + "/api/v1/slos/reload", json={}) as r:
        assert r.status == 200 and (await r.json())["slos"] == 2


async def test_a_foreign_origin_is_refused(open_server, port):
    s, url, _ = open_server
    for headers in ({"Origin": "http://evil.example"}, {"Origin": f"http://evil.example:{port}"},
                    {"Origin": "null"}, {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"},  # another port of this host (a local dev server)
                    {"Sec-Fetch-Site": "cross-site", "Origin": f"http://127.0.0.1:{port}"}):
        async with s.post(url + "/api/v1/silences", json=SILENCE, headers=headers) as r:
            assert r.status == 403, headers
            assert "refused" in (await r.json())["error"]
        async with s.delete(url + "/api/v1/silences/x", headers=headers) as r:
            assert r.status == 403
    assert await silences(s, url) == []
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    async with s.post(url + "/api/v1/silences", json=SILENCE, headers=same) as r:
        assert r.status == 200
    # Reads from a link on another site (a top-level navigation) still open the UI.
    async with s.get(url + "/ui/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}) as r:
        assert r.status == 200


async def test_security_headers(open_server):
    s, url, _ = open_server
    async with s.get(url + "/ui/") as r:
        assert r.status == 200
        h = r.headers
        assert "default-src 'self'" in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "unsafe-inline" not in h["Content-Security-Policy"]
        assert (h["X-Frame-Options"], h["X-Content-Type-Options"], h["Referrer-Policy"]) == (
            "DENY", "nosniff", "no-referrer")
    for method, path, kw in (("GET", "/ui/static/app.js", {}), ("GET", "/api/v1/slos", {}),
                             ("GET", "/nope", {}), ("GET", "/ui/static/nope.js", {}),
                             ("POST", "/v1/metrics", {"data": metrics_body(), "headers": PB}),
                             ("POST", "/api/v1/query", {"data": "x"})):
        async with s.request(method, url + path, **kw) as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff", path


CHROMIUM = Path("/usr/bin/chromium")


async def chromium_dom(url: str, tmp_path: Path, *flags: str) -> str:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000",
        *flags, "--dump-dom", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_a_page_on_another_origin_cannot_change_state_through_chromium(open_server, tmp_path):
    """A real browser on a foreign page (another port of 127.0.0.1) sends what needs no preflight:
    a text/plain silence and a form-encoded reload."""
    s, url, specs = open_server
    (specs / "ttft.yaml").write_text(yaml.safe_dump(slo_doc(name="ttft")))

    async def attack(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text='<p id="out">started</p><script src="/a.js"></script>')

    async def attack_js(request: web.Request) -> web.Response:
        return web.Response(content_type="text/javascript", text=(
            f"Promise.allSettled([fetch({json.dumps(url + '/api/v1/silences')}, {{method: 'POST', mode: 'no-cors', "
            f"headers: {{'Content-Type': 'text/plain'}}, body: {json.dumps(json.dumps(SILENCE))}}}), "
            f"fetch({json.dumps(url + '/api/v1/slos/reload')}, {{method: 'POST', mode: 'no-cors', "
            f"body: new URLSearchParams({{a: 'b'}})}})]).then((r) => {{ "
            f"document.getElementById('out').textContent = 'sent ' + r.map((x) => x.status).join(','); }});"))

    evil = web.Application()
    evil.router.add_get("/", attack)
    evil.router.add_get("/a.js", attack_js)
    runner = web.AppRunner(evil)
    await runner.setup()
    evil_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", evil_port).start()
    try:
        dom = await chromium_dom(f"http://127.0.0.1:{evil_port}/", tmp_path)
    finally:
        await runner.cleanup()
    assert "sent fulfilled,fulfilled" in dom  # the browser did send both
    assert await silences(s, url) == []
    async with s.get(url + "/api/v1/slos") as r:
        assert [x["slo"] for x in (await r.json())["slos"]] == ["avail"]  # not reloaded


async def test_dns_rebinding_through_chromium_reads_nothing(open_server, port, tmp_path):
    """evil.example resolving to 127.0.0.1 makes the server same-origin to the attacker's page."""
    dom = await chromium_dom(f"http://evil.example:{port}/api/v1/slos", tmp_path,
                             "--host-resolver-rules=MAP evil.example 127.0.0.1")
    assert "is not served here" in dom and "avail" not in dom


def _tokens(tmp_path: Path) -> tuple[dict, Path]:
    agents = tmp_path / "agents.token"
    agents.write_text("agent-secret-1\n")
    return {"tokens": [{"name": "agents", "scopes": ["ingest"], "token_file": str(agents)},
                       {"name": "sre", "scopes": ["read", "admin"], "token": "sre-secret"},
                       {"name": "viewer", "scopes": ["read"], "token": "view-secret"}]}, agents


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"client": client_of(request)})


async def test_scoped_tokens_separate_ingest_read_and_admin(store, port, tmp_path):
    server, _ = _tokens(tmp_path)
    runner = await serve(store, port, server, routes=[("/api/v1/whoami", whoami)])
    url = f"http://127.0.0.1:{port}"
    bearer = {name: {"Authorization": f"Bearer {tok}"} for name, tok in
              (("agents", "agent-secret-1"), ("sre", "sre-secret"), ("viewer", "view-secret"))}
    try:
        async with aiohttp.ClientSession() as s:
            async def status(method, path, who, **kw):
                headers = {**kw.pop("headers", {}), **bearer.get(who, {})}
                async with s.request(method, url + path, headers=headers, **kw) as r:
                    text = await r.text()
                    return r.status, text

            ingest = {"data": metrics_body(), "headers": PB}
            assert (await status("POST", "/v1/metrics", "agents", **ingest))[0] == 200
            code, text = await status("POST", "/api/v1/query", "agents", json={"sql": "SELECT 1"})
            assert code == 403 and "lacks the 'read' scope" in text and "agents" in text
            for path in ("/api/v1/slos", "/api/v1/alerts", "/api/v1/alerts/history", "/ui/meta.json",
                         "/api/v1/silences"):
                code, text = await status("GET", path, "agents")
                assert code == 403 and "'read'" in text, path
            assert (await status("POST", "/api/v1/silences", "agents", json=SILENCE))[0] == 403

            code, text = await status("POST", "/v1/metrics", "sre", **ingest)
            assert code == 403 and "'ingest'" in text
            assert (await status("POST", "/api/v1/query", "viewer", json={"sql": "SELECT 1"}))[0] == 200
            assert (await status("GET", "/api/v1/slos", "viewer"))[0] == 200
            for method, path, kw in (("POST", "/api/v1/silences", {"json": SILENCE}),
                                     ("POST", "/api/v1/slos/reload", {"json": {}}),
                                     ("POST", "/api/v1/notify/test", {"json": {"receiver": "x"}}),
                                     ("DELETE", "/api/v1/silences/x", {})):
                code, text = await status(method, path, "viewer", **kw)
                assert code == 403 and "lacks the 'admin' scope" in text, path
            assert (await status("POST", "/api/v1/silences", "sre", json=SILENCE))[0] == 200
            assert (await status("POST", "/api/v1/slos/reload", "sre", json={}))[0] == 200
            # The handlers learn who called (per-client idempotency keys, logs).
            for who in ("sre", "viewer"):
                code, text = await status("GET", "/api/v1/whoami", who)
                assert (code, json.loads(text)) == (200, {"client": who})
            # No token or a wrong one: 401 as before, with the challenge.
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "sre-secret"}):
                async with s.get(url + "/api/v1/slos", headers=headers) as r:
                    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            # The page and the health checks stay open.
            for path in ("/ui/", "/ui/static/app.js", "/healthz"):
                async with s.get(url + path) as r:
                    assert r.status == 200, path
    finally:
        await runner.cleanup()
    assert store.query(f"SELECT count() AS n FROM `{store.database}`.otel_metrics_gauge") == [{"n": 1}]


async def test_auth_token_keeps_every_scope(store, port):
    runner = await serve(store, port, {"auth_token": "legacy"}, routes=[("/api/v1/whoami", whoami)])
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer legacy"}) as s:
            for method, path, kw in (("POST", "/v1/metrics", {"data": metrics_body(), "headers": PB}),
                                     ("POST", "/api/v1/query", {"json": {"sql": "SELECT 1"}}),
                                     ("POST", "/api/v1/silences", {"json": SILENCE}),
                                     ("GET", "/api/v1/whoami", {})):
                async with s.request(method, url + path, **kw) as r:
                    assert r.status == 200, path
            async with s.get(url + "/api/v1/whoami") as r:
                assert (await r.json()) == {"client": "auth_token"}
    finally:
        await runner.cleanup()


async def test_token_file_rotates_without_restart(store, port, tmp_path):
    server, agents = _tokens(tmp_path)
    runner = await serve(store, port, {**server, "auth_max_failures": 3})
    url = f"http://127.0.0.1:{port}/v1/metrics"

    async def send(s, token):
        async with s.post(url, data=metrics_body(), headers={**PB, "Authorization": f"Bearer {token}"}) as r:
            return r.status

    try:
        async with aiohttp.ClientSession() as s:
            assert await send(s, "agent-secret-1") == 200
            tmp = agents.with_suffix(".new")
            tmp.write_text("agent-secret-2\n")
            tmp.replace(agents)  # the usual atomic rewrite
            # Agents already switched are let in at once (and never counted as guessing) ...
            for _ in range(4):
                assert await send(s, "agent-secret-2") == 200
            # ... and the old token is refused from then on.
            assert await send(s, "agent-secret-1") == 401
            # Rewritten in place (truncate + write) works too.
            agents.write_text("agent-secret-3")
            assert await send(s, "agent-secret-3") == 200
            assert await send(s, "agent-secret-2") == 401
            # An empty (half-written) file keeps the current token rather than locking every agent out.
            agents.write_text("")
            await asyncio.sleep(1.2)
            assert await send(s, "agent-secret-3") == 200
    finally:
        await runner.cleanup()


async def test_wrong_tokens_are_rate_limited_per_address(store, port):
    runner = await serve(store, port, {"auth_token": "right", "auth_max_failures": 3,
                                       "auth_failure_window_seconds": 1.5})
    url = f"http://127.0.0.1:{port}/api/v1/slos"
    try:
        async with aiohttp.ClientSession() as s:
            async def get(headers):
                async with s.get(url, headers=headers) as r:
                    return r.status, r.headers.get("Retry-After"), await r.text()

            # Requests without a token (the UI before one is typed in) do not count.
            for _ in range(5):
                assert (await get({}))[0] == 401
            assert (await get({"Authorization": "Bearer right"}))[0] == 200
            for _ in range(3):
                assert (await get({"Authorization": "Bearer guess"}))[0] == 401
            code, retry, text = await get({"Authorization": "Bearer guess"})
            assert code == 429 and 1 <= int(retry) <= 2 and "too many wrong bearer tokens" in text
            # Even the right token waits: otherwise the limiter would be a guessing oracle.
            assert (await get({"Authorization": "Bearer right"}))[0] == 429
            assert (await s.get(url.replace("/api/v1/slos", "/healthz"))).status == 200
            await asyncio.sleep(1.6)
            assert (await get({"Authorization": "Bearer right"}))[0] == 200
    finally:
        await runner.cleanup()


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "infersight.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode()


@pytest.mark.parametrize("with_tokens", [False, True])
async def test_cli_clients_work_next_to_the_server(store, port, tmp_path, with_tokens):
    """query, slo status, silence add/list/expire and cost report, with the token from --config."""
    server = {"storage": {"database": store.database}}
    if with_tokens:
        sre = tmp_path / "sre.token"
        sre.write_text("sre-secret\n")
        agents = tmp_path / "agents.token"
        agents.write_text("agent-secret\n")
        server["tokens"] = [{"name": "agents", "scopes": ["ingest"], "token_file": str(agents)},
                            {"name": "sre", "scopes": ["read", "admin"], "token_file": str(sre)}]
    cfg = _write(tmp_path / "infersight.yaml", {"server": server})
    prices = Path(__file__).parents[2] / "examples" / "prices.yaml"
    runner = await serve(store, port, server)
    url = f"http://127.0.0.1:{port}"
    common = ("--server", url, "--config", str(cfg))
    try:
        rc, out = await _cli("query", "SELECT 41 + 1 AS answer", "--format", "json", *common)
        assert rc == 0 and "42" in out, out
        rc, out = await _cli("slo", "status", "--format", "json", *common)
        assert rc == 0, out
        rc, out = await _cli("silence", "add", "slo=avail", "--duration", "1h", *common)
        assert rc == 0, out
        rc, out = await _cli("silence", "list", *common)
        assert rc == 0 and "slo" in out, out
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": "Bearer sre-secret"} if with_tokens else {}
            async with s.get(url + "/api/v1/silences", headers=headers) as r:
                (sid,) = [x["id"] for x in (await r.json())["silences"]]
        rc, out = await _cli("silence", "expire", sid, *common)
        assert rc == 0, out
        rc, out = await _cli("cost", "report", "--since", "1h", "--prices", str(prices), *common)
        assert rc == 0, out
        if with_tokens:  # without --config there is no token: 401, said plainly
            rc, out = await _cli("query", "SELECT 1", "--server", url)
            assert rc == 1 and "HTTP 401" in out, out
    finally:
        await runner.cleanup()
