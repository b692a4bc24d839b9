"""The read-only query API and the `infersight query` client."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer

from infersight.config import QueryApiConfig, ServerConfig
from infersight.gateway.app import create_app


@pytest.fixture
async def client(store):
    cfg = ServerConfig(auth_token="tok", query=QueryApiConfig(max_rows=5, max_execution_seconds=0.5))
    server = TestServer(create_app(cfg, store), host="127.0.0.1")
    await server.start_server()
    async with TestClient(server, headers={"Authorization": "Bearer tok"}) as c:
        yield c


async def query(client, sql, as_json=True):
    if as_json:
        return await client.post("/api/v1/query", json={"sql": sql})
    return await client.post("/api/v1/query", data=sql, headers={"Content-Type": "text/plain"})


async def test_select_with_row_limit(client, store):
    db = store.database
    store.execute(f"INSERT INTO `{db}`.otel_logs (Timestamp, ServiceName, Body) "
                  f"SELECT toDateTime64('2026-01-01 00:00:00', 9) + number, 'svc', toString(number) "
                  f"FROM numbers(8)")
    resp = await query(client, f"SELECT Body, ServiceName FROM `{db}`.otel_logs ORDER BY Timestamp")
    assert resp.status == 200
    out = await resp.json()
    assert out["rows"] == [{"Body": str(i), "ServiceName": "svc"} for i in range(5)]
    assert (out["row_count"], out["truncated"]) == (5, True)
    resp = await query(client, f"SELECT count() AS n FROM `{db}`.otel_logs;", as_json=False)
    out = await resp.json()
    assert (out["rows"], out["truncated"]) == ([{"n": 8}], False)


REFUSED = (
    "DROP TABLE {db}.otel_logs",
    "TRUNCATE TABLE {db}.otel_logs",
    "INSERT INTO {db}.otel_logs (Body) VALUES ('x')",
    "CREATE TABLE {db}.t (a UInt8) ENGINE = Memory",
    "ALTER TABLE {db}.otel_logs DELETE WHERE 1",
    "SELECT 1; DROP TABLE {db}.otel_logs",
    "SELECT * FROM file('/etc/hostname', 'LineAsString') SETTINGS readonly = 0",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
)


async def test_writes_and_ddl_are_refused(client, store):
    db = store.database
    store.execute(f"INSERT INTO `{db}`.otel_logs (Body) VALUES ('keep')")
    for sql in REFUSED:
        resp = await query(client, sql.format(db=f"`{db}`"))
        assert resp.status == 400, sql
        assert (await resp.json())["error"], sql
    assert store.query(f"SELECT Body FROM `{db}`.otel_logs") == [{"Body": "keep"}]
    assert store.query(f"EXISTS TABLE `{db}`.t") == [{"result": 0}]


async def test_bad_requests_and_timeout(client):
    resp = await client.post("/api/v1/query", data="{", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "sql" in (await resp.json())["error"]
    resp = await query(client, "   ")
    assert resp.status == 400
    resp = await query(client, "SELECT count() FROM system.numbers")
    assert resp.status == 400
    assert "TIMEOUT_EXCEEDED" in (await resp.json())["error"]
    resp = await query(client, "SELECT 1 AS one")
    assert (await resp.json())["rows"] == [{"one": 1}]


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infersight.cli", "query", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_query_cli(client, store):
    url = str(client.make_url("")).rstrip("/")
    sql = "SELECT number AS n, toString(number * 10) AS s FROM numbers(3)"
    rc, out, err = await run_cli("--server", url, "--token", "tok", "--format", "json", sql)
    assert rc == 0, err
    assert json.loads(out) == [{"n": 0, "s": "0"}, {"n": 1, "s": "10"}, {"n": 2, "s": "20"}]
    rc, out, _ = await run_cli("--server", url, "--token", "tok", sql)
    assert rc == 0
    assert out.splitlines() == ["n  s ", "-  --", "0  0 ", "1  10", "2  20"]
    rc, _, err = await run_cli("--server", url, "--token", "tok", "DROP TABLE x")
    assert rc == 1 and "HTTP 400" in err
    rc, _, err = await run_cli("--server", url, "SELECT 1")
    assert rc == 1 and "HTTP 401" in err
