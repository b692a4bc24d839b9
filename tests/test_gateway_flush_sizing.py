"""Adaptive insert size: big inserts when the queue is deep, capped; prompt when idle; the metric index set."""
from __future__ import annotations

import asyncio
import time

from infersight.gateway import otlp
from infersight.gateway.rows import AttrSets, metrics_rows
from infersight.gateway.writer import BatchWriter
from test_gateway_errors import gauge_request


def _request(n: int, seq: int):
    body = gauge_request(n, name=f"g{seq}").SerializeToString()
    return metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), AttrSets())


def _count(store) -> int:
    return int(store.query(f"SELECT count() AS n FROM `{store.database}`.`otel_metrics_gauge`")[0]["n"])


async def test_deep_queue_gives_bigger_capped_inserts_and_idle_is_prompt(store):
    sizes: list[int] = []
    w = BatchWriter(store, flush_rows=100, flush_interval_seconds=0.5, flush_max_rows=1_000,
                    flush_linger_seconds=0.05)
    w.flush_observers.append(lambda outcome, rows, seconds: sizes.append(rows))
    await w.start()
    try:
        # Idle: one small request is written within the interval, not held for flush_rows.
        t0 = time.perf_counter()
        res = _request(10, 0)
        await w.submit("idle", "d", res.parts, res.rows)
        assert time.perf_counter() - t0 < 0.5 + 5.0  # the interval plus one (first, slow) insert
        assert sizes == [10]
        # Deep: 60 requests of 50 rows at once; no insert exceeds flush_max_rows, the target grew.
        reqs = [_request(50, i) for i in range(1, 61)]
        await asyncio.gather(*(w.submit(f"k{i}", "d", r.parts, r.rows) for i, r in enumerate(reqs)))
        deep = sizes[1:]
        assert sum(deep) == 3_000 and max(deep) <= 1_000
        assert max(deep) > 100  # bigger than the idle minimum
        assert w.target_rows >= 100
    finally:
        await w.close()
    assert _count(store) == 3_010


async def test_clients_waiting_on_acks_do_not_stall_until_the_interval(store):
    """Fewer rows in flight than the target: a pause in arrivals (linger) starts the flush."""
    w = BatchWriter(store, flush_rows=100, flush_interval_seconds=5.0, flush_max_rows=10_000,
                    flush_linger_seconds=0.02)
    w.target_rows = 10_000  # as after a burst
    await w.start()
    try:
        reqs = [_request(50, i) for i in range(4)]
        t0 = time.perf_counter()
        await asyncio.gather(*(w.submit(f"k{i}", "d", r.parts, r.rows) for i, r in enumerate(reqs)))
        assert time.perf_counter() - t0 < 2.5
    finally:
        await w.close()
    assert _count(store) == 200


def test_metric_tables_keep_only_the_indexes_queries_use(store):
    """Value bloom filters (Grafana's ResourceAttributes['host.name'] IN, Attributes['k'] = v) and the
    time minmax; mapKeys and scope-attribute indexes cost inserts and no query uses them."""
    rows = store.query("SELECT table, groupArray(name) AS names FROM system.data_skipping_indices "
                       f"WHERE database = '{store.database}' AND table LIKE 'otel_metrics_%' GROUP BY table")
    assert len(rows) == 5
    for r in rows:
        assert sorted(r["names"]) == ["idx_attr_value", "idx_res_attr_value", "idx_time_minmax"], r


def test_exporter_tables_merge_twenty_parts_at_a_time_also_in_an_older_database(store):
    """merge_selector_base (schema.MERGE_SELECTOR_BASE) is set on every exporter table, and a database
    created before it (the setting reset) gets it back when the schema is ensured again."""
    from infersight.server.tables import all_ddl
    from infersight.storage.schema import MERGE_SELECTOR_BASE, OTEL_TABLES, SchemaOptions, ensure_schema

    def bases() -> dict[str, int | None]:
        rows = store.query("SELECT name, extract(create_table_query, 'merge_selector_base = (\\\\d+)') AS base "
                           f"FROM system.tables WHERE database = '{store.database}' AND name LIKE 'otel_%' "
                           "AND engine != 'MaterializedView'")
        return {r["name"]: int(r["base"]) if r["base"] else None for r in rows}

    assert bases() == dict.fromkeys(OTEL_TABLES, MERGE_SELECTOR_BASE)
    store.execute(f"ALTER TABLE `{store.database}`.otel_metrics_gauge RESET SETTING merge_selector_base")
    assert bases()["otel_metrics_gauge"] is None
    ensure_schema(store, SchemaOptions(store.database), all_ddl())
    assert bases() == dict.fromkeys(OTEL_TABLES, MERGE_SELECTOR_BASE)


class _Recording:
    """The real store, with the statements `execute` ran recorded."""

    def __init__(self, store) -> None:
        self.store, self.executed = store, []

    def execute(self, sql: str, settings=None) -> None:
        self.executed.append(sql)
        self.store.execute(sql, settings)

    def query(self, sql: str, settings=None):
        return self.store.query(sql, settings)


def test_a_start_runs_only_the_alters_an_older_database_needs(store):
    """ensure_schema skips an ALTER whose column or setting the table has (on a cluster each would queue an
    ON CLUSTER entry at every start), and runs exactly those whose column or setting is missing."""
    from infersight.server.tables import all_ddl
    from infersight.storage.schema import MERGE_SELECTOR_BASE, SchemaOptions, ensure_schema

    db = store.database
    again = _Recording(store)
    ensure_schema(again, SchemaOptions(db), all_ddl())
    assert [s for s in again.executed if s.startswith("ALTER")] == []

    store.execute(f"ALTER TABLE `{db}`.otel_metrics_sum RESET SETTING merge_selector_base")
    store.execute(f"ALTER TABLE `{db}`.infersight_gateway_requests DROP COLUMN Digest")
    older = _Recording(store)
    ensure_schema(older, SchemaOptions(db), all_ddl())
    assert [s for s in older.executed if s.startswith("ALTER")] == [
        f"ALTER TABLE `{db}`.`otel_metrics_sum` MODIFY SETTING merge_selector_base = {MERGE_SELECTOR_BASE}",
        f"ALTER TABLE `{db}`.`infersight_gateway_requests` ADD COLUMN IF NOT EXISTS `Digest` String DEFAULT '' "
        "AFTER `Key`"]
    cols = store.query(f"SELECT name FROM system.columns WHERE database = '{db}' AND table = "
                       "'infersight_gateway_requests' AND name = 'Digest'")
    assert cols == [{"name": "Digest"}]
