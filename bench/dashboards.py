"""Cost of the fleet view (Grafana fleet table and web UI): 20 cloud/region/model groups × 7 days of
per-minute rollups, the "By cloud / region / model" panel (requests, errors, tokens, p95 TTFT and p95
end-to-end from the merged histograms) over the last 1 h, 24 h and 7 d.

Baseline, measured in the same run on the same rows: a plain `sum()` of the request counters per group,
so the ratio is what the histogram quantiles and joins add. Data is synthetic, generated inside chDB.
"""
from __future__ import annotations

import importlib.util
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from infersight.rollups import LATENCY_BOUNDS  # noqa: E402
from infersight.server.tables import all_ddl  # noqa: E402
from infersight.storage.embedded import EmbeddedStorage  # noqa: E402
from infersight.storage.schema import SchemaOptions, ensure_schema  # noqa: E402
from test_dashboards_expand import ALL, expand  # noqa: E402

DAYS = 7
GROUPS = [(c, r, m) for c, regions in (("aws", ("us-east-1", "eu-west-1")), ("gcp", ("us-central1",)),
                                       ("azure", ("eastus", "westeurope")))
          for r in regions for m in ("llama-3.1-70b", "llama-3.1-8b", "mixtral-8x7b", "qwen2.5-72b")]
END = datetime(2026, 6, 1, tzinfo=UTC)
REPEAT = 5


def fill(store: EmbeddedStorage) -> int:
    db = store.database
    groups = "[" + ", ".join(f"('{c}', '{r}', '{m}')" for c, r, m in GROUPS) + "]"
    start = int((END - timedelta(days=DAYS)).timestamp())
    rows = DAYS * 1440 * len(GROUPS)
    g = f"{groups}[number % {len(GROUPS)} + 1]"
    minute = f"toDateTime({start} + intDiv(number, {len(GROUPS)}) * 60)"
    store.execute(
        f"INSERT INTO `{db}`.infersight_requests_1m (Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, "
        f"Tenant, Requests, BadRequests, InputTokens, OutputTokens, CachedTokens, ReportedCostUSD) "
        f"SELECT {minute}, {g}.1, {g}.2, 'node', {g}.3, 'vllm', '', 600 + number % 97, number % 3, "
        f"60000, 120000, 0, 0 FROM numbers({rows})")
    for kind in ("ttft", "e2e"):
        bounds = "[" + ", ".join(repr(float(b)) for b in LATENCY_BOUNDS[kind]) + "]"
        store.execute(
            f"INSERT INTO `{db}`.infersight_latency_1m (Minute, CloudProvider, CloudRegion, HostName, Model, "
            f"ServerKind, Tenant, Kind, Bounds, BucketCounts, Count, Sum) "
            f"SELECT {minute}, {g}.1, {g}.2, 'node', {g}.3, 'vllm', '', '{kind}', CAST({bounds}, 'Array(Float64)'), "
            f"arrayMap(i -> toUInt64(cityHash64(number, i) % 40), range(1, length({bounds}) + 2)) AS c, "
            f"arraySum(c), 1.0 FROM numbers({rows})")
    return rows


def panel_sql(title: str) -> str:
    spec = importlib.util.spec_from_file_location("dashboards_build", ROOT / "dashboards" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    (panel,) = [p for p in build.fleet()["panels"] if p["title"] == title and p["type"] == "table"]
    return panel["targets"][0]["rawSql"]


def timed(store: EmbeddedStorage, sql: str) -> tuple[float, int]:
    """Median of REPEAT runs after one untimed warm-up run."""
    store.query(sql)
    times, n = [], 0
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        n = len(store.query(sql))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStorage(Path(tmp) / "chdb", "bench")
        ensure_schema(store, SchemaOptions("bench"), all_ddl())
        t0 = time.perf_counter()
        rows = fill(store)
        print(f"rollup rows: {rows:,} requests + {2 * rows:,} latency ({len(GROUPS)} groups × {DAYS} d), "
              f"generated in {time.perf_counter() - t0:.1f} s")
        table = panel_sql("By cloud / region / model")
        baseline = ("SELECT CloudProvider, CloudRegion, Model, sum(Requests) AS r, sum(BadRequests) AS b "
                    "FROM otel.infersight_requests_1m WHERE $__timeFilter(Minute) GROUP BY CloudProvider, "
                    "CloudRegion, Model")
        variables = {"cloud_provider": ALL, "cloud_region": ALL, "model": ALL, "objective_percent": "99.9"}
        for label, span in (("1 h", timedelta(hours=1)), ("24 h", timedelta(days=1)), ("7 d", timedelta(days=DAYS))):
            def run(sql: str, span: timedelta = span) -> tuple[float, int]:
                text = expand(sql, database="bench", frm=END - span, to=END, variables=variables)
                assert not re.search(r"\$__|\$\{", text), text
                return timed(store, text)

            t_panel, n = run(table)
            t_base, _ = run(baseline)
            assert n == len(GROUPS), n
            print(f"fleet table, last {label:>4}: {t_panel * 1000:8.1f} ms  (plain sum {t_base * 1000:7.1f} ms, "
                  f"ratio {t_panel / t_base:5.1f}×)")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
