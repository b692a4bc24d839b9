"""Contract suite: storage, rollups, the SLO engine (with its lease) and the query API on each back end.

Every test runs on the embedded store, and again on a real ClickHouse server when CLICKHOUSE_URL is set
(CLICKHOUSE_USER, CLICKHOUSE_PASSWORD; CLICKHOUSE_CLUSTER to create the schema ON CLUSTER, docs/deploy.md).
Without it the ClickHouse half is skipped, and the test summary says so (conftest.py).
"""
from __future__ import annotations

import os
import uuid

import aiohttp
import pyarrow as pa
import pytest
from aiohttp.test_utils import TestClient, TestServer

from infersight.config import ServerConfig
from infersight.gateway.app import create_app
from infersight.server.tables import all_ddl
from infersight.slo.engine import SloEngine
from infersight.slo.lease import Lease, LeaseTable
from infersight.slo.settings import SloSettings
from infersight.storage.schema import SchemaOptions, ensure_schema
from support.slo import T0, Clock, make_slo, serve_receiver, steady_requests

pytestmark = pytest.mark.contract
URL = os.environ.get("CLICKHOUSE_URL", "")


@pytest.fixture(params=["embedded", "clickhouse"])
def backend(request, store):
    """The embedded store, or a fresh database on the ClickHouse server of CLICKHOUSE_URL."""
    if request.param == "embedded":
        yield store
        return
    if not URL:
        pytest.skip("CLICKHOUSE_URL not set: the contract suite ran on the embedded store only")
    from infersight.storage.remote import ClickHouseStorage

    cluster = os.environ.get("CLICKHOUSE_CLUSTER") or None
    db = f"contract_{uuid.uuid4().hex[:10]}"
    remote = ClickHouseStorage(URL, os.environ.get("CLICKHOUSE_USER", "default"),
                               os.environ.get("CLICKHOUSE_PASSWORD", ""), db, cluster=cluster)
    ensure_schema(remote, SchemaOptions(database=db, cluster=cluster), all_ddl())
    try:
        yield remote
    finally:
        remote.execute(f"DROP DATABASE IF EXISTS `{db}`" + (f" ON CLUSTER `{cluster}` SYNC" if cluster else ""))
        remote.close()


def _gauge(n: int, host: str = "h1") -> pa.Table:
    keys = pa.array(["host.name"] * n)
    res = pa.MapArray.from_arrays(pa.array(range(n + 1), pa.int32()), keys, pa.array([host] * n))
    return pa.table({"ResourceAttributes": res, "ServiceName": ["svc"] * n, "MetricName": ["hw.power"] * n,
                     "TimeUnix": pa.array([1_780_000_000 + i for i in range(n)], pa.timestamp("s")),
                     "Value": pa.array([float(i) for i in range(n)])})


def test_insert_is_idempotent_per_token_and_reads_back(backend):
    db = backend.database
    backend.insert_arrow("otel_metrics_gauge", _gauge(100), dedup_token="contract:1")
    backend.insert_arrow("otel_metrics_gauge", _gauge(100), dedup_token="contract:1")  # a retried block
    backend.insert_arrow("otel_metrics_gauge", _gauge(50, "h2"), dedup_token="contract:2")
    rows = backend.query(f"SELECT ResourceAttributes['host.name'] AS h, count() AS n, sum(Value) AS v "
                         f"FROM `{db}`.otel_metrics_gauge GROUP BY h ORDER BY h")
    assert [(r["h"], int(r["n"]), float(r["v"])) for r in rows] == [("h1", 100, 4950.0), ("h2", 50, 1225.0)]


def test_genai_spans_feed_the_rollups(backend):
    db = backend.database
    backend.execute(
        f"INSERT INTO `{db}`.otel_traces (Timestamp, TraceId, SpanId, SpanName, ServiceName, ResourceAttributes, "
        f"SpanAttributes, Duration, StatusCode) SELECT toDateTime64(1780000000 + number, 9), hex(number), "
        f"hex(number), 'chat', 'app', map('host.name', 'h1', 'cloud.provider', 'aws'), "
        f"map('gen_ai.request.model', 'contract-model', 'gen_ai.usage.input_tokens', '10', "
        f"'gen_ai.usage.output_tokens', '5'), 250000000, if(number % 4 = 0, 'Error', 'Ok') FROM numbers(8)")
    req = backend.query(f"SELECT sum(Requests) AS r, sum(BadRequests) AS b, sum(InputTokens) AS i, "
                        f"sum(OutputTokens) AS o FROM `{db}`.infersight_requests_1m WHERE Model = 'contract-model'")
    assert [int(req[0][k]) for k in ("r", "b", "i", "o")] == [8, 2, 80, 40]
    lat = backend.query(f"SELECT sum(Count) AS n, sum(Sum) AS s FROM `{db}`.infersight_latency_1m "
                        f"WHERE Model = 'contract-model' AND Kind = 'e2e'")
    assert int(lat[0]["n"]) == 8 and float(lat[0]["s"]) == pytest.approx(2.0)


async def test_slo_engine_fires_once_under_its_lease(backend):
    outage = T0 + 30 * 86400
    steady_requests(backend, T0, 30 * 1440, 6000)
    steady_requests(backend, outage, 2, 6000, 6000)
    clock = Clock(outage + 90)
    lease = Lease(LeaseTable(backend), "contract", clock=clock, wall=clock)
    assert not lease.tick() and lease.tick()
    async with serve_receiver() as hook, aiohttp.ClientSession() as session:
        settings = SloSettings.model_validate({
            "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}],
            "route": {"receiver": "oncall", "group_wait_seconds": 0}})
        engine = SloEngine(backend, settings, [make_slo()], clock)
        engine.evaluate()
        await engine.deliver(session)
        again = SloEngine(backend, settings, [make_slo()], clock)  # the state is in the store
        again.evaluate(clock() + 30)
        await again.deliver(session)
    assert [b["status"] for b in hook.bodies] == ["firing"]
    assert {a["state"] for a in again.alerts_view()} == {"firing"}


async def test_query_api_reads_and_refuses_writes(backend):
    db = backend.database
    backend.insert_arrow("otel_metrics_gauge", _gauge(7), dedup_token="contract:q")
    cfg = ServerConfig(auth_token="tok")
    async with TestClient(TestServer(create_app(cfg, backend), host="127.0.0.1"),
                          headers={"Authorization": "Bearer tok"}) as client:
        ok = await client.post("/api/v1/query", json={"sql": f"SELECT count() AS n FROM `{db}`.otel_metrics_gauge"})
        assert ok.status == 200 and int((await ok.json())["rows"][0]["n"]) == 7
        bad = await client.post("/api/v1/query", json={"sql": f"DROP TABLE `{db}`.otel_metrics_gauge"})
        assert bad.status == 400 and "read-only" in (await bad.json())["error"]
