"""AWS Trainium/Inferentia through `neuron-monitor`, run as a child process.

neuron-monitor writes one JSON document per line, each describing a window (`period`) per
metric group. A reader thread parses them (pydantic wire models below) into running state:
execution outcomes, error classes and ECC events are per-window counts that are summed into
cumulative counters; latencies, utilisation and memory are the latest window's gauges.
`collect()` only reads that state. The child is restarted with exponential backoff when it
exits; a malformed document is skipped and counted; a group's `error` string is counted as a
metric, never raised.
"""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infersight.collectors.base import MetricSpec, Point
from infersight.config import CollectorConfig

log = logging.getLogger(__name__)

# -- metric list ----------------------------------------------------------------------------------
RT = ("process.pid", "infersight.neuron.runtime.tag")
CLOUD = ("cloud.provider", "cloud.platform", "cloud.region", "cloud.availability_zone", "host.id", "host.type")
MODEL = RT + ("infersight.neuron.model.name", "infersight.neuron.model.uuid", "infersight.neuron.model.id")
STATUS = MetricSpec("hw.status", "updowncounter", "1",
                    "1 for the Neuron device's current state (ok, degraded, failed), 0 for the others",
                    ("hw.id", "hw.type", "hw.name", "hw.state", "hw.model", "hw.vendor") + CLOUD)
ECC = MetricSpec("hw.errors", "counter", "{error}", "ECC events of a Neuron device (DRAM and SRAM)",
                 ("hw.id", "hw.type", "hw.name", "error.type"))
EXECUTIONS = MetricSpec("infersight.neuron.execution.count", "counter", "{execution}",
                        "Executions by outcome (completed, completed_with_err, timed_out, ...)",
                        RT + ("infersight.neuron.execution.outcome",))
EXEC_ERRORS = MetricSpec("infersight.neuron.execution.errors", "counter", "{error}",
                         "Execution errors by class (generic, numerical, transient, model, runtime, hardware)",
                         RT + ("error.type",))
LATENCY = MetricSpec("infersight.neuron.execution.latency", "gauge", "s",
                     "Latency percentile of the latest window: total (runtime) or device only",
                     RT + ("infersight.neuron.latency.kind", "infersight.neuron.latency.percentile"))
CORE_UTIL = MetricSpec("infersight.neuron.core.utilization", "gauge", "1", "NeuronCore utilisation",
                       RT + ("infersight.neuron.core", "k8s.pod.name", "k8s.namespace.name"))
CORE_FLOPS = MetricSpec("infersight.neuron.core.flops", "gauge", "{flop}/s",
                        "Floating-point operations per second of a NeuronCore", RT + ("infersight.neuron.core",))
MEMORY = MetricSpec("infersight.neuron.memory.usage", "updowncounter", "By",
                    "Memory a Neuron application uses, by location (host, neuron_device), category and "
                    "NeuronCore; sum the categories for totals",
                    RT + ("infersight.neuron.memory.location", "infersight.neuron.memory.category",
                          "infersight.neuron.core"))
MODEL_MEMORY = MetricSpec("infersight.neuron.model.memory.usage", "updowncounter", "By",
                          "Memory of a loaded model's subgraph by location",
                          MODEL + ("infersight.neuron.model.subgraph", "infersight.neuron.core",
                                   "infersight.neuron.device", "infersight.neuron.memory.location"))
MODEL_RUNNING = MetricSpec("infersight.neuron.model.running", "gauge", "1", "1 while a loaded model is started",
                           MODEL)
RT_CPU = MetricSpec("infersight.neuron.runtime.cpu.utilization", "gauge", "1",
                    "vCPU share used by a Neuron application, by mode (user, system)", RT + ("cpu.mode",))
DOCUMENTS = MetricSpec("infersight.neuron.monitor.documents", "counter", "{document}",
                       "neuron-monitor documents read, by status (ok, malformed)",
                       ("infersight.neuron.document.status",))
RESTARTS = MetricSpec("infersight.neuron.monitor.restarts", "counter", "{restart}",
                      "Times neuron-monitor exited and was started again")
UP = MetricSpec("infersight.neuron.monitor.up", "gauge", "1", "1 while neuron-monitor is running")
GROUP_ERRORS = MetricSpec("infersight.neuron.monitor.errors", "counter", "{window}",
                          "Windows in which a metric group reported an error string",
                          RT + ("infersight.neuron.group", "error.type"))
METRICS = (STATUS, ECC, EXECUTIONS, EXEC_ERRORS, LATENCY, CORE_UTIL, CORE_FLOPS, MEMORY, MODEL_MEMORY,
           MODEL_RUNNING, RT_CPU, DOCUMENTS, RESTARTS, UP, GROUP_ERRORS)


# -- wire models (neuron-monitor's JSON output format) ---------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Group(_Wire):
    period: float | None = None
    error: str | None = ""


class _Latency(_Wire):
    total_latency: dict[str, float] | None = None
    device_latency: dict[str, float] | None = None


class ExecutionStats(_Group):
    error_summary: dict[str, int] = {}
    execution_summary: dict[str, int] = {}
    latency_stats: _Latency | None = None


class _Core(_Wire):
    neuroncore_utilization: float | None = None
    flops: float | None = None


class NeuroncoreCounters(_Group):
    neuroncores_in_use: dict[str, _Core] = {}


class _Breakdown(_Wire):
    host: dict[str, int] = {}
    neuroncore_memory_usage: dict[str, dict[str, int]] = {}


class _RuntimeBytes(_Wire):
    host: int | None = None
    neuron_device: int | None = None
    usage_breakdown: _Breakdown | None = None


class _SubgraphBytes(_Wire):
    host: int | None = None
    neuron_device: int | None = None


class _Subgraph(_Wire):
    memory_used_bytes: _SubgraphBytes | None = None
    neuroncore_index: int | None = None
    neuron_device_index: int | None = None


class _Model(_Wire):
    name: str = ""
    uuid: str = ""
    model_id: int | None = None
    is_running: bool = False
    subgraphs: dict[str, _Subgraph] = {}


class MemoryUsed(_Group):
    neuron_runtime_used_bytes: _RuntimeBytes | None = None
    loaded_models: list[_Model] = []


class RuntimeVcpu(_Group):
    vcpu_usage: dict[str, float] = {}


class _RuntimeReport(_Wire):
    neuroncore_counters: NeuroncoreCounters | None = None
    execution_stats: ExecutionStats | None = None
    memory_used: MemoryUsed | None = None
    neuron_runtime_vcpu_usage: RuntimeVcpu | None = None


class Runtime(_Wire):
    pid: int = 0
    neuron_runtime_tag: str | int = ""
    error: str | None = ""
    report: _RuntimeReport | None = None


class _HwDevice(_Wire):
    neuron_device_index: int
    mem_ecc_corrected: int = 0
    mem_ecc_uncorrected: int = 0
    sram_ecc_corrected: int = 0
    sram_ecc_uncorrected: int = 0


class HwCounters(_Group):
    neuron_devices: list[_HwDevice] = []


class _SystemData(_Wire):
    neuron_hw_counters: HwCounters | None = None
    vcpu_usage: _Group | None = None
    memory_info: _Group | None = None


class InstanceInfo(_Wire):
    instance_id: str = ""
    instance_type: str = ""
    instance_availability_zone: str = ""
    instance_region: str = ""
    error: str | None = ""


class HardwareInfo(_Wire):
    neuron_device_type: str | None = None
    neuron_device_count: int | None = None
    neuroncore_per_device_count: int | None = None
    error: str | None = ""


class _K8sEntry(_Wire):
    pod_name: str = ""
    namespace: str = ""


class K8sInfo(_Group):
    neuroncores_k8s_info: dict[str, _K8sEntry] = {}


class Report(_Wire):
    """One neuron-monitor document."""

    neuron_runtime_data: list[Runtime] = []
    system_data: _SystemData | None = None
    instance_info: InstanceInfo | None = None
    neuron_hardware_info: HardwareInfo | None = None
    neuron_k8s_info: K8sInfo | None = None


def parse_document(line: str | bytes) -> Report:
    """Validate one document; raises ValueError (pydantic's ValidationError) when malformed."""
    return Report.model_validate_json(line)


# -- state ----------------------------------------------------------------------------------------
_ECC_TYPES = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected")


class _State:
    """What the documents read so far add up to; guarded by the collector's lock."""

    def __init__(self) -> None:
        self.counters: dict[tuple[MetricSpec, tuple], list[int]] = {}  # key -> [value, start_ns]
        self.gauges: dict[tuple, list[Point]] = {}  # (runtime key, group) -> points of the latest window
        self.last_period: dict[tuple, float | None] = {}
        self.device_count = 0
        self.device_type: str | None = None
        self.hardware_error: str | None = ""
        self.instance: InstanceInfo | None = None
        self.device_degraded: set[int] = set()

    def add(self, spec: MetricSpec, attrs: dict[str, Any], n: int = 1) -> None:
        key = (spec, tuple(sorted(attrs.items())))
        slot = self.counters.get(key)
        if slot is None:
            slot = self.counters[key] = [0, time.time_ns()]
        slot[0] += n

    def fresh(self, key: tuple, group: _Group) -> bool:
        """False when a group repeats the previous document's window unchanged (not counted twice)."""
        prev = self.last_period.get(key)
        self.last_period[key] = group.period
        return group.period is None or group.period != prev

    def group_error(self, group: str, message: str | None, attrs: dict[str, Any] | None = None) -> None:
        if message:
            self.add(GROUP_ERRORS, {**(attrs or {}), "infersight.neuron.group": group,
                                    "error.type": message[:200]})

    def apply(self, doc: Report) -> None:
        if doc.instance_info is not None:
            self.instance = doc.instance_info
            self.group_error("instance_info", doc.instance_info.error)
        if doc.neuron_hardware_info is not None:
            hw = doc.neuron_hardware_info
            self.hardware_error = hw.error
            self.group_error("neuron_hardware_info", hw.error)
            if hw.neuron_device_count:  # kept from the last good report when the driver stops answering
                self.device_count, self.device_type = hw.neuron_device_count, hw.neuron_device_type
        pods: dict[str, _K8sEntry] = {}
        if doc.neuron_k8s_info is not None:
            self.group_error("neuron_k8s_info", doc.neuron_k8s_info.error)
            pods = doc.neuron_k8s_info.neuroncores_k8s_info
        live = set()
        for rt in doc.neuron_runtime_data:
            attrs = {"process.pid": rt.pid, "infersight.neuron.runtime.tag": str(rt.neuron_runtime_tag)}
            key = (rt.pid, str(rt.neuron_runtime_tag))
            live.add(key)
            self.group_error("neuron_runtime", rt.error, attrs)
            if rt.report is not None:
                self._runtime(key, attrs, rt.report, pods)
        for k in [k for k in self.gauges if k[0] not in live]:
            del self.gauges[k]  # the application has gone: its gauges go with it
        system = doc.system_data
        if system is not None:
            for name in ("vcpu_usage", "memory_info"):  # host-level: the host collector reports these
                if (g := getattr(system, name)) is not None:
                    self.group_error(name, g.error)
            hw = system.neuron_hw_counters
            if hw is not None:
                self.group_error("neuron_hw_counters", hw.error)
                if self.fresh(("system", "neuron_hw_counters"), hw):
                    self.device_degraded = set()
                    for d in hw.neuron_devices:
                        a = _device_attrs(d.neuron_device_index)
                        for etype in _ECC_TYPES:
                            self.add(ECC, {**a, "error.type": etype}, getattr(d, etype))
                        if d.mem_ecc_uncorrected or d.sram_ecc_uncorrected:
                            self.device_degraded.add(d.neuron_device_index)

    def _runtime(self, key: tuple, attrs: dict[str, Any], report: _RuntimeReport,
                 pods: dict[str, _K8sEntry]) -> None:
        ex = report.execution_stats
        if ex is not None:
            self.group_error("execution_stats", ex.error, attrs)
            if self.fresh((key, "execution_stats"), ex):
                for outcome, n in ex.execution_summary.items():
                    self.add(EXECUTIONS, {**attrs, "infersight.neuron.execution.outcome": outcome}, n)
                for cls, n in ex.error_summary.items():
                    self.add(EXEC_ERRORS, {**attrs, "error.type": cls}, n)
            pts = []
            lat = ex.latency_stats
            for kind, values in (("total", lat and lat.total_latency), ("device", lat and lat.device_latency)):
                for pct, v in (values or {}).items():  # null when nothing ran in the window
                    pts.append(LATENCY.point(v, {**attrs, "infersight.neuron.latency.kind": kind,
                                                 "infersight.neuron.latency.percentile": pct}))
            self.gauges[(key, "latency")] = pts
        nc = report.neuroncore_counters
        if nc is not None:
            self.group_error("neuroncore_counters", nc.error, attrs)
            pts = []
            for core, c in nc.neuroncores_in_use.items():
                ca = {**attrs, "infersight.neuron.core": int(core)}
                if c.neuroncore_utilization is not None:
                    pod = pods.get(core)
                    pa = {"k8s.pod.name": pod.pod_name, "k8s.namespace.name": pod.namespace} if pod else {}
                    pts.append(CORE_UTIL.point(c.neuroncore_utilization / 100, {**ca, **pa}))
                if c.flops is not None:
                    pts.append(CORE_FLOPS.point(c.flops, ca))
            self.gauges[(key, "cores")] = pts
        mem = report.memory_used
        if mem is not None:
            self.group_error("memory_used", mem.error, attrs)
            self.gauges[(key, "memory")] = _memory_points(attrs, mem)
        cpu = report.neuron_runtime_vcpu_usage
        if cpu is not None:
            self.group_error("neuron_runtime_vcpu_usage", cpu.error, attrs)
            self.gauges[(key, "cpu")] = [RT_CPU.point(v / 100, {**attrs, "cpu.mode": mode})
                                         for mode, v in cpu.vcpu_usage.items()]


def _device_attrs(index: int) -> dict[str, Any]:
    return {"hw.id": f"neuron_device{index}", "hw.type": "accelerator", "hw.name": f"neuron_device{index}"}


def _memory_points(attrs: dict[str, Any], mem: MemoryUsed) -> list[Point]:
    pts = []
    used = mem.neuron_runtime_used_bytes
    bd = used.usage_breakdown if used is not None else None
    if bd is not None:
        for cat, v in bd.host.items():
            pts.append(MEMORY.point(v, {**attrs, "infersight.neuron.memory.location": "host",
                                        "infersight.neuron.memory.category": cat}))
        for core, cats in bd.neuroncore_memory_usage.items():
            for cat, v in cats.items():
                pts.append(MEMORY.point(v, {**attrs, "infersight.neuron.memory.location": "neuron_device",
                                            "infersight.neuron.memory.category": cat,
                                            "infersight.neuron.core": int(core)}))
    for m in mem.loaded_models:
        ma = {**attrs, "infersight.neuron.model.name": m.name, "infersight.neuron.model.uuid": m.uuid,
              "infersight.neuron.model.id": m.model_id if m.model_id is not None else -1}
        pts.append(MODEL_RUNNING.point(int(m.is_running), ma))
        for sg_name, sg in m.subgraphs.items():
            sa = {**ma, "infersight.neuron.model.subgraph": sg_name}
            if sg.neuroncore_index is not None:
                sa["infersight.neuron.core"] = sg.neuroncore_index
            if sg.neuron_device_index is not None:
                sa["infersight.neuron.device"] = sg.neuron_device_index
            b = sg.memory_used_bytes
            for loc in ("host", "neuron_device"):
                if b is not None and (v := getattr(b, loc)) is not None:
                    pts.append(MODEL_MEMORY.point(v, {**sa, "infersight.neuron.memory.location": loc}))
    return pts


# -- collector ------------------------------------------------------------------------------------
class NeuronConfig(CollectorConfig):
    """Options of the `neuron` collector."""

    type: Literal["neuron"] = "neuron"
    command: tuple[str, ...] = Field(("neuron-monitor",), min_length=1,
                                     description="neuron-monitor executable and arguments")
    config_path: Path | None = Field(None, description="neuron-monitor configuration file, passed as "
                                                       "`-c PATH` (its own defaults when unset)")
    restart_backoff_initial_seconds: float = Field(1.0, gt=0, description="Wait before the first restart "
                                                                          "of a neuron-monitor that exited")
    restart_backoff_max_seconds: float = Field(60.0, gt=0, description="Longest wait between restarts; the "
                                                                      "wait doubles while it keeps failing")
    first_report_wait_seconds: float = Field(2.0, ge=0, description="How long the first collect waits for "
                                                                   "neuron-monitor's first document (keep it "
                                                                   "under timeout_seconds)")


class NeuronCollector:
    """Reads neuron-monitor's document stream; see the module docstring."""

    type = "neuron"
    Config = NeuronConfig
    metrics = METRICS

    def __init__(self, command: Sequence[str], *, restart_backoff_initial_seconds: float = 1.0,
                 restart_backoff_max_seconds: float = 60.0, first_report_wait_seconds: float = 0.0) -> None:
        self._command = list(command)
        self._backoff = (restart_backoff_initial_seconds, restart_backoff_max_seconds)
        self._first_wait = first_report_wait_seconds
        self._first_doc = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._state = _State()
        self._docs = {"ok": 0, "malformed": 0}
        self._restarts = 0
        self._up = False
        self._docs_this_run = 0
        self._start_ns = time.time_ns()

    @classmethod
    def from_config(cls, cfg: NeuronConfig) -> NeuronCollector:
        command = [*cfg.command, *(["-c", str(cfg.config_path)] if cfg.config_path else [])]
        return cls(command, restart_backoff_initial_seconds=cfg.restart_backoff_initial_seconds,
                   restart_backoff_max_seconds=cfg.restart_backoff_max_seconds,
                   first_report_wait_seconds=cfg.first_report_wait_seconds)

    # -- child process ---------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._supervise, name="neuron-monitor", daemon=True)
            self._thread.start()
            self._first_doc.wait(self._first_wait)  # so a one-shot `infersight collect` has data

    def _supervise(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            if not first:
                with self._lock:
                    self._restarts += 1
            first = False
            try:
                proc = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            except OSError as err:
                log.warning("neuron-monitor could not start (%s): %s", self._command[0], err)
            else:
                self._run(proc)
            with self._lock:
                produced = self._docs_this_run > 0
            failures = 0 if produced else failures + 1
            delay = min(self._backoff[0] * 2 ** max(failures - 1, 0), self._backoff[1])
            if not self._stop.is_set():
                log.warning("neuron-monitor exited; restarting in %.2f s", delay)
            self._stop.wait(delay)

    def _run(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc, self._up, self._docs_this_run = proc, True, 0
            self._state.last_period.clear()  # a new process's windows are all new
        if self._stop.is_set():  # close() raced with the start
            proc.terminate()
        assert proc.stdout is not None
        for line in proc.stdout:
            self.feed(line)
        proc.stdout.close()
        rc = proc.wait()
        with self._lock:
            self._up, self._proc = False, None
        log.info("neuron-monitor exited with status %s", rc)

    def feed(self, line: str | bytes) -> None:
        """Take one line of neuron-monitor output (public so the parser can be measured alone)."""
        if not line.strip():
            return
        try:
            doc = parse_document(line)
        except ValidationError as err:
            with self._lock:
                self._docs["malformed"] += 1
                first = self._docs["malformed"] == 1
            (log.warning if first else log.debug)("neuron-monitor: skipped a malformed document: %s",
                                                   str(err).splitlines()[0])
            return
        with self._lock:
            self._state.apply(doc)
            self._docs["ok"] += 1
            self._docs_this_run += 1
        self._first_doc.set()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(5)

    # -- collection ------------------------------------------------------------------------------
    def collect(self) -> Iterable[Point]:
        self._ensure_running()
        with self._lock:
            st = self._state
            out = [spec.point(v, dict(attrs), start_time_ns=start)
                   for (spec, attrs), (v, start) in st.counters.items()]
            for pts in st.gauges.values():
                out.extend(pts)
            for status, n in self._docs.items():
                out.append(DOCUMENTS.point(n, {"infersight.neuron.document.status": status},
                                           start_time_ns=self._start_ns))
            out.append(RESTARTS.point(self._restarts, start_time_ns=self._start_ns))
            out.append(UP.point(int(self._up)))
            if self._up and self._docs_this_run:
                out.extend(self._status_points(st))
        return out

    @staticmethod
    def _status_points(st: _State) -> list[Point]:
        ident: dict[str, Any] = {"hw.vendor": "AWS"}
        if st.device_type:
            ident["hw.model"] = st.device_type
        inst = st.instance
        if inst is not None and inst.instance_id:
            ident.update({"cloud.provider": "aws", "cloud.platform": "aws_ec2", "host.id": inst.instance_id})
            for attr, v in (("cloud.region", inst.instance_region),
                            ("cloud.availability_zone", inst.instance_availability_zone),
                            ("host.type", inst.instance_type)):
                if v:
                    ident[attr] = v
        out = []
        for i in range(st.device_count):
            state = "failed" if st.hardware_error else "degraded" if i in st.device_degraded else "ok"
            for s in ("ok", "degraded", "failed"):
                out.append(STATUS.point(1 if s == state else 0, {**_device_attrs(i), "hw.state": s, **ident}))
        return out


__all__ = ["NeuronCollector", "NeuronConfig", "parse_document", "Report", "METRICS"]
