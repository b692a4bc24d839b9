"""The schema on a ClickHouse cluster: every table ON CLUSTER, Replicated local tables, Distributed fronts.

The DDL rendered for the cluster of docs/deploy.md (`infersight`, 2 shards x 2 replicas) is the golden
file `golden/cluster/schema.sql`; every statement parses in chDB (`formatQuery`), and the sharding keys
and names are checked against the schema as chDB creates it on one node. No cluster runs here: the
contract suite (`test_contract.py`, CLICKHOUSE_URL) runs the same code against a real server.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from infersight.server.tables import all_ddl
from infersight.slo.store import NOTIFICATIONS, StateStore
from infersight.storage.schema import SHARDING_KEYS, SchemaOptions, cluster_ddl, ensure_schema

GOLDEN = Path(__file__).parent / "golden" / "cluster"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CLUSTER = "infersight"
# The cluster of docs/deploy.md: (shard, replica) macros of its four nodes.
NODES = [("01", "ch-1a"), ("01", "ch-1b"), ("02", "ch-2a"), ("02", "ch-2b")]
OPTS = SchemaOptions(database="otel", cluster=CLUSTER)
DDL = cluster_ddl(OPTS, all_ddl())
NAME = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS `otel`\.`(\w+)`")


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept)"


def _keeper_paths() -> str:
    """Each node's Keeper path and replica name per replicated table, macros expanded as ClickHouse does."""
    lines = []
    for shard, replica in NODES:
        for stmt in DDL:
            m = re.search(r"Replicated\w*MergeTree\('([^']+)', '([^']+)'", stmt)
            if m:
                table = NAME.match(stmt).group(1)
                path = m.group(1).format(shard=shard, database="otel", table=table)
                lines.append(f"{shard} {replica:6} {path} {m.group(2).format(replica=replica)}")
    return "\n".join(lines) + "\n"


def test_cluster_ddl_matches_the_golden_file():
    head = (f"-- infersight's schema on ClickHouse cluster `{CLUSTER}` (2 shards x 2 replicas, docs/deploy.md),\n"
            "-- as `infersight server` runs it with storage.cluster set (storage.schema.cluster_ddl).\n"
            "-- Regenerate: UPDATE_GOLDEN=1 pytest tests/test_cluster_ddl.py\n\n")
    _golden("schema.sql", head + ";\n\n".join(DDL) + ";\n")
    _golden("keeper_paths.txt", _keeper_paths())


def test_every_statement_parses_in_chdb(store):
    for stmt in DDL:
        quoted = stmt.replace("\\", "\\\\").replace("'", "\\'")
        out = store.query(f"SELECT formatQuery('{quoted}') AS q")[0]["q"]
        assert out.split()[0] == stmt.split()[0], stmt[:120]
    with pytest.raises(Exception, match="Syntax error"):
        store.query("SELECT formatQuery('CREATE TABLE a.b ON CLUSTER c AS a.b_local ENGINE = Distributed(c')")


def test_every_table_is_replicated_on_the_cluster_with_a_distributed_front(store):
    assert all(f" ON CLUSTER `{CLUSTER}`" in s for s in DDL)
    single = {r["name"]: r["engine"] for r in store.query(
        f"SELECT name, engine FROM system.tables WHERE database = '{store.database}'")}
    tables = {n for n, e in single.items() if e != "MaterializedView"}
    views = {n for n, e in single.items() if e == "MaterializedView"}
    created = {NAME.match(s).group(1): s for s in DDL if NAME.match(s)}
    # One node's tables, each as a Replicated `_local` table on every shard plus a Distributed front.
    assert tables == set(SHARDING_KEYS)
    for t in tables:
        local, front = created[f"{t}_local"], created[t]
        engine = re.search(r"ENGINE = (\w+)\(", local).group(1)
        assert engine.startswith("Replicated") and single[t].startswith(engine.removeprefix("Replicated")), t
        assert "('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in local, t
        assert front.endswith(f"ENGINE = Distributed(`{CLUSTER}`, `otel`, `{t}_local`, {SHARDING_KEYS[t]})"), t
    # Views feed the local tables from the local tables (they fire on each shard's inserts).
    assert {f"{v}_local" for v in views} == {n for n, s in created.items() if "MATERIALIZED VIEW" in s}
    for n, s in created.items():
        if "MATERIALIZED VIEW" in s:
            refs = re.findall(r"`otel`\.`(\w+)`", s)
            assert all(r.endswith("_local") for r in refs), (n, refs)
    # Columns added to a local table are added to its front too.
    adds = [s for s in DDL if " ADD COLUMN " in s]
    assert adds and all(s.replace("_local`", "`", 1) in DDL for s in adds if "_local`" in s)


def test_sharding_keys_are_functions_of_the_row(store):
    """Each key evaluates on its table's columns (a typo fails here); rand() would split a retried block
    differently and defeat the replicas' deduplication."""
    for table, key in SHARDING_KEYS.items():
        assert "rand" not in key
        store.query(f"SELECT {key} AS k FROM `{store.database}`.`{table}` LIMIT 0")


def test_keeper_paths_are_shared_by_replicas_and_apart_by_shard():
    rows = [line.split() for line in _keeper_paths().splitlines()]
    assert len({(p, r) for _, _, p, r in rows}) == len(rows)  # no two replicas claim one name at one path
    by_path: dict[str, set[str]] = {}
    for shard, _, path, _ in rows:
        by_path.setdefault(path, set()).add(shard)
    assert all(len(shards) == 1 for shards in by_path.values())
    assert all(sum(p == path for _, _, p, _ in rows) == 2 for path in by_path)  # 2 replicas per shard


class _Recorder:
    """What ensure_schema sends to a cluster (none runs here); the version table reads empty."""

    database = "otel"
    cluster = CLUSTER

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql, settings=None):
        self.statements.append(sql)

    def query(self, sql, settings=None):
        return []


def test_ensure_schema_on_a_cluster_creates_every_table_then_records_the_version(store):
    rec = _Recorder()
    ensure_schema(rec, OPTS, all_ddl())
    assert rec.statements[:-1] == DDL
    assert rec.statements[-1].startswith("INSERT INTO `otel`.`infersight_schema` ")
    # The outbox prune runs on the local tables ON CLUSTER (a Distributed table takes no DELETE).
    StateStore(rec).prune_notifications(0)
    delete = rec.statements[-1]
    assert delete.startswith(f"DELETE FROM `otel`.`{NOTIFICATIONS}_local` ON CLUSTER `{CLUSTER}` WHERE")
    quoted = delete.replace("\\", "\\\\").replace("'", "\\'")
    store.query(f"SELECT formatQuery('{quoted}')")
