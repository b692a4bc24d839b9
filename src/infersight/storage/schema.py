"""DDL for the OTel exporter's tables plus infersight's own, for one node or a cluster.

Every table's DDL is a template in `storage/sql/` (one file per table group), rendered by `render`;
an area's `ddl(database)` renders its own templates, with the SQL it generates from its constants
as parameters. The OTel tables' column names and types are the OpenTelemetry Collector ClickHouse
exporter's newest layout (Grafana's ClickHouse plugin queries them); only engine, TTL and settings
are ours to vary.
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


_REPLICATED = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
_ENGINE = re.compile(r"\{engine(?::(\w+))?(?::(\w+))?\}")  # {engine}, {engine:Summing}, {engine:Replacing:Version}
_LEFT = re.compile(r"\{(\w+(?::\w+)*)\}")


def _engine(m: re.Match[str], cluster: str | None) -> str:
    family, arg = m.group(1) or "", m.group(2)
    if cluster:
        return f"Replicated{family}MergeTree({_REPLICATED}{', ' + arg if arg else ''})"
    return f"{family}MergeTree({arg or ''})"


def render(template: str, opts: SchemaOptions, **params: object) -> list[str]:
    """The statements of `storage/sql/<template>.sql` for one node or a cluster.

    Placeholders: `{db}`/`{db_name}` (the database), `{local}` (`_local` on a cluster), `{on_cluster}`,
    `{engine[:Family[:arg]]}` (`SummingMergeTree`, `ReplicatedReplacingMergeTree(..., Version)`...),
    `{ttl}` (the `TTL` clause of an OTel table from `opts.ttl_days`), `{dedup}` (the non-replicated
    deduplication window setting, after a comma), `{dedup_window}`, and the template's own `params`
    (generated SQL, such as arrays built from constants). On a cluster, each `CREATE TABLE` of a
    `{local}` table gets its Distributed table.
    """
    text = files("infersight.storage").joinpath(f"sql/{template}.sql").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    cluster = opts.cluster
    on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""
    local = "_local" if cluster else ""
    # Replicated tables deduplicate by default (replicated_deduplication_window).
    dedup = "" if cluster else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    fixed = {"db_name": f"`{opts.database}`", "db": f"`{opts.database}`", "local": local,
             "on_cluster": on_cluster, "dedup": dedup, "dedup_window": str(DEDUP_WINDOW),
             **{k: str(v) for k, v in params.items()}}
    out: list[str] = []
    for stmt in (s.strip() for s in text.split(";")):
        if not stmt:
            continue
        m = re.search(r"\{db\}\.`(\w+?)(?:\{local\})?`", stmt)
        table = m.group(1) if m else ""
        days = opts.ttl_days.get(_ttl_key(table), 0) if table in OTEL_TABLES else 0
        ttl = f"TTL toDateTime({OTEL_TABLES[table]}) + toIntervalDay({int(days)})\n" if days else ""
        is_table = stmt.startswith("CREATE TABLE") and "{local}" in stmt
        stmt = _LEFT.sub(lambda p: fixed.get(p.group(1), p.group(0)), stmt.replace("{ttl}", ttl))
        stmt = _ENGINE.sub(lambda e: _engine(e, cluster), stmt)
        left = set(_LEFT.findall(stmt)) - {"shard", "database", "table", "replica"}
        if left:
            raise ValueError(f"{template}.sql: no value for {sorted(left)}")
        out.append(stmt)
        if cluster and is_table:
            out.append(
                f"CREATE TABLE IF NOT EXISTS `{opts.database}`.`{table}`{on_cluster} "
                f"AS `{opts.database}`.`{table}_local` "
                f"ENGINE = Distributed(`{cluster}`, `{opts.database}`, `{table}_local`, rand())")
    return out


def render_otel_ddl(opts: SchemaOptions) -> list[str]:
    """The exporter's DDL with our database, engines, TTL and dedup window filled in."""
    return render("otel_schema", opts)


def meta_ddl(database: str) -> str:
    """The table recording which schema version created the database."""
    return render("infersight_schema", SchemaOptions(database))[0]


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
