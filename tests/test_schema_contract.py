"""Schema contract: every table the templates create has one column declaration, and both agree.

The DDL lives in `storage/sql/*.sql`; the declarations (`storage.tables` and each area's `TABLES`) are
what code builds rows from. This creates the full schema in chDB and compares them with
`system.columns`, and checks that the gateway's Arrow parts have exactly the declared columns.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from infersight import accelerator_rollups, rollups
from infersight.gateway import store as gateway_store
from infersight.gateway.rows.attrs import arrow_type
from infersight.slo import store as slo_store
from infersight.storage import tables

pytest.importorskip("chdb")

DECLARED = {t.name: t for t in (*tables.TABLES, *rollups.TABLES, *accelerator_rollups.TABLES, *slo_store.TABLES,
                                     *gateway_store.TABLES)}
SRC = Path(__file__).resolve().parent.parent / "src" / "infersight"


def test_every_table_is_declared_once():
    names = [t.name for t in (*tables.TABLES, *rollups.TABLES, *accelerator_rollups.TABLES, *slo_store.TABLES,
                              *gateway_store.TABLES)]
    assert len(names) == len(set(names))


def test_declared_columns_match_system_columns(store):
    db = store.database
    created = {r["name"] for r in store.query(
        f"SELECT name FROM system.tables WHERE database = '{db}' AND engine != 'MaterializedView'")}
    assert created == set(DECLARED)
    rows = store.query(f"SELECT table, name, type FROM system.columns WHERE database = '{db}' "
                       "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY table, position")
    actual: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        actual.setdefault(r["table"], []).append((r["name"], r["type"]))
    for name, table in DECLARED.items():
        assert actual[name] == list(table.columns), name


def _parts() -> dict:
    """One part per table the gateway writes, from requests with every kind of point, a span and a log."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from infersight.gateway import otlp
    from infersight.gateway.rows import ROW_BUILDERS, AttrSets

    metrics = ExportMetricsServiceRequest()
    ms = metrics.resource_metrics.add().scope_metrics.add().metrics
    ms.add(name="g").gauge.data_points.add(time_unix_nano=10**18, as_double=1)
    ms.add(name="s").sum.data_points.add(time_unix_nano=10**18, as_int=1)
    ms.add(name="h").histogram.data_points.add(time_unix_nano=10**18, count=1, bucket_counts=[1], sum=1)
    ms.add(name="e").exponential_histogram.data_points.add(time_unix_nano=10**18, count=1)
    ms.add(name="q").summary.data_points.add(time_unix_nano=10**18, count=1)
    traces = ExportTraceServiceRequest()
    traces.resource_spans.add().scope_spans.add().spans.add(name="x", trace_id=b"\1" * 16, span_id=b"\1" * 8)
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=10**18)
    sets, parts = AttrSets(), {}
    for signal, req in (("metrics", metrics), ("traces", traces), ("logs", logs)):
        body = req.SerializeToString()
        parts.update(ROW_BUILDERS[signal](otlp.decode(otlp.SIGNALS[signal], body, otlp.PROTOBUF), sets).parts)
    return parts


def test_gateway_parts_have_the_declared_columns_and_types():
    parts = _parts()
    assert set(parts) == set(gateway_store.DATA_TABLES)
    for name, part in parts.items():
        table = type(part).to_arrow([part])
        declared = {k: arrow_type(t) for k, t in DECLARED[name].columns}
        assert set(table.schema.names) == set(declared), name
        for k, typ in declared.items():
            field = table.schema.field(k).type
            if hasattr(field, "index_type"):  # dictionary-encoded string segments
                field = field.value_type
            assert field == typ, (name, k, field, typ)


def test_no_ddl_outside_the_templates():
    """CREATE statements live in storage/sql/*.sql; Python only renders them (and fronts cluster tables)."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.relative_to(SRC).as_posix() != "storage/schema.py"
                 and any(s in p.read_text() for s in ("CREATE TABLE", "CREATE MATERIALIZED VIEW"))]
    assert offenders == []
