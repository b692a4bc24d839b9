"""Shared test fixtures: loopback ports and an embedded chDB store per test database."""
from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from support.net import free_port


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory) -> Path:
    """chDB allows one data path per process, so every in-process test shares this one."""
    return tmp_path_factory.mktemp("chdb")


class _StorePool:
    """One schema'd database per worker, emptied between tests instead of created anew.

    Creating the full schema costs about a second of CPU (66 statements), and 270-odd tests ask for a store.
    After a test, its database is reused only if its tables and the schema-version row are what a fresh
    `ensure_schema` gives (a test that altered, added or dropped anything gets a new database); then every
    table but the version row's is truncated, which also clears the insert-deduplication logs.
    """

    def __init__(self, chdb_dir: Path) -> None:
        self.chdb_dir = chdb_dir
        self.idle: tuple[str, list[dict]] | None = None  # (database, its fresh snapshot)

    @staticmethod
    def snapshot(s, db: str) -> list[dict]:
        return s.query(f"SELECT name, create_table_query FROM system.tables WHERE database = '{db}' ORDER BY name") \
            + s.query(f"SELECT * FROM `{db}`.infersight_schema ORDER BY ALL")

    def take(self):
        from infersight.server.tables import all_ddl
        from infersight.storage.embedded import EmbeddedStorage
        from infersight.storage.schema import SchemaOptions, ensure_schema

        if self.idle is not None:
            (db, fresh), self.idle = self.idle, None
            return EmbeddedStorage(self.chdb_dir, db), fresh
        db = f"t_{uuid.uuid4().hex[:12]}"
        s = EmbeddedStorage(self.chdb_dir, db)
        ensure_schema(s, SchemaOptions(database=db), all_ddl())
        return s, self.snapshot(s, db)

    def give_back(self, s, fresh: list[dict]) -> None:
        db = s.database
        try:
            same = self.snapshot(s, db) == fresh
        except Exception:  # noqa: BLE001 -- the test broke its store (closed it, dropped the database): not reused
            same = False
        if same:
            for row in s.query(f"SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree' "
                               "AND name != 'infersight_schema'"):
                s.execute(f"TRUNCATE TABLE `{db}`.`{row['name']}`")
            self.idle = (db, fresh)
        else:
            with contextlib.suppress(Exception):
                s.execute(f"DROP DATABASE IF EXISTS `{db}`")
        s.close()


@pytest.fixture(scope="session")
def _store_pool(chdb_dir) -> _StorePool:
    return _StorePool(chdb_dir)


@pytest.fixture
def store(_store_pool):
    """An embedded store with the full schema in a database of its own, empty (see _StorePool)."""
    s, fresh = _store_pool.take()
    yield s
    _store_pool.give_back(s, fresh)


@pytest.fixture
def recorder(port):
    """A real OTLP/HTTP receiver on a loopback port that records what it is sent (support.otlp_recorder)."""
    from support.otlp_recorder import Recorder

    r = Recorder(port).start()
    yield r
    r.stop()


@pytest.fixture
def sender(recorder):
    """The agent's HTTP sender pointed at `recorder`."""
    from infersight.exporters.senders import HttpSender

    s = HttpSender(recorder.url, {}, timeout_seconds=2)
    yield s
    s.close()


@pytest.fixture
async def hook():
    """A webhook receiver on a free loopback port that records every POST (see support.slo.Receiver)."""
    from support.slo import serve_receiver

    async with serve_receiver() as rec:
        yield rec


# Modules whose tests start subprocesses (servers, agents, CLIs), browsers, Alertmanager, Prometheus or npm:
# marked `e2e`, so `make test-fast` (pytest -m "not e2e") runs the in-process tests alone. tests/e2e/ is e2e too.
E2E_MODULES = frozenset({
    "test_agent_cli", "test_agent_light", "test_cli_server", "test_clickhouse_http", "test_dashboards_e2e",
    "test_demo", "test_gateway_server", "test_rollups_e2e", "test_server_metrics", "test_slo_alertmanager",
    "test_slo_e2e", "test_spool_agent", "test_spool_gateway", "test_up", "test_webui", "test_webui_demo",
    "test_http_surface", "test_agent_faults",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "e2e" or path.stem in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config):
    config.addinivalue_line("markers", "contract: runs on the embedded store and, with CLICKHOUSE_URL, on ClickHouse")


def pytest_terminal_summary(terminalreporter):
    """Say whether the contract suite (tests/test_contract.py) reached a real ClickHouse server."""
    import os

    ran = [r for key in ("passed", "failed", "skipped") for r in terminalreporter.stats.get(key, [])
           if "test_contract.py" in getattr(r, "nodeid", "") and "[clickhouse]" in r.nodeid]
    if not ran:
        return
    skipped = sum(r.skipped for r in ran)
    url = os.environ.get("CLICKHOUSE_URL")
    if url:
        line = f"contract suite: {len(ran) - skipped} tests ran against ClickHouse at {url}"
    else:
        line = f"contract suite: CLICKHOUSE_URL not set, {skipped} ClickHouse tests skipped (embedded store only)"
    terminalreporter.write_line(line, yellow=not url)
