"""Collectors that fail loudly: per-collector `infersight.collector.up`, per-part up gauges, a placeholder
for a collector that cannot start, and `infersight collect` taking two samples and exiting 1 when down.

Hardware is faked the way the other collector tests do: the NVML replay double (with a failing
`nvmlInit`), the stand-in neuron-monitor child process, loopback HTTP servers and a closed loopback port.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from infersight.agent.loop import Agent, Deferred, ScheduledCollector
from infersight.cli.agent import sample
from infersight.cli.main import main
from infersight.collectors.base import Point
from infersight.collectors.inference import InferenceCollector
from infersight.collectors.inference.collector import Endpoint
from infersight.collectors.neuron import NeuronCollector
from infersight.collectors.nvml import NvmlCollector
from infersight.config import AgentConfig, ExporterConfig
from infersight.exporters.senders import HttpSender
from infersight.exporters.spool import Spool
from infersight.testing.nvml_replay import ReplayNvml, load_capture
from support.collectors import one, pick
from support.otlp_recorder import Recorder

CAPTURE = load_capture()
UUID = CAPTURE["devices"][0]["nvmlDeviceGetUUID"]["ok"]
FIX = Path(__file__).parent / "fixtures" / "neuron"
MONITOR = str(FIX / "neuron-monitor")
REAL = str(FIX / "neuron-monitor_trn1.2xlarge_wandb-test.json")
CONF = str(FIX / "monitor.conf.example.json")
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- NVML ------------------------------------------------------------------------------------------

def test_nvml_init_failure_is_down_and_retried_with_backoff(caplog):
    r = ReplayNvml(CAPTURE)
    r.fail_init(9)  # NVML_ERROR_DRIVER_NOT_LOADED
    clock = Clock()
    c = NvmlCollector(r, clock=clock, proc_root=Path("/nonexistent"), init_backoff_seconds=(10.0, 40.0))
    assert list(c.collect()) == []
    h = c.health()
    assert (h.up, h.reason) == (False, "nvml_init") and "Driver Not Loaded" in h.detail
    tries = []
    real_init = r.nvmlInit

    def counted() -> None:
        tries.append(clock.t)
        real_init()

    r.nvmlInit = counted
    # Backoff 10, 20, 40, 40 s after each failure: tries only when due.
    for _ in range(100):
        clock.t += 1.0
        assert list(c.collect()) == []
    assert [t - 1000.0 for t in tries] == [10.0, 30.0, 70.0]
    assert sum("nvml collector disabled" in rec.message for rec in caplog.records if rec.levelname == "WARNING") == 1
    r.fail_init(None)  # the driver is back
    clock.t = tries[-1] + 40.0
    pts = list(c.collect())
    assert c.health().up and one(pts, "infersight.gpu.reachable", hw__id=UUID) == 1
    c.close()


def test_nvml_without_binding_is_down_not_silent():
    c = NvmlCollector(None)
    assert list(c.collect()) == []
    h = c.health()
    assert (h.up, h.reason) == (False, "nvml_missing") and "nvidia-ml-py" in h.detail


def test_lost_gpu_is_unreachable_and_a_problem_collector_stays_up():
    r = ReplayNvml(CAPTURE, gpus=2)
    c = NvmlCollector(r, clock=r.clock, proc_root=Path("/nonexistent"))
    r.seek(10)
    list(c.collect())
    r.lose(1)
    r.seek(11)
    pts = list(c.collect())
    lost = f"{UUID[:-4]}0001"
    assert one(pts, "infersight.gpu.reachable", hw__id=lost) == 0
    assert one(pts, "infersight.gpu.reachable", hw__id=UUID) == 1
    h = c.health()
    assert h.up and h.problems == (f"gpu1 ({lost}) is not answering",)


# -- the agent loop: up gauge per collector, placeholder ------------------------------------------

@pytest.fixture
def recorder(port):
    r = Recorder(port).start()
    yield r
    r.stop()


def make_agent(recorder, tmp_path, collectors) -> Agent:
    ex = ExporterConfig(endpoint=recorder.url, spool_dir=tmp_path / "spool", export_interval_seconds=0.2,
                        retry_interval_seconds=0.2, timeout_seconds=2)
    cfg = AgentConfig(exporter=ex, self_metrics_interval_seconds=0.2)
    return Agent(cfg, collectors, HttpSender(ex.endpoint, {}, ex.timeout_seconds),
                 Spool(ex.spool_dir, ex.max_spool_bytes), {"service.name": "svc", "host.name": "h"})


def run_agent_for(agent: Agent, seconds: float, during=None) -> None:
    import time

    from support.agent_thread import running

    with running(agent):
        if during is not None:
            time.sleep(seconds / 2)
            during()
        time.sleep(seconds / (2 if during is not None else 1))


def exported(recorder, name: str) -> list[tuple[dict, float, int]]:
    """(attributes, value, time) of every exported point named `name`, in export order."""
    out = []
    for req in recorder.accepted():
        for n, dp in req.points():
            if n == name:
                attrs = {kv.key: kv.value.string_value for kv in dp.attributes}
                out.append((attrs, dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double,
                            dp.time_unix_nano))
    return sorted(out, key=lambda x: x[2])


def test_agent_reports_nvml_down_then_up(recorder, tmp_path, caplog):
    r = ReplayNvml(CAPTURE)
    r.fail_init(12)  # NVML Shared Library Not Found
    clock = Clock()
    nvml = NvmlCollector(r, clock=clock, proc_root=Path("/nonexistent"), init_backoff_seconds=(0.0, 0.0))
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("gpus", nvml, 0.1, 2)])

    def heal() -> None:
        r.fail_init(None)

    run_agent_for(agent, 1.6, during=heal)
    ups = exported(recorder, "infersight.collector.up")
    assert {tuple(sorted(a.items())) for a, _v, _t in ups} == {(("collector.name", "gpus"),
                                                                ("collector.type", "nvml"))}
    values = [v for _a, v, _t in ups]
    assert values[0] == 0 and values[-1] == 1 and values == sorted(values)  # down, then up for good
    errors = exported(recorder, "infersight.agent.collection.errors")
    assert any(a == {"collector.name": "gpus", "error.type": "nvml_init"} and v >= 1 for a, v, _t in errors)
    assert exported(recorder, "infersight.gpu.reachable")  # GPU points once NVML initialised
    warnings = [rec.getMessage() for rec in caplog.records
                if rec.levelname == "WARNING" and rec.name == "infersight.agent.loop"]
    assert warnings[0] == ("collector gpus: down (nvml_init): NVML did not initialise: "
                           "NVML Shared Library Not Found")
    assert agent.stats.collect_errors[("gpus", "nvml_init")] == values.count(0)


def test_collector_that_cannot_start_is_kept_down_and_started_later(recorder, tmp_path):
    """A placeholder reports up = 0 (error.type init) and retries the start with backoff."""
    r = ReplayNvml(CAPTURE)
    starts: list[float] = []

    def start() -> NvmlCollector:
        starts.append(time.monotonic())
        if len(starts) < 3:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")
        return NvmlCollector(r, clock=r.clock, proc_root=Path("/nonexistent"))

    placeholder = Deferred("nvml", start, "OSError: libnvidia-ml.so.1: cannot open shared object file",
                           backoff_seconds=(0.2, 0.4))
    h = placeholder.health()
    assert (h.up, h.reason) == (False, "init") and "libnvidia-ml" in h.detail
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("nvml", placeholder, 0.05, 2)])
    t0 = time.monotonic()
    run_agent_for(agent, 1.5)
    # The start failed before the agent ran; tried again after 0.2 s (fails), then 0.4 s later (works).
    assert len(starts) == 3 and starts[0] - t0 >= 0.15 and starts[2] - starts[1] >= 0.35
    assert isinstance(placeholder.inner, NvmlCollector)
    ups = [v for _a, v, _t in exported(recorder, "infersight.collector.up")]
    assert ups[0] == 0 and ups[-1] == 1
    assert agent.stats.collect_errors[("nvml", "init")] == ups.count(0)
    assert exported(recorder, "hw.status")


def test_failing_and_timed_out_collect_report_down(recorder, tmp_path):
    class Broken:
        type = "broken"

        def collect(self) -> list[Point]:
            raise RuntimeError("boom")

        def close(self) -> None:
            pass

    agent = make_agent(recorder, tmp_path, [ScheduledCollector("b", Broken(), 0.1, 1)])
    run_agent_for(agent, 0.6)
    ups = exported(recorder, "infersight.collector.up")
    assert ups and {v for _a, v, _t in ups} == {0}
    assert ups[0][0] == {"collector.name": "b", "collector.type": "broken"}


# -- neuron ----------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_neuron_monitor_that_exits_is_down():
    c = NeuronCollector([MONITOR, "-c", CONF, REAL], restart_backoff_initial_seconds=5,
                        restart_backoff_max_seconds=5, first_report_wait_seconds=5)
    try:
        list(c.collect())
        deadline = time.monotonic() + 10
        while c.health().up:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        h = c.health()
        assert (h.up, h.reason) == (False, "not_running") and "exited with status 1" in h.detail
        assert one(list(c.collect()), "infersight.neuron.monitor.up") == 0
    finally:
        c.close()


@pytest.mark.e2e
def test_neuron_monitor_that_runs_but_stays_silent_is_down():
    c = NeuronCollector([MONITOR, "-c", CONF, "--stay"], document_timeout_seconds=0.3)
    try:
        pts = list(c.collect())
        deadline = time.monotonic() + 10
        while not c._state.liveness()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert c.health().up
        time.sleep(0.4)
        h = c.health()
        assert (h.up, h.reason) == (False, "no_documents")
        pts = list(c.collect())
        assert one(pts, "infersight.neuron.monitor.up") == 1
        assert one(pts, "infersight.neuron.monitor.document.age") > 0.3
    finally:
        c.close()


@pytest.mark.e2e
def test_neuron_command_that_cannot_start_says_why():
    c = NeuronCollector(["/nonexistent/neuron-monitor"], restart_backoff_initial_seconds=5,
                        restart_backoff_max_seconds=5, first_report_wait_seconds=0.5)
    try:
        list(c.collect())
        h = c.health()
        assert (h.up, h.reason) == (False, "not_running") and "could not start" in h.detail
    finally:
        c.close()


# -- inference: a refused endpoint ----------------------------------------------------------------

class VllmServer(ThreadingHTTPServer):
    """A loopback vLLM exposition whose counters advance on every scrape (3 requests, 120 + 45 tokens)."""

    def __init__(self) -> None:
        self.reg = CollectorRegistry()
        labels = ["model_name", "engine"]
        self.success = Counter("vllm:request_success", "Count of successfully processed requests.",
                               [*labels, "finished_reason"], registry=self.reg)
        self.prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=self.reg)
        self.gen = Counter("vllm:generation_tokens", "Number of generation tokens processed.", labels,
                           registry=self.reg)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              labels, registry=self.reg, buckets=[0.1, 0.25, 0.5, 1.0])
        self.scrapes = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _VllmHandler)

    def page(self) -> bytes:
        with self.lock:
            self.scrapes += 1
            self.success.labels(MODEL, "0", "stop").inc(3)
            self.prompt.labels(MODEL, "0").inc(120)
            self.gen.labels(MODEL, "0").inc(45)
            for v in (0.05, 0.3, 0.7):
                self.ttft.labels(MODEL, "0").observe(v)
            return generate_latest(self.reg)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/metrics"


class _VllmHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.page()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def vllm():
    srv = VllmServer()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_refused_endpoint_is_down_and_named(vllm):
    refused = f"http://127.0.0.1:{closed_port()}/metrics"
    only_refused = InferenceCollector([Endpoint(url=refused, kind="vllm")], timeout_seconds=2)
    pts = list(only_refused.collect())
    assert one(pts, "infersight.inference.endpoint.up") == 0
    h = only_refused.health()
    assert (h.up, h.reason) == (False, "endpoints_down") and len(h.problems) == 1
    assert refused in h.problems[0] and "refused" in h.problems[0].lower()
    both = InferenceCollector([Endpoint(url=vllm.url), Endpoint(url=refused, kind="vllm")], timeout_seconds=2)
    list(both.collect())
    h = both.health()
    assert h.up and len(h.problems) == 1 and refused in h.problems[0]


# -- infersight collect ----------------------------------------------------------------------------

def write_config(tmp_path: Path, collectors: list[dict]) -> str:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({"agent": {"exporter": {"spool_dir": str(tmp_path / "spool")}},
                                    "collectors": collectors}))
    return str(path)


def collect_json(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = main(["collect", *argv, "--format", "json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_collect_takes_two_samples_and_prints_vllm_counters(vllm, tmp_path, capsys):
    cfg = write_config(tmp_path, [{"type": "inference", "endpoints": [{"url": vllm.url}]}])
    code, rows, err = collect_json(capsys, "--config", cfg, "--sample-interval-seconds", "0.2")
    assert code == 0, err
    assert vllm.scrapes == 2
    # Reference: what the server's counters advanced by between the two scrapes.
    requests = [r for r in rows if r["name"] == "infersight.inference.requests"]
    assert [(r["value"], r["attributes"]["infersight.request.outcome"], r["temporality"]) for r in requests] == [
        (3.0, "good", "delta")]
    tokens = {r["attributes"]["gen_ai.token.type"]: r["value"] for r in rows
              if r["name"] == "gen_ai.client.token.usage"}
    assert tokens["input"] == 120 and tokens["output"] == 45
    ttft = one_row(rows, "gen_ai.server.time_to_first_token")
    assert ttft["count"] == 3 and ttft["bucket_counts"] == [1, 0, 1, 1, 0]
    assert ttft["value"] == pytest.approx(0.05 + 0.3 + 0.7)
    assert one_row(rows, "infersight.inference.endpoint.up")["value"] == 1


def one_row(rows: list[dict], name: str) -> dict:
    found = [r for r in rows if r["name"] == name]
    assert len(found) == 1, (name, found)
    return found[0]


def test_collect_exits_1_naming_a_refused_endpoint(vllm, tmp_path, capsys):
    refused = f"http://127.0.0.1:{closed_port()}/metrics"
    cfg = write_config(tmp_path, [{"type": "inference", "endpoints": [{"url": vllm.url},
                                                                      {"url": refused, "kind": "vllm"}]}])
    code, rows, err = collect_json(capsys, "--config", cfg, "--sample-interval-seconds", "0")
    assert code == 1
    assert f"collector inference: endpoint down: {refused}" in err
    assert any(r["name"] == "infersight.inference.requests" for r in rows)  # the good endpoint still shown


def test_collect_exits_1_when_the_only_endpoint_is_refused(tmp_path, capsys):
    refused = f"http://127.0.0.1:{closed_port()}/metrics"
    cfg = write_config(tmp_path, [{"type": "inference", "endpoints": [{"url": refused, "kind": "vllm"}]}])
    code, rows, err = collect_json(capsys, "--config", cfg, "--sample-interval-seconds", "0")
    assert code == 1
    assert "error: collector inference is down (endpoints_down)" in err
    assert [r["value"] for r in rows if r["name"] == "infersight.inference.endpoint.up"] == [0]


@pytest.mark.e2e
def test_collect_exits_1_when_neuron_monitor_exits(tmp_path, capsys):
    # The first collect waits for the first document or for the monitor to exit: generous for a loaded machine.
    cfg = write_config(tmp_path, [{"type": "neuron", "command": [MONITOR], "first_report_wait_seconds": 60.0,
                                   "restart_backoff_initial_seconds": 5}])
    code, rows, err = collect_json(capsys, "--config", cfg)
    assert code == 1
    assert "error: collector neuron is down (not_running): neuron-monitor exited with status 1" in err
    assert [r["value"] for r in rows if r["name"] == "infersight.neuron.monitor.up"] == [0]


def test_collect_exits_1_where_nvml_does_not_initialise(tmp_path, capsys):
    """The real binding on a host without a driver (or without the binding): down, said why, exit 1."""
    expected = "error: collector nvml is down (nvml_missing): the nvidia-ml-py package (pynvml) is not installed"
    try:
        import pynvml
    except ImportError:
        pass
    else:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            expected = f"error: collector nvml is down (nvml_init): NVML did not initialise: {err}"
        else:
            pynvml.nvmlShutdown()
            pytest.skip("NVML works on this host")
    cfg = write_config(tmp_path, [{"type": "nvml"}])
    code, rows, err = collect_json(capsys, "--config", cfg, "--sample-interval-seconds", "0")
    assert code == 1 and rows == []
    assert expected in err


def test_collect_sample_gives_gpm_from_the_second_sample():
    """On a Hopper GPU (the replayed H200) GPM needs two samples: the second one has them."""
    r = ReplayNvml(CAPTURE)
    mm = r.steps("matmul_bf16")
    start = mm[len(mm) // 2]
    r.seek(start)
    nvml = NvmlCollector(r, clock=r.clock, proc_root=Path("/nonexistent"))
    waited: list[float] = []

    def sleep(seconds: float) -> None:  # the replay's time moves 10 steps (2 s)
        waited.append(seconds)
        r.advance(10)

    first_only = NvmlCollector(ReplayNvml(CAPTURE), proc_root=Path("/nonexistent"))
    assert not pick(list(first_only.collect()), "infersight.gpu.sm.activity")  # what one sample shows
    [s] = sample([ScheduledCollector("nvml", nvml, 10, 5)], 0.5, sleep=sleep)
    assert waited == [0.5] and s.health.up and not s.errors()
    series = r._series
    window = range(start + 1, start + 11)
    span = series[start + 10]["t"] - series[start]["t"]

    def expected(metric: str) -> float:  # time-weighted mean of the captured per-interval values, in 0-1
        return sum(series[i]["gpm"][metric]["value"] * (series[i]["t"] - series[i - 1]["t"]) for i in window) \
            / span / 100

    assert one(s.points, "infersight.gpu.pipe.utilization", infersight__gpu__pipe="tensor") == pytest.approx(
        expected("NVML_GPM_METRIC_ANY_TENSOR_UTIL"), rel=1e-9)
    assert one(s.points, "infersight.gpu.dram.activity") == pytest.approx(
        expected("NVML_GPM_METRIC_DRAM_BW_UTIL"), rel=1e-9)
    assert one(s.points, "infersight.gpu.sm.activity") == pytest.approx(expected("NVML_GPM_METRIC_SM_UTIL"),
                                                                         rel=1e-9)
    assert one(s.points, "infersight.gpu.pipe.utilization", infersight__gpu__pipe="tensor") > 0.5


def test_collect_samples_one_shot_collectors_once(vllm):
    class OneShot:
        type = "oneshot"

        def __init__(self) -> None:
            self.calls = 0

        def collect(self) -> list[Point]:
            self.calls += 1
            return []

        def close(self) -> None:
            pass

    once = OneShot()
    inference = InferenceCollector([Endpoint(url=vllm.url)])
    samples = sample([ScheduledCollector("o", once, 10, 5), ScheduledCollector("i", inference, 10, 5)], 0.0)
    assert once.calls == 1 and vllm.scrapes == 2
    assert one(samples[1].points, "infersight.inference.requests", infersight__request__outcome="good") == 3


def test_sample_interval_option_is_checked(tmp_path, capsys):
    cfg = write_config(tmp_path, [])
    with pytest.raises(SystemExit):
        main(["collect", "--config", cfg, "--sample-interval-seconds", "-1"])
    assert "must be between 0 and 600 seconds" in capsys.readouterr().err


def test_collect_prints_host_cpu_utilisation_from_the_second_sample(tmp_path, capsys):
    cfg = write_config(tmp_path, [{"type": "host"}])
    code, rows, err = collect_json(capsys, "--config", cfg, "--sample-interval-seconds", "0.2")
    assert code == 0, err
    util = [r["value"] for r in rows if r["name"] == "system.cpu.utilization"]
    assert util and all(0 <= v <= 1 for v in util)
