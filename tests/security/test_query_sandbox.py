"""The query API's sandbox: only the telemetry database and a few system tables, only pure functions.

Real components: the gateway app on aiohttp's test server over the embedded chDB store with the full schema.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.config import QueryApiConfig, ServerConfig
from infersight.gateway.app import create_app

SECRET = "infersight-secret-5f2c9a"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return str(path)


@pytest.fixture
async def make_client(store):
    clients = []

    async def make(**query):
        cfg = ServerConfig(flush_interval_seconds=0.02, query=QueryApiConfig(**query))
        c = TestClient(TestServer(create_app(cfg, store), host="127.0.0.1"))
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


async def post(client, sql):
    resp = await client.post("/api/v1/query", json={"sql": sql})
    return resp.status, await resp.text()


# {p}: a file holding SECRET. Each is the same few reads, spelled the ways a filter on text would miss.
FILE_READS = (
    "SELECT file('{p}')",
    "SELECT FiLe('{p}')",
    "SELECT `file`('{p}')",
    "SELECT `\\x66ile`('{p}')",
    'SELECT "file"(\'{p}\')',
    "SELECT file/**/('{p}')",
    "SELECT file -- c\n(\n'{p}'\n)",
    "SELECT file(concat('{head}', '{tail}'))",
    "SELECT file($${p}$$)",
    "SELECT file('{hex}')",
    "WITH '{p}' AS x SELECT file(x)",
    "WITH f AS (SELECT file('{p}') AS c) SELECT c FROM f",
    "SELECT * FROM (SELECT file('{p}'))",
    "SELECT 1 WHERE '' IN (SELECT file('{p}'))",
    "SELECT arrayMap(x -> file(x), ['{p}'])",
    "SELECT * APPLY(file) FROM (SELECT '{p}' AS c)",
    "SELECT * FROM (SELECT '{p}' AS c) ARRAY JOIN [file(c)] AS x",
    "SELECT n.number FROM numbers(1) AS n JOIN (SELECT file('{p}') AS c) AS f ON 1 = 1",
    "SELECT 'a' UNION ALL SELECT file('{p}')",
    "SELECT * FROM file('{p}', 'LineAsString')",
    "SELECT * FROM FILE('{p}', 'LineAsString')",
    "SELECT * FROM numbers(1) AS n, file('{p}', 'LineAsString') AS f",
    "SELECT * FROM (SELECT * FROM file('{p}', 'LineAsString'))",
    "SELECT file('/proc/self/environ')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
)


async def refused(client, queries, *expected: str) -> list:
    """The queries not answered 400 with one of the `expected` texts (one client for all: stores are slow)."""
    wrong = []
    for sql in queries:
        status, body = await post(client, sql)
        if status != 400 or not any(e in body for e in expected) or SECRET in body:
            wrong.append((sql, status, body[:300]))
    return wrong


async def test_no_file_read_in_any_spelling(make_client, secret_file):
    client = await make_client()
    head, tail = secret_file[:5], secret_file[5:]
    hex_path = "".join(f"\\x{b:02x}" for b in secret_file.encode())
    queries = [sql.format(p=secret_file, head=head, tail=tail, hex=hex_path) for sql in FILE_READS]
    assert await refused(client, queries, "not allowed") == []


TABLE_FUNCTIONS = ("url('http://127.0.0.1:1/', 'LineAsString')", "s3('http://127.0.0.1:1/b/k', 'CSV')",
                   "hdfs('hdfs://127.0.0.1:1/f', 'CSV')", "remote('127.0.0.1:1', system.one)",
                   "remoteSecure('127.0.0.1:1', system.one)", "cluster('default', system.one)",
                   "mysql('127.0.0.1:1', 'd', 't', 'u', 'p')", "postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')",
                   "jdbc('jdbc:x', 't')", "odbc('DSN=x', 't')", "executable('x.sh', 'CSV', 'a String')",
                   "input('a String')", "merge('system', '.*')", "merge(REGEXP('.*'), '.*')", "dictionary('d')",
                   "view(SELECT * FROM system.users)", "format(CSV, 'a\\n')", "sqlite('/etc/x.db', 't')",
                   "loop(system.one)", "fileCluster('default', '/etc/passwd')", "azureBlobStorage('x')",
                   "iceberg('/tmp/x')", "mongodb('127.0.0.1:1', 'd', 'c', 'u', 'p', 'a String')")


async def test_table_functions_beyond_row_generators_are_refused(make_client):
    client = await make_client()
    assert await refused(client, [f"SELECT * FROM {fn}" for fn in TABLE_FUNCTIONS], "not allowed") == []


SERVER_FUNCTIONS = ("getSetting('max_threads')", "getSettingOrDefault('x', 1)", "getServerSetting('path')",
                    "getMergeTreeSetting('index_granularity')", "getMacro('x')", "hostName()", "FQDN()",
                    "currentUser()", "version()", "uptime()", "buildId()", "serverUUID()", "tcpPort()",
                    "getOSKernelVersion()", "filesystemAvailable()", "displayName()", "getClientHTTPHeader('a')",
                    "dictGet('d', 'a', 1)", "dictGetString('d', 'a', 1)", "dictHas('d', 1)",
                    "joinGet('system.one', 'dummy', 0)", "hasColumnInTable('system', 'users', 'name')",
                    "sleep(1)", "sleepEachRow(1)", "showCertificate()", "generateSerialID('x')",
                    "naiveBayesClassifier('m', 'x')", "aiGenerate('x')", "addressToSymbol(1)", "demangle('x')",
                    "zookeeperSessionUptime()", "globalVariable('x')", "regionToName(1)", "catboostEvaluate('m')",
                    "evalMLMethod(1)", "currentRoles()", "queryID()", "transactionID()")


async def test_functions_reaching_the_server_are_refused(make_client):
    client = await make_client()
    assert await refused(client, [f"SELECT {fn}" for fn in SERVER_FUNCTIONS], "not allowed") == []


SYSTEM_TABLES = ("system.processes", "system.settings", "system.server_settings", "system.build_options",
                 "system.users", "system.disks", "system.zookeeper", "system.stack_trace", "system.crash_log",
                 "system.query_log", "system.macros", "system.clusters", "system.databases", "system.tables",
                 "system.grants", "system.named_collections", "system.user_directories", "system.functions_xx",
                 "`system`.`users`", "information_schema.tables", "INFORMATION_SCHEMA.COLUMNS", "default.t",
                 "users")


async def test_other_databases_and_system_tables_are_refused(make_client, store):
    client = await make_client()
    queries = [sql for table in SYSTEM_TABLES for sql in (
        f"SELECT * FROM {table}", f"SELECT 1 WHERE 1 IN {table}",
        f"SELECT * FROM `{store.database}`.otel_logs AS l JOIN {table} AS t ON 1 = 1",
        f"WITH x AS (SELECT * FROM {table}) SELECT * FROM x")]
    assert await refused(client, queries, "not allowed", "name its database") == []


OTHER_STATEMENTS = (
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 1000)",
    "SELECT 1 FORMAT JSON",
    "SELECT 1 INTO OUTFILE '/tmp/infersight-out'",
    "SELECT {p:UInt8}",
    "SELECT * FROM (EXPLAIN SYNTAX SELECT 1)",
    "SHOW TABLES FROM system",
    "SHOW DATABASES",
    "SHOW CREATE TABLE otel.otel_logs",
    "DESCRIBE system.tables",
    "DESCRIBE (SELECT file('/etc/passwd'))",
    "DESCRIBE file('/etc/passwd', 'LineAsString')",
    "DESC TABLE url('http://127.0.0.1:1/', 'LineAsString')",
    "EXISTS system.processes",
    "EXISTS DATABASE system",
    "EXPLAIN SELECT file('/etc/passwd')",
    "EXPLAIN SYNTAX SELECT * FROM system.tables",
    "EXPLAIN PLAN header = 1 SELECT 1",
    "EXPLAIN SELECT 1 SETTINGS readonly = 0",
    "EXPLAIN SELECT 1 FORMAT JSON",
    "EXPLAIN INSERT INTO otel.otel_logs (Body) SELECT 'x'",
    "EXPLAIN CURRENT TRANSACTION",
    "SET readonly = 0",
    "SYSTEM FLUSH LOGS",
    "SELECT 1) UNION ALL (SELECT file('/etc/passwd')",
    "SELECT 1\x00",
)


async def test_settings_format_and_other_statements_are_refused(make_client):
    client = await make_client()
    assert await refused(client, OTHER_STATEMENTS, "error") == []


async def test_read_only_metadata_statements_stay_in_the_telemetry_database(make_client, store, secret_file):
    """DESCRIBE, SHOW TABLES and EXISTS become SELECTs over system.columns of the telemetry database, EXPLAIN runs
    only of a SELECT that passes the allow-list; the file reads of FILE_READS stay refused under EXPLAIN."""
    client = await make_client()
    db = store.database
    status, body = await post(client, f"DESCRIBE `{db}`.otel_logs")
    assert status == 200, body
    rows = json.loads(body)["rows"]
    assert rows[0]["name"] == "Timestamp" and {"Body", "ServiceName"} <= {r["name"] for r in rows}
    status, body = await post(client, "desc table otel_logs")  # unqualified: the telemetry database
    assert status == 200 and json.loads(body)["rows"] == rows
    status, body = await post(client, "SHOW TABLES")
    names = [r["name"] for r in json.loads(body)["rows"]]
    assert status == 200 and "otel_logs" in names and "otel_traces" in names and "tables" not in names
    status, body = await post(client, f"SHOW TABLES FROM {db} LIKE 'otel_tr%'")
    assert status == 200, body
    assert [r["name"] for r in json.loads(body)["rows"]][0] == "otel_traces"  # ORDER BY name
    for sql, result in ((f"EXISTS `{db}`.otel_logs", 1), ("EXISTS TABLE otel_nope", 0), ("EXISTS system.one", 1)):
        status, body = await post(client, sql)
        assert (status, json.loads(body)["rows"]) == (200, [{"result": result}]), sql
    status, body = await post(client, f"EXPLAIN SYNTAX SELECT count() FROM `{db}`.otel_logs")
    assert status == 200 and f"FROM {db}.otel_logs" in json.loads(body)["rows"][0]["explain"].replace("`", "")
    queries = [f"EXPLAIN {sql.format(p=secret_file, head=secret_file[:5], tail=secret_file[5:], hex='')}"
               for sql in FILE_READS if sql.startswith("SELECT")]
    assert await refused(client, queries, "not allowed") == []


GAUGE_ROWS = ("('cpu', 'h1', 'a', toDateTime64('2026-01-01 00:00:10', 9), 1.5, map('k', 'v1'), 'svc'), "
              "('cpu', 'h1', 'b', toDateTime64('2026-01-01 00:01:10', 9), 2.5, map('k', 'v2'), 'svc'), "
              "('mem', 'h2', 'a', toDateTime64('2026-01-01 00:01:20', 9), 7.0, map('k', '{{\"n\": 3}}'), 'svc')")


def telemetry_queries(db: str) -> list[str]:
    g = f"`{db}`.otel_metrics_gauge"
    return [
        f"SELECT MetricName, avg(Value) AS a, max(Value), count() FROM {g} GROUP BY MetricName ORDER BY MetricName",
        f"SELECT quantiles(0.5, 0.9)(Value), quantileTDigest(0.99)(Value), histogram(2)(Value) FROM {g}",
        f"SELECT toStartOfMinute(TimeUnix) AS m, sumIf(Value, MetricName = 'cpu') FROM {g} GROUP BY m ORDER BY m",
        f"SELECT arrayJoin(mapKeys(Attributes)) AS k, Attributes['k'] AS v FROM {g} ORDER BY v",
        f"SELECT JSONExtractInt(Attributes['k'], 'n') AS n FROM {g} WHERE MetricName = 'mem'",
        f"SELECT MetricName, lagInFrame(Value) OVER w AS prev, row_number() OVER w AS rn FROM {g} "
        "WINDOW w AS (PARTITION BY MetricName ORDER BY TimeUnix ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        f"WITH top AS (SELECT MetricName FROM {g} GROUP BY 1 ORDER BY count() DESC LIMIT 1) "
        f"SELECT count() FROM {g} WHERE MetricName IN (SELECT MetricName FROM top) OR MetricName IN top",
        f"SELECT uniqExact(ServiceName), argMax(Value, TimeUnix), groupArray(Value), sumForEach([Value, 1]), "
        f"countIf(Value > 2), uniqArrayIf([MetricName], Value > 0) FROM {g}",
        f"SELECT if(Value > 2, 'hi', 'lo'), multiIf(Value < 2, 1, 2), CAST(Value AS String), Value::UInt8, "
        f"formatReadableSize(1024), dateDiff('second', TimeUnix, TimeUnix + INTERVAL 1 MINUTE) FROM {g}",
        f"SELECT arrayFilter(x -> x > 1, groupArray(Value)), COLUMNS('^MetricName$') FROM {g} GROUP BY MetricName",
        f"SELECT * EXCEPT (Attributes, ResourceAttributes, ScopeAttributes) FROM {g} LIMIT 1",
        f"SELECT count() FROM {g} WHERE TimeUnix >= now() - INTERVAL 3650 DAY UNION ALL SELECT 1",
        f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'infersight_requests_1m'",
        "SELECT number, toString(number * 10) FROM numbers(3)",
        "SELECT currentDatabase(), dummy FROM system.one",
    ]


async def test_ordinary_telemetry_queries_still_work(make_client, store):
    store.execute(f"INSERT INTO `{store.database}`.otel_metrics_gauge (MetricName, MetricUnit, "
                  f"MetricDescription, TimeUnix, Value, Attributes, ServiceName) VALUES {GAUGE_ROWS}")
    client = await make_client()
    for sql in telemetry_queries(store.database):
        status, body = await post(client, sql)
        assert status == 200, (sql, body)
    status, body = await post(client, f"SELECT MetricName, max(Value) AS m FROM `{store.database}`."
                                      "otel_metrics_gauge GROUP BY 1 ORDER BY 1")
    assert '"rows": [{"MetricName": "cpu", "m": 2.5}, {"MetricName": "mem", "m": 7}]' in body


def test_every_dashboard_and_web_ui_query_passes(store):
    """The Grafana dashboards' SQL, expanded as Grafana does, is accepted by the query API too."""
    from test_dashboards import Runner, build, load, panels

    async def go():
        cfg = ServerConfig(query=QueryApiConfig())
        async with TestClient(TestServer(create_app(cfg, store), host="127.0.0.1")) as client:
            for name in sorted(build.DASHBOARDS):
                dash = load(name)
                run = Runner(store, dash)
                sqls = [run.sql(t["rawSql"]) for p in panels(dash) for t in p["targets"]]
                sqls += [run.sql(v["query"]["rawSql"]) for v in dash["templating"]["list"] if v["type"] == "query"]
                for sql in sqls:
                    status, body = await post(client, sql)
                    assert status == 200, (name, sql, body)

    asyncio.run(go())


async def test_query_errors_are_400_not_storage_unavailable(make_client, store):
    client = await make_client()
    for sql, text in (("SELECT throwIf(1, 'boom')", "boom"),
                      (f"SELECT nosuch FROM `{store.database}`.otel_logs", "UNKNOWN_IDENTIFIER"),
                      (f"SELECT * FROM `{store.database}`.nosuch", "UNKNOWN_TABLE"),
                      ("SELECT toUInt8('x')", "CANNOT_PARSE"),
                      ("SELECT nosuchfunction(1)", "nosuchfunction"),
                      ("SELEC 1", "SYNTAX_ERROR")):
        status, body = await post(client, sql)
        assert status == 400, (sql, body)
        assert text in body, (sql, body)


async def test_result_and_memory_bounds(make_client):
    client = await make_client(max_result_bytes=1_000_000, max_memory_bytes=100_000_000)
    status, body = await post(client, "SELECT repeat('x', 100000) AS s FROM numbers(50)")  # 5 MB
    assert status == 413, body
    assert "max_result_bytes" in body
    # Small in the store, large as JSON: every NUL byte is written as \u0000.
    status, body = await post(client, "SELECT repeat(char(0), 300000) AS s")
    assert status == 413, body
    assert "max_result_bytes" in body
    status, body = await post(client, "SELECT length(groupArray(number)) AS n FROM numbers(100000000)")
    assert status == 400, body
    assert "max_memory_bytes" in body
    status, body = await post(client, "SELECT length(groupArray(number)) AS n FROM numbers(1000)")
    assert (status, '"n": 1000' in body) == (200, True), body


def gauge_request(name: str) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    m = rm.scope_metrics.add().metrics.add(name=name)
    m.gauge.data_points.add(time_unix_nano=1_767_225_600_000_000_000, as_double=1.0)
    return req.SerializeToString()


SLOW = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"


async def test_ingest_and_readiness_do_not_wait_behind_queries(make_client, store):
    slow_seconds, n = 5.0, 2  # long enough that a CPU-starved ack (2.2 s seen on a loaded machine) still overlaps
    client = await make_client(max_execution_seconds=slow_seconds, max_concurrent_queries=n)
    pb = {"Content-Type": "application/x-protobuf"}
    assert (await client.post("/v1/metrics", data=gauge_request("warm-up"), headers=pb)).status == 200
    started = time.monotonic()
    slow = [asyncio.ensure_future(post(client, SLOW)) for _ in range(n)]
    await asyncio.sleep(0.5)
    status, body = await post(client, SLOW)
    assert status == 429, body
    assert "max_concurrent_queries" in body
    t0 = time.monotonic()
    resp = await client.get("/readyz")
    ready_seconds = time.monotonic() - t0
    assert resp.status == 200
    t0 = time.monotonic()
    resp = await client.post("/v1/metrics", data=gauge_request("during-queries"), headers=pb)
    ack_seconds = time.monotonic() - t0
    assert resp.status == 200
    # Neither waited behind the queries: both answered while every one of them still ran.
    queries_running = not any(f.done() for f in slow)
    results = await asyncio.gather(*slow)
    print(f"readyz {ready_seconds:.3f} s, ack {ack_seconds:.3f} s while {n} queries of {slow_seconds} s ran; "
          f"queries done after {time.monotonic() - started:.1f} s")
    assert all(s == 400 and "max_execution_seconds" in b for s, b in results), results
    assert queries_running, (ready_seconds, ack_seconds)
    rows = store.query(f"SELECT count() AS n FROM `{store.database}`.otel_metrics_gauge "
                       "WHERE MetricName = 'during-queries'")
    assert rows == [{"n": 1}]
