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
from infersight.storage.literals import string_literal

SCHEMA_VERSION = 1
DEDUP_WINDOW = 1000
# The exporter tables' merge fan-in (ClickHouse's default is 5): parts wait for about this many of their
# size before a merge, so each row is rewritten about log_base(parts) times instead of log_5. Ingest is
# write-heavy and merges took half of one core: 20 cuts the store's CPU per row (inserts and the merges
# they cause) by about a quarter, for more parts at a time (reads over 20 fresh parts ran about 2x slower
# than over one merged part). bench/ingest.py measures both.
MERGE_SELECTOR_BASE = 20

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
# An area's own tables: schema options (database, cluster) -> CREATE statements. The callers say which
# areas (`server.tables.all_ddl`).
DdlSource = Callable[["SchemaOptions"], list[str]]

# On a cluster, the sharding key of each table's Distributed front (`sql/distributed.sql`). It must be
# a function of the row, never rand(): a retried insert carries the same `insert_deduplication_token`,
# and only a split that is the same on every try lets each shard's replicas drop the block they hold.
# Rows of a host stay on one shard (its rollup rows collapse there); a trace's spans too (trace_id_ts).
_HOST = "cityHash64(ResourceAttributes['host.name'])"
SHARDING_KEYS = {
    "otel_logs": _HOST,
    "otel_traces": "cityHash64(TraceId)",
    "otel_traces_trace_id_ts": "cityHash64(TraceId)",
    **{t: _HOST for t in OTEL_TABLES if t.startswith("otel_metrics_")},
    "infersight_schema": "cityHash64(Component)",
    "infersight_requests_1m": "cityHash64(HostName)",
    "infersight_latency_1m": "cityHash64(HostName)",
    "infersight_nodes_1m": "cityHash64(HostName)",
    "infersight_hw_health_1m": "cityHash64(HostName)",
    "infersight_accelerators_1m": "cityHash64(HostName)",
    "infersight_gateway_requests": "cityHash64(Key)",
    "infersight_gateway_blocks": "cityHash64(Token)",
    # Every version of one id on one shard: FINAL (per shard) then sees them all.
    "infersight_slo_alerts": "cityHash64(Fingerprint)",
    "infersight_slo_notifications": "cityHash64(Id)",
    "infersight_slo_silences": "cityHash64(Id)",
    "infersight_slo_lease": "cityHash64(Name)",
    "infersight_slo_alert_log": "cityHash64(Fingerprint)",
}


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


def _template(name: str) -> str:
    text = files("infersight.storage").joinpath(f"sql/{name}.sql").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("--"))


def distributed(table: str, opts: SchemaOptions) -> str:
    """The Distributed table `table` over `table_local` on every shard of `opts.cluster` (`sql/distributed.sql`)."""
    key = SHARDING_KEYS.get(table)
    if key is None:
        raise ValueError(f"{table}: no sharding key in infersight.storage.schema.SHARDING_KEYS")
    stmt = _template("distributed").strip().rstrip(";")
    fixed = {"db": f"`{opts.database}`", "table": table, "on_cluster": f" ON CLUSTER `{opts.cluster}`",
             "cluster": f"`{opts.cluster}`", "sharding_key": key}
    return _LEFT.sub(lambda p: fixed[p.group(1)], stmt)


def render(template: str, opts: SchemaOptions, **params: object) -> list[str]:
    """The statements of `storage/sql/<template>.sql` for one node or a cluster.

    Placeholders: `{db}`/`{db_name}` (the database), `{local}` (`_local` on a cluster), `{on_cluster}`,
    `{engine[:Family[:arg]]}` (`SummingMergeTree`, `ReplicatedReplacingMergeTree(..., Version)`...),
    `{ttl}` (the `TTL` clause of an OTel table from `opts.ttl_days`), `{dedup}` (the non-replicated
    deduplication window setting, after a comma), `{dedup_window}`, and the template's own `params`
    (generated SQL, such as arrays built from constants). On a cluster, each `CREATE TABLE` of a
    `{local}` table is followed by its Distributed table (`distributed`), and each `ADD COLUMN` of
    one is repeated on that table (a Distributed table copies its columns only when created).
    """
    text = _template(template)
    cluster = opts.cluster
    on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""
    local = "_local" if cluster else ""
    # Replicated tables deduplicate by default (replicated_deduplication_window).
    dedup = "" if cluster else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    fixed = {"db_name": f"`{opts.database}`", "db": f"`{opts.database}`", "local": local,
             "on_cluster": on_cluster, "dedup": dedup, "dedup_window": str(DEDUP_WINDOW),
             "merge_base": str(MERGE_SELECTOR_BASE),
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
        adds = stmt.startswith("ALTER TABLE") and "{local}" in stmt and " ADD COLUMN " in stmt
        stmt = _LEFT.sub(lambda p: fixed.get(p.group(1), p.group(0)), stmt.replace("{ttl}", ttl))
        stmt = _ENGINE.sub(lambda e: _engine(e, cluster), stmt)
        left = set(_LEFT.findall(stmt)) - {"shard", "database", "table", "replica"}
        if left:
            raise ValueError(f"{template}.sql: no value for {sorted(left)}")
        out.append(stmt)
        if cluster and is_table:
            out.append(distributed(table, opts))
        elif cluster and adds:
            out.append(stmt.replace(f"`{table}_local`", f"`{table}`", 1))
    return out


def render_otel_ddl(opts: SchemaOptions) -> list[str]:
    """The exporter's DDL with our database, engines, TTL and dedup window filled in."""
    return render("otel_schema", opts)


def meta_ddl(opts: SchemaOptions) -> list[str]:
    """The table recording which schema version created the database (and its Distributed front on a cluster)."""
    return render("infersight_schema", opts)


def cluster_ddl(opts: SchemaOptions, ddl: Sequence[DdlSource]) -> list[str]:
    """Every statement `ensure_schema` runs, in order (for a cluster: what `tests/golden/cluster/` holds)."""
    otel = render_otel_ddl(opts)
    return [otel[0], *meta_ddl(opts), *otel[1:], *(stmt for source in ddl for stmt in source(opts))]


# An ALTER that brings an older database up to date: skipped when the table already has the column or the
# setting, so a start runs no ALTER (on a cluster, each would add an ON CLUSTER entry to the DDL queue).
_ALTER = re.compile(r"ALTER TABLE `(?P<db>[^`]+)`\.`(?P<table>[^`]+)`(?: ON CLUSTER `[^`]+`)? "
                    r"(?:ADD COLUMN IF NOT EXISTS `(?P<column>[^`]+)`|MODIFY SETTING (?P<setting>\w+ = \w+))")


def _done(storage: Storage, stmt: str) -> bool:
    """Whether `stmt` is an ALTER whose column or setting the table already has."""
    m = _ALTER.match(stmt)
    if m is None:
        return False
    db, table = string_literal(m["db"]), string_literal(m["table"])
    if m["column"]:
        return bool(storage.query(f"SELECT 1 AS x FROM system.columns WHERE database = {db} AND table = {table} "
                                  f"AND name = {string_literal(m['column'])}"))
    rows = storage.query(f"SELECT create_table_query AS q FROM system.tables WHERE database = {db} AND name = {table}")
    return bool(rows) and re.search(rf"\b{m['setting']}\b", rows[0]["q"].rsplit(" SETTINGS ", 1)[-1]) is not None


def ensure_schema(storage: Storage, opts: SchemaOptions, ddl: Sequence[DdlSource]) -> None:
    """Create what is missing (the OTel tables, then each of `ddl`); refuse a database of another schema version.

    On a cluster (`opts.cluster`) every statement runs `ON CLUSTER`: Replicated `<table>_local` tables
    with `{shard}`/`{replica}` macros, the views on them, and a Distributed `<table>` in front of each,
    so readers and writers use the same names as on one node.
    """
    statements = render_otel_ddl(opts)
    storage.execute(statements[0])  # CREATE DATABASE
    for stmt in meta_ddl(opts):
        storage.execute(stmt)
    rows = storage.query(
        f"SELECT Version FROM `{opts.database}`.`infersight_schema` FINAL WHERE Component = 'otel'")
    if rows and int(rows[0]["Version"]) != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"database '{opts.database}' has infersight schema version {rows[0]['Version']}, "
            f"this build expects {SCHEMA_VERSION}; migrate or use another --data-dir/database")
    for stmt in [*statements[1:], *(stmt for source in ddl for stmt in source(opts))]:
        if not _done(storage, stmt):
            storage.execute(stmt)
    if not rows:
        storage.execute(f"INSERT INTO `{opts.database}`.`infersight_schema` (Component, Version) "
                        f"VALUES ('otel', {SCHEMA_VERSION})")
