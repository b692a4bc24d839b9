"""The Grafana dashboards: every query runs in chDB against the real schema and gives the right numbers."""
from __future__ import annotations

import importlib.util
import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest

from test_dashboards_expand import ALL, expand

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
FROM = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
TO = datetime.fromisoformat("2026-01-01T01:00:00+00:00")


def _load_builder():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build = _load_builder()


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text())


def panels(dash: dict) -> list[dict]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def panel(dash: dict, title: str) -> dict:
    (p,) = [p for p in panels(dash) if p["title"] == title]
    return p


class Runner:
    """Runs a dashboard's SQL the way Grafana would, with variables resolved from their own queries."""

    def __init__(self, store, dash: dict, selection: dict | None = None, interval_s: int = 60,
                 frm: datetime = FROM, to: datetime = TO):
        self.store, self.dash, self.interval_s, self.frm, self.to = store, dash, interval_s, frm, to
        self.variables = {v["name"]: ALL for v in dash["templating"]["list"] if v["type"] == "query"}
        self.variables.update({v["name"]: v["query"] for v in dash["templating"]["list"] if v["type"] == "textbox"})
        self.variables.update(selection or {})
        self.options: dict[str, list[str]] = {}
        for v in dash["templating"]["list"]:  # in order: later variables may depend on earlier ones
            if v["type"] == "query":
                rows = self.rows(v["query"]["rawSql"])
                self.options[v["name"]] = [str(next(iter(r.values()))) for r in rows]

    def sql(self, raw: str, scoped: dict | None = None) -> str:
        return expand(raw, database=self.store.database, frm=self.frm, to=self.to, interval_s=self.interval_s,
                      variables={**self.variables, **(scoped or {})}, options=self.options)

    def rows(self, raw: str, scoped: dict | None = None) -> list[dict]:
        return self.store.query(self.sql(raw, scoped))

    def panel_rows(self, title: str, scoped: dict | None = None) -> list[dict]:
        (t,) = panel(self.dash, title)["targets"]
        return self.rows(t["rawSql"], scoped)


def insert(store, table: str, columns: str, rows: list[str]) -> None:
    store.execute(f"INSERT INTO `{store.database}`.`{table}` ({columns}) VALUES " + ", ".join(rows))


REQ_COLS = ("Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Requests, BadRequests, "
            "InputTokens, OutputTokens, CachedTokens")
REQ_COST_COLS = REQ_COLS + ", ReportedCostUSD"
LAT_COLS = ("Minute, CloudProvider, CloudRegion, HostName, Model, ServerKind, Tenant, Kind, Bounds, BucketCounts, "
            "Count, Sum")


@pytest.fixture
def fleet_store(store):
    # aws llama at 00:10 arrives in two inserts (the rollup contract: readers must sum).
    insert(store, "infersight_requests_1m", REQ_COLS,
           ["('2026-01-01 00:10:00','aws','us-east-1','a1','llama','vllm','t1',400,4,40000,80000,4000)"])
    insert(store, "infersight_requests_1m", REQ_COLS, [
        "('2026-01-01 00:10:00','aws','us-east-1','a2','llama','vllm','t1',200,2,20000,40000,2000)",
        "('2026-01-01 00:10:00','gcp','europe-west4','g1','llama','vllm','t1',1200,0,60000,120000,0)",
        "('2026-01-01 00:20:00','azure','eastus','z1','mistral','tgi','t2',360,36,36000,7200,0)",
    ])
    insert(store, "infersight_requests_1m", REQ_COST_COLS, [
        # reported cost arrives in its own rows of the same minute (e.g. from GenAI spans)
        "('2026-01-01 00:20:00','azure','eastus','z1','mistral','tgi','t2',0,0,0,0,0,0.8136)",
        # outside the range: must not count
        "('2026-01-01 02:00:00','aws','us-east-1','a1','llama','vllm','t1',99999,99999,1,1,1,99)",
    ])
    insert(store, "infersight_latency_1m", LAT_COLS, [
        "('2026-01-01 00:10:00','aws','us-east-1','a1','llama','vllm','t1','ttft',[0.1,0.5,1.0],[0,60,0,0],60,18)",
        "('2026-01-01 00:10:00','aws','us-east-1','a2','llama','vllm','t1','ttft',[0.1,0.5,1.0],[0,40,0,0],40,12)",
        "('2026-01-01 00:10:00','gcp','europe-west4','g1','llama','vllm','t1','ttft',[0.1,0.5,1.0],[100,0,0,0],100,5)",
        "('2026-01-01 00:20:00','azure','eastus','z1','mistral','tgi','t2','ttft',[0.25,2.5],[0,10,0],10,12)",
        "('2026-01-01 00:10:00','aws','us-east-1','a1','llama','vllm','t1','e2e',[1.0,2.0,4.0],[0,0,50,50],100,350)",
        "('2026-01-01 00:10:00','aws','us-east-1','a1','llama','vllm','t1','tpot',[0.01,0.02],[50,50,0],100,1.5)",
        "('2026-01-01 02:00:00','aws','us-east-1','a1','llama','vllm','t1','ttft',[0.1,0.5,1.0],[0,0,0,999],999,9990)",
    ])
    return store


def test_committed_json_is_what_build_py_renders():
    rendered = build.render()
    assert sorted(rendered) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python dashboards/build.py"


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
def test_dashboard_structure_follows_the_plugin(name):
    dash = load(name)
    ref = json.loads((Path(__file__).parent / "fixtures/dashboards/otel-service-dashboard.json").read_text())
    assert dash["schemaVersion"] == ref["schemaVersion"]
    assert dash["templating"]["list"][0] == ref["templating"]["list"][0]  # the same datasource variable
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        assert p["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
        for t in p["targets"]:
            assert t["editorType"] == "sql" and t["datasource"] == p["datasource"]
            assert t["format"] == (0 if p["type"] == "timeseries" else 1)
            assert "$__timeFilter(" in t["rawSql"] or "$__toTime" in t["rawSql"], p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
@pytest.mark.parametrize("selection", [{}, "first"], ids=["all", "one-value-each"])
def test_every_query_runs_against_the_schema(fleet_store, name, selection):
    """All panels and variables execute, with every variable at All and at a single value."""
    _accelerator_rows(fleet_store)
    _agent_rows(fleet_store)
    dash = load(name)
    run = Runner(fleet_store, dash)
    if selection == "first":
        picked = {k: [v[0]] for k, v in run.options.items() if v}
        assert picked, "the variable queries found no values in the test data"
        run = Runner(fleet_store, dash, picked)
    for p in panels(dash):
        for t in p["targets"]:
            run.rows(t["rawSql"])  # raises on any SQL error


# ---------------------------------------------------------------- fleet: numbers


def test_fleet_stats(fleet_store):
    run = Runner(fleet_store, load("infersight-fleet.json"))
    assert run.options["cloud_provider"] == ["aws", "azure", "gcp"]
    assert run.options["model"] == ["llama", "mistral"]
    (r,) = run.panel_rows("Requests/s")
    assert float(r["rps"]) == pytest.approx(2160 / 3600)
    (r,) = run.panel_rows("Error ratio")
    assert float(r["error_ratio"]) == pytest.approx(42 / 2160)
    (r,) = run.panel_rows("Output tokens/s")
    assert float(r["tokens_per_s"]) == pytest.approx((120000 + 120000 + 7200) / 3600)
    # Union of bounds 0.1,0.25,0.5,1,2.5,inf with counts 100,0,100,0,10,0: rank 199.5 falls in (0.25, 0.5].
    (r,) = run.panel_rows("p95 time to first token")
    assert float(r["p95"]) == pytest.approx(0.25 + 0.25 * (199.5 - 100) / 100)
    (r,) = run.panel_rows("Reported spend")
    assert float(r["usd"]) == pytest.approx(0.8136)


def test_fleet_table_per_cloud_region_model(fleet_store):
    run = Runner(fleet_store, load("infersight-fleet.json"))
    rows = {(r["Cloud"], r["Region"], r["Model"]): r for r in run.panel_rows("By cloud / region / model")}
    assert list(rows) == [("gcp", "europe-west4", "llama"), ("aws", "us-east-1", "llama"),
                          ("azure", "eastus", "mistral")]
    aws = rows["aws", "us-east-1", "llama"]
    assert int(aws["Requests"]) == 600
    assert float(aws["Error ratio"]) == pytest.approx(0.01)
    assert float(aws["p95 TTFT"]) == pytest.approx(0.1 + 0.4 * 95 / 100)   # all 100 in (0.1, 0.5]
    assert float(aws["p95 e2e"]) == pytest.approx(4.0)                     # rank 95 in +Inf -> largest bound
    assert int(aws["Output tokens"]) == 120000 and int(aws["Cached tokens"]) == 6000
    assert float(rows["gcp", "europe-west4", "llama"]["p95 TTFT"]) == pytest.approx(0.095)
    azure = rows["azure", "eastus", "mistral"]
    assert float(azure["p95 TTFT"]) == pytest.approx(0.25 + 2.25 * 9.5 / 10)
    assert azure["p95 e2e"] is None  # no e2e histogram: missing, not 0
    assert float(azure["Reported spend"]) == pytest.approx(0.8136)
    assert float(azure["$/1M tokens"]) == pytest.approx(0.8136 / (36000 + 7200) * 1e6)
    assert aws["Reported spend"] is None and aws["$/1M tokens"] is None  # unpriced, not $0


def test_fleet_variables_filter(fleet_store):
    dash = load("infersight-fleet.json")
    run = Runner(fleet_store, dash, {"cloud_provider": ["aws", "azure"]})
    assert run.options["cloud_region"] == ["eastus", "us-east-1"]
    rows = run.panel_rows("By cloud / region / model")
    assert sorted(r["Cloud"] for r in rows) == ["aws", "azure"]
    run = Runner(fleet_store, dash, {"model": ["mistral"]})
    (r,) = run.panel_rows("Requests/s")
    assert float(r["rps"]) == pytest.approx(360 / 3600)


def test_fleet_latency_and_token_series(fleet_store):
    dash = load("infersight-fleet.json")
    run = Runner(fleet_store, dash, interval_s=300)
    by_title = {p["title"]: p for p in panels(dash) if p["type"] == "timeseries"}

    def series(title):
        return run.rows(by_title[title]["targets"][0]["rawSql"])

    rps = {(r["time"], r["series"]): float(r["rps"]) for r in series("Requests/s by cloud/region/model")}
    assert rps == {("2026-01-01 00:10:00", "aws/us-east-1/llama"): pytest.approx(600 / 300),
                   ("2026-01-01 00:10:00", "gcp/europe-west4/llama"): pytest.approx(1200 / 300),
                   ("2026-01-01 00:20:00", "azure/eastus/mistral"): pytest.approx(360 / 300)}
    err = {r["series"]: float(r["error_ratio"]) for r in series("Error ratio by cloud/region/model")}
    assert err == {"aws/us-east-1/llama": pytest.approx(0.01), "gcp/europe-west4/llama": 0.0,
                   "azure/eastus/mistral": pytest.approx(0.1)}
    (tpot,) = series("Time per output token")
    # 50 in (0, 0.01], 50 in (0.01, 0.02]: p50 = 0.01, p95 = 0.01 + 0.01*45/50, p99 = 0.01 + 0.01*49/50
    assert [float(tpot[k]) for k in ("p50", "p95", "p99")] == pytest.approx([0.01, 0.019, 0.0198])
    ttft = {r["time"]: float(r["p50"]) for r in series("Time to first token")}
    assert ttft["2026-01-01 00:10:00"] == pytest.approx(0.1)  # 100 at <=0.1, 100 in (0.1, 0.5]: rank 100
    assert ttft["2026-01-01 00:20:00"] == pytest.approx(0.25 + 2.25 * 5 / 10)
    assert "2026-01-01 02:00:00" not in ttft
    tokens = {r["time"]: r for r in series("Tokens/s by type")}
    t = tokens["2026-01-01 00:10:00"]
    assert (float(t["input"]), float(t["output"]), float(t["cached"])) == pytest.approx(
        (120000 / 300, 240000 / 300, 6000 / 300))
    spend = {(r["time"], r["series"]): float(r["usd_per_hour"])
             for r in series("Reported spend per hour by cloud/region/model")}
    assert spend == {("2026-01-01 00:20:00", "azure/eastus/mistral"): pytest.approx(0.8136 * 3600 / 300)}
    p95 = {r["series"]: float(r["p95"]) for r in series("p95 time to first token by cloud/region/model")}
    assert p95["gcp/europe-west4/llama"] == pytest.approx(0.095)


def test_empty_range_gives_no_rows_not_errors(store):
    dash = load("infersight-fleet.json")
    run = Runner(store, dash)
    assert run.panel_rows("By cloud / region / model") == []
    (r,) = run.panel_rows("Error ratio")
    assert r["error_ratio"] is None
    assert run.panel_rows("p95 time to first token") == []


# ---------------------------------------------------------------- accelerators

GAUGE_COLS = "ResourceAttributes, ServiceName, MetricName, MetricUnit, Attributes, TimeUnix, Value"
SUM_COLS = GAUGE_COLS + ", AggregationTemporality, IsMonotonic"
SUM_START_COLS = SUM_COLS + ", StartTimeUnix"
RES = "map('host.name','{host}','cloud.provider','{cloud}','cloud.region','{region}')"


def _g(metric, host, dev, t, v, unit="1", extra=""):
    attrs = f"map('hw.id','{dev}','hw.type','gpu'{extra})"
    res = RES.format(host=host, cloud="aws" if host.startswith("a") else "gcp", region="r1")
    return f"({res}, 'infersight-agent', '{metric}', '{unit}', {attrs}, '2026-01-01 {t}', {v}"


def _accelerator_rows(store):
    insert(store, "otel_metrics_gauge", GAUGE_COLS, [
        _g("hw.gpu.utilization", "a-node", "GPU-0", "00:05:00", 0.5) + ")",
        _g("hw.gpu.utilization", "a-node", "GPU-0", "00:06:00", 0.7) + ")",
        _g("hw.gpu.utilization", "g-node", "GPU-0", "00:05:00", 0.9) + ")",
        _g("hw.gpu.utilization", "a-node", "GPU-0", "00:05:00", 0.99, extra=", 'hw.gpu.task','decoder'") + ")",
        _g("infersight.gpu.pipe.utilization", "a-node", "GPU-0", "00:05:00", 0.4,
           extra=", 'infersight.gpu.pipe','tensor'") + ")",
        _g("infersight.gpu.pipe.utilization", "a-node", "GPU-0", "00:05:00", 0.8,
           extra=", 'infersight.gpu.pipe','fp32'") + ")",
        _g("infersight.gpu.dram.activity", "a-node", "GPU-0", "00:05:00", 0.25) + ")",
        _g("infersight.gpu.sm.activity", "a-node", "GPU-0", "00:05:00", 0.6) + ")",
        _g("hw.power", "a-node", "GPU-0", "00:05:00", 250, "W") + ")",
        _g("hw.power", "a-node", "GPU-0", "00:06:00", 300, "W") + ")",
        _g("hw.power", "g-node", "GPU-0", "00:05:00", 100, "W") + ")",
        _g("hw.temperature", "a-node", "GPU-0", "00:05:00", 61, "Cel") + ")",
    ])
    xid = ", 'error.type','xid','hw.gpu.xid','79'"
    insert(store, "otel_metrics_sum", SUM_COLS, [
        # cumulative XID counter 0 -> 2 -> 5, then a reset to 1 (agent restart): increase 2 + 3 + 1 = 6
        _g("hw.errors", "a-node", "GPU-0", "00:01:00", 0, "{error}", xid) + ", 2, true)",
        _g("hw.errors", "a-node", "GPU-0", "00:02:00", 2, "{error}", xid) + ", 2, true)",
        _g("hw.errors", "a-node", "GPU-0", "00:03:00", 5, "{error}", xid) + ", 2, true)",
        _g("hw.errors", "a-node", "GPU-0", "00:04:00", 1, "{error}", xid) + ", 2, true)",
        # a delta-temporality exporter on another node: points are increments
        _g("hw.errors", "g-node", "GPU-0", "00:04:00", 3, "{error}", xid) + ", 1, true)",
        _g("hw.status", "a-node", "GPU-0", "00:05:00", 1, "1", ", 'hw.state','ok'") + ", 2, false)",
        _g("hw.status", "a-node", "GPU-0", "00:05:00", 0, "1", ", 'hw.state','failed'") + ", 2, false)",
        _g("hw.status", "a-node", "GPU-0", "00:06:00", 0, "1", ", 'hw.state','ok'") + ", 2, false)",
        _g("hw.status", "a-node", "GPU-0", "00:06:00", 1, "1", ", 'hw.state','failed'") + ", 2, false)",
        _g("hw.status", "g-node", "GPU-0", "00:06:00", 1, "1", ", 'hw.state','ok'") + ", 2, false)",
        _g("hw.gpu.memory.usage", "a-node", "GPU-0", "00:05:00", 2**30, "By") + ", 2, false)",
        _g("hw.gpu.memory.limit", "a-node", "GPU-0", "00:05:00", 2**34, "By") + ", 2, false)",
    ])
    insert(store, "otel_metrics_sum", SUM_START_COLS, [
        # a counter that started inside the range (StartTimeUnix): its first value is all increase
        _g("hw.errors", "g-node", "GPU-1", "00:07:00", 4, "{error}", xid) + ", 2, true, '2026-01-01 00:06:30')",
        # one that started before the range: its first value in the range says nothing about the range
        _g("hw.errors", "g-node", "GPU-2", "00:07:00", 50, "{error}", xid) + ", 2, true, '2025-12-31 00:00:00')",
    ])


def test_accelerator_numbers(store):
    _accelerator_rows(store)
    run = Runner(store, load("infersight-accelerators.json"))
    assert run.options["host"] == ["a-node", "g-node"]
    (r,) = run.panel_rows("Mean utilisation")
    assert float(r["utilization"]) == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    (r,) = run.panel_rows("Tensor pipe activity")
    assert (r["series"], float(r["value"])) == ("a-node GPU-0", pytest.approx(0.4))
    (r,) = run.panel_rows("DRAM bandwidth")
    assert float(r["value"]) == pytest.approx(0.25)
    (r,) = run.panel_rows("Power draw")
    assert float(r["watts"]) == pytest.approx(300 + 100)  # latest sample per device
    (r,) = run.panel_rows("XID errors")
    assert float(r["xid_errors"]) == pytest.approx(6 + 3 + 4)
    rows = run.panel_rows("XID errors by host, device and code")
    assert [(r["Host"], r["Device"], r["XID"], float(r["increase"])) for r in rows] == [
        ("a-node", "GPU-0", "79", 6.0), ("g-node", "GPU-1", "79", 4.0), ("g-node", "GPU-0", "79", 3.0)]
    (r,) = run.panel_rows("Accelerators not ok")
    assert int(r["not_ok"]) == 1
    (r,) = run.panel_rows("Devices not ok")
    assert (r["Host"], r["Device"], r["State"]) == ("a-node", "GPU-0", "failed")

    run = Runner(store, load("infersight-accelerators.json"), {"cloud_provider": ["gcp"]})
    assert run.options["host"] == ["g-node"]
    (r,) = run.panel_rows("Mean utilisation")
    assert float(r["utilization"]) == pytest.approx(0.9)
    (r,) = run.panel_rows("Accelerators not ok")
    assert int(r["not_ok"]) == 0


def _referenced_metrics(dash: dict) -> set[tuple[str, str]]:
    """(table, metric) pairs named in the dashboard's SQL."""
    found = set()
    for p in panels(dash):
        for t in p["targets"]:
            for m in re.finditer(r"FROM otel\.otel_metrics_(\w+) WHERE MetricName = '([^'$]+)'", t["rawSql"]):
                found.add((m.group(1), m.group(2)))
    return found


def test_accelerator_dashboard_reads_only_listed_metrics_from_the_right_table():
    refs = _referenced_metrics(load("infersight-accelerators.json"))
    assert {m for _, m in refs} <= set(build.ACCELERATOR_METRICS)
    assert {(build.ACCELERATOR_METRICS[m], m) for _, m in refs} == refs


def _collector_specs() -> dict[str, object]:
    from infersight.collectors.registry import collector_class

    specs: dict[str, object] = {}
    for name in ("nvml", "neuron"):
        for spec in collector_class(name).metrics:
            specs.setdefault(spec.name, spec)
    return specs


TABLE_OF_KIND = {"gauge": "gauge", "counter": "sum", "updowncounter": "sum", "histogram": "histogram"}


def _assert_published(dash_name: str, specs: dict) -> None:
    refs = _referenced_metrics(load(dash_name))
    assert refs
    for table, metric in refs:
        assert metric in specs, f"{dash_name}: {metric} is not in the emitting component's metric list"
        kind = specs[metric].kind
        assert TABLE_OF_KIND[kind] == table, f"{metric} is a {kind}: it lands in otel_metrics_{TABLE_OF_KIND[kind]}"


def test_accelerator_metrics_are_what_the_collectors_publish():
    _assert_published("infersight-accelerators.json", _collector_specs())


def test_agent_metrics_are_what_the_agent_publishes():
    from infersight.agent import selfmetrics

    _assert_published("infersight-agents.json", {m.name: m for m in selfmetrics.METRICS})


# ---------------------------------------------------------------- agents


def _agent_rows(store):
    res = "map('host.name','{h}','cloud.provider','aws','cloud.region','us-east-1')"

    def row(h, metric, t, v, attrs="map()"):
        return f"({res.format(h=h)}, 'infersight-agent', '{metric}', '', {attrs}, '2026-01-01 00:{t}:00', {v}"

    insert(store, "otel_metrics_gauge", GAUGE_COLS, [
        row("n1", "infersight.agent.collection.duration", "30", 0.25, "map('collector.name','nvml')") + ")",
        row("n2", "infersight.agent.collection.duration", "59", 0.5, "map('collector.name','host')") + ")",
    ])
    cum, level = ", 2, true)", ", 2, false)"
    insert(store, "otel_metrics_sum", SUM_COLS, [
        *(row("n1", "infersight.agent.points.exported", t, v) + cum
          for t, v in (("20", 100), ("25", 700), ("30", 1300))),
        *(row("n1", "infersight.agent.export.failures", t, v, "map('reason','timeout')") + cum
          for t, v in (("20", 0), ("25", 30))),
        row("n1", "infersight.agent.spool.size", "25", 8192) + level,
        row("n1", "infersight.agent.spool.size", "30", 4096) + level,
        *(row("n1", "infersight.agent.spool.dropped_points", t, v, "map('reason','spool_full')") + cum
          for t, v in (("20", 10), ("30", 50))),
        *(row("n2", "infersight.agent.collection.errors", t, v,
              "map('collector.name','nvml','error.type','timeout')") + cum for t, v in (("50", 1), ("55", 4))),
    ])


def test_agent_health(store):
    _agent_rows(store)
    run = Runner(store, load("infersight-agents.json"), interval_s=600)
    assert run.options["host"] == ["n1", "n2"]
    rows = run.panel_rows("Agents")
    assert [(r["Host"], int(r["Silent for"]), int(r["Metrics"])) for r in rows] == [("n1", 1800, 5), ("n2", 60, 2)]
    # 100 -> 700 -> 1300 over 00:20..00:30: the 00:20 bucket holds both steps (1200 in 600 s)
    assert [(r["time"], r["series"], float(r["per_second"])) for r in run.panel_rows("Points exported/s")] == [
        ("2026-01-01 00:20:00", "n1", pytest.approx(600 / 600)), ("2026-01-01 00:30:00", "n1", pytest.approx(1.0))]
    failures = run.panel_rows("Export failures/s")
    assert sum(float(r["per_second"]) for r in failures) * 600 == pytest.approx(30)
    assert {r["series"] for r in failures} == {"n1 timeout"}
    assert [(r["time"], float(r["bytes"])) for r in run.panel_rows("Spool size")] == [
        ("2026-01-01 00:20:00", 8192.0), ("2026-01-01 00:30:00", 4096.0)]
    (r,) = run.panel_rows("Dropped points")
    assert (r["Host"], r["Reason"], float(r["increase"])) == ("n1", "spool_full", 40.0)
    (r,) = run.panel_rows("Collector errors")
    assert (r["Host"], r["Collector"], r["Error"], float(r["increase"])) == ("n2", "nvml", "timeout", 3.0)
    assert {r["series"]: float(r["seconds"]) for r in run.panel_rows("Collector run time")} == {
        "n1 nvml": 0.25, "n2 host": 0.5}
    run = Runner(store, load("infersight-agents.json"), {"host": ["n2"]}, interval_s=600)
    assert [r["Host"] for r in run.panel_rows("Agents")] == ["n2"]
    assert run.panel_rows("Points exported/s") == []


def test_quantile_sql_matches_prometheus_rules_on_edge_cases(store):
    """Single finite bucket, everything in +Inf, and the first bucket starting at zero."""
    insert(store, "infersight_latency_1m", LAT_COLS, [
        "('2026-01-01 00:00:00','c','r','h','only-inf','k','t','e2e',[1.0],[0,8],8,80)",
        "('2026-01-01 00:00:00','c','r','h','first','k','t','e2e',[2.0,4.0],[4,0,0],4,2)",
    ])
    sql = build.quantile_sql("e2e", ["Model"], False, (0.25, 0.5, 1.0))
    rows = {r["Model"]: r for r in Runner(store, {"templating": {"list": []}}).rows(sql)}
    assert [float(rows["only-inf"][k]) for k in ("p25", "p50", "p100")] == [1.0, 1.0, 1.0]
    assert [float(rows["first"][k]) for k in ("p25", "p50", "p100")] == pytest.approx([0.5, 1.0, 2.0])
    assert not any(math.isnan(float(v)) for r in rows.values() for k, v in r.items() if k != "Model")


def test_error_budget_burn_table(fleet_store):
    run = Runner(fleet_store, load("infersight-fleet.json"))
    rows = {(r["Cloud"], r["Model"]): r for r in run.panel_rows("Burn rate by cloud / region / model")}
    # objective 99.9 %: budget 0.001; the rows at 00:10 and 00:20 are inside the last 1 h and 6 h, not 5 m
    assert float(rows["azure", "mistral"]["Burn 1h"]) == pytest.approx(0.1 / 0.001)
    assert float(rows["aws", "llama"]["Burn 6h"]) == pytest.approx(0.01 / 0.001)
    assert float(rows["gcp", "llama"]["Burn 1h"]) == 0.0
    assert all(r["Burn 5m"] is None for r in rows.values())
    assert float(rows["aws", "llama"]["Budget used"]) == pytest.approx(10.0)
    assert list(rows)[0] == ("azure", "mistral")  # the fastest burn first
    run = Runner(fleet_store, load("infersight-fleet.json"), {"objective_percent": "99"})
    rows = {(r["Cloud"], r["Model"]): r for r in run.panel_rows("Burn rate by cloud / region / model")}
    assert float(rows["aws", "llama"]["Burn 1h"]) == pytest.approx(1.0)


def test_slo_alerts_from_the_engine_state(store):
    def alert(fp, state, starts, ends, version, deleted=0, model="llama", tier="page-fast"):
        labels = json.dumps({"slo": "availability", "tier": tier, "severity": "page", "long_window": "1h",
                             "cloud_provider": "aws", "gen_ai_request_model": model}, sort_keys=True)
        ann = json.dumps({"summary": f"{model} burning"})
        return (f"('{fp}', '{labels}', '{ann}', '{state}', '{starts}', '{starts}', '{ends}', {deleted}, {version})")

    cols = "Fingerprint, Labels, Annotations, State, ActiveAt, StartsAt, EndsAt, Deleted, Version"
    insert(store, "infersight_slo_alerts", cols, [
        alert("f1", "pending", "2026-01-01 00:30:00", "1970-01-01 00:00:00", 1),
        alert("f1", "firing", "2026-01-01 00:30:00", "1970-01-01 00:00:00", 2),   # newer version wins
        alert("f2", "resolved", "2026-01-01 00:05:00", "2026-01-01 00:20:00", 3, model="mistral"),
        alert("f3", "resolved", "2025-12-31 20:00:00", "2025-12-31 21:00:00", 4, model="gemma"),  # before
        alert("f4", "firing", "2026-01-01 00:40:00", "1970-01-01 00:00:00", 5, deleted=1, model="qwen"),
    ])
    run = Runner(store, load("infersight-fleet.json"))
    rows = run.panel_rows("SLO alerts (SLO engine)")
    assert [(r["SLO"], r["Tier"], r["State"], r["Group"]) for r in rows] == [
        ("availability", "page-fast", "firing", "cloud_provider=aws, gen_ai_request_model=llama"),
        ("availability", "page-fast", "resolved", "cloud_provider=aws, gen_ai_request_model=mistral")]
    assert rows[0]["Summary"] == "llama burning"
    run = Runner(store, load("infersight-fleet.json"), {"model": ["mistral"]})
    assert [r["State"] for r in run.panel_rows("SLO alerts (SLO engine)")] == ["resolved"]
