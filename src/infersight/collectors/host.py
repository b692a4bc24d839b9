"""Host metrics (CPU, memory, disk, network, load, selected processes) in OTel `system.*`/`process.*` names.

The data source is a psutil-like module passed in, so the collector can run against any
object with psutil's functions. Utilizations come from deltas between two collects, so
the first collect reports times and counters only.
"""
from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from infersight.collectors.base import MetricSpec, Point
from infersight.config import CollectorConfig

CPU_TIME = MetricSpec("system.cpu.time", "counter", "s", "CPU time by mode, all CPUs", ("cpu.mode",))
CPU_UTIL = MetricSpec("system.cpu.utilization", "gauge", "1",
                      "Share of CPU time by mode since the previous collect", ("cpu.mode",))
CPU_COUNT = MetricSpec("system.cpu.logical.count", "updowncounter", "{cpu}", "Logical CPUs")
LOAD = tuple(MetricSpec(f"system.cpu.load_average.{w}", "gauge", "{thread}", f"Load average over {w}")
             for w in ("1m", "5m", "15m"))
MEM_USAGE = MetricSpec("system.memory.usage", "updowncounter", "By", "Memory in use by state",
                       ("system.memory.state",))
MEM_LIMIT = MetricSpec("system.memory.limit", "updowncounter", "By", "Total physical memory")
MEM_UTIL = MetricSpec("system.memory.utilization", "gauge", "1", "Share of memory by state",
                      ("system.memory.state",))
DISK_IO = MetricSpec("system.disk.io", "counter", "By", "Bytes read/written per disk",
                     ("system.device", "disk.io.direction"))
DISK_OPS = MetricSpec("system.disk.operations", "counter", "{operation}", "Read/write operations per disk",
                      ("system.device", "disk.io.direction"))
NET_IO = MetricSpec("system.network.io", "counter", "By", "Bytes received/transmitted per interface",
                    ("network.interface.name", "network.io.direction"))
NET_PACKETS = MetricSpec("system.network.packets", "counter", "{packet}", "Packets per interface",
                         ("network.interface.name", "network.io.direction"))
NET_ERRORS = MetricSpec("system.network.errors", "counter", "{error}", "Errors per interface",
                        ("network.interface.name", "network.io.direction"))
_PROC_ATTRS = ("process.executable.name", "process.pid")
PROC_CPU_TIME = MetricSpec("process.cpu.time", "counter", "s", "CPU time of a watched process",
                           _PROC_ATTRS + ("cpu.mode",))
PROC_CPU_UTIL = MetricSpec("process.cpu.utilization", "gauge", "1",
                           "CPU share of a watched process since the previous collect, over all CPUs",
                           _PROC_ATTRS)
PROC_RSS = MetricSpec("process.memory.usage", "updowncounter", "By", "Resident memory of a watched process",
                      _PROC_ATTRS)

METRICS = (CPU_TIME, CPU_UTIL, CPU_COUNT, *LOAD, MEM_USAGE, MEM_LIMIT, MEM_UTIL, DISK_IO, DISK_OPS, NET_IO,
           NET_PACKETS, NET_ERRORS, PROC_CPU_TIME, PROC_CPU_UTIL, PROC_RSS)

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_MEM_STATES = ("used", "free", "buffers", "cached")


class HostConfig(CollectorConfig):
    """Options of the `host` collector.

    `process_names`: executable names (as `ps -o comm` shows them, e.g. `vllm`, `python3`) whose
    CPU and resident memory are reported per process. `exclude_disks`: shell patterns of block
    devices left out (loop and RAM disks are noise on most hosts).
    """

    type: Literal["host"] = "host"
    process_names: tuple[str, ...] = ()
    exclude_disks: tuple[str, ...] = ("loop*", "ram*", "zram*")


class HostCollector:
    type = "host"
    Config = HostConfig
    metrics = METRICS

    def __init__(self, ps: Any, process_names: Iterable[str] = (),
                 exclude_disks: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._ps = ps
        self._names = frozenset(process_names)
        self._exclude = tuple(exclude_disks)
        self._clock = clock
        self._prev_cpu: Any = None
        self._prev_proc: dict[int, tuple[float, float]] = {}

    @classmethod
    def from_config(cls, cfg: HostConfig) -> HostCollector:
        import psutil

        return cls(psutil, cfg.process_names, cfg.exclude_disks)

    def collect(self) -> list[Point]:
        return [*self._cpu(), *self._memory(), *self._disks(), *self._network(), *self._processes()]

    def close(self) -> None:
        return None

    def _cpu(self) -> Iterable[Point]:
        times = self._ps.cpu_times()
        modes = [m for m in _CPU_MODES if hasattr(times, m)]
        for m in modes:
            yield CPU_TIME.point(getattr(times, m), {"cpu.mode": m})
        if self._prev_cpu is not None:
            deltas = {m: getattr(times, m) - getattr(self._prev_cpu, m) for m in modes}
            total = sum(deltas.values())
            if total > 0:
                for m in modes:
                    yield CPU_UTIL.point(deltas[m] / total, {"cpu.mode": m})
        self._prev_cpu = times
        yield CPU_COUNT.point(self._ps.cpu_count(logical=True) or 0)
        for spec, value in zip(LOAD, self._ps.getloadavg(), strict=True):
            yield spec.point(value)

    def _memory(self) -> Iterable[Point]:
        vm = self._ps.virtual_memory()
        yield MEM_LIMIT.point(vm.total)
        for state in _MEM_STATES:
            value = getattr(vm, state, None)
            if value is not None:
                yield MEM_USAGE.point(value, {"system.memory.state": state})
                yield MEM_UTIL.point(value / vm.total if vm.total else 0.0, {"system.memory.state": state})

    def _disks(self) -> Iterable[Point]:
        for dev, c in (self._ps.disk_io_counters(perdisk=True) or {}).items():
            if any(fnmatch.fnmatch(dev, pat) for pat in self._exclude):
                continue
            for direction, nbytes, ops in (("read", c.read_bytes, c.read_count),
                                           ("write", c.write_bytes, c.write_count)):
                attrs = {"system.device": dev, "disk.io.direction": direction}
                yield DISK_IO.point(nbytes, attrs)
                yield DISK_OPS.point(ops, attrs)

    def _network(self) -> Iterable[Point]:
        for nic, c in (self._ps.net_io_counters(pernic=True) or {}).items():
            for direction, nbytes, packets, errors in (
                    ("receive", c.bytes_recv, c.packets_recv, c.errin),
                    ("transmit", c.bytes_sent, c.packets_sent, c.errout)):
                attrs = {"network.interface.name": nic, "network.io.direction": direction}
                yield NET_IO.point(nbytes, attrs)
                yield NET_PACKETS.point(packets, attrs)
                yield NET_ERRORS.point(errors, attrs)

    def _processes(self) -> Iterable[Point]:
        if not self._names:
            return
        now = self._clock()
        ncpu = self._ps.cpu_count(logical=True) or 1
        seen: dict[int, tuple[float, float]] = {}
        # Fields a process denies us come back as None; vanished processes are skipped by process_iter.
        for proc in self._ps.process_iter(["pid", "name", "cpu_times", "memory_info"]):
            info = proc.info
            if info["name"] not in self._names:
                continue
            attrs = {"process.executable.name": info["name"], "process.pid": info["pid"]}
            if info["memory_info"] is not None:
                yield PROC_RSS.point(info["memory_info"].rss, attrs)
            cpu = info["cpu_times"]
            if cpu is None:
                continue
            yield PROC_CPU_TIME.point(cpu.user, {**attrs, "cpu.mode": "user"})
            yield PROC_CPU_TIME.point(cpu.system, {**attrs, "cpu.mode": "system"})
            used = cpu.user + cpu.system
            seen[info["pid"]] = (now, used)
            if (prev := self._prev_proc.get(info["pid"])) and now > prev[0]:
                yield PROC_CPU_UTIL.point(max(used - prev[1], 0.0) / ((now - prev[0]) * ncpu), attrs)
        self._prev_proc = seen
