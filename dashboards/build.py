"""Generate the Grafana dashboards in this folder: `python dashboards/build.py` (or `--check`).

The SQL is written once here (filters, histogram quantiles) and rendered into plain dashboard
JSON for Grafana's ClickHouse plugin (`grafana-clickhouse-datasource`), in the layout of the
plugin's own OpenTelemetry dashboards. Tables are qualified with the `otel` database.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from infersight import rollups
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(HERE.parent / "src"))
    from infersight import rollups
DB = "otel"
DS = {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
QUANTILES = (0.5, 0.95, 0.99)
LATENCY_KINDS = {"e2e": "End-to-end latency", "ttft": "Time to first token", "tpot": "Time per output token"}

# Metrics the accelerator dashboard reads, with the table their kind lands in (gauge -> gauge,
# counter/updowncounter -> sum). tests/test_dashboards.py checks them against the collectors.
ACCELERATOR_METRICS = {
    "hw.gpu.utilization": "gauge",
    "hw.gpu.memory.usage": "sum",
    "hw.gpu.memory.limit": "sum",
    "hw.power": "gauge",
    "hw.temperature": "gauge",
    "hw.errors": "sum",
    "hw.status": "sum",
    # GPM (Hopper and newer), from collectors/nvml
    "infersight.gpu.sm.activity": "gauge",
    "infersight.gpu.dram.activity": "gauge",
    "infersight.gpu.pipe.utilization": "gauge",
    # AWS Neuron, from collectors/neuron
    "infersight.neuron.core.utilization": "gauge",
    "infersight.neuron.core.flops": "gauge",
    "infersight.neuron.memory.usage": "sum",
    "infersight.neuron.execution.errors": "sum",
}
# Which gauge rows mark a host as one with accelerators (for the host and cloud variables).
ACCELERATOR_GAUGES = "(MetricName LIKE 'hw.%' OR MetricName LIKE 'infersight.neuron.core.%')"
# Engine utilisation: NVML splits hw.gpu.utilization by hw.gpu.task; encoder/decoder are not compute.
COMPUTE_TASK = "Attributes['hw.gpu.task'] IN ('', 'general')"

# ---------------------------------------------------------------- SQL building blocks

FLEET_FILTER = (
    "$__conditionalAll(CloudProvider IN (${cloud_provider}), $cloud_provider)"
    " AND $__conditionalAll(CloudRegion IN (${cloud_region}), $cloud_region)"
    " AND $__conditionalAll(Model IN (${model}), $model)"
)
HW_FILTER = (
    "$__conditionalAll(ResourceAttributes['cloud.provider'] IN (${cloud_provider}), $cloud_provider)"
    " AND $__conditionalAll(ResourceAttributes['host.name'] IN (${host}), $host)"
)
# The source precedence of docs/slo.md (`rollups.*_precedence`, the one rule): an instrumented app's own
# request/token counters and gen_ai.server.* histograms are left out where its spans of the same minute (or an
# adjacent one), place, host and model exist. The span rows looked at: the dashboard range, a minute wider.
SPAN_LOOKUP = "Minute >= $__fromTime - INTERVAL 1 MINUTE AND Minute <= $__toTime + INTERVAL 1 MINUTE"


def _unquoted(sql: str) -> str:
    """The rollups' `db.`table`` as this file writes tables (`otel.table`: one text to replace for another db)."""
    for t in rollups.TABLES:
        sql = sql.replace(f"{DB}.`{t.name}`", f"{DB}.{t.name}")
    return sql


REQUESTS_COUNTED = _unquoted(rollups.requests_precedence(DB, SPAN_LOOKUP))
REQ_FILTER = f"{FLEET_FILTER} AND {REQUESTS_COUNTED}"


def latency_counted(kind: str) -> str:
    return _unquoted(rollups.latency_precedence(DB, f"Kind = '{kind}' AND {SPAN_LOOKUP}"))


RANGE_SECONDS = "greatest(dateDiff('second', $__fromTime, $__toTime), 1)"
SERIES = "concat(CloudProvider, '/', CloudRegion, '/', Model)"


def quantile_sql(kind: str, group: list[str], per_time: bool, quantiles=QUANTILES, where: str = FLEET_FILTER,
                 order: str | None = None) -> str:
    """Quantiles from the mergeable per-minute histograms (Prometheus histogram_quantile rules).

    Rows are summed per bucket layout first (`sumForEach`, cheap), then per upper bound, so
    series with different layouts merge into the union of their bounds. Inside a bucket the value is
    interpolated linearly; a rank in the +Inf bucket answers the largest finite bound. Rows are read with the
    source precedence (`latency_counted`).
    """
    keys = (["time"] if per_time else []) + group
    inner_keys = (["$__timeInterval(Minute) AS time"] if per_time else []) + group
    qs = "[" + ", ".join(repr(q) for q in quantiles) + "]"
    picks = ", ".join(f"qs[{i + 1}] AS p{round(q * 100):d}" for i, q in enumerate(quantiles))
    sel = "".join(f"{k}, " for k in keys)
    grouped = f" GROUP BY {', '.join(keys)}" if keys else ""
    return (
        f"SELECT {sel}{picks} FROM ("
        f"SELECT {sel}arrayMap(q -> arrayFirstIndex(x -> x >= q * total, cum), {qs}) AS idx, "
        f"arrayMap((q, i) -> if(i = length(b), b[i - 1], if(i = 1, 0, b[i - 1]) + (b[i] - if(i = 1, 0, b[i - 1]))"
        f" * (q * total - if(i = 1, 0, cum[i - 1])) / c[i]), {qs}, idx) AS qs "
        f"FROM (SELECT {sel}arraySort(groupArray((bound, n))) AS pairs, pairs.1 AS b, pairs.2 AS c, "
        f"arrayCumSum(c) AS cum, cum[-1] AS total "
        f"FROM (SELECT {sel}bound, sum(n) AS n FROM ("
        f"SELECT {''.join(f'{k}, ' for k in inner_keys)}Bounds, sumForEach(BucketCounts) AS counts "
        f"FROM {DB}.infersight_latency_1m WHERE $__timeFilter(Minute) AND Kind = '{kind}' AND {where} "
        f"AND {latency_counted(kind)} "
        f"GROUP BY {sel}Bounds) ARRAY JOIN arrayPushBack(Bounds, inf) AS bound, counts AS n "
        f"GROUP BY {sel}bound){grouped}) WHERE total > 0)"
        + (f" ORDER BY {order}" if order else "")
    )


def _increments(metric: str, cols: str, where: str) -> str:
    """Rows of a counter in `otel_metrics_sum` with `inc`, the increase since the series' previous point.

    Cumulative points count the step from the previous point of the same series (a drop is a
    reset: the new value is the increase). A series' first point in the range counts in full when
    the series started inside the range (StartTimeUnix), else nothing. Delta points count as they are.
    """
    return (
        f"SELECT {cols}, lagInFrame(Value) OVER w AS prev, row_number() OVER w AS rn, "
        f"if(AggregationTemporality = 1, Value, if(rn = 1, if(StartTimeUnix >= $__fromTime, Value, 0), "
        f"if(Value >= prev, Value - prev, Value))) AS inc "
        f"FROM {DB}.otel_metrics_sum "
        f"WHERE MetricName = '{metric}' AND $__timeFilter(TimeUnix) AND {where} "
        f"WINDOW w AS (PARTITION BY ResourceAttributes, Attributes ORDER BY TimeUnix "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )


def counter_increase_sql(metric: str, keys: dict[str, str], where: str = HW_FILTER) -> str:
    """Increase of a counter per key over the range (only keys that increased)."""
    key_cols = ", ".join(f"{expr} AS `{name}`" for name, expr in keys.items())
    key_names = ", ".join(f"`{name}`" for name in keys)
    return (f"SELECT {key_names}, sum(inc) AS increase FROM ({_increments(metric, key_cols, where)}) "
            f"GROUP BY {key_names} HAVING increase > 0 ORDER BY increase DESC")


def counter_rate_sql(metric: str, series: str, where: str) -> str:
    """Per-second rate of a counter per series and time bucket."""
    cols = f"$__timeInterval(TimeUnix) AS time, {series} AS series"
    return (f"SELECT time, series, sum(inc) / $__interval_s AS per_second FROM ({_increments(metric, cols, where)}) "
            f"GROUP BY time, series ORDER BY time")


# ---------------------------------------------------------------- panel helpers

class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0


def target(sql: str, fmt: int, ref: str = "A") -> dict:
    return {"datasource": DS, "editorType": "sql", "rawSql": sql, "refId": ref, "format": fmt}


def timeseries(title: str, description: str, sql: str | list[str], unit: str, *, stack: bool = False,
               min_interval: str | None = None) -> dict:
    sqls = [sql] if isinstance(sql, str) else sql
    custom = {"drawStyle": "line", "fillOpacity": 25 if stack else 10, "lineWidth": 2, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"group": "A", "mode": "normal"}
    panel = {
        "datasource": DS, "type": "timeseries", "title": title, "description": description,
        "fieldConfig": {"defaults": {"color": {"mode": "palette-classic"}, "custom": custom, "unit": unit},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [target(s, FORMAT_TIMESERIES, chr(ord("A") + i)) for i, s in enumerate(sqls)],
        "links": [],
    }
    if min_interval:
        panel["interval"] = min_interval
    return panel


def table(title: str, description: str, sql: str, overrides: dict[str, str] | None = None) -> dict:
    return {
        "datasource": DS, "type": "table", "title": title, "description": description,
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}},
                        "overrides": [{"matcher": {"id": "byName", "options": name},
                                       "properties": [{"id": "unit", "value": unit}]}
                                      for name, unit in (overrides or {}).items()]},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "targets": [target(sql, FORMAT_TABLE)],
        "links": [],
    }


def stat(title: str, description: str, sql: str, unit: str, thresholds: list[tuple[str, float | None]]) -> dict:
    return {
        "datasource": DS, "type": "stat", "title": title, "description": description,
        "fieldConfig": {"defaults": {"unit": unit, "color": {"mode": "thresholds"},
                                     "thresholds": {"mode": "absolute",
                                                    "steps": [{"color": c, "value": v} for c, v in thresholds]}},
                        "overrides": []},
        "options": {"colorMode": "value", "graphMode": "none", "justifyMode": "auto", "textMode": "auto",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [target(sql, FORMAT_TABLE)],
        "links": [],
    }


def datasource_var() -> dict:
    return {"current": {}, "hide": 0, "includeAll": False, "label": "Data Source", "multi": False,
            "name": "datasource", "options": [], "query": "grafana-clickhouse-datasource", "refresh": 1,
            "regex": "", "skipUrlSync": False, "type": "datasource"}


def query_var(name: str, label: str, sql: str) -> dict:
    return {"current": {}, "datasource": DS, "definition": sql, "hide": 0, "includeAll": True, "allValue": None,
            "label": label, "multi": True, "name": name, "options": [],
            "query": {"editorType": "sql", "rawSql": sql}, "refresh": 2, "regex": "", "skipUrlSync": False,
            "sort": 1, "type": "query"}


def dashboard(title: str, uid: str, description: str, tags: list[str], variables: list[dict],
              layout: Layout) -> dict:
    return {
        "title": title, "uid": uid, "description": description, "editable": True, "graphTooltip": 2, "id": None,
        "schemaVersion": 39, "tags": ["infersight", "clickhouse", "otel", *tags],
        "time": {"from": "now-6h", "to": "now"}, "refresh": "1m", "timepicker": {}, "timezone": "",
        "fiscalYearStartMonth": 0, "liveNow": False,
        "links": [{"asDropdown": True, "icon": "external link", "includeVars": True, "keepTime": True,
                   "tags": ["infersight"], "title": "infersight", "type": "dashboards"}],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout.panels,
        "version": 1,
    }


# ---------------------------------------------------------------- dashboards

def fleet() -> dict:
    req = f"{DB}.infersight_requests_1m"
    lay = Layout()
    lay.row("Fleet: ${cloud_provider} / ${cloud_region} / ${model}")
    lay.add(stat("Requests/s", "Requests per second over the range, from the per-minute request rollup.",
                 f"SELECT sum(Requests) / {RANGE_SECONDS} AS rps FROM {req} "
                 f"WHERE $__timeFilter(Minute) AND {REQ_FILTER}",
                 "reqps", [("blue", None)]), 6, 4)
    lay.add(stat("Error ratio", "Bad requests ÷ requests over the range (event-weighted).",
                 f"SELECT if(sum(Requests) = 0, NULL, sum(BadRequests) / sum(Requests)) AS error_ratio FROM {req} "
                 f"WHERE $__timeFilter(Minute) AND {REQ_FILTER}",
                 "percentunit", [("green", None), ("yellow", 0.001), ("red", 0.01)]), 6, 4)
    lay.add(stat("p95 time to first token", "95th percentile TTFT over the range, from the merged histograms.",
                 quantile_sql("ttft", [], False, (0.95,)), "s", [("green", None), ("yellow", 0.5), ("red", 2)]),
            6, 4)
    lay.add(stat("Output tokens/s", "Generated tokens per second over the range.",
                 f"SELECT sum(OutputTokens) / {RANGE_SECONDS} AS tokens_per_s FROM {req} "
                 f"WHERE $__timeFilter(Minute) AND {REQ_FILTER}",
                 "short", [("blue", None)]), 6, 4)
    ttft = quantile_sql("ttft", ["CloudProvider", "CloudRegion", "Model"], False, (0.95,))
    e2e = quantile_sql("e2e", ["CloudProvider", "CloudRegion", "Model"], False, (0.95,))
    lay.add(table(
        "By cloud / region / model",
        "One row per cloud provider, region and model over the range: traffic, errors, p95 latency, tokens, and "
        "the spend instrumented applications reported (gen_ai.usage.cost); empty where nothing was priced.",
        f"SELECT r.CloudProvider AS Cloud, r.CloudRegion AS Region, r.Model AS Model, r.requests AS Requests, "
        f"r.requests / {RANGE_SECONDS} AS `Req/s`, if(r.requests = 0, NULL, r.bad / r.requests) AS `Error ratio`, "
        f"if(t.found = 1, t.p95, NULL) AS `p95 TTFT`, if(e.found = 1, e.p95, NULL) AS `p95 e2e`, "
        f"r.input AS `Input tokens`, r.output AS `Output tokens`, r.cached AS `Cached tokens`, "
        f"if(r.cost = 0, NULL, r.cost) AS `Reported spend`, "
        f"if(r.cost = 0 OR r.input + r.output = 0, NULL, r.cost / (r.input + r.output) * 1000000) AS `$/1M tokens` "
        f"FROM (SELECT CloudProvider, CloudRegion, Model, sum(Requests) AS requests, sum(BadRequests) AS bad, "
        f"sum(InputTokens) AS input, sum(OutputTokens) AS output, sum(CachedTokens) AS cached, "
        f"toFloat64(sum(ReportedCostUSD)) AS cost FROM {req} "
        f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY CloudProvider, CloudRegion, Model) AS r "
        f"LEFT JOIN (SELECT *, 1 AS found FROM ({ttft})) AS t USING (CloudProvider, CloudRegion, Model) "
        f"LEFT JOIN (SELECT *, 1 AS found FROM ({e2e})) AS e USING (CloudProvider, CloudRegion, Model) "
        f"ORDER BY Requests DESC, Cloud, Region, Model",
        {"Req/s": "reqps", "Error ratio": "percentunit", "p95 TTFT": "s", "p95 e2e": "s",
         "Reported spend": "currencyUSD", "$/1M tokens": "currencyUSD"}), 24, 8)

    budget = "(1 - toFloat64OrZero('${objective_percent}') / 100)"

    def burn(window: str) -> str:
        since = f"Minute >= $__toTime - INTERVAL {window}"
        return (f"sumIf(BadRequests, {since}) / nullIf(sumIf(Requests, {since}), 0) / {budget} "
                f"AS `Burn {window.split()[0]}{window.split()[1][0].lower()}`")

    lay.row("Error budget (objective ${objective_percent} %)")
    lay.add(table("Burn rate by cloud / region / model",
                  "Error ratio over the last 5 m, 1 h and 6 h before the range end ÷ the error budget "
                  "(1 − objective). 14.4× over 1 h pages in the Google 30-day catalogue; 'Budget used' treats "
                  "the dashboard range as the SLO window. The SLO engine's own evaluation is the table below.",
                  f"SELECT CloudProvider AS Cloud, CloudRegion AS Region, Model, {burn('5 MINUTE')}, "
                  f"{burn('1 HOUR')}, {burn('6 HOUR')}, "
                  f"sum(BadRequests) / nullIf(sum(Requests), 0) / {budget} AS `Budget used` FROM {req} "
                  f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY Cloud, Region, Model "
                  f"ORDER BY `Burn 1h` DESC, Cloud, Region, Model",
                  {"Burn 5m": "suffix:×", "Burn 1h": "suffix:×", "Burn 6h": "suffix:×",
                   "Budget used": "percentunit"}), 12, 8)
    tier_keys = "['slo', 'alertname', 'severity', 'tier', 'long_window', 'short_window', 'burn_rate_threshold']"
    lay.add(table("SLO alerts (SLO engine)",
                  "Alerts the SLO engine held during the range, from its persisted state: firing first.",
                  f"SELECT JSONExtractString(Labels, 'slo') AS SLO, JSONExtractString(Labels, 'tier') AS Tier, "
                  f"JSONExtractString(Labels, 'severity') AS Severity, State, "
                  f"arrayStringConcat(arrayMap(kv -> concat(kv.1, '=', kv.2), arrayFilter(kv -> NOT has({tier_keys}, "
                  f"kv.1), JSONExtractKeysAndValues(Labels, 'String'))), ', ') AS `Group`, StartsAt AS Since, "
                  f"JSONExtractString(Annotations, 'summary') AS Summary FROM {DB}.infersight_slo_alerts FINAL "
                  f"WHERE Deleted = 0 AND StartsAt <= $__toTime AND (State != 'resolved' OR EndsAt >= $__fromTime) "
                  "AND $__conditionalAll(JSONExtractString(Labels, 'cloud_provider') IN (${cloud_provider}), "
                  "$cloud_provider) AND $__conditionalAll(JSONExtractString(Labels, 'gen_ai_request_model') "
                  "IN (${model}), $model) "
                  f"ORDER BY State = 'firing' DESC, Severity, SLO, Tier, `Group`"), 12, 8)

    lay.row("Traffic and errors")
    lay.add(timeseries("Requests/s by cloud/region/model", "Requests per second per cloud/region/model.",
                       f"SELECT $__timeInterval(Minute) AS time, {SERIES} AS series, "
                       f"sum(Requests) / $__interval_s AS rps FROM {req} "
                       f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY time, series ORDER BY time",
                       "reqps", min_interval="1m"), 12, 8)
    lay.add(timeseries("Error ratio by cloud/region/model", "Bad requests ÷ requests per cloud/region/model.",
                       f"SELECT $__timeInterval(Minute) AS time, {SERIES} AS series, "
                       f"sum(BadRequests) / sum(Requests) AS error_ratio FROM {req} "
                       f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY time, series "
                       f"HAVING sum(Requests) > 0 ORDER BY time",
                       "percentunit", min_interval="1m"), 12, 8)

    lay.row("Latency (p50 / p95 / p99 from the merged histograms)")
    for kind, title in LATENCY_KINDS.items():
        lay.add(timeseries(title, f"p50, p95 and p99 of {title.lower()} across the selection.",
                           quantile_sql(kind, [], True, order="time"), "s", min_interval="1m"), 8, 8)
    lay.add(timeseries("p95 time to first token by cloud/region/model", "Compare the same model across clouds.",
                       f"SELECT time, {SERIES} AS series, p95 FROM ("
                       + quantile_sql("ttft", ["CloudProvider", "CloudRegion", "Model"], True, (0.95,))
                       + ") ORDER BY time", "s", min_interval="1m"), 12, 8)
    lay.add(timeseries("p95 end-to-end latency by cloud/region/model", "Compare the same model across clouds.",
                       f"SELECT time, {SERIES} AS series, p95 FROM ("
                       + quantile_sql("e2e", ["CloudProvider", "CloudRegion", "Model"], True, (0.95,))
                       + ") ORDER BY time", "s", min_interval="1m"), 12, 8)

    lay.row("Tokens")
    lay.add(timeseries("Tokens/s by type", "Prompt (input), generated (output) and cached prompt tokens per second.",
                       f"SELECT $__timeInterval(Minute) AS time, sum(InputTokens) / $__interval_s AS input, "
                       f"sum(OutputTokens) / $__interval_s AS output, sum(CachedTokens) / $__interval_s AS cached "
                       f"FROM {req} WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY time ORDER BY time",
                       "short", min_interval="1m"), 12, 8)
    lay.add(timeseries("Output tokens/s by cloud/region/model", "Generated tokens per second.",
                       f"SELECT $__timeInterval(Minute) AS time, {SERIES} AS series, "
                       f"sum(OutputTokens) / $__interval_s AS output FROM {req} "
                       f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY time, series ORDER BY time",
                       "short", stack=True, min_interval="1m"), 12, 8)

    lay.row("Reported cost (gen_ai.usage.cost from instrumented applications)")
    lay.add(stat("Reported spend", "USD the instrumented applications reported over the range.",
                 f"SELECT toFloat64(sum(ReportedCostUSD)) AS usd FROM {req} "
                 f"WHERE $__timeFilter(Minute) AND {REQ_FILTER}", "currencyUSD", [("blue", None)]), 6, 8)
    lay.add(timeseries("Reported spend per hour by cloud/region/model", "USD per hour, from reported costs.",
                       f"SELECT $__timeInterval(Minute) AS time, {SERIES} AS series, "
                       f"toFloat64(sum(ReportedCostUSD)) * 3600 / $__interval_s AS usd_per_hour FROM {req} "
                       f"WHERE $__timeFilter(Minute) AND {REQ_FILTER} GROUP BY time, series "
                       f"HAVING usd_per_hour > 0 ORDER BY time", "currencyUSD", stack=True, min_interval="1m"),
            18, 8)

    variables = [
        query_var("cloud_provider", "cloud.provider",
                  f"SELECT DISTINCT CloudProvider FROM {req} WHERE $__timeFilter(Minute) ORDER BY CloudProvider"),
        query_var("cloud_region", "cloud.region",
                  f"SELECT DISTINCT CloudRegion FROM {req} WHERE $__timeFilter(Minute) AND "
                  "$__conditionalAll(CloudProvider IN (${cloud_provider}), $cloud_provider) ORDER BY CloudRegion"),
        query_var("model", "model",
                  f"SELECT DISTINCT Model FROM {req} WHERE $__timeFilter(Minute) AND "
                  "$__conditionalAll(CloudProvider IN (${cloud_provider}), $cloud_provider) AND "
                  "$__conditionalAll(CloudRegion IN (${cloud_region}), $cloud_region) ORDER BY Model"),
        {"current": {"selected": False, "text": "99.9", "value": "99.9"}, "hide": 0, "label": "objective %",
         "name": "objective_percent", "options": [{"selected": True, "text": "99.9", "value": "99.9"}],
         "query": "99.9", "skipUrlSync": False, "type": "textbox",
         "description": "Availability objective the burn-rate table measures against."},
    ]
    return dashboard("infersight: Inference fleet", "infersight-fleet",
                     "Is it fast, is it up, how many tokens: per cloud, region and model, from the request rollups.",
                     ["inference"], variables, lay)


def _gauge_ts(metric: str, value: str, title: str, description: str, unit: str, where: str = HW_FILTER) -> dict:
    return timeseries(title, description,
                      f"SELECT $__timeInterval(TimeUnix) AS time, "
                      f"concat(ResourceAttributes['host.name'], ' ', Attributes['hw.id']) AS series, "
                      f"{value} AS value FROM {DB}.otel_metrics_gauge "
                      f"WHERE MetricName = '{metric}' AND $__timeFilter(TimeUnix) AND {where} "
                      f"GROUP BY time, series ORDER BY time", unit)


def _utilisation(cols: str) -> str:
    """GPU engines and NeuronCores as one set of rows (`cols` over TimeUnix, series, Value)."""
    gauge = f"{DB}.otel_metrics_gauge"
    host = "ResourceAttributes['host.name']"
    return (f"SELECT {cols} FROM (SELECT TimeUnix, concat({host}, ' ', Attributes['hw.id']) AS series, Value "
            f"FROM {gauge} WHERE MetricName = 'hw.gpu.utilization' AND $__timeFilter(TimeUnix) AND {HW_FILTER} "
            f"AND {COMPUTE_TASK} UNION ALL SELECT TimeUnix, "
            f"concat({host}, ' nc', Attributes['infersight.neuron.core']) AS series, Value FROM {gauge} "
            "WHERE MetricName = 'infersight.neuron.core.utilization' "
            f"AND $__timeFilter(TimeUnix) AND {HW_FILTER})")


def accelerators() -> dict:
    gauge, sums = f"{DB}.otel_metrics_gauge", f"{DB}.otel_metrics_sum"
    host = "ResourceAttributes['host.name']"
    lay = Layout()
    lay.row("Accelerators: ${cloud_provider} / ${host}")
    lay.add(stat("Mean utilisation", "Mean GPU/NeuronCore utilisation over the range.",
                 _utilisation("avg(Value) AS utilization"), "percentunit",
                 [("red", None), ("yellow", 0.3), ("green", 0.6)]), 6, 4)
    lay.add(stat("Accelerators not ok", "Accelerators whose latest hw.status is degraded or failed.",
                 f"SELECT countIf(state != 'ok') AS not_ok FROM (SELECT ResourceAttributes['host.name'] AS host, "
                 f"Attributes['hw.id'] AS id, argMax(Attributes['hw.state'], TimeUnix) AS state FROM {sums} "
                 f"WHERE MetricName = 'hw.status' AND Value = 1 AND $__timeFilter(TimeUnix) AND {HW_FILTER} "
                 f"GROUP BY host, id)", "none", [("green", None), ("red", 1)]), 6, 4)
    lay.add(stat("XID errors", "XID errors reported over the range (counter increase).",
                 "SELECT sum(increase) AS xid_errors FROM ("
                 + counter_increase_sql("hw.errors", {"xid": "Attributes['hw.gpu.xid']"},
                                        HW_FILTER + " AND Attributes['error.type'] = 'xid'") + ")",
                 "none", [("green", None), ("red", 1)]), 6, 4)
    lay.add(stat("Power draw", "Total power of the selected accelerators at the latest sample.",
                 f"SELECT sum(v) AS watts FROM (SELECT argMax(Value, TimeUnix) AS v FROM {gauge} "
                 f"WHERE MetricName = 'hw.power' AND $__timeFilter(TimeUnix) AND {HW_FILTER} "
                 f"GROUP BY ResourceAttributes, Attributes)", "watt", [("blue", None)]), 6, 4)

    lay.row("Activity")
    lay.add(timeseries("Utilisation", "GPU / NeuronCore utilisation per host and device (nc = NeuronCore).",
                       _utilisation("$__timeInterval(TimeUnix) AS time, series, avg(Value) AS value")
                       + " GROUP BY time, series ORDER BY time", "percentunit"), 12, 8)
    lay.add(timeseries("Memory used", "Device memory in use per host and device.",
                       f"SELECT $__timeInterval(TimeUnix) AS time, "
                       f"concat(ResourceAttributes['host.name'], ' ', Attributes['hw.id']) AS series, "
                       f"avg(Value) AS bytes FROM {sums} WHERE MetricName = 'hw.gpu.memory.usage' "
                       f"AND $__timeFilter(TimeUnix) AND {HW_FILTER} GROUP BY time, series ORDER BY time",
                       "bytes"), 12, 8)

    lay.row("Tensor, SM and DRAM activity (GPM, Hopper and newer)")
    lay.add(_gauge_ts("infersight.gpu.pipe.utilization", "avg(Value)", "Tensor pipe activity",
                      "Share of time any tensor pipe was busy.", "percentunit",
                      f"{HW_FILTER} AND Attributes['infersight.gpu.pipe'] = 'tensor'"), 8, 8)
    lay.add(_gauge_ts("infersight.gpu.sm.activity", "avg(Value)", "SM activity", "Share of SMs busy.",
                      "percentunit"), 8, 8)
    lay.add(_gauge_ts("infersight.gpu.dram.activity", "avg(Value)", "DRAM bandwidth",
                      "DRAM bandwidth used over its theoretical maximum.", "percentunit"), 8, 8)

    lay.row("AWS Neuron")
    lay.add(timeseries("NeuronCore FLOPS", "Floating-point operations per second per NeuronCore.",
                       f"SELECT $__timeInterval(TimeUnix) AS time, "
                       f"concat({host}, ' nc', Attributes['infersight.neuron.core']) AS series, avg(Value) AS value "
                       f"FROM {gauge} WHERE MetricName = 'infersight.neuron.core.flops' AND $__timeFilter(TimeUnix) "
                       f"AND {HW_FILTER} GROUP BY time, series ORDER BY time", "flops"), 8, 8)
    lay.add(timeseries("Neuron device memory", "Memory Neuron applications hold on the devices, per host.",
                       f"SELECT time, series, sum(v) AS bytes FROM (SELECT $__timeInterval(TimeUnix) AS time, "
                       f"{host} AS series, Attributes, avg(Value) AS v FROM {sums} "
                       f"WHERE MetricName = 'infersight.neuron.memory.usage' AND $__timeFilter(TimeUnix) "
                       f"AND {HW_FILTER} "
                       f"AND Attributes['infersight.neuron.memory.location'] = 'neuron_device' "
                       f"GROUP BY time, series, Attributes) GROUP BY time, series ORDER BY time", "bytes"), 8, 8)
    lay.add(timeseries("Neuron execution errors/s", "Execution errors per host and class.",
                       counter_rate_sql("infersight.neuron.execution.errors",
                                        f"concat({host}, ' ', Attributes['error.type'])", HW_FILTER), "short"), 8, 8)

    lay.row("Power, temperature and health")
    lay.add(_gauge_ts("hw.power", "avg(Value)", "Power", "Power draw per host and device.", "watt"), 8, 8)
    lay.add(_gauge_ts("hw.temperature", "max(Value)", "Temperature", "Temperature per host and device.",
                      "celsius"), 8, 8)
    lay.add(timeseries("Accelerators by state", "How many accelerators report each hw.state.",
                       f"SELECT $__timeInterval(TimeUnix) AS time, Attributes['hw.state'] AS state, "
                       f"uniqExact(ResourceAttributes['host.name'], Attributes['hw.id']) AS devices FROM {sums} "
                       f"WHERE MetricName = 'hw.status' AND Value = 1 AND $__timeFilter(TimeUnix) AND {HW_FILTER} "
                       f"GROUP BY time, state ORDER BY time", "none", stack=True), 8, 8)
    lay.add(table("XID errors by host, device and code", "Counter increase of hw.errors{error.type=xid}.",
                  counter_increase_sql("hw.errors", {"Host": "ResourceAttributes['host.name']",
                                                     "Device": "Attributes['hw.id']",
                                                     "XID": "Attributes['hw.gpu.xid']"},
                                       HW_FILTER + " AND Attributes['error.type'] = 'xid'")), 12, 8)
    lay.add(table("Devices not ok", "Latest hw.status per device when it is not ok.",
                  f"SELECT host AS Host, id AS Device, type AS Type, state AS State, seen AS `Since (last sample)` "
                  f"FROM (SELECT ResourceAttributes['host.name'] AS host, Attributes['hw.id'] AS id, "
                  f"any(Attributes['hw.type']) AS type, argMax(Attributes['hw.state'], TimeUnix) AS state, "
                  f"max(TimeUnix) AS seen FROM {sums} WHERE MetricName = 'hw.status' AND Value = 1 "
                  f"AND $__timeFilter(TimeUnix) AND {HW_FILTER} GROUP BY host, id) WHERE state != 'ok' "
                  f"ORDER BY Host, Device"), 12, 8)

    hosts_src = (f"SELECT DISTINCT ResourceAttributes['host.name'] AS h FROM {gauge} "
                 f"WHERE {ACCELERATOR_GAUGES} AND $__timeFilter(TimeUnix) AND "
                 "$__conditionalAll(ResourceAttributes['cloud.provider'] IN (${cloud_provider}), $cloud_provider) "
                 "ORDER BY h")
    variables = [
        query_var("cloud_provider", "cloud.provider",
                  f"SELECT DISTINCT ResourceAttributes['cloud.provider'] AS p FROM {gauge} "
                  f"WHERE {ACCELERATOR_GAUGES} AND $__timeFilter(TimeUnix) ORDER BY p"),
        query_var("host", "host.name", hosts_src),
    ]
    return dashboard("infersight: Accelerators", "infersight-accelerators",
                     "GPU and NeuronCore utilisation, memory, power, temperature, health and XID errors.",
                     ["gpu", "neuron"], variables, lay)


def agents() -> dict:
    gauge, sums = f"{DB}.otel_metrics_gauge", f"{DB}.otel_metrics_sum"
    both = (f"(SELECT ResourceAttributes, MetricName, TimeUnix FROM {gauge} WHERE MetricName LIKE 'infersight.agent.%' "
            f"AND $__timeFilter(TimeUnix) UNION ALL SELECT ResourceAttributes, MetricName, TimeUnix FROM {sums} "
            f"WHERE MetricName LIKE 'infersight.agent.%' AND $__timeFilter(TimeUnix))")
    where = "$__conditionalAll(ResourceAttributes['host.name'] IN (${host}), $host)"
    host = "ResourceAttributes['host.name']"
    lay = Layout()
    lay.row("Agents: ${host}")
    lay.add(table("Agents", "Every agent that reported self metrics in the range; a large 'Silent for' means down.",
                  f"SELECT {host} AS Host, any(ResourceAttributes['cloud.provider']) AS Cloud, "
                  f"any(ResourceAttributes['cloud.region']) AS Region, max(TimeUnix) AS `Last report`, "
                  f"dateDiff('second', max(TimeUnix), $__toTime) AS `Silent for`, uniqExact(MetricName) AS Metrics "
                  f"FROM {both} WHERE {where} GROUP BY Host ORDER BY `Silent for` DESC, Host",
                  {"Silent for": "s"}), 24, 7)

    lay.row("Export and spool")
    lay.add(timeseries("Points exported/s", "Points the receiver acknowledged, per host.",
                       counter_rate_sql("infersight.agent.points.exported", host, where), "short"), 8, 8)
    lay.add(timeseries("Export failures/s", "Failed export attempts per host and reason.",
                       counter_rate_sql("infersight.agent.export.failures",
                                        f"concat({host}, ' ', Attributes['reason'])", where), "short"), 8, 8)
    lay.add(timeseries("Spool size", "Bytes waiting in the disk spool: grows while the gateway is unreachable.",
                       f"SELECT $__timeInterval(TimeUnix) AS time, {host} AS series, max(Value) AS bytes FROM {sums} "
                       f"WHERE MetricName = 'infersight.agent.spool.size' AND $__timeFilter(TimeUnix) AND {where} "
                       f"GROUP BY time, series ORDER BY time", "bytes"), 8, 8)
    lay.add(table("Dropped points", "Points given up by the spool in the range (spool full or rejected), per host.",
                  counter_increase_sql("infersight.agent.spool.dropped_points",
                                       {"Host": host, "Reason": "Attributes['reason']"}, where)), 12, 6)
    lay.add(table("Collector errors", "Collector runs that failed, overran or were skipped, in the range.",
                  counter_increase_sql("infersight.agent.collection.errors",
                                       {"Host": host, "Collector": "Attributes['collector.name']",
                                        "Error": "Attributes['error.type']"}, where)), 12, 6)

    lay.row("Collection")
    lay.add(timeseries("Points collected/s", "Points returned by each collector.",
                       counter_rate_sql("infersight.agent.points.collected",
                                        f"concat({host}, ' ', Attributes['collector.name'])", where), "short"), 12, 8)
    lay.add(timeseries("Collector run time", "Duration of each collector's runs (max per bucket).",
                       f"SELECT $__timeInterval(TimeUnix) AS time, "
                       f"concat({host}, ' ', Attributes['collector.name']) AS series, max(Value) AS seconds "
                       f"FROM {gauge} WHERE MetricName = 'infersight.agent.collection.duration' "
                       f"AND $__timeFilter(TimeUnix) AND {where} GROUP BY time, series ORDER BY time", "s"), 12, 8)
    variables = [query_var("host", "host.name", f"SELECT DISTINCT {host} AS h FROM {both} ORDER BY h")]
    return dashboard("infersight: Agent health", "infersight-agents",
                     "Which agents report, and their own metrics: collection, export and spool.",
                     ["agent"], variables, lay)


DASHBOARDS = {"infersight-fleet.json": fleet, "infersight-accelerators.json": accelerators,
              "infersight-agents.json": agents}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in render().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python dashboards/build.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
