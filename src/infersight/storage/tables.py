"""Column declarations: the columns a table has, as `system.columns` reports them.

The DDL is in `storage/sql/*.sql`; these declarations are what code builds rows from (the gateway's
Arrow schemas) and what `tests/test_schema_contract.py` checks against a database created from the
templates, so the two cannot drift apart. The OTel exporter's tables are declared here; an area
declares its own tables next to its `ddl` (`rollups.TABLES`, `slo.store.TABLES`, `gateway.store.TABLES`).
Only stored columns are declared (no MATERIALIZED or ALIAS ones).
"""
from __future__ import annotations

from dataclasses import dataclass

STRING = "String"
LOW = "LowCardinality(String)"
MAP = "Map(LowCardinality(String), String)"


@dataclass(frozen=True)
class Table:
    """A table's name and its stored columns in order: (name, ClickHouse type)."""

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def types(self) -> dict[str, str]:
        return dict(self.columns)


def array(typ: str) -> str:
    return f"Array({typ})"


_METRIC_HEAD = (
    ("ResourceAttributes", MAP), ("ResourceSchemaUrl", STRING), ("ScopeName", STRING), ("ScopeVersion", STRING),
    ("ScopeAttributes", MAP), ("ScopeDroppedAttrCount", "UInt32"), ("ScopeSchemaUrl", STRING), ("ServiceName", LOW),
    ("MetricName", LOW), ("MetricDescription", STRING), ("MetricUnit", STRING), ("Attributes", MAP),
    ("StartTimeUnix", "DateTime"), ("TimeUnix", "DateTime"))
_EXEMPLARS = (
    ("Exemplars.FilteredAttributes", array(MAP)), ("Exemplars.TimeUnix", array("DateTime")),
    ("Exemplars.Value", array("Float64")), ("Exemplars.SpanId", array(STRING)), ("Exemplars.TraceId", array(STRING)))
_NUMBER = (("Value", "Float64"), ("Flags", "UInt32"))
_MIN_MAX = (("Flags", "UInt32"), ("Min", "Float64"), ("Max", "Float64"))
_COUNT_SUM = (("Count", "UInt64"), ("Sum", "Float64"))

OTEL_LOGS = Table("otel_logs", (
    ("Timestamp", "DateTime64(9)"), ("TraceId", STRING), ("SpanId", STRING), ("TraceFlags", "UInt8"),
    ("SeverityText", LOW), ("SeverityNumber", "UInt8"), ("ServiceName", LOW), ("Body", STRING),
    ("ResourceSchemaUrl", LOW), ("ResourceAttributes", MAP), ("ScopeSchemaUrl", LOW), ("ScopeName", STRING),
    ("ScopeVersion", LOW), ("ScopeAttributes", MAP), ("LogAttributes", MAP), ("EventName", STRING)))
OTEL_TRACES = Table("otel_traces", (
    ("Timestamp", "DateTime64(9)"), ("TraceId", STRING), ("SpanId", STRING), ("ParentSpanId", STRING),
    ("TraceState", STRING), ("SpanName", LOW), ("SpanKind", LOW), ("ServiceName", LOW), ("ResourceAttributes", MAP),
    ("ScopeName", STRING), ("ScopeVersion", STRING), ("SpanAttributes", MAP), ("Duration", "UInt64"),
    ("StatusCode", LOW), ("StatusMessage", STRING), ("Events.Timestamp", array("DateTime64(9)")),
    ("Events.Name", array(LOW)), ("Events.Attributes", array(MAP)), ("Links.TraceId", array(STRING)),
    ("Links.SpanId", array(STRING)), ("Links.TraceState", array(STRING)), ("Links.Attributes", array(MAP))))
OTEL_TRACES_TRACE_ID_TS = Table("otel_traces_trace_id_ts", (
    ("TraceId", STRING), ("Start", "SimpleAggregateFunction(min, DateTime)"),
    ("End", "SimpleAggregateFunction(max, DateTime)")))
OTEL_METRICS_GAUGE = Table("otel_metrics_gauge", _METRIC_HEAD + _NUMBER + _EXEMPLARS)
OTEL_METRICS_SUM = Table("otel_metrics_sum", _METRIC_HEAD + _NUMBER + _EXEMPLARS + (
    ("AggregationTemporality", "Int32"), ("IsMonotonic", "Bool")))
OTEL_METRICS_HISTOGRAM = Table("otel_metrics_histogram", _METRIC_HEAD + _COUNT_SUM + (
    ("BucketCounts", array("UInt64")), ("ExplicitBounds", array("Float64"))) + _EXEMPLARS + _MIN_MAX + (
    ("AggregationTemporality", "Int32"),))
OTEL_METRICS_EXPONENTIAL_HISTOGRAM = Table("otel_metrics_exponential_histogram", _METRIC_HEAD + _COUNT_SUM + (
    ("Scale", "Int32"), ("ZeroCount", "UInt64"), ("PositiveOffset", "Int32"),
    ("PositiveBucketCounts", array("UInt64")), ("NegativeOffset", "Int32"),
    ("NegativeBucketCounts", array("UInt64"))) + _EXEMPLARS + _MIN_MAX + (("AggregationTemporality", "Int32"),))
OTEL_METRICS_SUMMARY = Table("otel_metrics_summary", _METRIC_HEAD + _COUNT_SUM + (
    ("ValueAtQuantiles.Quantile", array("Float64")), ("ValueAtQuantiles.Value", array("Float64")),
    ("Flags", "UInt32")))
METRIC_TABLES = (OTEL_METRICS_GAUGE, OTEL_METRICS_SUM, OTEL_METRICS_HISTOGRAM, OTEL_METRICS_EXPONENTIAL_HISTOGRAM,
                 OTEL_METRICS_SUMMARY)
SCHEMA_META = Table("infersight_schema", (("Component", STRING), ("Version", "UInt32"), ("AppliedAt", "DateTime")))

# Every table storage/sql/otel_schema.sql and infersight_schema.sql create.
TABLES = (OTEL_LOGS, OTEL_TRACES, OTEL_TRACES_TRACE_ID_TS, *METRIC_TABLES, SCHEMA_META)
