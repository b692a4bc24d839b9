"""`infersight demo`: the workload model against reference computations, the simulated sources through the real
collectors, and one short run of the command itself (small fleet, 1 h of history) checked through the query
and SLO APIs, the webhook sink and Ctrl-C."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infersight.collectors.base import Point
from infersight.collectors.inference import Endpoint, InferenceCollector
from infersight.collectors.neuron import metrics as neuron_metrics
from infersight.collectors.neuron import parse_document
from infersight.cost.catalog import load_catalog
from infersight.demo.backfill import FINE_STEP_SECONDS, minutely_up, schedule, stamp
from infersight.demo.fleet import NODE_TYPES, build_fleet
from infersight.demo.incidents import Script, default_script
from infersight.demo.runner import data_path
from infersight.demo.workload import ServerModel, bucket_counts, diurnal, lognormal_cdf, neuron_document
from infersight.rollups import LATENCY_BOUNDS
from infersight.slo.model import load_slos
from support.net import free_port

ROOT = Path(__file__).parent.parent
T0 = 1_790_000_000.0


def test_bucket_counts_follow_the_lognormal_cdf():
    bounds = LATENCY_BOUNDS["ttft"]
    counts = bucket_counts(10_000, bounds, 0.2, 0.35)
    assert len(counts) == len(bounds) + 1 and sum(counts) == 10_000 and min(counts) >= 0
    below_half = sum(counts[: bounds.index(0.5) + 1])
    assert below_half == round(10_000 * lognormal_cdf(0.5, 0.2, 0.35))
    assert abs(sum(counts[: bounds.index(0.2) + 1]) - 5000) <= 1  # the median


def test_diurnal_load_peaks_in_the_local_afternoon():
    day = 86400 * 20000
    assert diurnal(day + 16 * 3600, "europe-west4") < diurnal(day + 15 * 3600, "europe-west4") + 1e-9
    assert math.isclose(diurnal(day + 15 * 3600, "europe-west4"), 1.0)  # 16:00 CET
    assert math.isclose(diurnal(day + 3 * 3600, "europe-west4"), 0.35)  # 04:00 CET


def test_exposition_through_the_inference_collector_counts_what_the_model_served():
    node = build_fleet(1)[0]
    model = ServerModel(node, Script(()), T0)
    clock = {"t": T0}
    collector = InferenceCollector([Endpoint(url="http://sim:8000/metrics", kind="vllm")],
                                   fetch=lambda url, timeout: model.exposition(), clock=lambda: int(clock["t"] * 1e9))
    list(collector.collect())  # baseline
    before = dict(model.reasons), model.prompt_tokens
    clock["t"] = T0 + 600
    model.advance(clock["t"])
    points = list(collector.collect())
    requests = sum(p.value for p in points if p.name == "infersight.inference.requests")
    assert requests == sum(model.reasons.values()) - sum(before[0].values()) == model.last_requests > 0
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points if p.name == "gen_ai.client.token.usage"}
    assert tokens["input"] == model.prompt_tokens - before[1]
    ttft = next(p for p in points if p.name == "gen_ai.server.time_to_first_token")
    assert ttft.count == model.last_requests and ttft.temporality == "delta"


def test_incidents_change_the_workload_only_while_active():
    script = Script(default_script(T0))
    azure = next(n for n in build_fleet(6) if n.cloud == "azure")
    assert script.latency_factor(T0 - 60, "azure", "eastus") == 6.0
    assert script.latency_factor(T0 + 3600, "azure", "eastus") == 1.0
    assert script.latency_factor(T0 - 60, "azure", "swedencentral") == 1.0
    m = ServerModel(azure, script, T0 - 1200)
    m.advance(T0 - 600)
    slow = m.hist["ttft"]
    over = slow.count - sum(slow.buckets[: LATENCY_BOUNDS["ttft"].index(1.0) + 1])
    assert over / slow.count > 0.5  # the regression puts most first tokens past the SLO's 1 s
    assert script.error_ratio(T0 - 60, "aws", "us-west-2", "trainium") == 0.25
    assert script.error_ratio(T0 - 60, "aws", "us-east-1", "h100") == 0.0


def test_neuron_documents_parse_and_carry_the_node():
    node = next(n for n in build_fleet(6) if n.type.accelerator == "trainium")
    m = ServerModel(node, Script(()), T0)
    m.advance(T0 + 60)
    doc = parse_document(neuron_document(m, 60.0, 1))
    assert doc.instance_info.instance_type == "trn1.32xlarge"
    assert doc.neuron_hardware_info.neuron_device_count == 16
    ex = doc.neuron_runtime_data[0].report.execution_stats
    assert ex.execution_summary["completed"] + ex.execution_summary["completed_with_err"] == m.last_requests * 40


def test_schedule_fine_tail_and_coarse_history():
    steps = schedule(T0 - 7 * 86400, T0)
    times = [t for t, _ in steps]
    assert times == sorted(times) and times[-1] <= T0 and T0 - times[-1] < FINE_STEP_SECONDS
    tail = [t for t in times if t > T0 - 3600]
    assert all(b - a == FINE_STEP_SECONDS for a, b in zip(tail, tail[1:], strict=False))
    assert len(steps) < 250 and sum(hw for _, hw in steps) < 100
    assert [t for t, _ in schedule(T0 - 600, T0)] == [T0 - 600 + 60 * i for i in range(1, 11)]


def test_stamp_keeps_cumulative_starts_before_their_points():
    pts = stamp([Point("c", "counter", 1.0, start_time_ns=int(T0 * 1e9) + 5), Point("g", "gauge", 1.0)],
                int(T0 * 1e9), 7)
    assert pts[0].start_time_ns == 7 and pts[0].time_ns == int(T0 * 1e9) and pts[1].start_time_ns is None


def test_coarse_steps_keep_a_scrape_per_minute_for_node_uptime():
    from infersight.collectors.inference.metrics import UP

    up = UP.point(1, {"server.address": "sim:8000"}, time_ns=int(T0 * 1e9))
    copies = minutely_up([up, Point("x", "gauge", 1.0, time_ns=1)], T0 - 600, T0)
    assert sorted(p.time_ns for p in copies) == [int((T0 - 60 * i) * 1e9) for i in range(9, 0, -1)]
    assert minutely_up([up], T0 - 60, T0) == []


def test_fleet_covers_every_cloud_and_accelerator_within_six_nodes():
    six = build_fleet(6)
    assert {n.cloud for n in six} == {"aws", "azure", "gcp", "oracle_cloud", "coreweave"}
    assert {n.type.accelerator for n in six} >= {"h100", "h200", "trainium"}
    assert {n.type.role for n in six} >= {"prefill", "decode"}
    assert len({n.name for n in build_fleet(30)}) == 30
    with pytest.raises(ValueError, match="--nodes"):
        build_fleet(0)


def test_packaged_slos_and_prices_load_and_price_every_node():
    slos = {s.name: s for s in load_slos([data_path("slos")])}
    assert set(slos) == {"demo-availability", "demo-ttft", "demo-gpu-health", "demo-api-spend"}
    assert {i.slo for i in default_script(T0)} <= set(slos)
    catalog = load_catalog(data_path("prices.yaml"))
    for t in NODE_TYPES:
        assert catalog.capacity_price(t.cloud, t.region, t.instance_type, t.capacity_type) is not None, t
    # examples/demo points at the same files
    assert (ROOT / "examples" / "demo" / "prices.yaml").read_text() == data_path("prices.yaml").read_text()


def test_cli_rejects_bad_arguments(capsys):
    from infersight.cli.main import main

    with pytest.raises(SystemExit) as err:
        main(["demo", "--history", "7 days"])
    assert err.value.code == 2 and "--history" in capsys.readouterr().err
    assert main(["demo", "--nodes", "0"]) == 2
    assert "--nodes" in capsys.readouterr().err


# -- one short run of the command ------------------------------------------------------------------------

def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{url} {body}: {err.code} {err.read()[:500]!r}") from None


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.loads(r.read())


def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_demo_runs_through_the_real_pipeline(tmp_path):
    pytest.importorskip("chdb")
    port, sink_port = free_port(), free_port()
    base, sink = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sink_port}"
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "--log-level", "WARNING", "demo",
                                 "--nodes", "6", "--history", "1h", "--port", str(port), "--sink-port", str(sink_port),
                                 "--data-dir", str(tmp_path / "data")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: "demo running" in log_path.read_text() or proc.poll() is not None, 90, "the demo to start")
        assert proc.poll() is None, log_path.read_text()

        def sql(q: str) -> list[dict]:
            return _post(base + "/api/v1/query", {"sql": q})["rows"]

        clouds = {r["c"] for r in sql("SELECT DISTINCT ResourceAttributes['cloud.provider'] AS c "
                                      "FROM otel.otel_metrics_gauge")}
        assert clouds >= {"aws", "azure", "gcp", "oracle_cloud", "coreweave"}
        spans = {r["p"] for r in sql("SELECT DISTINCT SpanAttributes['gen_ai.provider.name'] AS p "
                                     "FROM otel.otel_traces")}
        assert spans == {"azure.ai.openai", "aws.bedrock", "gcp.vertex_ai"}
        req_clouds = {r["c"] for r in sql("SELECT DISTINCT CloudProvider AS c FROM otel.infersight_requests_1m")}
        assert req_clouds >= {"aws", "azure", "gcp", "oracle_cloud", "coreweave"}
        # Trainium: neuron-monitor's execution errors (the error spike) arrived as the neuron collector counts them
        errors = sql("SELECT max(Value) AS v FROM otel.otel_metrics_sum "
                     f"WHERE MetricName = '{neuron_metrics.EXEC_ERRORS.name}' AND Attributes['error.type'] = 'runtime'")
        assert errors[0]["v"] > 0

        gpm = {(r["h"], r["m"]): r["v"] for r in sql(
            "SELECT ResourceAttributes['host.name'] AS h, MetricName AS m, avg(Value) AS v "
            "FROM otel.otel_metrics_gauge "
            "WHERE (MetricName = 'infersight.gpu.pipe.utilization' AND Attributes['infersight.gpu.pipe'] = 'tensor')"
            " OR MetricName = 'infersight.gpu.dram.activity' GROUP BY h, m")}
        fleet = build_fleet(6)
        prefill = next(n.name for n in fleet if n.type.role == "prefill")
        decode = next(n.name for n in fleet if n.type.role == "decode")
        tensor, dram = "infersight.gpu.pipe.utilization", "infersight.gpu.dram.activity"
        assert gpm[(prefill, tensor)] > 0.5 > gpm[(decode, tensor)]
        assert gpm[(decode, dram)] > 0.5 > gpm[(prefill, dram)]

        def firing():
            alerts = [a for a in _get(base + "/api/v1/alerts")["alerts"] if a["state"] == "firing"]
            return {(a["labels"]["slo"], a["labels"].get("cloud_provider", a["labels"].get("infersight_server_kind")))
                    for a in alerts if a["labels"].get("tier") == "page-fast"}

        fired = _until(lambda: (f := firing()) >= {("demo-ttft", "azure"), ("demo-availability", "aws")} and f,
                       40, "page-fast alerts for the TTFT regression and the Trainium error spike")
        assert ("demo-ttft", "gcp") not in fired
        status = _get(base + "/api/v1/slos/status")["instances"]
        trn = next(i for i in status
                   if i["slo"] == "demo-availability" and i["group"].get("cloud.region") == "us-west-2")
        assert trn["burn_rates"]["5m"] > 14.4

        received = _until(lambda: [n for n in _get(sink + "/alerts")["notifications"]
                                   if n["payload"].get("status") == "firing"], 30, "the webhook sink")
        slos = {a["labels"]["slo"] for n in received for a in n["payload"]["alerts"]}
        assert slos & {"demo-ttft", "demo-availability"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    out = log_path.read_text()
    assert rc == 0, out[-3000:]
    assert "demo stopped" in out
