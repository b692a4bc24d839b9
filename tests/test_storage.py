"""Storage contract: schema identical to the OTel exporter's, same behaviour on both backends."""
from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pyarrow as pa
import pytest

from infersight.server.tables import all_ddl
from infersight.storage.base import DataError, LimitExceeded, QueryError, StorageError, Timeout, Unavailable
from infersight.storage.errors import classify
from infersight.storage.schema import (
    OTEL_TABLES,
    SCHEMA_VERSION,
    SchemaMismatch,
    SchemaOptions,
    ensure_schema,
    render,
    render_otel_ddl,
)
from support.paths import FIXTURES

pytest.importorskip("chdb")


def _exporter_ddl(database: str) -> list[str]:
    text = (FIXTURES / "otel_clickhouse" / "otel_schema_default.sql").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    text = re.sub(r"([`\"])otel\1\.", f"`{database}`.", text).replace("EXISTS otel;", f"EXISTS `{database}`;")
    return [s for s in (x.strip() for x in text.split(";")) if s]


def _columns(store, database: str, table: str) -> list[tuple[str, str]]:
    rows = store.query(f"SELECT name, type FROM system.columns WHERE database = '{database}' "
                       f"AND table = '{table}' ORDER BY position")
    return [(r["name"], r["type"]) for r in rows]


def test_columns_match_the_otel_exporter_exactly(store):
    ref_db = f"ref_{uuid.uuid4().hex[:8]}"
    for stmt in _exporter_ddl(ref_db):
        store.execute(stmt)
    try:
        for table in OTEL_TABLES:
            ours = _columns(store, store.database, table)
            assert ours, table
            assert ours == _columns(store, ref_db, table), table
    finally:
        store.execute(f"DROP DATABASE `{ref_db}`")


def test_tables_deduplicate_retried_inserts(store):
    rows = store.query(f"SELECT engine_full FROM system.tables WHERE database = '{store.database}' "
                       "AND name = 'otel_metrics_gauge'")
    assert "non_replicated_deduplication_window = 1000" in rows[0]["engine_full"]


def test_schema_version_is_recorded_and_a_mismatch_is_refused(store):
    opts = SchemaOptions(database=store.database)
    ensure_schema(store, opts, all_ddl())  # idempotent on a current database
    rows = store.query(f"SELECT Version FROM `{store.database}`.infersight_schema FINAL")
    assert [int(r["Version"]) for r in rows] == [SCHEMA_VERSION]
    store.execute(f"INSERT INTO `{store.database}`.infersight_schema (Component, Version) VALUES ('otel', 99)")
    with pytest.raises(SchemaMismatch, match="version 99.*expects 1"):
        ensure_schema(store, opts, all_ddl())


def test_ttl_rendered_per_table_and_accepted(store):
    db = f"ttl_{uuid.uuid4().hex[:8]}"
    opts = SchemaOptions(database=db, ttl_days={"traces": 7, "metrics_gauge": 30})
    ddl = render_otel_ddl(opts)
    traces = next(s for s in ddl if "`otel_traces`" in s and s.startswith("CREATE TABLE"))
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in traces
    logs = next(s for s in ddl if "`otel_logs`" in s)
    assert "TTL" not in logs
    for stmt in ddl:
        store.execute(stmt)
    try:
        full = store.query(f"SELECT engine_full FROM system.tables WHERE database = '{db}' "
                           "AND name = 'otel_metrics_gauge'")[0]["engine_full"]
        assert "toIntervalDay(30)" in full
    finally:
        store.execute(f"DROP DATABASE `{db}`")


def test_cluster_rendering_uses_replicated_local_tables_and_distributed_fronts():
    ddl = render_otel_ddl(SchemaOptions(database="otel", cluster="prod"))
    creates = [s for s in ddl if s.startswith("CREATE TABLE")]
    assert all(" ON CLUSTER `prod`" in s for s in ddl)
    local = [s for s in creates if "_local`" in s.split("(")[0] and "Distributed" not in s]
    assert len(local) == len(OTEL_TABLES)
    assert all("ReplicatedMergeTree" in s or "ReplicatedAggregatingMergeTree" in s for s in local)
    dist = [s for s in creates if "ENGINE = Distributed(`prod`" in s]
    assert {re.search(r"`otel`\.`(\w+)`", s).group(1) for s in dist} == set(OTEL_TABLES)
    mv = next(s for s in ddl if "MATERIALIZED VIEW" in s)
    assert "`otel_traces_trace_id_ts_mv_local`" in mv and "FROM `otel`.`otel_traces_local`" in mv



def test_every_template_renders_for_a_cluster_with_one_function():
    """Our own tables take the same placeholders: replicated engines with their arguments, ON CLUSTER, fronts."""
    ddl = render("slo_state", SchemaOptions(database="otel", cluster="prod"))
    assert all(" ON CLUSTER `prod`" in s for s in ddl)
    local = [s for s in ddl if "Distributed" not in s]
    assert len(local) == 3 and all(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', "
        "Version)" in s for s in local)
    assert "`infersight_slo_alerts_local`" in local[0]
    assert sum("ENGINE = Distributed(`prod`, `otel`, `infersight_slo_alerts_local`" in s for s in ddl) == 1
    single = render("slo_state", SchemaOptions(database="otel"))
    assert [s.count("ENGINE = ReplacingMergeTree(Version)") for s in single] == [1, 1, 1]
    with pytest.raises(ValueError, match="keep_days"):
        render("gateway_requests", SchemaOptions(database="otel"))

@pytest.fixture(params=["embedded", "clickhouse"])
def backend(request, store):
    if request.param == "embedded":
        return store
    if not os.environ.get("CLICKHOUSE_URL"):
        pytest.skip("CLICKHOUSE_URL not set: no ClickHouse server to run the contract against")
    from infersight.storage.remote import ClickHouseStorage

    remote = ClickHouseStorage(os.environ["CLICKHOUSE_URL"], os.environ.get("CLICKHOUSE_USER", "default"),
                               os.environ.get("CLICKHOUSE_PASSWORD", ""), store.database)
    ensure_schema(remote, SchemaOptions(database=store.database), all_ddl())
    return remote


def _gauge_rows(n: int) -> pa.Table:
    keys = pa.array(["gen_ai.request.model"] * n)
    vals = pa.array([f"m{i % 3}" for i in range(n)])
    attrs = pa.MapArray.from_arrays(pa.array(range(n + 1), pa.int32()), keys, vals)
    return pa.table({
        "ServiceName": ["svc"] * n,
        "MetricName": ["hw.power"] * n,
        "Attributes": attrs,
        "TimeUnix": pa.array([1_700_000_000 + i for i in range(n)], pa.uint32()),
        "Value": [float(i) for i in range(n)],
    })


def test_contract_insert_query_and_dedup(backend):
    data = _gauge_rows(5)
    backend.insert_arrow("otel_metrics_gauge", data, dedup_token="batch-1")
    backend.insert_arrow("otel_metrics_gauge", data, dedup_token="batch-1")  # a retry
    rows = backend.query(f"SELECT count() AS n, sum(Value) AS s, uniqExact(Attributes['gen_ai.request.model']) AS m "
                         f"FROM `{backend.database}`.otel_metrics_gauge")
    assert int(rows[0]["n"]) == 5 and float(rows[0]["s"]) == 10.0 and int(rows[0]["m"]) == 3
    backend.insert_arrow("otel_metrics_gauge", data, dedup_token="batch-2")
    n = backend.query(f"SELECT count() AS n FROM `{backend.database}`.otel_metrics_gauge")[0]["n"]
    assert int(n) == 10


def test_contract_bad_sql_is_a_query_error(backend):
    with pytest.raises(QueryError):
        backend.query("SELEC 1")
    with pytest.raises(QueryError):
        backend.query(f"SELECT nope FROM `{backend.database}`.otel_metrics_gauge")


def test_contract_errors_are_typed_the_same_on_both_backends(backend):
    """One classifier: what the SQL did wrong, what the rows did wrong, and time limits, on either backend."""
    for sql in ("SELECT * FROM nosuch_db.t", "SELECT throwIf(1, 'boom')", "SELECT nosuchfunction(1)",
                "SELECT 1 SETTINGS nosuch_setting = 1"):
        with pytest.raises(QueryError):
            backend.query(sql)
    with pytest.raises(DataError):
        backend.query("SELECT toUInt8('x')")
    with pytest.raises(Timeout):
        backend.query("SELECT count() FROM system.numbers", {"max_execution_time": 0.2,
                                                             "timeout_overflow_mode": "throw"})
    backend.ping()


def test_classifier_maps_codes_to_kinds():
    assert type(classify("Code: 81. DB::Exception: Database x does not exist. (UNKNOWN_DATABASE)")) is QueryError
    assert type(classify("Code: 70. DB::Exception: Value out of range (CANNOT_CONVERT_TYPE)")) is DataError
    assert type(classify("Code: 159. DB::Exception: Timeout exceeded (TIMEOUT_EXCEEDED)")) is Timeout
    assert type(classify("Code: 241. DB::Exception: Memory limit exceeded (MEMORY_LIMIT_EXCEEDED)")) is LimitExceeded
    for msg in ("Code: 243. DB::Exception: Not enough space (NOT_ENOUGH_SPACE)", "Connection refused"):
        assert type(classify(msg)) is Unavailable
    assert all(issubclass(k, StorageError) for k in (QueryError, DataError, Timeout, LimitExceeded, Unavailable))


def test_reads_do_not_wait_for_a_slow_query(store):
    """A query holds its own connection: inserts, statements, other reads and ping go on meanwhile."""
    store.insert_arrow("otel_metrics_gauge", _gauge_rows(1))  # warm: the first insert through Python() is slow
    slow = threading.Thread(target=lambda: pytest.raises(Timeout, store.query, SLOW_QUERY,
                                                         {"max_execution_time": 3, "timeout_overflow_mode": "throw"}))
    slow.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    store.insert_arrow("otel_metrics_gauge", _gauge_rows(2))
    store.execute(f"INSERT INTO `{store.database}`.otel_logs (Body) VALUES ('x')")
    n = store.query(f"SELECT count() AS n FROM `{store.database}`.otel_metrics_gauge")
    store.ping()
    took = time.monotonic() - t0
    still_running = slow.is_alive()
    slow.join()
    assert n == [{"n": 3}]
    # On one connection each would have waited for the 3 s query: all of it was done while that query still ran.
    assert still_running, took


SLOW_QUERY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"
