"""Neuron collector against a stand-in `neuron-monitor` child process printing recorded documents."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from infersight.collectors.base import Point
from infersight.collectors.neuron import NeuronCollector, parse_document
from infersight.config import ConfigError, parse_config
from support.collectors import one, pick

FIX = Path(__file__).parent / "fixtures" / "neuron"
MONITOR = str(FIX / "neuron-monitor")
REAL = str(FIX / "neuron-monitor_trn1.2xlarge_wandb-test.json")
IDLE = str(FIX / "derived_window_no_executions.json")
ERRORS = str(FIX / "derived_window_group_errors.json")
MALFORMED = str(FIX / "malformed_truncated.txt")
CONF = str(FIX / "monitor.conf.example.json")
RT = {"process__pid": 1337, "infersight__neuron__runtime__tag": "1337"}


def docs(points: list[Point], status: str) -> float:
    return one(points, "infersight.neuron.monitor.documents", infersight__neuron__document__status=status)


def wait_for(c: NeuronCollector, ok: int, malformed: int = 0, timeout: float = 15.0) -> list[Point]:
    deadline = time.monotonic() + timeout
    while True:
        pts = list(c.collect())
        if docs(pts, "ok") >= ok and docs(pts, "malformed") >= malformed:
            return pts
        assert time.monotonic() < deadline, f"documents: {docs(pts, 'ok')} ok, {docs(pts, 'malformed')} malformed"
        time.sleep(0.02)


@pytest.fixture
def monitor():
    started: list[NeuronCollector] = []

    def start(*documents: str, stay: bool = True, **kw) -> NeuronCollector:
        c = NeuronCollector([MONITOR, "-c", CONF, *(["--stay"] if stay else []), *documents], **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


def test_real_report_through_the_child_process(monitor):
    c = monitor(REAL)
    pts = wait_for(c, ok=1)
    assert one(pts, "infersight.neuron.monitor.up") == 1
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 260
    assert one(pts, "infersight.neuron.execution.errors", error__type="generic", **RT) == 23654
    assert one(pts, "infersight.neuron.execution.latency", infersight__neuron__latency__kind="total",
               infersight__neuron__latency__percentile="p99", **RT) == 0.00013184547424316406
    assert one(pts, "infersight.neuron.core.utilization", infersight__neuron__core=0, **RT) == \
        pytest.approx(0.013631567613356375)
    assert one(pts, "infersight.neuron.memory.usage", infersight__neuron__memory__location="neuron_device",
               infersight__neuron__memory__category="model_code", infersight__neuron__core=0) == 101125344
    host = pick(pts, "infersight.neuron.memory.usage", infersight__neuron__memory__location="host")
    assert sum(p.value for p in host) == 610705408  # the breakdown adds up to the reported host total
    model = pick(pts, "infersight.neuron.model.memory.usage", infersight__neuron__model__id=10002,
                 infersight__neuron__memory__location="neuron_device")
    assert [p.value for p in model] == [151936]
    assert one(pts, "infersight.neuron.runtime.cpu.utilization", cpu__mode="user", **RT) == pytest.approx(0.1926)
    assert one(pts, "hw.errors", hw__id="neuron_device0", error__type="mem_ecc_uncorrected") == 0
    status = pick(pts, "hw.status", hw__id="neuron_device0")
    assert {p.attributes["hw.state"]: p.value for p in status} == {"ok": 1, "degraded": 0, "failed": 0}
    a = status[0].attributes
    assert (a["hw.type"], a["cloud.provider"], a["cloud.region"], a["cloud.availability_zone"], a["host.id"],
            a["host.type"]) == ("accelerator", "aws", "us-west-2", "us-west-2d", "i-01db7a16f4c054239",
                                "trn1.2xlarge")


def test_counters_sum_across_windows_and_null_latency_window(monitor):
    c = monitor(REAL, ERRORS, IDLE)
    pts = wait_for(c, ok=3)
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 260 + 120 + 0
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="timed_out",
               **RT) == 1
    assert one(pts, "infersight.neuron.execution.errors", error__type="hardware", **RT) == 2
    assert one(pts, "hw.errors", hw__id="neuron_device0", error__type="mem_ecc_corrected") == 4
    counters = [p for p in pts if p.kind == "counter"]
    assert counters and all(p.start_time_ns for p in counters)
    # The last window ran nothing: its latency percentiles are null, so none are reported (not stale ones).
    assert not pick(pts, "infersight.neuron.execution.latency")
    assert one(pts, "infersight.neuron.core.utilization", infersight__neuron__core=0, **RT) == 0
    assert one(pts, "infersight.neuron.runtime.cpu.utilization", cpu__mode="system", **RT) == 0.0025


def test_group_errors_become_metrics_and_ecc_degrades(monitor):
    c = monitor(ERRORS)
    pts = wait_for(c, ok=1)
    errors = {(p.attributes["infersight.neuron.group"], p.attributes["error.type"]): p.value
              for p in pick(pts, "infersight.neuron.monitor.errors")}
    assert errors == {("memory_used", "failed to get memory usage from the Neuron Runtime"): 1,
                      ("neuron_runtime_vcpu_usage", "process 1337 is not running"): 1,
                      ("instance_info", "failed to get instance metadata"): 1}
    assert pick(pts, "infersight.neuron.monitor.errors", infersight__neuron__group="memory_used")[0] \
        .attributes["process.pid"] == 1337
    # The groups without errors are still reported.
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 120
    assert not pick(pts, "infersight.neuron.memory.usage")
    status = {p.attributes["hw.state"]: p.value for p in pick(pts, "hw.status", hw__id="neuron_device0")}
    assert status == {"ok": 0, "degraded": 1, "failed": 0}  # an uncorrected DRAM ECC event in this window


def test_malformed_document_skipped_and_counted(monitor):
    c = monitor(REAL, MALFORMED, IDLE, REAL)
    pts = wait_for(c, ok=3, malformed=1)
    assert docs(pts, "ok") == 3 and docs(pts, "malformed") == 1
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 520


def test_window_repeated_unchanged_is_counted_once():
    c = NeuronCollector(["unused"])
    c.close()  # closed: collect() reads the state without starting a child
    line = json.dumps(json.loads(Path(REAL).read_text()))
    for doc in (line, line, Path(IDLE).read_text(), line):
        c.feed(doc)
    pts = list(c.collect())
    assert docs(pts, "ok") == 4
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 520


@pytest.mark.parametrize("line", [
    "[1, 2, 3]",
    '{"neuron_runtime_data": {"pid": 1}}',
    '{"neuron_runtime_data": [{"pid": 1, "report": {"execution_stats": '
    '{"execution_summary": {"completed": "many"}}}}]}',
    '{"neuron_runtime_data": [',
])
def test_parser_rejects_malformed_documents(line):
    with pytest.raises(ValueError):
        parse_document(line)


def test_restart_after_exit_keeps_summing(monitor, tmp_path):
    log = tmp_path / "spawns"
    c = monitor("--spawn-log", str(log), REAL, stay=False, restart_backoff_initial_seconds=0.05,
                restart_backoff_max_seconds=0.05)
    pts = wait_for(c, ok=3)
    runs = len(log.read_text().split())
    assert runs >= 3
    restarts = one(pts, "infersight.neuron.monitor.restarts")
    assert restarts >= 2
    completed = one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
                    **RT)
    assert completed == 260 * docs(pts, "ok")  # each run's window counts; nothing lost across restarts


def test_restart_backoff_doubles_up_to_the_maximum(monitor, tmp_path, caplog):
    log = tmp_path / "spawns"
    c = monitor("--spawn-log", str(log), stay=False, restart_backoff_initial_seconds=0.1,
                restart_backoff_max_seconds=0.4)
    c.collect()
    deadline = time.monotonic() + 20
    while len(log.read_text().split()) < 6 if log.exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    c.close()
    t = [float(x) for x in log.read_text().split()]
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    # Each gap is process start-up plus the wait: 0.1, 0.2, 0.4, then capped at 0.4.
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4 and gaps[3] >= 0.4
    # The waits themselves, as the supervisor announces them (start-up time varies with the machine's load).
    waits = [float(m.split("restarting in ")[1].split(" s")[0]) for m in caplog.messages if "restarting in" in m]
    assert waits[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert gaps[4] < 0.4 + 1.0  # capped, not 1.6 s
    pts = list(c.collect())
    assert one(pts, "infersight.neuron.monitor.up") == 0
    assert not pick(pts, "hw.status")  # no report from a live neuron-monitor: health unknown


def test_missing_executable_is_retried_not_fatal(caplog):
    c = NeuronCollector(["/nonexistent/neuron-monitor"], restart_backoff_initial_seconds=0.05,
                        restart_backoff_max_seconds=0.05)
    try:
        c.collect()
        time.sleep(0.3)
        pts = list(c.collect())
        assert one(pts, "infersight.neuron.monitor.up") == 0
        assert one(pts, "infersight.neuron.monitor.restarts") >= 2
        assert any("could not start" in r.message for r in caplog.records)
    finally:
        c.close()


def test_close_stops_the_child(monitor):
    c = monitor(REAL)
    wait_for(c, ok=1)
    proc = c._supervisor.proc
    assert proc is not None and proc.poll() is None
    c.close()
    assert proc.poll() is not None
    assert one(list(c.collect()), "infersight.neuron.monitor.up") == 0


def test_every_emitted_point_is_in_the_metric_list(monitor):
    c = monitor(REAL, ERRORS, MALFORMED, IDLE, REAL)
    pts = wait_for(c, ok=4, malformed=1)
    specs = {s.name: s for s in NeuronCollector.metrics}
    assert len(specs) == len(NeuronCollector.metrics)
    for p in pts:
        spec = specs[p.name]
        assert (p.kind, p.unit) == (spec.kind, spec.unit), p.name
        assert set(p.attributes) <= set(spec.attributes), (p.name, set(p.attributes) - set(spec.attributes))
    # Flops (Trn2) and pod attribution (k8s_info enabled) are absent from the trn1 report.
    assert {p.name for p in pts} == set(specs) - {"infersight.neuron.core.flops"}


def test_trn2_fields_and_k8s_pods():
    doc = json.loads(Path(REAL).read_text())
    doc["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]["0"].update(
        neuroncore_utilization=42.01, flops=1234567891011)
    doc["neuron_k8s_info"] = {"period": 15.03, "error": "", "neuroncores_k8s_info": {
        "0": {"pod_name": "p0", "namespace": "n0", "container_name": ["c0"]}}}
    doc["neuron_hardware_info"].update(neuron_device_type="trainium2")
    c = NeuronCollector(["unused"])
    c.close()  # closed: collect() reads the state without starting a child
    c.feed(json.dumps(doc))
    pts = list(c.collect())
    util = pick(pts, "infersight.neuron.core.utilization", infersight__neuron__core=0)[0]
    assert util.value == pytest.approx(0.4201)
    assert (util.attributes["k8s.pod.name"], util.attributes["k8s.namespace.name"]) == ("p0", "n0")
    assert one(pts, "infersight.neuron.core.flops", infersight__neuron__core=0) == 1234567891011


def test_config_builds_the_command_and_rejects_unknown_keys(tmp_path):
    cfg = parse_config({"collectors": [{"type": "neuron", "command": [MONITOR, "--stay"],
                                        "config_path": CONF, "restart_backoff_max_seconds": 5,
                                        "first_report_wait_seconds": 0.2}]})
    entry = cfg.collectors[0]
    assert isinstance(entry, NeuronCollector.Config)
    c = NeuronCollector.from_config(entry)
    try:
        assert c._supervisor._command == [MONITOR, "--stay", "-c", CONF]
        assert c._supervisor._backoff == (1.0, 5.0) and c._first_wait == 0.2
        # The first collect waits for the first document, so a one-shot collect has data.
        pts = list(c.collect())
        assert docs(pts, "ok") == 0  # --stay with no documents: it waited, then answered
    finally:
        c.close()
    with pytest.raises(ConfigError, match="restart_backof_max_seconds"):
        parse_config({"collectors": [{"type": "neuron", "restart_backof_max_seconds": 5}]})
    with pytest.raises(ConfigError, match="command"):
        parse_config({"collectors": [{"type": "neuron", "command": []}]})


def test_first_collect_waits_for_the_first_document(monitor):
    c = monitor(REAL, first_report_wait_seconds=10)
    pts = list(c.collect())
    assert docs(pts, "ok") == 1
    assert one(pts, "infersight.neuron.execution.count", infersight__neuron__execution__outcome="completed",
               **RT) == 260


def test_first_collect_stops_waiting_when_the_monitor_exits_without_a_document(monitor):
    """A monitor that crashes at start: the first collect reports it down at once, not after the wait."""
    c = monitor(stay=False, first_report_wait_seconds=600, restart_backoff_initial_seconds=600)
    done: list[list] = []
    t = threading.Thread(target=lambda: done.append(list(c.collect())), daemon=True)
    t.start()
    t.join(60)  # the wait would be 600 s
    assert done, "the first collect still waits although neuron-monitor has exited"
    assert one(done[0], "infersight.neuron.monitor.up") == 0
    assert c.health().reason == "not_running"


def test_first_collect_stops_waiting_when_the_monitor_cannot_start(tmp_path):
    c = NeuronCollector([str(tmp_path / "no-such-neuron-monitor")], first_report_wait_seconds=600,
                        restart_backoff_initial_seconds=600)
    try:
        done: list[list] = []
        t = threading.Thread(target=lambda: done.append(list(c.collect())), daemon=True)
        t.start()
        t.join(60)
        assert done, "the first collect still waits although neuron-monitor could not start"
        assert "could not start" in c.health().detail
    finally:
        c.close()


def test_driver_error_marks_devices_failed(monitor, tmp_path):
    doc = json.loads(Path(REAL).read_text())
    doc["neuron_runtime_data"] = []
    doc["neuron_hardware_info"] = {"neuron_device_count": 0, "neuroncore_per_device_count": 0,
                                   "error": "Neuron driver is not loaded"}
    broken = tmp_path / "driver_gone.json"
    broken.write_text(json.dumps(doc))
    c = monitor(REAL, str(broken))
    pts = wait_for(c, ok=2)
    status = {p.attributes["hw.state"]: p.value for p in pick(pts, "hw.status", hw__id="neuron_device0")}
    assert status == {"ok": 0, "degraded": 0, "failed": 1}  # device count kept from the earlier report
    assert one(pts, "infersight.neuron.monitor.errors", infersight__neuron__group="neuron_hardware_info") == 1
    assert not pick(pts, "infersight.neuron.core.utilization")  # the application's gauges went with it
