"""DDL for the OTel exporter's tables plus infersight's own, for one node or a cluster.

Column names and types are the OpenTelemetry Collector ClickHouse exporter's newest layout
(Grafana's ClickHouse plugin queries them); only engine, TTL and settings are ours to vary.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files

from infersight.storage.base import Storage

SCHEMA_VERSION = 1
DEDUP_WINDOW = 1000

# Table short name -> time column used for TTL.
OTEL_TABLES = {
    "otel_logs": "Timestamp",
    "otel_traces": "Timestamp",
    "otel_traces_trace_id_ts": "Start",
    "otel_metrics_gauge": "TimeUnix",
    "otel_metrics_sum": "TimeUnix",
    "otel_metrics_histogram": "TimeUnix",
    "otel_metrics_exponential_histogram": "TimeUnix",
    "otel_metrics_summary": "TimeUnix",
}
# An area's own tables: database -> CREATE statements. The callers say which areas (`server.tables.all_ddl`).
DdlSource = Callable[[str], list[str]]


class SchemaMismatch(Exception):
    """The database was created by a different schema version of infersight."""


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "otel"
    ttl_days: dict[str, int] = field(default_factory=dict)
    cluster: str | None = None


def _ttl_key(table: str) -> str:
    return table.removeprefix("otel_")


def render_otel_ddl(opts: SchemaOptions) -> list[str]:
    """The exporter's DDL with our database, engines, TTL and dedup window filled in."""
    text = files("infersight.storage").joinpath("sql/otel_schema.sql").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    cluster = opts.cluster
    on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""
    local = "_local" if cluster else ""
    out: list[str] = []
    for stmt in (s.strip() for s in text.split(";")):
        if not stmt:
            continue
        m = re.search(r"\{db\}\.`(\w+?)\{local\}`", stmt)
        table = m.group(1) if m else ""
        ttl = ""
        days = opts.ttl_days.get(_ttl_key(table), 0)
        if days and table in OTEL_TABLES:
            ttl = f"TTL toDateTime({OTEL_TABLES[table]}) + toIntervalDay({int(days)})\n"
        if cluster:
            engine = "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
            agg = "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
            dedup = ""  # replicated tables deduplicate by default (replicated_deduplication_window)
        else:
            engine, agg = "MergeTree()", "AggregatingMergeTree()"
            dedup = f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
        stmt = (stmt.replace("{db_name}", f"`{opts.database}`").replace("{db}", f"`{opts.database}`")
                .replace("{local}", local).replace("{on_cluster}", on_cluster)
                .replace("{engine}", engine).replace("{agg_engine}", agg)
                .replace("{ttl}", ttl).replace("{dedup}", dedup))
        out.append(stmt)
        if cluster and table in OTEL_TABLES and stmt.startswith("CREATE TABLE"):
            out.append(
                f"CREATE TABLE IF NOT EXISTS `{opts.database}`.`{table}`{on_cluster} "
                f"AS `{opts.database}`.`{table}_local` "
                f"ENGINE = Distributed(`{cluster}`, `{opts.database}`, `{table}_local`, rand())")
    return out


def meta_ddl(database: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS `{database}`.`infersight_schema` "
            "(Component String, Version UInt32, AppliedAt DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY Component")


def ensure_schema(storage: Storage, opts: SchemaOptions, ddl: Sequence[DdlSource]) -> None:
    """Create what is missing (the OTel tables, then each of `ddl`); refuse a database of another schema version."""
    statements = render_otel_ddl(opts)
    storage.execute(statements[0])  # CREATE DATABASE
    storage.execute(meta_ddl(opts.database))
    rows = storage.query(
        f"SELECT Version FROM `{opts.database}`.`infersight_schema` FINAL WHERE Component = 'otel'")
    if rows and int(rows[0]["Version"]) != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"database '{opts.database}' has infersight schema version {rows[0]['Version']}, "
            f"this build expects {SCHEMA_VERSION}; migrate or use another --data-dir/database")
    for stmt in statements[1:]:
        storage.execute(stmt)
    if not opts.cluster:
        for source in ddl:
            for stmt in source(opts.database):
                storage.execute(stmt)
    if not rows:
        storage.execute(f"INSERT INTO `{opts.database}`.`infersight_schema` (Component, Version) "
                        f"VALUES ('otel', {SCHEMA_VERSION})")
