"""The read-only ClickHouse HTTP interface: clickhouse-connect and @clickhouse/client (npm) against the embedded
store, every dashboard panel's SQL through clickhouse-connect (same rows as the store answers directly),
formats, ClickHouse's error headers, the token and the query API's sandbox."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from infersight.config import ServerConfig, TokenConfig
from infersight.gateway import clickhouse_http
from infersight.gateway.app import create_app
from test_dashboards import Runner, _accelerator_rows, _agent_rows, build, fleet_store, load, panels  # noqa: F401

clickhouse_connect = pytest.importorskip("clickhouse_connect")
READ = "read-token"
INGEST = "ingest-token"


async def _serve(store, **kw):
    cfg = ServerConfig(clickhouse_listen="127.0.0.1:0", storage={"database": store.database}, **kw)
    app = create_app(cfg, store)
    clickhouse_http.attach(app, cfg, store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, app[clickhouse_http.CLICKHOUSE].port


@pytest.fixture
async def ch(store):
    server, port = await _serve(store)
    yield f"http://127.0.0.1:{port}", port, store
    await server.close()


@pytest.fixture
async def ch_tokens(store):
    tokens = (TokenConfig(name="grafana", scopes=("read",), token=READ),
              TokenConfig(name="agent", scopes=("ingest",), token=INGEST))
    server, port = await _serve(store, tokens=tokens)
    yield f"http://127.0.0.1:{port}", port, store
    await server.close()


def _rows(store, n: int = 3) -> None:
    values = ", ".join(f"('node-{i}', 'gpu.util', now() - {i}, {i * 1.5})" for i in range(n))
    store.execute(f"INSERT INTO `{store.database}`.otel_metrics_gauge (ServiceName, MetricName, TimeUnix, Value) "
                  f"VALUES {values}")


async def test_clickhouse_connect_reads_the_embedded_store(ch):
    url, port, store = ch
    _rows(store)
    db = store.database

    def read():
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=db)
        try:
            res = client.query(f"SELECT ServiceName, Value FROM `{db}`.otel_metrics_gauge ORDER BY ServiceName")
            arrow = client.query_arrow(f"SELECT count() AS n FROM `{db}`.otel_metrics_gauge")
            return client.server_version, res.result_rows, arrow.column("n").to_pylist()
        finally:
            client.close()

    version, rows, counts = await asyncio.to_thread(read)
    assert version.startswith("26.")
    assert rows == [("node-0", 0.0), ("node-1", 1.5), ("node-2", 3.0)]
    assert counts == [3]


async def test_formats_and_headers(ch):
    url, _, store = ch
    _rows(store, 2)
    q = f"SELECT ServiceName AS s, Value AS v FROM `{store.database}`.otel_metrics_gauge ORDER BY s"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"query": q + " FORMAT JSONEachRow", "query_id": "q1"}) as r:
            assert r.status == 200
            assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
            assert r.headers["X-ClickHouse-Query-Id"] == "q1"
            assert "X-ClickHouse-Summary" in r.headers and r.headers["X-ClickHouse-Timezone"] == "UTC"
            assert [json.loads(line) for line in (await r.text()).splitlines()] == [
                {"s": "node-0", "v": 0}, {"s": "node-1", "v": 1.5}]
        async with http.post(url, data=q, params={"default_format": "CSVWithNames"}) as r:
            assert (await r.text()).splitlines() == ['"s","v"', '"node-0",0', '"node-1",1.5']
        async with http.post(url, data=gzip.compress(q.encode()), headers={"Content-Encoding": "gzip"}) as r:
            assert await r.text() == "node-0\t0\nnode-1\t1.5\n"  # TabSeparated by default, as ClickHouse
        async with http.post(url + "/?query=" + q.replace(" ", "%20"), data="FORMAT TSVWithNames") as r:
            assert (await r.text()).splitlines()[0] == "s\tv"  # ?query= and the body joined
        async with http.post(url, data=q + " FORMAT JSON") as r:
            body = await r.json()
            assert body["data"] == [{"s": "node-0", "v": 0}, {"s": "node-1", "v": 1.5}] and body["rows"] == 2
        async with http.post(url, data=q + " FORMAT RowBinaryWithNamesAndTypes") as r:
            raw = await r.read()
            assert raw.startswith(b"\x02\x01s\x01v") and b"LowCardinality(String)" in raw or b"String" in raw
        async with http.get(url + "/ping") as r:
            assert await r.text() == "Ok.\n"


async def test_errors_carry_clickhouse_codes(ch):
    url, _, store = ch
    cases = [
        ("SELECT file('/etc/passwd')", None, 497, "not allowed"),
        ("SELECT * FROM system.users", None, 497, "not allowed"),
        ("INSERT INTO t VALUES (1)", None, 497, "INSERT"),
        ("SELECT 1 SETTINGS readonly = 0", None, 497, "SETTINGS"),
        ("SELEC 1", None, 62, "Syntax error"),
        ("SELECT 1 FORMAT Wat", None, 73, "output format"),
        ("SELECT 1", "elsewhere", 81, "does not exist"),
        (f"SELECT nope FROM `{store.database}`.otel_logs", None, 47, "nope"),
    ]
    async with aiohttp.ClientSession() as http:
        for sql, database, code, text in cases:
            params = {"database": database} if database else {}
            async with http.post(url, data=sql, params=params) as r:
                body = await r.text()
                assert r.status >= 400, sql
                assert r.headers["X-ClickHouse-Exception-Code"] == str(code), (sql, body)
                assert body.startswith(f"Code: {code}. DB::Exception:") and text in body, (sql, body)
        async with http.post(url, data="SELECT 1", headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403  # a web page cannot use the port
        async with http.post(url, data="SELECT 1", headers={"Host": "rebind.example:8123"}) as r:
            assert r.status == 421


async def test_limits_of_the_query_api_apply(store):
    server, port = await _serve(store, query={"max_rows": 5})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}", data="SELECT number FROM numbers(100)") as r:
                assert r.status == 500
                assert r.headers["X-ClickHouse-Exception-Code"] == "396"
                assert "max_rows" in await r.text()
            async with http.post(f"http://127.0.0.1:{port}", data="SELECT number FROM numbers(5)") as r:
                assert (await r.text()).split() == ["0", "1", "2", "3", "4"]
    finally:
        await server.close()


async def test_token_as_password_key_or_bearer_with_read_scope(ch_tokens):
    url, port, _ = ch_tokens

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async with aiohttp.ClientSession() as http:
        for headers, status in (({}, 401), ({"Authorization": basic("default", "wrong")}, 401),
                                ({"Authorization": basic("default", INGEST)}, 403),
                                ({"Authorization": basic("grafana", READ)}, 200),
                                ({"X-ClickHouse-User": "x", "X-ClickHouse-Key": READ}, 200),
                                ({"Authorization": f"Bearer {READ}"}, 200)):
            async with http.post(url, data="SELECT 1", headers=headers) as r:
                assert r.status == status, headers
                if status == 401:
                    assert r.headers["X-ClickHouse-Exception-Code"] == "516"
        async with http.post(url, params={"password": READ}, data="SELECT 1") as r:
            assert r.status == 401 and "URL" in await r.text()  # never a secret in a URL (logs, history)

    def connect():
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="grafana", password=READ)
        try:
            return client.query("SELECT 42").result_rows
        finally:
            client.close()

    assert await asyncio.to_thread(connect) == [(42,)]


async def test_every_dashboard_panel_through_clickhouse_connect(fleet_store):  # noqa: F811
    """Every panel and variable query of dashboards/, sent by clickhouse-connect: the rows equal the store's."""
    _accelerator_rows(fleet_store)
    _agent_rows(fleet_store)
    server, port = await _serve(fleet_store)

    class Remote:
        database = fleet_store.database

        def __init__(self) -> None:
            self.client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=self.database)

        def query(self, sql: str) -> list[dict]:
            return list(self.client.query(sql).named_results())

    def run_all() -> int:
        remote = Remote()
        n = 0
        try:
            for name in sorted(build.DASHBOARDS):
                dash = load(name)
                direct, via = Runner(fleet_store, dash), Runner(remote, dash)
                assert via.options == direct.options, name
                for p in panels(dash):
                    for t in p["targets"]:
                        expected = fleet_store.query(direct.sql(t["rawSql"]))
                        got = remote.query(via.sql(t["rawSql"]))
                        assert len(got) == len(expected), (name, p["title"])
                        assert [list(r) for r in got] == [list(r) for r in expected], (name, p["title"])
                        n += 1
        finally:
            remote.client.close()
        return n

    try:
        ran = await asyncio.to_thread(run_all)
    finally:
        await server.close()
    assert ran >= 20


JS = Path(__file__).parent / "js"


@pytest.mark.e2e
async def test_official_js_client(ch, tmp_path):
    """@clickhouse/client (npm) reads through the interface; skipped when npm cannot install it."""
    url, _, store = ch
    _rows(store, 2)
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    work = tmp_path / "js"
    shutil.copytree(JS, work)
    proc = await asyncio.to_thread(subprocess.run, ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
                                   cwd=work, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        pytest.skip(f"npm cannot install @clickhouse/client here: {proc.stderr.strip()[-300:]}")
    q = f"SELECT ServiceName AS s, Value AS v FROM `{store.database}`.otel_metrics_gauge ORDER BY s"
    out = await asyncio.to_thread(subprocess.run, ["node", "query.mjs", url, q], cwd=work, capture_output=True,
                                  text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"rows": [{"s": "node-0", "v": 0}, {"s": "node-1", "v": 1.5}],
                                      "ping": True, "refused": 497}
