"""The host collector's published metric list, in OTel `system.*`/`process.*` names (docs/collectors/host.md)."""
from __future__ import annotations

from infersight.collectors.base import MetricSpec

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
