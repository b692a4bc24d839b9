"""Per-minute accelerator and node rollup: what the web UI's Fleet and Nodes views read over ranges above an hour.

Table `infersight_accelerators_1m` (MergeTree; DDL `storage/sql/rollup_accelerators_1m.sql`), one row per
minute, host (`CloudProvider`, `CloudRegion`, `HostName`, `HostType`), `Device` and `XidSeries`:

- `Device`: a GPU's `hw.id`, `nc<core>` for a NeuronCore (`infersight.neuron.core`), `''` for the host's own
  series (the host collector's CPU and memory, `infersight.collector.up`, the inference endpoints' up gauge,
  the agent's export counter: a node whose collectors all fail is still seen);
- `XidSeries`: the XID code of `hw.errors` rows (cumulative counters are compared per series), else `''`;
- `Samples`, `LastSeen` (latest point time): presence; `<X>Sum`/`<X>Count` pairs of the mean gauges
  (`Util`: GPU engine utilisation, `Neuron`: NeuronCore utilisation, `Tensor`: GPM tensor pipe active, `Sm`,
  `Dram`, `Power` W,
  `Temp` °C with `TempMax`, `MemUtil` fraction, `MemUsed` bytes with `MemLimitMax`, `CpuIdle` and `Memory`
  (host, fractions)); `Reachable`/`Unreachable` (`infersight.gpu.reachable` points at 1/0);
  `StatusTime`/`State` (the latest `hw.status` state at 1); `XidDelta` (delta `hw.errors{error.type=xid}`
  counts), `XidSamples`/`XidMax`/`XidMin`/`XidStart` (cumulative XID counters:
  readers take max − min per series over the range, plus the first value when the series started in it).

Means are exact (the sums and counts of the same points the raw queries average); presence and the latest
state are at the points' own times. Readers always aggregate: rows of one minute may be split across inserts
and across the two views (gauges, sums), each of which fills only its own columns.
"""
from __future__ import annotations

from infersight import semconv as sc
from infersight.storage.schema import SchemaOptions, render
from infersight.storage.tables import LOW, Table

NAME = "infersight_accelerators_1m"

GPU_UTILIZATION = "hw.gpu.utilization"
NEURON_CORE_UTILIZATION = "infersight.neuron.core.utilization"
GPU_PIPE = "infersight.gpu.pipe.utilization"
# Gauges the gauge view reads: devices, host, presence (the per-part and collector up gauges).
GAUGE_METRICS = (
    GPU_UTILIZATION, NEURON_CORE_UTILIZATION, GPU_PIPE, "infersight.gpu.sm.activity", "infersight.gpu.dram.activity",
    "hw.power", "hw.temperature", "hw.gpu.memory.utilization", sc.GPU_REACHABLE, "hw.status", "hw.errors",
    "system.cpu.utilization", "system.memory.utilization", sc.COLLECTOR_UP,
    sc.INFERENCE_ENDPOINT_UP, sc.NEURON_MONITOR_UP, sc.PROBE_UP,
)
# Sums the sum view reads: device memory (updowncounters), health and XIDs as sums, the agent's export counter.
SUM_METRICS = ("hw.gpu.memory.usage", "hw.gpu.memory.limit", "hw.status", "hw.errors",
               "infersight.agent.points.exported")

DEVICE = (f"if(Attributes['{sc.HW_ID}'] != '', Attributes['{sc.HW_ID}'], "
          "if(Attributes['infersight.neuron.core'] != '', concat('nc', Attributes['infersight.neuron.core']), ''))")
UTIL = f"(MetricName = '{GPU_UTILIZATION}' AND Attributes['hw.gpu.task'] IN ('', 'general'))"
TENSOR = f"(MetricName = '{GPU_PIPE}' AND Attributes['infersight.gpu.pipe'] = 'tensor')"
TEMP = "(MetricName = 'hw.temperature' AND Attributes['hw.sensor_location'] IN ('', 'gpu'))"
XID = "(MetricName = 'hw.errors' AND Attributes['error.type'] = 'xid')"
CPU_IDLE = "(MetricName = 'system.cpu.utilization' AND Attributes['cpu.mode'] = 'idle')"
MEM_USED = "(MetricName = 'system.memory.utilization' AND Attributes['system.memory.state'] = 'used')"

_F, _N = "Float64", "UInt64"
ACCELERATORS = Table(NAME, (
    ("Minute", "DateTime"), *((c, LOW) for c in ("CloudProvider", "CloudRegion", "HostName", "HostType")),
    ("Device", "String"), ("XidSeries", "String"), ("Samples", _N), ("LastSeen", "DateTime"),
    ("UtilSum", _F), ("UtilCount", _N), ("NeuronSum", _F), ("NeuronCount", _N), ("TensorSum", _F),
    ("TensorCount", _N), ("SmSum", _F), ("SmCount", _N),
    ("DramSum", _F), ("DramCount", _N), ("PowerSum", _F), ("PowerCount", _N), ("TempSum", _F), ("TempCount", _N),
    ("TempMax", _F), ("MemUtilSum", _F), ("MemUtilCount", _N), ("MemUsedSum", _F), ("MemUsedCount", _N),
    ("MemLimitMax", _F), ("Reachable", _N), ("Unreachable", _N), ("StatusTime", "DateTime"), ("State", LOW),
    ("XidDelta", _F), ("XidSamples", _N), ("XidMax", _F), ("XidMin", _F), ("XidStart", "DateTime"),
    ("CpuIdleSum", _F), ("CpuIdleCount", _N), ("MemorySum", _F), ("MemoryCount", _N),
))
TABLES = (ACCELERATORS,)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def ddl(opts: SchemaOptions) -> list[str]:
    """The rollup table and its two views (`storage/sql/rollup_accelerators_1m.sql`)."""
    return render("rollup_accelerators_1m", opts, device=DEVICE, gauge_metrics=_names(GAUGE_METRICS),
                  sum_metrics=_names(SUM_METRICS), util=UTIL, neuron=NEURON_CORE_UTILIZATION, tensor=TENSOR,
                  temp=TEMP, xid=XID, cpu_idle=CPU_IDLE, mem_used=MEM_USED)
