"""What the neuron-monitor documents read so far add up to, and the points a collect returns.

Each document describes a window (`period`) per metric group. Execution outcomes, error classes
and ECC events are per-window counts, summed into cumulative counters; latencies, utilisation and
memory are the latest window's gauges. A group that repeats the previous document's window
unchanged is not counted twice, and a group's `error` string is counted, never raised.
`State` is shared by the supervisor's reader thread and `collect()`, so it holds the lock.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import ValidationError

from infersight.collectors.base import MetricSpec, Point
from infersight.collectors.hw import HW_ERRORS, HwState, status_points
from infersight.collectors.neuron import metrics as M
from infersight.collectors.neuron.wire import (
    Group,
    InstanceInfo,
    K8sEntry,
    MemoryUsed,
    Report,
    RuntimeReport,
    SystemData,
    parse_document,
)

log = logging.getLogger(__name__)

_ECC_TYPES = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected")


class Windows:
    """The documents' running totals and latest gauges; not thread-safe (`State` guards it)."""

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

    def fresh(self, key: tuple, group: Group) -> bool:
        """False when a group repeats the previous document's window unchanged (not counted twice)."""
        prev = self.last_period.get(key)
        self.last_period[key] = group.period
        return group.period is None or group.period != prev

    def group_error(self, group: str, message: str | None, attrs: dict[str, Any] | None = None) -> None:
        if message:
            self.add(M.GROUP_ERRORS, {**(attrs or {}), "infersight.neuron.group": group,
                                      "error.type": message[:200]})

    def apply(self, doc: Report) -> None:
        """Add one document's windows."""
        if doc.instance_info is not None:
            self.instance = doc.instance_info
            self.group_error("instance_info", doc.instance_info.error)
        if doc.neuron_hardware_info is not None:
            hw = doc.neuron_hardware_info
            self.hardware_error = hw.error
            self.group_error("neuron_hardware_info", hw.error)
            if hw.neuron_device_count:  # kept from the last good report when the driver stops answering
                self.device_count, self.device_type = hw.neuron_device_count, hw.neuron_device_type
        pods: dict[str, K8sEntry] = {}
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
        if doc.system_data is not None:
            self._system(doc.system_data)

    def _system(self, system: SystemData) -> None:
        for name in ("vcpu_usage", "memory_info"):  # host-level: the host collector reports these
            if (g := getattr(system, name)) is not None:
                self.group_error(name, g.error)
        hw = system.neuron_hw_counters
        if hw is None:
            return
        self.group_error("neuron_hw_counters", hw.error)
        if self.fresh(("system", "neuron_hw_counters"), hw):
            self.device_degraded = set()
            for d in hw.neuron_devices:
                a = device_attrs(d.neuron_device_index)
                for etype in _ECC_TYPES:
                    self.add(HW_ERRORS, {**a, "error.type": etype}, getattr(d, etype))
                if d.mem_ecc_uncorrected or d.sram_ecc_uncorrected:
                    self.device_degraded.add(d.neuron_device_index)

    def _runtime(self, key: tuple, attrs: dict[str, Any], report: RuntimeReport,
                 pods: dict[str, K8sEntry]) -> None:
        ex = report.execution_stats
        if ex is not None:
            self.group_error("execution_stats", ex.error, attrs)
            if self.fresh((key, "execution_stats"), ex):
                for outcome, n in ex.execution_summary.items():
                    self.add(M.EXECUTIONS, {**attrs, "infersight.neuron.execution.outcome": outcome}, n)
                for cls, n in ex.error_summary.items():
                    self.add(M.EXEC_ERRORS, {**attrs, "error.type": cls}, n)
            pts = []
            lat = ex.latency_stats
            for kind, values in (("total", lat and lat.total_latency), ("device", lat and lat.device_latency)):
                for pct, v in (values or {}).items():  # null when nothing ran in the window
                    pts.append(M.LATENCY.point(v, {**attrs, "infersight.neuron.latency.kind": kind,
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
                    pts.append(M.CORE_UTIL.point(c.neuroncore_utilization / 100, {**ca, **pa}))
                if c.flops is not None:
                    pts.append(M.CORE_FLOPS.point(c.flops, ca))
            self.gauges[(key, "cores")] = pts
        mem = report.memory_used
        if mem is not None:
            self.group_error("memory_used", mem.error, attrs)
            self.gauges[(key, "memory")] = _memory_points(attrs, mem)
        cpu = report.neuron_runtime_vcpu_usage
        if cpu is not None:
            self.group_error("neuron_runtime_vcpu_usage", cpu.error, attrs)
            self.gauges[(key, "cpu")] = [M.RT_CPU.point(v / 100, {**attrs, "cpu.mode": mode})
                                         for mode, v in cpu.vcpu_usage.items()]

    def status_points(self) -> list[Point]:
        """`hw.status` per Neuron device: failed while the driver reports an error, degraded after ECC."""
        ident: dict[str, Any] = {"hw.vendor": "AWS"}
        if self.device_type:
            ident["hw.model"] = self.device_type
        inst = self.instance
        if inst is not None and inst.instance_id:
            ident.update({"cloud.provider": "aws", "cloud.platform": "aws_ec2", "host.id": inst.instance_id})
            for attr, v in (("cloud.region", inst.instance_region),
                            ("cloud.availability_zone", inst.instance_availability_zone),
                            ("host.type", inst.instance_type)):
                if v:
                    ident[attr] = v
        out = []
        for i in range(self.device_count):
            state: HwState = "failed" if self.hardware_error else "degraded" if i in self.device_degraded else "ok"
            out.extend(status_points(device_attrs(i), state, ident))
        return out


class State:
    """`Windows` plus the document and process counters, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # The first document, or the end of a run (exit, failed start) that sent none: what the first collect
        # waits for, so a one-shot `infersight collect` has data or reports the monitor down at once.
        self.first_outcome = threading.Event()
        self._windows = Windows()
        self._docs = {"ok": 0, "malformed": 0}
        self._restarts = 0
        self._up = False
        self._docs_this_run = 0
        self._start_ns = time.time_ns()
        self._last_seen = time.monotonic()  # the last document, or the start of this run
        self.exit_status: int | None = None  # of the last neuron-monitor run that ended

    def feed(self, line: str | bytes) -> None:
        """Take one line of neuron-monitor output."""
        if not line.strip():
            return
        try:
            doc = parse_document(line)
        except ValidationError as err:
            with self.lock:
                self._docs["malformed"] += 1
                first = self._docs["malformed"] == 1
            (log.warning if first else log.debug)("neuron-monitor: skipped a malformed document: %s",
                                                   str(err).splitlines()[0])
            return
        with self.lock:
            self._windows.apply(doc)
            self._docs["ok"] += 1
            self._docs_this_run += 1
            self._last_seen = time.monotonic()
        self.first_outcome.set()

    def restarting(self) -> None:
        """neuron-monitor is about to be started again (counted whether or not it starts)."""
        with self.lock:
            self._restarts += 1

    def process_started(self) -> None:
        with self.lock:
            self._up, self._docs_this_run = True, 0
            self._last_seen = time.monotonic()
            self._windows.last_period.clear()  # a new process's windows are all new

    def process_exited(self, status: int | None = None) -> bool:
        """Mark neuron-monitor down; True when the run produced a document (its backoff resets)."""
        with self.lock:
            self._up, self.exit_status = False, status
            produced = self._docs_this_run > 0
        self.first_outcome.set()
        return produced

    def liveness(self) -> tuple[bool, float | None]:
        """(neuron-monitor running, seconds since its last document or its start while it runs)."""
        with self.lock:
            return self._up, (time.monotonic() - self._last_seen) if self._up else None

    def points(self) -> list[Point]:
        """Counters, latest gauges, monitor health and, while neuron-monitor reports, `hw.status`."""
        with self.lock:
            w = self._windows
            out = [spec.point(v, dict(attrs), start_time_ns=start)
                   for (spec, attrs), (v, start) in w.counters.items()]
            for pts in w.gauges.values():
                out.extend(pts)
            for status, n in self._docs.items():
                out.append(M.DOCUMENTS.point(n, {"infersight.neuron.document.status": status},
                                             start_time_ns=self._start_ns))
            out.append(M.RESTARTS.point(self._restarts, start_time_ns=self._start_ns))
            out.append(M.UP.point(int(self._up)))
            if self._up:
                out.append(M.DOCUMENT_AGE.point(round(time.monotonic() - self._last_seen, 3)))
            if self._up and self._docs_this_run:
                out.extend(w.status_points())
        return out


def device_attrs(index: int) -> dict[str, Any]:
    return {"hw.id": f"neuron_device{index}", "hw.type": "accelerator", "hw.name": f"neuron_device{index}"}


def _memory_points(attrs: dict[str, Any], mem: MemoryUsed) -> list[Point]:
    pts = []
    used = mem.neuron_runtime_used_bytes
    bd = used.usage_breakdown if used is not None else None
    if bd is not None:
        for cat, v in bd.host.items():
            pts.append(M.MEMORY.point(v, {**attrs, "infersight.neuron.memory.location": "host",
                                          "infersight.neuron.memory.category": cat}))
        for core, cats in bd.neuroncore_memory_usage.items():
            for cat, v in cats.items():
                pts.append(M.MEMORY.point(v, {**attrs, "infersight.neuron.memory.location": "neuron_device",
                                              "infersight.neuron.memory.category": cat,
                                              "infersight.neuron.core": int(core)}))
    for m in mem.loaded_models:
        ma = {**attrs, "infersight.neuron.model.name": m.name, "infersight.neuron.model.uuid": m.uuid,
              "infersight.neuron.model.id": m.model_id if m.model_id is not None else -1}
        pts.append(M.MODEL_RUNNING.point(int(m.is_running), ma))
        for sg_name, sg in m.subgraphs.items():
            sa = {**ma, "infersight.neuron.model.subgraph": sg_name}
            if sg.neuroncore_index is not None:
                sa["infersight.neuron.core"] = sg.neuroncore_index
            if sg.neuron_device_index is not None:
                sa["infersight.neuron.device"] = sg.neuron_device_index
            b = sg.memory_used_bytes
            for loc in ("host", "neuron_device"):
                if b is not None and (v := getattr(b, loc)) is not None:
                    pts.append(M.MODEL_MEMORY.point(v, {**sa, "infersight.neuron.memory.location": loc}))
    return pts
